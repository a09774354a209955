import { createPublicKey, generateKeyPairSync, verify } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import t from 'tap';
import { KubeClient, kubeconfigConnection } from '../../common/kube-client.js';
import { KubeLease } from '../../aggregator/kube/lease.js';
import { runUntilSucceeded, startTestAggregator } from '../fixtures/aggregator.js';
import { startFakeApiServer } from '../fixtures/fake-apiserver.js';
import { tempDir } from '../fixtures/tmp.js';
import { until } from '../fixtures/wait.js';
import { helloFields } from '../fixtures/node-hello.js';

// GlobalReports watched from the cluster, their status written back, and Lease
// leader election — against the stand-in API server of test/fixtures (the
// documented list/watch, Status and Lease shapes; no API server can run here).
const gr = (name: string, spec: Record<string, unknown>) => ({
  apiVersion: 'compliance.verdict.dev/v1',
  kind: 'GlobalReport',
  metadata: { name, uid: `uid-${name}` },
  spec,
});

t.test(
  'GlobalReports are listed and watched from the cluster (bookmarks, 410 relist); status is written to the subresource',
  async (t) => {
    const api = await startFakeApiServer(t, tempDir(t));
    api.globalReports.set('weekly', gr('weekly', { reportType: 'cis-benchmark', schedule: '0 0 * * 0' }));
    const agg = await startTestAggregator(t, { kubeconfig: api.kubeconfig });
    await until(() => agg.registry.get('weekly') !== undefined && api.watchers > 0, 'listed and watching');
    api.emit('ADDED', gr('daily-access', { reportType: 'network-access', schedule: '0 0 * * *' }));
    api.emit('ADDED', gr('bad', { reportType: 'nonsense' }));
    await until(() => agg.registry.get('daily-access') !== undefined, 'an added report appears');
    t.match(agg.registry.errors()[0], { name: 'bad', origin: 'cluster', error: /reportType/ });
    api.emit('DELETED', gr('weekly', { reportType: 'cis-benchmark' }));
    await until(() => agg.registry.get('weekly') === undefined, 'a deleted report goes');
    // The watched version expires: the aggregator lists again and watches anew.
    api.globalReports.set('monthly', gr('monthly', { reportType: 'cis-benchmark' }));
    api.expireWatches();
    await until(() => agg.registry.get('monthly') !== undefined, 'relisted after 410 Gone');
    t.ok(
      api.calls.filter((c) => c.path === '/apis/compliance.verdict.dev/v1/globalreports').length >= 2,
      'a second list',
    );
    t.ok(
      api.calls.some((c) => c.path.includes('allowWatchBookmarks=true') && c.path.includes('resourceVersion=')),
      'watches ask for bookmarks from a version',
    );

    // An on-demand run, then the status subresource says so.
    const run = await runUntilSucceeded(
      agg,
      'monthly',
      Date.parse('2026-11-01T00:00:00Z'),
      Date.parse('2026-11-02T00:00:00Z'),
      'the run succeeded',
    );
    await until(
      () => api.calls.some((c) => c.method === 'PATCH' && c.path.endsWith('/globalreports/monthly/status')),
      'status written',
      20_000,
    );
    const status = (api.globalReports.get('monthly') as { status?: { lastSuccessfulReportJobs?: { id: string }[] } })
      .status;
    t.equal(status?.lastSuccessfulReportJobs?.[0]?.id, run.id);
    await until(
      () =>
        /reportType/.test(
          String((api.globalReports.get('bad') as { status?: { error?: string } }).status?.error ?? ''),
        ),
      'the invalid report says why in its status',
    );
  },
);

