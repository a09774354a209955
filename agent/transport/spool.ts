import { createHash, randomUUID } from 'node:crypto';
import {
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { agentServiceDefinition } from '../../proto/index.js';
import type { FollowPosition } from '../flows/follow.js';
import { AGENT_DEFAULTS } from '../defaults.js';
import { AGENT_ERROR_CODES, agentError } from '../errors.js';

/** How far each flow source had been read when a batch was cut. */
export type SourcePositions = Record<string, FollowPosition>;

/** One encoded AgentMessage as the outbox keeps it. */
export interface SpooledMessage {
  seq: number;
  kind: 'flowBatch' | 'benchmarkRun';
  /** Flow records it carries (0 for a benchmark run): what is counted as dropped if it never arrives. */
  records: number;
  /** The encoded AgentMessage. */
  bytes: Buffer;
}

/**
 * A batch sent without being spooled (the spool disk was full): its seq and
 * the positions after its lines are in the state, so a restart resumes after
 * them instead of sending the same lines again under new seqs. If the
 * aggregator turns out not to have it, its records are counted as dropped.
 */
export interface UnspooledBatch {
  seq: number;
  records: number;
  positions: SourcePositions;
}

interface SpoolState {
  bootId: string;
  /** Every seq below this may have been used; a restart continues from here. */
  seqReservedUpTo: number;
  /** Source positions as of the last settled group. */
  positions: SourcePositions;
  /** The seq those positions came with: positions only ever move forward. */
  positionsSeq?: number;
  unspooled: UnspooledBatch[];
}

/** A group: the messages one flow window was cut into, written in one file so a crash keeps all or none. */
interface GroupFile {
  v: 2;
  /**
   * Positions after the window's lines; absent for a group re-cut from a refused batch (its lines were read long ago).
   */
  positions?: SourcePositions;
  messages: { seq: number; kind: SpooledMessage['kind']; records: number; b64: string }[];
}

/** Seqs reserved per state write: a restart skips at most this many (gaps are fine, repeats are not). */
const SEQ_BLOCK = AGENT_DEFAULTS.spool.seqBlockCount;
/**
 * The state lives in two fixed-size slots written in place, alternately, each
 * with a generation and a checksum. Writing over blocks a file already owns
 * needs no free space, so acknowledged positions and seq reservations are still
 * saved when the disk is full (on filesystems that overwrite in place: ext4,
 * xfs, tmpfs; copy-on-write ones such as btrfs may still refuse), and a torn
 * write leaves the other slot whole.
 */
const SLOT_BYTES = AGENT_DEFAULTS.spool.stateSlotBytes;
const UNSPOOLED_MAX = AGENT_DEFAULTS.spool.unspooledMaxCount;

/**
 * The agent's on-disk spool (`--spool DIR`): unacknowledged messages, grouped
 * per flow window with the source positions after the window's lines, plus the
 * agent's boot id and seq reservation. Together they make restarts exact:
 * messages not yet acked are sent again with their original (boot id, seq),
 * which the aggregator dedups, and sources resume right after the last line
 * that went into a batch. Group files are written to a temporary name and
 * renamed, so a crash leaves all of a window or none of it. Bounds are the
 * outbox's business: it tells the spool what to forget.
 */
export class Spool {
  private state: SpoolState;
  private generation = 0;
  private readonly groups = new Map<
    number,
    { file: string; seqs: Set<number>; lastSeq: number; positions?: SourcePositions }
  >();
  private readonly groupOf = new Map<number, number>();
  private nextSeq: number;

  private constructor(private readonly dir: string) {
    mkdirSync(join(dir, 'batches'), { recursive: true });
    for (const name of readdirSync(dir)) if (name.includes('.tmp-')) rmSync(join(dir, name), { force: true });
    this.state = this.readState() ?? { bootId: randomUUID(), seqReservedUpTo: 1, positions: {}, unspooled: [] };
    for (const name of readdirSync(join(dir, 'batches'))) {
      const file = join(dir, 'batches', name);
      if (name.includes('.tmp-')) {
        rmSync(file, { force: true }); // a write torn by a crash or a full disk
        continue;
      }
      const m = /^(\d+)\.json$/.exec(name);
      if (!m) continue;
      const g = readGroup(file);
      if (!g) {
        rmSync(file, { force: true }); // unreadable: a renamed file is always whole, so this is not ours to keep
        continue;
      }
      this.addGroup(
        Number(m[1]),
        file,
        g.messages.map((x) => x.seq),
        g.positions,
      );
    }
    const highest = Math.max(0, ...this.groupOf.keys());
    this.nextSeq = Math.max(this.state.seqReservedUpTo, highest + 1);
    this.reserve();
  }

  static open(dir: string): Spool {
    return new Spool(dir);
  }

  get bootId(): string {
    return this.state.bootId;
  }

  /** Batches sent without a spool file and not known to be stored, as the last run left them. */
  get unspooled(): readonly UnspooledBatch[] {
    return this.state.unspooled;
  }

  /**
   * Where each source should resume: after the newest group that has
   * positions, else the last settled one; and never before a batch that went
   * out unspooled (its lines may be stored already).
   */
  positions(): SourcePositions {
    let newest: SourcePositions | undefined;
    let at = this.state.positionsSeq ?? 0;
    for (const g of this.groups.values()) if (g.positions && g.lastSeq > at) [newest, at] = [g.positions, g.lastSeq];
    const fromUnspooled = [...this.state.unspooled].sort((a, b) => a.seq - b.seq).filter((u) => u.seq > at);
    return Object.assign(
      {},
      this.state.positions,
      newest ?? {},
      ...fromUnspooled.map((u) => u.positions),
    ) as SourcePositions;
  }

  /** Settle positions that came with `seq`, unless newer ones are settled already. */
  private advancePositions(seq: number, positions: SourcePositions): void {
    if (seq <= (this.state.positionsSeq ?? 0)) return;
    this.state.positions = { ...this.state.positions, ...positions };
    this.state.positionsSeq = seq;
  }

  /** The next seq of this boot id, persisted in blocks so a restart never reuses one. */
  takeSeq(): number {
    const seq = this.nextSeq++;
    if (this.nextSeq >= this.state.seqReservedUpTo) this.reserve();
    return seq;
  }

  /** Unacked messages, oldest first, to queue again after a restart. */
  pending(): SpooledMessage[] {
    const out: SpooledMessage[] = [];
    for (const g of this.groups.values()) {
      const parsed = readGroup(g.file);
      for (const m of parsed?.messages ?? [])
        if (g.seqs.has(m.seq))
          out.push({ seq: m.seq, kind: m.kind, records: m.records, bytes: Buffer.from(m.b64, 'base64') });
    }
    return out.sort((a, b) => a.seq - b.seq);
  }

  /**
   * Persist a window's messages (one group) before they are sent. Throws when the disk refuses; nothing is
   * half-written.
   */
  write(messages: SpooledMessage[], positions: SourcePositions | undefined): void {
    if (messages.length === 0) return;
    const first = messages[0]?.seq as number;
    const file = join(this.dir, 'batches', `${first}.json`);
    const body: GroupFile = {
      v: 2,
      ...(positions ? { positions } : {}),
      messages: messages.map((m) => ({
        seq: m.seq,
        kind: m.kind,
        records: m.records,
        b64: m.bytes.toString('base64'),
      })),
    };
    atomicWrite(file, JSON.stringify(body));
    this.addGroup(
      first,
      file,
      messages.map((m) => m.seq),
      positions,
    );
  }

  /**
   * A batch that went out without a spool file: remember its seq and positions in the state (which still saves on a
   * full disk).
   */
  noteUnspooled(batch: UnspooledBatch): void {
    this.state.unspooled = [...this.state.unspooled, batch].slice(-UNSPOOLED_MAX);
    this.saveState();
  }

  /**
   * After the Welcome: unspooled batches at or below what the aggregator
   * stored are settled; the rest are lost, and their records are answered to
   * be counted as dropped.
   */
  reconcileUnspooled(lastStoredSeq: number): number {
    if (this.state.unspooled.length === 0) return 0;
    const ordered = [...this.state.unspooled].sort((a, b) => a.seq - b.seq);
    const lost = ordered.filter((u) => u.seq > lastStoredSeq);
    // Sources resumed after these batches either way (see positions()): make that the settled position.
    for (const u of ordered) this.advancePositions(u.seq, u.positions);
    this.state.unspooled = [];
    this.saveState();
    return lost.reduce((n, u) => n + u.records, 0);
  }

  /**
   * The aggregator stored (or refused) this message, or the outbox dropped it: when its whole group is done, keep its
   * positions, forget the file.
   */
  settle(seq: number): void {
    const unspooledBefore = this.state.unspooled.length;
    const u = this.state.unspooled.find((x) => x.seq === seq);
    if (u) {
      this.advancePositions(u.seq, u.positions);
      this.state.unspooled = this.state.unspooled.filter((x) => x.seq !== seq);
    }
    const first = this.groupOf.get(seq);
    if (first === undefined) {
      if (this.state.unspooled.length !== unspooledBefore) this.saveState();
      return;
    }
    this.groupOf.delete(seq);
    const g = this.groups.get(first) as {
      file: string;
      seqs: Set<number>;
      lastSeq: number;
      positions?: SourcePositions;
    };
    g.seqs.delete(seq);
    if (g.seqs.size > 0) return;
    if (g.positions) this.advancePositions(g.lastSeq, g.positions);
    this.saveState();
    rmSync(g.file, { force: true });
    this.groups.delete(first);
  }

  private addGroup(first: number, file: string, seqs: number[], positions?: SourcePositions): void {
    this.groups.set(first, { file, seqs: new Set(seqs), lastSeq: Math.max(...seqs), positions });
    for (const s of seqs) this.groupOf.set(s, first);
  }

  private reserve(): void {
    this.state.seqReservedUpTo = this.nextSeq + SEQ_BLOCK;
    this.saveState();
  }

  private slot(i: number): string {
    return join(this.dir, `state.${i}`);
  }

  private readState(): SpoolState | undefined {
    let best: { gen: number; state: SpoolState } | undefined;
    for (const i of [0, 1]) {
      try {
        const text = readFileSync(this.slot(i), 'utf8').trimEnd();
        const { gen, sum, body } = JSON.parse(text) as { gen: number; sum: string; body: string };
        if (createHash('sha256').update(body).digest('hex') !== sum) continue;
        if (!best || gen > best.gen) best = { gen, state: JSON.parse(body) as SpoolState };
      } catch {
        // missing or torn: the other slot holds the state
      }
    }
    if (best) {
      this.generation = best.gen;
      return { ...best.state, unspooled: best.state.unspooled ?? [] };
    }
    // The state file of earlier versions.
    try {
      const old = JSON.parse(readFileSync(join(this.dir, 'state.json'), 'utf8')) as SpoolState;
      return { ...old, unspooled: old.unspooled ?? [] };
    } catch {
      return undefined;
    }
  }

  private saveState(): void {
    const body = JSON.stringify(this.state);
    const record = JSON.stringify({
      gen: this.generation + 1,
      sum: createHash('sha256').update(body).digest('hex'),
      body,
    });
    const bytes = Buffer.from(record);
    if (bytes.length > SLOT_BYTES)
      throw agentError(
        AGENT_ERROR_CODES.SPOOL_STATE_TOO_LARGE,
        `the spool state needs ${bytes.length} bytes, over ${SLOT_BYTES}; fewer flow sources or shorter paths`,
      );
    const padded = Buffer.alloc(SLOT_BYTES, 0x20);
    bytes.copy(padded);
    const path = this.slot((this.generation + 1) % 2);
    if (!existsSync(path) || statSync(path).size !== SLOT_BYTES) {
      // First write of this slot: it needs its blocks once; later writes reuse them.
      atomicWrite(path, padded);
    } else {
      const fd = openSync(path, 'r+');
      try {
        writeSync(fd, padded, 0, padded.length, 0);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
    }
    this.generation++;
  }
}

function readGroup(file: string): GroupFile | undefined {
  try {
    const raw = JSON.parse(readFileSync(file, 'utf8')) as Partial<GroupFile> & { seq?: number; batch?: unknown };
    if (raw.v === 2 && Array.isArray(raw.messages)) return raw as GroupFile;
    // One batch per file, as earlier versions spooled them: encode it as it would have been sent.
    if (typeof raw.seq === 'number' && raw.batch && typeof raw.batch === 'object') {
      const batch: Record<string, unknown> = { ...(raw.batch as Record<string, unknown>), seq: raw.seq };
      const bytes = agentServiceDefinition().Connect?.requestSerialize({ flowBatch: batch }) as Buffer;
      const records = Array.isArray(batch.records) ? batch.records.length : 0;
      return {
        v: 2,
        positions: raw.positions,
        messages: [{ seq: raw.seq, kind: 'flowBatch', records, b64: bytes.toString('base64') }],
      };
    }
    return undefined;
  } catch {
    return undefined;
  }
}

function atomicWrite(file: string, body: string | Buffer): void {
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    writeFileSync(tmp, body);
    renameSync(tmp, file);
  } catch (err) {
    rmSync(tmp, { force: true }); // a full disk must not leave empty temp files behind
    throw err;
  }
}
