import t, { type Test } from 'tap';
import type { FlowEndpoint, FlowRecord } from '../../common/flow.js';
import { Registry } from 'prom-client';
import {
  networkAccessFindingsGauge,
  networkAccessOver,
  type ClusterConfiguration,
  type NetworkAccessConfig,
} from '../../aggregator/network-access/index.js';
import { policyVersions } from '../../aggregator/network-access/source.js';
import { watchedVersionId } from '../../aggregator/reports/policy-resources.js';
import { openStore, type Store, type StoredAuditEvent } from '../../aggregator/store/index.js';
import { testPostgres } from '../fixtures/postgres.js';
import { tempDir } from '../fixtures/tmp.js';

/**
 * Network access in a cluster, from what the store keeps: policy versions as the aggregator's own watch records them
 * (kube/policy-history.ts: audit events with IDs "watch:uid:rv:", the object in responseObject), flows summed in SQL,
 * on SQLite and PostgreSQL. Hand-derived: a Kubernetes NetworkPolicy selecting shop/web is created at T0+20m and
 * updated at T0+40m to admit 0.0.0.0/0; over [T0, T0+1h) web is not ingress protected (nothing applied for the
 * first 20 minutes), over [T0+20m, T0+1h) it is, and over [T0+40m, T0+1h) the internet is let in by configuration.
 */

const T0 = Date.UTC(2026, 10, 20, 10, 0, 0);
const MIN = 60_000;

const policy = (rv: string, ingress: unknown[]) => ({
  apiVersion: 'networking.k8s.io/v1',
  kind: 'NetworkPolicy',
  metadata: { name: 'web-in', namespace: 'shop', uid: 'u-1', resourceVersion: rv },
  spec: { podSelector: { matchLabels: { app: 'web' } }, ingress },
});

function version(verb: string, atMs: number, object: ReturnType<typeof policy>): StoredAuditEvent {
  return {
    auditId: watchedVersionId(object.metadata, false),
    stageMs: atMs,
    verb,
    resource: 'networkpolicies',
    apiGroup: 'networking.k8s.io',
    namespace: 'shop',
    name: 'web-in',
    username: '',
    event: {
      source: 'watch',
      objectRef: { apiGroup: 'networking.k8s.io', resource: 'networkpolicies', namespace: 'shop', name: 'web-in' },
      responseObject: object,
    },
  };
}

const web: FlowEndpoint = {
  kind: 'pod',
  namespace: 'shop',
  name: 'web',
  labels: ['app=web'],
  serviceAccount: 'default',
  internet: false,
};
const pub: FlowEndpoint = {
  kind: 'network',
  namespace: '',
  name: 'pub',
  labels: [],
  serviceAccount: '',
  internet: true,
};

function internetFlow(atMs: number, connections: number): FlowRecord {
  return {
    source: pub,
    destination: web,
    protocol: 'tcp',
    destinationPort: 443,
    action: 'allow',
    reporter: 'dst',
    policies: [],
    stagedPolicies: [],
    unnamedPolicy: false,
    policyDecided: false,
    connections,
    packets: connections,
    bytes: connections * 100,
    startMs: atMs,
    endMs: atMs + 1000,
  };
}

