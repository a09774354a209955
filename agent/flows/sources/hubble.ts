import type { FlowEndpoint, FlowRecord, PolicyRef } from '../../../common/flow.js';
import { AGENT_DEFAULTS } from '../../defaults.js';
import {
  asNumber,
  endpoint,
  uniquePolicies,
  workloadFromPodName,
  type InternalNetworks,
  type ParseResult,
} from '../normalize.js';

/**
 * Hubble flows: lines of the Hubble exporter (`{"flow":{...},"node_name":..,"time":..}`,
 * observer.ExportEvent in protojson with proto field names) and GetFlowsResponse
 * messages from the Observer gRPC API, which have the same shape.
 */

/**
 * Reserved identities (Cilium pkg/identity): 2 world, 9 world-ipv4, 10 world-ipv6, 1 host, 6 remote-node, 7
 * kube-apiserver.
 */
const WORLD_IDS = new Set([2, 9, 10]);
const HOST_IDS = new Set([1, 6]);
const APISERVER_ID = 7;
/** Drop reasons that are a policy's verdict (flow.proto DropReason). */
const POLICY_DROPS = new Set(['POLICY_DENIED', 'POLICY_DENY', 'AUTH_REQUIRED']);
const POLICY_DROP_CODES = new Set([133, 181, 189]);
type Json = Record<string, unknown>;

/** How long a connection's 5-tuple is remembered to fold repeated events (verdict, traces, second drop) into one. */
const DEDUP_MS = AGENT_DEFAULTS.flows.hubbleDedupMs;
const DEDUP_MAX = AGENT_DEFAULTS.flows.hubbleDedupMaxCount;

/**
 * Parses Hubble flows and folds the several events Hubble emits per connection
 * and direction (a policy-verdict event, trace events at each observation
 * point, a second drop event) into one observation, keyed by the 5-tuple and
 * the traffic direction, as recent as DEDUP_MS.
 */
export class HubbleParser {
  private readonly seen = new Map<string, number>();

  constructor(private readonly internal: InternalNetworks) {}

  line(line: string): ParseResult<FlowRecord> {
    let msg: unknown;
    try {
      msg = JSON.parse(line);
    } catch (err) {
      return { kind: 'malformed', reason: `not JSON: ${(err as Error).message}` };
    }
    return this.response(msg);
  }

  response(msg: unknown): ParseResult<FlowRecord> {
    const r = parseHubbleResponse(msg, this.internal);
    if (r.kind !== 'flow') return r;
    const key = (r as { tuple?: string }).tuple;
    if (key) {
      const t = r.flow.startMs;
      const prev = this.seen.get(key);
      if (prev !== undefined && Math.abs(t - prev) < DEDUP_MS)
        return { kind: 'skip', why: 'repeat event of a connection already counted' };
      this.seen.set(key, t);
      if (this.seen.size > DEDUP_MAX) {
        for (const [k, v] of this.seen) if (t - v > DEDUP_MS || this.seen.size > DEDUP_MAX) this.seen.delete(k);
      }
    }
    return { kind: 'flow', flow: r.flow };
  }
}

/** One GetFlowsResponse / ExportEvent, already decoded. The result carries the connection's tuple for dedup. */
function parseHubbleResponse(msg: unknown, internal: InternalNetworks): ParseResult<FlowRecord> & { tuple?: string } {
  if (typeof msg !== 'object' || msg === null || Array.isArray(msg))
    return { kind: 'malformed', reason: 'not a JSON object' };
  const m = msg as Json;
  const lost = (m.lost_events ?? m.lostEvents) as Json | undefined;
  if (lost) return { kind: 'lost', count: asNumber(lost.num_events_lost ?? lost.numEventsLost) };
  const flow = m.flow as Json | undefined;
  if (!flow) return { kind: 'skip', why: 'not a flow event (node status, agent or debug event)' };
  if (typeof flow !== 'object') return { kind: 'malformed', reason: 'flow is not an object' };
  return parseFlow(flow, internal, m.time);
}

