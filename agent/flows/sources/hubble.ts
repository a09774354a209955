import type { FlowEndpoint, FlowRecord, PolicyRef } from '../../../common/flow.js';
import { AGENT_DEFAULTS } from '../../defaults.js';
import {
  describe,
  endpoint,
  parseJsonLine,
  uniquePolicies,
  workloadFromPodName,
  type InternalNetworks,
  type ParseResult,
} from '../normalize.js';

/**
 * Hubble flows: lines of the Hubble exporter (`{"flow":{...},"node_name":..,"time":..}`,
 * observer.ExportEvent in protojson with proto field names), the bare Flow objects older
 * `hubble observe -o json` printed one per line, and GetFlowsResponse messages from the
 * Observer gRPC API, which have the exporter's shape. Strict: a field of the wrong type
 * (an is_reply string, a destination string) makes the flow malformed, never a guess.
 */

/**
 * Reserved identities (Cilium pkg/identity/numericidentity.go): the name each numeric identity stands for. Labels
 * "reserved:<name>" say the same and win when both are present.
 */
const RESERVED_IDS: Record<number, string> = {
  1: 'host',
  2: 'world',
  3: 'unmanaged',
  4: 'health',
  5: 'init',
  6: 'remote-node',
  7: 'kube-apiserver',
  8: 'ingress',
  9: 'world-ipv4',
  10: 'world-ipv6',
  11: 'encrypted-overlay',
};
/** Reserved identities that are a node's own (its host, another node, a node's cilium-health endpoint). */
const NODE_IDENTITIES = new Set(['host', 'remote-node', 'health']);
/** Drop reasons that are a policy's verdict (flow.proto DropReason). */
const POLICY_DROPS = new Set(['POLICY_DENIED', 'POLICY_DENY', 'AUTH_REQUIRED']);
const POLICY_DROP_CODES = new Set([133, 181, 189]);
/** Hubble event types (flow.proto CiliumEventType.type, pkg/monitor/api): 1 drop, 4 trace, 5 policy verdict. */
const EVENT_POLICY_VERDICT = 5;
const EVENT_DROP = 1;
type Json = Record<string, unknown>;

/** How long a connection's 5-tuple is remembered to fold repeated events (verdict, traces, second drop) into one. */
const DEDUP_MS = AGENT_DEFAULTS.flows.hubbleDedupMs;
const DEDUP_MAX = AGENT_DEFAULTS.flows.hubbleDedupMaxCount;
/**
 * How long (in event time) the first event of a connection that says nothing about policy (a trace event) is held for
 * the policy-verdict event of the same connection, and how many are held at most (`--hubble-hold-ms`,
 * `--hubble-hold-max-connections`; AGENT_DEFAULTS.run).
 */
export interface HubbleHold {
  ms: number;
  maxConnections: number;
}

const DEFAULT_HOLD: HubbleHold = {
  ms: AGENT_DEFAULTS.run.hubbleHoldMs,
  maxConnections: AGENT_DEFAULTS.run.hubbleHoldMaxCount,
};

/** A parsed event, before it is folded with the other events of its connection. */
interface Event {
  flow: FlowRecord;
  /** 5-tuple and direction: the connection. */
  tuple: string;
  /** The event says what policy did: a policy-verdict event, a drop, or policies named. */
  evidence: boolean;
}

/**
 * Parses Hubble flows and folds the several events Hubble emits per connection and direction (a policy-verdict event,
 * trace events at each observation point, a second drop event) into one record, keyed by the 5-tuple and the traffic
 * direction, as recent as DEDUP_MS. Every event of a connection counts as evidence: a connection whose first event is
 * a trace (never carrying *_allowed_by) is held until its policy-verdict event arrives (HubbleHold.ms; past
 * HubbleHold.maxConnections held, the oldest goes out without it, counted in stats.heldEvicted) and takes that
 * event's policies and action; a verdict arriving after the connection was sent is sent on its own, with no
 * connections, packets or bytes, so it adds evidence without counting the connection twice. Held records come out of
 * release() (as the stream moves on) and flush() (when the window closes).
 */
