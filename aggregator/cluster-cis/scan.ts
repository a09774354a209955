import { createHash } from 'node:crypto';
import { scorePercent } from '../../common/scan-report.js';
import type { ClusterCheckResult } from './evaluate.js';

/**
 * One evaluation of the cluster section (CIS section 5) as the aggregator stores and serves it: the cluster's own
 * row next to the nodes' scans (GET /api/v1/cis/cluster, the summary's `cluster`, the cis-benchmark report's
 * cluster-tests.csv, the verdict_cis_cluster_* gauges).
 */
export interface ClusterScan {
  benchmark: { id: string; version: string };
  /** The API server's gitVersion ("v1.32.1"), '' when it did not say; what chose the benchmark. */
  kubernetesVersion: string;
  startedAt: string;
  durationMs: number;
  /**
   * Every section 5 check by status. CIS marks all of section 5 Manual (unscored), which is why node scores leave it
   * out; here what the aggregator decides from the API counts: pass and fail where it decided, skip where it could
   * not read what it needs, manual where no API object can decide. scorePercent is pass/(pass+fail), one decimal.
   */
  summary: { pass: number; fail: number; skip: number; manual: number; total: number; scorePercent: number };
  checks: ClusterCheckResult[];
}

/** A stored cluster scan: when it was last evaluated with these very results. */
export interface StoredClusterScan extends ClusterScan {
  /** Last evaluation that found exactly these results (the scan row is kept; only this moves on). */
  checkedAt: string;
}

/** The scan of `checks`, evaluated from `startedMs` for `durationMs`. */
export function clusterScanOf(
  checks: ClusterCheckResult[],
  benchmark: { id: string; version: string },
  kubernetesVersion: string,
  startedMs: number,
  durationMs: number,
): ClusterScan {
  const n = { PASS: 0, FAIL: 0, SKIP: 0, MANUAL: 0 };
  for (const c of checks) n[c.status]++;
  const [pass, fail, skip, manual] = [n.PASS, n.FAIL, n.SKIP, n.MANUAL];
  return {
    benchmark,
    kubernetesVersion,
    startedAt: new Date(startedMs).toISOString(),
    durationMs,
    summary: { pass, fail, skip, manual, total: checks.length, scorePercent: scorePercent(pass, fail) },
    checks,
  };
}

/**
 * What makes two evaluations the same: the benchmark and every result (status, texts, failing objects), not the
 * time or duration. An evaluation equal to the stored latest only moves its checkedAt.
 */
export function clusterScanFingerprint(scan: ClusterScan): string {
  return createHash('sha256')
    .update(JSON.stringify([scan.benchmark, scan.kubernetesVersion, scan.checks]))
    .digest('hex');
}