function parseFlow(
  flow: Json,
  internal: InternalNetworks,
  outerTime: unknown,
): ParseResult<FlowRecord> & { tuple?: string } {
  const isReply = (flow.is_reply ?? flow.isReply) as unknown;
  if (isReply === true || flow.reply === true) return { kind: 'skip', why: 'reply' };
  const verdict = flow.verdict;
  let action: 'allow' | 'deny';
  if (verdict === 'FORWARDED' || verdict === 'REDIRECTED') action = 'allow';
  else if (verdict === 'DROPPED') action = 'deny';
  else if (verdict === 'AUDIT' || verdict === 'TRACED' || verdict === 'TRANSLATED' || verdict === 'ERROR')
    return { kind: 'skip', why: `verdict ${String(verdict)}` };
  else return { kind: 'malformed', reason: `verdict is ${JSON.stringify(verdict)}` };
  const timeMs = Date.parse(String(flow.time ?? outerTime ?? ''));
  if (!Number.isFinite(timeMs)) return { kind: 'malformed', reason: 'no valid time' };
  const ip = objectOr(flow.IP);
  const source = endpointOf(flow.source as Json | undefined, String(ip.source ?? ''), internal);
  const destination = endpointOf(flow.destination as Json | undefined, String(ip.destination ?? ''), internal);
  if (typeof source === 'string') return { kind: 'malformed', reason: `source: ${source}` };
  if (typeof destination === 'string') return { kind: 'malformed', reason: `destination: ${destination}` };
  const direction = flow.traffic_direction ?? flow.trafficDirection;
  // The observed endpoint is the one on this node: egress flows are seen at the source, ingress at the destination.
  if (direction !== 'EGRESS' && direction !== 'INGRESS') return { kind: 'skip', why: 'no traffic direction' };
  const reporter: 'src' | 'dst' = direction === 'EGRESS' ? 'src' : 'dst';
  const prefix = reporter === 'src' ? 'egress' : 'ingress';
  const allowedBy = policies(flow[`${prefix}_allowed_by`] ?? flow[`${prefix}AllowedBy`], 'allow');
  const deniedBy = policies(flow[`${prefix}_denied_by`] ?? flow[`${prefix}DeniedBy`], 'deny');
  const dropDesc = flow.drop_reason_desc ?? flow.dropReasonDesc;
  const dropCode = asNumber(flow.drop_reason ?? flow.dropReason);
  const policyDrop = action === 'deny' && (POLICY_DROPS.has(String(dropDesc)) || POLICY_DROP_CODES.has(dropCode));
  if (action === 'deny' && !policyDrop)
    return { kind: 'skip', why: `drop for a non-policy reason (${String(dropDesc ?? dropCode)})` };
  const l4 = objectOr(flow.l4);
  const [proto, portsField] = Object.entries(l4)[0] ?? ['', {}];
  // "TCP": null and other shapes nobody documents read as "no ports", not as a crash.
  const ports = objectOr(portsField);
  const named = action === 'allow' ? allowedBy : deniedBy;
  const sp = asNumber((ports as Json).source_port ?? (ports as Json).sourcePort);
  return {
    kind: 'flow',
    tuple: `${String(ip.source ?? '')}|${sp}|${String(ip.destination ?? '')}|${asNumber((ports as Json).destination_port ?? (ports as Json).destinationPort)}|${proto}|${direction}`,
    flow: {
      source,
      destination,
      protocol: proto.toLowerCase().replace(/v[46]$/, ''),
      destinationPort: asNumber((ports as Json).destination_port ?? (ports as Json).destinationPort),
      action,
      reporter,
      policies: named,
      stagedPolicies: [],
      // A default-deny drop names no policy (cilium/cilium#48588) but is a policy's verdict all the same.
      unnamedPolicy: policyDrop && named.length === 0,
      policyDecided: named.length > 0 || policyDrop,
      connections: 1,
      packets: 1,
      bytes: 0,
      startMs: timeMs,
      endMs: timeMs,
    },
  };
}

function endpointOf(e: Json | undefined, ip: string, internal: InternalNetworks): FlowEndpoint | string {
  if (!e) return 'missing';
  const identity = asNumber(e.identity);
  const labels = Array.isArray(e.labels)
    ? (e.labels as unknown[]).filter((l): l is string => typeof l === 'string')
    : [];
  const reserved = labels.filter((l) => l.startsWith('reserved:')).map((l) => l.slice('reserved:'.length));
  const k8sLabels = labels
    .filter((l) => l.startsWith('k8s:'))
    .map((l) => l.slice(4))
    .filter((l) => !l.startsWith('io.cilium.k8s.') && !l.startsWith('io.kubernetes.pod.namespace'))
    .sort();
  const namespace = String(e.namespace ?? '');
  // An API server outside the cluster carries reserved:world too: it is still the API server, not the internet.
  if (identity === APISERVER_ID || reserved.includes('kube-apiserver'))
    return endpoint({ kind: 'apiserver', name: 'kube-apiserver' });
  if (WORLD_IDS.has(identity) || reserved.some((r) => r.startsWith('world'))) {
    const inside = internal.contains(ip);
    return endpoint({ kind: 'network', name: inside ? 'internal' : 'world', internet: !inside });
  }
  if (HOST_IDS.has(identity) || reserved.includes('host') || reserved.includes('remote-node'))
    return endpoint({ kind: 'host', name: reserved.includes('remote-node') ? 'remote-node' : 'host' });
  const podName = String(e.pod_name ?? e.podName ?? '');
  const workloads = Array.isArray(e.workloads) ? (e.workloads as Json[]) : [];
  const workload =
    typeof workloads[0]?.name === 'string'
      ? (workloads[0].name as string)
      : podName
        ? workloadFromPodName(podName)
        : '';
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

/** A JSON object, or {} for anything else (null, a string, an array). */
function objectOr(v: unknown): Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Json) : {};
}

function policies(v: unknown, action: string): PolicyRef[] {
  if (!Array.isArray(v)) return [];
  return uniquePolicies(
    (v as Json[])
      .filter((p) => typeof p?.name === 'string')
      .map((p) => ({
        tier: '',
        namespace: String(p.namespace ?? ''),
        name: String(p.name),
        action,
        kind: String(p.kind ?? ''),
      })),
  );
}
