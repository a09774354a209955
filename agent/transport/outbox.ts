import type { Logger } from 'pino';
import {
  agentServiceDefinition,
  type WireBenchmarkRun,
  type WireFlowBatch,
  type WireFlowRecord,
  type WireFlowSourceCounts,
} from '../../proto/index.js';
import { FlowBatchEncoder, messageSize, recordEntrySize } from './flow-batch-encoding.js';
import { Spool, type SourcePositions, type SpooledMessage } from './spool.js';
import { AGENT_DEFAULTS } from '../defaults.js';

/** A message as callers hand it in, before it is encoded. */
export type Outgoing =
  { kind: 'benchmarkRun'; benchmarkRun: WireBenchmarkRun } | { kind: 'flowBatch'; flowBatch: WireFlowBatch };

/**
 * A closed flow window, to be cut into FlowBatch messages: its records as WireFlowRecords, or as anything with a
 * conversion given to addFlowWindow (FlowCapture gives its FlowRecords and flowToWire, so a window's records are not
 * all copied at once: each wire record is made while it is sized or written, and is garbage right after).
 */
export interface FlowWindowOut<R = WireFlowRecord> {
  windowStartUnixMs: number;
  windowEndUnixMs: number;
  records: readonly R[];
  sources: WireFlowSourceCounts[];
  /** Records dropped before this window (a full window); the outbox adds its own drops. */
  droppedRecords: number;
}

export interface OutboxOptions {
  log: Logger;
  spool?: Spool;
  /**
   * Encoded bytes of unacked messages kept in memory, and the size of the spool on disk (its group files and state
   * slots); past either the oldest goes, counted.
   */
  maxBytes: number;
  /** Unacked messages kept; past it the oldest goes, counted. */
  maxMessages: number;
  /** Told when a message leaves the outbox. */
  onSettled?: (seq: number, outcome: 'acked' | 'rejected' | 'dropped') => void;
}

/** What an aggregator that does not say its limit (older versions) accepts. */
const DEFAULT_MAX_MESSAGE_BYTES = AGENT_DEFAULTS.outbox.defaultMaxMessageBytes;
/** Kept free in every FlowBatch for its header fields and source counts. */
const BATCH_HEADROOM = AGENT_DEFAULTS.outbox.batchHeadroomBytes;
const FLOW_BATCH_TARGET_BYTES = AGENT_DEFAULTS.outbox.flowBatchTargetBytes;

export interface OutboxStats {
  /** Messages queued (after cutting). */
  queued: number;
  acked: number;
  rejected: number;
  /** Messages dropped unsent: the outbox or spool was full, or the aggregator refused them. */
  dropped: number;
  /** Flow records in dropped messages, or too large to send alone; told upstream in the next batch. */
  droppedRecords: number;
  /** Refused-as-oversized batches cut smaller and queued again. */
  recut: number;
  /** Flow windows that could not be written to the spool and went out from memory only. */
  unspooled: number;
}

type Entry = SpooledMessage;

const serialize = (m: Record<string, unknown>): Buffer =>
  agentServiceDefinition().Connect?.requestSerialize(m) as Buffer;
const deserialize = (b: Buffer): Record<string, unknown> =>
  agentServiceDefinition().Connect?.requestDeserialize(b) as Record<string, unknown>;

/**
 * The agent's delivery: every rule about what is sent, kept, cut, dropped and
 * counted lives here, and the stream is only transport. It owns the seqs (the
 * spool's, so they survive restarts), keeps each message encoded until the
 * aggregator settles it, cuts flow windows into FlowBatches under the
 * aggregator's message limit, spools each window before it is sent, bounds
 * what it keeps by bytes and count (the oldest goes first), and counts every
 * record it drops so the next batch tells the aggregator.
 */
