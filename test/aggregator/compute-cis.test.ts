import t from 'tap';
import {
  clusterScoreRatio,
  clusterSummary,
  failingNodesPerCheck,
  mostFailedChecks,
  nodeRows,
  rate,
} from '../../aggregator/compute/cis.js';
import type { NodeCisSummary, NodeRecord } from '../../aggregator/store/index.js';

const node = (name: string, pass: number, fail: number, skip = 0): NodeRecord => ({
  name,
  role: 'worker',
  labels: {},
  kubeletVersion: '',
  kubernetesVersion: '',
  osImage: '',
  kernelVersion: '',
  architecture: '',
  agentVersion: '',
  bootId: 'b',
  connected: true,
  firstSeenMs: 0,
  lastSeenMs: 0,
  latest: {
    benchmarkId: 'cis-1.12',
    benchmarkVersion: '1.12.0',
    role: 'worker',
    startedAtMs: 0,
    pass,
    fail,
    skip,
    scorePercent: pass + fail === 0 ? 0 : Math.round((pass / (pass + fail)) * 1000) / 10,
  },
});
const summary = (
  n: string,
  runId: number,
  pass: number,
  fail: number,
  failedChecks: string[] = [],
): NodeCisSummary => ({
  node: n,
  runId,
  benchmarkId: 'cis-1.12',
  role: 'worker',
  pass,
  fail,
  skip: 0,
  scorePercent: pass + fail === 0 ? 0 : Math.round((pass / (pass + fail)) * 1000) / 10,
  failedChecks,
});

t.test('bands follow the thresholds: high at or above high, medium at or above medium', async (t) => {
  const th = { highThreshold: 100, medThreshold: 50 };
  t.equal(rate(100, th), 'high');
  t.equal(rate(99.9, th), 'medium');
  t.equal(rate(50, th), 'medium');
  t.equal(rate(49.9, th), 'low');
});

t.test("the cluster score pools every node's scored checks; most failed counts nodes", async (t) => {
  const nodes = [node('a', 10, 0), node('b', 5, 5), node('c', 1, 9), { ...node('d', 0, 0), latest: undefined }];
  // a's unscored 4.1.1 failure is not in its failedChecks: the store keeps scored failures only.
  const summaries = [
    summary('a', 1, 10, 0),
    summary('b', 2, 5, 5, ['4.2.1']),
    summary('c', 3, 1, 9, ['4.1.1', '4.2.1']),
  ];
  t.same(
    mostFailedChecks(summaries).map((f) => [f.id, f.failedNodes, f.sampleRunId]),
    [
      ['4.2.1', 2, 2],
      ['4.1.1', 1, 3],
    ],
    'each most failed check names a run that fails it, where its title is read',
  );
  const titles = new Map([
    ['2 4.2.1', 't4.2.1'],
    ['3 4.1.1', 't4.1.1'],
  ]);
  const s = clusterSummary(summaries, titles, { highThreshold: 100, medThreshold: 50 });
  t.strictSame(s, {
    nodes: 3,
    pass: 16,
    fail: 14,
    skip: 0,
    scorePercent: 53.3,
    bands: { high: 1, medium: 1, low: 1 },
    mostFailed: [
      { id: '4.2.1', title: 't4.2.1', failedNodes: 2 },
      { id: '4.1.1', title: 't4.1.1', failedNodes: 1 },
    ],
    notAssessable: 0,
    cluster: null,
  });
  t.equal(clusterSummary(summaries, titles, { highThreshold: 100, medThreshold: 50, benchmark: 'cis-1.9' }).nodes, 0);
  const rows = nodeRows(nodes);
  t.same(
    rows.map((r) => [r.name, r.rating, r.scorePercent]),
    [
      ['a', 'high', 100],
      ['b', 'medium', 50],
      ['c', 'low', 10],
      ['d', null, null],
    ],
  );
});

t.test('a node that is not assessable has no score and counts apart from every figure', async (t) => {
  const why = 'no kubelet found under /host (no kubelet, k3s or rke2 process)';
  const summaries = [
    summary('a', 1, 10, 0),
    summary('b', 2, 5, 5, ['4.2.1']),
    { ...summary('x', 3, 0, 12, ['4.2.1', '4.1.1']), notAssessable: why },
  ];
  const s = clusterSummary(summaries, new Map(), { highThreshold: 100, medThreshold: 50 });
  t.equal(s.nodes, 2, 'left out of the node count');
  t.equal(s.fail, 5, 'and of the counts');
  t.same(s.bands, { high: 1, medium: 1, low: 0 }, 'and of the bands (no low band for it)');
  t.same(
    s.mostFailed.map((f) => [f.id, f.failedNodes]),
    [['4.2.1', 1]],
    'and of most failed',
  );
  t.equal(s.notAssessable, 1, 'counted on its own');
  t.equal(clusterScoreRatio(summaries, 'cis-1.12'), 15 / 20);
  t.same(
    failingNodesPerCheck(summaries).map((f) => f.id),
    ['4.2.1'],
  );
  const x = node('x', 0, 12);
  x.latest = { ...x.latest!, notAssessable: why };
  const [row] = nodeRows([x]);
  t.equal(row?.scorePercent, null, 'no score');
  t.equal(row?.rating, null, 'no rating');
  t.equal(row?.benchmark, null);
  t.equal(row?.fail, 0, 'no counts that look like results');
  t.equal(row?.notAssessable, why, 'the reason instead');
  t.equal(nodeRows([node('a', 1, 0)])[0]?.notAssessable, undefined, 'an assessed node has no such field');
});

t.test('a node counts as connected only while its agent was heard from in the last 3 minutes', async (t) => {
  const { isConnected } = await import('../../aggregator/compute/cis.js');
  const now = Date.parse('2026-11-20T10:00:00Z');
  t.equal(isConnected({ connected: true, lastSeenMs: now - 60_000 }, now), true);
  t.equal(
    isConnected({ connected: true, lastSeenMs: now - 181_000 }, now),
    false,
    'a stream that died with its replica',
  );
  t.equal(isConnected({ connected: false, lastSeenMs: now }, now), false);
});
