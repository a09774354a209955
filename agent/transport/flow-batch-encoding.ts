import type {
  WireFlowBatch,
  WireFlowEndpoint,
  WireFlowRecord,
  WireFlowSourceCounts,
  WirePolicyRef,
} from '../../proto/index.js';

/**
 * FlowBatch messages written straight to bytes, one batch at a time (issue 13): the agent's RSS peaked when a whole
 * window's records were turned into protobufjs message objects at once and then encoded. Here a record's encoded size
 * is worked out from its fields, a batch is cut where the next record would pass the limit, and its bytes are written
 * into one buffer of exactly that size; no message object is built. Endpoints and policy lists are shared between the
 * records that name them (the parsers build each once; proto/convert.ts converts each once), so each is encoded once
 * and copied.
 *
 * The bytes are those protobufjs writes for verdict.v1.AgentMessage{flow_batch} (proto/verdict/v1/agent.proto; field
 * numbers below): fields in number order, every field that is set written, zero values included, as protobufjs writes
 * them (an empty list is not written; null or undefined is not set). test/agent/transport/flow-batch-encoding.test.ts
 * holds the bytes to protobufjs's, byte for byte.
 */

const WIRE_VARINT = 0;
const WIRE_LEN = 2;
const tag = (field: number, wire: number) => (field << 3) | wire;

/** verdict.v1 enum values by name (agent.proto). */
const ENDPOINT_KIND: Record<string, number> = {
  ENDPOINT_KIND_UNSPECIFIED: 0,
  ENDPOINT_KIND_POD: 1,
  ENDPOINT_KIND_HOST: 2,
  ENDPOINT_KIND_NETWORK_SET: 3,
  ENDPOINT_KIND_NETWORK: 4,
  ENDPOINT_KIND_API_SERVER: 5,
};
const FLOW_ACTION: Record<string, number> = { FLOW_ACTION_UNSPECIFIED: 0, FLOW_ACTION_ALLOW: 1, FLOW_ACTION_DENY: 2 };
const FLOW_REPORTER: Record<string, number> = {
  FLOW_REPORTER_UNSPECIFIED: 0,
  FLOW_REPORTER_SOURCE: 1,
  FLOW_REPORTER_DESTINATION: 2,
};

/** An enum as proto-loader gives it (its name, enums: String) or as a number. */
function enumValue(table: Record<string, number>, v: unknown): number {
  if (typeof v === 'number') return v;
  return (typeof v === 'string' ? table[v] : undefined) ?? 0;
}

function varintSize(n: number): number {
  if (n < 0) return 10;
  let size = 1;
  while (n >= 128) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
}

/** Bytes of a length-delimited field of `len` bytes: tag, length, body. */
function lenFieldSize(field: number, len: number): number {
  return varintSize(tag(field, WIRE_LEN)) + varintSize(len) + len;
}

/** A set field: protobufjs writes every field that is not null or undefined, zero values included. */
const isSet = (v: unknown) => v !== null && v !== undefined;

function stringFieldSize(field: number, s: string | null | undefined): number {
  return isSet(s) ? lenFieldSize(field, Buffer.byteLength(s as string)) : 0;
}

function numberFieldSize(field: number, n: number | null | undefined): number {
  return isSet(n) ? varintSize(tag(field, WIRE_VARINT)) + varintSize(n as number) : 0;
}

function boolFieldSize(field: number, b: boolean | null | undefined): number {
  return isSet(b) ? varintSize(tag(field, WIRE_VARINT)) + 1 : 0;
}

function enumFieldSize(field: number, table: Record<string, number>, v: unknown): number {
  return isSet(v) ? numberFieldSize(field, enumValue(table, v)) : 0;
}

function messageFieldSize(field: number, body: Buffer | undefined): number {
  return body ? lenFieldSize(field, body.length) : 0;
}

/** A cursor writing protobuf into a buffer sized beforehand. */
class Writer {
  pos = 0;
  constructor(readonly buf: Buffer) {}

  varint(n: number): void {
    const buf = this.buf;
    if (n < 0) {
      // int64 two's complement (never a valid count or time; written as protobufjs would).
      let b = BigInt.asUintN(64, BigInt(n));
      while (b >= 128n) {
        buf[this.pos++] = Number(b & 127n) | 128;
        b >>= 7n;
      }
      buf[this.pos++] = Number(b);
      return;
    }
    while (n >= 128) {
      buf[this.pos++] = (n % 128) | 128;
      n = Math.floor(n / 128);
    }
    buf[this.pos++] = n;
  }

