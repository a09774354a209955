import type { Logger } from 'pino';
import {
  agentServiceDefinition,
  type WireBenchmarkRun,
  type WireFlowBatch,
  type WireFlowRecord,
  type WireFlowSourceCounts,
} from '../../proto/index.js';
import { FlowBatchEncoder, messageSize, recordEntrySize } from './flow-batch-encoding.js';
import { Spool, type GroupItem, type SourcePositions, type SpoolRef, type SpooledMessage } from './spool.js';
import { AGENT_DEFAULTS } from '../defaults.js';

/** A message as callers hand it in, before it is encoded. */
export type Outgoing =
  { kind: 'benchmarkRun'; benchmarkRun: WireBenchmarkRun } | { kind: 'flowBatch'; flowBatch: WireFlowBatch };

/**
 * A closed flow window, to be cut into FlowBatch messages: its records as WireFlowRecords, as anything with a
 * conversion given to addFlowWindow, or read by index (FlowCapture gives a closed FlowWindow's columns): a window's
 * records are not all made at once, each wire record is made while it is sized or written and is garbage right after.
 */
export interface FlowWindowOut<R = WireFlowRecord> {
  windowStartUnixMs: number;
  windowEndUnixMs: number;
  records: readonly R[] | IndexedRecords;
  sources: WireFlowSourceCounts[];
  /** Records dropped before this window (a full window); the outbox adds its own drops. */
  droppedRecords: number;
}

/** Records read one at a time by index (a closed FlowWindow's columns), each made as a WireFlowRecord when read. */
export interface IndexedRecords {
  readonly size: number;
  wire(i: number): WireFlowRecord;
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
  /**
   * Bytes sent and not yet acked: the stream is handed no more messages (sendable()) while this many are in flight, so
   * a window's batches reach gRPC as the aggregator acks the earlier ones instead of all at its close (issue 13: a
   * window's ~5 MB of batches, and gRPC's framed copy of each, were the agent's RSS peak). Without a spool, a flow
   * window's next batch is also encoded only while the unacked bytes are below this; with one, a window is encoded
   * whole at its close (the spool keeps a window whole before any of it is sent) but written to its group file a
   * batch at a time, and only the batches within this bound stay in memory: the others are read back from the file
   * when their turn comes. Absent: no bound, every message stays in memory.
   */
  maxInFlightBytes?: number;
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

/**
 * A message the outbox keeps until it is settled. Its bytes are in memory, or (a spooled window's batches past the
 * in-flight bound) only in its group file, read back when the message is to be sent.
 */
interface Entry {
  seq: number;
  kind: SpooledMessage['kind'];
  records: number;
  dropped: number;
  /** Encoded bytes. */
  size: number;
  bytes?: Buffer;
  /** Where the bytes lie in the spool, when they are not in memory. */
  ref?: SpoolRef;
  /** The flow window's bounds, for the batch that tells its records lost if its file cannot be read back. */
  window?: [number, number];
}

/** A window's next batch, cut and sized, under its seq, not yet encoded. */
interface Planned {
  seq: number;
  /** Its records, from a to b (exclusive). */
  a: number;
  b: number;
  batch: Omit<WireFlowBatch, 'records'>;
  size: number;
}

const entryOf = (m: SpooledMessage): Entry => ({ ...m, size: m.bytes.length });

/** A planned batch as its message is listed (and spooled) before it is encoded. */
const itemOf = (p: Planned): GroupItem => ({
  seq: p.seq,
  kind: 'flowBatch',
  records: p.b - p.a,
  dropped: p.batch.droppedRecords,
  size: p.size,
});

/**
 * A flow window cut into record ranges, encoded one batch at a time (next()): what is left of it waits here, as its
 * records, until its turn.
 */
interface WindowCut {
  records: IndexedRecords;
  /** Each record's encoded body size. */
  sizes: Float64Array;
  /** Record ranges not yet encoded, in order. */
  ranges: [number, number][];
  limit: number;
  build: (seq: number, first: boolean) => Omit<WireFlowBatch, 'records'>;
  /** Batches made from it so far. */
  made: number;
}

/** A window waiting for room (OutboxOptions.maxInFlightBytes), and the flushed() calls waiting for its end. */
interface PendingWindow {
  cut: WindowCut;
  waiters: { seq: number; resolve: () => void }[];
}

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
  /** Encoded bytes of the unacked messages, in memory or only in the spool. */
  private bytes = 0;
  /** Of those, the bytes held in memory. */
  private resident = 0;
  private counter = 1;
  private maxMessageBytes = DEFAULT_MAX_MESSAGE_BYTES;
  /** Dropped records not yet carried by a batch (the spool keeps them too). */
  private untold: number;
  private readonly waiters: { seq: number; resolve: () => void }[] = [];
  private highestSeq = 0;
  /** Told when there is something new to send. */
  onQueued?: () => void;
  /** A flow window whose batches are made as acks free room (maxInFlightBytes), if one waits. */
  private pending?: PendingWindow;
  private readonly encoder = new FlowBatchEncoder();
  /** Where a spooled window's batches that are not kept in memory are encoded, one at a time, to be written. */
  private scratch = Buffer.alloc(0);

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