t.test('one Lease holder schedules; another takes over only after the lease expires; conflicts lose', async (t) => {
  const api = await startFakeApiServer(t, tempDir(t));
  const kube = new KubeClient(kubeconfigConnection(api.kubeconfig));
  t.teardown(() => kube.close());
  let now = Date.parse('2026-11-20T10:00:00Z');
  const clock = () => now;
  const silent = pino({ level: 'silent' });
  const leaseOptions = { kube, namespace: 'verdict', name: 'verdict-report-scheduler', log: silent, now: clock };
  const a = new KubeLease({ ...leaseOptions, identity: 'pod-a' });
  const b = new KubeLease({ ...leaseOptions, identity: 'pod-b' });
  t.equal(await a.isLeader(), true, 'the first creates the Lease');
  t.equal(await b.isLeader(), false);
  const lease = api.leases.get('verdict/verdict-report-scheduler') as {
    spec: { holderIdentity: string; renewTime: string; leaseDurationSeconds: number };
  };
  t.equal(lease.spec.holderIdentity, 'pod-a');
  t.match(lease.spec.renewTime, /^2026-11-20T10:00:00\.000000Z$/, 'MicroTime');
  now += 10_000;
  t.equal(await a.isLeader(), true, 'renewed');
  now += 10_000;
  t.equal(await b.isLeader(), false, 'a renewal 10 s ago still holds');
  now += 20_000; // pod-a stopped renewing 20 s ago, past the 15 s lease
  t.equal(await b.isLeader(), true, 'an expired lease is taken over');
  const taken = api.leases.get('verdict/verdict-report-scheduler') as {
    spec: { holderIdentity: string; leaseTransitions: number };
  };
  t.same([taken.spec.holderIdentity, taken.spec.leaseTransitions], ['pod-b', 1]);
  now += 6_000;
  t.equal(await a.isLeader(), false, 'the old holder sees it lost');
});

t.test(
  'an inventory run lists pods, namespaces, service accounts and Kubernetes and Calico policies, and says which select each endpoint',
  async (t) => {
    const api = await startFakeApiServer(t, tempDir(t));
    const pod = (ns: string, name: string, labels: Record<string, string>, sa = 'default') => ({
      metadata: { name, namespace: ns, labels },
      spec: { serviceAccountName: sa, nodeName: 'n1' },
    });
    api.lists.set('/api/v1/pods', [
      pod('shop', 'frontend-1', { app: 'frontend' }, 'frontend'),
      pod('shop', 'cart-1', { app: 'cart' }),
      pod('payments', 'api-1', { app: 'api', tier: 'backend' }, 'api'),
      pod('kube-system', 'coredns-1', { 'k8s-app': 'kube-dns' }),
      { metadata: { name: 'node-exporter-1', namespace: 'monitoring', labels: {} }, spec: { hostNetwork: true } },
    ]);
    api.lists.set(
      '/api/v1/namespaces',
      ['shop', 'payments', 'kube-system', 'monitoring'].map((n) => ({
        metadata: { name: n, labels: n === 'payments' ? { pci: 'true' } : {} },
      })),
    );
    api.lists.set('/api/v1/serviceaccounts', []);
    api.lists.set('/apis/networking.k8s.io/v1/networkpolicies', [
      {
        metadata: { name: 'frontend-ingress', namespace: 'shop' },
        spec: { podSelector: { matchLabels: { app: 'frontend' } }, ingress: [{}] },
      },
      {
        metadata: { name: 'api-lockdown', namespace: 'payments' },
        spec: {
          podSelector: { matchExpressions: [{ key: 'tier', operator: 'In', values: ['backend'] }] },
          policyTypes: ['Ingress', 'Egress'],
        },
      },
    ]);
    api.lists.set('/apis/projectcalico.org/v3/globalnetworkpolicies', [
      {
        metadata: { name: 'security.allow-dns' },
        spec: { selector: "app == 'cart'", types: ['Egress'], egress: [{}] },
      },
    ]);
    api.globalReports.set(
      'inv',
      gr('inv', {
        reportType: 'inventory',
        endpoints: { namespaces: { selector: "kubernetes.io/metadata.name != 'kube-system'" } },
      }),
    );
    const agg = await startTestAggregator(t, { kubeconfig: api.kubeconfig });
    await until(() => agg.registry.get('inv') !== undefined, 'report listed');
    const run = await runUntilSucceeded(
      agg,
      'inv',
      Date.parse('2026-11-01T00:00:00Z'),
      Date.parse('2026-11-02T00:00:00Z'),
      'inventory run',
    );
    const result = run.result as {
      summary: Record<string, unknown>;
      data: {
        endpoints: {
          endpoint: string;
          ingressProtected: boolean;
          egressProtected: boolean;
          appliedPolicies: string[];
        }[];
      };
    };
    t.same(
      result.data.endpoints.map((e) => [e.endpoint, e.ingressProtected, e.egressProtected, e.appliedPolicies]),
      [
        ['payments/api-1', true, true, ['payments/api-lockdown']],
        ['shop/cart-1', false, true, ['security.allow-dns']],
        ['shop/frontend-1', true, false, ['shop/frontend-ingress']],
      ],
    );
    t.match(result.summary, {
      endpointsNumInScope: 3,
      endpointsNumIngressProtected: 2,
      endpointsNumEgressProtected: 2,
      namespacesNumInScope: 2,
      namespacesNumIngressProtected: 1,
      namespacesNumEgressProtected: 1,
      serviceAccountsNumInScope: 3,
    });
  },
);

