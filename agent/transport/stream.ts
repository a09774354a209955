import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { Backoff } from '../../common/backoff.js';
import { agentServiceDefinition, type WireAggregatorMessage, type WireHello } from '../../proto/index.js';
import { Outbox, type Outgoing } from './outbox.js';
import { AGENT_DEFAULTS } from '../defaults.js';

export type { Outgoing } from './outbox.js';

export interface StreamOptions {
  /** HOST:PORT of the aggregator's gRPC listener. */
  address: string;
  credentials: grpc.ChannelCredentials;
  /** Called per connection so a rotated token file is re-read. */
  metadata: () => grpc.Metadata;
  hello: () => WireHello;
  log: Logger;
  /**
   * What is sent, kept and counted; by default an outbox of maxUnacked messages and maxUnackedBytes, without a spool.
   */
  outbox?: Outbox;
  /** Unacked messages kept; past this the oldest is dropped and counted (default outbox only). */
  maxUnacked: number;
  /** Unacked encoded bytes kept (default outbox only). */
  maxUnackedBytes?: number;
  /** Send a heartbeat when nothing was written for this long, ms (0: never). */
  heartbeatMs?: number;
  /** First reconnect delay, doubled per failure up to maxBackoffMs. */
  minBackoffMs: number;
  maxBackoffMs: number;
}

export const DEFAULT_STREAM_OPTIONS = {
  maxUnacked: AGENT_DEFAULTS.stream.maxUnackedCount,
  maxUnackedBytes: AGENT_DEFAULTS.stream.maxUnackedBytes,
  minBackoffMs: AGENT_DEFAULTS.stream.minBackoffMs,
  maxBackoffMs: AGENT_DEFAULTS.stream.maxBackoffMs,
  heartbeatMs: AGENT_DEFAULTS.stream.heartbeatMs,
};

export interface StreamStats {
  sent: number;
  acked: number;
  duplicates: number;
  rejected: number;
  /** Unacked messages dropped because the outbox was full. */
  dropped: number;
  reconnects: number;
}

type Call = grpc.ClientDuplexStream<Record<string, unknown> | Buffer, WireAggregatorMessage>;

/**
 * The agent's one stream to the aggregator: transport only. What to send, in
 * which order, and what to forget is the outbox's (agent/transport/outbox.ts);
 * the stream connects, says Hello, writes the outbox's messages after the
 * Welcome's seq, and hands Acks and Rejects back. After a reconnect the
 * Welcome says what is already stored and the rest is written again, in
 * order, no more at once than the outbox lets be in flight (sendable()). Writes respect back-pressure (`write()`
 * false → wait for 'drain').
 */
export class AgentStream {
  readonly stats: StreamStats = { sent: 0, acked: 0, duplicates: 0, rejected: 0, dropped: 0, reconnects: 0 };
  readonly outbox: Outbox;
  private readonly client: grpc.Client;
  private call?: Call;
  /** Seq of the last outbox entry written on the current call. */
  private sentUpTo = 0;
  private welcomed = false;
  private draining = false;
  private stopped = false;
  private readonly backoff: Backoff;
  private retryTimer?: NodeJS.Timeout;
  private lastWriteMs = 0;
  private heartbeatTimer?: NodeJS.Timeout;

  constructor(private readonly options: StreamOptions) {
    const Ctor = grpc.makeGenericClientConstructor(agentServiceDefinition(), 'AgentService');
    this.client = new Ctor(options.address, options.credentials, {
      'grpc.keepalive_time_ms': AGENT_DEFAULTS.stream.keepaliveTimeMs,
      'grpc.keepalive_timeout_ms': AGENT_DEFAULTS.stream.keepaliveTimeoutMs,
      'grpc.keepalive_permit_without_calls': 1,
    });
    this.backoff = new Backoff({
      initialMs: options.minBackoffMs,
      maxMs: options.maxBackoffMs,
      jitter: AGENT_DEFAULTS.stream.backoffJitterRatio,
    });
    this.outbox =
      options.outbox ??
      new Outbox({
        log: options.log,
        maxBytes: options.maxUnackedBytes ?? DEFAULT_STREAM_OPTIONS.maxUnackedBytes,
        maxMessages: options.maxUnacked,
      });
    this.outbox.onQueued = () => this.pump();
  }

  get connected(): boolean {
    return this.welcomed;
  }

  get unacked(): number {
    return this.outbox.size;
  }

