import {
  namespaceRows,
  type NamespaceAccessRow,
  type NetworkAccessRow,
  type NetworkAccessSummary,
} from '../compute/network-access.js';
import { workloadOf, type ConfiguredEndpoint, type ConfiguredEvidence } from './configured.js';
import type { Direction } from './policy-model.js';

/** What the dataplane showed for one endpoint over the interval (compute/network-access.ts, from flow records). */
export interface ObservedEvidence {
  /**
   * Every observation in that direction was decided by a policy; null: none observed that could tell (none at all, or
   * only kubelet probes from the local host and policyUnknown records).
   */
  ingressProtected: boolean | null;
  egressProtected: boolean | null;
  ingressFromInternet: boolean;
  egressToInternet: boolean;
  ingressNamespaces: string[];
  egressNamespaces: string[];
  internetAllowedIn: number;
  internetAllowedOut: number;
  unprotectedAllowedIn: number;
  unprotectedAllowedOut: number;
  /** Allowed connections no event could say a policy decided or not (policyUnknown): unknown, not unprotected. */
  unknownAllowedIn: number;
  unknownAllowedOut: number;
}

/** Where configuration and dataplane disagree. */
export const FINDING_KINDS = {
  /** Configured protected in a direction, yet allowed traffic was decided by a namespace profile or by no policy. */
  unprotectedTraffic: 'protected-but-unprotected-traffic',
  /** No rule lets the internet in (or out), yet internet traffic was allowed. */
  internetAllowed: 'internet-traffic-not-configured',
  /** Allowed traffic from (to) another namespace that no rule in force allows. */
  namespaceNotAllowed: 'namespace-traffic-not-configured',
} as const;
export type FindingKind = (typeof FINDING_KINDS)[keyof typeof FINDING_KINDS];

export interface NetworkAccessFinding {
  endpoint: string;
  namespace: string;
  direction: Direction;
  kind: FindingKind;
  /** What was seen against what is configured, in words. */
  detail: string;
  /** Allowed connections behind it (a namespace finding: 0; flows are summed per endpoint, not per namespace). */
  connections: number;
}

/** One endpoint's network access: Calico's columns (configured where configuration is known), and both evidences. */
export interface NetworkAccessEndpoint {
  endpoint: string;
  namespace: string;
  name: string;
  kind: string;
  /** Labels ("key=value", sorted) and service account: the configuration's, else as flows last showed them. */
  labels: string[];
  serviceAccount: string;
  /** Calico's meaning: an enforced policy with rules in that direction applied throughout the interval. */
  ingressProtected: boolean;
  egressProtected: boolean;
  /** Calico's meaning: the policies in force let (some) such traffic in / out at some point in the interval. */
  ingressFromInternet: boolean;
  egressToInternet: boolean;
  ingressFromOtherNamespaces: boolean;
  egressToOtherNamespaces: boolean;
  envoyEnabled: boolean;
  appliedPolicies: string[];
  services: string[];
  trafficAggregationPrefix: string;
  endpointsGeneratingTrafficToThisEndpoint: string[];
  endpointsReceivingTrafficFromThisEndpoint: string[];
  allowedIn: number;
  deniedIn: number;
  allowedOut: number;
  deniedOut: number;
  /** Policies named on its traffic. */
  policies: string[];
  /** Staged policies selecting it (configured) or seen on its traffic: intent, not protection. */
  stagedPolicies: string[];
  /** Where the flags above come from: the configuration, or (no configuration known for it) the flows. */
  evidence: 'configured' | 'observed';
  configured: ConfiguredEndpoint | null;
  observed: ObservedEvidence | null;
  findings: NetworkAccessFinding[];
}

export interface NetworkAccessEvidence {
  endpoints: NetworkAccessEndpoint[];
  namespaces: NamespaceAccessRow[];
  findings: NetworkAccessFinding[];
  /** Where configuration came from ("none" without a cluster or snapshot), and what of it could not be read. */
  configuration: { source: string; problems: string[] };
}

