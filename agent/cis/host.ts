import {
  closeSync,
  constants,
  fstatSync,
  lstatSync,
  openSync,
  readdirSync,
  readlinkSync,
  readSync,
  realpathSync,
  type Stats,
} from 'node:fs';
import { posix } from 'node:path';

/** What a file on the node looks like, with node paths (as the node sees them). */
export interface FileFacts {
  /** The path asked for, normalised. */
  path: string;
  /** The path after following links inside the host root. */
  resolvedPath: string;
  type: 'file' | 'directory' | 'other';
  /** What an `other` is: "a FIFO", "a socket", "a character device", "a block device". */
  special?: string;
  /** Permission bits only (0o777 plus setuid/setgid/sticky). */
  mode: number;
  uid: number;
  gid: number;
  size: number;
  /** Modification time in ms, used to notice changes. */
  mtimeMs: number;
}

export type Lookup =
  | { kind: 'found'; facts: FileFacts }
  | { kind: 'absent'; path: string }
  | { kind: 'error'; path: string; reason: string };

export type TextLookup =
  | { kind: 'found'; facts: FileFacts; text: string }
  | { kind: 'absent'; path: string }
  | { kind: 'error'; path: string; reason: string };

/** Files larger than this are not read: no node config file is near it. */
const DEFAULT_MAX_READ_BYTES = 4 * 1024 * 1024;
/** Linux's own limit on links followed while resolving one path. */
const MAX_LINK_HOPS = 40;

class EscapeError extends Error {}

/**
 * The one place that reads the node. Every node path is resolved inside the host
 * root component by component: an absolute link target is taken as the node would
 * take it (relative to the host root), a relative one that climbs above the root
 * is refused, and files are opened with O_NOFOLLOW|O_NONBLOCK so a swapped link,
 * a FIFO or a device never blocks or escapes. Nothing here writes.
 */
export class HostView {
  readonly root: string;
  /** Every node path read through this view, for change watching. */
  readonly touched = new Set<string>();

  /**
   * lstat results by real path, kept for the view's life when it is a snapshot (one scan): the paths a scan reads
   * share their directories, and each path is resolved component by component.
   */
  private lstats?: Map<string, Stats | Error>;

  constructor(
    root: string,
    private readonly maxReadBytes = DEFAULT_MAX_READ_BYTES,
  ) {
    this.root = realpathSync(root);
  }

  /**
   * A view for one scan: the node is read as it was at the first look at each path (a later change is the next
   * scan's to see), so the lstat of each path component is done once. A view that polls (ChangeWatch) is never one.
   */
  static snapshot(root: string, maxReadBytes = DEFAULT_MAX_READ_BYTES): HostView {
    const view = new HostView(root, maxReadBytes);
    view.lstats = new Map();
    return view;
  }

  private lstat(real: string): Stats {
    if (!this.lstats) return lstatSync(real);
    let hit = this.lstats.get(real);
    if (hit === undefined) {
      try {
        hit = lstatSync(real);
      } catch (err) {
        hit = err as Error;
      }
      this.lstats.set(real, hit);
    }
    if (hit instanceof Error) throw hit;
    return hit;
  }

  /** The real filesystem path of a node path, after resolving links inside the root. */
  private resolve(nodePath: string): { real: string; nodeResolved: string } | { missing: true } {
    const pending = splitPath(nodePath);
    const done: string[] = [];
    let hops = 0;
    while (pending.length > 0) {
      const part = pending.shift() as string;
      if (part === '.' || part === '') continue;
      if (part === '..') {
        if (done.length === 0) throw new EscapeError(`${nodePath}: a link climbs above the host root`);
        done.pop();
        continue;
      }
      const real = posix.join(this.root, ...done, part);
      let st: Stats;
      try {
        st = this.lstat(real);
      } catch (err) {
        if (isCode(err, 'ENOENT') || isCode(err, 'ENOTDIR')) return { missing: true };
        throw err;
      }
      if (st.isSymbolicLink()) {
        if (++hops > MAX_LINK_HOPS) throw new EscapeError(`${nodePath}: too many levels of symbolic links`);
        const target = readlinkSync(real);
        if (target.startsWith('/')) done.length = 0;
        pending.unshift(...splitPath(target));
        continue;
      }
      done.push(part);
    }
    return { real: posix.join(this.root, ...done), nodeResolved: '/' + done.join('/') };
  }

  /** Facts about a node path, following links inside the root. */
  stat(nodePath: string): Lookup {
    const path = posix.normalize(nodePath);
    this.touched.add(path);
    try {
      const r = this.resolve(path);
      if ('missing' in r) return { kind: 'absent', path };
      return { kind: 'found', facts: toFacts(path, r.nodeResolved, this.lstat(r.real)) };
    } catch (err) {
      return { kind: 'error', path, reason: describe(err) };
    }
  }

