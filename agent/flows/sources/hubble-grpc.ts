import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { Logger } from 'pino';
import { FollowingStream, type Json } from './following-stream.js';
import { packageRoot } from '../../../common/package-root.js';
import { AGENT_DEFAULTS } from '../../defaults.js';

/**
 * Hubble's Observer gRPC API (the cilium-agent's local socket, by default
 * unix:///var/run/cilium/hubble.sock): GetFlows with follow = true.
 *
 * Responses are decoded with proto/cilium/observer.proto, Verdict's subset of
 * Cilium's observer and flow protos (same package, message and field names and
 * numbers), with proto field names kept, 64-bit integers as strings, enums as
 * names, unset fields left out. After the few fixes in toExportShape() each
 * message has the shape the Hubble exporter writes as JSON, so
 * HubbleParser.response() reads both the same way.
 */
const HUBBLE_LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: false,
  oneofs: true,
};

let cached: grpc.ServiceDefinition | undefined;

/** The observer.Observer service definition (GetFlows only), with its (de)serializers. */
export function observerServiceDefinition(): grpc.ServiceDefinition {
  if (!cached) {
    const pkg = protoLoader.loadSync('observer.proto', {
      ...HUBBLE_LOADER_OPTIONS,
      includeDirs: [join(packageRoot(), 'proto', 'cilium')],
    });
    cached = pkg['observer.Observer'] as grpc.ServiceDefinition;
  }
  return cached;
}

/** google.protobuf.Timestamp as decoded: seconds is a string (longs: String), zero parts are left out. */
export interface WireTimestamp {
  seconds?: string | number;
  nanos?: number;
}

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isTimestamp(v: unknown): v is WireTimestamp {
  return isObject(v) && Object.keys(v).every((k) => k === 'seconds' || k === 'nanos');
}

/** RFC 3339 in UTC with 0, 3, 6 or 9 fraction digits, as protojson writes it; undefined if out of range. */
export function timestampToRfc3339(ts: WireTimestamp): string | undefined {
  const seconds = Number(ts.seconds ?? 0);
  const nanos = Number(ts.nanos ?? 0);
  if (!Number.isInteger(seconds) || !Number.isInteger(nanos) || nanos < 0 || nanos > 999_999_999) return undefined;
  const d = new Date(seconds * 1000);
  if (Number.isNaN(d.getTime())) return undefined;
  const base = d.toISOString().slice(0, 19);
  if (nanos === 0) return `${base}Z`;
  let frac = String(nanos).padStart(9, '0');
  while (frac.length > 3 && frac.endsWith('000')) frac = frac.slice(0, -3);
  return `${base}.${frac}Z`;
}

/** Compares two timestamps; seconds may be beyond 2^53 as strings, so compare as BigInt. */
function compareTimestamps(a: WireTimestamp, b: WireTimestamp): number {
  const sa = BigInt(a.seconds ?? 0);
  const sb = BigInt(b.seconds ?? 0);
  if (sa !== sb) return sa < sb ? -1 : 1;
  return (a.nanos ?? 0) - (b.nanos ?? 0);
}

function convertTime(o: Json, key: string): void {
  const v = o[key];
  if (!isTimestamp(v)) return;
  const s = timestampToRfc3339(v);
  // Out of range: leave it, the parser then reports the record as having no valid time.
  if (s !== undefined) o[key] = s;
}

/** google.protobuf.*Value as decoded: `{value}`, or `{}` when the value is the zero value. */
function unwrap(o: Json, key: string, zero: unknown): void {
  const v = o[key];
  if (isObject(v)) o[key] = 'value' in v ? v.value : zero;
}

/**
 * Turns a decoded GetFlowsResponse into the exporter's JSON shape, in place:
 * Timestamps become RFC 3339 strings, wrapper values (is_reply, cpu) bare
 * values, and the oneof member names the loader adds (`response_types`,
 * `l4.protocol`) are removed.
 */
function toExportShape(msg: Json): Json {
  delete msg.response_types;
  convertTime(msg, 'time');
  const flow = msg.flow;
  if (isObject(flow)) {
    convertTime(flow, 'time');
    unwrap(flow, 'is_reply', false);
    if (isObject(flow.l4)) delete flow.l4.protocol;
  }
  const lost = msg.lost_events;
  if (isObject(lost)) {
    unwrap(lost, 'cpu', 0);
    convertTime(lost, 'first');
    convertTime(lost, 'last');
  }
  return msg;
}