async function cases(t: Test, freshDb: () => Promise<string>): Promise<void> {
  const store: Store = await openStore(await freshDb());
  t.teardown(() => store.close());
  await store.recordAuditEvents([
    version('create', T0 + 20 * MIN, policy('1', [{ from: [{ podSelector: {} }] }])),
    version('update', T0 + 40 * MIN, policy('2', [{ from: [{ ipBlock: { cidr: '0.0.0.0/0' } }] }])),
  ]);
  const current = {
    current: () => [{ apiGroup: 'networking.k8s.io', resource: 'networkpolicies', namespace: 'shop', name: 'web-in' }],
  };
  const versions = await policyVersions(store, current, T0, T0 + 60 * MIN);
  t.same(
    versions.map((v) => [v.fromMs - T0, v.toMs === Infinity ? 'now' : v.toMs - T0]),
    [
      [20 * MIN, 40 * MIN],
      [40 * MIN, 'now'],
    ],
    'each version in force from its record to the next',
  );
  // The audit webhook's copy of the update, stored a second after the watch's: the version in force is still the
  // watched one (taking the latest event of either kind lost the policy whenever the webhook's copy came last).
  await store.recordAuditEvents([
    {
      ...version('update', T0 + 40 * MIN + 1000, policy('2', [{ from: [{ ipBlock: { cidr: '0.0.0.0/0' } }] }])),
      auditId: 'webhook-audit-id-1',
      username: 'mallory',
    },
  ]);
  const later = await policyVersions(store, current, T0 + 50 * MIN, T0 + 60 * MIN);
  t.same(
    later.map((v) => v.fromMs),
    [-Infinity],
    'the version recorded before the interval is in force from its start',
  );

  // Internet traffic at T0+10m (before any policy: the profile) and T0+45m (admitted by the updated policy, but
  // decided by no policy in this record: a finding only where configuration says protected).
  await store.recordFlowBatch(
    'worker-1',
    'boot',
    1,
    [internetFlow(T0 + 10 * MIN, 3), internetFlow(T0 + 45 * MIN, 4)],
    T0,
  );
  const registry = new Registry();
  const config: NetworkAccessConfig = {
    internalCidrs: [],
    findings: networkAccessFindingsGauge(registry),
    source: {
      async configuration(fromMs, toMs): Promise<ClusterConfiguration> {
        return {
          source: 'cluster',
          namespaces: [{ name: 'shop', labels: {} }],
          pods: [
            {
              namespace: 'shop',
              name: 'web-7d9f8b6c5d-x2k8p',
              labels: { app: 'web' },
              serviceAccount: 'default',
              envoy: false,
            },
          ],
          policies: await policyVersions(store, current, fromMs, toMs),
        };
      },
    },
  };
  const hour = await networkAccessOver(store, config, { fromMs: T0, toMs: T0 + 60 * MIN });
  const w = hour.endpoints.find((e) => e.endpoint === 'shop/web');
  t.same(
    w && [w.evidence, w.ingressProtected, w.ingressFromInternet, w.allowedIn],
    ['configured', false, true, 7],
    'the whole hour: not protected (a policy added at 20m), the internet let in (profile, then the update)',
  );
  t.same(hour.findings, [], 'not configured protected, so profile-decided traffic is no finding');

  const secondHalf = await networkAccessOver(store, config, { fromMs: T0 + 20 * MIN, toMs: T0 + 40 * MIN });
  const s = secondHalf.endpoints.find((e) => e.endpoint === 'shop/web');
  t.same(
    s && [s.ingressProtected, s.ingressFromInternet, s.allowedIn],
    [true, false, 0],
    '[20m, 40m): protected, the internet not let in, no traffic',
  );

  const last = await networkAccessOver(store, config, { fromMs: T0 + 40 * MIN, toMs: T0 + 60 * MIN });
  t.same(
    last.findings.map((f) => [f.endpoint, f.direction, f.kind, f.connections]),
    [['shop/web', 'ingress', 'protected-but-unprotected-traffic', 4]],
    '[40m, 1h): protected, yet 4 connections decided by no policy',
  );
  const gauge = await registry.getSingleMetricAsString('verdict_aggregator_network_access_findings');
  t.match(gauge, /verdict_aggregator_network_access_findings\{kind="protected-but-unprotected-traffic"\} 1\n/);
  t.match(gauge, /verdict_aggregator_network_access_findings\{kind="internet-traffic-not-configured"\} 0/);
}

t.test('sqlite', async (t) => {
  const dir = tempDir(t);
  let n = 0;
  await cases(t, async () => `sqlite:${dir}/na-${++n}.db`);
});

t.test('postgres', async (t) => {
  const pg = await testPostgres(t);
  await cases(t, () => pg.freshSchema());
});