function observedOf(r: NetworkAccessRow): ObservedEvidence {
  return {
    ingressProtected: r.ingressProtected,
    egressProtected: r.egressProtected,
    ingressFromInternet: r.ingressFromInternet,
    egressToInternet: r.egressToInternet,
    ingressNamespaces: r.ingressNamespaces,
    egressNamespaces: r.egressNamespaces,
    internetAllowedIn: r.internetAllowedIn,
    internetAllowedOut: r.internetAllowedOut,
    unprotectedAllowedIn: r.unprotectedAllowedIn,
    unprotectedAllowedOut: r.unprotectedAllowedOut,
    unknownAllowedIn: r.unknownAllowedIn,
    unknownAllowedOut: r.unknownAllowedOut,
  };
}

/** The cross-check of one endpoint's configured and observed evidence. */
export function crossCheck(
  endpoint: string,
  namespace: string,
  c: ConfiguredEndpoint,
  o: ObservedEvidence,
): NetworkAccessFinding[] {
  const out: NetworkAccessFinding[] = [];
  const add = (direction: Direction, kind: FindingKind, detail: string, connections: number) =>
    out.push({ endpoint, namespace, direction, kind, detail, connections });
  const sides = [
    [
      'ingress',
      c.ingressProtected,
      o.unprotectedAllowedIn,
      o.unknownAllowedIn,
      c.ingressFromInternet,
      o.internetAllowedIn,
      c.ingressNamespaces,
      o.ingressNamespaces,
      'from',
    ],
    [
      'egress',
      c.egressProtected,
      o.unprotectedAllowedOut,
      o.unknownAllowedOut,
      c.egressToInternet,
      o.internetAllowedOut,
      c.egressNamespaces,
      o.egressNamespaces,
      'to',
    ],
  ] as const;
  for (const [
    dir,
    prot,
    unprotectedConns,
    unknownConns,
    internetConfigured,
    internetSeen,
    nsConfigured,
    nsSeen,
    word,
  ] of sides) {
    // Connections no event could tell about (policyUnknown) are no finding of their own, but a finding names them.
    const unknown =
      unknownConns > 0
        ? `; ${unknownConns} more allowed connection(s) were seen by trace events only, which cannot tell`
        : '';
    if (prot && unprotectedConns > 0)
      add(
        dir,
        FINDING_KINDS.unprotectedTraffic,
        `${dir} is protected by ${c.appliedPolicies.join(', ') || 'policy'} throughout the interval, yet ${unprotectedConns} allowed connection(s) were decided by no policy (a namespace profile or none selecting it)${unknown}`,
        unprotectedConns,
      );
    if (!internetConfigured && internetSeen > 0)
      add(
        dir,
        FINDING_KINDS.internetAllowed,
        `no rule in force allows the internet ${word} it, yet ${internetSeen} connection(s) ${word} the internet were allowed`,
        internetSeen,
      );
    if (prot) {
      const unexpected = nsSeen.filter((n) => !nsConfigured.includes(n));
      if (unexpected.length > 0)
        add(
          dir,
          FINDING_KINDS.namespaceNotAllowed,
          `allowed traffic ${word} namespace(s) ${unexpected.join(', ')}, which no rule in force allows`,
          0,
        );
    }
  }
  return out;
}

const keyOf = (namespace: string, name: string) => `${namespace}/${workloadOf(name.replace(/-?\*$/, ''))}`;

/**
 * Calico host endpoints by the name their flows carry: felix names a hep flow endpoint by its node (the aggregated
 * name; the HostEndpoint's own name is the unaggregated one, which the agent does not keep). A node with several
 * host endpoints (one per interface) cannot tell which one a flow was: its flows stay an observed row of their own.
 */
function hostEndpointsByNode(configured: ConfiguredEvidence | undefined): Map<string, ConfiguredEndpoint> {
  const byNode = new Map<string, ConfiguredEndpoint | null>();
  for (const c of configured?.endpoints.values() ?? [])
    if (c.namespace === '' && c.node !== undefined) byNode.set(c.node, byNode.has(c.node) ? null : c);
  const out = new Map<string, ConfiguredEndpoint>();
  for (const [node, c] of byNode) if (c) out.set(node, c);
  return out;
}

/**
 * Configured and observed evidence side by side, one row per endpoint: the configured endpoints (pods of the
 * configuration, by workload) and the endpoints flows showed. Where the configuration knows an endpoint, Calico's
 * columns are the configuration's; else (no configuration, a host endpoint) they are the flows', an unobserved
 * direction then false (nothing showed it protected), never null.
 */
