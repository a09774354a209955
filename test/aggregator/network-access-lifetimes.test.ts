import t, { type Test } from 'tap';
import { pino } from 'pino';
import { KubeClient, kubeconfigConnection } from '../../common/kube-client.js';
import { PodHistory } from '../../aggregator/kube/pods.js';
import { clusterConfigurationSource, networkAccessOver } from '../../aggregator/network-access/index.js';
import { watchedVersionId } from '../../aggregator/reports/policy-resources.js';
import { openStore, type Store, type StoredAuditEvent } from '../../aggregator/store/index.js';
import { startFakeApiServer } from '../fixtures/fake-apiserver.js';
import { testPostgres } from '../fixtures/postgres.js';
import { tempDir } from '../fixtures/tmp.js';
import { until } from '../fixtures/wait.js';

/**
 * Each pod judged over its own lifetime in the interval, as Calico's network-access report defines "protected": only
 * if protected throughout the part of the interval the endpoint existed, its labels as they were then. Pods come from
 * the aggregator's pod history (kube/pods.ts watching a stand-in API server that answers with the Kubernetes API's
 * shapes: a v1 PodList, then watch events {type, object: Pod}), stored on SQLite and PostgreSQL; policy versions as
 * the policy watch stores them. Hand-derived over [T0, T0+60m), namespace shop, all Kubernetes NetworkPolicies with
 * ingress rules only (so never egress protected):
 *   web-in     selects app=web      in force throughout
 *   db-in      selects app=db       created at T0+10m
 *   legacy-in  selects app=legacy   in force from before, deleted at T0+45m
 * Pods, listed at T0-10m unless said:
 *   web-7d9f8b6c5d-x2k8p  app=web throughout                         → shop/web protected (the control)
 *   worker-0              app=web, relabelled app=worker at T0+30m    → shop/worker NOT protected: for [30m, 60m) no
 *                         policy selects it; web-in applied at some point; its labels now app=worker
 *   cache-0               app=db throughout                           → shop/cache NOT protected (db-in from 10m)
 *   db-0                  app=db, created at T0+20m                   → shop/db protected (created after db-in)
 *   legacy-0              app=legacy, deleted at T0+40m               → shop/legacy protected over its lifetime
 *                         [T0, 40m) (legacy-in went at 45m, after it); still listed, 1 pod
 * Judged over the whole interval with last labels (as before), worker would have no applied policy, and db and
 * legacy would not be protected.
 */

const T0 = Date.UTC(2026, 10, 20, 10, 0, 0);
const MIN = 60_000;

/** A v1 Pod as the API server returns it (the fields Verdict reads, and a few beside them). */
function pod(name: string, uid: string, labels: Record<string, string>) {
  return {
    metadata: {
      name,
      namespace: 'shop',
      uid,
      labels,
      creationTimestamp: '2026-11-20T09:00:00Z',
    },
    spec: {
      containers: [{ name: 'app', image: 'registry.example/app:1' }],
      serviceAccountName: 'default',
      nodeName: 'worker-1',
    },
    status: { phase: 'Running', podIP: '10.0.0.10' },
  };
}

function npVersion(name: string, uid: string, verb: string, atMs: number, app: string): StoredAuditEvent {
  // As recorded from a list: the item carries no apiVersion or kind (the API server leaves them out of list items).
  const object = {
    metadata: { name, namespace: 'shop', uid, resourceVersion: String(atMs) },
    spec: { podSelector: { matchLabels: { app } }, ingress: [{ from: [{ podSelector: {} }] }] },
  };
  return {
    auditId: watchedVersionId(object.metadata, verb === 'delete'),
    stageMs: atMs,
    verb,
    resource: 'networkpolicies',
    apiGroup: 'networking.k8s.io',
    namespace: 'shop',
    name,
    username: '',
    event: {
      source: 'watch',
      objectRef: { apiGroup: 'networking.k8s.io', resource: 'networkpolicies', namespace: 'shop', name },
      ...(verb === 'delete' ? {} : { responseObject: object }),
    },
  };
}

