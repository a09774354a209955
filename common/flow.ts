/**
 * A normalized flow verdict, the same for every source (Calico flow logs,
 * Hubble). The agent builds these, aggregates them per window and sends them
 * in FlowBatch messages; the aggregator stores them in time buckets.
 */

/** Where an agent reads flow verdicts: the prefix of `--flows` and the `source` label of the flow metrics. */
export const FLOW_SOURCES = ['calico', 'hubble', 'goldmane'] as const;

/** What the policy did with a flow: the `action` label of verdict_flows_received_total. */
export const FLOW_ACTIONS = ['allow', 'deny'] as const;
export type FlowAction = (typeof FLOW_ACTIONS)[number];

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
  /**
   * The Cilium reserved identity Hubble gave this endpoint ("host", "remote-node", "health", "kube-apiserver",
   * "world", "world-ipv4", "world-ipv6", "ingress", "unmanaged", "init", "encrypted-overlay"); absent for everything
   * else (pods, Calico and Goldmane endpoints). An endpoint with a reserved identity other than a world one is a peer
   * of the cluster's endpoints, never one of them: host, remote-node and health are `kind: 'host'` named per node
   * (the observing node's name for "host", the address for the others), kube-apiserver is `kind: 'apiserver'`, the
   * rest `kind: 'network'` named "reserved:<identity>". Set only when non-empty, so endpoints without it keep their
   * identity (JSON, keys) from before the field existed.
   */
  reserved?: string;
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
  action: FlowAction;
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
  /**
   * True when no event behind this record could say whether a policy decided it: a Hubble connection of which only
   * trace events were seen (no policy-verdict event, no drop, no *_allowed_by; trace events never carry them, and
   * Cilium sends a verdict once per new connection). Such a record counts traffic but is no evidence of protection or
   * of its absence (`policyDecided` is false only for want of evidence). Absent (never false) otherwise, so records
   * without it keep their keys from before the field existed; Calico and Goldmane records never set it.
   */
  policyUnknown?: boolean;
  connections: number;
  packets: number;
  bytes: number;
  startMs: number;
  endMs: number;
}

/** The aggregation key: everything but the counts and times. */
export function flowKey(f: FlowRecord): string {
  return JSON.stringify([
    f.source,
    f.destination,
    f.protocol,
    f.destinationPort,
    f.action,
    f.reporter,
    f.policies,
    f.stagedPolicies,
    f.unnamedPolicy,
    f.policyDecided,
    // Only when set: records without it keep the key they had before the field existed.
    ...(f.policyUnknown ? [true] : []),
  ]);
}

/** The policy as people write it: "tier/namespace/name" without empty parts. */
export function policyName(p: PolicyRef): string {
  return [p.namespace, p.tier && p.tier !== 'default' ? `${p.tier}.${p.name}` : p.name].filter(Boolean).join('/');
}

/**
 * Bounds on one flow record, the same at the agent (a record past them is
 * malformed and counted where it was read) and at the aggregator (a batch
 * holding one is refused). They keep every record storable in both stores:
 * no NUL (PostgreSQL text refuses it), counts within 2^53 (exact in a JS
 * number and in a signed 64-bit column), times a Date can hold.
 */
const FLOW_LIMITS = {
  /** Characters of a name, namespace, label, service account or policy field. */
  maxText: 1024,
  labelsPerEndpoint: 256,
  policiesPerRecord: 256,
  /** 8.64e15 ms is the largest time a JavaScript Date holds. */
  maxUnixMs: 8.64e15,
} as const;

const ENDPOINT_KINDS: ReadonlySet<string> = new Set<EndpointKind>([
  'pod',
  'host',
  'networkset',
  'network',
  'apiserver',
]);

/** Why a text field cannot be stored, or undefined. */
export function textProblem(field: string, v: unknown, max: number = FLOW_LIMITS.maxText): string | undefined {
  if (typeof v !== 'string') return `${field} is not a string`;
  if (v.length > max) return `${field} is longer than ${max} characters`;
  if (v.includes('\u0000')) return `${field} holds a NUL character`;
  return undefined;
}

function countProblem(field: string, v: unknown): string | undefined {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0
    ? undefined
    : `${field} is not a whole number from 0 to 2^53-1`;
}