export class HubbleParser {
  /** Connections sent, by tuple: when last seen (event time), and whether their policy evidence was sent. */
  private readonly seen = new Map<string, { t: number; evidence: boolean }>();
  /** Connections held for their verdict, by tuple, in arrival order. */
  private readonly held = new Map<string, FlowRecord>();
  /** Held connections pushed out by the cap, to be handed over by the next release() or flush(). */
  private evicted: FlowRecord[] = [];
  /** The latest event time seen, ms. */
  private latestMs = 0;
  /**
   * heldEvicted: connections sent without waiting for their verdict because the hold cap was reached (each is sent
   * policy-unknown, and a verdict arriving later still adds its evidence with no counts).
   */
  readonly stats = { heldEvicted: 0 };

  constructor(
    private readonly internal: InternalNetworks,
    private readonly hold: HubbleHold = DEFAULT_HOLD,
  ) {}

  line(line: string): ParseResult<FlowRecord> {
    const parsed = parseJsonLine(line);
    if (!parsed.ok) return { kind: 'malformed', reason: parsed.reason };
    return this.response(parsed.value);
  }

  response(msg: unknown): ParseResult<FlowRecord> {
    const r = parseHubbleResponse(msg, this.internal);
    if (!('event' in r)) return r;
    return this.fold(r.event);
  }

  /** Held connections pushed out by the cap, and those whose verdict did not come within the hold time: sent as is. */
  release(): FlowRecord[] {
    const out = this.takeEvicted();
    for (const [tuple, f] of this.held) {
      if (this.latestMs - f.startMs < this.hold.ms) break;
      this.held.delete(tuple);
      this.remember(tuple, f.startMs, false);
      out.push(f);
    }
    return out;
  }

  /** Every held connection, sent as it is (the window closes). */
  flush(): FlowRecord[] {
    const out = [...this.takeEvicted(), ...this.held.values()];
    for (const [tuple, f] of this.held) this.remember(tuple, f.startMs, false);
    this.held.clear();
    return out;
  }

  private fold(e: Event): ParseResult<FlowRecord> {
    const t = e.flow.startMs;
    if (t > this.latestMs) this.latestMs = t;
    const pending = this.held.get(e.tuple);
    if (pending) {
      if (!e.evidence) return { kind: 'skip', why: 'repeat event of a connection already counted' };
      this.held.delete(e.tuple);
      this.remember(e.tuple, pending.startMs, true);
      return { kind: 'flow', flow: withEvidence(pending, e.flow) };
    }
    const prev = this.seen.get(e.tuple);
    if (prev !== undefined && Math.abs(t - prev.t) < DEDUP_MS) {
      if (!e.evidence || prev.evidence) return { kind: 'skip', why: 'repeat event of a connection already counted' };
      // The verdict of a connection already sent without one: its evidence, counting nothing again.
      prev.evidence = true;
      return { kind: 'flow', flow: { ...e.flow, connections: 0, packets: 0, bytes: 0 } };
    }
    if (!e.evidence) {
      if (this.held.size >= this.hold.maxConnections) this.evictOldest();
      this.held.set(e.tuple, e.flow);
      return { kind: 'skip', why: 'held for the connection’s policy-verdict event' };
    }
    this.remember(e.tuple, t, true);
    return { kind: 'flow', flow: e.flow };
  }

  /** The cap is reached: the oldest held connection goes out without its verdict, counted (never dropped). */
  private evictOldest(): void {
    const first = this.held.entries().next();
    if (first.done) return;
    const [tuple, f] = first.value;
    this.held.delete(tuple);
    this.remember(tuple, f.startMs, false);
    this.evicted.push(f);
    this.stats.heldEvicted++;
  }

  private takeEvicted(): FlowRecord[] {
    const out = this.evicted;
    this.evicted = [];
    return out;
  }

