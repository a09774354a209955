import type { BucketRow } from './flow-buckets.js';

/**
 * Bucket rows a group of flow batches grows to before it is written: some 100 ms of upserts here, the ack latency a
 * group adds to the batches that joined it first.
 */
export const FLOW_GROUP_MAX_ROWS = 20_000;

/** One agent message's flows, merged into bucket rows, waiting for its group's transaction. */
export interface FlowBatchWrite {
  node: string;
  bootId: string;
  seq: number;
  rows: BucketRow[];
  atMs: number;
}

export interface GroupCommitOptions {
  /** A group stops growing at this many bucket rows (one batch larger than that is a group alone). */
  maxRows: number;
  /** Groups in their transactions at once. */
  concurrency: number;
  /** The store cannot serve (an outage): every batch of a failed group fails, none is tried again alone. */
  isOutage: (err: unknown) => boolean;
}

interface Waiting {
  batch: FlowBatchWrite;
  resolve: (r: { duplicate: boolean }) => void;
  reject: (err: unknown) => void;
}

/**
 * Group commit of flow batches: the batches that arrive from many agent
 * streams while a transaction is being written wait, and then go in one
 * transaction together (the WAL or the server's commit is paid once a group,
 * not once a batch). Nothing waits for a time: an idle store starts a group
 * at the next turn of the event loop, with the batches whose messages had
 * arrived by then; under load, groups form from what arrived meanwhile.
 *
 * Each batch's promise settles only after its group's transaction committed
 * (or failed): a stream acks after that, so an ack still means "stored". A
 * group holds at most one batch per node, so each node's batches stay in
 * order, each in its own ledger row once. When a group fails and the store is
 * not out, its batches are written again one transaction each, so a batch the
 * store cannot take fails alone and the others are stored; when the store is
 * out, all fail and their streams end (the agents resend).
 */
export class GroupCommit {
  private readonly waiting: Waiting[] = [];
  private running = 0;
  /** A pump is due at the next turn of the event loop. */
  private due = false;

  constructor(
    private readonly write: (batches: FlowBatchWrite[]) => Promise<{ duplicate: boolean }[]>,
    private readonly options: GroupCommitOptions,
  ) {}

  submit(batch: FlowBatchWrite): Promise<{ duplicate: boolean }> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ batch, resolve, reject });
      this.pumpSoon();
    });
  }

  /**
   * Start groups at the next turn of the event loop (setImmediate: after the I/O that is ready now has been read).
   * The messages other streams have already sent are read, decoded and merged in that turn and join the group; a
   * group started at once would take this batch alone and hold the event loop, the others waiting behind it each for
   * a group of its own (bench/ingest: two groups in three of one batch, each commit writing about as many pages as a
   * group of 25 batches, profiled).
   */
  private pumpSoon(): void {
    if (this.due) return;
    this.due = true;
    setImmediate(() => {
      this.due = false;
      this.pump();
    });
  }

  private pump(): void {
    while (this.running < this.options.concurrency && this.waiting.length > 0) {
      const group = this.take();
      this.running++;
      void this.run(group).finally(() => {
        this.running--;
        this.pumpSoon();
      });
    }
  }

  /** The next group: waiting batches in arrival order up to maxRows, one per node (a node's next waits its turn). */
  private take(): Waiting[] {
    const group: Waiting[] = [];
    const nodes = new Set<string>();
    let rows = 0;
    for (let i = 0; i < this.waiting.length;) {
      const w = this.waiting[i]!;
      const n = w.batch.rows.length;
      if (group.length > 0 && rows + n > this.options.maxRows) break;
      if (nodes.has(w.batch.node)) {
        i++;
        continue;
      }
      nodes.add(w.batch.node);
      group.push(w);
      rows += n;
      this.waiting.splice(i, 1);
    }
    return group;
  }

  private async run(group: Waiting[]): Promise<void> {
    try {
      const out = await this.write(group.map((w) => w.batch));
      group.forEach((w, i) => w.resolve(out[i]!));
    } catch (err) {
      if (group.length === 1 || this.options.isOutage(err)) {
        for (const w of group) w.reject(err);
        return;
      }
      // One batch may be what the store refused: each alone, so only that one fails.
      for (const w of group) {
        try {
          w.resolve((await this.write([w.batch]))[0]!);
        } catch (alone) {
          w.reject(alone);
        }
      }
    }
  }
}
