import t from 'tap';
import { clusterSummary, nodeRows, rate } from '../../aggregator/compute/cis.js';
import type { LatestCheckStatus, NodeRecord } from '../../aggregator/store/index.js';

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
const fail = (n: string, id: string, scored = true): LatestCheckStatus => ({
  node: n,
  benchmarkId: 'cis-1.12',
  checkId: id,
  title: `t${id}`,
  status: 'FAIL',
  scored,
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
  const checks = [fail('a', '4.1.1', false), fail('b', '4.2.1'), fail('c', '4.2.1'), fail('c', '4.1.1')];
  const s = clusterSummary(nodes, checks, { highThreshold: 100, medThreshold: 50 });
  t.same(s, {
    nodes: 3,
    pass: 16,
    fail: 14,
    skip: 0,
    scorePercent: 53.3,
    bands: { high: 1, medium: 1, low: 1 },
    mostFailed: [
      { id: '4.2.1', title: 't4.2.1', benchmark: 'cis-1.12', failedNodes: 2 },
      { id: '4.1.1', title: 't4.1.1', benchmark: 'cis-1.12', failedNodes: 1 },
    ],
  });
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