export function networkAccessEvidence(
  observed: NetworkAccessSummary,
  configured: ConfiguredEvidence | undefined,
): NetworkAccessEvidence {
  const rows: NetworkAccessEndpoint[] = [];
  const matched = new Set<string>();
  const hostEndpoints = hostEndpointsByNode(configured);
  for (const r of observed.endpoints) {
    const c =
      r.kind === 'pod'
        ? configured?.endpoints.get(keyOf(r.namespace, r.name))
        : r.kind === 'host'
          ? hostEndpoints.get(r.name)
          : undefined;
    if (c) matched.add(c.endpoint);
    const o = observedOf(r);
    rows.push({
      endpoint: r.endpoint,
      namespace: r.namespace,
      name: r.name,
      kind: r.kind,
      labels: c?.labels ?? r.labels,
      serviceAccount: c?.serviceAccount ?? r.serviceAccount,
      ingressProtected: c ? c.ingressProtected : r.ingressProtected === true,
      egressProtected: c ? c.egressProtected : r.egressProtected === true,
      ingressFromInternet: c ? c.ingressFromInternet : r.ingressFromInternet,
      egressToInternet: c ? c.egressToInternet : r.egressToInternet,
      ingressFromOtherNamespaces: c ? c.ingressFromOtherNamespace : r.ingressFromOtherNamespaces,
      egressToOtherNamespaces: c ? c.egressToOtherNamespace : r.egressToOtherNamespaces,
      envoyEnabled: c?.envoyEnabled ?? false,
      appliedPolicies: c ? c.appliedPolicies : r.policies,
      services: c?.services ?? [],
      trafficAggregationPrefix: r.kind === 'pod' ? `${r.name.replace(/-?\*$/, '')}-*` : r.name,
      endpointsGeneratingTrafficToThisEndpoint: r.generating,
      endpointsReceivingTrafficFromThisEndpoint: r.receiving,
      allowedIn: r.allowedIn,
      deniedIn: r.deniedIn,
      allowedOut: r.allowedOut,
      deniedOut: r.deniedOut,
      policies: r.policies,
      stagedPolicies: c ? c.stagedPolicies : r.stagedPolicies,
      evidence: c ? 'configured' : 'observed',
      configured: c ?? null,
      observed: o,
      findings: c ? crossCheck(r.endpoint, r.namespace, c, o) : [],
    });
  }
  for (const c of configured?.endpoints.values() ?? []) {
    if (matched.has(c.endpoint)) continue;
    // Never observed: the configuration alone speaks (Calico's flags are configured ones), traffic is empty.
    rows.push({
      endpoint: c.endpoint,
      namespace: c.namespace,
      name: c.name,
      kind: c.namespace === '' ? 'host' : 'pod',
      labels: c.labels,
      serviceAccount: c.serviceAccount,
      ingressProtected: c.ingressProtected,
      egressProtected: c.egressProtected,
      ingressFromInternet: c.ingressFromInternet,
      egressToInternet: c.egressToInternet,
      ingressFromOtherNamespaces: c.ingressFromOtherNamespace,
      egressToOtherNamespaces: c.egressToOtherNamespace,
      envoyEnabled: c.envoyEnabled,
      appliedPolicies: c.appliedPolicies,
      services: c.services ?? [],
      trafficAggregationPrefix: c.namespace === '' ? c.name : `${c.name}-*`,
      endpointsGeneratingTrafficToThisEndpoint: [],
      endpointsReceivingTrafficFromThisEndpoint: [],
      allowedIn: 0,
      deniedIn: 0,
      allowedOut: 0,
      deniedOut: 0,
      policies: [],
      stagedPolicies: c.stagedPolicies,
      evidence: 'configured',
      configured: c,
      observed: null,
      findings: [],
    });
  }
  rows.sort((x, y) => x.endpoint.localeCompare(y.endpoint) || (x.kind < y.kind ? -1 : x.kind > y.kind ? 1 : 0));
  return {
    endpoints: rows,
    namespaces: namespaceRows(rows),
    findings: rows.flatMap((r) => r.findings),
    configuration: configured
      ? { source: configured.source, problems: configured.problems }
      : { source: 'none', problems: [] },
  };
}

export { namespaceRows };
