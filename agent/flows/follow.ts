import { closeSync, constants, fstatSync, lstatSync, openSync, readdirSync, readSync, type Stats } from 'node:fs';
import { basename, dirname, extname, join } from 'node:path';
import { AGENT_DEFAULTS } from '../defaults.js';

/**
 * Where a follower stands: which file and how far into it. Saved as JSON in the
 * agent's spool; every field after `offset` is optional so that positions saved
 * by earlier versions (dev, ino, offset, tail) still resume.
 */
export interface FollowPosition {
  dev: number;
  ino: number;
  offset: number;
  /**
   * The last bytes before `offset` (base64), to notice a file emptied and refilled past the offset between two reads.
   */
  tail?: string;
  /**
   * The file's first bytes (base64, up to HEAD_BYTES) when last read: another generation of the log starts with other
   * lines.
   */
  head?: string;
  /** The file's size when last read, bytes: a file that is only appended to never gets smaller. */
  size?: number;
  /** The file's mtime when last read, ms since the epoch: files rotated after it were written after it. */
  mtimeMs?: number;
  /** The offset is inside a line over MAX_LINE_BYTES, already reported: the rest of it, to its newline, is skipped. */
  skipping?: boolean;
}

/** Bytes remembered before the offset: enough to tell one line's end from another's. */
const TAIL_BYTES = AGENT_DEFAULTS.follow.tailBytes;

/**
 * Bytes remembered from the start of a file: flow log lines start with their timestamps, so two generations of a log
 * differ here.
 */
const HEAD_BYTES = AGENT_DEFAULTS.follow.headBytes;

export interface FollowedLine {
  line: string;
  /** File and byte offset where the line started, for error messages. */
  file: string;
  offset: number;
}

/**
 * Takes each line as it is read, so a poll's lines are parsed while they are young garbage instead of all being held
 * (up to pollMaxBytes of strings) until the poll ends.
 */
export type LineReader = (line: string, file: string, offset: number) => void;

/**
 * Takes each line as its bytes, b[start, end) without the newline (nor a \r before it), for a reader that decodes only
 * what it needs of it. The bytes are the follower's own buffer, read into again after the call: read them during it.
 */
export type LineBytesReader = (b: Buffer, start: number, end: number, file: string, offset: number) => void;

/** Bytes read at once into the follower's buffer. */
const READ_BYTES = 64 * 1024;

/** Lines longer than this are cut off and reported as malformed, never buffered without bound. */
const MAX_LINE_BYTES = AGENT_DEFAULTS.follow.maxLineBytes;

export interface FollowResult {
  lines: FollowedLine[];
  /** Lines longer than MAX_LINE_BYTES, skipped. */
  tooLong: { file: string; offset: number }[];
  /**
   * What happened to the files: "rotated: …", "truncated: …" (saying what is lost when no copy was found), "lost: …"
   * when a file went before it was read to its end.
   */
  events: string[];
}

/** A file of the log's rotation family (the path or a rotated sibling) as listed during one poll. */
interface FamilyFile {
  file: string;
  name: string;
  dev: number;
  ino: number;
  size: number;
  mtimeMs: number;
}

/**
 * What one poll knows: the file at the path (undefined if missing), the siblings once listed, the bytes it may still
 * read.
 */
interface PollState {
  cur: FamilyFile | undefined;
  siblings: FamilyFile[] | undefined;
  budget: number;
  out: FollowResult;
  /** Given: each line goes to it as it is read (not into `out.lines`). */
  onLine: LineReader | undefined;
  /** Given: each line goes to it as bytes, as it is read (not to onLine nor into `out.lines`). */
  onLineBytes: LineBytesReader | undefined;
}

/** An open file and what fstat said right after opening it. */
interface OpenFile {
  fd: number;
  st: Stats;
  file: string;
}