  private remember(tuple: string, t: number, evidence: boolean): void {
    this.seen.delete(tuple);
    this.seen.set(tuple, { t, evidence });
    if (this.seen.size > DEDUP_MAX) {
      // Oldest first (insertion order): forget what is too old, and the oldest past the bound.
      for (const [k, v] of this.seen) {
        if (t - v.t <= DEDUP_MS && this.seen.size <= DEDUP_MAX) break;
        this.seen.delete(k);
      }
    }
  }
}

/** A held trace record with the verdict event's evidence: its action and policies, the held record's counts. */
function withEvidence(held: FlowRecord, verdict: FlowRecord): FlowRecord {
  const f: FlowRecord = {
    ...held,
    action: verdict.action,
    policies: verdict.policies,
    unnamedPolicy: verdict.unnamedPolicy,
    policyDecided: verdict.policyDecided,
    startMs: Math.min(held.startMs, verdict.startMs),
    endMs: Math.max(held.endMs, verdict.endMs),
  };
  delete f.policyUnknown;
  return f;
}

type Parsed = ParseResult<FlowRecord> | { event: Event };

/** One GetFlowsResponse / ExportEvent / bare Flow, already decoded. */
function parseHubbleResponse(msg: unknown, internal: InternalNetworks): Parsed {
  if (!isObject(msg)) return { kind: 'malformed', reason: 'not a JSON object' };
  const lost = msg.lost_events ?? msg.lostEvents;
  if (lost !== undefined && lost !== null) {
    if (!isObject(lost)) return { kind: 'malformed', reason: `lost_events is ${describe(lost)}, not an object` };
    // protojson leaves out zero values: `"lost_events":{}` (cilium exporter_test.go) tells of none lost.
    const n = uint64(lost.num_events_lost ?? lost.numEventsLost ?? 0);
    if (n === undefined) return { kind: 'malformed', reason: 'lost_events.num_events_lost is not a count' };
    return { kind: 'lost', count: n };
  }
  const flow = msg.flow;
  if (flow === undefined || flow === null) {
    // `hubble observe -o json` before the GetFlowsResponse form (hubble CLI < 0.8) printed the Flow itself per line.
    if (typeof msg.verdict === 'string' || isObject(msg.IP) || isObject(msg.event_type))
      return parseFlow(msg, internal, undefined);
    return { kind: 'skip', why: 'not a flow event (node status, agent or debug event)' };
  }
  if (!isObject(flow)) return { kind: 'malformed', reason: `flow is ${describe(flow)}, not an object` };
  if (msg.time !== undefined && typeof msg.time !== 'string')
    return { kind: 'malformed', reason: `time is ${describe(msg.time)}, not a timestamp` };
  return parseFlow(flow, internal, msg.time);
}

