import { hostEndpointConfiguration } from './decide.js';
import { field, fieldDoc, fieldString, labelMap, stringList, type Doc } from './document.js';
import type {
  ConfigHostEndpoint,
  ConfigNamespace,
  ConfigNetworkSet,
  ConfigTier,
  ConfiguredPolicy,
} from './policy-model.js';

/** Whether an object is a Calico HostEndpoint (projectcalico.org or crd.projectcalico.org). */
export function isHostEndpointObject(d: Doc): boolean {
  const api = fieldString(d, 'apiVersion') ?? '';
  const group = api.includes('/') ? api.slice(0, api.indexOf('/')) : '';
  return (
    (group === 'projectcalico.org' || group === 'crd.projectcalico.org') && fieldString(d, 'kind') === 'HostEndpoint'
  );
}

/** A HostEndpoint object, compiled: name, node, labels and profiles (Calico's "Host endpoint" reference). */
export function compileHostEndpoint(d: Doc): ConfigHostEndpoint {
  const meta = fieldDoc(d, 'metadata');
  const spec = fieldDoc(d, 'spec');
  return {
    name: fieldString(meta, 'name') ?? '',
    node: fieldString(spec, 'node') ?? '',
    labels: labelMap(field(meta, 'labels')),
    profiles: stringList(spec, 'profiles'),
  };
}

/** Labels as a report lists them: "key=value", sorted. */
export function labelTexts(labels: Readonly<Record<string, string>>): string[] {
  return Object.keys(labels)
    .map((k) => `${k}=${labels[k]}`)
    .sort();
}

/** What the configuration says of one endpoint over the interval (pod workloads and host endpoints alike). */
export interface EndpointEvidence {
  /** Every pod had an enforced ingress (egress) policy applying throughout the interval. */
  ingressProtected: boolean;
  egressProtected: boolean;
  /** At some point in the interval the configuration let some internet / other-namespace traffic in (out). */
  ingressFromInternet: boolean;
  egressToInternet: boolean;
  ingressFromOtherNamespace: boolean;
  egressToOtherNamespace: boolean;
  /** The other namespaces it let traffic in from / out to at some point. */
  ingressNamespaces: string[];
  egressNamespaces: string[];
  appliedPolicies: string[];
  stagedPolicies: string[];
  envoyEnabled: boolean;
}

/**
 * The evidence of an endpoint before any piece of the interval is folded in: protected until a piece is not, no
 * traffic allowed until a piece allows it (shared by pod workloads in configured.ts and host endpoints here).
 */
export function unfoldedEvidence(): EndpointEvidence & { envoyEnabled: false } {
  return {
    ingressProtected: true,
    egressProtected: true,
    ingressFromInternet: false,
    egressToInternet: false,
    ingressFromOtherNamespace: false,
    egressToOtherNamespace: false,
    ingressNamespaces: [],
    egressNamespaces: [],
    appliedPolicies: [],
    stagedPolicies: [],
    envoyEnabled: false,
  };
}

/**
 * A host endpoint's row, in the shape of configured.ts's ConfiguredEndpoint (which it is assignable to; declared here
 * so the two modules do not import each other): no pods, no service account, no namespace.
 */
export interface HostEndpointRow extends EndpointEvidence {
  endpoint: string;
  namespace: '';
  name: string;
  pods: 0;
  labels: string[];
  serviceAccount: '';
  envoyEnabled: false;
  node: string;
}

/** What is in force over one piece of the interval, host endpoints among it. */
export interface HostEndpointSegment {
  policies: readonly ConfiguredPolicy[];
  tiers: ReadonlyMap<string, ConfigTier>;
  networkSets: readonly ConfigNetworkSet[];
  hostEndpoints: readonly ConfigHostEndpoint[];
}

/**
 * Host endpoints as endpoints of the network-access report (Calico's compliance-reports overview: an in-scope asset
 * is a "Pod or HostEndpoint"), folded over the pieces of the interval as pods are: protected only if protected in
 * every piece it existed in, flags true if true in any. Named by the HostEndpoint's name, in no namespace (Calico's
 * flow logs give a host endpoint namespace "-"), with its node, by which flow logs name it; every namespace is
 * another namespace to it.
 */
export function hostEndpointRows(
  segments: readonly HostEndpointSegment[],
  namespaces: readonly ConfigNamespace[],
): HostEndpointRow[] {
  const rows = new Map<string, { e: HostEndpointRow; sets: Record<string, Set<string>> }>();
  for (const seg of segments)
    for (const host of seg.hostEndpoints) {
      const hc = hostEndpointConfiguration(host, seg.policies, namespaces, seg.tiers, seg.networkSets);
      let row = rows.get(host.name);
      if (!row) {
        row = {
          e: {
            endpoint: host.name,
            namespace: '',
            name: host.name,
            pods: 0,
            labels: labelTexts(host.labels),
            serviceAccount: '',
            ...unfoldedEvidence(),
            node: host.node,
          },
          sets: { ingress: new Set(), egress: new Set(), applied: new Set(), staged: new Set() },
        };
        rows.set(host.name, row);
      }
      const { e, sets } = row;
      e.ingressProtected &&= hc.protected.ingress;
      e.egressProtected &&= hc.protected.egress;
      e.ingressFromInternet ||= hc.internet.ingress;
      e.egressToInternet ||= hc.internet.egress;
      for (const n of hc.otherNamespaces.ingress) sets['ingress']?.add(n);
      for (const n of hc.otherNamespaces.egress) sets['egress']?.add(n);
      for (const p of hc.applied) sets['applied']?.add(p);
      for (const p of hc.staged) sets['staged']?.add(p);
    }
  const sorted = (s: Set<string> | undefined) => [...(s ?? [])].sort();
  return [...rows.values()].map(({ e, sets }) => {
    e.ingressNamespaces = sorted(sets['ingress']);
    e.egressNamespaces = sorted(sets['egress']);
    e.ingressFromOtherNamespace = e.ingressNamespaces.length > 0;
    e.egressToOtherNamespace = e.egressNamespaces.length > 0;
    e.appliedPolicies = sorted(sets['applied']);
    e.stagedPolicies = sorted(sets['staged']);
    return e;
  });
}
