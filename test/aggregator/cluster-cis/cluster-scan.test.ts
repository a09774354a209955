import { pino } from 'pino';
import t, { type Test } from 'tap';
import { bundledBenchmarkIndex } from '../../../agent/cis/benchmark-index.js';
import type { ClusterObjects } from '../../../aggregator/cluster-cis/evaluate.js';
import { KIND_SOURCES } from '../../../aggregator/cluster-cis/read.js';
import { ClusterCisScanner } from '../../../aggregator/cluster-cis/scanner.js';
import { parseReportsYaml, type ReportDefinition } from '../../../aggregator/reports/globalreport.js';
import { cisBenchmarkReport } from '../../../aggregator/reports/types/cis-benchmark.js';
import { openStore } from '../../../aggregator/store/index.js';
import { KubeClient, kubeconfigConnection } from '../../../common/kube-client.js';
import { startTestAggregator } from '../../fixtures/aggregator.js';
import { startFakeApiServer, type FakeApi } from '../../fixtures/fake-apiserver.js';
import { tempDir } from '../../fixtures/tmp.js';
import { until } from '../../fixtures/wait.js';
import { hardenedCluster, weakCluster } from './clusters.js';

// Issue 14: section 5 evaluated by the aggregator from the API, stored as the cluster's scan (its own row next to
// the nodes), served, summarized and exported; only the leader evaluates. Against the stand-in API server.

const JANE = 'User jane@example.com via ClusterRoleBinding dev-admin → ClusterRole cluster-admin';

/** Serve `objects` at each kind's first list path. */
function serve(api: FakeApi, objects: ClusterObjects): void {
  for (const [kind, src] of Object.entries(KIND_SOURCES)) {
    const read = objects[kind as keyof ClusterObjects];
    if (read && 'items' in read) api.lists.set(src.paths[0]!, read.items);
    else api.lists.delete(src.paths[0]!);
  }
}

/** The real client to the stand-in, with GET /version answered as the API server does (version.Info). */
function kubeWithVersion(t: Test, api: FakeApi, gitVersion: string) {
  const kube = new KubeClient(kubeconfigConnection(api.kubeconfig));
  t.teardown(() => kube.close());
  return {
    get: <T>(path: string): Promise<T> =>
      path === '/version'
        ? Promise.resolve({ major: '1', minor: gitVersion.split('.')[1], gitVersion, platform: 'linux/amd64' } as T)
        : kube.get<T>(path),
  };
}

t.test('the leader stores a scan when results change, else only moves its checked time', async (t) => {
  const api = await startFakeApiServer(t, tempDir(t));
  serve(api, weakCluster());
  const store = await openStore(`sqlite:${tempDir(t)}/v.db`);
  t.teardown(() => store.close());
  let now = Date.parse('2026-11-30T10:00:00Z');
  let leader = false;
  const outcomes: string[] = [];
  const scanner = new ClusterCisScanner({
    kube: kubeWithVersion(t, api, 'v1.32.4'),
    store,
    log: pino({ level: 'silent' }),
    isLeader: async () => leader,
    now: () => now,
    intervalMs: 300_000,
    checkIntervalMs: 15_000,
    onOutcome: (o) => outcomes.push(o),
  });

  t.equal(await scanner.tick(), 'not-leader', 'a replica that does not lead evaluates nothing');
  t.equal(await store.latestClusterScan(), undefined);

  leader = true;
  t.equal(await scanner.tick(), 'stored');
  const first = await store.latestClusterScan();
  t.equal(first?.benchmark.id, 'cis-1.12', 'Kubernetes 1.32 chooses cis-1.12');
  t.equal(first?.kubernetesVersion, 'v1.32.4');
  t.equal(first?.checkedAt, '2026-11-30T10:00:00.000Z');
  const c511 = first?.checks.find((c) => c.id === '5.1.1');
  t.match(c511, { status: 'FAIL', failing: [{ object: JANE }], failingTotal: 1 }, 'a failure names its object');
  t.ok(first!.summary.fail > 20, `most automated checks fail on the weak cluster (${first!.summary.fail})`);
  t.equal(first!.summary.total, first!.checks.length, 'every section 5 check counts (CIS marks them all Manual)');
  t.equal(first!.summary.manual, 5, 'five no API object can decide');

  now += 60_000;
  t.equal(await scanner.tick(), 'not-due', 'not again before the interval');
  now += 300_000;
  t.equal(await scanner.tick(), 'unchanged', 'due again: the same results');
  const again = await store.latestClusterScan();
  t.equal(again?.checkedAt, new Date(now).toISOString(), 'only the checked time moved');
  t.equal(again?.startedAt, first?.startedAt, 'the same scan row');

  serve(api, hardenedCluster());
  t.equal(await scanner.evaluate(), 'stored', 'changed objects, a new scan');
  const hardened = await store.latestClusterScan();
  t.match(
    hardened?.checks.find((c) => c.id === '5.1.1'),
    { status: 'PASS', failing: [] },
  );
  t.equal(hardened?.summary.fail, 0, 'the hardened cluster fails nothing');
  t.same(outcomes, ['stored', 'unchanged', 'stored']);
});

