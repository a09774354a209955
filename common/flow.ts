/**
 * A normalized flow verdict, the same for every source (Calico flow logs,
 * Hubble). The agent builds these, aggregates them per window and sends them
 * in FlowBatch messages; the aggregator stores them in time buckets.
 */
export type EndpointKind = 'pod' | 'host' | 'networkset' | 'network' | 'apiserver';

export interface FlowEndpoint {
  kind: EndpointKind;
  /** '' for endpoints outside any namespace. */
  namespace: string;
  /** Aggregated workload name ("checkout"), network set name, "pub"/"pvt", host name. */
  name: string;
  /** "key=value", sorted. */
  labels: string[];
  /** '' when unknown. */
  serviceAccount: string;
  /** On the public internet (and not inside a configured internal CIDR). */
  internet: boolean;
}

export interface PolicyRef {
  tier: string;
  namespace: string;
  name: string;
  action: string;
  kind: string;
}

export interface FlowRecord {
  source: FlowEndpoint;
  destination: FlowEndpoint;
  protocol: string;
  /** 0 when unknown. */
  destinationPort: number;
  action: 'allow' | 'deny';
  /** Which side observed it: the source's node (egress) or the destination's (ingress). */
  reporter: 'src' | 'dst';
  /** Enforced policies that applied; never profiles. */
  policies: PolicyRef[];
  /** Staged (not enforced) policies: intent, not protection. */
  stagedPolicies: PolicyRef[];
  /** A policy decided it without being named (Hubble policy drops). */
  unnamedPolicy: boolean;
  /** The verdict came from a real policy (not a namespace profile, not "no policy"). */
  policyDecided: boolean;
  connections: number;
  packets: number;
  bytes: number;
  startMs: number;
  endMs: number;
}

/** The aggregation key: everything but the counts and times. */
export function flowKey(f: FlowRecord): string {
  return JSON.stringify([f.source, f.destination, f.protocol, f.destinationPort, f.action, f.reporter, f.policies, f.stagedPolicies, f.unnamedPolicy, f.policyDecided]);
}

/** The policy as people write it: "tier/namespace/name" without empty parts. */
export function policyName(p: PolicyRef): string {
  return [p.namespace, p.tier && p.tier !== 'default' ? `${p.tier}.${p.name}` : p.name].filter(Boolean).join('/');
}
