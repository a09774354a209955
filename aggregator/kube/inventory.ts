import { KubeApiError, type KubeClient } from '../../common/kube-client.js';
import type { InventorySnapshot } from '../reports/types/inventory.js';
import type { Store } from '../store/index.js';

export interface KubeInventoryOptions {
  kube: KubeClient;
  /** The recorded pod history (aggregator/kube/pods.ts); without it, the current pod list. */
  store?: Store;
}

/**
 * List what an inventory report needs (services included, for services.csv);
 * Calico's policies only where Calico's API is installed. Pods come from the recorded pod history when it reaches
 * back to the interval's start (so pods deleted during the interval count),
 * else from the current list.
 */
export function kubeInventory({
  kube,
  store,
}: KubeInventoryOptions): (fromMs: number, toMs: number) => Promise<InventorySnapshot> {
  const items = async <T>(path: string, optional = false): Promise<T[]> => {
    try {
      return (await kube.get<{ items?: T[] }>(path)).items ?? [];
    } catch (err) {
      if (optional && err instanceof KubeApiError && err.status === 404) return [];
      throw err;
    }
  };
  return async (fromMs, toMs) => {
    const history = await store?.podsDuring(fromMs, toMs);
    const [live, namespaces, serviceAccounts, services, networkPolicies, calicoNp, calicoGnp] = await Promise.all([
      items<InventorySnapshot['pods'][number]>('/api/v1/pods'),
      items<InventorySnapshot['namespaces'][number]>('/api/v1/namespaces'),
      items<InventorySnapshot['serviceAccounts'][number]>('/api/v1/serviceaccounts'),
      // Optional only for API servers that serve a subset (test stand-ins); a real one always has services.
      items<NonNullable<InventorySnapshot['services']>[number]>('/api/v1/services', true),
      items<InventorySnapshot['networkPolicies'][number]>('/apis/networking.k8s.io/v1/networkpolicies'),
      items<Omit<InventorySnapshot['calicoPolicies'][number], 'kind'>>(
        '/apis/projectcalico.org/v3/networkpolicies',
        true,
      ),
      items<Omit<InventorySnapshot['calicoPolicies'][number], 'kind'>>(
        '/apis/projectcalico.org/v3/globalnetworkpolicies',
        true,
      ),
    ]);
    // Pod history keeps no containers: a pod still running lends its spec (Envoy known), a deleted one has none.
    const running = new Map(live.map((p) => [`${p.metadata.namespace}/${p.metadata.name}`, p]));
    const pods = history
      ? history.map((p) => {
          const now = running.get(`${p.namespace}/${p.name}`);
          return {
            metadata: {
              name: p.name,
              namespace: p.namespace,
              labels: p.labels,
              annotations: now?.metadata.annotations,
            },
            spec: {
              serviceAccountName: p.serviceAccount,
              hostNetwork: p.hostNetwork,
              containers: now?.spec?.containers,
              initContainers: now?.spec?.initContainers,
            },
          };
        })
      : live;
    return {
      pods,
      namespaces,
      serviceAccounts,
      services,
      networkPolicies,
      calicoPolicies: [
        ...calicoNp.map((p) => ({ ...p, kind: 'NetworkPolicy' as const })),
        ...calicoGnp.map((p) => ({ ...p, kind: 'GlobalNetworkPolicy' as const })),
      ],
    };
  };
}
