import { HostView } from './host.js';

/** The components whose processes the checks read (a restart changes their flags). */
const WATCHED_PROGRAMS =
  /^(kubelet|kube-apiserver|kube-controller-manager|kube-scheduler|etcd|kube-proxy|k3s.*|rke2.*)$/;

/**
 * Notices when anything a scan read changes, by polling: the stat of every
 * file the last scan touched (mode, owner, size, mtime, where links lead) and
 * the command lines of the Kubernetes processes. Polling a few dozen stats a
 * second costs less than a scan and, unlike inotify, sees changes made through
 * any mount of the host and in files that did not exist yet.
 */
export class ChangeWatch {
  private readonly host: HostView;
  private signatures = new Map<string, string>();
  private processes = '';

  constructor(hostRoot: string) {
    this.host = new HostView(hostRoot);
  }

  /** Replace the watched set with the files a scan just read, as they are now. */
  track(paths: readonly string[]): void {
    this.signatures = new Map(paths.filter((p) => !p.startsWith('/proc')).map((p) => [p, this.signature(p)]));
    this.processes = this.processSignature();
  }

  /** Paths that changed since the last track() or changed() call. */
  changed(): string[] {
    const out: string[] = [];
    for (const [path, before] of this.signatures) {
      const now = this.signature(path);
      if (now !== before) {
        out.push(path);
        this.signatures.set(path, now);
      }
    }
    const procs = this.processSignature();
    if (procs !== this.processes) {
      out.push('/proc (Kubernetes processes)');
      this.processes = procs;
    }
    return out;
  }

  private signature(path: string): string {
    const st = this.host.stat(path);
    if (st.kind !== 'found') return st.kind === 'error' ? `error:${st.reason}` : 'absent';
    const f = st.facts;
    return `${f.resolvedPath}|${f.type}|${f.mode}|${f.uid}|${f.gid}|${f.size}|${f.mtimeMs}`;
  }

  private processSignature(): string {
    const parts: string[] = [];
    for (const pid of this.host.list('/proc')) {
      if (!/^\d+$/.test(pid)) continue;
      const comm = this.host.readText(`/proc/${pid}/comm`);
      if (comm.kind !== 'found' || !WATCHED_PROGRAMS.test(comm.text.trim())) continue;
      const cmd = this.host.readText(`/proc/${pid}/cmdline`);
      parts.push(`${pid}:${cmd.kind === 'found' ? cmd.text : ''}`);
    }
    this.host.touched.clear(); // this view is only for polling; don't grow forever
    return parts.join('\n');
  }
}
