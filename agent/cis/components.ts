import { posix } from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { HostView } from './host.js';
import { findProcess, parseFlags, type NodeProcess } from './processes.js';

/** Control-plane and node components whose flags the benchmarks read. */
export type ComponentName = 'kube-apiserver' | 'kube-controller-manager' | 'kube-scheduler' | 'etcd' | 'kube-proxy';

/** Where a component's flags were read, or why they could not be. */
export type ComponentFlags =
  | { kind: 'found'; flags: Map<string, string>; source: string }
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

  private read(component: ComponentName): ComponentFlags {
    const proc = findProcess(this.processes, component);
    if (proc) return { kind: 'found', flags: parseFlags(proc.argv.slice(1), BOOLEAN_FLAGS), source: `${component} pid ${proc.pid}` };
    const path = this.manifestPath(component);
    if (!path) return { kind: 'absent', reason: `${component} is not running on this node` };
    const file = this.host.readText(path);
    if (file.kind === 'absent') return { kind: 'absent', reason: `${component} is not running and ${path} does not exist` };
    if (file.kind === 'error') return { kind: 'error', reason: `${path}: ${file.reason}` };
    const command = containerCommand(file.text, component);
    if (typeof command === 'string') return { kind: 'error', reason: `${path}: ${command}` };
    return { kind: 'found', flags: parseFlags(command, BOOLEAN_FLAGS), source: path };
  }
}

/** The command and args of the component's container in a static pod manifest, or why not. */
export function containerCommand(text: string, component: string): string[] | string {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    return `not valid YAML: ${(err as Error).message.split('\n')[0]}`;
  }
  const containers = (doc as { spec?: { containers?: unknown } } | null)?.spec?.containers;
  if (!Array.isArray(containers) || containers.length === 0) return 'no spec.containers in the pod manifest';
  type Container = { name?: string; command?: unknown; args?: unknown };
  const list = containers as Container[];
  const container = list.find((c) => c.name === component) ?? list[0];
  const words = [...asStrings(container?.command), ...asStrings(container?.args)];
  // Keep only the flags: the binary name comes first in `command`.
  return words.filter((w, i) => i > 0 || w.startsWith('-'));
}

function asStrings(v: unknown): string[] {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
}