/**
 * Endpoints and policy lists already found storable. The agent's parsers share one object between every record naming
 * the same endpoint (or policy list), and such an object is never changed once built, so it is checked once.
 */
const storable = new WeakSet<object>();

function endpointProblem(field: string, e: FlowEndpoint | undefined | null): string | undefined {
  if (e && typeof e === 'object' && storable.has(e)) return undefined;
  const problem = endpointProblemOnce(field, e);
  if (!problem && e) storable.add(e);
  return problem;
}

function endpointProblemOnce(field: string, e: FlowEndpoint | undefined | null): string | undefined {
  if (!e || typeof e !== 'object') return `${field} is missing`;
  if (!ENDPOINT_KINDS.has(e.kind))
    return `${field}.kind ${JSON.stringify(e.kind)} is not one of ${[...ENDPOINT_KINDS].join(', ')}`;
  if (!Array.isArray(e.labels) || e.labels.length > FLOW_LIMITS.labelsPerEndpoint)
    return `${field}.labels is not a list of at most ${FLOW_LIMITS.labelsPerEndpoint}`;
  if (typeof e.internet !== 'boolean') return `${field}.internet is not a boolean`;
  if (e.reserved !== undefined) {
    const bad = textProblem(`${field}.reserved`, e.reserved, 64);
    if (bad) return bad;
  }
  return (
    textProblem(`${field}.namespace`, e.namespace) ??
    textProblem(`${field}.name`, e.name) ??
    textProblem(`${field}.serviceAccount`, e.serviceAccount) ??
    e.labels.map((l, i) => textProblem(`${field}.labels[${i}]`, l)).find(Boolean)
  );
}

function policiesProblem(field: string, ps: PolicyRef[]): string | undefined {
  if (Array.isArray(ps) && storable.has(ps)) return undefined;
  const problem = policiesProblemOnce(field, ps);
  if (!problem) storable.add(ps);
  return problem;
}

function policiesProblemOnce(field: string, ps: PolicyRef[]): string | undefined {
  if (!Array.isArray(ps) || ps.length > FLOW_LIMITS.policiesPerRecord)
    return `${field} is not a list of at most ${FLOW_LIMITS.policiesPerRecord}`;
  for (const [i, p] of ps.entries()) {
    if (!p || typeof p !== 'object') return `${field}[${i}] is not a policy`;
    const bad = (['tier', 'namespace', 'name', 'action', 'kind'] as const)
      .map((k) => textProblem(`${field}[${i}].${k}`, p[k]))
      .find(Boolean);
    if (bad) return bad;
  }
  return undefined;
}

/**
 * Why this record cannot be sent or stored, or undefined when it can. Checks
 * every field, so a record that passes here is never refused further on.
 */
export function flowRecordProblem(f: FlowRecord): string | undefined {
  if (!f || typeof f !== 'object') return 'not a flow record';
  if (f.action !== 'allow' && f.action !== 'deny') return `action ${JSON.stringify(f.action)} is not allow or deny`;
  if (f.reporter !== 'src' && f.reporter !== 'dst') return `reporter ${JSON.stringify(f.reporter)} is not src or dst`;
  if (!Number.isInteger(f.destinationPort) || f.destinationPort < 0 || f.destinationPort > 65535)
    return `destination port ${String(f.destinationPort)} is not 0-65535`;
  if (
    !(Number.isSafeInteger(f.startMs) && f.startMs > 0) ||
    !Number.isSafeInteger(f.endMs) ||
    f.endMs < f.startMs ||
    f.endMs > FLOW_LIMITS.maxUnixMs
  )
    return 'no valid time range';
  if (typeof f.unnamedPolicy !== 'boolean' || typeof f.policyDecided !== 'boolean')
    return 'unnamedPolicy/policyDecided are not booleans';
  if (f.policyUnknown !== undefined && typeof f.policyUnknown !== 'boolean') return 'policyUnknown is not a boolean';
  return (
    endpointProblem('source', f.source) ??
    endpointProblem('destination', f.destination) ??
    textProblem('protocol', f.protocol, 32) ??
    policiesProblem('policies', f.policies) ??
    policiesProblem('stagedPolicies', f.stagedPolicies) ??
    countProblem('connections', f.connections) ??
    countProblem('packets', f.packets) ??
    countProblem('bytes', f.bytes)
  );
}
