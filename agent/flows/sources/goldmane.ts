import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { Logger } from 'pino';
import { FollowingStream, type Json } from './following-stream.js';
import type { EndpointKind, FlowEndpoint, FlowRecord, PolicyRef } from '../../../common/flow.js';
import { packageRoot } from '../../../common/package-root.js';
import {
  endpoint,
  markApiServerDestination,
  uniquePolicies,
  workloadFromPodName,
  type ParseResult,
} from '../normalize.js';
import { AGENT_DEFAULTS } from '../../defaults.js';
import { configError, errorDetail } from '../../errors.js';

/**
 * Calico OSS Goldmane's Flows API (Flows.Stream), the flow source of Calico
 * clusters without Enterprise's flows.log. Goldmane aggregates the flows of
 * every node of the cluster into 15 s buckets and streams each bucket's
 * flows once, when the bucket is complete.
 *
 * Messages are decoded with proto/goldmane/api.proto, Verdict's subset of
 * Calico's goldmane/proto/api.proto (same package, message and field names
 * and numbers), with proto field names kept, 64-bit integers as strings,
 * enums as names (numbers when unknown), unset fields left out.
 *
 * What Goldmane cannot tell: IP addresses (so the operator's internal CIDRs
 * cannot turn a "pub" peer into an internal one), and the node that reported
 * a flow (Goldmane is cluster-wide: one agent should read it, not every node).
 */
const GOLDMANE_LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: false,
  oneofs: true,
};

let cached: grpc.ServiceDefinition | undefined;

/** The goldmane.Flows service definition (List and Stream), with its (de)serializers. */
export function goldmaneFlowsServiceDefinition(): grpc.ServiceDefinition {
  if (!cached) {
    const pkg = protoLoader.loadSync('api.proto', {
      ...GOLDMANE_LOADER_OPTIONS,
      includeDirs: [join(packageRoot(), 'proto', 'goldmane')],
    });
    cached = pkg['goldmane.Flows'] as grpc.ServiceDefinition;
  }
  return cached;
}

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * An int64 as decoded (a string with longs: String, a number otherwise); NaN when absent or not an integer. Unset means
 * 0.
 */
function int(v: unknown): number {
  if (v === undefined || v === null) return 0;
  if (typeof v === 'number') return Number.isInteger(v) ? v : Number.NaN;
  if (typeof v === 'string' && /^-?\d+$/.test(v)) return Number(v);
  return Number.NaN;
}

function count(v: unknown): number {
  const n = int(v);
  return Number.isFinite(n) && n > 0 ? n : 0;
}

/** "-" is Calico's "not applicable" (namespace of a Network or host endpoint). */
function str(v: unknown): string {
  return typeof v === 'string' && v !== '-' ? v : '';
}

/** An enum as decoded: its name, or its number when this proto does not know it; undefined when unset (0). */
function enumName(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (typeof v === 'number') return v === 0 ? undefined : `${v}`;
  return undefined;
}

const TYPES: Record<string, EndpointKind> = {
  WorkloadEndpoint: 'pod',
  HostEndpoint: 'host',
  NetworkSet: 'networkset',
  Network: 'network',
};
const ACTIONS: Record<string, string> = { Allow: 'allow', Deny: 'deny', Pass: 'pass' };
const STAGED_KINDS = new Set(['StagedNetworkPolicy', 'StagedGlobalNetworkPolicy', 'StagedKubernetesNetworkPolicy']);

type Side = 'source' | 'dest';

/**
 * One Goldmane Flow (FlowResult.flow as decoded) as a FlowRecord, with the
 * same meaning the Calico flow-log parser gives the same traffic:
 * - reporter Src/Dst is src/dst; action Allow/Deny is allow/deny, a Pass flow is skipped;
 * - endpoints by type (WorkloadEndpoint = pod, named after its workload from the
 *   aggregated "prefix-*" name; HostEndpoint; NetworkSet; Network, where "pub" is the internet);
 *   the "default/kubernetes" Service is the API server, never the internet;
 * - policies: the enforced hits, without profiles; staged kinds go to stagedPolicies;
 *   policyDecided: the last enforced Allow/Deny hit is not a profile. An EndOfTier hit
 *   is its tier's default action, named after its trigger (the tier's policy that
 *   selected the endpoint); without a trigger it is an unnamed policy decision;
 * - connections = num_connections_started; packets and bytes in + out; times in ms.
 */
