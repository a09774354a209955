import t from 'tap';
import { parseReportsYaml, type ReportDefinition } from '../../../aggregator/reports/globalreport.js';
import { cisBenchmarkReport, type CisNodeInput } from '../../../aggregator/reports/types/cis-benchmark.js';
import { toCsv } from '../../../common/csv.js';
import { reportOf } from '../../fixtures/reports.js';

// The cis-benchmark generator on three small nodes, every number worked out by
// hand below. reportOf gives each check the title "check <id>", expected "x",
// actual "y", evidence "test", remediation "fix", a SKIP the reason
// "not applicable: test", and the scan the time 2026-11-01T10:00:00.000Z.

const AT = '2026-11-01T10:00:00.000Z';
const INTERVAL = { start: '2026-10-26T00:00:00.000Z', end: '2026-11-02T00:00:00.000Z' };
const report = (def: ReportDefinition, nodes: CisNodeInput[]) => cisBenchmarkReport(def, nodes, INTERVAL);

function cisDef(cis = ''): ReportDefinition {
  const yaml = `apiVersion: compliance.verdict.dev/v1
kind: GlobalReport
metadata: {name: cis}
spec:
  reportType: cis-benchmark
${cis}`;
  return parseReportsYaml(yaml, 'test')[0] as ReportDefinition;
}

// Node a: 2 PASS, 1 FAIL (1.10).
// Node b: 1 PASS, 2 FAIL (1.2, 1.10), 1 SKIP, and 3.1 FAIL but unscored.
// Node c: 1 PASS.
const inputs = (): CisNodeInput[] => [
  {
    node: 'b',
    kubeletVersion: 'v1.32.1',
    report: reportOf(
      'b',
      { '1.1': 'PASS', '1.2': 'FAIL', '1.10': 'FAIL', '2.1': 'SKIP', '3.1': 'FAIL' },
      { unscored: ['3.1'] },
    ),
  },
  { node: 'a', kubeletVersion: 'v1.31.0', report: reportOf('a', { '1.1': 'PASS', '1.2': 'PASS', '1.10': 'FAIL' }) },
  { node: 'c', kubeletVersion: 'v1.320.0', report: reportOf('c', { '1.1': 'PASS' }) },
];

