import { createHash, randomUUID } from 'node:crypto';
import {
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
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
  /**
   * Dropped records this message tells the aggregator (a FlowBatch's droppedRecords): if it is dropped or refused
   * in turn, they are told by a later batch instead.
   */
  dropped: number;
}

/** A message as a group file lists it, before its bytes are made: its encoded size stands for them. */
export type GroupItem = Omit<SpooledMessage, 'bytes'> & { size: number };

/** A message found in the spool at start: its bytes, or where they lie in its group file. */
export type PendingMessage = GroupItem & ({ bytes: Buffer; ref?: undefined } | { ref: SpoolRef; bytes?: undefined });

/** Where a spooled message's bytes lie in its group file: `size` bytes, as base64 from `offset`. */
export interface SpoolRef {
  file: string;
  offset: number;
  size: number;
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
  /** Dropped records its group told the aggregator: told again by a later batch if it turns out lost. */
  dropped?: number;
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
  /** Dropped records counted and not yet carried by any spooled message: the next batch cut tells them. */
  untold?: number;
  /**
   * The newest group whose carried dropped count is already taken out of `untold`: a group above it that carries
   * some was written just before a crash, before the state was saved, and is taken out at the next open.
   */
  untoldSeq?: number;
  /**
   * The newest seq settled. The outbox settles in seq order (always its oldest message), so every spooled message
   * at or below it is settled: a restart does not send again one dropped from a group whose others are unsettled.
   */
  settledThrough?: number;
}

/** A group: the messages one flow window was cut into, written in one file so a crash keeps all or none. */
interface GroupFile {
  v: 2;
  /**
   * Positions after the window's lines; absent for a group re-cut from a refused batch (its lines were read long ago).
   */
  positions?: SourcePositions;
  messages: { seq: number; kind: SpooledMessage['kind']; records: number; b64: string; dropped?: number }[];
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

type Group = { file: string; seqs: Set<number>; lastSeq: number; positions?: SourcePositions; bytes: number };

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
  private readonly groups = new Map<number, Group>();
  private readonly groupOf = new Map<number, number>();
  private nextSeq: number;
  /** Size of the group files on disk. */
  private groupBytes = 0;
  /** A state.json of an earlier version, removed once the state is saved in its slots. */
  private legacyState = false;
  /** `untold` as last saved. */
  private savedUntold: number;

