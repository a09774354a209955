import { posix } from 'node:path';
import { parse as parseYaml } from 'yaml';
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
  'anonymous-auth', 'profiling', 'allow-privileged', 'use-service-account-credentials', 'service-account-lookup',
  'client-cert-auth', 'peer-client-cert-auth', 'auto-tls', 'peer-auto-tls',
  'leader-elect', 'rotate-certificates', 'enable-bootstrap-token-auth', 'insecure-skip-tls-verify',
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
    const file = MANIFEST_FILE[component];
    return file ? posix.join(this.manifestDir, file) : undefined;
  }

  /**
   * A field of the component's --config file (KubeProxyConfiguration and the
   * like), or why it cannot be read. `absent` means the component runs without
   * --config, so its flags are what count.
   */
  configValue(component: ComponentName, field: string): { kind: 'value'; value: string | undefined; source: string } | { kind: 'absent' } | { kind: 'error'; reason: string } {
    const c = this.flags(component);
    if (c.kind !== 'found') return { kind: 'absent' };
    const path = c.flags.get('config');
    if (!path) return { kind: 'absent' };
    const file = this.host.readText(posix.resolve('/', path));
    if (file.kind === 'absent') return { kind: 'error', reason: `${path} (the --config of ${component}) does not exist` };
    if (file.kind === 'error') return { kind: 'error', reason: `${path}: ${file.reason}` };
    let doc: unknown;
    try {
      doc = parseYaml(file.text);
    } catch (err) {
      return { kind: 'error', reason: `${path}: not valid YAML: ${(err as Error).message.split('\n')[0]}` };
    }
    let cur: unknown = doc;
    for (const key of field.split('.')) cur = typeof cur === 'object' && cur !== null ? (cur as Record<string, unknown>)[key] : undefined;
    const value = cur === undefined || cur === null || cur === '' ? undefined : Array.isArray(cur) ? cur.join(',') : String(cur);
    return { kind: 'value', value, source: `${field} in ${path}` };
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
      return { kind: 'found', flags: parseFlags(proc.argv.slice(1), BOOLEAN_FLAGS), env, source: `${component} pid ${proc.pid}` };
    }
    const path = this.manifestPath(component);
    if (!path) return { kind: 'absent', reason: `${component} is not running on this node` };
    const file = this.host.readText(path);
    if (file.kind === 'absent') return { kind: 'absent', reason: `${component} is not running and ${path} does not exist` };
    if (file.kind === 'error') return { kind: 'error', reason: `${path}: ${file.reason}` };
    const container = staticPodContainer(file.text, component);
    if (typeof container === 'string') return { kind: 'error', reason: `${path}: ${container}` };
    return { kind: 'found', flags: parseFlags(container.args, BOOLEAN_FLAGS), env: container.env, source: path };
  }
}

/** The flags (command and args, without the binary) and env of the component's container in a static pod manifest, or why not. */
export function staticPodContainer(text: string, component: string): { args: string[]; env: Map<string, string> } | string {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    return `not valid YAML: ${(err as Error).message.split('\n')[0]}`;
  }
  const containers = (doc as { spec?: { containers?: unknown } } | null)?.spec?.containers;
  if (!Array.isArray(containers) || containers.length === 0) return 'no spec.containers in the pod manifest';
  type Container = { name?: string; command?: unknown; args?: unknown; env?: unknown };
  const list = (containers as unknown[]).filter((c): c is Container => typeof c === 'object' && c !== null);
  if (list.length === 0) return 'no usable entry in spec.containers';
  const container = list.find((c) => c.name === component) ?? list[0];
  const words = [...asStrings(container?.command), ...asStrings(container?.args)];
  const env = new Map<string, string>();
  if (Array.isArray(container?.env)) {
    for (const e of container.env as { name?: unknown; value?: unknown }[]) if (typeof e?.name === 'string' && typeof e.value === 'string') env.set(e.name, e.value);
  }
  // The binary name comes first in `command`; keep the flags.
  return { args: words.filter((w, i) => i > 0 || w.startsWith('-')), env };
}

function asStrings(v: unknown): string[] {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
}
