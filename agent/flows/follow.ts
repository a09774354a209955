import { closeSync, constants, fstatSync, lstatSync, openSync, readdirSync, readSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/** Where a follower stands: which file (by identity) and how far into it. */
export interface FollowPosition {
  dev: number;
  ino: number;
  offset: number;
  /** The last bytes before `offset` (base64), to notice a file emptied and refilled past the offset between two reads. */
  tail?: string;
}

/** Bytes remembered before the offset: enough to tell one line's end from another's. */
const TAIL_BYTES = 64;

export interface FollowedLine {
  line: string;
  /** File and byte offset where the line started, for error messages. */
  file: string;
  offset: number;
}

/** Lines longer than this are cut off and reported as malformed, never buffered without bound. */
export const MAX_LINE_BYTES = 1024 * 1024;

/**
 * Follows a JSON-lines file the way `tail -F` would, but losslessly and
 * restartably: it remembers the file by (device, inode) and a byte offset.
 *
 * - Rotation (the file renamed away, a new one created at the path): the rest
 *   of the old file is read first, found again by its inode among the files
 *   beside it (flows.log.1, ...), then the new file from its start.
 * - Truncation (same inode, size below the offset): reading starts over at 0.
 * - A restart resumes from a saved position, including a rotation that
 *   happened while the agent was down.
 * - Only whole lines are returned; a partial last line waits for its newline.
 */
export class FileFollower {
  private position: FollowPosition | undefined;

  /** A line longer than MAX_LINE_BYTES is being skipped until its newline. */
  private skippingLongLine = false;

  constructor(
    readonly path: string,
    saved?: FollowPosition,
    /** Start at the end of an existing file (first start, no saved position) instead of its beginning. */
    private readonly startAtEnd = false,
  ) {
    this.position = saved;
  }

  /** The position after the last line returned by poll(); save it with what the lines became. */
  get saved(): FollowPosition | undefined {
    return this.position ? { ...this.position } : undefined;
  }

  /** Read every complete line written since the last call. Also returns lines that were too long (as `tooLong`). */
  poll(maxBytes = 8 * 1024 * 1024): { lines: FollowedLine[]; tooLong: { file: string; offset: number }[]; events: string[] } {
    const out = { lines: [] as FollowedLine[], tooLong: [] as { file: string; offset: number }[], events: [] as string[] };
    let current: { dev: number; ino: number; size: number };
    try {
      // lstat: the path itself must be a regular file — not a link (it could lead anywhere), a FIFO or a device.
      const st = lstatSync(this.path);
      if (!st.isFile()) throw new Error(`${this.path} is not a regular file`);
      current = { dev: st.dev, ino: st.ino, size: st.size };
    } catch (err) {
      if ((err as { code?: string }).code === 'ENOENT') return out; // not there (yet): nothing to read
      throw err;
    }
    if (!this.position) {
      this.position = { dev: current.dev, ino: current.ino, offset: this.startAtEnd ? current.size : 0 };
    }
    if (this.position.dev !== current.dev || this.position.ino !== current.ino) {
      // Rotated: finish the old file first, found again by its identity beside the new one. The
      // position stays on the old file until its end, a bounded amount per poll, so a restart in
      // between resumes there too.
      const old = this.findByIdentity(this.position);
      if (old) {
        const before = this.position.offset;
        this.position.offset = this.readFrom(old, before, maxBytes, out);
        this.position.tail = undefined;
        if (this.position.offset !== before || out.tooLong.length > 0) return out;
        out.events.push(`rotated: finished ${old}`);
      } else {
        out.events.push(`rotated: the previous file (inode ${this.position.ino}) is gone; ${this.path} is read from its start`);
      }
      this.position = { dev: current.dev, ino: current.ino, offset: 0 };
      this.skippingLongLine = false;
    } else if (current.size < this.position.offset || !this.tailMatches(this.position)) {
      // copytruncate: emptied in place, possibly already written past our offset again.
      out.events.push(`truncated: ${this.path} was emptied and rewritten (${current.size} bytes now); reading from its start`);
      this.position.offset = 0;
      this.position.tail = undefined;
      this.skippingLongLine = false;
    }
    this.position.offset = this.readFrom(this.path, this.position.offset, maxBytes, out, this.position);
    this.position.tail = this.readTail(this.position.offset);
    return out;
  }

  private readTail(offset: number): string | undefined {
    if (offset === 0) return undefined;
    const start = Math.max(0, offset - TAIL_BYTES);
    try {
      const fd = openSync(this.path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
      try {
        const buf = Buffer.alloc(offset - start);
        const n = readSync(fd, buf, 0, buf.length, start);
        return buf.subarray(0, n).toString('base64');
      } finally {
        closeSync(fd);
      }
    } catch {
      return undefined;
    }
  }

  private tailMatches(p: FollowPosition): boolean {
    if (p.tail === undefined || p.offset === 0) return true;
    return this.readTail(p.offset) === p.tail;
  }

  /** Reads whole lines from `file` at `offset`; answers the offset after the last whole line. */
  private readFrom(file: string, offset: number, maxBytes: number, out: { lines: FollowedLine[]; tooLong: { file: string; offset: number }[] }, expect?: FollowPosition): number {
    let fd: number;
    try {
      fd = openSync(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    } catch {
      return offset;
    }
    try {
      const st = fstatSync(fd);
      if (!st.isFile()) return offset;
      if (expect && (st.ino !== expect.ino || st.dev !== expect.dev)) return offset; // swapped between stat and open: next poll handles it
      const buf = Buffer.alloc(Math.min(maxBytes, 1024 * 1024));
      let pending = Buffer.alloc(0);
      let pendingStart = offset;
      let pos = offset;
      let consumed = offset;
      let budget = maxBytes;
      while (budget > 0) {
        const n = readSync(fd, buf, 0, Math.min(buf.length, budget), pos);
        if (n === 0) break;
        pos += n;
        budget -= n;
        let chunk = pending.length > 0 ? Buffer.concat([pending, buf.subarray(0, n)]) : Buffer.from(buf.subarray(0, n));
        let lineStart = pendingStart;
        for (;;) {
          const nl = chunk.indexOf(0x0a);
          if (nl < 0) break;
          if (this.skippingLongLine) {
            this.skippingLongLine = false;
          } else if (nl > MAX_LINE_BYTES) {
            out.tooLong.push({ file, offset: lineStart });
          } else {
            const text = chunk.subarray(0, nl).toString('utf8').replace(/\r$/, '');
            if (text.trim().length > 0) out.lines.push({ line: text, file, offset: lineStart });
          }
          lineStart += nl + 1;
          chunk = chunk.subarray(nl + 1);
          consumed = lineStart;
        }
        pending = chunk;
        pendingStart = lineStart;
        if (pending.length > MAX_LINE_BYTES) {
          if (!this.skippingLongLine) out.tooLong.push({ file, offset: pendingStart });
          this.skippingLongLine = true;
          consumed = pendingStart + pending.length;
          pendingStart = consumed;
          pending = Buffer.alloc(0);
        }
      }
      return consumed;
    } finally {
      closeSync(fd);
    }
  }

  /** The file beside `path` (same directory, name starting with its base name) with this identity. */
  private findByIdentity(p: FollowPosition): string | undefined {
    const dir = dirname(this.path);
    const base = basename(this.path);
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      return undefined;
    }
    for (const n of names) {
      if (!n.startsWith(base) || n === base) continue;
      try {
        const st = lstatSync(join(dir, n));
        if (st.isFile() && st.ino === p.ino && st.dev === p.dev) return join(dir, n);
      } catch {
        // raced with removal
      }
    }
    return undefined;
  }
}
