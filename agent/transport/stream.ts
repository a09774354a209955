import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import {
  agentServiceDefinition,
  type WireAggregatorMessage,
  type WireBenchmarkRun,
  type WireFlowBatch,
  type WireHello,
} from '../../proto/index.js';

/** A message waiting for its Ack. */
export type Outgoing = { kind: 'benchmarkRun'; benchmarkRun: WireBenchmarkRun } | { kind: 'flowBatch'; flowBatch: WireFlowBatch };

export interface StreamOptions {
  /** HOST:PORT of the aggregator's gRPC listener. */
  address: string;
  credentials: grpc.ChannelCredentials;
  /** Called per connection so a rotated token file is re-read. */
  metadata: () => grpc.Metadata;
  hello: () => WireHello;
  log: Logger;
  /** Unacked messages kept; past this the oldest is dropped and counted. */
  maxUnacked: number;
  /** Send a heartbeat when nothing was written for this long, ms (0: never). */
  heartbeatMs?: number;
  /** First reconnect delay, doubled per failure up to maxBackoffMs. */
  minBackoffMs: number;
  maxBackoffMs: number;
  /** Where seqs come from (a spool persists them); a counter from 1 by default. */
  takeSeq?: () => number;
  /** Told when a message leaves the outbox: stored, refused for good, or dropped for room. */
  onSettled?: (seq: number, outcome: 'acked' | 'rejected' | 'dropped') => void;
}

export const DEFAULT_STREAM_OPTIONS = { maxUnacked: 1000, minBackoffMs: 500, maxBackoffMs: 30_000, heartbeatMs: 60_000 };

export interface StreamStats {
  sent: number;
  acked: number;
  duplicates: number;
  rejected: number;
  /** Unacked messages dropped because the outbox was full. */
  dropped: number;
  reconnects: number;
}

type Call = grpc.ClientDuplexStream<Record<string, unknown>, WireAggregatorMessage>;

/**
 * The agent's one stream to the aggregator. Every message gets the next seq of
 * this boot id and stays in the outbox until the aggregator acks it; after a
 * reconnect the Welcome says what is already stored and the rest is sent again,
 * in order. Writes respect back-pressure (`write()` false → wait for 'drain').
 */
export class AgentStream {
  readonly stats: StreamStats = { sent: 0, acked: 0, duplicates: 0, rejected: 0, dropped: 0, reconnects: 0 };
  private readonly client: grpc.Client;
  private readonly outbox: { seq: number; msg: Outgoing }[] = [];
  private nextSeq: number;
  private call?: Call;
  /** Seq of the last outbox entry written on the current call. */
  private sentUpTo = 0;
  private welcomed = false;
  private draining = false;
  private stopped = false;
  private backoffMs: number;
  private retryTimer?: NodeJS.Timeout;
  private readonly ackWaiters: { seq: number; resolve: () => void }[] = [];
  private highestSeq = 0;
  private lastWriteMs = 0;
  private heartbeatTimer?: NodeJS.Timeout;

  constructor(private readonly options: StreamOptions) {
    const Ctor = grpc.makeGenericClientConstructor(agentServiceDefinition(), 'AgentService');
    this.client = new Ctor(options.address, options.credentials, {
      'grpc.keepalive_time_ms': 30_000,
      'grpc.keepalive_timeout_ms': 10_000,
      'grpc.keepalive_permit_without_calls': 1,
    });
    this.nextSeq = 1;
    this.backoffMs = options.minBackoffMs;
  }

  get connected(): boolean {
    return this.welcomed;
  }

  get unacked(): number {
    return this.outbox.length;
  }

  start(): void {
    this.connect();
    const every = this.options.heartbeatMs ?? 0;
    if (every > 0) {
      this.heartbeatTimer = setInterval(() => {
        if (!this.call || !this.welcomed || this.draining || Date.now() - this.lastWriteMs < every) return;
        this.lastWriteMs = Date.now();
        this.call.write({ heartbeat: { sentUnixMs: Date.now() } });
      }, Math.max(1000, Math.floor(every / 2)));
      this.heartbeatTimer.unref();
    }
  }

  /** Queue a message; it is sent now if connected, else after the next Welcome. Answers its seq. */
  send(build: (seq: number) => Outgoing): number {
    const seq = this.options.takeSeq ? this.options.takeSeq() : this.nextSeq++;
    this.enqueue(seq, build(seq));
    return seq;
  }

