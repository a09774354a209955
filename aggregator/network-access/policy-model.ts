/**
 * The compiled policy model shared by the policy compilers (policies.ts for Kubernetes and Calico, cilium.ts for
 * Cilium): endpoints and namespaces as configuration sees them, rules, policies, tiers, and the coverage helpers.
 */
import type { InternalRanges } from './cidr.js';
import type { Coverage } from './selectors.js';

export type Direction = 'ingress' | 'egress';
export const DIRECTIONS: readonly Direction[] = ['ingress', 'egress'];

export interface ConfigNamespace {
  name: string;
  labels: Readonly<Record<string, string>>;
}

/** A pod as configuration sees it. */
export interface ConfigPod {
  namespace: string;
  name: string;
  labels: Readonly<Record<string, string>>;
  serviceAccount: string;
}

/**
 * A Calico HostEndpoint: a node's interfaces as an endpoint of Calico policy (Calico's "Host endpoint" reference).
 * Only GlobalNetworkPolicies select it (by its labels); with no policy it is default-deny unless it has profiles
 * (automatic host endpoints carry projectcalico-default-allow).
 */
export interface ConfigHostEndpoint {
  name: string;
  node: string;
  labels: Readonly<Record<string, string>>;
  profiles: readonly string[];
}

/** The endpoint a rule's own side (an ingress rule's destination, an egress rule's source) is matched against. */
export type SelfEndpoint = { pod: ConfigPod; ns: ConfigNamespace } | { host: ConfigHostEndpoint };

/**
 * A Calico NetworkSet (namespace set) or GlobalNetworkSet (namespace ''): labelled nets that rule selectors match
 * (Calico's "Global network set" reference: a rule selector includes the CIDRs of every network set it matches).
 */
export interface ConfigNetworkSet {
  namespace: string;
  name: string;
  labels: Readonly<Record<string, string>>;
  nets: readonly string[];
  /** A GlobalNetworkSet's allowedEgressDomains (Calico Enterprise) are given: internet names. */
  domains: boolean;
  /** The labels of a NetworkSet's namespace, for rule namespaceSelectors. */
  namespaceLabels?: Readonly<Record<string, string>>;
}

/**
 * A class of peers a rule may admit: the internet, or the pods of one namespace (whose own labels are not known: a
 * rule that also needs pod labels covers "some" of them). The internet carries the network sets in force at the
 * moment evaluated, which Calico rule selectors may name.
 */
export type Peer =
  { kind: 'internet'; networkSets?: readonly ConfigNetworkSet[] } | { kind: 'namespace'; namespace: ConfigNamespace };

export type RuleAction = 'Allow' | 'Deny' | 'Pass' | 'Log';

export interface PolicyRule {
  action: RuleAction;
  covers(peer: Peer): Coverage;
  /**
   * The rule's own side (a Calico ingress rule's destination, an egress rule's source) narrowed to some endpoints: it
   * applies only to those. Absent: to every endpoint the policy selects.
   */
  selfMatches?(self: SelfEndpoint): boolean;
}

export type PolicyKind =
  | 'NetworkPolicy'
  | 'GlobalNetworkPolicy'
  | 'StagedNetworkPolicy'
  | 'StagedGlobalNetworkPolicy'
  | 'StagedKubernetesNetworkPolicy'
  | 'KubernetesNetworkPolicy'
  | 'CiliumNetworkPolicy'
  | 'CiliumClusterwideNetworkPolicy';

/** One policy, compiled: whom it applies to, in which directions, and its rules in order. */
export interface ConfiguredPolicy {
  /** The name as Verdict writes policies (policyName): "ns/tier.name", "tier.name", "ns/name" (Cilium too), "name". */
  id: string;
  kind: PolicyKind;
  /** '' for cluster-wide policies. */
  namespace: string;
  name: string;
  /** Staged: Calico evaluates it for flow logs but does not enforce it; never protection. */
  staged: boolean;
  /** Calico's tiered model (Calico and Kubernetes policies) or Cilium's (deny wins, else any allow). */
  engine: 'calico' | 'cilium';
  tier: string;
  /** Calico `order`; undefined sorts last (Calico: "policies without an order are applied last"). */
  order: number | undefined;
  directions: ReadonlySet<Direction>;
  rules: Readonly<Record<Direction, readonly PolicyRule[]>>;
  selects(pod: ConfigPod, ns: ConfigNamespace): boolean;
  /** Whether it applies to a Calico host endpoint (GlobalNetworkPolicies only); absent: never. */
  selectsHost?(host: ConfigHostEndpoint): boolean;
}

/** A Calico Tier: its order (lower first; undefined last) and what happens at its end when nothing matched. */
export interface ConfigTier {
  name: string;
  order: number | undefined;
  defaultAction: 'Deny' | 'Pass';
}

/** Calico's pseudo labels on a workload endpoint beside its own (libcalico-go's namespace and account labels). */
export function calicoEndpointLabels(pod: ConfigPod): Record<string, string> {
  const out = Object.create(null) as Record<string, string>;
  for (const k of Object.keys(pod.labels)) out[k] = pod.labels[k] as string;
  out['projectcalico.org/namespace'] = pod.namespace;
  out['projectcalico.org/serviceaccount'] = pod.serviceAccount;
  out['projectcalico.org/orchestrator'] = 'k8s';
  return out;
}

/** A namespace's labels as Calico's namespaceSelector sees them (with projectcalico.org/name). */
export function calicoNamespaceLabels(ns: ConfigNamespace): Record<string, string> {
  const out = Object.create(null) as Record<string, string>;
  for (const k of Object.keys(ns.labels)) out[k] = ns.labels[k] as string;
  out['projectcalico.org/name'] = ns.name;
  out['kubernetes.io/metadata.name'] = ns.name;
  return out;
}

export interface CompileContext {
  ranges: InternalRanges;
}

/** Coverage of an address block rule part (Calico nets, Kubernetes ipBlock, Cilium CIDRs). */
export function netsCover(peer: Peer, nets: readonly string[], partial: boolean, ctx: CompileContext): Coverage {
  if (peer.kind !== 'internet') return 'none';
  const reaching = nets.filter((n) => ctx.ranges.reachesInternet(n));
  if (reaching.length === 0) return 'none';
  const whole = !partial && reaching.some((n) => /^(0\.0\.0\.0\/0|::\/0)$/.test(n.trim()));
  return whole ? 'all' : 'some';
}

/**
 * A rule that also matches on what the traffic is (protocol, ports, ICMP type, HTTP, IP version, Cilium toPorts/L7)
 * matches only some of any peer class: as an Allow it still allows that class (Calico's report: a rule allowing the
 * internet on one port "allows ingress from the internet"), as a Deny or Pass it never decides the whole class.
 */
export function narrowed(c: Coverage, byTraffic: boolean): Coverage {
  return byTraffic && c === 'all' ? 'some' : c;
}

export function strongest(cs: readonly Coverage[]): Coverage {
  return cs.includes('all') ? 'all' : cs.includes('some') ? 'some' : 'none';
}
