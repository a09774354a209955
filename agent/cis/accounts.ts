import type { HostView } from './host.js';

/** The node's users and groups, so owners in benchmarks ("etcd:etcd") compare numerically. */
export class NodeAccounts {
  private readonly users = new Map<string, number>([['root', 0]]);
  private readonly groups = new Map<string, number>([['root', 0]]);
  private readonly userNames = new Map<number, string>([[0, 'root']]);
  private readonly groupNames = new Map<number, string>([[0, 'root']]);

  constructor(host: HostView) {
    load(host, '/etc/passwd', this.users, this.userNames);
    load(host, '/etc/group', this.groups, this.groupNames);
  }

  /** uid/gid of "user:group" on this node; undefined when either name is unknown there. */
  resolveOwner(owner: string): { uid: number; gid: number } | undefined {
    const [u, g] = owner.split(':');
    const uid = this.users.get(u as string) ?? (/^\d+$/.test(u as string) ? Number(u) : undefined);
    const gid = this.groups.get(g as string) ?? (/^\d+$/.test(g as string) ? Number(g) : undefined);
    return uid === undefined || gid === undefined ? undefined : { uid, gid };
  }

  /** "root:root (0:0)", or the bare numbers when the node has no name for them. */
  describeOwner(uid: number, gid: number): string {
    return `${this.userNames.get(uid) ?? uid}:${this.groupNames.get(gid) ?? gid} (${uid}:${gid})`;
  }
}

function load(host: HostView, path: string, byName: Map<string, number>, byId: Map<number, string>): void {
  const file = host.readText(path);
  if (file.kind !== 'found') return;
  for (const line of file.text.split('\n')) {
    const [name, , id] = line.split(':');
    if (!name || id === undefined || !/^\d+$/.test(id)) continue;
    if (!byName.has(name)) byName.set(name, Number(id));
    if (!byId.has(Number(id))) byId.set(Number(id), name);
  }
}
