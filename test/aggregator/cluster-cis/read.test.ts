import t from 'tap';
import { loadBenchmarks } from '../../../agent/cis/benchmarks.js';
import { KubeApiError, KubeClient, kubeconfigConnection } from '../../../common/kube-client.js';
import { evaluateClusterSection, type ClusterObjects } from '../../../aggregator/cluster-cis/evaluate.js';
import { CLUSTER_CIS_RBAC_RULES, KIND_SOURCES, readClusterObjects } from '../../../aggregator/cluster-cis/read.js';
import { startFakeApiServer } from '../../fixtures/fake-apiserver.js';
import { tempDir } from '../../fixtures/tmp.js';
import { weakCluster } from './clusters.js';

const benchmark = loadBenchmarks().find((b) => b.id === 'cis-1.12')!;

t.test('end to end: the reader lists the stand-in API server, the evaluator judges what it read', async (t) => {
  const api = await startFakeApiServer(t, tempDir(t));
  const weak = weakCluster();
  for (const [kind, src] of Object.entries(KIND_SOURCES)) {
    const read = weak[kind as keyof ClusterObjects];
    if (read && 'items' in read) api.lists.set(src.paths[0]!, read.items);
  }
  const kube = new KubeClient(kubeconfigConnection(api.kubeconfig));
  t.teardown(() => kube.close());
  const objects = await readClusterObjects(kube);
  t.same(objects.pods, weak.pods, 'pods as listed');
  t.same(objects['calico-networkpolicies'], { unavailable: 'no Calico NetworkPolicy API in this cluster' });
  t.same(objects['cilium-networkpolicies'], { unavailable: 'no CiliumNetworkPolicy API in this cluster' });
  t.ok(
    api.calls.some((c) => c.path === '/apis/crd.projectcalico.org/v1/networkpolicies?limit=500'),
    "Calico's CRD path is tried after its aggregated API",
  );
  t.ok(
    api.calls.every((c) => c.method === 'GET' && c.path.includes('limit=500')),
    'only paged GETs',
  );
  t.same(
    evaluateClusterSection(objects, { benchmark }),
    evaluateClusterSection(weak, { benchmark }),
    'the same results as on the objects themselves',
  );
  const r = new Map(evaluateClusterSection(objects, { benchmark }).map((x) => [x.id, x]));
  t.match(r.get('5.1.1'), {
    status: 'FAIL',
    failing: [{ object: 'User jane@example.com via ClusterRoleBinding dev-admin → ClusterRole cluster-admin' }],
  });
});

/** A `get` that answers list paths from pages, or with an error. */
function stubKube(answers: Record<string, (query: URLSearchParams) => unknown>) {
  const calls: string[] = [];
  return {
    calls,
    get: <T>(path: string): Promise<T> => {
      calls.push(path);
      const url = new URL(path, 'http://x');
      const answer = answers[url.pathname];
      if (!answer) return Promise.reject(new KubeApiError(404, 'NotFound', `GET ${path}: 404 NotFound`));
      try {
        return Promise.resolve(answer(url.searchParams) as T);
      } catch (err) {
        return Promise.reject(err);
      }
    },
  };
}

const forbidden = (resource: string) => () => {
  throw new KubeApiError(403, 'Forbidden', `GET: 403 Forbidden: ${resource} is forbidden`);
};

t.test('pages are followed by continue; a 403 SKIPs with the permission; an expired continue restarts', async (t) => {
  const pods = Array.from({ length: 5 }, (_, i) => ({ metadata: { name: `p${i}`, namespace: 'a' } }));
  let expired = false;
  const kube = stubKube({
    '/api/v1/pods': (q) => {
      const from = Number(q.get('continue') ?? 0);
      const limit = Number(q.get('limit'));
      const next = from + limit < pods.length ? String(from + limit) : undefined;
      return { kind: 'PodList', metadata: { continue: next }, items: pods.slice(from, from + limit) };
    },
    '/api/v1/namespaces': (q) => {
      if (q.get('continue') === 'stale' && !expired) {
        expired = true;
        throw new KubeApiError(410, 'Expired', 'The provided continue parameter is too old');
      }
      return q.has('continue')
        ? { items: [{ metadata: { name: 'b' } }] }
        : { items: [{ metadata: { name: 'a' } }], metadata: { continue: 'stale' } };
    },
    '/apis/rbac.authorization.k8s.io/v1/rolebindings': forbidden('rolebindings'),
    '/apis/networking.k8s.io/v1/networkpolicies': () => ({ items: 'nonsense' }),
  });
  const objects = await readClusterObjects(kube, { pageSize: 2 });
  t.same(objects.pods, { items: pods }, 'three pages of two');
  t.same(
    kube.calls.filter((c) => c.startsWith('/api/v1/pods')),
    ['/api/v1/pods?limit=2', '/api/v1/pods?limit=2&continue=2', '/api/v1/pods?limit=2&continue=4'],
  );
  t.same(objects.namespaces, { items: [{ metadata: { name: 'a' } }, { metadata: { name: 'b' } }] }, 'relisted once');
  t.match(objects.rolebindings, {
    unavailable: /forbidden: the aggregator may not list rolebindings\.rbac\.authorization\.k8s\.io cluster-wide/,
  });
  t.match(objects.networkpolicies, { unavailable: /not a list/ });
  t.same(objects.clusterroles, { unavailable: 'no ClusterRole API in this cluster' });
  const r = new Map(evaluateClusterSection(objects, { benchmark }).map((x) => [x.id, x]));
  t.match(r.get('5.1.2'), { status: 'SKIP', actual: /forbidden.*rolebindings/ });
  t.match(r.get('5.3.2'), { status: 'SKIP', actual: /not a list/ });
  t.equal(r.get('5.6.4')?.status, 'SKIP', 'needs service accounts, which are absent here');
});

t.test('a kind bigger than maxItems is unavailable rather than half-read', async (t) => {
  const kube = stubKube({
    '/api/v1/pods': () => ({ items: Array.from({ length: 10 }, (_, i) => ({ metadata: { name: `p${i}` } })) }),
  });
  const objects = await readClusterObjects(kube, { maxItems: 5 });
  t.match(objects.pods, { unavailable: /more than 5 items/ });
});

t.test('CLUSTER_CIS_RBAC_RULES grants list on every path the reader lists', async (t) => {
  for (const src of Object.values(KIND_SOURCES))
    for (const path of src.paths) {
      const m = /^\/(?:api\/v1|apis\/([^/]+)\/[^/]+)\/([^/]+)$/.exec(path)!;
      const [group, resource] = [m[1] ?? '', m[2]!];
      t.ok(
        CLUSTER_CIS_RBAC_RULES.some(
          (r) =>
            (r.apiGroups as readonly string[]).includes(group) &&
            (r.resources as readonly string[]).includes(resource) &&
            (r.verbs as readonly string[]).includes('list'),
        ),
        `list ${resource}.${group}`,
      );
    }
});