  /** The text of a regular file, refusing FIFOs, devices and files over the cap. */
  readText(nodePath: string): TextLookup {
    const path = posix.normalize(nodePath);
    this.touched.add(path);
    let fd: number | undefined;
    try {
      const r = this.resolve(path);
      if ('missing' in r) return { kind: 'absent', path };
      const before = lstatSync(r.real);
      if (!before.isFile()) return { kind: 'error', path, reason: `${path} is not a regular file` };
      fd = openSync(r.real, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
      // What was opened is what the kernel says the descriptor is: inside the root, or refused.
      this.assertInside(readlinkSync(`/proc/self/fd/${fd}`));
      const st = fstatSync(fd);
      if (!st.isFile()) return { kind: 'error', path, reason: `${path} is not a regular file` };
      if (st.size > this.maxReadBytes) {
        return {
          kind: 'error',
          path,
          reason: `${path} is ${st.size} bytes, over the ${this.maxReadBytes}-byte read limit`,
        };
      }
      return { kind: 'found', facts: toFacts(path, r.nodeResolved, st), text: readAll(fd, this.maxReadBytes, st.size) };
    } catch (err) {
      return { kind: 'error', path, reason: describe(err) };
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
  }

  /** Names in a node directory, sorted; empty when it is absent or unreadable (see listDir to tell them apart). */
  list(nodeDir: string): string[] {
    const r = this.listDir(nodeDir);
    return r.kind === 'found' ? r.names : [];
  }

  /** A node directory's names, or that it is absent, or why it cannot be read (a link out of the root, permissions). */
  listDir(
    nodeDir: string,
  ): { kind: 'found'; names: string[] } | { kind: 'absent' } | { kind: 'error'; reason: string } {
    const path = posix.normalize(nodeDir);
    this.touched.add(path);
    try {
      const r = this.resolve(path);
      if ('missing' in r) return { kind: 'absent' };
      this.assertInside(r.real);
      return { kind: 'found', names: readdirSync(r.real).sort() };
    } catch (err) {
      if (isCode(err, 'ENOTDIR')) return { kind: 'error', reason: `${path} is not a directory` };
      return { kind: 'error', reason: `${path}: ${describe(err)}` };
    }
  }

  /**
   * A resolved path's real location must still be inside the root (a parent swapped for a link meanwhile is caught
   * here).
   */
  private assertInside(real: string): void {
    const actual = realpathSync(real);
    // A root of `/` (the agent run on the node itself) holds every path: `${root}/` would be `//`, a prefix of none.
    if (this.root !== '/' && actual !== this.root && !actual.startsWith(`${this.root}/`))
      throw new EscapeError(`${real} resolves outside the host root`);
  }

  /** Why a glob's directories cannot be listed (unreadable, a link out of the root), or undefined. */
  globError(pattern: string): string | undefined {
    const parts = splitPath(posix.normalize(pattern));
    let dirs = ['/'];
    for (const part of parts) {
      if (!/[*?]/.test(part)) {
        dirs = dirs.map((d) => posix.join(d, part));
        continue;
      }
      const next: string[] = [];
      const re = new RegExp(
        '^' +
          part
            .replace(/[.+^${}()|[\]\\]/g, '\\$&')
            .replace(/\*/g, '[^/]*')
            .replace(/\?/g, '[^/]') +
          '$',
      );
      for (const d of dirs) {
        const r = this.listDir(d);
        if (r.kind === 'error') return r.reason;
        if (r.kind === 'found') next.push(...r.names.filter((n) => re.test(n)).map((n) => posix.join(d, n)));
      }
      dirs = next;
    }
    return undefined;
  }

  /**
   * Node paths matching a pattern whose components may hold `*` or `?`
   * ("every key in the PKI directory", "every file of every CNI network").
   * A pattern without wildcards answers itself, whether or not it exists.
   */
  glob(pattern: string): string[] {
    const normal = posix.normalize(pattern);
    if (!/[*?]/.test(normal)) return [normal];
    let current = ['/'];
    for (const part of splitPath(normal)) {
      if (!/[*?]/.test(part)) {
        current = current.map((dir) => posix.join(dir, part));
        continue;
      }
      const re = new RegExp(
        '^' +
          part
            .replace(/[.+^${}()|[\]\\]/g, '\\$&')
            .replace(/\*/g, '[^/]*')
            .replace(/\?/g, '[^/]') +
          '$',
      );
      current = current.flatMap((dir) =>
        this.list(dir)
          .filter((n) => re.test(n))
          .map((n) => posix.join(dir, n)),
      );
    }
    return current;
  }
}

function splitPath(p: string): string[] {
  return p.split('/').filter((s) => s.length > 0);
}

function toFacts(path: string, resolvedPath: string, st: Stats): FileFacts {
  return {
    path,
    resolvedPath,
    type: st.isFile() ? 'file' : st.isDirectory() ? 'directory' : 'other',
    ...(st.isFile() || st.isDirectory() ? {} : { special: specialKind(st) }),
    mode: st.mode & 0o7777,
    uid: st.uid,
    gid: st.gid,
    size: st.size,
    mtimeMs: st.mtimeMs,
  };
}

function specialKind(st: Stats): string {
  if (st.isFIFO()) return 'a FIFO';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  return 'a special file';
}

/** The file's bytes as text: one buffer the size fstat gave (plus room to see it grew), grown if it did. */
function readAll(fd: number, cap: number, size: number): string {
  let buf = Buffer.allocUnsafe(Math.min(size, cap) + 1024);
  let total = 0;
  for (;;) {
    if (total === buf.length) {
      const bigger = Buffer.allocUnsafe(buf.length * 2);
      buf.copy(bigger, 0, 0, total);
      buf = bigger;
    }
    const n = readSync(fd, buf, total, buf.length - total, null);
    if (n === 0) break;
    total += n;
    if (total > cap) throw new Error(`file grew past the ${cap}-byte read limit while being read`);
  }
  return buf.toString('utf8', 0, total);
}

function isCode(err: unknown, code: string): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: string }).code === code;
}

function describe(err: unknown): string {
  if (err instanceof EscapeError) return err.message;
  const e = err as { code?: string; message?: string };
  if (e.code === 'EACCES' || e.code === 'EPERM') return `permission denied (${e.code})`;
  if (e.code === 'ELOOP') return 'a link loops or is swapped while being read (ELOOP)';
  return e.message ?? String(err);
}