export interface HubbleObserverSourceOptions {
  /** A gRPC target; the cilium-agent's socket is unix:///var/run/cilium/hubble.sock. */
  address: string;
  log: Logger;
  /**
   * Called for every response, in order, already in the exporter's JSON shape.
   * Return false to pause the stream (back-pressure): nothing more is delivered
   * until resume() is called. Anything else (undefined, true) keeps it flowing.
   */
  onMessage: (msg: unknown) => boolean | void;
  /** Reconnect delay: starts at min, doubles per failed attempt up to max, with ±20% jitter. */
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /** Clock for the first `since` (tests). */
  now?: () => number;
  credentials?: grpc.ChannelCredentials;
}

/** Keys of messages at the resume point, remembered to drop Hubble's repeats of them after a reconnect. */
const BOUNDARY_MAX = AGENT_DEFAULTS.sourceStream.hubbleBoundaryMaxCount;

/**
 * Follows Hubble's flows over GetFlows(follow = true) and reconnects when the
 * stream ends or fails, with backoff (unref'd timers: it never holds the
 * process open by itself while waiting).
 *
 * No flow is lost across a reconnect while Hubble's ring buffer still holds
 * it: each new call asks for flows `since` the newest flow time received (the
 * time of start() before any flow). Hubble's `since` is inclusive, so the
 * messages at exactly that time (and lost-event notices received after it)
 * are remembered and their repeats dropped; what was overwritten in the ring
 * meanwhile comes as a lost_events message, which the consumer counts.
 *
 * Back-pressure: onMessage returning false, or pause(), pauses the gRPC
 * stream; grpc-js then stops reading and HTTP/2 flow control holds Hubble
 * back (Hubble reports what it had to drop as lost events). resume() continues.
 * A pause lasts across reconnects.
 *
 * Logs once per change: connected, disconnected (with the reason), and the
 * first failed attempt while down; never per flow or per retry.
 */
export class HubbleObserverSource extends FollowingStream {
  /** Resume point: the newest flow time received, or when following began. */
  private since?: WireTimestamp;
  private boundary = new Set<string>();

  constructor(private readonly o: HubbleObserverSourceOptions) {
    const Ctor = grpc.makeGenericClientConstructor(observerServiceDefinition(), 'Observer');
    super(new Ctor(o.address, o.credentials ?? grpc.credentials.createInsecure(), {}), {
      name: 'Hubble',
      address: o.address,
      log: o.log,
      minBackoffMs: o.minBackoffMs,
      maxBackoffMs: o.maxBackoffMs,
    });
  }

  protected override onStart(): void {
    const ms = (this.o.now ?? Date.now)();
    this.since = { seconds: String(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1_000_000 };
  }

  protected open(): grpc.ClientReadableStream<Json> {
    const def = observerServiceDefinition().GetFlows as grpc.MethodDefinition<Json, Json>;
    const request: Json = { follow: true };
    if (this.since) request.since = { ...this.since };
    return this.client.makeServerStreamRequest<Json, Json>(
      '/observer.Observer/GetFlows',
      def.requestSerialize,
      def.responseDeserialize,
      request,
    );
  }

  protected resumeFields(): Record<string, unknown> {
    return { since: this.since && timestampToRfc3339(this.since) };
  }

  protected handle(m: Json): boolean {
    const flow = isObject(m.flow) ? m.flow : undefined;
    const time = isTimestamp(m.time) ? m.time : flow && isTimestamp(flow.time) ? flow.time : undefined;
    const key = flow ? `flow:${String(flow.uuid ?? JSON.stringify(flow))}` : `msg:${JSON.stringify(m)}`;
    if (this.replaying) {
      if (this.boundary.has(key)) {
        this.stats.duplicatesDropped++;
        return true;
      }
      if (flow && time && this.since && compareTimestamps(time, this.since) > 0) this.replaying = false;
    }
    // Only flows move the resume point: Hubble does not filter lost events by time.
    if (flow && time) {
      const c = this.since ? compareTimestamps(time, this.since) : 1;
      if (c > 0) {
        this.since = { seconds: time.seconds ?? '0', nanos: time.nanos ?? 0 };
        this.boundary = new Set([key]);
      } else if (c === 0) this.remember(key);
    } else if (!flow) this.remember(key);
    this.stats.messages++;
    return this.o.onMessage(toExportShape(m)) !== false;
  }

  private remember(key: string): void {
    if (this.boundary.size < BOUNDARY_MAX) this.boundary.add(key);
  }
}