  private constructor(private readonly dir: string) {
    mkdirSync(join(dir, 'batches'), { recursive: true });
    for (const name of readdirSync(dir)) if (name.includes('.tmp-')) rmSync(join(dir, name), { force: true });
    this.state = this.readState() ?? { bootId: randomUUID(), seqReservedUpTo: 1, positions: {}, unspooled: [] };
    this.savedUntold = this.state.untold ?? 0;
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
      const first = Number(m[1]);
      const seqs = g.messages.map((x) => x.seq).filter((s) => s > (this.state.settledThrough ?? 0));
      if (seqs.length === 0) {
        rmSync(file, { force: true }); // settled (and its positions saved) just before a crash
        continue;
      }
      this.addGroup(first, file, seqs, g.positions, statSync(file).size);
      // Written, with dropped records taken from `untold`, just before a crash left the state unsaved.
      const carried = g.messages.reduce((n, x) => n + (x.dropped ?? 0), 0);
      if (carried > 0 && first > (this.state.untoldSeq ?? 0))
        this.state.untold = Math.max(0, (this.state.untold ?? 0) - carried);
    }
    const highest = Math.max(0, ...this.groupOf.keys());
    this.nextSeq = Math.max(this.state.seqReservedUpTo, highest + 1);
    this.reserve();
  }

  static open(dir: string): Spool {
    return new Spool(dir);
  }

  /** Bytes the spool always takes on disk: the two state slots. */
  static readonly fixedBytes = 2 * SLOT_BYTES;

  /** Bytes the spool takes on disk: its state slots and group files (what `--max-spool-bytes` bounds). */
  get diskBytes(): number {
    return Spool.fixedBytes + this.groupBytes;
  }

  /** Dropped records counted and not yet carried by a spooled message, as the last run left them. */
  get untold(): number {
    return this.state.untold ?? 0;
  }

  /**
   * Dropped records counted (or carried by a message that was dropped or refused): kept in the state, saved with
   * the next state write (settling the message that carried them saves it).
   */
  addUntold(n: number): void {
    this.state.untold = Math.max(0, (this.state.untold ?? 0) + n);
  }

  /** Save the state now (after `addUntold` with no settle to save it). */
  persist(): void {
    this.saveState();
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

  /**
   * Unacked messages, oldest first, to queue again after a restart: each with where its bytes lie in its group file,
   * read back when it is to be sent (a spool filled during an outage is not held in memory at start), or with its
   * bytes, from a file whose layout is not the one `writeEach` writes (an earlier version's).
   */
  pending(): PendingMessage[] {
    const out: PendingMessage[] = [];
    for (const g of this.groups.values()) {
      let raw: Buffer;
      try {
        raw = readFileSync(g.file);
      } catch {
        continue;
      }
      const parsed = parseGroup(raw);
      // An earlier version's one-batch file is converted as it is parsed: nothing in its bytes is found, so kept.
      const at = parsed ? locateMessages(raw, parsed.messages) : [];
      for (const [i, m] of (parsed?.messages ?? []).entries()) {
        if (!g.seqs.has(m.seq)) continue;
        const size = Buffer.byteLength(m.b64, 'base64');
        const offset = at[i];
        out.push({
          seq: m.seq,
          kind: m.kind,
          records: m.records,
          dropped: m.dropped ?? carriedIn(m.kind, m.b64),
          size,
          ...(offset === undefined ? { bytes: Buffer.from(m.b64, 'base64') } : { ref: { file: g.file, offset, size } }),
        });
      }
    }
    return out.sort((a, b) => a.seq - b.seq);
  }

  /**
   * Bytes of a group's file as `write` writes it (what the group takes on disk), worked out from the messages' sizes
   * without building it: a window's file is several MB of base64 in JSON, which the spool never holds in memory whole.
   */
  static groupBytes(items: readonly GroupItem[], positions: SourcePositions | undefined): number {
    const [head, tail] = groupFrame(positions);
    let n = Buffer.byteLength(head) + Buffer.byteLength(tail) + Math.max(0, items.length - 1);
    for (const m of items) {
      const [before, after] = messageFrame(m);
      n += Buffer.byteLength(before) + base64Length(m.size) + Buffer.byteLength(after);
    }
    return n;
  }

  /** Persist a window's messages, already encoded (one group) before they are sent: see writeEach. */
  write(messages: readonly SpooledMessage[], positions: SourcePositions | undefined): void {
    this.writeEach(
      messages.map((m) => ({ seq: m.seq, kind: m.kind, records: m.records, dropped: m.dropped, size: m.bytes.length })),
      positions,
      (i) => (messages[i] as SpooledMessage).bytes,
    );
  }

  /**
   * Persist a window's messages (one group) before they are sent, each encoded only when its turn to be written comes
   * (`bytesOf(i)`, which must answer `items[i].size` bytes), so the caller need not hold the window's batches at once.
   * Throws when the disk refuses; nothing is half-written. The dropped records the messages carry are taken out of
   * `untold`. The file is the JSON of a GroupFile, written a message at a time to a temporary name renamed when whole.
   * Answers where each message's bytes lie in the file, for `read`.
   */
  writeEach(
    items: readonly GroupItem[],
    positions: SourcePositions | undefined,
    bytesOf: (i: number) => Buffer,
  ): SpoolRef[] {
    if (items.length === 0) return [];
    const first = items[0]?.seq as number;
    const file = join(this.dir, 'batches', `${first}.json`);
    const refs: SpoolRef[] = [];
    const bytes = atomicWriteParts(file, function* () {
      const [head, tail] = groupFrame(positions);
      let offset = 0;
      const part = (s: string): string => {
        offset += Buffer.byteLength(s);
        return s;
      };
      yield part(head);
      for (const [i, m] of items.entries()) {
        const [before, after] = messageFrame(m);
        yield part(i > 0 ? `,${before}` : before);
        const body = bytesOf(i);
        if (body.length !== m.size) throw new Error(`message ${m.seq} encodes to ${body.length} bytes, not ${m.size}`);
        refs.push({ file, offset, size: m.size });
        yield part(body.toString('base64'));
        yield part(after);
      }
      yield tail;
    });
    this.addGroup(
      first,
      file,
      items.map((m) => m.seq),
      positions,
      bytes,
    );
    const carried = items.reduce((n, m) => n + m.dropped, 0);
    if (carried > 0) {
      this.state.untold = Math.max(0, (this.state.untold ?? 0) - carried);
      this.state.untoldSeq = first;
    }
    // Also when records were dropped while the window was cut (too large even alone), after its first batch: the
    // group's lines are taken, so a restart before the next state write would never tell them.
    if (carried > 0 || (this.state.untold ?? 0) !== this.savedUntold) this.saveState();
    return refs;
  }

  /** A spooled message's bytes read back from its group file (`writeEach`'s answer). Throws when they cannot be. */
  read(ref: SpoolRef): Buffer {
    const b64 = Buffer.allocUnsafe(base64Length(ref.size));
    const fd = openSync(ref.file, 'r');
    try {
      for (let got = 0; got < b64.length;) {
        const n = readSync(fd, b64, got, b64.length - got, ref.offset + got);
        if (n === 0) throw new Error(`${ref.file} ends before the message at byte ${ref.offset}`);
        got += n;
      }
    } finally {
      closeSync(fd);
    }
    const out = Buffer.from(b64.toString('latin1'), 'base64');
    if (out.length !== ref.size)
      throw new Error(`${ref.file} holds ${out.length} bytes at ${ref.offset}, not the ${ref.size} written there`);
    return out;
  }

  /**
   * A batch that went out without a spool file: remember its seq and positions in the state (which still saves on a
   * full disk).
   */
  noteUnspooled(batch: UnspooledBatch): void {
    const kept = [...this.state.unspooled, batch];
    const forgotten = kept.slice(0, -UNSPOOLED_MAX);
    this.state.unspooled = kept.slice(-UNSPOOLED_MAX);
    // What it carries is out of `untold` while it may be stored; one forgotten unknown is told again (at worst twice).
    this.state.untold = Math.max(
      0,
      (this.state.untold ?? 0) - (batch.dropped ?? 0) + forgotten.reduce((n, u) => n + (u.dropped ?? 0), 0),
    );
    this.saveState();
  }

  /**
   * After the Welcome: unspooled batches at or below what the aggregator
   * stored are settled; the rest are lost, and their records are answered to
   * be counted as dropped.
   */
  reconcileUnspooled(lastStoredSeq: number): { records: number; dropped: number } {
    if (this.state.unspooled.length === 0) return { records: 0, dropped: 0 };
    const ordered = [...this.state.unspooled].sort((a, b) => a.seq - b.seq);
    const lost = ordered.filter((u) => u.seq > lastStoredSeq);
    // Sources resumed after these batches either way (see positions()): make that the settled position.
    for (const u of ordered) this.advancePositions(u.seq, u.positions);
    this.state.unspooled = [];
    this.saveState();
    return {
      records: lost.reduce((n, u) => n + u.records, 0),
      dropped: lost.reduce((n, u) => n + (u.dropped ?? 0), 0),
    };
  }

  /**
   * The aggregator stored (or refused) this message, or the outbox dropped it: when its whole group is done, keep its
   * positions, forget the file.
   */
  settle(seq: number): void {
    this.state.settledThrough = Math.max(this.state.settledThrough ?? 0, seq);
    // Dropped records counted with this message (it was dropped or refused) are saved with it.
    const untoldChanged = (this.state.untold ?? 0) !== this.savedUntold;
    const unspooledBefore = this.state.unspooled.length;
    const u = this.state.unspooled.find((x) => x.seq === seq);
    if (u) {
      this.advancePositions(u.seq, u.positions);
      this.state.unspooled = this.state.unspooled.filter((x) => x.seq !== seq);
    }
    const first = this.groupOf.get(seq);
    if (first === undefined) {
      if (this.state.unspooled.length !== unspooledBefore || untoldChanged) this.saveState();
      return;
    }
    this.groupOf.delete(seq);
    const g = this.groups.get(first) as Group;
    g.seqs.delete(seq);
    if (g.seqs.size > 0) {
      if (untoldChanged) this.saveState();
      return;
    }
    if (g.positions) this.advancePositions(g.lastSeq, g.positions);
    this.saveState();
    rmSync(g.file, { force: true });
    this.groups.delete(first);
    this.groupBytes -= g.bytes;
  }

  private addGroup(
    first: number,
    file: string,
    seqs: number[],
    positions: SourcePositions | undefined,
    bytes: number,
  ): void {
    const old = this.groups.get(first);
    if (old) this.groupBytes -= old.bytes;
    this.groups.set(first, { file, seqs: new Set(seqs), lastSeq: Math.max(...seqs), positions, bytes });
    this.groupBytes += bytes;
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
      this.legacyState = true;
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
    this.savedUntold = this.state.untold ?? 0;
    if (this.legacyState) {
      // Its state is in a slot now: the old file would only take room the bound does not count.
      rmSync(join(this.dir, 'state.json'), { force: true });
      this.legacyState = false;
    }
  }
}

