import { rate } from '../../compute/cis.js';
import { scorePercent, type CheckResult, type ScanReport } from '../../../common/scan-report.js';
import type { ReportDefinition } from '../globalreport.js';
import type { ReportFile } from '../result.js';

export interface CisNodeInput {
  node: string;
  kubeletVersion: string;
  /** The node's latest run at the end of the interval. */
  report: ScanReport;
}

/**
 * The CIS benchmark report, as Calico Enterprise's: per node and in total the
 * pass/fail/skip counts and score, nodes rated HIGH/MED/LOW by the thresholds,
 * the N most failed tests, with the report's filters applied (benchmark
 * selection by Kubernetes version, include/exclude by check id or prefix) and
 * unscored tests counted only when includeUnscoredTests is set.
 */
export function cisBenchmarkReport(def: ReportDefinition, inputs: CisNodeInput[]) {
  const cis = def.cis;
  const selected = (node: CisNodeInput, c: CheckResult): boolean => {
    const filters = cis.resultsFilters.filter(
      (f) =>
        !f.benchmarkSelection?.kubernetesVersion ||
        versionMatches(node.kubeletVersion, f.benchmarkSelection.kubernetesVersion),
    );
    if (cis.resultsFilters.length > 0 && filters.length === 0) return false;
    for (const f of filters) {
      if (f.include && !f.include.some((id) => c.id === id || c.id.startsWith(`${id}.`))) return false;
      if (f.exclude && f.exclude.some((id) => c.id === id || c.id.startsWith(`${id}.`))) return false;
    }
    return cis.includeUnscoredTests || c.scored;
  };
  const nodes = inputs
    .map((n) => {
      const checks = n.report.checks.filter((c) => selected(n, c));
      const pass = checks.filter((c) => c.status === 'PASS').length;
      const fail = checks.filter((c) => c.status === 'FAIL').length;
      const skip = checks.filter((c) => c.status === 'SKIP').length;
      const score = scorePercent(pass, fail);
      const band = rate(score, { highThreshold: cis.highThreshold, medThreshold: cis.medThreshold });
      return {
        node: n.node,
        benchmark: n.report.benchmark.id,
        benchmarkVersion: n.report.benchmark.version,
        kubeletVersion: n.kubeletVersion,
        scannedAt: n.report.startedAt,
        pass,
        fail,
        skip,
        total: checks.length,
        scorePercent: score,
        rating: band.toUpperCase().replace('MEDIUM', 'MED'),
        checks,
      };
    })
    .sort((a, b) => a.node.localeCompare(b.node));
  const failedBy = new Map<string, { id: string; title: string; nodes: string[] }>();
  for (const n of nodes) {
    for (const c of n.checks) {
      if (c.status !== 'FAIL') continue;
      const hit = failedBy.get(c.id) ?? { id: c.id, title: c.title, nodes: [] };
      hit.nodes.push(n.node);
      failedBy.set(c.id, hit);
    }
  }
  const failedTests = [...failedBy.values()].sort(
    (a, b) => b.nodes.length - a.nodes.length || a.id.localeCompare(b.id, 'en', { numeric: true }),
  );
  const totals = nodes.reduce((t, n) => ({ pass: t.pass + n.pass, fail: t.fail + n.fail, skip: t.skip + n.skip }), {
    pass: 0,
    fail: 0,
    skip: 0,
  });
  const summary = {
    nodes: nodes.length,
    ...totals,
    total: totals.pass + totals.fail + totals.skip,
    scorePercent: scorePercent(totals.pass, totals.fail),
    highCount: nodes.filter((n) => n.rating === 'HIGH').length,
    medCount: nodes.filter((n) => n.rating === 'MED').length,
    lowCount: nodes.filter((n) => n.rating === 'LOW').length,
    highThreshold: cis.highThreshold,
    medThreshold: cis.medThreshold,
    includeUnscoredTests: cis.includeUnscoredTests,
  };
  const files: Record<string, ReportFile> = {
    'total-summary.csv': {
      header: [
        'nodes',
        'highCount',
        'medCount',
        'lowCount',
        'pass',
        'fail',
        'skip',
        'total',
        'scorePercent',
        'highThreshold',
        'medThreshold',
        'includeUnscoredTests',
      ],
      rows: [
        [
          summary.nodes,
          summary.highCount,
          summary.medCount,
          summary.lowCount,
          summary.pass,
          summary.fail,
          summary.skip,
          summary.total,
          summary.scorePercent,
          cis.highThreshold,
          cis.medThreshold,
          cis.includeUnscoredTests,
        ],
      ],
    },
    'node-summary.csv': {
      header: [
        'node',
        'benchmark',
        'benchmarkVersion',
        'kubeletVersion',
        'rating',
        'scorePercent',
        'pass',
        'fail',
        'skip',
        'total',
        'scannedAt',
      ],
      rows: nodes.map((n) => [
        n.node,
        n.benchmark,
        n.benchmarkVersion,
        n.kubeletVersion,
        n.rating,
        n.scorePercent,
        n.pass,
        n.fail,
        n.skip,
        n.total,
        n.scannedAt,
      ]),
    },
    'failed-tests.csv': {
      header: ['testIndex', 'testDescription', 'failedNodeCount', 'failedNodes'],
      rows: failedTests.slice(0, cis.numFailedTests).map((f) => [f.id, f.title, f.nodes.length, f.nodes]),
    },
    'all-tests.csv': {
      header: [
        'node',
        'testIndex',
        'testDescription',
        'status',
        'scored',
        'skipReason',
        'expected',
        'actual',
        'evidence',
        'remediation',
      ],
      rows: nodes.flatMap((n) =>
        n.checks.map((c) => [
          n.node,
          c.id,
          c.title,
          c.status,
          c.scored,
          c.skipReason ?? '',
          c.expected,
          c.actual,
          c.evidence,
          c.remediation,
        ]),
      ),
    },
  };
  return {
    summary,
    data: {
      nodes: nodes.map(({ checks, ...n }) => ({
        ...n,
        failedTests: checks.filter((c) => c.status === 'FAIL').map((c) => c.id),
      })),
      mostFailedTests: failedTests
        .slice(0, cis.numFailedTests)
        .map((f) => ({ id: f.id, title: f.title, failedNodes: f.nodes.length, nodes: f.nodes })),
    },
    files,
  };
}

/** "1.32" matches v1.32.x; "v1.32.4" matches exactly; "" matches all. */
function versionMatches(version: string, want: string): boolean {
  const v = version.replace(/^v/, '');
  const w = want.replace(/^v/, '');
  return v === w || v.startsWith(`${w}.`);
}
