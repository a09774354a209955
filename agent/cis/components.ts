import { posix } from 'node:path';
import {
  documentField,
  documentPath,
  isDocumentMap,
  parseYamlDocument,
  scalarText,
} from '../../common/parsed-document.js';
import type { HostView } from './host.js';
import {
  etcdConfigFileFlags,
  findK3sProcess,
  k3sControlPlaneArgs,
  k3sEmbeddedEtcd,
  k3sPassThroughArgs,
} from './k3s.js';
import { findProcess, parseFlags, type NodeProcess } from './processes.js';

/** Control-plane and node components whose flags the benchmarks read. */
export type ComponentName = 'kube-apiserver' | 'kube-controller-manager' | 'kube-scheduler' | 'etcd' | 'kube-proxy';

/** Where a component's flags were read, or why they could not be. */
export type ComponentFlags =
  | {
      kind: 'found';
      flags: Map<string, string>;
      /** The component's environment (etcd reads every flag from ETCD_* variables too). */
      env: Map<string, string>;
      source: string;
      /** The running process the flags were read from (absent when read from a static pod manifest). */
      pid?: number;
      /** The process the component runs inside, with no process or user of its own ("k3s server pid 1201"). */
      embeddedIn?: string;
    }
  | { kind: 'absent'; reason: string }
  | { kind: 'error'; reason: string };

/** Go boolean flags of these components (pflag never gives them the next word). */
const BOOLEAN_FLAGS: ReadonlySet<string> = new Set([
  'anonymous-auth',
  'profiling',
  'allow-privileged',
  'use-service-account-credentials',
  'service-account-lookup',
  'client-cert-auth',
  'peer-client-cert-auth',
  'auto-tls',
  'peer-auto-tls',
  'leader-elect',
  'rotate-certificates',
  'enable-bootstrap-token-auth',
  'insecure-skip-tls-verify',
]);

/** The k3s server option that passes flags through to each component it embeds. */
const K3S_PASS_THROUGH: Readonly<Record<'kube-apiserver' | 'kube-controller-manager' | 'kube-scheduler', string>> = {
  'kube-apiserver': 'kube-apiserver-arg',
  'kube-controller-manager': 'kube-controller-manager-arg',
  'kube-scheduler': 'kube-scheduler-arg',
};

function isK3sEmbedded(c: ComponentName): c is keyof typeof K3S_PASS_THROUGH {
  return Object.hasOwn(K3S_PASS_THROUGH, c);
}

/** Static pod manifests kubeadm writes, by component (kube-proxy runs as a DaemonSet pod instead). */
const MANIFEST_FILE: Partial<Record<ComponentName, string>> = {
  'kube-apiserver': 'kube-apiserver.yaml',
  'kube-controller-manager': 'kube-controller-manager.yaml',
  'kube-scheduler': 'kube-scheduler.yaml',
  etcd: 'etcd.yaml',
};

/**
 * Reads component flags from the running process first (what is in force), then
 * from the component's static pod manifest in the kubelet's staticPodPath (what
 * will be in force when the kubelet next starts it).
 */
export class ComponentReader {
  private readonly cache = new Map<ComponentName, ComponentFlags>();

  constructor(
    private readonly host: HostView,
    private readonly processes: NodeProcess[],
    readonly manifestDir: string,
  ) {}

  flags(component: ComponentName): ComponentFlags {
    let hit = this.cache.get(component);
    if (!hit) {
      hit = this.read(component);
      this.cache.set(component, hit);
      // Cached first: finding the file on the host asks for the process's flags again.
      if (component === 'etcd' && hit.kind === 'found' && hit.flags.has('config-file')) {
        hit = this.etcdConfigFile(hit);
        this.cache.set(component, hit);
      }
    }
    return hit;
  }

