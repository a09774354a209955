import t from 'tap';
import { loadBenchmarks } from '../../../agent/cis/benchmarks.js';
import {
  evaluateClusterSection,
  type ClusterCheckResult,
  type ClusterObjects,
} from '../../../aggregator/cluster-cis/evaluate.js';
import { PERMISSIONS, ruleGrants } from '../../../aggregator/cluster-cis/rbac.js';
import { crb, group, hardenedCluster, namespace, pod, rb, user, weakCluster } from './clusters.js';

// Section 5 evaluated on the two stand-in clusters of clusters.ts; every
// expectation below is worked out by hand from those objects.
const benchmarks = loadBenchmarks();
const bench = (id: string) => benchmarks.find((b) => b.id === id)!;
const run = (objects: ClusterObjects, id = 'cis-1.12', extra: { excludeNamespaces?: string[] } = {}) =>
  new Map(evaluateClusterSection(objects, { benchmark: bench(id), ...extra }).map((r) => [r.id, r]));
const objectsOf = (r: ClusterCheckResult | undefined) => (r?.failing ?? []).map((f) => f.object).sort();

const JANE = 'User jane@example.com via ClusterRoleBinding dev-admin → ClusterRole cluster-admin';
const DEPLOYER = 'ServiceAccount ci/deployer via ClusterRoleBinding ci-deployer → ClusterRole ci-deployer';
const BOB = 'User bob@example.com via RoleBinding team-a/dev-all → Role dev-all';

/** 1.12 ids → the failing objects of the weak cluster (sorted). */
const WEAK_1_12: Record<string, string[]> = {
  '5.1.1': [JANE],
  '5.1.2': [DEPLOYER, JANE],
  '5.1.3': ['Role team-a/dev-all'],
  '5.1.4': [DEPLOYER, JANE, BOB],
  '5.1.5': ['ServiceAccount ci/default', 'ServiceAccount default/default', 'ServiceAccount team-a/default'],
  '5.1.6': ['Pod default/nginx', 'Pod team-a/priv'],
  '5.1.8': [DEPLOYER, JANE],
  '5.1.9': [DEPLOYER, JANE],
  '5.1.10': [DEPLOYER, JANE],
  '5.1.11': [DEPLOYER, JANE],
  '5.1.12': [DEPLOYER, JANE],
  '5.1.13': [DEPLOYER, JANE],
  '5.2.1': ['Namespace default', 'Namespace team-a'],
  // baseline forbids these: team-b (baseline) passes, ci (privileged) does not.
  '5.2.2': ['Namespace ci', 'Namespace default', 'Namespace team-a'],
  '5.2.3': ['Namespace ci', 'Namespace default', 'Namespace team-a'],
  '5.2.4': ['Namespace ci', 'Namespace default', 'Namespace team-a'],
  '5.2.5': ['Namespace ci', 'Namespace default', 'Namespace team-a'],
  // restricted only: team-b's baseline is not enough.
  '5.2.6': ['Namespace ci', 'Namespace default', 'Namespace team-a', 'Namespace team-b'],
  '5.2.7': ['Namespace ci', 'Namespace default', 'Namespace team-a', 'Namespace team-b'],
  '5.2.8': ['Namespace ci', 'Namespace default', 'Namespace team-a', 'Namespace team-b'],
  '5.2.9': ['Namespace ci', 'Namespace default', 'Namespace team-a', 'Namespace team-b'],
  '5.2.10': ['Namespace ci', 'Namespace default', 'Namespace team-a'],
  '5.2.11': ['Namespace ci', 'Namespace default', 'Namespace team-a'],
  '5.2.12': ['Namespace ci', 'Namespace default', 'Namespace team-a'],
  '5.3.2': ['Namespace ci', 'Namespace default', 'Namespace team-a'],
  '5.4.1': ['Pod ci/deploy-job', 'Pod team-a/web'],
  '5.6.2': ['Pod default/nginx', 'Pod team-a/priv', 'Pod team-a/web'],
  '5.6.3': ['Pod default/nginx', 'Pod team-a/priv', 'Pod team-a/web'],
  '5.6.4': ['Pod default/nginx'],
};
const MANUAL_1_12 = ['5.1.7', '5.3.1', '5.4.2', '5.5.1', '5.6.1'];