export function goldmaneFlowToRecord(flow: unknown): ParseResult<FlowRecord> {
  if (!isObject(flow)) return { kind: 'malformed', reason: 'no flow in the FlowResult' };
  const key = flow.Key;
  if (!isObject(key)) return { kind: 'malformed', reason: 'the Flow has no Key' };
  const action = enumName(key.action);
  if (action === 'Pass') return { kind: 'skip', why: 'action Pass' };
  if (action !== 'Allow' && action !== 'Deny')
    return {
      kind: 'malformed',
      reason: `action is ${JSON.stringify(action ?? 'ActionUnspecified')}, not Allow or Deny`,
    };
  const reporter = enumName(key.reporter);
  if (reporter !== 'Src' && reporter !== 'Dst')
    return {
      kind: 'malformed',
      reason: `reporter is ${JSON.stringify(reporter ?? 'ReporterUnspecified')}, not Src or Dst`,
    };
  const start = int(flow.start_time);
  const end = int(flow.end_time);
  if (!(start > 0) || !(end >= start))
    return { kind: 'malformed', reason: 'start_time/end_time missing or out of order' };
  const source = side(key, flow, 'source');
  const destination = side(key, flow, 'dest');
  if (typeof source === 'string') return { kind: 'malformed', reason: source };
  if (typeof destination === 'string') return { kind: 'malformed', reason: destination };
  markApiServerDestination(destination, key.dest_service_namespace, key.dest_service_name);
  const p = policiesOf(key.policies);
  if (typeof p === 'string') return { kind: 'malformed', reason: p };
  return {
    kind: 'flow',
    flow: {
      source,
      destination,
      protocol: typeof key.proto === 'string' ? key.proto.toLowerCase() : '',
      destinationPort: count(key.dest_port),
      action: action === 'Allow' ? 'allow' : 'deny',
      reporter: reporter === 'Src' ? 'src' : 'dst',
      policies: p.enforced,
      stagedPolicies: p.staged,
      unnamedPolicy: p.unnamed,
      policyDecided: p.decided,
      connections: count(flow.num_connections_started),
      packets: count(flow.packets_in) + count(flow.packets_out),
      bytes: count(flow.bytes_in) + count(flow.bytes_out),
      startMs: start * 1000,
      endMs: end * 1000,
    },
  };
}

function side(key: Json, flow: Json, s: Side): FlowEndpoint | string {
  const type = enumName(key[`${s}_type`]);
  const kind = type ? TYPES[type] : undefined;
  if (!kind)
    return `${s}_type is ${JSON.stringify(type ?? 'EndpointTypeUnspecified')}, not WorkloadEndpoint, HostEndpoint, NetworkSet or Network`;
  const name = str(key[`${s}_name`]);
  const endpointName = kind === 'pod' ? workloadFromPodName(name) : name;
  if (!endpointName) return `${s}_name is empty`;
  const rawLabels = flow[`${s}_labels`];
  const labels = Array.isArray(rawLabels) ? rawLabels.filter((l): l is string => typeof l === 'string').sort() : [];
  const sa = labels.find((l) => l.startsWith('projectcalico.org/serviceaccount='));
  return endpoint({
    kind,
    namespace: str(key[`${s}_namespace`]),
    name: endpointName,
    labels,
    serviceAccount: sa ? sa.slice(sa.indexOf('=') + 1) : '',
    internet: kind === 'network' && name === 'pub',
  });
}

interface Hit {
  index: number;
  action: string;
  /** Undefined for an EndOfTier hit without a trigger. */
  policy?: PolicyRef;
  staged: boolean;
  profile: boolean;
}

function hitOf(h: unknown, list: string, i: number): Hit | string {
  const where = `${list}[${i}]`;
  if (!isObject(h)) return `${where} is not a PolicyHit`;
  const kind = enumName(h.kind);
  if (!kind) return `${where} has no kind`;
  const action = ACTIONS[enumName(h.action) ?? ''];
  if (!action)
    return `${where} has action ${JSON.stringify(enumName(h.action) ?? 'ActionUnspecified')}, not Allow, Deny or Pass`;
  const index = int(h.policy_index);
  if (!Number.isFinite(index)) return `${where} has no valid policy_index`;
  // The policy a hit names: itself, or for an end-of-tier hit the policy that selected the endpoint in that tier.
  let named: Json | undefined = h;
  if (kind === 'EndOfTier') named = isObject(h.trigger) ? h.trigger : undefined;
  if (!named) return { index, action, staged: false, profile: false };
  const namedKind = named === h ? kind : enumName(named.kind);
  if (!namedKind || namedKind === 'EndOfTier') return `${where} has a trigger without a policy kind`;
  const name = str(named.name);
  if (!name) return `${where} names no policy`;
  const profile = namedKind === 'Profile';
  return {
    index,
    action,
    staged: STAGED_KINDS.has(namedKind),
    profile,
    policy: {
      tier: profile ? '__PROFILE__' : str(h.tier) || str(named.tier),
      namespace: str(named.namespace),
      name,
      action,
      kind: namedKind,
    },
  };
}