t.test('the API server version chooses the benchmark; an unreachable API server fails the round', async (t) => {
  const api = await startFakeApiServer(t, tempDir(t));
  serve(api, weakCluster());
  const store = await openStore(`sqlite:${tempDir(t)}/v.db`);
  t.teardown(() => store.close());
  const older = bundledBenchmarkIndex().at(-1)!;
  const minor = older.kubernetesVersions[0]!;
  const scanner = new ClusterCisScanner({
    kube: kubeWithVersion(t, api, `v${minor}.2`),
    store,
    log: pino({ level: 'silent' }),
    isLeader: async () => true,
    intervalMs: 300_000,
    checkIntervalMs: 15_000,
  });
  await scanner.evaluate();
  t.equal((await store.latestClusterScan())?.benchmark.id, older.id, `Kubernetes ${minor} chooses ${older.id}`);

  const outcomes: string[] = [];
  const down = new ClusterCisScanner({
    kube: new KubeClient({ ...kubeconfigConnection(api.kubeconfig), server: 'https://127.0.0.1:1' }),
    store,
    log: pino({ level: 'silent' }),
    isLeader: async () => true,
    intervalMs: 300_000,
    checkIntervalMs: 15_000,
    onOutcome: (o) => outcomes.push(o),
  });
  t.equal(await down.tick(), 'failed');
  t.same(outcomes, ['failed'], 'counted');
  t.equal((await store.latestClusterScan())?.benchmark.id, older.id, 'the stored scan stays');
});

t.test('with cluster access the aggregator evaluates, serves and exports the cluster scan', async (t) => {
  const api = await startFakeApiServer(t, tempDir(t));
  serve(api, weakCluster());
  const agg = await startTestAggregator(t, { kubeconfig: api.kubeconfig });
  const base = `http://127.0.0.1:${agg.httpPort}`;
  // Readers are asked of the cluster (TokenReview, then SubjectAccessReview for get on nodes).
  api.tokens.set('reader-token', { username: 'alice', audiences: ['https://kubernetes.default.svc.cluster.local'] });
  api.allow.add('alice get nodes ');
  const read = (path: string) => fetch(`${base}${path}`, { headers: { authorization: 'Bearer reader-token' } });
  await until(() => agg.store.latestClusterScan(), 'the first cluster scan', 20_000);
  const answer = await read('/api/v1/cis/cluster');
  t.equal(answer.status, 200);
  const scan = (await answer.json()) as { benchmark: { id: string }; checks: { id: string }[]; checkedAt: string };
  t.equal(scan.benchmark.id, 'cis-1.12', 'no /version on the stand-in: the newest benchmark');
  t.match(
    scan.checks.find((c) => c.id === '5.1.1'),
    { status: 'FAIL', failing: [{ object: JANE }] },
  );
  const summary = (await (await read('/api/v1/cis/summary')).json()) as Record<string, unknown>;
  t.match(summary, { nodes: 0, cluster: { benchmark: 'cis-1.12', checkedAt: scan.checkedAt, pass: Number } });
  t.ok((summary.cluster as { fail: number }).fail > 20, 'the summary carries the cluster row');
  const metrics = await (await fetch(`${base}/metrics`)).text();
  t.match(metrics, /verdict_cis_cluster_scan_checks\{benchmark="cis-1\.12",status="fail"\} \d+\n/);
  t.match(metrics, /verdict_cis_cluster_scan_failing_objects\{benchmark="cis-1\.12",check="5\.1\.1"\} 1\n/);
  t.match(metrics, /verdict_cis_cluster_scans_total\{result="stored"\} 1\n/);
  t.match(metrics, /verdict_cis_cluster_scan_checked_timestamp_seconds \d+/);
  t.ok(
    api.calls.some((c) => c.path.startsWith('/apis/coordination.k8s.io/v1/namespaces/')),
    'leadership was asked of the Lease first',
  );
});

t.test(
  "the cis-benchmark report carries the cluster scan as it was at the interval's end in cluster-tests.csv",
  async (t) => {
    const api = await startFakeApiServer(t, tempDir(t));
    const store = await openStore(`sqlite:${tempDir(t)}/v.db`);
    t.teardown(() => store.close());
    let now = Date.parse('2026-11-01T10:00:00Z');
    const scanner = new ClusterCisScanner({
      kube: kubeWithVersion(t, api, 'v1.32.4'),
      store,
      log: pino({ level: 'silent' }),
      isLeader: async () => true,
      now: () => now,
      intervalMs: 300_000,
      checkIntervalMs: 15_000,
    });
    serve(api, weakCluster());
    await scanner.evaluate();
    now = Date.parse('2026-11-03T10:00:00Z');
    serve(api, hardenedCluster());
    await scanner.evaluate();
    const def = parseReportsYaml(
      'apiVersion: compliance.verdict.dev/v1\nkind: GlobalReport\nmetadata: {name: cis}\nspec:\n  reportType: cis-benchmark\n',
      'test',
    )[0] as ReportDefinition;
    const interval = { start: '2026-10-26T00:00:00.000Z', end: '2026-11-02T00:00:00.000Z' };
    const then = await store.latestClusterScan(Date.parse(interval.end));
    t.equal(then?.startedAt, '2026-11-01T10:00:00.000Z', 'the scan of the weak cluster, not the later hardened one');
    const out = cisBenchmarkReport(def, [], interval, then);
    const file = out.files['cluster-tests.csv']!;
    t.same(file.header.slice(0, 6), [
      'testIndex',
      'testDescription',
      'status',
      'scored',
      'failingObjects',
      'failingObjectCount',
    ]);
    const row = file.rows.find((r) => r[0] === '5.1.1')!;
    t.equal(row[2], 'FAIL');
    t.match(String(row[4]), JANE, 'the failing object is named');
    t.equal(row[5], 1);
    t.equal(file.rows.length, then!.checks.length, 'every section 5 check');
    t.notOk('cluster-tests.csv' in cisBenchmarkReport(def, [], interval).files, 'no file without a cluster scan');
    t.equal(Object.keys(out.files)[0], 'total-summary.csv', 'the default download stays the total summary');
    t.equal(await store.latestClusterScan(Date.parse('2026-10-01T00:00:00Z')), undefined, 'none before the first');
  },
);
