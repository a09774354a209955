import { status, type Client, type ClientReadableStream, type ServiceError } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { Backoff } from '../../../common/backoff.js';
import { AGENT_DEFAULTS } from '../../defaults.js';

export type Json = Record<string, unknown>;

type State = 'idle' | 'connected' | 'down';

export interface FollowingStreamOptions {
  /** What the logs call the server: "Hubble", "Goldmane". */
  name: string;
  address: string;
  log: Logger;
  /** First reconnect delay, doubled per failure up to maxBackoffMs. */
  minBackoffMs?: number;
  maxBackoffMs?: number;
}

/**
 * A server-streaming gRPC call that is followed for as long as the agent runs:
 * reconnects with jittered exponential backoff (unref'd timers: it never holds
 * the process open by itself), logs once per change (connected, lost, the first
 * failed attempt while down; never per message or per retry), and pauses the
 * stream for back-pressure (grpc-js then stops reading and HTTP/2 flow control
 * holds the server back; a pause lasts across reconnects). Subclasses open the
 * call (asking to resume where they were), and handle each message; after a
 * reconnect `replaying` is true until they say the replay is over.
 */
/** How long a call must survive its channel turning READY to count as connected without headers or data, ms. */
const READY_SETTLE_MS = AGENT_DEFAULTS.sourceStream.readySettleMs;

export abstract class FollowingStream {
  readonly stats = { messages: 0, connects: 0, failures: 0, duplicatesDropped: 0, staleDropped: 0, unreadable: 0 };
  protected replaying = false;
  private readonly maxBackoffMs: number;
  private readonly backoff: Backoff;
  private call?: ClientReadableStream<Json>;
  private retryTimer?: NodeJS.Timeout;
  private state: State = 'idle';
  private stopped = false;
  private paused = false;
  private started = false;

  constructor(
    protected readonly client: Client,
    private readonly s: FollowingStreamOptions,
  ) {
    this.maxBackoffMs = s.maxBackoffMs ?? AGENT_DEFAULTS.sourceStream.maxBackoffMs;
    this.backoff = new Backoff({
      initialMs: s.minBackoffMs ?? AGENT_DEFAULTS.sourceStream.minBackoffMs,
      maxMs: this.maxBackoffMs,
      jitter: AGENT_DEFAULTS.sourceStream.backoffJitterRatio,
    });
  }

  /** Open the call, asking for what comes after the resume point. */
  protected abstract open(): ClientReadableStream<Json>;
  /** One message; answer false to pause the stream. */
  protected abstract handle(m: Json): boolean;
  /** What the "connected" log line says about where following resumed. */
  protected abstract resumeFields(): Record<string, unknown>;
  /** Called once by start(), before the first call. */
  protected onStart(): void {}

  /** True while a call is open and the server is reachable. */
  get connected(): boolean {
    return this.state === 'connected';
  }

  start(): void {
    if (this.started || this.stopped) return;
    this.started = true;
    this.onStart();
    this.connect();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    const call = this.call;
    this.call = undefined;
    call?.cancel();
    this.client.close();
  }

  pause(): void {
    this.paused = true;
    this.call?.pause();
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.call?.resume();
  }

  private connect(): void {
    if (this.stopped) return;
    const call = this.open();
    this.call = call;
    const openedAt = Date.now();
    if (this.paused) call.pause();
    call.on('metadata', () => this.up(call));
    call.on('data', (m: Json) => this.onData(call, m));
    call.on('error', (err: ServiceError) =>
      this.down(call, `${status[err.code] ?? err.code}: ${err.details || err.message}`, openedAt),
    );
    call.on('end', () => this.down(call, `${this.s.name} ended the stream`, openedAt));
    // A following server may send nothing (not even headers) until its first message: a READY channel means
    // connected — once this call has outlived the moment. A call started while the server was down can fail just
    // as the channel turns READY; it must not be reported as a connection.
    this.client.waitForReady(Date.now() + AGENT_DEFAULTS.sourceStream.waitForReadyMs, (err) => {
      if (err) return;
      const settle = setTimeout(() => this.up(call), READY_SETTLE_MS);
      settle.unref();
    });
  }

  private up(call: ClientReadableStream<Json>): void {
    if (call !== this.call || this.state === 'connected') return;
    this.state = 'connected';
    this.stats.connects++;
    this.s.log.info({ address: this.s.address, ...this.resumeFields() }, `following ${this.s.name} flows`);
  }

  private onData(call: ClientReadableStream<Json>, m: Json): void {
    if (call !== this.call) return;
    this.up(call);
    this.backoff.reset();
    let more: boolean;
    try {
      more = this.handle(m);
    } catch (err) {
      // One message nobody foresaw must not take the agent down (this runs in a stream event): count it, say it, go on.
      this.stats.unreadable++;
      if (
        this.stats.unreadable === 1 ||
        this.stats.unreadable % AGENT_DEFAULTS.sourceStream.unreadableLogEveryCount === 0
      )
        this.s.log.warn(
          { err: (err as Error).message, unreadable: this.stats.unreadable },
          `a ${this.s.name} message could not be read; skipped`,
        );
      more = true;
    }
    if (!more) this.pause();
  }

  private down(call: ClientReadableStream<Json>, why: string, openedAt: number): void {
    if (call !== this.call) return;
    this.call = undefined;
    if (this.stopped) return;
    this.stats.failures++;
    // A stream that lived long is not a failing server: start the backoff over.
    if (Date.now() - openedAt >= this.maxBackoffMs) this.backoff.reset();
    const delay = this.backoff.next();
    if (this.state === 'connected')
      this.s.log.warn({ address: this.s.address, why }, `${this.s.name} flow stream lost; reconnecting`);
    else if (this.state === 'idle')
      this.s.log.warn({ address: this.s.address, why }, `cannot reach ${this.s.name}; retrying`);
    else this.s.log.debug({ address: this.s.address, why, retryInMs: delay }, `${this.s.name} still unreachable`);
    this.state = 'down';
    this.replaying = true;
    this.retryTimer = setTimeout(() => this.connect(), delay);
    this.retryTimer.unref();
  }
}