export class Outbox {
  readonly stats: OutboxStats = {
    queued: 0,
    acked: 0,
    rejected: 0,
    dropped: 0,
    droppedRecords: 0,
    recut: 0,
    unspooled: 0,
  };
  private readonly entries: Entry[] = [];
  private bytes = 0;
  private counter = 1;
  private maxMessageBytes = DEFAULT_MAX_MESSAGE_BYTES;
  /** Dropped records not yet carried by a batch (the spool keeps them too). */
  private untold: number;
  private readonly waiters: { seq: number; resolve: () => void }[] = [];
  private highestSeq = 0;
  /** Told when there is something new to send. */
  onQueued?: () => void;
  private readonly encoder = new FlowBatchEncoder();

  constructor(private readonly o: OutboxOptions) {
    this.untold = o.spool?.untold ?? 0;
    for (const m of o.spool?.pending() ?? []) this.push(m);
    // A restart with a smaller bound (or a spool of an earlier version, whose files were not counted).
    while (o.spool && o.spool.diskBytes > o.maxBytes && this.entries.length > 0)
      this.dropOldest('the spool is over --max-spool-bytes');
  }

  get size(): number {
    return this.entries.length;
  }

  get unackedBytes(): number {
    return this.bytes;
  }

  /** The aggregator's limit from Welcome (0: it did not say). */
  setMaxMessageBytes(n: number): void {
    this.maxMessageBytes = n > 0 ? n : DEFAULT_MAX_MESSAGE_BYTES;
  }

  /** After the Welcome: batches that went out unspooled before a restart and were not stored are counted as dropped. */
  welcomed(lastStoredSeq: number): void {
    if (!this.o.spool) return;
    try {
      const lost = this.o.spool.reconcileUnspooled(lastStoredSeq);
      if (lost.records > 0)
        this.countDropped(lost.records, 'flow batches sent before a restart without a spool file were not stored');
      this.carryForward(lost.dropped);
      if (lost.records + lost.dropped > 0) this.o.spool.persist();
    } catch (err) {
      this.o.log.error({ err: (err as Error).message }, 'cannot update the spool state');
    }
  }

  /** Queue a message built by the caller (a benchmark run, through the stream's `send`; tests). */
  add(build: (seq: number) => Outgoing): number {
    const seq = this.takeSeq();
    const msg = build(seq);
    const records = msg.kind === 'flowBatch' ? msg.flowBatch.records.length : 0;
    this.queue(
      [
        {
          seq,
          kind: msg.kind,
          records,
          bytes: serialize({ [msg.kind]: (msg as Record<string, unknown>)[msg.kind] }),
          dropped: msg.kind === 'flowBatch' ? msg.flowBatch.droppedRecords : 0,
        },
      ],
      undefined,
    );
    return seq;
  }

  /**
   * Cut a flow window into FlowBatches under the message limit, spool them as
   * one group with the source positions after the window's lines, and queue
   * them. A record too large to send even alone is dropped and counted. Answers
   * the seqs.
   */
  addFlowWindow(w: FlowWindowOut, positions: SourcePositions | undefined): number[];
  addFlowWindow<R>(
    w: FlowWindowOut<R>,
    positions: SourcePositions | undefined,
    toWire: (r: R) => WireFlowRecord,
  ): number[];
  addFlowWindow<R>(
    w: FlowWindowOut<R>,
    positions: SourcePositions | undefined,
    toWire: (r: R) => WireFlowRecord = (r) => r as WireFlowRecord,
  ): number[] {
    let dropped = w.droppedRecords + this.takeUntold();
    const target = Math.min(this.maxMessageBytes, FLOW_BATCH_TARGET_BYTES);
    const messages = this.encodeBatches(w.records, toWire, this.maxMessageBytes, target, (seq, first) => ({
      seq,
      windowStartUnixMs: w.windowStartUnixMs,
      windowEndUnixMs: w.windowEndUnixMs,
      // Counts go with the first batch of the window, once (with whatever cutting itself dropped; a first batch cut
      // again keeps what the earlier try took).
      sources: first ? w.sources : [],
      droppedRecords: first ? (dropped += this.takeUntold()) : 0,
    }));
    this.queue(messages, positions);
    return messages.map((m) => m.seq);
  }

