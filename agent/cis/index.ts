import { hostname } from 'node:os';
import { performance } from 'node:perf_hooks';
import { summarize, type NodeRole, type ScanReport } from '../../common/scan-report.js';
import { NodeAccounts } from './accounts.js';
import type { NodeFacts } from './audits.js';
import { chooseBenchmark } from './benchmark-index.js';
import { ComponentReader } from './components.js';
import { evaluateBenchmark } from './engine.js';
import { HostView } from './host.js';
import { findK3sProcess, k3sOption } from './k3s.js';
import { readKubeletSettings, resolveSetting, type KubeletSettings, type LiveKubeletConfig } from './kubelet.js';
import { listProcesses, type NodeProcess } from './processes.js';
import type { BenchmarkSpec } from './schema.js';

export interface ScanOptions {
  hostRoot: string;
  /**
   * The node name reported; when absent it is found under the root: the kubelet's --hostname-override (k3s/RKE2:
   * their node-name option), else the root's /etc/hostname, else this machine's host name (with a note).
   */
  nodeName?: string;
  /** A benchmark id, or "auto" (by the Kubernetes version). */
  benchmark: string;
  role: NodeRole | 'auto';
  level: 1 | 2;
  exclude: string[];
  /** Known Kubernetes version (e.g. from the cluster); found on the node otherwise. */
  kubernetesVersion?: string;
  /** The kubelet's live configz (run mode, opt-in); files are the fallback when absent. */
  liveKubeletConfig?: LiveKubeletConfig;
  /** Benchmarks already loaded (tests); else the bundled ones, of which only the one used is read. */
  benchmarks?: BenchmarkSpec[];
  now?: () => Date;
}

export interface ScanResult {
  report: ScanReport;
  /** Node paths the scan read: what a watcher should watch. */
  touched: string[];
  /** How the benchmark, role and node name were chosen. */
  notes: string[];
  /** What the user asked for that did not apply (an --exclude id matching no check of the benchmark). */
  warnings: string[];
  /**
   * Whether a kubelet was found under the root (a process, k3s/RKE2 embedding one, a kubelet systemd unit, or its
   * config file or kubeconfig); without one the root is not a Kubernetes node and the report is not assessable.
   */
  kubelet: { found: true; how: string } | { found: false; why: string };
  /** The benchmark's section titles by id ("4.2" → "Kubelet"), chapters included: what the table groups under. */
  sectionTitles: Record<string, string>;
  /** The Kubernetes version the benchmark was chosen by, when known ("1.32.2"). */
  kubernetesVersion?: string;
}

/** Scan one node root: read facts through a HostView, evaluate, summarise. */
export function scanNode(options: ScanOptions): ScanResult {
  const now = options.now ?? (() => new Date());
  const started = now();
  const t0 = performance.now();
  const host = HostView.snapshot(options.hostRoot);
  const processes = listProcesses(host);
  const kubelet = readKubeletSettings(host, processes, options.liveKubeletConfig);
  const manifestDir =
    resolveSetting(kubelet, 'staticPodPath', 'pod-manifest-path').value || '/etc/kubernetes/manifests';
  const components = new ComponentReader(host, processes, manifestDir);
  const facts: NodeFacts = { host, kubelet, components, accounts: new NodeAccounts(host) };
  const notes: string[] = [];
  const warnings: string[] = [];
  const kubeletFound = findKubelet(host, kubelet, processes, options.hostRoot);
  const nodeName = options.nodeName ?? nodeNameOf(host, kubelet, processes, notes);

  const role: NodeRole = options.role === 'auto' ? detectRole(components, processes) : options.role;
  if (options.role === 'auto')
    notes.push(`role ${role}: ${role === 'control-plane' ? 'kube-apiserver runs here' : 'no kube-apiserver here'}`);

  const version = options.kubernetesVersion ?? detectKubernetesVersion(host, components);
  const { benchmark, why } = chooseBenchmark(options.benchmark, version, options.benchmarks);
  if (why) notes.push(why);

  for (const x of options.exclude)
    if (!benchmark.checks.some((c) => c.id === x || c.id.startsWith(`${x}.`)))
      warnings.push(`--exclude ${x} matches no check of ${benchmark.id}`);

  const checks = evaluateBenchmark(benchmark, facts, { role, level: options.level, exclude: options.exclude });
  const report: ScanReport = {
    node: nodeName,
    benchmark: { id: benchmark.id, version: benchmark.version },
    nodeRole: role,
    startedAt: started.toISOString(),
    durationMs: Math.round(performance.now() - t0),
    summary: summarize(checks),
    checks,
  };
  if (notes.length > 0) report.notes = notes;
  if (!kubeletFound.found) report.notAssessable = kubeletFound.why;
  return {
    report,
    touched: [...host.touched],
    notes,
    warnings,
    kubelet: kubeletFound,
    sectionTitles: Object.fromEntries((benchmark.sections ?? []).map((s) => [s.id, s.title])),
    kubernetesVersion: version,
  };
}