  /** Encoded bytes of unacked messages held in memory (the rest are only in the spool until their turn). */
  get residentBytes(): number {
    return this.resident;
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
    const records = w.records;
    const indexed: IndexedRecords = Array.isArray(records)
      ? { size: records.length, wire: (i) => toWire(records[i] as R) }
      : (records as IndexedRecords);
    const cut = this.cut(indexed, this.maxMessageBytes, target, (seq, first) => ({
      seq,
      windowStartUnixMs: w.windowStartUnixMs,
      windowEndUnixMs: w.windowEndUnixMs,
      // Counts go with the first batch of the window, once (with whatever cutting itself dropped; a first batch cut
      // again keeps what the earlier try took).
      sources: first ? w.sources : [],
      droppedRecords: first ? (dropped += this.takeUntold()) : 0,
    }));
    if (this.o.spool) return this.addSpooled(this.o.spool, cut, positions, [w.windowStartUnixMs, w.windowEndUnixMs]);
    if (this.o.maxInFlightBytes === undefined) {
      const messages = this.encodeAll(cut);
      this.queue(messages, positions);
      return messages.map((m) => m.seq);
    }
    // At most one window waits as records: an older one (the aggregator has not acked it within a window) is
    // encoded whole now, so the bounds on what is kept (maxBytes, maxMessages) see it.
    this.finishPending();
    this.pending = { cut: cut, waiters: [] };
    return this.fill();
  }

  /** Unacked messages above `seq`, in order, their bytes read back from the spool where they are only there. */
  *after(seq: number): Generator<SpooledMessage> {
    for (const e of this.entries) if (e.seq > seq) yield this.load(e);
  }