t.test(
  "policy versions come from Verdict's own watch: changes and diffs without an audit log, the audit log adds who, alerts are raised once",
  async (t) => {
    const api = await startFakeApiServer(t, tempDir(t));
    const path = '/apis/networking.k8s.io/v1/networkpolicies';
    const np = (spec: unknown) => ({
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: { name: 'allow-api', namespace: 'payments', uid: 'np-uid-1' },
      spec,
    });
    api.lists.set(path, [
      {
        ...np({ podSelector: {}, policyTypes: ['Ingress'] }),
        metadata: { name: 'allow-api', namespace: 'payments', uid: 'np-uid-1', resourceVersion: '50' },
      },
    ]);
    api.globalReports.set('changes', gr('changes', { reportType: 'policy-audit' }));
    // The API server posts audit events with its own identity, which RBAC allows to create auditevents.
    api.tokens.set('apiserver-audit-token', {
      username: 'system:apiserver-audit',
      audiences: ['https://kubernetes.default.svc.cluster.local'],
    });
    api.allow.add('system:apiserver-audit create auditevents ');
    const agg = await startTestAggregator(t, { kubeconfig: api.kubeconfig, protectedNamespaces: ['payments'] });
    const metric = async () =>
      /verdict_policy_tamper_alerts_total\{kind="networkpolicies"\} (\d+)/.exec(
        await (await fetch(`http://127.0.0.1:${agg.httpPort}/metrics`)).text(),
      )?.[1];
    await until(
      async () => (await agg.store.auditEvents(0, Date.now() + 1)).some((e) => e.verb === 'observe'),
      'the listed version is the baseline',
    );
    t.equal(await metric(), '0', 'a baseline is not a change (the series is there from the first scrape, at 0)');
    api.emitTo(path, 'MODIFIED', np({ podSelector: {}, policyTypes: ['Ingress', 'Egress'] }));
    await until(async () => (await metric()) === '1', 'the watched change raises a tamper alert');
    // The audit webhook reports the same change, with who made it: no second alert.
    const ts = new Date().toISOString();
    const res = await fetch(`http://127.0.0.1:${agg.httpPort}/api/v1/audit/webhook`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Bearer apiserver-audit-token' },
      body: JSON.stringify({
        kind: 'EventList',
        apiVersion: 'audit.k8s.io/v1',
        items: [
          {
            auditID: 'a-1',
            stage: 'ResponseComplete',
            verb: 'update',
            user: { username: 'mallory' },
            objectRef: {
              apiGroup: 'networking.k8s.io',
              resource: 'networkpolicies',
              namespace: 'payments',
              name: 'allow-api',
            },
            responseStatus: { code: 200 },
            responseObject: np({ podSelector: {}, policyTypes: ['Ingress', 'Egress'] }),
            stageTimestamp: ts,
          },
        ],
      }),
    });
    t.equal(res.status, 200);
    t.equal(await metric(), '1', 'the same change from the audit log is not alerted twice');
    api.emitTo(path, 'DELETED', np({ podSelector: {}, policyTypes: ['Ingress', 'Egress'] }));
    await until(async () => (await metric()) === '2', 'the watched deletion raises another alert');
    const run = await runUntilSucceeded(agg, 'changes', Date.now() - 3600_000, Date.now() + 60_000, 'policy-audit run');
    const changes = (
      run.result as {
        data: { changes: { verb: string; user: string; source: string; diff: { path: string }[] }[] };
      }
    ).data.changes;
    t.same(
      changes.map((c) => [c.verb, c.user, c.source]),
      [
        ['update', 'mallory', 'audit'],
        ['delete', '', 'watch'],
      ],
    );
    t.same(
      changes[0]?.diff.map((d) => d.path),
      ['spec.policyTypes'],
      'the diff is against the version the watch saw before',
    );
  },
);