/**
 * Follows a JSON-lines file the way `tail -F` would, but losslessly and
 * restartably. Only whole lines are returned; a partial last line waits for its
 * newline.
 *
 * A file is one generation of the log, known by (device, inode), its first
 * HEAD_BYTES bytes, the TAIL_BYTES before the offset and its size and mtime at
 * the last read. A file that is only appended to keeps its head and tail and
 * never shrinks, so it is never read again from its start.
 *
 * - Rotation by rename (logrotate's default; lumberjack, which Calico's and
 *   Hubble's file exporters use): the followed inode is found again among the
 *   siblings (flows.log.1, flows.log-20240101, flows-2024-01-01T00-00-00.000.log),
 *   its rest is read, then every sibling rotated after it, oldest first, then the
 *   file at the path from its start. A rotated file is left only once the writer
 *   has moved on (a newer sibling exists or the new file is not empty): logrotate
 *   renames first and signals the writer after, so lines can still arrive in the
 *   renamed file. Its last line, if unterminated, is then delivered as it is.
 * - Age order of rotated files is their mtime — a rotated file is no longer
 *   written, so each was last written before the next one was — and for equal
 *   mtimes (timestamps are coarse, a few ms on many kernels) their names:
 *   logrotate's .2 is older than .1, lumberjack's and dateext's timestamps sort
 *   by age. Not used: ctime moves on every rename, inode numbers are reused,
 *   birth time is missing on some filesystems and makes copies look newer than
 *   the file they were copied from.
 * - copytruncate, or any emptying in place (same inode): noticed when the file is
 *   shorter than the offset or than at the last read, or its head or the bytes
 *   before the offset changed. What was not yet read is then looked for in a
 *   sibling with the same head and tail (the copy), then newer copies, then the
 *   file from its start. A file last seen empty has no head: copies of it are the
 *   siblings written after that look, unless the file still starts like them
 *   (logrotate's copy without truncate).
 * - Compressed siblings (.gz, .zst, … or gzip/zstd/xz/bzip2 magic bytes) are
 *   never read: they are not lines.
 *
 * Not detectable (lines are lost, or read where they do not belong):
 * - copytruncate refilled, between two reads, past the size last seen, with
 *   the same first HEAD_BYTES bytes and the same TAIL_BYTES before the offset
 *   is indistinguishable from an append (no loss with flow logs, whose first
 *   line carries its time; byte-identical content is lost).
 * - Lines written between logrotate's copy and its truncate are in neither file
 *   (logrotate documents this).
 * - A file removed or compressed before it was read to its end: the rest is
 *   lost; a "lost:" event says so. Which siblings were rotated after it is then
 *   judged by mtime alone, so one written within the same clock tick as its last
 *   read is missed.
 * - A copy of a file last seen empty, made within the same clock tick as that
 *   look, is missed; so are rotated files moved to another directory (olddir).
 * - A file that is not a rotated log but is named like one (flows.log.bak) and
 *   was written after the followed file is read as the next rotated file.
 */
export class FileFollower {
  private position: FollowPosition | undefined;

  /** A line longer than MAX_LINE_BYTES is being skipped until its newline. */
  private skippingLongLine = false;

  /** What readLines reads into, kept from one poll to the next. */
  private readBuffer?: Buffer;

  /** `startAtEnd` applies to the very first file only: not after a saved position, nor to a file found after a loss. */
  private firstFile: boolean;

  constructor(
    readonly path: string,
    saved?: FollowPosition,
    /** Start at the end of an existing file (first start, no saved position) instead of its beginning. */
    private readonly startAtEnd = false,
  ) {
    const { skipping, ...position } = saved ?? {};
    this.position = saved ? (position as FollowPosition) : undefined;
    this.skippingLongLine = skipping === true;
    this.firstFile = saved === undefined;
  }

  /** The position after the last line returned by poll(); save it with what the lines became. */
  get saved(): FollowPosition | undefined {
    if (!this.position) return undefined;
    // A restart in the middle of a line being skipped must not read the rest of it as a line of its own.
    return this.skippingLongLine ? { ...this.position, skipping: true } : { ...this.position };
  }

  /**
   * Read every complete line written since the last call, up to about `maxBytes`: into the result's `lines`, or with
   * `onLine` to it as each is read (or with `onLineBytes`, as bytes). Also returns lines that were too long (as
   * `tooLong`).
   */
  poll(
    maxBytes: number = AGENT_DEFAULTS.follow.pollMaxBytes,
    onLine?: LineReader,
    onLineBytes?: LineBytesReader,
  ): FollowResult {
    const out: FollowResult = { lines: [], tooLong: [], events: [] };
    const cur = this.statPath();
    if (!this.position) {
      if (!cur) return out; // not there (yet): nothing to read
      this.position = { dev: cur.dev, ino: cur.ino, offset: this.firstFile && this.startAtEnd ? cur.size : 0 };
    }
    this.firstFile = false;
    const s: PollState = { cur, siblings: undefined, budget: maxBytes, out, onLine, onLineBytes };
    // Each step either reads and stops or moves to a newer file; the bound only guards against a directory changing
    // under us.
    for (let step = 0; step < (s.siblings?.length ?? 0) + 3; step++) {
      if (this.step(s) === 'stop') break;
    }
    return out;
  }

