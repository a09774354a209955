import type { Logger } from 'pino';
import { bundledBenchmarkIndex, loadBundledBenchmark, pickBenchmark } from '../../agent/cis/benchmark-index.js';
import { KubeApiError, type KubeClient } from '../../common/kube-client.js';
import type { Store } from '../store/index.js';
import { evaluateClusterSection, type ClusterBenchmark } from './evaluate.js';
import { readClusterObjects } from './read.js';
import { clusterScanFingerprint, clusterScanOf } from './scan.js';

/** How one round ended: `stored` (new results), `unchanged` (same as the latest), `failed`, or skipped. */
export type ClusterScanOutcome = 'stored' | 'unchanged' | 'failed' | 'not-leader' | 'not-due';

export interface ClusterCisScannerOptions {
  kube: Pick<KubeClient, 'get'>;
  store: Store;
  log: Logger;
  /** With several replicas only the leader evaluates (the report scheduler's Lease); one replica always is. */
  isLeader: () => Promise<boolean>;
  now?: () => number;
  /** Evaluate at most this often, ms (aggregator/defaults.ts timers.clusterCisIntervalMs). */
  intervalMs: number;
  /** Ask whether a round is due this often, ms (so a new leader evaluates soon). */
  checkIntervalMs: number;
  /** Each round's outcome (the verdict_cis_cluster_scans_total counter). */
  onOutcome?: (outcome: 'stored' | 'unchanged' | 'failed') => void;
  /** The benchmark for a Kubernetes version (default: the bundled one pickBenchmark chooses). */
  benchmarkFor?: (kubernetesVersion: string) => ClusterBenchmark;
}

const bundledBenchmarkFor = (version: string): ClusterBenchmark =>
  loadBundledBenchmark(pickBenchmark(bundledBenchmarkIndex(), version || undefined).benchmark.id);

/**
 * Evaluates CIS section 5 against the cluster periodically and stores it as the cluster's scan. The API server's
 * version chooses the benchmark, as a node's kubelet version chooses the node's. Rounds never overlap; a round that
 * fails (the API server unreachable) is logged and counted, and the next tick tries again. A kind the aggregator may
 * not list is no failure: its checks SKIP naming the missing permission.
 */
export class ClusterCisScanner {
  private timer?: NodeJS.Timeout;
  private running?: Promise<ClusterScanOutcome>;
  private lastRunMs?: number;
  private stopped = false;
  private readonly now: () => number;

  constructor(private readonly o: ClusterCisScannerOptions) {
    this.now = o.now ?? Date.now;
  }

  start(): void {
    this.timer = setInterval(() => void this.tick(), this.o.checkIntervalMs);
    this.timer.unref();
    void this.tick();
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
  }

  /** One tick: evaluate when leader and due (never two at once). */
  tick(): Promise<ClusterScanOutcome> {
    this.running ??= this.round().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async round(): Promise<ClusterScanOutcome> {
    if (!(await this.o.isLeader().catch(() => false))) {
      // Leadership lost: when it comes back, evaluate at once (another replica may have held it meanwhile).
      this.lastRunMs = undefined;
      return 'not-leader';
    }
    if (this.lastRunMs !== undefined && this.now() - this.lastRunMs < this.o.intervalMs) return 'not-due';
    this.lastRunMs = this.now();
    try {
      return await this.evaluate();
    } catch (err) {
      this.o.log.warn({ err: (err as Error).message }, 'cluster section 5 evaluation failed; will retry');
      this.o.onOutcome?.('failed');
      // Retry on the next tick, not a whole interval later.
      this.lastRunMs = undefined;
      return 'failed';
    }
  }

  /**
   * The API server's gitVersion (GET /version, readable by every authenticated user through system:discovery). An
   * API server that answers with an error status (a proxy that hides /version) leaves it '' and the newest benchmark
   * is used; one that cannot be reached fails the round, so an outage never stores an all-SKIP scan over a real one.
   */
  private async serverVersion(): Promise<string> {
    try {
      const v = await this.o.kube.get<{ gitVersion?: unknown }>('/version');
      return typeof v?.gitVersion === 'string' ? v.gitVersion : '';
    } catch (err) {
      // 4xx: the API server answered and will not say; unreachable (status 0) or 5xx: it is not serving.
      if (err instanceof KubeApiError && err.status >= 400 && err.status < 500) return '';
      throw err;
    }
  }

  /** Evaluate now, whatever the schedule (tests; the leader's round). */
  async evaluate(): Promise<'stored' | 'unchanged'> {
    const started = this.now();
    const t0 = performance.now();
    const kubernetesVersion = await this.serverVersion();
    const benchmark = (this.o.benchmarkFor ?? bundledBenchmarkFor)(kubernetesVersion);
    const objects = await readClusterObjects(this.o.kube);
    const checks = evaluateClusterSection(objects, { benchmark });
    const scan = clusterScanOf(
      checks,
      { id: benchmark.id, version: benchmark.version },
      kubernetesVersion,
      started,
      Math.round(performance.now() - t0),
    );
    if (this.stopped) throw new Error('stopped during the evaluation; not stored');
    const { stored } = await this.o.store.recordClusterScan(scan, clusterScanFingerprint(scan), this.now());
    const outcome = stored ? 'stored' : 'unchanged';
    this.o.onOutcome?.(outcome);
    this.o.log.info(
      { benchmark: benchmark.id, kubernetesVersion, ...scan.summary, durationMs: scan.durationMs, outcome },
      stored ? 'cluster section 5 evaluated; results changed' : 'cluster section 5 evaluated; unchanged',
    );
    return outcome;
  }
}