t.test(
  'a policy deleted while the watch was down (absent from the relist after 410 Gone) is recorded deleted and alerted',
  async (t) => {
    const api = await startFakeApiServer(t, tempDir(t));
    const path = '/apis/networking.k8s.io/v1/networkpolicies';
    const np = (name: string, rv: string) => ({
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: { name, namespace: 'payments', uid: `uid-${name}`, resourceVersion: rv },
      spec: { podSelector: {}, policyTypes: ['Ingress'] },
    });
    api.lists.set(path, [np('kept', '50'), np('removed-unseen', '51')]);
    const agg = await startTestAggregator(t, { kubeconfig: api.kubeconfig, protectedNamespaces: ['payments'] });
    const events = async () => agg.store.auditEvents(0, Date.now() + 1);
    await until(
      async () => (await events()).filter((e) => e.verb === 'observe').length === 2,
      'both listed versions are the baseline',
    );
    await until(
      () => api.calls.some((c) => c.path.startsWith(`${path}?`) && c.path.includes('watch=1')),
      'watching network policies',
    );
    // Deleted while no watch saw it: the list no longer has it and no DELETED event is sent. The watch then learns
    // its version is too old and lists again.
    api.lists.set(path, [np('kept', '50')]);
    api.expireListWatches(path);
    await until(async () => (await events()).some((e) => e.verb === 'delete'), 'the absence is recorded as a deletion');
    const deletes = (await events()).filter((e) => e.verb === 'delete');
    t.same(
      deletes.map((e) => [e.name, e.auditId, (e.event as { verdictNoticed?: string }).verdictNoticed]),
      [
        [
          'removed-unseen',
          'watch:uid-removed-unseen:51:deleted',
          'absent from a relist: deleted while the watch was down',
        ],
      ],
      'only the object the relist lacks, once, saying how it was noticed',
    );
    const metrics = await (await fetch(`http://127.0.0.1:${agg.httpPort}/metrics`)).text();
    t.match(metrics, /verdict_policy_tamper_alerts_total\{kind="networkpolicies"\} 1\b/, 'one tamper alert for it');
    // A second relist with the same list records nothing more: the relist is handled before the next watch opens.
    const watches = () => api.calls.filter((c) => c.path.startsWith(`${path}?`) && c.path.includes('watch=1')).length;
    const before = watches();
    api.expireListWatches(path);
    await until(() => watches() > before, 'listed again and watching');
    t.equal((await events()).filter((e) => e.verb === 'delete').length, 1, 'the deletion is recorded once');
  },
);