  /** Unacked messages above `seq`, in order, for the transport to write. */
  *after(seq: number): Generator<Entry> {
    for (const e of this.entries) if (e.seq > seq) yield e;
  }

  /** Stored in order: an Ack for `seq` settles everything up to it. */
  acked(seq: number): void {
    this.settleThrough(seq, 'acked');
  }

  /**
   * The aggregator refused `seq` (0: the oldest in flight, which it could not
   * decode). A flow batch refused as oversized is cut smaller and queued again
   * under new seqs (it was not stored, so nothing is counted twice); anything
   * else refused is dropped and counted.
   */
  rejected(seq: number, code: string): Entry | undefined {
    const target = seq || this.entries[0]?.seq || 0;
    this.settleThrough(target - 1, 'acked');
    const head = this.entries[0];
    if (!head || head.seq !== target) return undefined;
    this.entries.shift();
    this.bytes -= head.bytes.length;
    this.stats.rejected++;
    this.o.onSettled?.(head.seq, 'rejected');
    // Not stored: the drops it told go with a later batch (the first piece, if it is cut again).
    this.carryForward(head.dropped);
    const recut = code === 'VERDICT_INGEST_OVERSIZED' && head.kind === 'flowBatch' && head.records > 0;
    if (!recut && head.records > 0) this.countDropped(head.records, `the aggregator refused a flow batch (${code})`);
    this.spoolSettle(head.seq);
    if (recut) this.recut(head);
    this.wake();
    return head;
  }