function hitsOf(v: unknown, list: string): Hit[] | string {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) return `${list} is not a list`;
  const hits: Hit[] = [];
  for (const [i, x] of v.entries()) {
    const h = hitOf(x, list, i);
    if (typeof h === 'string') return h;
    hits.push(h);
  }
  return hits.sort((a, b) => a.index - b.index);
}

function policiesOf(
  trace: unknown,
): { enforced: PolicyRef[]; staged: PolicyRef[]; decided: boolean; unnamed: boolean } | string {
  if (trace === undefined || trace === null) return { enforced: [], staged: [], decided: false, unnamed: false };
  if (!isObject(trace)) return 'policies is not a PolicyTrace';
  const enforced = hitsOf(trace.enforced_policies, 'enforced_policies');
  if (typeof enforced === 'string') return enforced;
  const pending = hitsOf(trace.pending_policies, 'pending_policies');
  if (typeof pending === 'string') return pending;
  // Goldmane's enforced list holds no staged hits; should one appear there it still protects nothing.
  const real = enforced.filter((h) => !h.staged);
  const decisive = [...real].reverse().find((h) => h.action === 'allow' || h.action === 'deny');
  const decided = decisive !== undefined && !decisive.profile;
  const named = (hs: Hit[]) => hs.flatMap((h) => (h.policy ? [h.policy] : []));
  return {
    enforced: uniquePolicies(named(real.filter((h) => !h.profile))),
    staged: uniquePolicies(named([...pending, ...enforced].filter((h) => h.staged))),
    decided,
    unnamed: decisive !== undefined && !decisive.profile && decisive.policy === undefined,
  };
}

/** Files for mTLS to Goldmane (in a cluster it requires a client certificate signed by the tigera CA). */
export interface GoldmaneTlsFiles {
  /** PEM CA bundle that signed Goldmane's server certificate. */
  caFile: string;
  /** PEM client certificate and key; both or neither. */
  certFile?: string;
  keyFile?: string;
  /**
   * The name to verify in the server certificate when it differs from the address's host (e.g.
   * goldmane.calico-system.svc).
   */
  serverName?: string;
}

export interface GoldmaneSourceOptions {
  /** host:port of Goldmane's gRPC API (in a cluster: goldmane.calico-system.svc:7443). */
  address: string;
  log: Logger;
  /**
   * Called for every flow, in order: its FlowRecord, a skip or the reason it is
   * malformed; `where` names it for logs. Return false to pause the stream
   * (back-pressure) until resume(); anything else keeps it flowing.
   */
  onResult: (result: ParseResult<FlowRecord>, where: string) => boolean | void;
  /** TLS; without it the connection is plaintext. */
  tls?: GoldmaneTlsFiles;
  /** Overrides tls (tests). */
  credentials?: grpc.ChannelCredentials;
  /** Reconnect delay: starts at min, doubles per failed attempt up to max, with ±20% jitter. */
  minBackoffMs?: number;
  maxBackoffMs?: number;
}

/** Keys of flows at the resume point, remembered to drop Goldmane's repeats of them after a reconnect. */
const BOUNDARY_MAX = AGENT_DEFAULTS.sourceStream.goldmaneBoundaryMaxCount;

/** Channel credentials from TLS files; throws VERDICT_CONFIG_INVALID when a file cannot be read. */
function goldmaneCredentials(tls: GoldmaneTlsFiles): {
  credentials: grpc.ChannelCredentials;
  channelOptions: grpc.ChannelOptions;
} {
  const read = (what: string, path: string): Buffer => {
    try {
      return readFileSync(path);
    } catch (err) {
      throw configError(`cannot read the Goldmane TLS ${what} ${path}: ${errorDetail(err)}`, { cause: err });
    }
  };
  if ((tls.certFile === undefined) !== (tls.keyFile === undefined))
    throw configError('a Goldmane client certificate needs both its certificate and its key file');
  const ca = read('CA', tls.caFile);
  const key = tls.keyFile !== undefined ? read('key', tls.keyFile) : null;
  const cert = tls.certFile !== undefined ? read('certificate', tls.certFile) : null;
  const channelOptions: grpc.ChannelOptions = tls.serverName
    ? { 'grpc.ssl_target_name_override': tls.serverName, 'grpc.default_authority': tls.serverName }
    : {};
  return { credentials: grpc.credentials.createSsl(ca, key, cert), channelOptions };
}