t.test('defaults: unscored checks left out, HIGH at 100, MED from 50, nodes by name, most failed first', async (t) => {
  const out = report(cisDef(), inputs());
  // a: 2 pass / 3 scored-and-decided = 66.7% -> MED; b: 1 / 3 = 33.3% -> LOW; c: 1 / 1 = 100% -> HIGH.
  // Total: pass 2+1+1 = 4, fail 1+2+0 = 3, skip 1, total 8; 4 / 7 = 57.1%.
  t.same(out.summary, {
    nodes: 3,
    pass: 4,
    fail: 3,
    skip: 1,
    total: 8,
    scorePercent: 57.1,
    highCount: 1,
    medCount: 1,
    lowCount: 1,
    highThreshold: 100,
    medThreshold: 50,
    includeUnscoredTests: false,
    notRatedCount: 0,
    notRated: [],
  });
  // Calico's columns first (times as Go's RFC 3339, no fraction), then Verdict's.
  t.same(out.files['total-summary.csv'], {
    header: [
      'startTime',
      'endTime',
      'type',
      'hiPercentThreshold',
      'medPercentThreshold',
      'hiNodeCount',
      'medNodeCount',
      'lowNodeCount',
      'notRatedNodeCount',
      'notRatedNodes',
      'nodes',
      'pass',
      'fail',
      'skip',
      'total',
      'scorePercent',
      'includeUnscoredTests',
    ],
    rows: [
      ['2026-10-26T00:00:00Z', '2026-11-02T00:00:00Z', 'kube', 100, 50, 1, 1, 1, 0, [], 3, 4, 3, 1, 8, 57.1, false],
    ],
  });
  // testsUnknown is the SKIPs; testsTotal is pass + fail, as Calico's reporter counts a node's total.
  t.same(out.files['node-summary.csv'], {
    header: [
      'node',
      'version',
      'status',
      'testsPassing',
      'testsFailing',
      'testsUnknown',
      'testsTotal',
      'notRatedReason',
      'benchmark',
      'benchmarkVersion',
      'scorePercent',
      'scannedAt',
    ],
    rows: [
      ['a', 'v1.31.0', 'MED', 2, 1, 0, 3, '', 'cis-1.12', '1.12.0', 66.7, AT],
      ['b', 'v1.32.1', 'LOW', 1, 2, 1, 3, '', 'cis-1.12', '1.12.0', 33.3, AT],
      ['c', 'v1.320.0', 'HIGH', 1, 0, 0, 1, '', 'cis-1.12', '1.12.0', 100, AT],
    ],
  });
  const TEST_COLUMNS = [
    'nodeName',
    'testIndex',
    'testDescription',
    'status',
    'scored',
    'remediation',
    'skipReason',
    'expected',
    'actual',
    'evidence',
  ];
  // One row per node and failing test (the unscored 3.1 is not selected).
  t.same(out.files['failed-tests.csv'], {
    header: TEST_COLUMNS,
    rows: [
      ['a', '1.10', 'check 1.10', 'FAIL', true, 'fix', '', 'x', 'y', 'test'],
      ['b', '1.2', 'check 1.2', 'FAIL', true, 'fix', '', 'x', 'y', 'test'],
      ['b', '1.10', 'check 1.10', 'FAIL', true, 'fix', '', 'x', 'y', 'test'],
    ],
  });
  // A SKIP is Calico's INFO (a test not decided); the reason stays in skipReason.
  t.same(out.files['all-tests.csv'], {
    header: TEST_COLUMNS,
    rows: [
      ['a', '1.1', 'check 1.1', 'PASS', true, 'fix', '', 'x', 'y', 'test'],
      ['a', '1.2', 'check 1.2', 'PASS', true, 'fix', '', 'x', 'y', 'test'],
      ['a', '1.10', 'check 1.10', 'FAIL', true, 'fix', '', 'x', 'y', 'test'],
      ['b', '1.1', 'check 1.1', 'PASS', true, 'fix', '', 'x', 'y', 'test'],
      ['b', '1.2', 'check 1.2', 'FAIL', true, 'fix', '', 'x', 'y', 'test'],
      ['b', '1.10', 'check 1.10', 'FAIL', true, 'fix', '', 'x', 'y', 'test'],
      ['b', '2.1', 'check 2.1', 'INFO', true, 'fix', 'not applicable: test', 'x', 'y', 'test'],
      ['c', '1.1', 'check 1.1', 'PASS', true, 'fix', '', 'x', 'y', 'test'],
    ],
  });
  // 1.10 failed on a and b (2 nodes), 1.2 on b only.
  t.same(out.files['most-failed-tests.csv'], {
    header: ['testIndex', 'testDescription', 'failedNodeCount', 'failedNodes'],
    rows: [
      ['1.10', 'check 1.10', 2, ['a', 'b']],
      ['1.2', 'check 1.2', 1, ['b']],
    ],
  });
  t.equal(
    toCsv(out.files['most-failed-tests.csv']!.header, out.files['most-failed-tests.csv']!.rows),
    'testIndex,testDescription,failedNodeCount,failedNodes\r\n1.10,check 1.10,2,a;b\r\n1.2,check 1.2,1,b\r\n',
    'the failing nodes are one cell, joined with ;',
  );
  t.same(Object.keys(out.files), [
    'total-summary.csv',
    'node-summary.csv',
    'failed-tests.csv',
    'all-tests.csv',
    'most-failed-tests.csv',
  ]);
  t.same(
    out.data.nodes.map((n) => [n.node, n.rating, n.failedTests]),
    [
      ['a', 'MED', ['1.10']],
      ['b', 'LOW', ['1.2', '1.10']],
      ['c', 'HIGH', []],
    ],
  );
  t.same(out.data.mostFailedTests, [
    { id: '1.10', title: 'check 1.10', failedNodes: 2, nodes: ['a', 'b'] },
    { id: '1.2', title: 'check 1.2', failedNodes: 1, nodes: ['b'] },
  ]);
});

