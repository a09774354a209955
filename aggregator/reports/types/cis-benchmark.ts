import { rate, type Rating } from '../../compute/cis.js';
import { scorePercent, type CheckResult, type ScanReport } from '../../../common/scan-report.js';
import type { ReportDefinition } from '../globalreport.js';
import { csvFile, fieldsFile, type ReportFile } from '../report-file.js';
import type { ReportKind, ReportOutput, ReportSources, ReportInterval } from '../report-type.js';

export interface CisNodeInput {
  node: string;
  kubeletVersion: string;
  /** The node's latest run at the end of the interval. */
  report: ScanReport;
}

/** A node's band by the report's thresholds, as Calico Enterprise prints it. */
export type CisRating = 'HIGH' | 'MED' | 'LOW';

/** One node's counts over the checks the report selects. */
export interface CisNodeResult {
  node: string;
  benchmark: string;
  benchmarkVersion: string;
  kubeletVersion: string;
  scannedAt: string;
  pass: number;
  fail: number;
  skip: number;
  total: number;
  scorePercent: number;
  rating: CisRating;
}

export interface CisSummary {
  nodes: number;
  pass: number;
  fail: number;
  skip: number;
  total: number;
  scorePercent: number;
  highCount: number;
  medCount: number;
  lowCount: number;
  highThreshold: number;
  medThreshold: number;
  includeUnscoredTests: boolean;
}

/** A test and the nodes it failed on. */
export interface CisFailedTest {
  id: string;
  title: string;
  failedNodes: number;
  nodes: string[];
}

export interface CisData {
  /** Each node with the ids of the selected tests it failed. */
  nodes: (CisNodeResult & { failedTests: string[] })[];
  /** The numFailedTests tests failed on most nodes. */
  mostFailedTests: CisFailedTest[];
}

type CisSettings = ReportDefinition['cis'];
/** A node's result with the checks it was scored on. */
type ScoredNode = CisNodeResult & { checks: CheckResult[] };

const RATINGS: Record<Rating, CisRating> = { high: 'HIGH', medium: 'MED', low: 'LOW' };

/** "1.32" matches v1.32.x; "v1.32.4" matches exactly; "" matches all. */
function versionMatches(version: string, want: string): boolean {
  const v = version.replace(/^v/, '');
  const w = want.replace(/^v/, '');
  return v === w || v.startsWith(`${w}.`);
}

/** A check id is the id or a section of it: "4.1" covers 4.1.1 but not 4.10. */
const covers = (ids: string[], id: string) => ids.some((want) => id === want || id.startsWith(`${want}.`));

/**
 * Whether a node's check counts: the results filters whose benchmark selection
 * matches the node's kubelet version apply (none matching leaves the node out,
 * when there are filters at all); unscored checks only with includeUnscoredTests.
 */
function checkSelected(cis: CisSettings, node: CisNodeInput, c: CheckResult): boolean {
  const filters = cis.resultsFilters.filter(
    (f) =>
      !f.benchmarkSelection?.kubernetesVersion ||
      versionMatches(node.kubeletVersion, f.benchmarkSelection.kubernetesVersion),
  );
  if (cis.resultsFilters.length > 0 && filters.length === 0) return false;
  for (const f of filters) {
    if (f.include && !covers(f.include, c.id)) return false;
    if (f.exclude && covers(f.exclude, c.id)) return false;
  }
  return cis.includeUnscoredTests || c.scored;
}

/** One node's counts, score and band over its selected checks. */
function scoreNode(cis: CisSettings, n: CisNodeInput): ScoredNode {
  const checks = n.report.checks.filter((c) => checkSelected(cis, n, c));
  const pass = checks.filter((c) => c.status === 'PASS').length;
  const fail = checks.filter((c) => c.status === 'FAIL').length;
  const skip = checks.filter((c) => c.status === 'SKIP').length;
  const score = scorePercent(pass, fail);
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
    rating: RATINGS[rate(score, cis)],
    checks,
  };
}

/** Every failed test with the nodes it failed on: most nodes first, then by id in numeric order. */
function failedTests(nodes: ScoredNode[]): CisFailedTest[] {
  const failedBy = new Map<string, { id: string; title: string; nodes: string[] }>();
  for (const n of nodes) {
    for (const c of n.checks) {
      if (c.status !== 'FAIL') continue;
      const hit = failedBy.get(c.id) ?? { id: c.id, title: c.title, nodes: [] };
      hit.nodes.push(n.node);
      failedBy.set(c.id, hit);
    }
  }
  return [...failedBy.values()]
    .sort((a, b) => b.nodes.length - a.nodes.length || a.id.localeCompare(b.id, 'en', { numeric: true }))
    .map((f) => ({ id: f.id, title: f.title, failedNodes: f.nodes.length, nodes: f.nodes }));
}