  private step(s: PollState): 'stop' | 'moved' {
    const p = this.position!;
    if (s.cur && sameFile(s.cur, p)) {
      const o = openAs(s.cur);
      if (!o) return 'stop'; // replaced between lstat and open: the next poll sees the new file
      try {
        if (sameGeneration(o, p)) {
          if (this.copiedSinceSeenEmpty(s, o, s.cur)) return 'moved';
          this.readLines(o, p, s, false);
          return 'stop';
        }
      } finally {
        closeSync(o.fd);
      }
      return this.emptiedInPlace(s);
    }
    return this.followRotated(s);
  }

  /** The followed file is not at the path any more: finish it where it went, then move to the next newer file. */
  private followRotated(s: PollState): 'stop' | 'moved' {
    const p = this.position!;
    const here = this.locate(p, s);
    if (!here) {
      s.out.events.push(
        `lost: the followed file (inode ${p.ino}, read to byte ${p.offset}) is gone from beside ${this.path}; whatever was written to it after that is lost`,
      );
      return this.continueAfterLoss(s);
    }
    if (!sameFile(here, p)) {
      p.dev = here.dev; // found by its content: a copy of it, under another inode
      p.ino = here.ino;
    }
    const o = openAs(here);
    if (!o) return 'stop';
    const next = this.newerThan(here, s);
    try {
      if (!sameGeneration(o, p)) return 'stop'; // changed between listing and open: the next poll looks again
      if (this.copiedSinceSeenEmpty(s, o, here)) return 'moved';
      // Leave it only once the writer has moved on: a newer rotated file, or lines in the new one.
      const final = next !== undefined && (next !== s.cur || next.size > 0);
      const atEnd = this.readLines(o, p, s, final);
      if (!atEnd || !final) return 'stop';
      s.out.events.push(`rotated: finished ${here.file}`);
    } finally {
      closeSync(o.fd);
    }
    this.moveTo(next);
    return 'moved';
  }

  /** The followed inode is still at the path but holds another generation: copytruncate, or emptied by hand. */
  private emptiedInPlace(s: PollState): 'stop' | 'moved' {
    const p = this.position!;
    const copy = this.copyOf(p, s);
    if (copy) {
      s.out.events.push(
        `truncated: ${this.path} was emptied in place; its unread rest is read from its copy ${copy.file}`,
      );
      this.position = { ...p, dev: copy.dev, ino: copy.ino };
      return 'moved';
    }
    s.out.events.push(
      `truncated: ${this.path} was emptied in place and no copy of it is beside it; reading it from its start (whatever was written to it after byte ${p.offset} before it was emptied is lost)`,
    );
    return this.continueAfterLoss(s);
  }

  /**
   * After the followed generation is gone: the siblings written after it was last read, oldest first, then the path.
   */
  private continueAfterLoss(s: PollState): 'stop' | 'moved' {
    const since = this.position!.mtimeMs;
    const newer =
      since === undefined ? [] : this.siblings(s).filter((c) => c.mtimeMs > since && !(s.cur && sameFile(c, s.cur)));
    const next = newer.sort(this.olderFirst)[0] ?? s.cur;
    if (!next) {
      this.position = undefined; // the next file to appear is read from its start (firstFile is false by now)
      return 'stop';
    }
    this.moveTo(next);
    return 'moved';
  }

  /**
   * A file last seen empty has no head to recognise a copy by. If it changed since, and siblings older than it
   * were written after that look, it was copied and emptied (copytruncate) meanwhile: read those copies first —
   * unless the file still starts like the oldest of them, which is logrotate's copy without truncation. `self`
   * is the file as listed: the path, or the sibling it was renamed to after being emptied.
   */
  private copiedSinceSeenEmpty(s: PollState, o: OpenFile, self: FamilyFile): boolean {
    const p = this.position!;
    const seen = p.mtimeMs;
    if (p.size !== 0 || p.offset !== 0 || seen === undefined || o.st.mtimeMs <= seen) return false;
    const isOlder = (c: FamilyFile) => self === s.cur || this.olderFirst(c, self) < 0;
    const copies = this.siblings(s).filter((c) => c.size > 0 && c.mtimeMs > seen && !sameFile(c, self) && isOlder(c));
    const oldest = copies.sort(this.olderFirst)[0];
    if (!oldest) return false;
    const copyHead = readHead(oldest.file);
    if (copyHead === undefined || (o.st.size >= copyHead.length && readAt(o.fd, 0, copyHead.length).equals(copyHead)))
      return false;
    s.out.events.push(
      `truncated: ${self.file} was copied and emptied since it was seen empty; reading its copy ${oldest.file} first`,
    );
    this.moveTo(oldest);
    return true;
  }

