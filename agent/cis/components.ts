import { posix } from 'node:path';
import { documentField, documentPath, parseYamlDocument, scalarText } from '../../common/parsed-document.js';
import type { HostView } from './host.js';
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
    }
    return hit;
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
    | { kind: 'error'; reason: string } {
    const c = this.flags(component);
    if (c.kind !== 'found') return { kind: 'absent' };
    const path = c.flags.get('config');
    if (!path) return { kind: 'absent' };
    const file = this.host.readText(posix.resolve('/', path));
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
      return { kind: 'value', value: undefined, source: `${field} in ${path}` };
    const items = Array.isArray(cur) ? cur.map(scalarText) : [scalarText(cur)];
    if (items.some((x) => x === undefined))
      return {
        kind: 'error',
        reason: `${path}: ${field} is ${Array.isArray(cur) ? 'a list of more than plain values' : 'a mapping'}, not a value`,
      };
    return { kind: 'value', value: items.join(','), source: `${field} in ${path}` };
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
      };
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