  start(): void {
    this.connect();
    const every = this.options.heartbeatMs ?? 0;
    if (every > 0) {
      this.heartbeatTimer = setInterval(
        () => {
          if (!this.call || !this.welcomed || this.draining || Date.now() - this.lastWriteMs < every) return;
          this.lastWriteMs = Date.now();
          this.call.write({ heartbeat: { sentUnixMs: Date.now() } });
        },
        Math.max(AGENT_DEFAULTS.stream.heartbeatCheckMinMs, Math.floor(every / 2)),
      );
      this.heartbeatTimer.unref();
    }
  }

  /** Queue a message; it is sent now if connected, else after the next Welcome. Answers its seq. */
  send(build: (seq: number) => Outgoing): number {
    return this.outbox.add(build);
  }

  /** Resolves once everything queued so far is acked (or dropped). */
  flushed(): Promise<void> {
    return this.outbox.flushed();
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.heartbeatTimer);
    clearTimeout(this.retryTimer);
    this.call?.end();
    this.client.close();
  }

  private connect(): void {
    if (this.stopped) return;
    const call = this.client.makeBidiStreamRequest(
      '/verdict.v1.AgentService/Connect',
      // The outbox keeps messages encoded; Hello and Heartbeat are encoded here.
      (m: Record<string, unknown> | Buffer) =>
        Buffer.isBuffer(m) ? m : agentServiceDefinition().Connect!.requestSerialize(m),
      (b: Buffer) => agentServiceDefinition().Connect!.responseDeserialize(b) as WireAggregatorMessage,
      this.options.metadata(),
    ) as Call;
    this.call = call;
    this.welcomed = false;
    this.sentUpTo = 0;
    call.on('data', (m: WireAggregatorMessage) => this.onMessage(m));
    call.on('error', (err: grpc.ServiceError) =>
      this.onBroken(call, `${grpc.status[err.code] ?? err.code}: ${err.details || err.message}`),
    );
    call.on('end', () => this.onBroken(call, 'aggregator ended the stream'));
    call.write({ hello: this.options.hello() });
  }

  private onMessage(m: WireAggregatorMessage): void {
    const log = this.options.log;
    if (m.kind === 'welcome') {
      this.welcomed = true;
      this.backoff.reset();
      this.outbox.setMaxMessageBytes(m.welcome.maxMessageBytes ?? 0);
      // Before the acks: settling them may queue (and pump writes) a waiting window's next batches.
      this.sentUpTo = m.welcome.lastStoredSeq;
      this.outbox.welcomed(m.welcome.lastStoredSeq);
      this.outbox.acked(m.welcome.lastStoredSeq);
      log.info(
        {
          lastStoredSeq: m.welcome.lastStoredSeq,
          unacked: this.outbox.size,
          aggregatorVersion: m.welcome.aggregatorVersion,
          maxMessageBytes: m.welcome.maxMessageBytes,
        },
        'connected to the aggregator',
      );
      this.pump();
    } else if (m.kind === 'ack') {
      this.stats.acked++;
      if (m.ack.duplicate) this.stats.duplicates++;
      this.outbox.acked(m.ack.seq);
      // The ack freed room under the outbox's in-flight bound.
      this.pump();
    } else if (m.kind === 'reject') {
      this.stats.rejected++;
      const refused = this.outbox.rejected(m.reject.seq, m.reject.code);
      const recut = m.reject.code === 'VERDICT_INGEST_OVERSIZED' && refused?.kind === 'flowBatch';
      if (!recut) this.stats.dropped++;
      log.error(
        { seq: refused?.seq ?? m.reject.seq, code: m.reject.code, reason: m.reject.message },
        recut
          ? 'the aggregator refused a flow batch as too large; it is sent again in smaller pieces'
          : 'the aggregator rejected a message; it is dropped and will not be resent',
      );
      this.pump();
    }
  }

  private pump(): void {
    const call = this.call;
    if (!call || !this.welcomed || this.draining) return;
    for (const entry of this.outbox.sendable(this.sentUpTo)) {
      this.sentUpTo = entry.seq;
      this.stats.sent++;
      this.lastWriteMs = Date.now();
      const ok = call.write(entry.bytes);
      if (!ok) {
        this.draining = true;
        call.once('drain', () => {
          this.draining = false;
          this.pump();
        });
        return;
      }
    }
  }

  private onBroken(call: Call, why: string): void {
    if (call !== this.call) return;
    this.call = undefined;
    this.welcomed = false;
    this.draining = false;
    if (this.stopped) return;
    this.stats.reconnects++;
    const delay = this.backoff.next();
    this.options.log.warn(
      { why, retryInMs: delay, unacked: this.outbox.size },
      'stream to the aggregator broken; reconnecting',
    );
    this.retryTimer = setTimeout(() => this.connect(), delay);
    this.retryTimer.unref();
  }
}
