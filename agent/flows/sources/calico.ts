import type { EndpointKind, FlowEndpoint, FlowRecord } from '../../../common/flow.js';
import {
  countField,
  describe,
  endpoint,
  markApiServerDestination,
  parseJsonLine,
  workloadFromPodName,
  type InternalNetworks,
  type ParseResult,
} from '../normalize.js';
import { cachedPolicies, forgetPolicyLists } from './calico-policies.js';

export { parseHit } from './calico-policies.js';

/**
 * Calico flow logs: the JSON lines Felix writes to flows.log. Field names follow
 * Felix's file output (start_time/end_time in Unix seconds, source_/dest_ fields,
 * reporter src|dst, policies as "index|tier|name|action[|rule]" hits). Three
 * shapes of `policies` exist across versions: all_policies only (old Felix),
 * all/enforced/pending (3.21 docs), enforced/pending/transit (newest).
 */
const TYPES: Record<string, EndpointKind> = { wep: 'pod', hep: 'host', ns: 'networkset', net: 'network' };

export type Side = 'source' | 'dest';

/** Each side's field names, written out once (not built per line). */
const SIDE_FIELDS = {
  source: {
    type: 'source_type',
    namespace: 'source_namespace',
    nameAggr: 'source_name_aggr',
    name: 'source_name',
    ip: 'source_ip',
    labels: 'source_labels',
  },
  dest: {
    type: 'dest_type',
    namespace: 'dest_namespace',
    nameAggr: 'dest_name_aggr',
    name: 'dest_name',
    ip: 'dest_ip',
    labels: 'dest_labels',
  },
} as const;

/** The counted fields read from a record: each a whole number when present; num_flows and the times must be there. */
const COUNTS = ['num_flows', 'packets_in', 'packets_out', 'bytes_in', 'bytes_out'] as const;

/** One line of flows.log: JSON.parse, then parseCalicoRecord. */
export function parseCalicoLine(line: string, internal: InternalNetworks): ParseResult<FlowRecord> {
  const parsed = parseJsonLine(line);
  if (!parsed.ok) return { kind: 'malformed', reason: parsed.reason };
  const rec = parsed.value as Record<string, unknown>;
  if (typeof rec !== 'object' || rec === null || Array.isArray(rec))
    return { kind: 'malformed', reason: 'not a JSON object' };
  return parseCalicoRecord(rec, internal);
}

/** A record's fields as a flow, a skip or malformed. */
function parseCalicoRecord(
  rec: Readonly<Record<string, unknown>>,
  internal: InternalNetworks,
): ParseResult<FlowRecord> {
  const action = rec.action;
  if (action !== 'allow' && action !== 'deny')
    return { kind: 'malformed', reason: `action is ${JSON.stringify(action)}, not allow or deny` };
  const reporter = rec.reporter;
  // "fwd" (forwarded through this node, neither end local) observes neither endpoint's policy.
  if (reporter === 'fwd') return { kind: 'skip', why: 'reporter fwd' };
  if (reporter !== 'src' && reporter !== 'dst')
    return { kind: 'malformed', reason: `reporter is ${JSON.stringify(reporter)}, not src, dst or fwd` };
  const start = countField(rec, 'start_time', true);
  if (typeof start === 'string') return { kind: 'malformed', reason: start };
  const end = countField(rec, 'end_time', true);
  if (typeof end === 'string') return { kind: 'malformed', reason: end };
  if (!start || end < start) return { kind: 'malformed', reason: 'start_time/end_time missing or out of order' };
  // A count that is not a number is a record nobody can trust, not a zero (issue 15).
  const counts: Record<(typeof COUNTS)[number], number> = {
    num_flows: 0,
    packets_in: 0,
    packets_out: 0,
    bytes_in: 0,
    bytes_out: 0,
  };
  for (const f of COUNTS) {
    const n = countField(rec, f, f === 'num_flows');
    if (typeof n === 'string') return { kind: 'malformed', reason: n };
    counts[f] = n;
  }
  // Felix writes null for a port aggregated away and for ICMP: unknown, 0.
  const port = countField(rec, 'dest_port');
  if (typeof port === 'string' || port > 65535)
    return { kind: 'malformed', reason: `dest_port is ${describe(rec.dest_port)}, not a port from 0 to 65535` };
  if (typeof rec.proto !== 'string' && !(typeof rec.proto === 'number' && Number.isInteger(rec.proto)))
    return { kind: 'malformed', reason: `proto is ${describe(rec.proto)}, not a protocol name or number` };
  const source = side(rec, 'source', internal);
  if (typeof source === 'string') return { kind: 'malformed', reason: source };
  const apiServer = rec.dest_service_namespace === 'default' && rec.dest_service_name === 'kubernetes';
  const destination = side(rec, 'dest', internal, apiServer);
  if (typeof destination === 'string') return { kind: 'malformed', reason: destination };
  const { enforced, staged, decided } = cachedPolicies(rec.policies);
  if (enforced === undefined) return { kind: 'malformed', reason: 'policies has an unreadable hit' };
  return {
    kind: 'flow',
    flow: {
      source,
      destination,
      protocol: typeof rec.proto === 'string' ? rec.proto.toLowerCase() : String(rec.proto),
      destinationPort: port,
      action,
      reporter,
      policies: enforced,
      stagedPolicies: staged,
      unnamedPolicy: false,
      policyDecided: decided,
      connections: counts.num_flows,
      packets: counts.packets_in + counts.packets_out,
      bytes: counts.bytes_in + counts.bytes_out,
      startMs: start * 1000,
      endMs: end * 1000,
    },
  };
}