  /** Queue a message whose seq was given before (a spooled batch after a restart). Seqs must rise. */
  enqueue(seq: number, msg: Outgoing): void {
    this.highestSeq = Math.max(this.highestSeq, seq);
    this.outbox.push({ seq, msg });
    this.outbox.sort((a, b) => a.seq - b.seq);
    while (this.outbox.length > this.options.maxUnacked) {
      const lost = this.outbox.shift() as { seq: number };
      this.stats.dropped++;
      this.options.log.warn({ seq: lost.seq, dropped: this.stats.dropped }, 'outbox full: dropped the oldest unacked message');
      this.options.onSettled?.(lost.seq, 'dropped');
    }
    this.pump();
  }

  /** Forget a queued message (its spool dropped it for room); counted as dropped. */
  discard(seq: number): void {
    const i = this.outbox.findIndex((e) => e.seq === seq);
    if (i < 0) return;
    this.outbox.splice(i, 1);
    this.stats.dropped++;
    this.forgetThrough(-1, 'acked'); // wakes flushed() waiters if that was the last one
  }

  /** Resolves once everything queued so far is acked (or dropped). */
  flushed(): Promise<void> {
    const last = this.highestSeq;
    if (this.outbox.length === 0 || (this.outbox[0]?.seq ?? Infinity) > last) return Promise.resolve();
    return new Promise((resolve) => this.ackWaiters.push({ seq: last, resolve }));
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
      (m: Record<string, unknown>) => agentServiceDefinition().Connect!.requestSerialize(m),
      (b: Buffer) => agentServiceDefinition().Connect!.responseDeserialize(b) as WireAggregatorMessage,
      this.options.metadata(),
    ) as Call;
    this.call = call;
    this.welcomed = false;
    this.sentUpTo = 0;
    call.on('data', (m: WireAggregatorMessage) => this.onMessage(m));
    call.on('error', (err: grpc.ServiceError) => this.onBroken(call, `${grpc.status[err.code] ?? err.code}: ${err.details || err.message}`));
    call.on('end', () => this.onBroken(call, 'aggregator ended the stream'));
    call.write({ hello: this.options.hello() });
  }

  private onMessage(m: WireAggregatorMessage): void {
    const log = this.options.log;
    if (m.kind === 'welcome') {
      this.welcomed = true;
      this.backoffMs = this.options.minBackoffMs;
      this.forgetThrough(m.welcome.lastStoredSeq, 'acked');
      log.info({ lastStoredSeq: m.welcome.lastStoredSeq, unacked: this.outbox.length, aggregatorVersion: m.welcome.aggregatorVersion }, 'connected to the aggregator');
      this.pump();
    } else if (m.kind === 'ack') {
      this.stats.acked++;
      if (m.ack.duplicate) this.stats.duplicates++;
      this.forgetThrough(m.ack.seq, 'acked');
    } else if (m.kind === 'reject') {
      // Seq 0: the aggregator could not decode what it got; it processes in order, so that is our oldest in flight.
      const seq = m.reject.seq || this.outbox[0]?.seq || 0;
      this.stats.rejected++;
      log.error({ seq, code: m.reject.code, reason: m.reject.message }, 'the aggregator rejected a message; it is dropped and will not be resent');
      this.forgetThrough(seq, 'rejected');
    }
  }

  /** Messages are stored in order, so an answer for `seq` settles everything up to it. */
  private forgetThrough(seq: number, outcome: 'acked' | 'rejected'): void {
    while (this.outbox.length > 0 && (this.outbox[0] as { seq: number }).seq <= seq) {
      const done = this.outbox.shift() as { seq: number };
      // Only the message named is refused; older ones were stored before it.
      this.options.onSettled?.(done.seq, done.seq === seq ? outcome : 'acked');
    }
    const head = this.outbox[0]?.seq ?? Infinity;
    for (let i = this.ackWaiters.length - 1; i >= 0; i--) {
      const w = this.ackWaiters[i] as { seq: number; resolve: () => void };
      if (w.seq < head) {
        this.ackWaiters.splice(i, 1);
        w.resolve();
      }
    }
  }

  private pump(): void {
    const call = this.call;
    if (!call || !this.welcomed || this.draining) return;
    for (const entry of this.outbox) {
      if (entry.seq <= this.sentUpTo) continue;
      this.sentUpTo = entry.seq;
      this.stats.sent++;
      this.lastWriteMs = Date.now();
      const ok = call.write({ [entry.msg.kind]: (entry.msg as Record<string, unknown>)[entry.msg.kind] });
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
    const delay = Math.round(this.backoffMs * (0.8 + Math.random() * 0.4));
    this.options.log.warn({ why, retryInMs: delay, unacked: this.outbox.length }, 'stream to the aggregator broken; reconnecting');
    this.backoffMs = Math.min(this.backoffMs * 2, this.options.maxBackoffMs);
    this.retryTimer = setTimeout(() => this.connect(), delay);
    this.retryTimer.unref();
  }
}
