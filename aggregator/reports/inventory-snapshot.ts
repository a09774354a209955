/** The cluster objects an inventory needs, as the Kubernetes API lists them. */
export interface InventorySnapshot {
  pods: {
    metadata: {
      name: string;
      namespace: string;
      labels?: Record<string, string>;
      annotations?: Record<string, string>;
    };
    spec?: {
      serviceAccountName?: string;
      nodeName?: string;
      hostNetwork?: boolean;
      containers?: { name: string }[];
      initContainers?: { name: string }[];
    };
  }[];
  /**
   * v1 Service: a service holds the pods in its namespace its selector matches. Absent where the source does not list
   * services (the services are then unknown, not none).
   */
  services?: { metadata: { name: string; namespace: string }; spec?: { selector?: Record<string, string> } }[];
  namespaces: { metadata: { name: string; labels?: Record<string, string> } }[];
  serviceAccounts: { metadata: { name: string; namespace: string } }[];
  /** networking.k8s.io/v1 NetworkPolicy. */
  networkPolicies: {
    metadata: { name: string; namespace: string };
    spec?: { podSelector?: LabelSelector; policyTypes?: string[]; ingress?: unknown[]; egress?: unknown[] };
  }[];
  /** projectcalico.org/v3 NetworkPolicy (namespaced) and GlobalNetworkPolicy; empty without Calico. */
  calicoPolicies: {
    kind: 'NetworkPolicy' | 'GlobalNetworkPolicy';
    metadata: { name: string; namespace?: string };
    spec?: {
      selector?: string;
      namespaceSelector?: string;
      types?: string[];
      ingress?: unknown[];
      egress?: unknown[];
      tier?: string;
    };
  }[];
}

/** metav1.LabelSelector. */
export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: { key: string; operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist'; values?: string[] }[];
}
