import { KubeApiError, type KubeClient } from '../../common/kube-client.js';
import type { ClusterObjects, KindName, KindRead } from './model.js';

/** Where each kind is listed (cluster-wide), and the name a missing API or permission is told by. */
export interface KindSource {
  /** List paths tried in order: the first whose API exists is used (Calico's aggregated API, then its CRDs). */
  paths: string[];
  kind: string;
  /** resource.group as an RBAC rule names it. */
  resource: string;
}

export const KIND_SOURCES: Record<KindName, KindSource> = {
  clusterroles: {
    paths: ['/apis/rbac.authorization.k8s.io/v1/clusterroles'],
    kind: 'ClusterRole',
    resource: 'clusterroles.rbac.authorization.k8s.io',
  },
  roles: {
    paths: ['/apis/rbac.authorization.k8s.io/v1/roles'],
    kind: 'Role',
    resource: 'roles.rbac.authorization.k8s.io',
  },
  clusterrolebindings: {
    paths: ['/apis/rbac.authorization.k8s.io/v1/clusterrolebindings'],
    kind: 'ClusterRoleBinding',
    resource: 'clusterrolebindings.rbac.authorization.k8s.io',
  },
  rolebindings: {
    paths: ['/apis/rbac.authorization.k8s.io/v1/rolebindings'],
    kind: 'RoleBinding',
    resource: 'rolebindings.rbac.authorization.k8s.io',
  },
  namespaces: { paths: ['/api/v1/namespaces'], kind: 'Namespace', resource: 'namespaces' },
  pods: { paths: ['/api/v1/pods'], kind: 'Pod', resource: 'pods' },
  serviceaccounts: { paths: ['/api/v1/serviceaccounts'], kind: 'ServiceAccount', resource: 'serviceaccounts' },
  networkpolicies: {
    paths: ['/apis/networking.k8s.io/v1/networkpolicies'],
    kind: 'NetworkPolicy',
    resource: 'networkpolicies.networking.k8s.io',
  },
  'calico-networkpolicies': {
    paths: ['/apis/projectcalico.org/v3/networkpolicies', '/apis/crd.projectcalico.org/v1/networkpolicies'],
    kind: 'Calico NetworkPolicy',
    resource: 'networkpolicies.projectcalico.org (or networkpolicies.crd.projectcalico.org)',
  },
  'cilium-networkpolicies': {
    paths: ['/apis/cilium.io/v2/ciliumnetworkpolicies'],
    kind: 'CiliumNetworkPolicy',
    resource: 'ciliumnetworkpolicies.cilium.io',
  },
};

/**
 * The rules the aggregator's ClusterRole needs for the reader (list, cluster-wide; no Secrets are read).
 * manifests/base/11-rbac-aggregator.yaml grants them all (test/aggregator/cluster-cis/rbac-manifest.test.ts).
 */
export const CLUSTER_CIS_RBAC_RULES = [
  {
    apiGroups: ['rbac.authorization.k8s.io'],
    resources: ['clusterroles', 'roles', 'clusterrolebindings', 'rolebindings'],
    verbs: ['list'],
  },
  { apiGroups: [''], resources: ['namespaces', 'pods', 'serviceaccounts'], verbs: ['list'] },
  { apiGroups: ['networking.k8s.io'], resources: ['networkpolicies'], verbs: ['list'] },
  { apiGroups: ['projectcalico.org', 'crd.projectcalico.org'], resources: ['networkpolicies'], verbs: ['list'] },
  { apiGroups: ['cilium.io'], resources: ['ciliumnetworkpolicies'], verbs: ['list'] },
] as const;

export interface ReadOptions {
  /** Items asked per page (default 500). */
  pageSize?: number;
  /** Stop a kind after this many items (default 100,000): the kind is then unavailable, not half-read. */
  maxItems?: number;
}

type ListPage = { items?: unknown; metadata?: { continue?: unknown } };

class Absent extends Error {}

/** One list path read page by page (limit/continue); an expired continue token restarts the list once. */
async function listAll(
  kube: Pick<KubeClient, 'get'>,
  path: string,
  pageSize: number,
  maxItems: number,
): Promise<unknown[]> {
  let restarted = false;
  let items: unknown[] = [];
  let token: string | undefined;
  for (;;) {
    const q = new URLSearchParams({ limit: String(pageSize) });
    if (token) q.set('continue', token);
    let page: ListPage;
    try {
      page = await kube.get<ListPage>(`${path}?${q.toString()}`);
    } catch (err) {
      if (err instanceof KubeApiError && err.status === 410 && token && !restarted) {
        restarted = true;
        items = [];
        token = undefined;
        continue;
      }
      if (err instanceof KubeApiError && err.status === 404) throw new Absent(path);
      throw err;
    }
    if (!Array.isArray(page?.items)) throw new Error(`${path}: the answer is not a list (no items array)`);
    items.push(...(page.items as unknown[]));
    if (items.length > maxItems) throw new Error(`${path}: more than ${maxItems} items; not evaluated`);
    const next = page.metadata?.continue;
    if (typeof next !== 'string' || next === '') return items;
    token = next;
  }
}

async function readKind(
  kube: Pick<KubeClient, 'get'>,
  src: KindSource,
  opts: Required<ReadOptions>,
): Promise<KindRead> {
  for (const path of src.paths) {
    try {
      return { items: await listAll(kube, path, opts.pageSize, opts.maxItems) };
    } catch (err) {
      if (err instanceof Absent) continue;
      if (err instanceof KubeApiError && err.status === 403)
        return {
          unavailable: `forbidden: the aggregator may not list ${src.resource} cluster-wide (needs verb list on it)`,
        };
      return { unavailable: `${src.kind} could not be read: ${(err as Error).message}` };
    }
  }
  return { unavailable: `no ${src.kind} API in this cluster` };
}

/**
 * Lists, cluster-wide, every kind section 5 needs. Never throws for one kind:
 * an absent API (404) or a refused list (403) makes that kind unavailable with
 * the reason the checks needing it SKIP with.
 */
export async function readClusterObjects(
  kube: Pick<KubeClient, 'get'>,
  options: ReadOptions = {},
): Promise<ClusterObjects> {
  const opts = { pageSize: options.pageSize ?? 500, maxItems: options.maxItems ?? 100_000 };
  const kinds = Object.keys(KIND_SOURCES) as KindName[];
  const reads = await Promise.all(kinds.map((k) => readKind(kube, KIND_SOURCES[k], opts)));
  return Object.fromEntries(kinds.map((k, i) => [k, reads[i]])) as ClusterObjects;
}