function cisSummary(cis: CisSettings, nodes: ScoredNode[]): CisSummary {
  const sum = (f: (n: ScoredNode) => number) => nodes.reduce((s, n) => s + f(n), 0);
  const rated = (r: CisRating) => nodes.filter((n) => n.rating === r).length;
  const [pass, fail, skip] = [sum((n) => n.pass), sum((n) => n.fail), sum((n) => n.skip)];
  return {
    nodes: nodes.length,
    pass,
    fail,
    skip,
    total: pass + fail + skip,
    scorePercent: scorePercent(pass, fail),
    highCount: rated('HIGH'),
    medCount: rated('MED'),
    lowCount: rated('LOW'),
    highThreshold: cis.highThreshold,
    medThreshold: cis.medThreshold,
    includeUnscoredTests: cis.includeUnscoredTests,
  };
}

/** total-summary.csv, node-summary.csv, failed-tests.csv (the N most failed) and all-tests.csv, in that order. */
function cisFiles(summary: CisSummary, nodes: ScoredNode[], mostFailed: CisFailedTest[]): Record<string, ReportFile> {
  return {
    'total-summary.csv': fieldsFile(
      [summary],
      [
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
    ),
    'node-summary.csv': fieldsFile(nodes, [
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
    ]),
    'failed-tests.csv': csvFile(mostFailed, [
      ['testIndex', (f) => f.id],
      ['testDescription', (f) => f.title],
      ['failedNodeCount', (f) => f.failedNodes],
      ['failedNodes', (f) => f.nodes],
    ]),
    'all-tests.csv': csvFile(
      nodes.flatMap((n) => n.checks.map((c) => ({ node: n.node, c }))),
      [
        ['node', (r) => r.node],
        ['testIndex', (r) => r.c.id],
        ['testDescription', (r) => r.c.title],
        ['status', (r) => r.c.status],
        ['scored', (r) => r.c.scored],
        ['skipReason', (r) => r.c.skipReason ?? ''],
        ['expected', (r) => r.c.expected],
        ['actual', (r) => r.c.actual],
        ['evidence', (r) => r.c.evidence],
        ['remediation', (r) => r.c.remediation],
      ],
    ),
  };
}

/**
 * The CIS benchmark report, as Calico Enterprise's: per node and in total the
 * pass/fail/skip counts and score, nodes rated HIGH/MED/LOW by the thresholds,
 * the N most failed tests, with the report's filters applied (benchmark
 * selection by Kubernetes version, include/exclude by check id or prefix) and
 * unscored tests counted only when includeUnscoredTests is set.
 */
export function cisBenchmarkReport(def: ReportDefinition, inputs: CisNodeInput[]): ReportOutput<CisSummary, CisData> {
  const nodes = inputs.map((n) => scoreNode(def.cis, n)).sort((a, b) => a.node.localeCompare(b.node));
  const mostFailed = failedTests(nodes).slice(0, def.cis.numFailedTests);
  const summary = cisSummary(def.cis, nodes);
  return {
    summary,
    data: {
      nodes: nodes.map(({ checks, ...n }) => ({
        ...n,
        failedTests: checks.filter((c) => c.status === 'FAIL').map((c) => c.id),
      })),
      mostFailedTests: mostFailed,
    },
    files: cisFiles(summary, nodes, mostFailed),
  };
}

/** Each node's latest scan at the end of the interval; nodes that never reported are left out. */
async function latestScans({ store }: ReportSources, interval: ReportInterval): Promise<CisNodeInput[]> {
  const inputs: CisNodeInput[] = [];
  for (const n of await store.listNodes()) {
    const report = await store.nodeReport(n.name, interval.endMs);
    if (report) inputs.push({ node: n.name, kubeletVersion: n.kubeletVersion, report });
  }
  return inputs;
}

export const cisBenchmarkType: ReportKind<'cis-benchmark', CisNodeInput[], CisSummary, CisData> = {
  name: 'cis-benchmark',
  needsCluster: false,
  evidence: {
    soc2: [
      {
        criterion: 'CC6.1',
        how: 'node configuration hardened against the CIS Kubernetes Benchmark (logical access security)',
      },
      { criterion: 'CC7.2', how: 'continuous monitoring of node configuration for deviations' },
      { criterion: 'CC8.1', how: 'configuration changes on nodes are detected and scored' },
    ],
    pciDss: [
      { requirement: '2.2.1', how: 'configuration standards (CIS) applied to system components' },
      { requirement: '2.2.6', how: 'system security parameters configured to prevent misuse' },
      { requirement: '11.5.2', how: 'changes to critical configuration files are detected' },
    ],
  },
  load: latestScans,
  generate: (def, inputs) => cisBenchmarkReport(def, inputs),
};