t.test(
  'a policy deleted while no aggregator watched (in the stored history, absent from the first list) is recorded deleted',
  async (t) => {
    const api = await startFakeApiServer(t, tempDir(t));
    const path = '/apis/networking.k8s.io/v1/networkpolicies';
    const np = (name: string, rv: string) => ({
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: { name, namespace: 'payments', uid: `uid-${name}`, resourceVersion: rv },
      spec: { podSelector: {}, policyTypes: ['Ingress'] },
    });
    // What an earlier aggregator on this store recorded an hour ago: both policies listed (watch versions).
    const { SqliteStore } = await import('../../aggregator/store/sqlite.js');
    const dbDir = tempDir(t);
    const pre = SqliteStore.open(`${dbDir}/v.db`);
    const seenAt = Date.now() - 3600_000;
    await pre.recordAuditEvents(
      ['kept', 'gone'].map((name, i) => ({
        auditId: `watch:uid-${name}:${40 + i}:`,
        stageMs: seenAt,
        verb: 'observe',
        resource: 'networkpolicies',
        apiGroup: 'networking.k8s.io',
        namespace: 'payments',
        name,
        username: '',
        event: { source: 'watch', responseObject: np(name, String(40 + i)) },
      })),
    );
    await pre.close();
    api.lists.set(path, [np('kept', '40')]);
    const agg = await startTestAggregator(t, {
      kubeconfig: api.kubeconfig,
      db: `sqlite:${dbDir}/v.db`,
      protectedNamespaces: ['payments'],
    });
    const deletes = async () => (await agg.store.auditEvents(0, Date.now() + 1)).filter((e) => e.verb === 'delete');
    await until(async () => (await deletes()).length > 0, 'the policy gone while not watched is recorded deleted');
    t.same(
      (await deletes()).map((e) => [e.name, e.auditId, (e.event as { verdictNoticed?: string }).verdictNoticed]),
      [['gone', 'watch:uid-gone:41:deleted', 'absent from the first list after start: deleted while not watched']],
    );
    await until(
      async () =>
        /verdict_policy_tamper_alerts_total\{kind="networkpolicies"\} 1\b/.test(
          await (await fetch(`http://127.0.0.1:${agg.httpPort}/metrics`)).text(),
        ),
      'one tamper alert for it',
    );
  },
);

t.test(
  'a node deleted from the cluster leaves the node list; nodes already gone are dropped on the first list',
  async (t) => {
    const api = await startFakeApiServer(t, tempDir(t));
    const node = (name: string) => ({
      apiVersion: 'v1',
      kind: 'Node',
      metadata: { name, uid: `uid-${name}` },
      status: { nodeInfo: { kubeletVersion: 'v1.32.1' } },
    });
    api.lists.set('/api/v1/nodes', [node('kept'), node('leaving')]);
    const { SqliteStore } = await import('../../aggregator/store/sqlite.js');
    const dbDir = tempDir(t);
    // A node the store knows from before, which the cluster no longer has.
    const pre = SqliteStore.open(`${dbDir}/v.db`);
    const hello = helloFields();
    for (const n of ['kept', 'leaving', 'long-gone']) await pre.recordHello({ name: n, ...hello }, Date.now());
    await pre.close();
    const agg = await startTestAggregator(t, { kubeconfig: api.kubeconfig, db: `sqlite:${dbDir}/v.db` });
    await until(
      async () => !(await agg.store.listNodes()).some((n) => n.name === 'long-gone'),
      'a node the cluster no longer has is dropped',
    );
    t.same(
      (await agg.store.listNodes()).map((n) => n.name),
      ['kept', 'leaving'],
    );
    await until(
      () => api.calls.some((c) => c.path.startsWith('/api/v1/nodes?') && c.path.includes('watch=1')),
      'watching nodes',
    );
    api.emitTo('/api/v1/nodes', 'DELETED', node('leaving'));
    await until(
      async () => (await agg.store.listNodes()).map((n) => n.name).join() === 'kept',
      'the deleted node leaves',
    );
  },
);