  /** Resolves once everything queued so far is settled. */
  flushed(): Promise<void> {
    const last = this.highestSeq;
    if (this.entries.length === 0 || (this.entries[0]?.seq ?? Infinity) > last) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ seq: last, resolve }));
  }

  private takeSeq(): number {
    return this.o.spool ? this.o.spool.takeSeq() : this.counter++;
  }

  private takeUntold(): number {
    const n = this.untold;
    this.untold = 0;
    return n;
  }

  /** Dropped records to tell with the next batch cut: counted here, or carried by a batch that never arrived. */
  private carryForward(n: number): void {
    if (n <= 0) return;
    this.untold += n;
    this.o.spool?.addUntold(n);
  }

  private countDropped(records: number, why: string): void {
    this.stats.droppedRecords += records;
    this.carryForward(records);
    this.o.log.warn(
      { records, droppedRecords: this.stats.droppedRecords },
      `dropped flow records: ${why}; the next batch tells the aggregator`,
    );
  }

  /**
   * Encode records as FlowBatches of at most `limit` bytes each, straight to bytes and one batch at a time
   * (flow-batch-encoding.ts): each record's encoded size is known before anything is written, so a batch is cut where
   * the next record would pass `target` (at most `limit`) less BATCH_HEADROOM and is encoded once into a buffer of its
   * exact size. A record over `target` goes alone; one that does not fit `limit` even alone is dropped and counted.
   * Seqs are taken in order, one per message.
   */
  private encodeBatches<R>(
    records: readonly R[],
    toWire: (r: R) => WireFlowRecord,
    limit: number,
    target: number,
    build: (seq: number, first: boolean) => Omit<WireFlowBatch, 'records'>,
  ): Entry[] {
    const enc = this.encoder;
    const sizes = new Float64Array(records.length);
    for (let i = 0; i < records.length; i++) sizes[i] = enc.recordSize(toWire(records[i] as R));
    const budget = Math.min(target, limit) - BATCH_HEADROOM;
    const pending: [number, number][] = [];
    let from = 0;
    let used = 0;
    for (let i = 0; i < records.length; i++) {
      const entry = recordEntrySize(sizes[i] as number);
      if (i > from && used + entry > budget) {
        pending.push([from, i]);
        [from, used] = [i, 0];
      }
      used += entry;
    }
    if (from < records.length || records.length === 0) pending.push([from, records.length]);
    const out: Entry[] = [];
    let seq: number | undefined;
    while (pending.length > 0) {
      const [a, b] = pending.shift() as [number, number];
      seq ??= this.takeSeq();
      const batch = build(seq, out.length === 0);
      let body = enc.headerSize(batch);
      for (let i = a; i < b; i++) body += recordEntrySize(sizes[i] as number);
      const size = messageSize(body);
      if (size <= limit) {
        const bytes = enc.encode(batch, records, a, b, sizes, toWire);
        out.push({ seq, kind: 'flowBatch', records: b - a, bytes, dropped: batch.droppedRecords });
        seq = undefined;
      } else if (b - a > 1) {
        const half = a + Math.ceil((b - a) / 2);
        pending.unshift([a, half], [half, b]);
      } else if (b - a === 1) {
        this.countDropped(1, `one flow record encodes to ${size} bytes, over the ${limit}-byte message limit`);
      }
    }
    // Every record dropped (or none to send): a batch with the counts alone, so they are told.
    if (out.length === 0) {
      seq ??= this.takeSeq();
      const batch = build(seq, true);
      const bytes = enc.encode(batch, records, 0, 0, sizes, toWire);
      out.push({ seq, kind: 'flowBatch', records: 0, bytes, dropped: batch.droppedRecords });
    }
    return out;
  }

  /**
   * A batch the aggregator found too large: cut it in pieces under half its size (or the known limit) and queue them.
   */
  private recut(e: Entry): void {
    const decoded = deserialize(e.bytes).flowBatch as WireFlowBatch | undefined;
    if (!decoded) return this.countDropped(e.records, 'a refused flow batch could not be decoded again');
    if (e.records < 2)
      return this.countDropped(e.records, 'a flow batch the aggregator found too large cannot be cut smaller');
    const limit = Math.min(this.maxMessageBytes, Math.floor(e.bytes.length / 2) + BATCH_HEADROOM);
    // What the refused batch told went back to the untold count (see rejected()): the first piece takes it.
    let dropped = 0;
    const { records: refused, ...header } = decoded;
    const messages = this.encodeBatches(
      refused,
      (r) => r,
      limit,
      limit,
      (seq, first) => ({
        ...header,
        seq,
        sources: first ? decoded.sources : [],
        droppedRecords: first ? (dropped += this.takeUntold()) : 0,
      }),
    );
    this.stats.recut++;
    this.o.log.warn(
      { seq: e.seq, bytes: e.bytes.length, pieces: messages.length },
      'the aggregator found a flow batch too large; sending it again in smaller pieces',
    );
    // Its lines were read long ago: the pieces carry no positions.
    this.queue(messages, undefined);
  }

  private queue(messages: Entry[], positions: SourcePositions | undefined): void {
    if (this.o.spool) this.spoolWrite(this.o.spool, messages, positions);
    for (const m of messages) this.push(m);
    this.onQueued?.();
  }

  /**
   * Write a group to the spool within its bound, the oldest messages dropped (counted) to make room: its file and
   * the state slots never take more than maxBytes on disk. A group that cannot fit even alone goes out from memory
   * only, like one the disk refuses.
   */
  private spoolWrite(spool: Spool, messages: Entry[], positions: SourcePositions | undefined): void {
    let body: Buffer;
    try {
      body = Spool.groupBody(messages, positions);
    } catch (err) {
      return this.unspooled(spool, messages, positions, (err as Error).message, 'cannot write to the spool');
    }
    const room = this.o.maxBytes - Spool.fixedBytes;
    if (body.length > room)
      return this.unspooled(
        spool,
        messages,
        positions,
        `its spool file needs ${body.length} bytes; --max-spool-bytes leaves ${Math.max(0, room)} beside the state`,
        'a flow window is too large for the spool',
      );
    while (spool.diskBytes + body.length > this.o.maxBytes && this.entries.length > 0)
      this.dropOldest('the spool was full (the aggregator has been unreachable or slow)');
    if (spool.diskBytes + body.length > this.o.maxBytes)
      return this.unspooled(spool, messages, positions, 'no room left in the spool', 'the spool is full');
    try {
      spool.write(messages, positions, body);
    } catch (err) {
      this.unspooled(spool, messages, positions, (err as Error).message, 'cannot write to the spool');
    }
  }

  /**
   * Messages that go out from memory only: a full or broken spool disk, or a window over the spool's bound. Their
   * seqs and positions go in the state (which saves in place, even on a full disk), so a restart neither resends
   * their lines under new seqs nor loses them uncounted.
   */
  private unspooled(
    spool: Spool,
    messages: Entry[],
    positions: SourcePositions | undefined,
    err: string,
    what: string,
  ): void {
    this.stats.unspooled++;
    this.o.log.error({ err, seqs: messages.map((m) => m.seq) }, `${what}; sending from memory only`);
    const dropped = messages.reduce((n, m) => n + m.dropped, 0);
    const last = messages[messages.length - 1];
    try {
      if (last && positions && last.kind === 'flowBatch') {
        const records = messages.reduce((n, m) => n + m.records, 0);
        spool.noteUnspooled({ seq: last.seq, records, positions, dropped });
      } else {
        // Nothing to remember it by: what it tells is out of the spool's untold count (lost if the agent stops first).
        spool.addUntold(-dropped);
      }
    } catch (err2) {
      this.o.log.error({ err: (err2 as Error).message }, 'cannot update the spool state either');
    }
  }

  private push(m: Entry): void {
    this.highestSeq = Math.max(this.highestSeq, m.seq);
    this.entries.push(m);
    if (this.entries.length > 1 && (this.entries[this.entries.length - 2] as Entry).seq > m.seq)
      this.entries.sort((a, b) => a.seq - b.seq);
    this.bytes += m.bytes.length;
    this.stats.queued++;
    while (this.entries.length > 1 && (this.bytes > this.o.maxBytes || this.entries.length > this.o.maxMessages))
      this.dropOldest('the outbox was full (the aggregator has been unreachable or slow)');
  }

  /** Drop the oldest unacked message: counted, its records and the drops it told carried to the next batch. */
  private dropOldest(why: string): void {
    const lost = this.entries.shift() as Entry;
    this.bytes -= lost.bytes.length;
    this.stats.dropped++;
    this.o.log.warn(
      { seq: lost.seq, kind: lost.kind, unackedBytes: this.bytes, why },
      'outbox full: dropped the oldest unacked message',
    );
    this.o.onSettled?.(lost.seq, 'dropped');
    // Counted before the spool forgets it, so the state saved as its group goes holds them.
    this.carryForward(lost.dropped);
    if (lost.records > 0) this.countDropped(lost.records, why);
    this.spoolSettle(lost.seq);
  }

  private settleThrough(seq: number, outcome: 'acked'): void {
    while (this.entries.length > 0 && (this.entries[0] as Entry).seq <= seq) {
      const done = this.entries.shift() as Entry;
      this.bytes -= done.bytes.length;
      this.stats.acked++;
      this.o.onSettled?.(done.seq, outcome);
      this.spoolSettle(done.seq);
    }
    this.wake();
  }

  private spoolSettle(seq: number): void {
    try {
      this.o.spool?.settle(seq);
    } catch (err) {
      this.o.log.error({ err: (err as Error).message, seq }, 'cannot record a settled message in the spool');
    }
  }

  private wake(): void {
    const head = this.entries[0]?.seq ?? Infinity;
    for (let i = this.waiters.length - 1; i >= 0; i--) {
      const w = this.waiters[i] as { seq: number; resolve: () => void };
      if (w.seq < head) {
        this.waiters.splice(i, 1);
        w.resolve();
      }
    }
  }
}