  /** Where the followed generation is now: by inode among the siblings (renamed), else by its content (a copy). */
  private locate(p: FollowPosition, s: PollState): FamilyFile | undefined {
    const byInode = this.siblings(s).find((c) => sameFile(c, p));
    if (byInode && holds(byInode, p)) return byInode;
    return this.copyOf(p, s);
  }

  /** The oldest sibling that starts with the followed generation's head and has its tail at the offset: its copy. */
  private copyOf(p: FollowPosition, s: PollState): FamilyFile | undefined {
    if (!p.head) return undefined; // nothing to recognise it by
    const candidates = this.siblings(s).filter(
      (c) => !sameFile(c, p) && !(s.cur && sameFile(c, s.cur)) && c.size >= Math.max(p.offset, p.size ?? 0),
    );
    return candidates.sort(this.olderFirst).find((c) => holds(c, p));
  }

  /** The next file after `here`: the oldest sibling rotated after it, else the file at the path. */
  private newerThan(here: FamilyFile, s: PollState): FamilyFile | undefined {
    const newer = this.siblings(s).filter(
      (c) => this.olderFirst(here, c) < 0 && !sameFile(c, here) && !(s.cur && sameFile(c, s.cur)),
    );
    const next = newer.sort(this.olderFirst)[0];
    if (next) return next;
    return s.cur && !sameFile(s.cur, here) ? s.cur : undefined;
  }

  private moveTo(f: FamilyFile): void {
    this.position = { dev: f.dev, ino: f.ino, offset: 0 };
    this.skippingLongLine = false;
  }

  /** Rotated files in age order: by mtime, then by name (see the class comment). */
  private readonly olderFirst = (a: FamilyFile, b: FamilyFile): number => {
    if (a.mtimeMs !== b.mtimeMs) return a.mtimeMs - b.mtimeMs;
    const base = basename(this.path);
    const na = rotationNumber(base, a.name);
    const nb = rotationNumber(base, b.name);
    if (na !== undefined && nb !== undefined) return nb - na; // logrotate: the higher the number, the older
    if (na !== undefined || nb !== undefined) return na !== undefined ? -1 : 1;
    return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
  };

  /**
   * The path itself; lstat, because it must be a regular file — not a link (it could lead anywhere), a FIFO or a
   * device.
   */
  private statPath(): FamilyFile | undefined {
    let st: Stats;
    try {
      st = lstatSync(this.path);
    } catch (err) {
      if ((err as { code?: string }).code === 'ENOENT') return undefined;
      throw err;
    }
    if (!st.isFile()) throw new Error(`${this.path} is not a regular file`);
    return { file: this.path, name: basename(this.path), dev: st.dev, ino: st.ino, size: st.size, mtimeMs: st.mtimeMs };
  }