t.test('thresholds, unscored tests included, and the N most failed (ties by id in numeric order)', async (t) => {
  const out = report(
    cisDef('  cis: {highThreshold: 60, medThreshold: 30, includeUnscoredTests: true, numFailedTests: 2}\n'),
    inputs(),
  );
  // b now counts 3.1: 1 pass, 3 fail -> 25% -> LOW (below 30); a: 66.7% -> HIGH (60 and up); c: 100% -> HIGH.
  t.match(out.summary, {
    pass: 4,
    fail: 4,
    skip: 1,
    total: 9,
    scorePercent: 50,
    highCount: 2,
    medCount: 0,
    lowCount: 1,
  });
  t.same(out.files['total-summary.csv']!.rows[0]!.slice(3, 8), [60, 30, 2, 0, 1]);
  t.same(
    out.files['node-summary.csv']!.rows.map((r) => [r[0], r[2], r[10]]),
    [
      ['a', 'HIGH', 66.7],
      ['b', 'LOW', 25],
      ['c', 'HIGH', 100],
    ],
  );
  // 1.10 on two nodes first; then 1.2 and 3.1 on one each, 1.2 before 3.1; only two kept.
  t.same(
    out.files['most-failed-tests.csv']!.rows.map((r) => r[0]),
    ['1.10', '1.2'],
  );
  t.same(
    out.data.mostFailedTests.map((f) => f.id),
    ['1.10', '1.2'],
  );
  // failed-tests.csv is every failing node and test, not the N most failed: 3.1 (unscored, now included) too.
  t.same(
    out.files['failed-tests.csv']!.rows.map((r) => [r[0], r[1], r[4]]),
    [
      ['a', '1.10', true],
      ['b', '1.2', true],
      ['b', '1.10', true],
      ['b', '3.1', false],
    ],
  );
});

t.test('ties between test ids sort numerically: 1.2 before 1.10', async (t) => {
  const out = report(cisDef(), [
    { node: 'n', kubeletVersion: 'v1.32.0', report: reportOf('n', { '1.10': 'FAIL', '1.2': 'FAIL', '1.9': 'FAIL' }) },
  ]);
  t.same(
    out.files['most-failed-tests.csv']!.rows.map((r) => r[0]),
    ['1.2', '1.9', '1.10'],
  );
});

t.test('results filters: by kubelet version, include and exclude by id or section', async (t) => {
  const out = report(
    cisDef(`  cis:
    resultsFilters:
    - benchmarkSelection: {kubernetesVersion: "1.32"}
      include: ["1"]
      exclude: ["1.2"]
`),
    inputs(),
  );
  // a (v1.31.0) and c (v1.320.0, not a 1.32 patch release) match no filter: listed, not rated, with the reason.
  // b (v1.32.1): section 1 without 1.2 leaves 1.1 PASS and 1.10 FAIL -> 50% -> MED.
  t.same(
    out.files['node-summary.csv']!.rows.map((r) => r.slice(0, 8)),
    [
      [
        'a',
        'v1.31.0',
        '',
        0,
        0,
        0,
        0,
        'kubelet v1.31.0 matches no resultsFilters benchmarkSelection (kubernetesVersion 1.32)',
      ],
      ['b', 'v1.32.1', 'MED', 1, 1, 0, 2, ''],
      [
        'c',
        'v1.320.0',
        '',
        0,
        0,
        0,
        0,
        'kubelet v1.320.0 matches no resultsFilters benchmarkSelection (kubernetesVersion 1.32)',
      ],
    ],
  );
  t.same(
    out.files['all-tests.csv']!.rows.map((r) => [r[0], r[1]]),
    [
      ['b', '1.1'],
      ['b', '1.10'],
    ],
  );
  // Not LOW: the two unmatched nodes are in no band.
  t.match(out.summary, {
    nodes: 3,
    pass: 1,
    fail: 1,
    skip: 0,
    total: 2,
    scorePercent: 50,
    highCount: 0,
    medCount: 1,
    lowCount: 0,
    notRatedCount: 2,
  });
  t.same(
    out.summary.notRated.map((n) => n.node),
    ['a', 'c'],
  );
  t.same(out.files['total-summary.csv']!.rows[0]!.slice(5, 10), [0, 1, 0, 2, ['a', 'c']]);
  t.same(
    out.data.nodes.map((n) => [n.node, n.rating]),
    [
      ['a', null],
      ['b', 'MED'],
      ['c', null],
    ],
  );
});

