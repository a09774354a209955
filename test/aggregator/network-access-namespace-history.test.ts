import t, { type Test } from 'tap';
import { KubeClient, kubeconfigConnection } from '../../common/kube-client.js';
import { clusterConfigurationSource, networkAccessOver } from '../../aggregator/network-access/index.js';
import { watchedVersionId } from '../../aggregator/reports/policy-resources.js';
import { openStore, type Store, type StoredAuditEvent } from '../../aggregator/store/index.js';
import { startFakeApiServer } from '../fixtures/fake-apiserver.js';
import { testPostgres } from '../fixtures/postgres.js';
import { tempDir } from '../fixtures/tmp.js';

/**
 * Namespace selectors evaluated with the labels a namespace had then (the aggregator's namespace history, stored on
 * SQLite and PostgreSQL; pods and services from a stand-in API server's v1 lists). Hand-derived over [T0, T0+60m):
 *   namespaces  shop {} until T0+20m, then {env: prod};  ops {team: a} until T0+30m, then {team: b}
 *   shop/from-team-a  Kubernetes NetworkPolicy: app=web, ingress from namespaceSelector team=a   (throughout)
 *   prod-out          Calico GlobalNetworkPolicy: namespaceSelector env == 'prod', Egress allow all (throughout)
 *   pod shop/web-0 app=web, throughout
 * shop/web: ingress from ops allowed in [T0, 30m) only; egress protected only from 20m (shop labelled then), so over
 * the hour not egress protected, over [20m, 60m) egress protected, and over [30m, 60m) no other namespace let in.
 */

const T0 = Date.UTC(2026, 10, 20, 10, 0, 0);
const MIN = 60_000;

function version(
  apiGroup: string,
  resource: string,
  namespace: string,
  object: { metadata: { name: string; namespace?: string; uid: string } },
): StoredAuditEvent {
  return {
    auditId: watchedVersionId({ ...object.metadata, resourceVersion: '1' }, false),
    stageMs: T0 - 10 * MIN,
    verb: 'observe',
    resource,
    apiGroup,
    namespace,
    name: object.metadata.name,
    username: '',
    event: {
      source: 'watch',
      objectRef: { apiGroup, resource, namespace, name: object.metadata.name },
      responseObject: object,
    },
  };
}

async function cases(t: Test, freshDb: () => Promise<string>): Promise<void> {
  const store: Store = await openStore(await freshDb());
  t.teardown(() => store.close());
  const api = await startFakeApiServer(t, tempDir(t));
  api.lists.set('/api/v1/namespaces', [{ metadata: { name: 'shop' } }, { metadata: { name: 'ops' } }]);
  api.lists.set('/api/v1/services', []);
  api.lists.set('/api/v1/pods', [
    {
      metadata: { name: 'web-0', namespace: 'shop', uid: 'u-web', labels: { app: 'web' } },
      spec: { containers: [{ name: 'app', image: 'registry.example/app:1' }], serviceAccountName: 'default' },
      status: { phase: 'Running' },
    },
  ]);
  const kube = new KubeClient(kubeconfigConnection(api.kubeconfig));
  t.teardown(() => kube.close());

  await store.recordNamespaces(
    [
      { name: 'shop', labels: {} },
      { name: 'ops', labels: { team: 'a' } },
    ],
    T0 - 10 * MIN,
  );
  await store.recordNamespaces([{ name: 'shop', labels: {} }], T0 - 5 * MIN);
  await store.recordNamespaces([{ name: 'shop', labels: { env: 'prod' } }], T0 + 20 * MIN);
  await store.recordNamespaces([{ name: 'ops', labels: { team: 'b' } }], T0 + 30 * MIN);
  t.same(
    (await store.namespaceVersions(T0, T0 + 60 * MIN))?.map((v) => [v.name, v.fromMs - T0, v.labels]),
    [
      ['ops', -10 * MIN, { team: 'a' }],
      ['ops', 30 * MIN, { team: 'b' }],
      ['shop', -10 * MIN, {}],
      ['shop', 20 * MIN, { env: 'prod' }],
    ],
    'a version per change only (the same labels seen again add none)',
  );
  t.equal(await store.namespaceVersions(T0 - 20 * MIN, T0), undefined, 'no history that far back');

  await store.recordAuditEvents([
    version('networking.k8s.io', 'networkpolicies', 'shop', {
      metadata: { name: 'from-team-a', namespace: 'shop', uid: 'p-1' },
      // As listed: no apiVersion or kind on the item.
      ...{
        spec: {
          podSelector: { matchLabels: { app: 'web' } },
          ingress: [{ from: [{ namespaceSelector: { matchLabels: { team: 'a' } } }] }],
        },
      },
    }),
    version('projectcalico.org', 'globalnetworkpolicies', '', {
      metadata: { name: 'prod-out', uid: 'p-2' },
      ...{ spec: { namespaceSelector: "env == 'prod'", types: ['Egress'], egress: [{ action: 'Allow' }] } },
    }),
  ]);
  const policies = {
    current: () => [
      { apiGroup: 'networking.k8s.io', resource: 'networkpolicies', namespace: 'shop', name: 'from-team-a' },
      { apiGroup: 'projectcalico.org', resource: 'globalnetworkpolicies', namespace: '', name: 'prod-out' },
    ],
  };
  const source = clusterConfigurationSource({ kube, store, policies });
  const web = async (fromMin: number, toMin: number) => {
    const e = (
      await networkAccessOver(
        store,
        { source, internalCidrs: [] },
        { fromMs: T0 + fromMin * MIN, toMs: T0 + toMin * MIN },
      )
    ).endpoints.find((x) => x.endpoint === 'shop/web');
    return e && [e.ingressProtected, e.egressProtected, e.configured?.ingressNamespaces, e.ingressFromOtherNamespaces];
  };
  t.same(await web(0, 60), [true, false, ['ops'], true], 'the hour: ops let in at some point; egress from 20m only');
  t.same(await web(20, 60), [true, true, ['ops'], true], '[20m, 60m): shop is env=prod throughout');
  t.same(await web(30, 60), [true, true, [], false], '[30m, 60m): ops is team=b, no other namespace let in');
  t.same(await web(0, 20), [true, false, ['ops'], true], '[0, 20m): shop not yet env=prod');
}

t.test('sqlite', async (t) => {
  const dir = tempDir(t);
  let n = 0;
  await cases(t, async () => `sqlite:${dir}/ns-${++n}.db`);
});

t.test('postgres', async (t) => {
  const pg = await testPostgres(t);
  await cases(t, () => pg.freshSchema());
});