  /**
   * etcd started with --config-file (RKE2's etcd static pod: `etcd --config-file=/var/lib/rancher/rke2/server/db/etcd/
   * config`) takes every setting from that file and ignores its other flags and ETCD_* variables (etcd's
   * configuration documentation): its flags are the file's.
   */
  private etcdConfigFile(c: Extract<ComponentFlags, { kind: 'found' }>): ComponentFlags {
    const named = c.flags.get('config-file') as string;
    const where = this.hostPath('etcd', named);
    if (where.kind === 'hidden') return { kind: 'absent', reason: where.reason };
    const file = this.host.readText(where.path);
    if (file.kind !== 'found')
      return {
        kind: 'error',
        reason: `${where.path} (--config-file of ${c.source}): ${file.kind === 'absent' ? 'does not exist' : file.reason}`,
      };
    let doc: unknown;
    try {
      doc = parseYamlDocument(file.text);
    } catch (err) {
      return { kind: 'error', reason: `${where.path}: not valid YAML: ${(err as Error).message}` };
    }
    if (!isDocumentMap(doc)) return { kind: 'error', reason: `${where.path}: not a mapping of etcd settings` };
    const flags = etcdConfigFileFlags(doc);
    flags.set('config-file', named);
    return { ...c, flags, env: new Map(), source: `${where.path} (--config-file of ${c.source})` };
  }

  /**
   * Why a static pod manifest named like a component's (etcd.yaml) is absent, when that component runs inside another
   * process (k3s): there is no such file to assess.
   */
  embeddedInstead(path: string): string | undefined {
    for (const [component, file] of Object.entries(MANIFEST_FILE) as [ComponentName, string][]) {
      if (posix.basename(path) !== file) continue;
      const c = this.flags(component);
      if (c.kind === 'found' && c.embeddedIn)
        return `${component} runs inside ${c.embeddedIn}, not as a static pod: there is no ${component} pod specification file`;
    }
    return undefined;
  }

  /** The node path of a component's static pod manifest (whether or not it exists). */
  manifestPath(component: ComponentName): string | undefined {
    // The name may come from a benchmark's path template ("{flag:etcd:data-dir}"): own keys only.
    const file = Object.hasOwn(MANIFEST_FILE, component) ? MANIFEST_FILE[component] : undefined;
    return file ? posix.join(this.manifestDir, file) : undefined;
  }

  /**
   * A field of the component's --config file (KubeProxyConfiguration and the
   * like), or why it cannot be read. `absent` means the component runs without
   * --config, so its flags are what count.
   */
  configValue(
    component: ComponentName,
    field: string,
  ):
    | { kind: 'value'; value: string | undefined; source: string }
    | { kind: 'absent' }
    | { kind: 'hidden'; reason: string }
    | { kind: 'error'; reason: string } {
    const c = this.flags(component);
    if (c.kind !== 'found') return { kind: 'absent' };
    const flagPath = c.flags.get('config');
    if (!flagPath) return { kind: 'absent' };
    const where = this.hostPath(component, flagPath);
    if (where.kind === 'hidden') return where;
    const path = where.path;
    const file = this.host.readText(path);
    if (file.kind === 'absent')
      return { kind: 'error', reason: `${path} (the --config of ${component}) does not exist` };
    if (file.kind === 'error') return { kind: 'error', reason: `${path}: ${file.reason}` };
    let doc: unknown;
    try {
      doc = parseYamlDocument(file.text);
    } catch (err) {
      return { kind: 'error', reason: `${path}: not valid YAML: ${(err as Error).message}` };
    }
    // The field path comes from a benchmark; only the document's own keys answer it.
    const cur = documentPath(doc, field);
    if (cur === undefined || cur === null || cur === '')
      return { kind: 'value', value: undefined, source: `${field} in ${path}${viaPod(flagPath, path)}` };
    const items = Array.isArray(cur) ? cur.map(scalarText) : [scalarText(cur)];
    if (items.some((x) => x === undefined))
      return {
        kind: 'error',
        reason: `${path}: ${field} is ${Array.isArray(cur) ? 'a list of more than plain values' : 'a mapping'}, not a value`,
      };
    return { kind: 'value', value: items.join(','), source: `${field} in ${path}${viaPod(flagPath, path)}` };
  }