t.test('an exact kubelet version selects only that release; "1.1" covers 1.1.x but not 1.10', async (t) => {
  const out = report(
    cisDef(`  cis:
    resultsFilters:
    - benchmarkSelection: {kubernetesVersion: "v1.32.1"}
      include: ["1.1"]
`),
    inputs(),
  );
  t.same(
    out.files['all-tests.csv']!.rows.map((r) => [r[0], r[1]]),
    [['b', '1.1']],
  );
});

t.test(
  'the weekly-cis case: a 100% node whose kubelet version is unknown is not rated LOW on 0 tests, but left out with the reason',
  async (t) => {
    const out = report(
      cisDef(`  cis:
    resultsFilters:
    - benchmarkSelection: {kubernetesVersion: "1.32"}
      exclude: ["1.1.12"]
`),
      [
        { node: 'worker', kubeletVersion: '', report: reportOf('worker', { '4.1.1': 'PASS', '4.2.1': 'PASS' }) },
        {
          node: 'cp',
          kubeletVersion: 'v1.32.2',
          report: reportOf('cp', { '1.1.1': 'PASS', '1.1.12': 'FAIL', '1.2.1': 'FAIL' }),
        },
      ],
    );
    // cp: 1.1.12 excluded leaves 1.1.1 PASS and 1.2.1 FAIL -> 50% -> MED. worker: unknown version, no band.
    t.match(out.summary, { nodes: 2, highCount: 0, medCount: 1, lowCount: 0, notRatedCount: 1 });
    t.same(out.summary.notRated, [
      {
        node: 'worker',
        reason:
          'kubelet version unknown, so no resultsFilters benchmarkSelection (kubernetesVersion 1.32) can match it',
      },
    ]);
    t.same(
      out.files['node-summary.csv']!.rows.map((r) => r.slice(0, 7)),
      [
        ['cp', 'v1.32.2', 'MED', 1, 1, 0, 2],
        ['worker', '', '', 0, 0, 0, 0],
      ],
    );
  },
);

t.test('a node the filters leave no checks of, or only undecided ones, is not rated either', async (t) => {
  const out = report(cisDef(`  cis:\n    resultsFilters:\n    - include: ["5"]\n`), [
    { node: 'none', kubeletVersion: 'v1.32.0', report: reportOf('none', { '1.1': 'PASS', '1.2': 'FAIL' }) },
    { node: 'skips', kubeletVersion: 'v1.32.0', report: reportOf('skips', { '5.1': 'SKIP', '5.2': 'SKIP' }) },
    { node: 'rated', kubeletVersion: 'v1.32.0', report: reportOf('rated', { '5.1': 'PASS' }) },
  ]);
  t.same(
    out.data.nodes.map((n) => [n.node, n.rating, n.notRatedReason]),
    [
      [
        'none',
        null,
        'the report selects none of its 2 checks (resultsFilters include/exclude, unscored tests left out)',
      ],
      ['rated', 'HIGH', ''],
      ['skips', null, 'none of its 2 selected checks could be decided (all SKIP): no score to rate'],
    ],
  );
  t.match(out.summary, { highCount: 1, medCount: 0, lowCount: 0, notRatedCount: 2 });
});

t.test('no nodes: zeros, a score of 0, and the files with their headers only', async (t) => {
  const out = report(cisDef(), []);
  t.same(out.files['total-summary.csv']!.rows, [
    ['2026-10-26T00:00:00Z', '2026-11-02T00:00:00Z', 'kube', 100, 50, 0, 0, 0, 0, [], 0, 0, 0, 0, 0, 0, false],
  ]);
  for (const name of ['node-summary.csv', 'failed-tests.csv', 'all-tests.csv', 'most-failed-tests.csv'])
    t.same(out.files[name]!.rows, []);
  t.same(out.data, { nodes: [], mostFailedTests: [] });
});