async function cases(t: Test, freshDb: () => Promise<string>): Promise<void> {
  const store: Store = await openStore(await freshDb());
  t.teardown(() => store.close());
  const api = await startFakeApiServer(t, tempDir(t));
  api.lists.set('/api/v1/namespaces', [
    { metadata: { name: 'shop', uid: 'ns-shop', labels: { 'kubernetes.io/metadata.name': 'shop' } } },
  ]);
  api.lists.set('/api/v1/services', []);
  api.lists.set('/api/v1/pods', [
    pod('web-7d9f8b6c5d-x2k8p', 'u-web', { app: 'web' }),
    pod('worker-0', 'u-worker', { app: 'web' }),
    pod('cache-0', 'u-cache', { app: 'db' }),
    pod('legacy-0', 'u-legacy', { app: 'legacy' }),
  ]);
  const kube = new KubeClient(kubeconfigConnection(api.kubeconfig));
  t.teardown(() => kube.close());
  let now = T0 - 10 * MIN;
  const history = new PodHistory({ kube, store, log: pino({ level: 'silent' }), now: () => now });
  history.start();
  t.teardown(() => history.stop());
  const labelsOf = async (uid: string) =>
    (await store.podLifetimes(T0, T0 + 60 * MIN, { limit: 100 }))?.find((p) => p.uid === uid)?.versions;
  await until(async () => (await store.podLifetimes(now, now + 1, { limit: 100 }))?.length === 4, 'pods listed');
  await until(
    () => ['pods', 'namespaces'].every((r) => api.calls.some((c) => c.path.startsWith(`/api/v1/${r}?`))),
    'the pod and namespace watches open',
  );
  await until(async () => (await store.namespaceVersions(now, now + 1))?.length === 1, 'namespaces listed');

  now = T0 + 20 * MIN;
  api.emitTo('/api/v1/pods', 'ADDED', pod('db-0', 'u-db', { app: 'db' }));
  await until(async () => (await labelsOf('u-db'))?.length === 1, 'db-0 recorded');
  now = T0 + 30 * MIN;
  api.emitTo('/api/v1/pods', 'MODIFIED', pod('worker-0', 'u-worker', { app: 'worker' }));
  await until(async () => (await labelsOf('u-worker'))?.length === 2, 'worker-0 relabelled');
  api.emitTo('/api/v1/namespaces', 'MODIFIED', {
    metadata: { name: 'shop', uid: 'ns-shop', labels: { 'kubernetes.io/metadata.name': 'shop', env: 'prod' } },
  });
  await until(async () => (await store.namespaceVersions(T0, T0 + 60 * MIN))?.length === 2, 'shop relabelled');
  t.same(
    (await store.namespaceVersions(T0, T0 + 60 * MIN))?.map((v) => [v.name, v.fromMs - T0, v.labels?.['env'] ?? '']),
    [
      ['shop', -10 * MIN, ''],
      ['shop', 30 * MIN, 'prod'],
    ],
    'the namespace watch keeps each version of its labels',
  );
  now = T0 + 40 * MIN;
  api.emitTo('/api/v1/pods', 'DELETED', pod('legacy-0', 'u-legacy', { app: 'legacy' }));
  await until(
    async () =>
      (await store.podLifetimes(T0, T0 + 60 * MIN, { limit: 100 }))?.find((p) => p.uid === 'u-legacy')?.deletedMs,
    'legacy-0 deleted',
  );

  const lifetimes = await store.podLifetimes(T0, T0 + 60 * MIN, { limit: 100 });
  t.same(
    lifetimes?.map((p) => [
      p.name,
      p.firstSeenMs - T0,
      p.deletedMs === undefined ? 'alive' : p.deletedMs - T0,
      p.versions.map((v) => [v.fromMs - T0, v.labels['app']]),
    ]),
    [
      ['cache-0', -10 * MIN, 'alive', [[-10 * MIN, 'db']]],
      ['db-0', 20 * MIN, 'alive', [[20 * MIN, 'db']]],
      ['legacy-0', -10 * MIN, 40 * MIN, [[-10 * MIN, 'legacy']]],
      ['web-7d9f8b6c5d-x2k8p', -10 * MIN, 'alive', [[-10 * MIN, 'web']]],
      [
        'worker-0',
        -10 * MIN,
        'alive',
        [
          [-10 * MIN, 'web'],
          [30 * MIN, 'worker'],
        ],
      ],
    ],
    'the store keeps each pod from its first sighting to its deletion, with each label version (by uid)',
  );
  t.same(
    (await store.podLifetimes(T0 + 35 * MIN, T0 + 60 * MIN, { limit: 100 }))
      ?.find((p) => p.uid === 'u-worker')
      ?.versions.map((v) => [v.fromMs - T0, v.labels['app']]),
    [[30 * MIN, 'worker']],
    'a version superseded before the interval is left out',
  );
  const pageOne = await store.podLifetimes(T0, T0 + 60 * MIN, { limit: 2 });
  const pageTwo = await store.podLifetimes(T0, T0 + 60 * MIN, { afterUid: pageOne?.[1]?.uid, limit: 2 });
  t.same(
    [...(pageOne ?? []), ...(pageTwo ?? [])].map((p) => p.uid),
    ['u-cache', 'u-db', 'u-legacy', 'u-web'],
    'pages follow on by uid',
  );

  await store.recordAuditEvents([
    npVersion('web-in', 'p-web', 'observe', T0 - 10 * MIN, 'web'),
    npVersion('legacy-in', 'p-legacy', 'observe', T0 - 10 * MIN, 'legacy'),
    npVersion('db-in', 'p-db', 'create', T0 + 10 * MIN, 'db'),
    npVersion('legacy-in', 'p-legacy', 'delete', T0 + 45 * MIN, 'legacy'),
  ]);
  const policies = {
    current: () => [
      { apiGroup: 'networking.k8s.io', resource: 'networkpolicies', namespace: 'shop', name: 'web-in' },
      { apiGroup: 'networking.k8s.io', resource: 'networkpolicies', namespace: 'shop', name: 'db-in' },
    ],
  };
  const source = clusterConfigurationSource({ kube, store, policies });
  const evidence = await networkAccessOver(store, { source, internalCidrs: [] }, { fromMs: T0, toMs: T0 + 60 * MIN });
  t.same(evidence.configuration, { source: 'cluster', problems: [] });
  t.same(
    evidence.endpoints.map((e) => [
      e.endpoint,
      e.configured?.pods,
      e.ingressProtected,
      e.egressProtected,
      e.appliedPolicies,
      e.labels,
    ]),
    [
      ['shop/cache', 1, false, false, ['shop/db-in'], ['app=db']],
      ['shop/db', 1, true, false, ['shop/db-in'], ['app=db']],
      ['shop/legacy', 1, true, false, ['shop/legacy-in'], ['app=legacy']],
      ['shop/web', 1, true, false, ['shop/web-in'], ['app=web']],
      ['shop/worker', 1, false, false, ['shop/web-in'], ['app=worker']],
    ],
    'each pod over its own lifetime and labels',
  );

  const before = await networkAccessOver(
    store,
    { source, internalCidrs: [] },
    { fromMs: T0 + 10 * MIN, toMs: T0 + 30 * MIN },
  );
  t.same(
    before.endpoints.map((e) => [e.endpoint, e.ingressProtected]),
    [
      ['shop/cache', true],
      ['shop/db', true],
      ['shop/legacy', true],
      ['shop/web', true],
      ['shop/worker', true],
    ],
    '[10m, 30m): db-in in force throughout, worker still app=web: all protected',
  );
  const after = await networkAccessOver(
    store,
    { source, internalCidrs: [] },
    { fromMs: T0 + 40 * MIN, toMs: T0 + 60 * MIN },
  );
  t.same(
    after.endpoints.map((e) => e.endpoint),
    ['shop/cache', 'shop/db', 'shop/web', 'shop/worker'],
    'legacy-0, deleted at 40m, is not in [40m, 60m)',
  );

  // The aggregator restarts at T0+50m; cache-0 was deleted while it was down (no DELETED event reached it). The new
  // watch's list lacks it, so it is gone from then, not alive for ever.
  history.stop();
  api.lists.set(
    '/api/v1/pods',
    (api.lists.get('/api/v1/pods') ?? []).filter(
      (p) => (p as { metadata: { name: string } }).metadata.name !== 'cache-0',
    ),
  );
  now = T0 + 50 * MIN;
  const restarted = new PodHistory({ kube, store, log: pino({ level: 'silent' }), now: () => now });
  restarted.start();
  t.teardown(() => restarted.stop());
  const cacheGone = await until(
    async () =>
      (await store.podLifetimes(T0, T0 + 60 * MIN, { limit: 100 }))?.find((p) => p.uid === 'u-cache')?.deletedMs,
    'cache-0 found gone by the relist',
  );
  t.equal(cacheGone, T0 + 50 * MIN, 'gone from the relist');
  const late = await networkAccessOver(
    store,
    { source, internalCidrs: [] },
    { fromMs: T0 + 55 * MIN, toMs: T0 + 60 * MIN },
  );
  t.same(
    late.endpoints.map((e) => e.endpoint),
    ['shop/db', 'shop/web', 'shop/worker'],
    'neither legacy-0 nor cache-0 exists in [55m, 60m)',
  );
}

t.test('sqlite', async (t) => {
  const dir = tempDir(t);
  let n = 0;
  await cases(t, async () => `sqlite:${dir}/lt-${++n}.db`);
});

t.test('postgres', async (t) => {
  const pg = await testPostgres(t);
  await cases(t, () => pg.freshSchema());
});