function parseFlow(flow: Json, internal: InternalNetworks, outerTime: unknown): Parsed {
  const wrong = typeProblem(flow);
  if (wrong) return { kind: 'malformed', reason: wrong };
  const isReply = flow.is_reply ?? flow.isReply;
  if (isReply === true || flow.reply === true) return { kind: 'skip', why: 'reply' };
  const verdict = flow.verdict;
  let action: 'allow' | 'deny';
  if (verdict === undefined) return { kind: 'skip', why: 'no verdict', unusable: 'noVerdict' };
  if (verdict === 'FORWARDED' || verdict === 'REDIRECTED') action = 'allow';
  else if (verdict === 'DROPPED') action = 'deny';
  else if (verdict === 'AUDIT' || verdict === 'TRACED' || verdict === 'TRANSLATED' || verdict === 'ERROR')
    return { kind: 'skip', why: `verdict ${verdict}` };
  else if (verdict === 'VERDICT_UNKNOWN') return { kind: 'skip', why: 'no verdict', unusable: 'noVerdict' };
  else return { kind: 'malformed', reason: `verdict is ${describe(verdict)}` };
  const timeMs = Date.parse((flow.time ?? outerTime ?? '') as string);
  if (!Number.isFinite(timeMs)) return { kind: 'malformed', reason: 'no valid time' };
  const ip = (flow.IP ?? {}) as Json;
  const node = nodeOf(flow.node_name ?? flow.nodeName);
  const source = endpointOf(flow.source, (ip.source ?? '') as string, node, internal);
  const destination = endpointOf(flow.destination, (ip.destination ?? '') as string, node, internal);
  if (typeof source === 'string') return { kind: 'malformed', reason: `source ${source}` };
  if (typeof destination === 'string') return { kind: 'malformed', reason: `destination ${destination}` };
  const dropDesc = flow.drop_reason_desc ?? flow.dropReasonDesc;
  const dropCode = (flow.drop_reason ?? flow.dropReason ?? 0) as number;
  const policyDrop = action === 'deny' && (POLICY_DROPS.has(dropDesc as string) || POLICY_DROP_CODES.has(dropCode));
  if (action === 'deny' && !policyDrop)
    return { kind: 'skip', why: `drop for a non-policy reason (${String(dropDesc ?? dropCode)})` };
  const direction = flow.traffic_direction ?? flow.trafficDirection;
  // The observed endpoint is the one on this node: egress flows are seen at the source, ingress at the destination.
  if (direction !== 'EGRESS' && direction !== 'INGRESS')
    return { kind: 'skip', why: 'no traffic direction', unusable: 'noDirection' };
  const reporter: 'src' | 'dst' = direction === 'EGRESS' ? 'src' : 'dst';
  const prefix = reporter === 'src' ? 'egress' : 'ingress';
  const allowedBy = policies(flow[`${prefix}_allowed_by`] ?? flow[`${prefix}AllowedBy`], 'allow');
  const deniedBy = policies(flow[`${prefix}_denied_by`] ?? flow[`${prefix}DeniedBy`], 'deny');
  if (typeof allowedBy === 'string' || typeof deniedBy === 'string')
    return { kind: 'malformed', reason: `${prefix}_allowed_by/_denied_by ${String(allowedBy)}` };
  const l4 = (flow.l4 ?? {}) as Json;
  const proto = Object.keys(l4)[0] ?? '';
  const ports = (l4[proto] ?? {}) as Json;
  const sp = (ports.source_port ?? ports.sourcePort ?? 0) as number;
  const dp = (ports.destination_port ?? ports.destinationPort ?? 0) as number;
  const named = action === 'allow' ? allowedBy : deniedBy;
  const eventType = ((flow.event_type ?? flow.eventType) as Json | undefined)?.type;
  const evidence = named.length > 0 || policyDrop || eventType === EVENT_POLICY_VERDICT || eventType === EVENT_DROP;
  // A policy-verdict event that forwards with a match (policy_match_type > 0: L3, L3-L4, L4, all, ...; pkg/monitor/api
  // PolicyMatch*) was allowed by a rule, named or not (Cilium before *_allowed_by existed names none).
  const matched =
    action === 'allow' && eventType === EVENT_POLICY_VERDICT && ((flow.policy_match_type ?? 0) as number) > 0;
  const decided = named.length > 0 || policyDrop || matched;
  const record: FlowRecord = {
    source,
    destination,
    protocol: proto.toLowerCase().replace(/v[46]$/, ''),
    destinationPort: dp,
    action,
    reporter,
    policies: named,
    stagedPolicies: [],
    // A default-deny drop names no policy (cilium/cilium#48588) but is a policy's verdict all the same.
    unnamedPolicy: decided && named.length === 0,
    policyDecided: decided,
    connections: 1,
    packets: 1,
    bytes: 0,
    startMs: timeMs,
    endMs: timeMs,
  };
  // Trace events never carry *_allowed_by: alone, they say nothing about policy either way.
  if (!evidence) record.policyUnknown = true;
  return {
    event: {
      tuple: `${String(ip.source ?? '')}|${sp}|${String(ip.destination ?? '')}|${dp}|${proto}|${direction}`,
      evidence,
      flow: record,
    },
  };
}