/**
 * Endpoints already built, by everything they are built from: a flow log repeats the same few endpoints on every line,
 * so each is built (and its labels sorted, its workload name worked out) once and then shared by every record naming
 * it. Shared, so never changed after it is built. Bounded: emptied when it holds MAX_CACHED.
 */
const endpoints = new Map<string, { labels: readonly string[]; endpoint: FlowEndpoint }[]>();
const MAX_CACHED = 10_000;

/** Empty the caches (tests: a record parsed with warm caches must equal the same record parsed cold). */
export function forgetCalicoCaches(): void {
  endpoints.clear();
  forgetPolicyLists();
}

function remember<T>(cache: Map<string, T>, key: string, value: T): T {
  if (cache.size >= MAX_CACHED) cache.clear();
  cache.set(key, value);
  return value;
}

export function side(
  rec: Readonly<Record<string, unknown>>,
  s: Side,
  internal: InternalNetworks,
  apiServer = false,
): FlowEndpoint | string {
  const n = SIDE_FIELDS[s];
  const type = rec[n.type];
  const kind = typeof type === 'string' ? TYPES[type] : undefined;
  if (!kind) return `${s}_type is ${JSON.stringify(type)}, not wep, hep, ns or net`;
  const nsField = rec[n.namespace];
  const aggrField = rec[n.nameAggr];
  const nameField = rec[n.name];
  const notText =
    notString(s, 'namespace', nsField) ?? notString(s, 'name_aggr', aggrField) ?? notString(s, 'name', nameField);
  if (notText) return notText;
  const ipField = rec[n.ip];
  if (ipField !== null && ipField !== undefined && typeof ipField !== 'string')
    return `${s}_ip is ${Array.isArray(ipField) ? 'a list' : typeof ipField}, not an address`;
  const labelsField = rec[n.labels];
  const rawLabels = labelsList(labelsField);
  if (typeof rawLabels === 'string') return `${s}_labels ${rawLabels}`;
  const ns = str(nsField);
  const aggr = str(aggrField);
  const name = str(nameField);
  // "pub" is Calico's aggregate for public addresses; "pvt" (private ranges) is not the internet.
  const internet = kind === 'network' && aggr === 'pub' && !internal.contains(ipField);
  // Keyed without the labels (no string built from them); the labels are compared with the few endpoints of that key.
  const key = `${kind}\n${ns}\n${aggr}\n${name}\n${internet}\n${apiServer}`;
  const candidates = endpoints.get(key);
  if (candidates) for (const c of candidates) if (sameStrings(c.labels, rawLabels)) return c.endpoint;
  const endpointName = kind === 'pod' ? workloadFromPodName(aggr || name) : aggr || name;
  if (!endpointName) return `${s}_name_aggr and ${s}_name are both empty`;
  const labels = [...rawLabels].sort();
  const sa = labels.find((l) => l.startsWith('projectcalico.org/serviceaccount='));
  const e = endpoint({
    kind,
    namespace: ns,
    name: endpointName,
    labels,
    serviceAccount: sa ? sa.slice(sa.indexOf('=') + 1) : '',
    internet,
  });
  if (apiServer) markApiServerDestination(e, 'default', 'kubernetes');
  const entry = { labels: [...rawLabels], endpoint: e };
  // A workload whose labels keep changing (a label per pod, say) keeps a few, not one per value.
  if (candidates && candidates.length < 8) candidates.push(entry);
  else remember(endpoints, key, [entry]);
  return e;
}

/** Why a name field is not a string (absent and null are none), or undefined. */
function notString(s: Side, f: string, v: unknown): string | undefined {
  return v !== undefined && v !== null && typeof v !== 'string'
    ? `${s}_${f} is ${describe(v)}, not a string`
    : undefined;
}

function sameStrings(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** The list of `{"labels":["k=v",...]}` as written (or [] for null: none); a string says what is wrong with it. */
function labelsList(v: unknown): readonly string[] | string {
  if (v === null || v === undefined) return [];
  if (typeof v !== 'object' || Array.isArray(v)) return `is ${describe(v)}, not {"labels":[...]}`;
  const list = (v as { labels?: unknown }).labels;
  if (list === null || list === undefined) return [];
  if (!Array.isArray(list) || !list.every((l) => typeof l === 'string')) return 'has labels that are not strings';
  return list as string[];
}

/** "-" means "not applicable" in Calico's file format. */
function str(v: unknown): string {
  return typeof v === 'string' && v !== '-' ? v : '';
}
