import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import t from 'tap';
import { parseReportsYaml } from '../../../aggregator/reports/globalreport.js';
import { CLUSTER_ORIGINS, ReportRegistry, reportSource } from '../../../aggregator/reports/registry.js';
import { startTestAggregator } from '../../fixtures/aggregator.js';
import { startFakeApiServer } from '../../fixtures/fake-apiserver.js';
import { tempDir } from '../../fixtures/tmp.js';
import { until } from '../../fixtures/wait.js';

// Where GlobalReports come from (issue 16): Calico Enterprise's projectcalico.org/v3
// GlobalReports are watched in the cluster beside Verdict's own, and each report
// says which resource it came from; report types that read the cluster are refused
// at load when there is no cluster to read, instead of failing every run.

const CALICO_PATH = '/apis/projectcalico.org/v3/globalreports';
const calicoReport = (name: string, spec: Record<string, unknown>) => ({
  apiVersion: 'projectcalico.org/v3',
  kind: 'GlobalReport',
  metadata: { name, uid: `uid-${name}`, resourceVersion: '7' },
  spec,
});
const verdictReport = (name: string, spec: Record<string, unknown>) => ({
  apiVersion: 'compliance.verdict.dev/v1',
  kind: 'GlobalReport',
  metadata: { name, uid: `uid-${name}` },
  spec,
});

t.test("Calico's GlobalReports are watched beside Verdict's; the API says which resource each came from", async (t) => {
  const api = await startFakeApiServer(t, tempDir(t));
  api.tokens.set('alice-token', { username: 'alice', audiences: ['https://kubernetes.default.svc.cluster.local'] });
  api.allow.add('alice list globalreports ');
  // A reader sees the reports it may get.
  for (const name of ['calico-inventory', 'daily-cis-benchmark-report', 'verdict-weekly'])
    api.allow.add(`alice get globalreports ${name}`);
  api.globalReports.set('verdict-weekly', verdictReport('verdict-weekly', { reportType: 'cis-benchmark' }));
  // As an aggregated API server lists them: the items without apiVersion and kind, which the path implies.
  const {
    apiVersion: _a,
    kind: _k,
    ...listed
  } = calicoReport('daily-cis-benchmark-report', {
    reportType: 'cis-benchmark',
    schedule: '0 0 * * *',
  });
  api.lists.set(CALICO_PATH, [listed]);
  const agg = await startTestAggregator(t, { kubeconfig: api.kubeconfig });
  await until(
    () =>
      agg.registry.get('verdict-weekly') !== undefined && agg.registry.get('daily-cis-benchmark-report') !== undefined,
    'both resources listed',
  );
  t.equal(agg.registry.get('daily-cis-benchmark-report')?.origin, CLUSTER_ORIGINS.calico);
  t.equal(agg.registry.get('daily-cis-benchmark-report')?.apiVersion, 'projectcalico.org/v3');
  t.equal(agg.registry.get('verdict-weekly')?.origin, CLUSTER_ORIGINS.verdict);

  // A change to Calico's resource comes through its watch.
  await until(() => api.calls.some((c) => c.path.startsWith(`${CALICO_PATH}?watch=1`)), 'watching Calico');
  api.emitTo(CALICO_PATH, 'ADDED', calicoReport('calico-inventory', { reportType: 'inventory' }));
  api.emitTo(CALICO_PATH, 'ADDED', calicoReport('calico-bad', { reportType: 'nonsense' }));
  await until(() => agg.registry.get('calico-inventory') !== undefined, 'an added Calico report appears');
  t.match(
    agg.registry.errors().find((e) => e.name === 'calico-bad'),
    { origin: CLUSTER_ORIGINS.calico, error: /reportType/ },
    'an invalid Calico report is listed with its reason and where it is from',
  );

  const res = await fetch(`http://127.0.0.1:${agg.httpPort}/api/v1/reports`, {
    headers: { authorization: 'Bearer alice-token' },
  });
  t.equal(res.status, 200);
  const body = (await res.json()) as {
    items: { name: string; apiVersion: string; source: string; status: { source: string } }[];
  };
  t.same(
    body.items.map((i) => [i.name, i.apiVersion, i.source, i.status.source]),
    [
      [
        'calico-inventory',
        'projectcalico.org/v3',
        'globalreports.projectcalico.org',
        'globalreports.projectcalico.org',
      ],
      [
        'daily-cis-benchmark-report',
        'projectcalico.org/v3',
        'globalreports.projectcalico.org',
        'globalreports.projectcalico.org',
      ],
      [
        'verdict-weekly',
        'compliance.verdict.dev/v1',
        'globalreports.compliance.verdict.dev',
        'globalreports.compliance.verdict.dev',
      ],
    ],
  );

  // Calico's controller owns the status of its resources: Verdict writes only its own.
  await agg.scheduler.tick();
  t.notOk(
    api.calls.some((c) => c.method === 'PATCH' && c.path.startsWith(CALICO_PATH)),
    "no status written to Calico's GlobalReports",
  );

  api.emitTo(CALICO_PATH, 'DELETED', calicoReport('calico-inventory', { reportType: 'inventory' }));
  await until(() => agg.registry.get('calico-inventory') === undefined, 'a deleted Calico report goes');
});

