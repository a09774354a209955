import t from 'tap';
import { reportToWire } from '../../proto/convert.js';
import { HELLO, rawAgentStream, startTestAggregator } from '../fixtures/aggregator.js';
import { reportOf } from '../fixtures/reports.js';

// Issue 14: a root with no kubelet (a missing host mount, the wrong --host-root) is "not assessable", never 0%.
// The BenchmarkRun carries the reason (field 8) over the real gRPC stream; the node shows it with no score, the
// summary counts it apart, and /metrics has no score series for it, so no "node critical" alert fires.

const WHY =
  'no kubelet found under /host (no kubelet, k3s or rke2 process, no kubelet.service unit, no kubelet config or kubeconfig)';

const notAssessableRun = (node: string, seq: number) => ({
  benchmarkRun: reportToWire({ ...reportOf(node, { '4.1.1': 'FAIL', '4.2.1': 'FAIL' }), notAssessable: WHY }, seq),
});
const scoredRun = (node: string, seq: number) => ({
  benchmarkRun: reportToWire(reportOf(node, { '4.1.1': 'PASS', '4.2.1': 'FAIL' }), seq),
});

async function get<T>(port: number, path: string): Promise<T> {
  const r = await fetch(`http://127.0.0.1:${port}${path}`);
  if (r.status !== 200) throw new Error(`${path}: ${r.status} ${await r.text()}`);
  return (path === '/metrics' ? await r.text() : await r.json()) as T;
}

t.test('a not-assessable node shows its reason, no score; counted apart in the summary and metrics', async (t) => {
  const agg = await startTestAggregator(t);
  const empty = rawAgentStream(agg.grpcPort);
  const real = rawAgentStream(agg.grpcPort);
  t.teardown(() => (empty.close(), real.close()));
  empty.send(HELLO('empty-root'));
  empty.send(notAssessableRun('empty-root', 1));
  real.send(HELLO('worker-1'));
  real.send(scoredRun('worker-1', 1));
  await Promise.all([empty.waitFor(2), real.waitFor(2)]);
  t.same(empty.received[1], { kind: 'ack', ack: { seq: 1, duplicate: false } }, 'stored and acked like any run');

  const nodes = await get<{ items: Record<string, unknown>[] }>(agg.httpPort, '/api/v1/nodes');
  const byName = Object.fromEntries(nodes.items.map((n) => [n.name, n]));
  t.match(byName['empty-root'], { scorePercent: null, rating: null, benchmark: null, fail: 0, notAssessable: WHY });
  t.notOk('notAssessable' in (byName['worker-1'] ?? {}), 'a scanned node has no such field');
  t.match(byName['worker-1'], { scorePercent: 50, rating: 'medium' });

  const report = await get<Record<string, unknown>>(agg.httpPort, '/api/v1/nodes/empty-root/cis');
  t.equal(report.notAssessable, WHY, "the node's report says why");
  t.same(report.checks, [], 'and has no checks: the checks of nothing are no results');

  const summary = await get<Record<string, unknown>>(agg.httpPort, '/api/v1/cis/summary');
  t.match(summary, {
    nodes: 1,
    pass: 1,
    fail: 1,
    scorePercent: 50,
    bands: { high: 0, medium: 1, low: 0 },
    mostFailed: [{ id: '4.2.1', title: 'check 4.2.1', failedNodes: 1 }],
    notAssessable: 1,
  });

  const metrics = await get<string>(agg.httpPort, '/metrics');
  t.notMatch(metrics, /verdict_cis_node_score_ratio\{node="empty-root"/, 'no score gauge: no 0% alert');
  t.notMatch(metrics, /verdict_cis_node_checks\{node="empty-root"/);
  t.match(metrics, /verdict_cis_node_assessable\{node="empty-root"\} 0\n/);
  t.match(metrics, /verdict_cis_node_assessable\{node="worker-1"\} 1\n/);
  t.match(metrics, /verdict_cis_node_score_ratio\{node="worker-1",benchmark="cis-1.12",role="worker"\} 0.5\n/);
  t.match(metrics, /verdict_cis_cluster_score_ratio\{benchmark="cis-1.12"\} 0.5\n/, 'the cluster score without it');
  t.match(metrics, /verdict_cis_check_failing_nodes\{benchmark="cis-1.12",check="4.2.1"\} 1\n/);

  // The host mount is fixed: the next run is a scan and the node has a score again.
  empty.send(scoredRun('empty-root', 2));
  await empty.waitFor(3);
  const after = await get<Record<string, unknown>>(agg.httpPort, '/api/v1/cis/summary');
  t.match(after, { nodes: 2, notAssessable: 0, mostFailed: [{ id: '4.2.1', failedNodes: 2 }] });
});

t.test('a not-assessable run that carries checks is refused as invalid, named and counted', async (t) => {
  const agg = await startTestAggregator(t);
  const s = rawAgentStream(agg.grpcPort);
  t.teardown(() => s.close());
  s.send(HELLO('n1'));
  const run = notAssessableRun('n1', 1);
  run.benchmarkRun.checks = scoredRun('n1', 1).benchmarkRun.checks;
  s.send(run);
  await s.waitFor(2);
  t.match(s.received[1], {
    kind: 'reject',
    reject: { seq: 1, code: 'VERDICT_INGEST_INVALID', message: /not_assessable is set and checks holds 2/ },
  });
  const metrics = await get<string>(agg.httpPort, '/metrics');
  t.match(metrics, /verdict_ingest_rejected_total\{reason="invalid"\} 1\n/);
  t.equal(await agg.store.nodeReport('n1'), undefined, 'nothing stored');
});
