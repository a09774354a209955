import { performance } from 'node:perf_hooks';
import { summarize, type NodeRole, type ScanReport } from '../../common/scan-report.js';
import { NodeAccounts } from './accounts.js';
import type { NodeFacts } from './audits.js';
import { loadBenchmarks, pickBenchmark } from './benchmarks.js';
import { ComponentReader } from './components.js';
import { evaluateBenchmark } from './engine.js';
import { HostView } from './host.js';
import { readKubeletSettings, resolveSetting, type LiveKubeletConfig } from './kubelet.js';
import { listProcesses, type NodeProcess } from './processes.js';
import type { BenchmarkSpec } from './schema.js';

export interface ScanOptions {
  hostRoot: string;
  nodeName: string;
  /** A benchmark id, or "auto" (by the Kubernetes version). */
  benchmark: string;
  role: NodeRole | 'auto';
  level: 1 | 2;
  exclude: string[];
  /** Known Kubernetes version (e.g. from the cluster); found on the node otherwise. */
  kubernetesVersion?: string;
  /** The kubelet's live configz (run mode, opt-in); files are the fallback when absent. */
  liveKubeletConfig?: LiveKubeletConfig;
  /** Pre-loaded benchmarks (the agent loads them once). */
  benchmarks?: BenchmarkSpec[];
  now?: () => Date;
}

export interface ScanResult {
  report: ScanReport;
  /** Node paths the scan read: what a watcher should watch. */
  touched: string[];
  /** How the benchmark and role were chosen. */
  notes: string[];
  /** The Kubernetes version the benchmark was chosen by, when known ("1.32.2"). */
  kubernetesVersion?: string;
}

/** Scan one node root: read facts through a HostView, evaluate, summarise. */
export function scanNode(options: ScanOptions): ScanResult {
  const now = options.now ?? (() => new Date());
  const started = now();
  const t0 = performance.now();
  const host = new HostView(options.hostRoot);
  const processes = listProcesses(host);
  const kubelet = readKubeletSettings(host, processes, options.liveKubeletConfig);
  const manifestDir =
    resolveSetting(kubelet, 'staticPodPath', 'pod-manifest-path').value || '/etc/kubernetes/manifests';
  const components = new ComponentReader(host, processes, manifestDir);
  const facts: NodeFacts = { host, kubelet, components, accounts: new NodeAccounts(host) };
  const notes: string[] = [];

  const role: NodeRole = options.role === 'auto' ? detectRole(components, processes) : options.role;
  if (options.role === 'auto')
    notes.push(`role ${role}: ${role === 'control-plane' ? 'kube-apiserver runs here' : 'no kube-apiserver here'}`);

  const benchmarks = options.benchmarks ?? loadBenchmarks();
  const version = options.kubernetesVersion ?? detectKubernetesVersion(host, components);
  let benchmark: BenchmarkSpec;
  if (options.benchmark === 'auto') {
    const pick = pickBenchmark(benchmarks, version);
    benchmark = pick.benchmark;
    notes.push(pick.why);
  } else {
    const found = benchmarks.find((b) => b.id === options.benchmark);
    if (!found) {
      throw new Error(
        `VERDICT_BENCHMARK_UNKNOWN: no benchmark "${options.benchmark}"; run 'verdict-agent benchmarks' to list them`,
      );
    }
    benchmark = found;
  }

  const checks = evaluateBenchmark(benchmark, facts, { role, level: options.level, exclude: options.exclude });
  const report: ScanReport = {
    node: options.nodeName,
    benchmark: { id: benchmark.id, version: benchmark.version },
    nodeRole: role,
    startedAt: started.toISOString(),
    durationMs: Math.round(performance.now() - t0),
    summary: summarize(checks),
    checks,
  };
  return { report, touched: [...host.touched], notes, kubernetesVersion: version };
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