t.test("without Calico's API (404) only Verdict's GlobalReports are watched, and nothing fails", async (t) => {
  const api = await startFakeApiServer(t, tempDir(t));
  api.globalReports.set('verdict-weekly', verdictReport('verdict-weekly', { reportType: 'cis-benchmark' }));
  const agg = await startTestAggregator(t, { kubeconfig: api.kubeconfig });
  await until(
    () => agg.registry.get('verdict-weekly') !== undefined && api.calls.some((c) => c.path === CALICO_PATH),
    "Verdict's listed, Calico's looked for",
  );
  t.same(
    agg.registry.all().map((d) => d.name),
    ['verdict-weekly'],
  );
  t.same(agg.registry.errors(), []);
});

t.test('an inventory report without a cluster is refused at load, listed as invalid with the reason', async (t) => {
  const dir = tempDir(t);
  mkdirSync(join(dir, 'reports'));
  writeFileSync(
    join(dir, 'reports', 'r.yaml'),
    `apiVersion: projectcalico.org/v3
kind: GlobalReport
metadata: {name: daily-public-inventory-report}
spec:
  reportType: inventory
  schedule: "0 0 * * *"
---
apiVersion: compliance.verdict.dev/v1
kind: GlobalReport
metadata: {name: weekly-cis}
spec: {reportType: cis-benchmark}
`,
  );
  const agg = await startTestAggregator(t, { reportsDir: join(dir, 'reports') });
  const res = await fetch(`http://127.0.0.1:${agg.httpPort}/api/v1/reports`);
  const body = (await res.json()) as {
    items: { name: string; source: string }[];
    invalid: { name: string; origin: string; error: string }[];
  };
  t.same(
    body.items.map((i) => [i.name, i.source]),
    [['weekly-cis', 'file']],
  );
  t.same(body.invalid, [
    {
      name: 'daily-public-inventory-report',
      origin: join(dir, 'reports', 'r.yaml'),
      error:
        "VERDICT_REPORT_UNSUPPORTED: inventory reports read the cluster's pods, namespaces, service accounts and network policies; run the aggregator in a cluster, give it --kubeconfig, or --cluster-snapshot DIR for an offline copy",
    },
  ]);
  // Nothing is scheduled for it, so nothing is queued and retried.
  await agg.scheduler.tick();
  t.same(await agg.store.reportRuns('daily-public-inventory-report', 10), []);
  const run = await fetch(`http://127.0.0.1:${agg.httpPort}/api/v1/reports/daily-public-inventory-report/runs`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ start: '2026-11-01T00:00:00Z', end: '2026-11-02T00:00:00Z' }),
  });
  t.equal(run.status, 404, 'no on-demand run of a refused report either');
});