  number(field: number, n: number | null | undefined): void {
    if (!isSet(n)) return;
    this.varint(tag(field, WIRE_VARINT));
    this.varint(n as number);
  }

  bool(field: number, b: boolean | null | undefined): void {
    if (isSet(b)) this.number(field, b ? 1 : 0);
  }

  enum(field: number, table: Record<string, number>, v: unknown): void {
    if (isSet(v)) this.number(field, enumValue(table, v));
  }

  string(field: number, s: string | null | undefined): void {
    if (!isSet(s)) return;
    this.varint(tag(field, WIRE_LEN));
    this.varint(Buffer.byteLength(s as string));
    this.pos += this.buf.write(s as string, this.pos);
  }

  message(field: number, body: Buffer | undefined): void {
    if (!body) return;
    this.header(field, body.length);
    this.bytes(body);
  }

  header(field: number, len: number): void {
    this.varint(tag(field, WIRE_LEN));
    this.varint(len);
  }

  bytes(b: Buffer): void {
    b.copy(this.buf, this.pos);
    this.pos += b.length;
  }
}

function endpointBody(e: WireFlowEndpoint): Buffer {
  const labels = e.labels ?? [];
  const size =
    enumFieldSize(1, ENDPOINT_KIND, e.kind) +
    stringFieldSize(2, e.namespace) +
    stringFieldSize(3, e.name) +
    labels.reduce((n, l) => n + lenFieldSize(4, Buffer.byteLength(l)), 0) +
    stringFieldSize(5, e.serviceAccount) +
    boolFieldSize(6, e.internet) +
    stringFieldSize(7, e.reserved);
  const w = new Writer(Buffer.allocUnsafe(size));
  w.enum(1, ENDPOINT_KIND, e.kind);
  w.string(2, e.namespace);
  w.string(3, e.name);
  for (const l of labels) w.string(4, l);
  w.string(5, e.serviceAccount);
  w.bool(6, e.internet);
  w.string(7, e.reserved);
  return w.buf;
}

function policyBody(p: WirePolicyRef): Buffer {
  const fields = [p.tier, p.namespace, p.name, p.action, p.kind];
  const w = new Writer(Buffer.allocUnsafe(fields.reduce((n, s, i) => n + stringFieldSize(i + 1, s), 0)));
  fields.forEach((s, i) => w.string(i + 1, s));
  return w.buf;
}

/** A policy list as its repeated field `field` (7 policies, 8 staged policies): every entry with tag and length. */
function policyListField(field: number, list: readonly WirePolicyRef[]): Buffer {
  const bodies = list.map(policyBody);
  const w = new Writer(Buffer.allocUnsafe(bodies.reduce((n, b) => n + lenFieldSize(field, b.length), 0)));
  for (const b of bodies) {
    w.header(field, b.length);
    w.bytes(b);
  }
  return w.buf;
}

const EMPTY = Buffer.alloc(0);

/**
 * Encodes FlowBatches of WireFlowRecords (as FlowCapture converts them, or as a refused batch decodes), caching the
 * bytes of each endpoint and policy list object it meets. One per Outbox: the caches are weak, so they hold nothing
 * the records do not.
 */
export class FlowBatchEncoder {
  private readonly endpoints = new WeakMap<object, Buffer>();
  private readonly policies = new WeakMap<object, Buffer>();
  private readonly staged = new WeakMap<object, Buffer>();

  private endpoint(e: WireFlowEndpoint | undefined | null): Buffer | undefined {
    if (!e) return undefined;
    let b = this.endpoints.get(e);
    if (!b) this.endpoints.set(e, (b = endpointBody(e)));
    return b;
  }

  private policyList(field: 7 | 8, list: readonly WirePolicyRef[] | undefined | null): Buffer {
    if (!list || list.length === 0) return EMPTY;
    const cache = field === 7 ? this.policies : this.staged;
    let b = cache.get(list);
    if (!b) cache.set(list, (b = policyListField(field, list)));
    return b;
  }

