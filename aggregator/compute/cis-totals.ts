import { scorePercent } from '../../common/scan-report.js';
import type { StoredClusterScan } from '../cluster-cis/scan.js';
import type { NodeCisSummary } from '../store/index.js';
import {
  byFailedNodes,
  clusterScanSummary,
  DEFAULT_THRESHOLDS,
  rate,
  type ClusterSummary,
  type FailingCheck,
  type Thresholds,
} from './cis.js';

/** A scored check failing on some nodes (no sample run: titles are looked up by benchmark and id). */
export type CheckFailures = Omit<FailingCheck, 'sampleRunId'>;

interface BenchmarkTotals {
  nodes: number;
  pass: number;
  fail: number;
  skip: number;
}

const checkKey = (benchmark: string, id: string): string => `${benchmark}\u0000${id}`;

/**
 * The cluster figures of clusterSummary, failingNodesPerCheck and clusterScoreRatio, kept as node summaries come,
 * change and go (issue 13): a change costs the failed checks of one node, not a pass over 5,000. `version` moves
 * with every change, so what is made from the totals (a serialized answer) can be kept until it does.
 */
export class CisTotals {
  private readonly summaries = new Map<string, NodeCisSummary>();
  private readonly benchmarks = new Map<string, BenchmarkTotals>();
  private readonly failing = new Map<string, CheckFailures>();
  private notAssessableNodes = 0;
  private sorted: CheckFailures[] | undefined;
  version = 0;

  /** The node's summary is now `s` (undefined: it has none, or the node is gone). */
  set(node: string, s: NodeCisSummary | undefined): void {
    const old = this.summaries.get(node);
    if (old === s) return;
    if (old) this.count(old, -1);
    if (s) {
      this.summaries.set(node, s);
      this.count(s, 1);
    } else this.summaries.delete(node);
    this.sorted = undefined;
    this.version++;
  }

  get(node: string): NodeCisSummary | undefined {
    return this.summaries.get(node);
  }

  private count(s: NodeCisSummary, d: 1 | -1): void {
    if (s.notAssessable !== undefined) {
      this.notAssessableNodes += d;
      return;
    }
    let b = this.benchmarks.get(s.benchmarkId);
    if (!b) this.benchmarks.set(s.benchmarkId, (b = { nodes: 0, pass: 0, fail: 0, skip: 0 }));
    b.nodes += d;
    b.pass += d * s.pass;
    b.fail += d * s.fail;
    b.skip += d * s.skip;
    if (b.nodes === 0) this.benchmarks.delete(s.benchmarkId);
    for (const id of s.failedChecks) {
      const key = checkKey(s.benchmarkId, id);
      let f = this.failing.get(key);
      if (!f) this.failing.set(key, (f = { id, benchmark: s.benchmarkId, failedNodes: 0 }));
      f.failedNodes += d;
      if (f.failedNodes === 0) this.failing.delete(key);
    }
  }

  /** Scored checks by how many assessable nodes fail them, most first: failingNodesPerCheck's order. */
  failingChecks(): readonly CheckFailures[] {
    return (this.sorted ??= [...this.failing.values()].sort(byFailedNodes));
  }

  /** The benchmarks assessable nodes ran. */
  benchmarkIds(): string[] {
    return [...this.benchmarks.keys()];
  }

  /** Exact pass/(pass+fail) of the assessable nodes of `benchmark`, as clusterScoreRatio. */
  scoreRatio(benchmark: string): number {
    const b = this.benchmarks.get(benchmark);
    return b === undefined || b.pass + b.fail === 0 ? 0 : b.pass / (b.pass + b.fail);
  }

  /** One run that fails the check (where its title is read), if any node's latest run still does. */
  sampleRun(f: Pick<CheckFailures, 'benchmark' | 'id'>): number | undefined {
    for (const s of this.summaries.values())
      if (s.notAssessable === undefined && s.benchmarkId === f.benchmark && s.failedChecks.includes(f.id))
        return s.runId;
    return undefined;
  }

  /** The checks summary() lists as most failed (look their titles up before calling it). */
  mostFailed(options: { benchmark?: string; mostFailedLimit?: number } = {}): CheckFailures[] {
    const limit = options.mostFailedLimit ?? 10;
    const out: CheckFailures[] = [];
    for (const f of this.failingChecks()) {
      if (out.length >= limit) break;
      if (!options.benchmark || f.benchmark === options.benchmark) out.push(f);
    }
    return out;
  }

  /** clusterSummary over the summaries held, with `title` naming each most failed check. */
  summary(
    title: (f: CheckFailures) => string,
    options: Thresholds & { benchmark?: string; mostFailedLimit?: number } = DEFAULT_THRESHOLDS,
    cluster?: StoredClusterScan,
  ): ClusterSummary {
    const sum = { pass: 0, fail: 0, skip: 0 };
    let nodes = 0;
    for (const [id, b] of this.benchmarks)
      if (!options.benchmark || id === options.benchmark) {
        nodes += b.nodes;
        sum.pass += b.pass;
        sum.fail += b.fail;
        sum.skip += b.skip;
      }
    // Bands depend on the thresholds asked for: one pass over numbers, no allocation.
    const bands = { high: 0, medium: 0, low: 0 };
    for (const s of this.summaries.values())
      if (s.notAssessable === undefined && (!options.benchmark || s.benchmarkId === options.benchmark))
        bands[rate(s.scorePercent, options)]++;
    return {
      nodes,
      ...sum,
      scorePercent: scorePercent(sum.pass, sum.fail),
      bands,
      mostFailed: this.mostFailed(options).map((f) => ({ id: f.id, title: title(f), failedNodes: f.failedNodes })),
      notAssessable: this.notAssessableNodes,
      cluster: clusterScanSummary(cluster),
    };
  }
}