  /** The rotated files beside the path, listed once per poll and only when needed. */
  private siblings(s: PollState): FamilyFile[] {
    if (s.siblings) return s.siblings;
    const dir = dirname(this.path);
    const base = basename(this.path);
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      names = [];
    }
    s.siblings = [];
    for (const name of names) {
      if (!isRotatedName(base, name)) continue;
      const file = join(dir, name);
      try {
        const st = lstatSync(file);
        if (!st.isFile() || isCompressed(readHead(file, 6))) continue;
        s.siblings.push({ file, name, dev: st.dev, ino: st.ino, size: st.size, mtimeMs: st.mtimeMs });
      } catch {
        // raced with removal
      }
    }
    return s.siblings;
  }

  /**
   * Reads whole lines from the open file at the position, within the poll's budget, and records what the
   * position needs to recognise the file next time. With `final` (the writer has moved on) an unterminated last
   * line is delivered too. Answers whether the end of the file was reached.
   *
   * Reads go into one buffer the follower keeps (READ_BYTES): each line is decoded straight from it, and only the
   * start of a line that continues in the next read is copied. Before, every poll zero-filled a new 1 MiB buffer and
   * copied each read once more, some 2 KB of allocation per 1.5 KB Calico line.
   */
  private readLines(o: OpenFile, p: FollowPosition, s: PollState, final: boolean): boolean {
    const buf = (this.readBuffer ??= Buffer.allocUnsafe(READ_BYTES));
    let pending: Buffer | undefined;
    let pendingStart = p.offset;
    let pos = p.offset;
    let consumed = p.offset;
    let atEnd = false;
    try {
      while (s.budget > 0) {
        const n = readSync(o.fd, buf, 0, Math.min(buf.length, s.budget), pos);
        if (n === 0) {
          atEnd = true;
          break;
        }
        const chunkStart = pos;
        pos += n;
        s.budget -= n;
        const chunk = buf.subarray(0, n);
        let from = 0;
        for (let nl = chunk.indexOf(0x0a); nl >= 0; nl = from < n ? chunk.indexOf(0x0a, from) : -1) {
          if (pending) {
            const line = Buffer.concat([pending, chunk.subarray(0, nl)]);
            this.deliver(line, 0, line.length, o.file, pendingStart, s);
            pending = undefined;
          } else {
            this.deliver(buf, from, nl, o.file, chunkStart + from, s);
          }
          from = nl + 1;
          consumed = chunkStart + from;
        }
        if (from < n) {
          // The start of a line whose newline is in a later read: copied, since the buffer is read into again.
          if (!pending) pendingStart = chunkStart + from;
          pending = pending ? Buffer.concat([pending, chunk.subarray(from)]) : Buffer.from(chunk.subarray(from));
        }
        if (pending && pending.length > MAX_LINE_BYTES) {
          if (!this.skippingLongLine) s.out.tooLong.push({ file: o.file, offset: pendingStart });
          this.skippingLongLine = true;
          consumed = pendingStart + pending.length;
          pending = undefined;
        }
      }
    } catch (err) {
      // Lines already given to onLine are taken: the position moves past them, so the next poll does not repeat them.
      if ((s.onLine || s.onLineBytes) && consumed !== p.offset) {
        p.offset = consumed;
        try {
          remember(o, p, pos);
        } catch {
          p.tail = undefined; // not known: not checked next time
        }
      }
      throw err;
    }
    if (atEnd && final && pending) {
      this.deliver(pending, 0, pending.length, o.file, pendingStart, s);
      consumed = pendingStart + pending.length;
    }
    p.offset = consumed;
    remember(o, p, pos);
    return atEnd;
  }

  /**
   * One line, b[start, lineEnd) (without its newline), unless it ends a line being skipped for its length. Handed on
   * without a view of it made: a line is decoded (or read as bytes) straight from the follower's buffer.
   */
  private deliver(b: Buffer, start: number, lineEnd: number, file: string, offset: number, s: PollState): void {
    if (this.skippingLongLine) {
      this.skippingLongLine = false;
    } else if (lineEnd - start > MAX_LINE_BYTES) {
      s.out.tooLong.push({ file, offset });
    } else {
      const end = lineEnd > start && b[lineEnd - 1] === 0x0d ? lineEnd - 1 : lineEnd;
      if (s.onLineBytes) {
        if (!blank(b, start, end)) s.onLineBytes(b, start, end, file, offset);
        return;
      }
      const line = b.toString('utf8', start, end);
      if (blank(b, start, end, line)) return;
      if (s.onLine) s.onLine(line, file, offset);
      else s.out.lines.push({ line, file, offset });
    }
  }
}

/**
 * Whether a line holds only whitespace (what trim() removes): from its bytes unless some are not ASCII (then from its
 * text, decoded here unless given).
 */
function blank(b: Buffer, start: number, end: number, line?: string): boolean {
  for (let i = start; i < end; i++) {
    const c = b[i] as number;
    if (c === 0x20 || (c >= 0x09 && c <= 0x0d)) continue;
    return c < 0x80 ? false : (line ?? b.toString('utf8', start, end)).trim().length === 0;
  }
  return true;
}