t.test(
  'an inventory covers the pods that existed at any time in its interval, deleted ones included (pod history)',
  async (t) => {
    const api = await startFakeApiServer(t, tempDir(t));
    const pod = (name: string, labels: Record<string, string>) => ({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name, namespace: 'shop', uid: `uid-${name}`, labels },
      spec: { serviceAccountName: 'default', nodeName: 'n1' },
    });
    api.lists.set('/api/v1/pods', [pod('old-1', { app: 'old' })]);
    api.lists.set('/api/v1/namespaces', [{ metadata: { name: 'shop' } }]);
    api.lists.set('/api/v1/serviceaccounts', []);
    api.lists.set('/apis/networking.k8s.io/v1/networkpolicies', [
      { metadata: { name: 'old-only', namespace: 'shop' }, spec: { podSelector: { matchLabels: { app: 'old' } } } },
    ]);
    api.globalReports.set('inv', gr('inv', { reportType: 'inventory' }));
    const agg = await startTestAggregator(t, { kubeconfig: api.kubeconfig });
    await until(
      async () =>
        (await agg.store.podsDuring(0, Date.now() + 1)) === undefined &&
        (await agg.store.podsDuring(Date.now(), Date.now() + 1))?.length === 1,
      'the listed pod is recorded',
    );
    const from = Date.now();
    await until(
      () => api.calls.some((c) => c.path.startsWith('/api/v1/pods?') && c.path.includes('watch=1')),
      'watching pods',
    );
    api.emitTo('/api/v1/pods', 'ADDED', pod('new-1', { app: 'new' }));
    api.emitTo('/api/v1/pods', 'DELETED', pod('old-1', { app: 'old' }));
    await until(
      async () => ((await agg.store.podsDuring(from, Date.now() + 1)) ?? []).length === 2,
      'both pods in the history',
    );
    t.same(api.lists.get('/api/v1/pods')?.length, 1, 'the cluster lists only the new pod now');
    const run = await runUntilSucceeded(agg, 'inv', from, Date.now() + 1000, 'inventory run');
    const result = run.result as {
      data: { endpoints: { endpoint: string; ingressProtected: boolean }[] };
    };
    t.same(
      result.data.endpoints.map((e) => [e.endpoint, e.ingressProtected]),
      [
        ['shop/new-1', false],
        ['shop/old-1', true],
      ],
    );
  },
);

t.test(
  "with --signing-key every GlobalReport's status publishes the public key an auditor checks downloads with",
  async (t) => {
    const dir = tempDir(t);
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const keyFile = join(dir, 'signing.pem');
    writeFileSync(keyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    const api = await startFakeApiServer(t, dir);
    api.globalReports.set('weekly', gr('weekly', { reportType: 'cis-benchmark', schedule: '0 0 * * 0' }));
    api.tokens.set('auditor-token', {
      username: 'auditor',
      audiences: ['https://kubernetes.default.svc.cluster.local'],
    });
    api.allow.add('auditor get globalreports weekly');
    const agg = await startTestAggregator(t, { kubeconfig: api.kubeconfig, signingKeyFile: keyFile });
    await until(() => agg.registry.get('weekly') !== undefined, 'listed');
    const run = await runUntilSucceeded(
      agg,
      'weekly',
      Date.parse('2026-11-01T00:00:00Z'),
      Date.parse('2026-11-02T00:00:00Z'),
      'the run succeeded',
    );
    const status = await until(
      () => (api.globalReports.get('weekly') as { status?: { signingPublicKey?: string } }).status,
      'status written',
      20_000,
    );
    t.equal(status.signingPublicKey, publicKey.export({ type: 'spki', format: 'pem' }).toString(), 'the SPKI PEM');
    // What an auditor does with it: check a download's detached signature against that key.
    const file = 'total-summary.csv';
    const base = `http://127.0.0.1:${agg.httpPort}/api/v1/reports/weekly/runs/${run.id}/download/${file}`;
    const get = async (url: string) => {
      const res = await fetch(url, { headers: { authorization: 'Bearer auditor-token' } });
      t.equal(res.status, 200, url);
      return Buffer.from(await res.arrayBuffer());
    };
    const bytes = await get(base);
    const sig = await get(`${base}.sig`);
    t.ok(
      verify(null, bytes, createPublicKey(status.signingPublicKey!), sig),
      'the download verifies with the published key',
    );
  },
);
