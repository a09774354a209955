import { randomUUID } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FollowPosition } from '../flows/follow.js';
import type { WireFlowBatch } from '../../proto/index.js';

/** How far each flow source had been read when a batch was cut. */
export type SourcePositions = Record<string, FollowPosition>;

interface SpoolState {
  bootId: string;
  /** Every seq below this may have been used; a restart continues from here. */
  seqReservedUpTo: number;
  /** Source positions as of the last acknowledged batch. */
  positions: SourcePositions;
}

interface SpooledBatch {
  seq: number;
  batch: WireFlowBatch;
  positions: SourcePositions;
}

/** Seqs reserved per state write: a restart skips at most this many (gaps are fine, repeats are not). */
const SEQ_BLOCK = 1000;

/**
 * The agent's on-disk spool (`--spool DIR`): unacknowledged flow batches, each
 * with the source positions after its lines, plus the agent's boot id and seq
 * reservation. Together they make restarts exact: batches not yet acked are
 * sent again with their original (boot id, seq), which the aggregator
 * dedups, and sources resume right after the last line that went into a batch.
 * Files are written to a temporary name and renamed, so a crash leaves either
 * the old or the new file. Bounded by maxBytes: the oldest batch goes first,
 * and its records are counted as dropped.
 */
export class Spool {
  private state: SpoolState;
  private readonly batches = new Map<number, { file: string; bytes: number; records: number; positions: SourcePositions }>();
  private nextSeq: number;
  /** Records dropped to keep the spool under its bound, not yet told upstream. */
  droppedRecords = 0;

  private constructor(
    private readonly dir: string,
    private readonly maxBytes: number,
  ) {
    mkdirSync(join(dir, 'batches'), { recursive: true });
    const statePath = join(dir, 'state.json');
    let state: SpoolState | undefined;
    try {
      state = JSON.parse(readFileSync(statePath, 'utf8')) as SpoolState;
    } catch {
      state = undefined;
    }
    this.state = state ?? { bootId: randomUUID(), seqReservedUpTo: 1, positions: {} };
    for (const name of readdirSync(join(dir, 'batches'))) {
      const m = /^(\d+)\.json$/.exec(name);
      if (!m) continue;
      const file = join(dir, 'batches', name);
      try {
        const b = JSON.parse(readFileSync(file, 'utf8')) as SpooledBatch;
        this.batches.set(Number(m[1]), { file, bytes: statSync(file).size, records: b.batch.records.length, positions: b.positions });
      } catch {
        rmSync(file, { force: true }); // a torn temp write never gets the final name; anything else unreadable is useless
      }
    }
    const highest = Math.max(0, ...this.batches.keys());
    this.nextSeq = Math.max(this.state.seqReservedUpTo, highest + 1);
    this.reserve();
  }

  static open(dir: string, maxBytes = 64 * 1024 * 1024): Spool {
    return new Spool(dir, maxBytes);
  }

  get bootId(): string {
    return this.state.bootId;
  }

  /** Where each source should resume: after the newest spooled batch, else the last acked one. */
  positions(): SourcePositions {
    const newest = Math.max(0, ...this.batches.keys());
    return { ...this.state.positions, ...(this.batches.get(newest)?.positions ?? {}) };
  }

  /** The next seq of this boot id, persisted in blocks so a restart never reuses one. */
  takeSeq(): number {
    const seq = this.nextSeq++;
    if (this.nextSeq >= this.state.seqReservedUpTo) this.reserve();
    return seq;
  }

  /** Unacked batches, oldest first, to queue again after a restart. */
  pending(): { seq: number; batch: WireFlowBatch }[] {
    return [...this.batches.keys()].sort((a, b) => a - b).map((seq) => {
      const b = JSON.parse(readFileSync((this.batches.get(seq) as { file: string }).file, 'utf8')) as SpooledBatch;
      return { seq, batch: b.batch };
    });
  }

  /** Persist a batch before it is sent. Answers the seqs dropped to stay under the bound. */
  write(seq: number, batch: WireFlowBatch, positions: SourcePositions): number[] {
    const file = join(this.dir, 'batches', `${seq}.json`);
    const body = JSON.stringify({ seq, batch, positions } satisfies SpooledBatch);
    atomicWrite(file, body);
    this.batches.set(seq, { file, bytes: Buffer.byteLength(body), records: batch.records.length, positions });
    const dropped: number[] = [];
    let total = [...this.batches.values()].reduce((s, b) => s + b.bytes, 0);
    for (const old of [...this.batches.keys()].sort((a, b) => a - b)) {
      if (total <= this.maxBytes || old === seq) break;
      const b = this.batches.get(old) as { bytes: number; records: number };
      total -= b.bytes;
      this.droppedRecords += b.records;
      this.settle(old);
      dropped.push(old);
    }
    return dropped;
  }

  /** The aggregator stored (or refused) this batch: remember its positions, forget the file. */
  settle(seq: number): void {
    const b = this.batches.get(seq);
    if (!b) return;
    this.state.positions = { ...this.state.positions, ...b.positions };
    this.saveState();
    rmSync(b.file, { force: true });
    this.batches.delete(seq);
  }

  private reserve(): void {
    this.state.seqReservedUpTo = this.nextSeq + SEQ_BLOCK;
    this.saveState();
  }

  private saveState(): void {
    atomicWrite(join(this.dir, 'state.json'), JSON.stringify(this.state));
  }
}

function atomicWrite(file: string, body: string): void {
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, body);
  renameSync(tmp, file);
}