/** Files only a Kubernetes node has: the kubelet's config and kubeconfig as kubeadm, k3s and RKE2 write them. */
const KUBELET_FILES = [
  '/var/lib/kubelet/config.yaml',
  '/var/lib/kubelet/kubeconfig',
  '/etc/kubernetes/kubelet.conf',
  '/etc/kubernetes/kubelet-config.yaml',
  '/var/lib/rancher/k3s/agent/kubelet.kubeconfig',
  '/var/lib/rancher/rke2/agent/kubelet.kubeconfig',
  '/etc/rancher/k3s/config.yaml',
  '/etc/rancher/rke2/config.yaml',
];

/**
 * Whether the root is a Kubernetes node: a kubelet process or one embedded in k3s/RKE2, a kubelet systemd unit
 * (readKubeletSettings' origin), or — the kubelet stopped and its unit elsewhere — its config file or kubeconfig.
 */
function findKubelet(
  host: HostView,
  kubelet: KubeletSettings,
  processes: NodeProcess[],
  root: string,
): ScanResult['kubelet'] {
  if (kubelet.origin !== 'none') return { found: true, how: kubelet.originDetail };
  const rke2 = processes.find((p) => /(^|\/)rke2$/.test(p.argv[0] ?? '') || p.comm === 'rke2');
  if (rke2) return { found: true, how: `kubelet started by rke2 pid ${rke2.pid}` };
  for (const f of KUBELET_FILES) if (host.stat(f).kind === 'found') return { found: true, how: f };
  return {
    found: false,
    why: `no kubelet found under ${root} (no kubelet, k3s or rke2 process, no kubelet.service unit, no kubelet config or kubeconfig)`,
  };
}

/** The node's name as its kubelet registers it: --hostname-override (k3s: node-name), else the root's /etc/hostname. */
function nodeNameOf(host: HostView, kubelet: KubeletSettings, processes: NodeProcess[], notes: string[]): string {
  const override = resolveSetting(kubelet, undefined, 'hostname-override').value?.trim();
  if (override) {
    notes.push(`node name ${override}: the kubelet's --hostname-override`);
    return override.toLowerCase();
  }
  const k3s = findK3sProcess(processes);
  const k3sName = k3s ? k3sOption(host, k3s, 'node-name')?.trim() : undefined;
  if (k3sName) {
    notes.push(`node name ${k3sName}: k3s --node-name`);
    return k3sName;
  }
  const file = host.readText('/etc/hostname');
  const fromFile = file.kind === 'found' ? file.text.split('\n')[0]?.trim() : undefined;
  if (fromFile) return fromFile;
  const own = hostname();
  notes.push(
    `node name ${own}: this machine's host name (no --node-name, kubelet --hostname-override or /etc/hostname under the root)`,
  );
  return own;
}

/**
 * A node is control-plane when an API server runs there (alone or inside "k3s server") or has a static pod manifest.
 */
function detectRole(components: ComponentReader, processes: NodeProcess[]): NodeRole {
  if (processes.some((p) => p.comm === 'k3s-server' || (/(^|\/)k3s$/.test(p.argv[0] ?? '') && p.argv[1] === 'server')))
    return 'control-plane';
  return components.flags('kube-apiserver').kind === 'absent' ? 'worker' : 'control-plane';
}

/**
 * The Kubernetes version visible on the node without running anything: the
 * image tag of a control-plane static pod (kubeadm pins it, e.g.
 * registry.k8s.io/kube-apiserver:v1.32.2). Workers learn theirs from the cluster.
 */
function detectKubernetesVersion(host: HostView, components: ComponentReader): string | undefined {
  for (const c of ['kube-apiserver', 'kube-controller-manager', 'kube-scheduler'] as const) {
    const path = components.manifestPath(c);
    if (!path) continue;
    const file = host.readText(path);
    if (file.kind !== 'found') continue;
    const m = /image:\s*\S*kube-[a-z-]+:v?(\d+\.\d+\.\d+)/.exec(file.text);
    if (m) return m[1];
  }
  // RKE2 unpacks each release into a data directory named after it (v1.31.4-rke2r1-<hash>).
  for (const name of host.list('/var/lib/rancher/rke2/data').reverse()) {
    const m = /^v(\d+\.\d+\.\d+)-rke2/.exec(name);
    if (m) return m[1];
  }
  return undefined;
}