/** What a message spooled by an earlier version (no `dropped` beside it) tells: its FlowBatch's droppedRecords. */
function carriedIn(kind: SpooledMessage['kind'], b64: string): number {
  if (kind !== 'flowBatch') return 0;
  try {
    const m = agentServiceDefinition().Connect?.requestDeserialize(Buffer.from(b64, 'base64')) as {
      flowBatch?: { droppedRecords?: number };
    };
    return Number(m.flowBatch?.droppedRecords ?? 0) || 0;
  } catch {
    return 0;
  }
}

function readGroup(file: string): GroupFile | undefined {
  try {
    return parseGroup(readFileSync(file));
  } catch {
    return undefined;
  }
}

/**
 * Where each message's base64 starts in a group file's bytes, found in order after each `"b64":"` (JSON escapes every
 * `"` inside a string, so the key cannot occur elsewhere) and checked against what JSON.parse read; undefined for one
 * that does not match (a file not laid out as `writeEach` writes it), whose bytes are then kept in memory.
 */
function locateMessages(raw: Buffer, messages: GroupFile['messages']): (number | undefined)[] {
  const key = Buffer.from('"b64":"');
  let from = 0;
  return messages.map((m) => {
    const at = raw.indexOf(key, from);
    if (at < 0) return undefined;
    const offset = at + key.length;
    from = offset + m.b64.length;
    return raw[from] === 0x22 && raw.toString('latin1', offset, from) === m.b64 ? offset : undefined;
  });
}