/**
 * Follows Goldmane's flows over Flows.Stream and reconnects when the stream
 * ends or fails, with backoff (unref'd timers: it never holds the process
 * open by itself while waiting).
 *
 * Resume: the first call asks for flows from now on (start_time_gte 0; a
 * positive time in the two newest buckets would make Goldmane replay its
 * whole ring). Each later call asks for flows from the newest flow start time
 * received: Goldmane replays its buckets from the one holding that time, so
 * no complete bucket is lost across a reconnect while Goldmane still holds it
 * (its history is in memory: a restarted Goldmane has none). The flows of the
 * bucket at the resume point that were already delivered are remembered and
 * their repeats dropped, as are replayed flows older than the resume point.
 *
 * Back-pressure: onResult returning false, or pause(), pauses the gRPC
 * stream; grpc-js then stops reading and HTTP/2 flow control holds Goldmane
 * back. resume() continues. A pause lasts across reconnects.
 *
 * Logs once per change: connected, disconnected (with the reason), and the
 * first failed attempt while down; never per flow or per retry.
 */
export class GoldmaneSource extends FollowingStream {
  /** Resume point: the newest flow start time received (Unix seconds); undefined before the first flow. */
  private since?: number;
  private boundary = new Set<string>();

  constructor(private readonly o: GoldmaneSourceOptions) {
    let credentials = o.credentials;
    let channelOptions: grpc.ChannelOptions = {};
    if (!credentials && o.tls) ({ credentials, channelOptions } = goldmaneCredentials(o.tls));
    const Ctor = grpc.makeGenericClientConstructor(goldmaneFlowsServiceDefinition(), 'Flows');
    super(new Ctor(o.address, credentials ?? grpc.credentials.createInsecure(), channelOptions), {
      name: 'Goldmane',
      address: o.address,
      log: o.log,
      minBackoffMs: o.minBackoffMs,
      maxBackoffMs: o.maxBackoffMs,
    });
  }

  protected open(): grpc.ClientReadableStream<Json> {
    const def = goldmaneFlowsServiceDefinition().Stream as grpc.MethodDefinition<Json, Json>;
    const request: Json = {};
    if (this.since !== undefined) request.start_time_gte = String(this.since);
    return this.client.makeServerStreamRequest<Json, Json>(
      '/goldmane.Flows/Stream',
      def.requestSerialize,
      def.responseDeserialize,
      request,
    );
  }

  protected resumeFields(): Record<string, unknown> {
    return { startTimeGte: this.since ?? 0 };
  }

  protected handle(m: Json): boolean {
    const flow = isObject(m.flow) ? m.flow : undefined;
    const start = flow ? int(flow.start_time) : Number.NaN;
    const timed = Number.isFinite(start) && start > 0;
    const key = `${start}|${JSON.stringify(flow?.Key ?? null)}`;
    if (this.replaying && timed && this.since !== undefined) {
      if (start < this.since) {
        this.stats.staleDropped++;
        return true;
      }
      if (start === this.since && this.boundary.has(key)) {
        this.stats.duplicatesDropped++;
        return true;
      }
      if (start > this.since) this.replaying = false;
    }
    // Only flows with a valid start time move the resume point.
    if (timed) {
      if (this.since === undefined || start > this.since) {
        this.since = start;
        this.boundary = new Set([key]);
      } else if (start === this.since && this.boundary.size < BOUNDARY_MAX) this.boundary.add(key);
    }
    this.stats.messages++;
    let result: ParseResult<FlowRecord>;
    try {
      result = goldmaneFlowToRecord(flow);
    } catch (err) {
      result = { kind: 'malformed', reason: `cannot be read: ${(err as Error).message}` };
    }
    return (
      this.o.onResult(
        result,
        `${this.o.address} flow ${String(m.id ?? '?')} (start_time ${String(flow?.start_time ?? '?')})`,
      ) !== false
    );
  }
}
