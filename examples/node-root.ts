import { chmodSync, chownSync, lchownSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { stringify as toYaml } from 'yaml';

export interface FileSpec {
  /** Permission bits, e.g. 0o600. Default 0o644. */
  mode?: number;
  /** Numeric owner; default root (0:0). */
  uid?: number;
  gid?: number;
}

/**
 * Builds a node's root filesystem in a directory, with real modes and owners
 * (git stores neither, so examples and tests build them at run time). Owners
 * need root: without it, every file keeps the current user's ids and
 * `ownersFaked` says so.
 */
export class NodeRootBuilder {
  readonly ownersFaked: boolean;

  constructor(readonly root: string) {
    rmSync(root, { recursive: true, force: true });
    mkdirSync(root, { recursive: true });
    this.ownersFaked = typeof process.getuid === 'function' ? process.getuid() !== 0 : true;
    this.file(
      '/etc/passwd',
      'root:x:0:0:root:/root:/bin/bash\netcd:x:997:997:etcd user:/var/lib/etcd:/usr/sbin/nologin\n',
      { mode: 0o644 },
    );
    this.file('/etc/group', 'root:x:0:\netcd:x:997:\n', { mode: 0o644 });
  }

  path(nodePath: string): string {
    return join(this.root, nodePath);
  }

  dir(nodePath: string, spec: FileSpec = {}): this {
    const p = this.path(nodePath);
    mkdirSync(p, { recursive: true });
    this.own(p, spec, 0o755);
    return this;
  }

  file(nodePath: string, content: string, spec: FileSpec = {}): this {
    const p = this.path(nodePath);
    mkdirSync(dirname(p), { recursive: true });
    writeFileSync(p, content);
    this.own(p, spec, 0o644);
    return this;
  }

  yaml(nodePath: string, doc: unknown, spec: FileSpec = {}): this {
    return this.file(nodePath, toYaml(doc), spec);
  }

  symlink(nodePath: string, target: string): this {
    const p = this.path(nodePath);
    mkdirSync(dirname(p), { recursive: true });
    rmSync(p, { force: true });
    symlinkSync(target, p);
    if (!this.ownersFaked) lchownSync(p, 0, 0);
    return this;
  }

  /** A running process as /proc shows it: cmdline NUL-separated, comm truncated to 15 bytes. */
  process(pid: number, argv: string[]): this {
    this.file(`/proc/${pid}/cmdline`, argv.join('\0') + '\0', { mode: 0o444 });
    const comm = (argv[0] ?? '').split('/').pop() ?? '';
    this.file(`/proc/${pid}/comm`, comm.slice(0, 15) + '\n', { mode: 0o444 });
    return this;
  }

  private own(p: string, spec: FileSpec, defaultMode: number): void {
    chmodSync(p, spec.mode ?? defaultMode);
    if (!this.ownersFaked) chownSync(p, spec.uid ?? 0, spec.gid ?? 0);
  }
}
