import { KubeApiError, type KubeClient } from '../../common/kube-client.js';
import type { InventorySnapshot } from '../reports/types/inventory.js';

/** List what an inventory report needs; Calico's policies only where Calico's API is installed. */
export function kubeInventory(kube: KubeClient): () => Promise<InventorySnapshot> {
  const items = async <T>(path: string, optional = false): Promise<T[]> => {
    try {
      return (await kube.get<{ items?: T[] }>(path)).items ?? [];
    } catch (err) {
      if (optional && err instanceof KubeApiError && err.status === 404) return [];
      throw err;
    }
  };
  return async () => {
    const [pods, namespaces, serviceAccounts, networkPolicies, calicoNp, calicoGnp] = await Promise.all([
      items<InventorySnapshot['pods'][number]>('/api/v1/pods'),
      items<InventorySnapshot['namespaces'][number]>('/api/v1/namespaces'),
      items<InventorySnapshot['serviceAccounts'][number]>('/api/v1/serviceaccounts'),
      items<InventorySnapshot['networkPolicies'][number]>('/apis/networking.k8s.io/v1/networkpolicies'),
      items<Omit<InventorySnapshot['calicoPolicies'][number], 'kind'>>('/apis/projectcalico.org/v3/networkpolicies', true),
      items<Omit<InventorySnapshot['calicoPolicies'][number], 'kind'>>('/apis/projectcalico.org/v3/globalnetworkpolicies', true),
    ]);
    return {
      pods,
      namespaces,
      serviceAccounts,
      networkPolicies,
      calicoPolicies: [...calicoNp.map((p) => ({ ...p, kind: 'NetworkPolicy' as const })), ...calicoGnp.map((p) => ({ ...p, kind: 'GlobalNetworkPolicy' as const }))],
    };
  };
}
