import { parseSelector } from '../selector.js';
import type { ReportDefinition } from '../globalreport.js';
import type { ReportFile } from '../result.js';
import { inScope } from '../scope.js';

/** The cluster objects an inventory needs, as the Kubernetes API lists them. */
export interface InventorySnapshot {
  pods: {
    metadata: { name: string; namespace: string; labels?: Record<string, string> };
    spec?: { serviceAccountName?: string; nodeName?: string; hostNetwork?: boolean };
  }[];
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

interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: { key: string; operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist'; values?: string[] }[];
}

/** metav1.LabelSelector: matchLabels and matchExpressions all hold; an empty selector selects everything. */
export function labelSelectorMatches(sel: LabelSelector | undefined, labels: Record<string, string>): boolean {
  if (!sel) return true;
  // Keys come from the policy, labels from the pod: only a pod's own labels count.
  for (const [k, v] of Object.entries(sel.matchLabels ?? {}))
    if (!Object.hasOwn(labels, k) || labels[k] !== v) return false;
  for (const e of sel.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, e.key);
    if (e.operator === 'In' && !(has && (e.values ?? []).includes(labels[e.key] as string))) return false;
    if (e.operator === 'NotIn' && has && (e.values ?? []).includes(labels[e.key] as string)) return false;
    if (e.operator === 'Exists' && !has) return false;
    if (e.operator === 'DoesNotExist' && has) return false;
  }
  return true;
}

/** Kubernetes: policyTypes when given; else Ingress, plus Egress when egress rules exist. */
function k8sTypes(p: InventorySnapshot['networkPolicies'][number]): string[] {
  return p.spec?.policyTypes ?? ['Ingress', ...(p.spec?.egress ? ['Egress'] : [])];
}

/** Calico: spec.types when given; else Ingress when ingress rules or none of either, Egress when egress rules. */
function calicoTypes(p: InventorySnapshot['calicoPolicies'][number]): string[] {
  if (p.spec?.types) return p.spec.types;
  const out: string[] = [];
  if (p.spec?.ingress || !p.spec?.egress) out.push('Ingress');
  if (p.spec?.egress) out.push('Egress');
  return out;
}

/**
 * The inventory report, as Calico Enterprise's: the endpoints (pods), namespaces
 * and service accounts in scope, and whether an ingress / egress policy selects
 * each endpoint — Kubernetes NetworkPolicies and, where installed, Calico's. A
 * namespace counts as protected when every in-scope endpoint in it is.
 */
export function inventoryReport(
  def: ReportDefinition,
  snap: InventorySnapshot,
  interval: { start: string; end: string },
) {
  const nsLabels = new Map(
    snap.namespaces.map((n) => [
      n.metadata.name,
      { ...(n.metadata.labels ?? {}), 'kubernetes.io/metadata.name': n.metadata.name },
    ]),
  );
  const calico = snap.calicoPolicies.map((p) => {
    let sel: ReturnType<typeof parseSelector> | undefined;
    let nsSel: ReturnType<typeof parseSelector> | undefined;
    try {
      sel = parseSelector(p.spec?.selector ?? 'all()');
      nsSel = p.spec?.namespaceSelector ? parseSelector(p.spec.namespaceSelector) : undefined;
    } catch {
      sel = undefined; // a policy Calico would have refused selects nothing
    }
    return { p, sel, nsSel, types: calicoTypes(p) };
  });
  const endpoints = snap.pods
    .filter((pod) => !pod.spec?.hostNetwork)
    .map((pod) => {
      const labels = pod.metadata.labels ?? {};
      const sa = pod.spec?.serviceAccountName ?? 'default';
      const ns = pod.metadata.namespace;
      const applied: { name: string; types: string[] }[] = [];
      for (const np of snap.networkPolicies) {
        if (np.metadata.namespace === ns && labelSelectorMatches(np.spec?.podSelector, labels))
          applied.push({ name: `${ns}/${np.metadata.name}`, types: k8sTypes(np) });
      }
      const calicoLabels = {
        ...labels,
        'projectcalico.org/namespace': ns,
        'projectcalico.org/serviceaccount': sa,
        'projectcalico.org/orchestrator': 'k8s',
      };
      for (const c of calico) {
        if (!c.sel) continue;
        if (c.p.kind === 'NetworkPolicy' && c.p.metadata.namespace !== ns) continue;
        if (c.nsSel && !c.nsSel.matches(nsLabels.get(ns) ?? {})) continue;
        if (c.sel.matches(calicoLabels))
          applied.push({
            name: `${c.p.metadata.namespace ? `${c.p.metadata.namespace}/` : ''}${c.p.metadata.name}`,
            types: c.types,
          });
      }
      return {
        endpoint: `${ns}/${pod.metadata.name}`,
        namespace: ns,
        serviceAccount: sa,
        labels,
        ingressProtected: applied.some((a) => a.types.includes('Ingress')),
        egressProtected: applied.some((a) => a.types.includes('Egress')),
        appliedPolicies: applied.map((a) => a.name).sort(),
      };
    })
    .filter((e) =>
      inScope(def, {
        namespace: e.namespace,
        serviceAccount: e.serviceAccount,
        labels: Object.entries(e.labels).map(([k, v]) => `${k}=${v}`),
      }),
    )
    .sort((a, b) => a.endpoint.localeCompare(b.endpoint));
  const byNs = new Map<string, typeof endpoints>();
  for (const e of endpoints) byNs.set(e.namespace, [...(byNs.get(e.namespace) ?? []), e]);
  const namespaces = [...byNs.entries()]
    .map(([namespace, eps]) => ({
      namespace,
      endpoints: eps.length,
      ingressProtected: eps.every((e) => e.ingressProtected),
      egressProtected: eps.every((e) => e.egressProtected),
    }))
    .sort((a, b) => a.namespace.localeCompare(b.namespace));
  const serviceAccounts = [...new Set(endpoints.map((e) => `${e.namespace}/${e.serviceAccount}`))].sort();
  const summary = {
    startTime: interval.start,
    endTime: interval.end,
    endpointsNumInScope: endpoints.length,
    endpointsNumIngressProtected: endpoints.filter((e) => e.ingressProtected).length,
    endpointsNumEgressProtected: endpoints.filter((e) => e.egressProtected).length,
    namespacesNumInScope: namespaces.length,
    namespacesNumIngressProtected: namespaces.filter((n) => n.ingressProtected).length,
    namespacesNumEgressProtected: namespaces.filter((n) => n.egressProtected).length,
    serviceAccountsNumInScope: serviceAccounts.length,
  };
  const files: Record<string, ReportFile> = {
    'summary.csv': { header: Object.keys(summary), rows: [Object.values(summary)] },
    'endpoints.csv': {
      header: ['endpoint', 'namespace', 'serviceAccount', 'ingressProtected', 'egressProtected', 'appliedPolicies'],
      rows: endpoints.map((e) => [
        e.endpoint,
        e.namespace,
        e.serviceAccount,
        e.ingressProtected,
        e.egressProtected,
        e.appliedPolicies,
      ]),
    },
    'namespaces.csv': {
      header: ['namespace', 'endpoints', 'ingressProtected', 'egressProtected'],
      rows: namespaces.map((n) => [n.namespace, n.endpoints, n.ingressProtected, n.egressProtected]),
    },
    'serviceaccounts.csv': { header: ['serviceAccount'], rows: serviceAccounts.map((s) => [s]) },
  };
  return {
    summary,
    data: { endpoints: endpoints.map(({ labels: _labels, ...e }) => e), namespaces, serviceAccounts },
    files,
  };
}