  /**
   * Where a path a running component names (its --config, its kubeconfig) is on the host. A component run in a pod
   * (kube-proxy as kubeadm and kind deploy it: a DaemonSet whose ConfigMap is mounted at /var/lib/kube-proxy) names
   * paths in its own mount namespace. The host sees such a file only where the kubelet keeps the pod's volume, under
   * /var/lib/kubelet/pods/<uid>/volumes/; the process's /proc/<pid>/mountinfo says which volume is mounted where.
   * Reading through /proc/<pid>/root instead would follow a link out of the host root, which HostView never does.
   * A path that exists on the host as named is taken as it is; one that is neither on the host nor in a kubelet pod
   * volume is `hidden`: the evidence is not where the host can read it, which is never a FAIL.
   */
  hostPath(
    component: ComponentName,
    path: string,
  ): { kind: 'path'; path: string } | { kind: 'hidden'; reason: string } {
    const named = posix.resolve('/', path);
    const c = this.flags(component);
    if (c.kind !== 'found' || c.pid === undefined) return { kind: 'path', path: named };
    const mountinfo = this.host.readText(`/proc/${c.pid}/mountinfo`);
    if (mountinfo.kind === 'found') {
      const volume = podVolumeMount(mountinfo.text, named);
      if (volume) {
        for (const candidate of volume.hostCandidates) {
          if (this.host.stat(candidate).kind !== 'absent') return { kind: 'path', path: candidate };
        }
      }
    }
    if (this.host.stat(named).kind !== 'absent') return { kind: 'path', path: named };
    return {
      kind: 'hidden',
      reason:
        component === 'kube-proxy'
          ? `kube-proxy runs in a pod; its config is in the kube-proxy ConfigMap, not on the host (${named} is not on the host and no kubelet pod volume holding it was found)`
          : `${named} (named by ${component} pid ${c.pid}) does not exist on the host, nor in a kubelet pod volume mounted in its container`,
    };
  }

  private read(component: ComponentName): ComponentFlags {
    const proc = findProcess(this.processes, component);
    if (proc) {
      const environ = this.host.readText(`/proc/${proc.pid}/environ`);
      const env = new Map<string, string>();
      if (environ.kind === 'found') {
        for (const kv of environ.text.split('\0')) {
          const eq = kv.indexOf('=');
          if (eq > 0) env.set(kv.slice(0, eq), kv.slice(eq + 1));
        }
      }
      return {
        kind: 'found',
        flags: parseFlags(proc.argv.slice(1), BOOLEAN_FLAGS),
        env,
        source: `${component} pid ${proc.pid}`,
        pid: proc.pid,
      };
    }
    const embedded = isK3sEmbedded(component) ? component : undefined;
    const k3s = embedded ? findK3sProcess(this.processes, 'server') : undefined;
    if (embedded && k3s) {
      // k3s server runs this component in its own process: k3s's built-in flags, then the user's pass-through ones.
      const key = K3S_PASS_THROUGH[embedded];
      const builtIn = k3sControlPlaneArgs(this.host, k3s, embedded);
      return {
        kind: 'found',
        flags: parseFlags([...builtIn, ...k3sPassThroughArgs(this.host, k3s, key)], BOOLEAN_FLAGS),
        env: new Map(),
        source: `${component} embedded in k3s server pid ${k3s.pid} (k3s built-in flags, then --${key} from /etc/rancher/k3s/config.yaml and the command line)`,
        embeddedIn: `k3s server pid ${k3s.pid}`,
      };
    }
    const k3sServer = component === 'etcd' ? findK3sProcess(this.processes, 'server') : undefined;
    if (k3sServer) {
      // A k3s server embeds etcd (or runs without one): read the etcd config file k3s writes, not a static pod.
      const etcd = k3sEmbeddedEtcd(this.host, k3sServer);
      return etcd.kind === 'found' ? { ...etcd, env: new Map(), embeddedIn: `k3s server pid ${k3sServer.pid}` } : etcd;
    }
    const path = this.manifestPath(component);
    if (!path) return { kind: 'absent', reason: `${component} is not running on this node` };
    const file = this.host.readText(path);
    if (file.kind === 'absent')
      return { kind: 'absent', reason: `${component} is not running and ${path} does not exist` };
    if (file.kind === 'error') return { kind: 'error', reason: `${path}: ${file.reason}` };
    const container = staticPodContainer(file.text, component);
    if (typeof container === 'string') return { kind: 'error', reason: `${path}: ${container}` };
    return { kind: 'found', flags: parseFlags(container.args, BOOLEAN_FLAGS), env: container.env, source: path };
  }
}