  /**
   * What the transport may write now, having written everything up to `sent`: the messages above it, in order, while
   * the bytes written and not acked stay under maxInFlightBytes (always one when none are in flight).
   */
  *sendable(sent: number): Generator<SpooledMessage> {
    const bound = this.o.maxInFlightBytes ?? Infinity;
    let inFlight = 0;
    for (const e of this.entries) {
      if (e.seq <= sent) {
        inFlight += e.size;
        continue;
      }
      if (inFlight > 0 && inFlight >= bound) return;
      inFlight += e.size;
      yield this.load(e);
    }
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
  rejected(seq: number, code: string): { seq: number; kind: SpooledMessage['kind'] } | undefined {
    const target = seq || this.entries[0]?.seq || 0;
    this.settleThrough(target - 1, 'acked');
    const head = this.entries[0];
    if (!head || head.seq !== target) return undefined;
    this.entries.shift();
    this.forget(head);
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
    const pending = this.pending;
    // A window still waiting to be encoded: its last seq is known once its last batch is made (fill()).
    if (pending) return new Promise((resolve) => pending.waiters.push({ seq: Infinity, resolve }));
    const last = this.highestSeq;
    if (this.entries.length === 0 || (this.entries[0]?.seq ?? Infinity) > last) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ seq: last, resolve }));
  }

  /**
   * Encode the waiting window's next batches while the unacked bytes are under maxInFlightBytes, and queue them.
   * Answers their seqs.
   */
  private fill(): number[] {
    const p = this.pending;
    const made: SpooledMessage[] = [];
    while (p && this.pending === p && this.bytes < (this.o.maxInFlightBytes ?? Infinity)) {
      const e = this.next(p.cut);
      if (e) {
        made.push(e);
        this.push(entryOf(e));
      }
      if (!e || (p.cut.ranges.length === 0 && p.cut.made > 0)) this.endPending();
    }
    if (made.length > 0) this.onQueued?.();
    return made.map((m) => m.seq);
  }

  /** Encode what is left of the waiting window, all of it, and queue it. */
  private finishPending(): void {
    const p = this.pending;
    if (!p) return;
    const messages = this.encodeAll(p.cut);
    for (const m of messages) this.push(entryOf(m));
    this.endPending();
    if (messages.length > 0) this.onQueued?.();
  }

  /** The waiting window is all encoded: flushed() calls made while it waited now wait for its last seq. */
  private endPending(): void {
    const p = this.pending;
    if (!p) return;
    this.pending = undefined;
    for (const w of p.waiters) this.waiters.push({ seq: this.highestSeq, resolve: w.resolve });
    this.wake();
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
   * Cut records into FlowBatches of at most `limit` bytes each, to be encoded straight to bytes one batch at a time
   * (flow-batch-encoding.ts): each record's encoded size is known before anything is written, so a batch is cut where
   * the next record would pass `target` (at most `limit`) less BATCH_HEADROOM and is encoded once into a buffer of its
   * exact size. A record over `target` goes alone; one that does not fit `limit` even alone is dropped and counted
   * when its turn comes (next()).
   */
  private cut(
    records: IndexedRecords,
    limit: number,
    target: number,
    build: (seq: number, first: boolean) => Omit<WireFlowBatch, 'records'>,
  ): WindowCut {
    const enc = this.encoder;
    const n = records.size;
    const sizes = new Float64Array(n);
    for (let i = 0; i < n; i++) sizes[i] = enc.recordSize(records.wire(i));
    const budget = Math.min(target, limit) - BATCH_HEADROOM;
    const ranges: [number, number][] = [];
    let from = 0;
    let used = 0;
    for (let i = 0; i < n; i++) {
      const entry = recordEntrySize(sizes[i] as number);
      if (i > from && used + entry > budget) {
        ranges.push([from, i]);
        [from, used] = [i, 0];
      }
      used += entry;
    }
    if (from < n) ranges.push([from, n]);
    return { records, sizes, ranges, limit, build, made: 0 };
  }

  /**
   * The cut's next batch, cut and sized, under a new seq (seqs are taken in order, one per message, as batches are
   * planned, so a message queued meanwhile never sits between two of a window's seqs out of order). When every record
   * was dropped (or there were none), one batch with the counts alone, so they are told. Undefined when all is made.
   */
  private plan(c: WindowCut): Planned | undefined {
    const enc = this.encoder;
    let seq: number | undefined;
    while (c.ranges.length > 0) {
      const [a, b] = c.ranges.shift() as [number, number];
      seq ??= this.takeSeq();
      const batch = c.build(seq, c.made === 0);
      let body = enc.headerSize(batch);
      for (let i = a; i < b; i++) body += recordEntrySize(c.sizes[i] as number);
      const size = messageSize(body);
      if (size <= c.limit) {
        c.made++;
        return { seq, a, b, batch, size };
      } else if (b - a > 1) {
        const half = a + Math.ceil((b - a) / 2);
        c.ranges.unshift([a, half], [half, b]);
      } else if (b - a === 1) {
        this.countDropped(1, `one flow record encodes to ${size} bytes, over the ${c.limit}-byte message limit`);
      }
    }
    if (c.made > 0) return undefined;
    seq ??= this.takeSeq();
    const batch = c.build(seq, true);
    c.made++;
    return { seq, a: 0, b: 0, batch, size: messageSize(enc.headerSize(batch)) };
  }

  /** A planned batch's bytes: in a buffer of its own, or in the outbox's scratch buffer, to be used at once. */
  private encodePlanned(c: WindowCut, p: Planned, inScratch = false): Buffer {
    if (inScratch && this.scratch.length < p.size)
      this.scratch = Buffer.allocUnsafe(Math.max(p.size, 2 * this.scratch.length));
    return this.encoder.encode(
      p.batch,
      p.a,
      p.b,
      c.sizes,
      (i) => c.records.wire(i),
      inScratch ? this.scratch : undefined,
    );
  }

  /** The cut's next batch, encoded (see plan()). */
  private next(c: WindowCut): SpooledMessage | undefined {
    const p = this.plan(c);
    return p && { ...itemOf(p), bytes: this.encodePlanned(c, p) };
  }

  /** Every batch of a cut, encoded now. */
  private encodeAll(c: WindowCut): SpooledMessage[] {
    const out: SpooledMessage[] = [];
    for (let e = this.next(c); e; e = this.next(c)) out.push(e);
    return out;
  }

  /**
   * A batch the aggregator found too large: cut it in pieces under half its size (or the known limit) and queue them.
   */
  private recut(e: Entry): void {
    const decoded = deserialize(this.load(e).bytes).flowBatch as WireFlowBatch | undefined;
    if (!decoded) return this.countDropped(e.records, 'a refused flow batch could not be decoded again');
    if (e.records < 2)
      return this.countDropped(e.records, 'a flow batch the aggregator found too large cannot be cut smaller');
    const limit = Math.min(this.maxMessageBytes, Math.floor(e.size / 2) + BATCH_HEADROOM);
    // What the refused batch told went back to the untold count (see rejected()): the first piece takes it.
    let dropped = 0;
    const { records: refused, ...header } = decoded;
    const messages = this.encodeAll(
      this.cut({ size: refused.length, wire: (i) => refused[i] as WireFlowRecord }, limit, limit, (seq, first) => ({
        ...header,
        seq,
        sources: first ? decoded.sources : [],
        droppedRecords: first ? (dropped += this.takeUntold()) : 0,
      })),
    );
    this.stats.recut++;
    this.o.log.warn(
      { seq: e.seq, bytes: e.size, pieces: messages.length },
      'the aggregator found a flow batch too large; sending it again in smaller pieces',
    );
    // Its lines were read long ago: the pieces carry no positions.
    this.queue(messages, undefined);
  }

  private queue(messages: SpooledMessage[], positions: SourcePositions | undefined): void {
    if (this.o.spool) this.spoolWrite(this.o.spool, messages, positions);
    for (const m of messages) this.push(entryOf(m));
    this.onQueued?.();
  }

  /**
   * A window's batches with a spool: all planned (seqs and sizes) at once, then encoded one at a time as its group
   * file is written; those that fit in memory beside what is held already (maxInFlightBytes) are kept, the others are
   * read back from the file when the stream can take them (sendable()). When the spool cannot take the window, it is
   * encoded whole and goes out from memory only, as before.
   */
  private addSpooled(
    spool: Spool,
    cut: WindowCut,
    positions: SourcePositions | undefined,
    window: [number, number],
  ): number[] {
    const plans: Planned[] = [];
    for (let p = this.plan(cut); p; p = this.plan(cut)) plans.push(p);
    const items = plans.map(itemOf);
    let refs: SpoolRef[] | undefined;
    const kept: (Buffer | undefined)[] = [];
    if (this.makeRoom(spool, items, positions)) {
      let room = (this.o.maxInFlightBytes ?? Infinity) - this.resident;
      try {
        refs = spool.writeEach(items, positions, (i) => {
          // A batch not kept is only written to the file: it is encoded in the scratch buffer, not a buffer of its own.
          const keep = room > 0;
          const bytes = this.encodePlanned(cut, plans[i] as Planned, !keep);
          if (keep) kept[i] = bytes;
          room -= bytes.length;
          return bytes;
        });
      } catch (err) {
        this.unspooled(spool, items, positions, (err as Error).message, 'cannot write to the spool');
      }
    }
    for (const [i, m] of items.entries()) {
      // Without a group file (no room, or the disk refused it), every batch goes from memory only.
      const bytes = refs ? kept[i] : this.encodePlanned(cut, plans[i] as Planned);
      this.push(bytes ? { ...m, bytes } : { ...m, ref: refs?.[i], window });
    }
    this.onQueued?.();
    return items.map((m) => m.seq);
  }

  /**
   * Write a group to the spool within its bound, the oldest messages dropped (counted) to make room: its file and
   * the state slots never take more than maxBytes on disk. A group that cannot fit even alone goes out from memory
   * only, like one the disk refuses.
   */
  private spoolWrite(spool: Spool, messages: SpooledMessage[], positions: SourcePositions | undefined): void {
    const items = messages.map((m) => entryOf(m));
    if (!this.makeRoom(spool, items, positions)) return;
    try {
      spool.write(messages, positions);
    } catch (err) {
      this.unspooled(spool, items, positions, (err as Error).message, 'cannot write to the spool');
    }
  }

  /**
   * Room in the spool for a group, the oldest messages dropped (counted) to make it: false (the group noted as going
   * out from memory only) when it cannot fit even alone or when nothing is left to drop.
   */
  private makeRoom(spool: Spool, items: GroupItem[], positions: SourcePositions | undefined): boolean {
    const bytes = Spool.groupBytes(items, positions);
    const room = this.o.maxBytes - Spool.fixedBytes;
    if (bytes > room) {
      this.unspooled(
        spool,
        items,
        positions,
        `its spool file needs ${bytes} bytes; --max-spool-bytes leaves ${Math.max(0, room)} beside the state`,
        'a flow window is too large for the spool',
      );
      return false;
    }
    while (spool.diskBytes + bytes > this.o.maxBytes && this.entries.length > 0)
      this.dropOldest('the spool was full (the aggregator has been unreachable or slow)');
    if (spool.diskBytes + bytes > this.o.maxBytes) {
      this.unspooled(spool, items, positions, 'no room left in the spool', 'the spool is full');
      return false;
    }
    return true;
  }

  /**
   * Messages that go out from memory only: a full or broken spool disk, or a window over the spool's bound. Their
   * seqs and positions go in the state (which saves in place, even on a full disk), so a restart neither resends
   * their lines under new seqs nor loses them uncounted.
   */
  private unspooled(
    spool: Spool,
    messages: GroupItem[],
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
    this.bytes += m.size;
    if (m.bytes) this.resident += m.bytes.length;
    this.stats.queued++;
    while (this.entries.length > 1 && (this.bytes > this.o.maxBytes || this.entries.length > this.o.maxMessages))
      this.dropOldest('the outbox was full (the aggregator has been unreachable or slow)');
  }

  /** Drop the oldest unacked message: counted, its records and the drops it told carried to the next batch. */
  private dropOldest(why: string): void {
    const lost = this.entries.shift() as Entry;
    this.forget(lost);
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
      this.forget(done);
      this.stats.acked++;
      this.o.onSettled?.(done.seq, outcome);
      this.spoolSettle(done.seq);
    }
    this.wake();
    if (this.pending) this.fill();
  }

  /** A message leaves the outbox: its bytes are no longer counted. */
  private forget(e: Entry): void {
    this.bytes -= e.size;
    if (e.bytes) this.resident -= e.bytes.length;
  }

  /**
   * A message with its bytes, read back from its group file when they are only there. Bytes that cannot be read
   * (the file removed or damaged under the agent) are replaced by a batch of the same seq that carries no records and
   * tells the aggregator they were dropped: counted, logged, and the seqs stay in order.
   */
  private load(e: Entry): SpooledMessage {
    if (!e.bytes) {
      try {
        e.bytes = (this.o.spool as Spool).read(e.ref as SpoolRef);
      } catch (err) {
        const [windowStartUnixMs, windowEndUnixMs] = e.window ?? [0, 0];
        const droppedRecords = e.dropped + e.records;
        this.stats.droppedRecords += e.records;
        this.o.log.error(
          { seq: e.seq, records: e.records, err: (err as Error).message },
          'a spooled flow batch cannot be read back; it is sent as its count of dropped records',
        );
        e.bytes = serialize({
          flowBatch: { seq: e.seq, windowStartUnixMs, windowEndUnixMs, records: [], sources: [], droppedRecords },
        });
        [e.records, e.dropped] = [0, droppedRecords];
        this.bytes += e.bytes.length - e.size;
        e.size = e.bytes.length;
      }
      e.ref = undefined;
      this.resident += e.bytes.length;
    }
    return e as SpooledMessage;
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