t.test('the registry refuses cluster-reading types until cluster facts are there, then takes them', async (t) => {
  const registry = new ReportRegistry(pino({ level: 'silent' }));
  registry.setSource(
    'dir',
    parseReportsYaml(
      'apiVersion: compliance.verdict.dev/v1\nkind: GlobalReport\nmetadata: {name: inv}\nspec: {reportType: inventory}\n',
      'r.yaml',
    ),
  );
  t.equal(registry.get('inv'), undefined);
  t.match(registry.errors(), [{ name: 'inv', error: /^VERDICT_REPORT_UNSUPPORTED: inventory reports read/ }]);
  registry.allowClusterReads('the cluster');
  t.equal(registry.get('inv')?.reportType, 'inventory');
  t.same(registry.errors(), []);
});

t.test('reportSource names the resource for cluster origins and "file" for the rest', async (t) => {
  t.equal(reportSource(CLUSTER_ORIGINS.verdict), 'globalreports.compliance.verdict.dev');
  t.equal(reportSource(CLUSTER_ORIGINS.calico), 'globalreports.projectcalico.org');
  t.equal(reportSource('/etc/verdict/reports/weekly.yaml'), 'file');
});

t.test('with --cluster-snapshot the same inventory report loads and runs from the offline copy', async (t) => {
  const dir = tempDir(t);
  mkdirSync(join(dir, 'reports'));
  mkdirSync(join(dir, 'cluster'));
  writeFileSync(
    join(dir, 'reports', 'r.yaml'),
    'apiVersion: projectcalico.org/v3\nkind: GlobalReport\nmetadata: {name: inv}\nspec: {reportType: inventory}\n',
  );
  // What `kubectl get namespaces,pods,networkpolicies -A -o yaml` writes, cut to one namespace, two pods, one policy.
  writeFileSync(
    join(dir, 'cluster', 'objects.yaml'),
    `apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: Namespace, metadata: {name: shop}}
- apiVersion: v1
  kind: Pod
  metadata: {name: web-1, namespace: shop, labels: {app: web}}
  spec: {serviceAccountName: web, containers: [{name: web}]}
- apiVersion: v1
  kind: Pod
  metadata: {name: db-1, namespace: shop, labels: {app: db}}
  spec: {containers: [{name: db}]}
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata: {name: web-in, namespace: shop}
  spec: {podSelector: {matchLabels: {app: web}}}
`,
  );
  const agg = await startTestAggregator(t, {
    reportsDir: join(dir, 'reports'),
    clusterSnapshotDir: join(dir, 'cluster'),
  });
  t.same(agg.registry.errors(), [], 'nothing refused: the snapshot supplies the cluster facts');
  t.equal(agg.registry.get('inv')?.reportType, 'inventory');
  const res = await fetch(`http://127.0.0.1:${agg.httpPort}/api/v1/reports/inv/runs`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ start: '2026-11-01T00:00:00Z', end: '2026-11-02T00:00:00Z' }),
  });
  t.equal(res.status, 202, 'an on-demand run is accepted');
  const run = await until(
    async () => {
      await agg.scheduler.tick();
      return (await agg.store.reportRuns('inv', 10)).find((r) => r.status === 'succeeded' || r.status === 'failed');
    },
    'the inventory run finished',
    20_000,
  );
  t.equal(run.status, 'succeeded', run.error ?? 'succeeded');
  // web-1 is selected by web-in (a policy with no policyTypes and no egress rules: Ingress only); db-1 by nothing.
  const stored = await agg.store.reportRun(run.id);
  const files = (stored?.result as { files: Record<string, { rows: unknown[][] }> }).files;
  t.same(
    files['endpoints.csv']!.rows.map((r) => r.slice(0, 3)),
    [
      ['shop/db-1', false, false],
      ['shop/web-1', true, false],
    ],
  );
});