/**
 * The flags (command and args, without the binary) and env of the component's container in a static pod manifest, or
 * why not.
 */
export function staticPodContainer(
  text: string,
  component: string,
): { args: string[]; env: Map<string, string> } | string {
  let doc: unknown;
  try {
    doc = parseYamlDocument(text);
  } catch (err) {
    return `not valid YAML: ${(err as Error).message}`;
  }
  const containers = documentPath(doc, 'spec.containers');
  if (!Array.isArray(containers) || containers.length === 0) return 'no spec.containers in the pod manifest';
  const list = (containers as unknown[]).filter((c) => typeof c === 'object' && c !== null && !Array.isArray(c));
  if (list.length === 0) return 'no usable entry in spec.containers';
  const container = list.find((c) => documentField(c, 'name') === component) ?? list[0];
  const words = [...asStrings(documentField(container, 'command')), ...asStrings(documentField(container, 'args'))];
  const env = new Map<string, string>();
  const envList = documentField(container, 'env');
  if (Array.isArray(envList)) {
    for (const e of envList as unknown[]) {
      const name = documentField(e, 'name');
      const value = documentField(e, 'value');
      if (typeof name === 'string' && typeof value === 'string') env.set(name, value);
    }
  }
  // The binary name comes first in `command`; keep the flags.
  return { args: words.filter((w, i) => i > 0 || w.startsWith('-')), env };
}

function asStrings(v: unknown): string[] {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
}

/**
 * The kubelet pod volume mounted over `path` in a process's mount namespace, from its /proc/<pid>/mountinfo
 * (proc(5): ID, parent ID, major:minor, root of the mount within its filesystem, mount point, ...): the longest mount
 * point holding the path, when its root is a kubelet pod volume (…/pods/<uid>/volumes/<plugin>/<name>). The root is
 * relative to the filesystem mounted, so the host path is either the root itself (/var/lib/kubelet on the root
 * filesystem) or the kubelet's default root dir plus the part from /pods/ on.
 */
export function podVolumeMount(mountinfo: string, path: string): { hostCandidates: string[] } | undefined {
  let best: { point: string; root: string } | undefined;
  for (const line of mountinfo.split('\n')) {
    const f = line.split(' ');
    if (f.length < 5) continue;
    const root = unescapeMount(f[3] as string);
    const point = unescapeMount(f[4] as string);
    const inside = point === '/' || path === point || path.startsWith(`${point}/`);
    if (inside && (!best || point.length >= best.point.length)) best = { point, root };
  }
  if (!best) return undefined;
  const m = /\/pods\/[0-9a-fA-F-]+\/volumes\/[^/]+\/[^/]+$/.exec(posix.normalize(best.root));
  if (!m) return undefined;
  const rest = path === best.point ? '' : path.slice(best.point === '/' ? 0 : best.point.length);
  const fromPods = m[0] + rest;
  const candidates = [posix.normalize(best.root + rest), posix.join('/var/lib/kubelet', fromPods)];
  return { hostCandidates: [...new Set(candidates)].filter((c) => !c.split('/').includes('..')) };
}

/** mountinfo escapes space, tab, newline and backslash as octal (\040 ...). */
function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

function viaPod(named: string, onHost: string): string {
  return posix.resolve('/', named) === onHost ? '' : ` (${named} in the pod)`;
}