function wellFormed(m: unknown): boolean {
  const x = m as Partial<GroupFile['messages'][number]> | null;
  return (
    typeof x === 'object' &&
    x !== null &&
    Number.isSafeInteger(x.seq) &&
    (x.kind === 'flowBatch' || x.kind === 'benchmarkRun') &&
    Number.isSafeInteger(x.records) &&
    typeof x.b64 === 'string' &&
    (x.dropped === undefined || Number.isSafeInteger(x.dropped))
  );
}

function parseGroup(bytes: Buffer): GroupFile | undefined {
  try {
    const raw = JSON.parse(bytes.toString('utf8')) as Partial<GroupFile> & { seq?: number; batch?: unknown };
    if (raw.v === 2 && Array.isArray(raw.messages))
      // A message without its fields (a file damaged where JSON still parses) makes the file unreadable, as a torn one.
      return raw.messages.every(wellFormed) ? (raw as GroupFile) : undefined;
    // One batch per file, as earlier versions spooled them: encode it as it would have been sent.
    if (typeof raw.seq === 'number' && raw.batch && typeof raw.batch === 'object') {
      const batch: Record<string, unknown> = { ...(raw.batch as Record<string, unknown>), seq: raw.seq };
      const bytes = agentServiceDefinition().Connect?.requestSerialize({ flowBatch: batch }) as Buffer;
      const records = Array.isArray(batch.records) ? batch.records.length : 0;
      return {
        v: 2,
        positions: raw.positions,
        messages: [
          {
            seq: raw.seq,
            kind: 'flowBatch',
            records,
            b64: bytes.toString('base64'),
            dropped: typeof batch.droppedRecords === 'number' ? batch.droppedRecords : 0,
          },
        ],
      };
    }
    return undefined;
  } catch {
    return undefined;
  }
}

/** A GroupFile's JSON before and after its messages: `{"v":2,"positions":…,"messages":[` and `]}`. */
function groupFrame(positions: SourcePositions | undefined): [string, string] {
  const empty = JSON.stringify({ v: 2, ...(positions ? { positions } : {}), messages: [] } satisfies GroupFile);
  return [empty.slice(0, -2), ']}'];
}

/** A spooled message's JSON before and after its base64 (which needs no escaping in a JSON string). */
function messageFrame(m: GroupItem): [string, string] {
  const json = JSON.stringify({ seq: m.seq, kind: m.kind, records: m.records, b64: '', dropped: m.dropped });
  const at = json.indexOf('"b64":""') + '"b64":"'.length;
  return [json.slice(0, at), json.slice(at)];
}

function base64Length(bytes: number): number {
  return 4 * Math.ceil(bytes / 3);
}

/** Write `parts` to `file` through a temporary name renamed when whole; answers the bytes written. */
function atomicWriteParts(file: string, parts: () => Iterable<string>): number {
  const tmp = `${file}.tmp-${process.pid}`;
  let written = 0;
  try {
    const fd = openSync(tmp, 'w');
    try {
      for (const part of parts()) {
        // Written as a string: no Buffer copy of each part (a window's base64 is MB of them, freed outside the
        // JavaScript heap only when a full collection finds them). A regular file takes a short write only when the
        // disk fills: the rest is written again from its bytes, until the disk refuses it outright (which throws).
        const size = Buffer.byteLength(part);
        const first = writeSync(fd, part);
        if (first < size) {
          const buf = Buffer.from(part);
          for (let at = first; at < buf.length;) at += writeSync(fd, buf, at, buf.length - at);
        }
        written += size;
      }
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, file);
    return written;
  } catch (err) {
    rmSync(tmp, { force: true }); // a full disk must not leave partial temp files behind
    throw err;
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