t.test(
  'cis-1.12, weak kubeadm-like cluster: every automated check FAILs with the objects derived by hand',
  async (t) => {
    const r = run(weakCluster());
    t.equal(r.size, 34, 'all 34 recommendations of section 5');
    for (const [id, objects] of Object.entries(WEAK_1_12)) {
      t.equal(r.get(id)?.status, 'FAIL', `${id} ${r.get(id)?.title}`);
      t.same(objectsOf(r.get(id)), [...objects].sort(), `${id} failing objects`);
      t.equal(r.get(id)?.failingTotal, objects.length);
    }
    for (const id of MANUAL_1_12) t.equal(r.get(id)?.status, 'MANUAL', `${id} manual: ${r.get(id)?.actual}`);
    t.equal(Object.keys(WEAK_1_12).length + MANUAL_1_12.length, 34);

    // Titles, scoring and remediation come from the YAML.
    const yaml = bench('cis-1.12').checks.find((c) => c.id === '5.1.1')!;
    t.match(r.get('5.1.1'), { title: yaml.title, scored: yaml.automated, level: 1, remediation: yaml.remediation });
    // Reasons and exclusions say why.
    t.match(r.get('5.1.1')?.failing[0]?.reason, /cluster-admin cluster-wide/);
    t.match(r.get('5.1.1')?.excluded, /system:\* users and groups, kubeadm:cluster-admins.*kube-system/);
    t.match(r.get('5.1.3')?.failing[0]?.reason, /'\*' in verbs/);
    t.match(r.get('5.1.3')?.excluded, /built-in/);
    t.match(
      r.get('5.1.5')?.failing.find((f) => f.object.includes('team-a'))?.reason,
      /bound by RoleBinding team-a\/default-view/,
    );
    const teamA = r.get('5.2.2')?.failing.find((f) => f.object === 'Namespace team-a');
    t.match(teamA?.reason, /no pod-security.kubernetes.io\/enforce label.*running now: priv \(privileged: debug\)/);
    t.match(r.get('5.2.2')?.failing.find((f) => f.object === 'Namespace ci')?.reason, /enforce=privileged/);
    t.match(r.get('5.2.3')?.expected, /baseline or restricted/);
    t.match(r.get('5.2.6')?.expected, /enforce: restricted \(/);
    t.match(
      r.get('5.4.1')?.failing.find((f) => f.object === 'Pod team-a/web')?.reason,
      /DB_PASSWORD ← secret db\/password/,
    );
    t.match(r.get('5.3.1')?.actual, /no Calico or Cilium API/);
    t.match(r.get('5.1.7')?.actual, /client certificates/);
    t.notOk(
      objectsOf(r.get('5.6.3')).includes('Pod ci/deploy-job'),
      'a pod with runAsNonRoot and no escalation passes 5.6.3',
    );
    for (const res of r.values()) t.equal(res.unreadable, 0);
  },
);

t.test('cis-1.12, hardened cluster: every automated check PASSes (5.3.1 too: Calico API present)', async (t) => {
  const r = run(hardenedCluster());
  for (const id of [...Object.keys(WEAK_1_12), '5.3.1']) {
    t.equal(r.get(id)?.status, 'PASS', `${id} ${r.get(id)?.title}: ${r.get(id)?.actual}`);
    t.same(r.get(id)?.failing, []);
  }
  t.match(r.get('5.3.1')?.actual, /Calico/);
  for (const id of ['5.1.7', '5.4.2', '5.5.1', '5.6.1']) t.equal(r.get(id)?.status, 'MANUAL');
});

t.test(
  'cis-1.9 maps by title: 5.2.9 "added capabilities" is baseline, 5.2.10 restricted, 5.7.x are 1.12\'s 5.6.x',
  async (t) => {
    const r = run(weakCluster(), 'cis-1.9');
    t.equal(r.size, 35, '1.9 has 13 recommendations in 5.2');
    t.match(r.get('5.2.9')?.title, /added capabilities/);
    t.same(objectsOf(r.get('5.2.9')), ['Namespace ci', 'Namespace default', 'Namespace team-a'], 'baseline suffices');
    t.same(objectsOf(r.get('5.2.10')), ['Namespace ci', 'Namespace default', 'Namespace team-a', 'Namespace team-b']);
    t.same(objectsOf(r.get('5.2.13')), ['Namespace ci', 'Namespace default', 'Namespace team-a'], 'hostPorts');
    t.same(objectsOf(r.get('5.7.4')), ['Pod default/nginx']);
    t.same(objectsOf(r.get('5.7.2')), WEAK_1_12['5.6.2']);
    t.equal(r.get('5.7.1')?.status, 'MANUAL');
    t.equal(r.get('5.1.1')?.scored, true, '1.9 marks 5.1.1 Automated');
    const h = run(hardenedCluster(), 'cis-1.9');
    for (const id of ['5.2.9', '5.2.10', '5.2.13', '5.7.2', '5.7.3', '5.7.4']) t.equal(h.get(id)?.status, 'PASS', id);
  },
);

t.test('per-check variations: one object flips a check', async (t) => {
  const hardened = hardenedCluster();
  const add = (kind: 'clusterrolebindings' | 'pods' | 'namespaces', item: unknown): ClusterObjects => {
    const o = hardenedCluster();
    (o[kind] as { items: unknown[] }).items.push(item);
    return o;
  };
  t.equal(run(hardened).get('5.1.1')?.status, 'PASS');
  const admin = run(add('clusterrolebindings', crb('oops', 'cluster-admin', [user('eve')]))).get('5.1.1');
  t.same(objectsOf(admin), ['User eve via ClusterRoleBinding oops → ClusterRole cluster-admin']);
  // a system: subject bound to cluster-admin stays excluded
  t.equal(
    run(add('clusterrolebindings', crb('sys', 'cluster-admin', [user('system:admin')]))).get('5.1.1')?.status,
    'PASS',
  );
  // a pod in an excluded namespace does not count; the same in a configured exclusion neither
  const noisy = add(
    'pods',
    pod('monitoring', 'node-exporter', { hostPID: true, containers: [{ name: 'e', image: 'x' }] }),
  );
  (noisy.namespaces as { items: unknown[] }).items.push(namespace('monitoring', 'restricted'));
  t.same(objectsOf(run(noisy).get('5.6.2')), ['Pod monitoring/node-exporter']);
  t.equal(run(noisy, 'cis-1.12', { excludeNamespaces: ['monitoring'] }).get('5.6.2')?.status, 'PASS');
  t.match(run(noisy, 'cis-1.12', { excludeNamespaces: ['monitoring'] }).get('5.6.2')?.excluded, /monitoring/);
  // Cilium instead of Calico also decides 5.3.1
  const cilium = hardenedCluster();
  cilium['calico-networkpolicies'] = { unavailable: 'no Calico NetworkPolicy API in this cluster' };
  cilium['cilium-networkpolicies'] = { items: [] };
  t.match(run(cilium).get('5.3.1'), { status: 'PASS', actual: /Cilium/ });
  t.same(objectsOf(run(cilium).get('5.3.2')), ['Namespace team-b'], "team-b's only policy was Calico's");
});

t.test('a kind that could not be read SKIPs the checks that need it, with the reason', async (t) => {
  const o = weakCluster();
  o.rolebindings = { unavailable: 'forbidden: the aggregator may not list rolebindings.rbac.authorization.k8s.io' };
  delete o.pods;
  const r = run(o);
  t.match(r.get('5.1.1'), { status: 'SKIP', actual: /forbidden.*rolebindings/ });
  t.match(r.get('5.4.1'), { status: 'SKIP', actual: /pods were not read/ });
  t.equal(r.get('5.1.3')?.status, 'FAIL', 'wildcards need only the roles');
  t.equal(r.get('5.2.1')?.status, 'FAIL', 'namespaces alone decide 5.2.1');
});

t.test('failing lists are bounded; the total counts them all', async (t) => {
  const o = weakCluster();
  for (let i = 0; i < 50; i++) (o.namespaces as { items: unknown[] }).items.push(namespace(`ns-${i}`));
  const r = new Map(evaluateClusterSection(o, { benchmark: bench('cis-1.12'), maxFailing: 10 }).map((x) => [x.id, x]));
  t.equal(r.get('5.2.1')?.failing.length, 10);
  t.equal(r.get('5.2.1')?.failingTotal, 52);
});

t.test('every section 5 title of every bundled benchmark has an evaluator (none falls back)', async (t) => {
  for (const b of benchmarks) {
    const results = evaluateClusterSection(weakCluster(), { benchmark: b });
    t.ok(results.length >= 34, `${b.id}: ${results.length} recommendations`);
    for (const r of results) t.notMatch(r.actual, /no automated evaluation/, `${b.id} ${r.id} ${r.title}`);
  }
});

t.test(
  'RBAC matching follows Kubernetes: "*", exact, "*/sub"; a namespaced cluster-admin binding is named',
  async (t) => {
    const rule = (resources: string[], verbs = ['get'], apiGroups = ['']) => ({
      apiGroups,
      resources,
      verbs,
      resourceNames: [],
    });
    t.ok(ruleGrants(rule(['*/proxy']), PERMISSIONS.nodesProxy));
    t.ok(ruleGrants(rule(['*'], ['*'], ['*']), PERMISSIONS.nodesProxy));
    t.notOk(ruleGrants(rule(['nodes/*']), PERMISSIONS.nodesProxy), "'nodes/*' grants nothing in RBAC");
    t.notOk(ruleGrants(rule(['nodes']), PERMISSIONS.nodesProxy), 'nodes is not nodes/proxy');
    t.notOk(ruleGrants(rule(['secrets'], ['get'], ['apps']), PERMISSIONS.secrets), 'wrong group');
    t.ok(ruleGrants(rule(['users'], ['impersonate']), PERMISSIONS.bindEscalate));
    t.ok(ruleGrants(rule(['clusterroles'], ['escalate'], ['rbac.authorization.k8s.io']), PERMISSIONS.bindEscalate));
    const o = hardenedCluster();
    (o.rolebindings as { items: unknown[] }).items.push(
      rb('team-a', 'admins', { kind: 'ClusterRole', name: 'cluster-admin' }, [group('team-a-admins')]),
    );
    const r = run(o);
    t.match(r.get('5.1.1')?.failing, [
      { object: 'Group team-a-admins via RoleBinding team-a/admins → ClusterRole cluster-admin', reason: /in team-a/ },
    ]);
    t.match(r.get('5.1.2')?.failing, [
      { reason: /may get\/list\/watch secrets in namespace team-a \(rule verbs \[\*\]/ },
    ]);
  },
);