  /** Bytes of a record's body (FlowRecord without its own tag and length). */
  recordSize(r: WireFlowRecord): number {
    return (
      messageFieldSize(1, this.endpoint(r.source)) +
      messageFieldSize(2, this.endpoint(r.destination)) +
      stringFieldSize(3, r.protocol) +
      numberFieldSize(4, r.destinationPort) +
      enumFieldSize(5, FLOW_ACTION, r.action) +
      enumFieldSize(6, FLOW_REPORTER, r.reporter) +
      this.policyList(7, r.policies).length +
      this.policyList(8, r.stagedPolicies).length +
      boolFieldSize(9, r.unnamedPolicy) +
      numberFieldSize(10, r.connections) +
      numberFieldSize(11, r.packets) +
      numberFieldSize(12, r.bytes) +
      numberFieldSize(13, r.startUnixMs) +
      numberFieldSize(14, r.endUnixMs) +
      boolFieldSize(15, r.policyDecided) +
      boolFieldSize(16, r.policyUnknown)
    );
  }

  /**
   * One AgentMessage{flow_batch}: the batch's header fields and sources, and records `from` to `to` (exclusive), each
   * given by `wire(i)`, whose body sizes (recordSize) are in `sizes`, written into one buffer of exactly its size: a
   * new one, or the start of `scratch` when it is large enough (the caller uses the bytes before it encodes again).
   */
  encode(
    batch: Omit<WireFlowBatch, 'records'>,
    from: number,
    to: number,
    sizes: ArrayLike<number>,
    wire: (i: number) => WireFlowRecord,
    scratch?: Buffer,
  ): Buffer {
    let body = this.headerSize(batch);
    for (let i = from; i < to; i++) body += recordEntrySize(sizes[i] as number);
    const size = lenFieldSize(3, body);
    const w = new Writer(scratch && scratch.length >= size ? scratch.subarray(0, size) : Buffer.allocUnsafe(size));
    w.header(3, body);
    w.number(1, batch.seq);
    w.number(2, batch.windowStartUnixMs);
    w.number(3, batch.windowEndUnixMs);
    for (let i = from; i < to; i++) this.writeRecord(w, wire(i), sizes[i] as number);
    for (const s of batch.sources ?? []) {
      w.header(5, sourceSize(s));
      w.string(1, s.source);
      w.number(2, s.malformed);
      w.number(3, s.lost);
    }
    w.number(6, batch.droppedRecords);
    if (w.pos !== w.buf.length) throw new Error(`FlowBatch encoded to ${w.pos} bytes, sized ${w.buf.length}`);
    return w.buf;
  }

  /** Bytes of the FlowBatch's fields but its records: seq, window, sources, dropped count. */
  headerSize(batch: Omit<WireFlowBatch, 'records'>): number {
    return (
      numberFieldSize(1, batch.seq) +
      numberFieldSize(2, batch.windowStartUnixMs) +
      numberFieldSize(3, batch.windowEndUnixMs) +
      (batch.sources ?? []).reduce((n, s) => n + lenFieldSize(5, sourceSize(s)), 0) +
      numberFieldSize(6, batch.droppedRecords)
    );
  }

  private writeRecord(w: Writer, r: WireFlowRecord, size: number): void {
    w.header(4, size);
    w.message(1, this.endpoint(r.source));
    w.message(2, this.endpoint(r.destination));
    w.string(3, r.protocol);
    w.number(4, r.destinationPort);
    w.enum(5, FLOW_ACTION, r.action);
    w.enum(6, FLOW_REPORTER, r.reporter);
    w.bytes(this.policyList(7, r.policies));
    w.bytes(this.policyList(8, r.stagedPolicies));
    w.bool(9, r.unnamedPolicy);
    w.number(10, r.connections);
    w.number(11, r.packets);
    w.number(12, r.bytes);
    w.number(13, r.startUnixMs);
    w.number(14, r.endUnixMs);
    w.bool(15, r.policyDecided);
    w.bool(16, r.policyUnknown);
  }
}

/** Bytes a record of `size` body bytes takes inside a FlowBatch: its field 4 tag, length and body. */
export function recordEntrySize(size: number): number {
  return lenFieldSize(4, size);
}

/** Bytes of the AgentMessage holding a FlowBatch of `body` bytes. */
export function messageSize(body: number): number {
  return lenFieldSize(3, body);
}

function sourceSize(s: WireFlowSourceCounts): number {
  return stringFieldSize(1, s.source) + numberFieldSize(2, s.malformed) + numberFieldSize(3, s.lost);
}