/** "cluster/node" (Hubble's node_name) → "node"; '' when absent. */
function nodeOf(v: unknown): string {
  if (typeof v !== 'string') return '';
  return v.slice(v.lastIndexOf('/') + 1);
}

/**
 * Every field the parser reads, checked for its protojson type first, so nothing below guesses: a wrong type is the
 * reason the flow is malformed.
 */
function typeProblem(flow: Json): string | undefined {
  for (const k of ['is_reply', 'isReply', 'reply'])
    if (flow[k] !== undefined && flow[k] !== null && typeof flow[k] !== 'boolean')
      return `${k} is ${describe(flow[k])}, not true or false`;
  for (const k of [
    'verdict',
    'time',
    'traffic_direction',
    'trafficDirection',
    'drop_reason_desc',
    'dropReasonDesc',
    'node_name',
    'nodeName',
  ])
    if (flow[k] !== undefined && typeof flow[k] !== 'string') return `${k} is ${describe(flow[k])}, not a string`;
  for (const k of ['drop_reason', 'dropReason', 'policy_match_type'])
    if (flow[k] !== undefined && !isUint(flow[k])) return `${k} is ${describe(flow[k])}, not a number`;
  for (const k of ['IP', 'l4', 'event_type', 'eventType'])
    if (flow[k] !== undefined && flow[k] !== null && !isObject(flow[k]))
      return `${k} is ${describe(flow[k])}, not an object`;
  const ip = flow.IP as Json | undefined;
  if (ip)
    for (const k of ['source', 'destination'])
      if (ip[k] !== undefined && typeof ip[k] !== 'string') return `IP.${k} is ${describe(ip[k])}, not an address`;
  const et = (flow.event_type ?? flow.eventType) as Json | undefined;
  if (et && et.type !== undefined && !isUint(et.type)) return `event_type.type is ${describe(et.type)}, not a number`;
  const l4 = flow.l4 as Json | undefined;
  if (l4) {
    const keys = Object.keys(l4);
    if (keys.length > 1) return `l4 holds ${keys.length} protocols, not one`;
    const k = keys[0];
    if (k !== undefined) {
      // Proto3's JSON mapping reads null as the field's default: {"TCP": null} is TCP with no ports, not malformed.
      const ports = l4[k];
      if (ports !== null && !isObject(ports)) return `l4.${k} is ${describe(ports)}, not an object`;
      for (const p of ['source_port', 'destination_port', 'sourcePort', 'destinationPort'])
        if (ports !== null && ports[p] !== undefined && !(isUint(ports[p]) && (ports[p] as number) <= 65535))
          return `l4.${k}.${p} is ${describe(ports[p])}, not a port`;
    }
  }
  return undefined;
}

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isUint(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/** A protojson uint64: a number or a decimal string (protojson writes 64-bit integers as strings). */
function uint64(v: unknown): number | undefined {
  if (isUint(v)) return v;
  if (typeof v === 'string' && /^\d{1,15}$/.test(v)) return Number(v);
  return undefined;
}

/** The reserved identity an endpoint has ('' for none): its "reserved:" label, else its numeric identity. */
function reservedOf(identity: number, labels: string[]): string[] {
  const named = labels.filter((l) => l.startsWith('reserved:')).map((l) => l.slice('reserved:'.length));
  const byId = RESERVED_IDS[identity];
  return byId && !named.includes(byId) ? [...named, byId] : named;
}

function endpointOf(v: unknown, ip: string, node: string, internal: InternalNetworks): FlowEndpoint | string {
  if (v === undefined || v === null) return 'is missing';
  if (!isObject(v)) return `is ${describe(v)}, not an endpoint object`;
  const e = v;
  if (e.identity !== undefined && !isUint(e.identity)) return `identity is ${describe(e.identity)}, not a number`;
  if (e.labels !== undefined && !(Array.isArray(e.labels) && e.labels.every((l) => typeof l === 'string')))
    return 'labels is not a list of strings';
  for (const k of ['namespace', 'pod_name', 'podName'])
    if (e[k] !== undefined && typeof e[k] !== 'string') return `${k} is ${describe(e[k])}, not a string`;
  if (e.workloads !== undefined && !(Array.isArray(e.workloads) && e.workloads.every(isObject)))
    return 'workloads is not a list of objects';
  const identity = (e.identity ?? 0) as number;
  const labels = (e.labels ?? []) as string[];
  const reserved = reservedOf(identity, labels);
  const namespace = (e.namespace ?? '') as string;
  const podName = (e.pod_name ?? e.podName ?? '') as string;
  // An API server outside the cluster carries reserved:world too: it is still the API server, not the internet.
  if (reserved.includes('kube-apiserver'))
    return endpoint({ kind: 'apiserver', name: 'kube-apiserver', reserved: 'kube-apiserver' });
  const world = reserved.find((r) => r.startsWith('world'));
  // GKE Dataplane V2 captures label some in-cluster pods reserved:world while naming their namespace and pod: they
  // are pods of that namespace, not the internet.
  if (world && !(namespace && podName)) {
    const inside = internal.contains(ip);
    return endpoint({ kind: 'network', name: inside ? 'internal' : 'world', internet: !inside, reserved: world });
  }
  const nodeIdentity = reserved.find((r) => NODE_IDENTITIES.has(r));
  if (nodeIdentity) {
    // One row per node: the observing node for its own host, the address for another node and health endpoints
    // (Hubble names no node for them).
    const name = nodeIdentity === 'host' ? node || ip || 'host' : ip || nodeIdentity;
    return endpoint({ kind: 'host', name, reserved: nodeIdentity });
  }
  const other = reserved.find((r) => !r.startsWith('world'));
  if (other) return endpoint({ kind: 'network', name: `reserved:${other}`, reserved: other });
  const k8sLabels = labels
    .filter((l) => l.startsWith('k8s:'))
    .map((l) => l.slice(4))
    .filter((l) => !l.startsWith('io.cilium.k8s.') && !l.startsWith('io.kubernetes.pod.namespace'))
    .sort();
  const workloads = (e.workloads ?? []) as Json[];
  const first = workloads[0]?.name;
  const workload = typeof first === 'string' && first ? first : podName ? workloadFromPodName(podName) : '';
  if (!namespace && !workload) {
    // A CIDR-matched or unknown peer: a network, private unless the source said world.
    return endpoint({ kind: 'network', name: labels.find((l) => l.startsWith('cidr:')) ?? 'unknown', labels: [] });
  }
  const sa = labels.find((l) => l.startsWith('k8s:io.cilium.k8s.policy.serviceaccount='));
  return endpoint({
    kind: 'pod',
    namespace,
    name: workload || podName,
    labels: k8sLabels,
    serviceAccount: sa ? sa.slice(sa.indexOf('=') + 1) : '',
  });
}

/** Policies named by *_allowed_by / *_denied_by; a string says what is wrong with the list. */
function policies(v: unknown, action: string): PolicyRef[] | string {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) return `is ${describe(v)}, not a list`;
  const out: PolicyRef[] = [];
  for (const p of v as unknown[]) {
    if (!isObject(p) || typeof p.name !== 'string') return 'holds a policy without a name';
    if (
      (p.namespace !== undefined && typeof p.namespace !== 'string') ||
      (p.kind !== undefined && typeof p.kind !== 'string')
    )
      return 'holds a policy whose namespace or kind is not a string';
    out.push({
      tier: '',
      namespace: (p.namespace ?? '') as string,
      name: p.name,
      action,
      kind: (p.kind ?? '') as string,
    });
  }
  return uniquePolicies(out);
}