/** Record, after a read up to `readTo`, what recognises this generation of the file next time. */
function remember(o: OpenFile, p: FollowPosition, readTo: number): void {
  const size = Math.max(o.st.size, readTo);
  if (!p.head || Buffer.from(p.head, 'base64').length < HEAD_BYTES) {
    const head = readAt(o.fd, 0, Math.min(HEAD_BYTES, size));
    p.head = head.length > 0 ? head.toString('base64') : undefined;
  }
  const tailStart = Math.max(0, p.offset - TAIL_BYTES);
  p.tail = p.offset > 0 ? readAt(o.fd, tailStart, p.offset - tailStart).toString('base64') : undefined;
  p.size = size;
  p.mtimeMs = o.st.mtimeMs;
}

/** Whether the open file is still the generation `p` was read from; fields an older position lacks are not checked. */
function sameGeneration(o: OpenFile, p: FollowPosition): boolean {
  if (o.st.size < p.offset || o.st.size < (p.size ?? 0)) return false;
  if (p.head) {
    const head = Buffer.from(p.head, 'base64');
    if (!readAt(o.fd, 0, head.length).equals(head)) return false;
  }
  if (p.tail && p.offset > 0) {
    const tail = Buffer.from(p.tail, 'base64');
    if (!readAt(o.fd, p.offset - tail.length, tail.length).equals(tail)) return false;
  }
  return true;
}

/** Whether the listed file holds the generation `p` was read from. */
function holds(f: FamilyFile, p: FollowPosition): boolean {
  const o = openAs(f);
  if (!o) return false;
  try {
    return sameGeneration(o, p);
  } finally {
    closeSync(o.fd);
  }
}

/** Open a listed file read-only, without following links or blocking, and only if it is still that file. */
function openAs(f: FamilyFile): OpenFile | undefined {
  let fd: number;
  try {
    fd = openSync(f.file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch {
    return undefined;
  }
  const st = fstatSync(fd);
  if (!st.isFile() || !sameFile(st, f)) {
    closeSync(fd);
    return undefined;
  }
  return { fd, st, file: f.file };
}

function readAt(fd: number, at: number, length: number): Buffer {
  const buf = Buffer.alloc(Math.max(0, length));
  const n = length > 0 ? readSync(fd, buf, 0, length, Math.max(0, at)) : 0;
  return buf.subarray(0, n);
}

/** The first `length` bytes of a file, or undefined if it cannot be read. */
function readHead(file: string, length: number = HEAD_BYTES): Buffer | undefined {
  let fd: number;
  try {
    fd = openSync(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch {
    return undefined;
  }
  try {
    return readAt(fd, 0, length);
  } finally {
    closeSync(fd);
  }
}

function sameFile(a: { dev: number; ino: number }, b: { dev: number; ino: number }): boolean {
  return a.dev === b.dev && a.ino === b.ino;
}

const COMPRESSED_NAME = /\.(gz|bz2|xz|zst|lz4|lzma|lzo|lz|z|zip|br|sz|tgz)$/i;

/**
 * gzip, zstd, xz and bzip2 magic numbers: a compressed file under a name without a known suffix (logrotate's
 * compressext).
 */
const COMPRESSED_MAGIC = [
  Buffer.from([0x1f, 0x8b]),
  Buffer.from([0x28, 0xb5, 0x2f, 0xfd]),
  Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]),
  Buffer.from('BZh'),
];

function isCompressed(head: Buffer | undefined): boolean {
  return head !== undefined && COMPRESSED_MAGIC.some((m) => head.subarray(0, m.length).equals(m));
}

/** Lumberjack's backup time stamp, "2006-01-02T15-04-05.000". */
const LUMBERJACK_STAMP = /^\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}(\.\d+)?$/;

/**
 * Whether `name` is a rotated `base`: logrotate's base.N and base-DATE (dateext), or lumberjack's
 * stem-TIMESTAMP.ext; compressed ones are not.
 */
function isRotatedName(base: string, name: string): boolean {
  if (name === base || COMPRESSED_NAME.test(name)) return false;
  if (name.startsWith(base) && /^[.\-_]/.test(name.slice(base.length))) return true;
  const ext = extname(base);
  const stem = base.slice(0, base.length - ext.length);
  return (
    ext !== '' &&
    name.startsWith(`${stem}-`) &&
    name.endsWith(ext) &&
    LUMBERJACK_STAMP.test(name.slice(stem.length + 1, name.length - ext.length))
  );
}

/** logrotate's N in base.N. */
function rotationNumber(base: string, name: string): number | undefined {
  const m = /^\.(\d+)$/.exec(name.slice(base.length));
  return name.startsWith(base) && m ? Number(m[1]) : undefined;
}
