import { isUtf8 } from 'node:buffer';
import type { EndpointKind, FlowEndpoint, FlowRecord, PolicyRef } from '../common/flow.js';
import type { TimeSlice } from '../common/time-slice.js';
import type { FlowBatchMessage } from './from-wire.js';

/**
 * An AgentMessage holding a FlowBatch, read from its protobuf bytes straight
 * into the checked FlowBatchMessage the store takes: no protobufjs message, no
 * plain-object copy of it, no second FlowRecord copy (three copies of every
 * record, and their garbage, were most of ingest's CPU).
 *
 * This is a fast path, not a second definition of the contract: it takes only
 * a message it can read exactly as the reference path (protobufjs decode,
 * toObject with proto/index.ts's options, proto/from-wire.ts) reads it and
 * that passes every rule from-wire.ts and common/flow.ts enforce. For
 * anything else — bytes protobufjs would read another way or refuse (a field
 * of an unexpected wire type, a message field twice, which protobufjs merges,
 * a long or cut varint, a length past its message), a value a rule refuses,
 * text that is not valid UTF-8 — it answers undefined and the caller takes the
 * reference path, whose answer (the Reject, its reason and its message) is
 * then the one given. test/aggregator/flow-batch-decode-property.test.ts holds
 * the two paths to the same answers.
 *
 * Endpoints and policy lists repeat from record to record and batch to batch:
 * each distinct encoding is read and checked once and the same (never
 * changed) object is handed out again, as the agent's parsers share them.
 */

/** Thrown inside the reader: this message is for the reference path. Never escapes this module. */
const NOT_MINE: unique symbol = Symbol('reference path');

const MAX_SAFE = Number.MAX_SAFE_INTEGER;

/** common/flow.ts's FLOW_LIMITS and from-wire.ts's WIRE_LIMITS, which a taken message must be within. */
const LIMITS = {
  text: 1024,
  reserved: 64,
  protocol: 32,
  labelsPerEndpoint: 256,
  policiesPerRecord: 256,
  maxUnixMs: 8.64e15,
  sourcesPerBatch: 256,
  sourceText: 4096,
} as const;

/** EndpointKind by its agent.proto number; 0 (unspecified) and unknown numbers are refused. */
const KINDS: readonly (EndpointKind | undefined)[] = [undefined, 'pod', 'host', 'networkset', 'network', 'apiserver'];

/** AgentMessage.flow_batch (field 3, length-delimited). */
const FLOW_BATCH_TAG = (3 << 3) | 2;

/** Record bytes read between two looks at the time slice (a few ms of work). */
const BYTES_PER_STEP = 64 * 1024;

/** Distinct endpoint and policy-list encodings kept; past it the cache starts again (a bound, not a working set). */
const CACHE_MAX = 20_000;
const MAX_PER_HASH = 4;

/**
 * Values by the bytes they were read from, found by a hash of the bytes and a comparison: no string or buffer is made
 * of the bytes to look them up (two or three per record were garbage for the collector).
 */
class ByBytes<T> {
  private readonly slots = new Map<number, { bytes: Buffer; value: T }[]>();
  private size = 0;
  private lastHash = 0;

  get(buf: Buffer, start: number, end: number): T | undefined {
    // Four bytes to a step (a multiply per byte was most of the lookup, profiled), then the rest one by one.
    let h = end - start;
    let i = start;
    for (; i + 4 <= end; i += 4) {
      h = Math.imul(h ^ (buf[i]! | (buf[i + 1]! << 8) | (buf[i + 2]! << 16) | (buf[i + 3]! << 24)), 0x9e3779b1);
      h = (h << 13) | (h >>> 19);
    }
    for (; i < end; i++) h = Math.imul(h ^ buf[i]!, 0x9e3779b1);
    this.lastHash = h;
    const slot = this.slots.get(h);
    if (slot === undefined) return undefined;
    for (const e of slot) if (sameBytes(e.bytes, buf, start, end)) return e.value;
    return undefined;
  }

  /** After a get() of the same bytes that found nothing. */
  set(buf: Buffer, start: number, end: number, value: T): void {
    if (this.size >= CACHE_MAX) {
      this.slots.clear();
      this.size = 0;
    }
    const entry = { bytes: Buffer.from(buf.subarray(start, end)), value };
    const slot = this.slots.get(this.lastHash);
    if (slot === undefined) this.slots.set(this.lastHash, [entry]);
    // Bytes made to share a hash cost a comparison each per lookup: a few are kept, the rest are read every time.
    else if (slot.length < MAX_PER_HASH) slot.push(entry);
    else return;
    this.size++;
  }
}

function sameBytes(a: Buffer, buf: Buffer, start: number, end: number): boolean {
  if (a.length !== end - start) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== buf[start + i]) return false;
  return true;
}

const endpointCache = new ByBytes<FlowEndpoint>();
const policyListCache = new ByBytes<PolicyRef[]>();
/** Short ASCII texts (protocols: "tcp", "udp") by their bytes packed into a number. */
const shortTexts = new Map<number, string>();

/** Text a rule refuses: over `max` UTF-16 units, or holding a NUL. */
function badText(s: string, max: number): boolean {
  return s.length > max || s.includes('\u0000');
}

/** A cursor over one message's bytes; every read refuses (NOT_MINE) what the fast path does not take. */
class Reader {
  pos = 0;

  constructor(readonly buf: Buffer) {}

  /**
   * A varint of at most `maxBytes` bytes as a number, exact below 2^53 (larger: NOT_MINE). Bytes past the buffer read
   * as undefined, which never ends a varint.
   */
  varint(maxBytes: number): number {
    const buf = this.buf;
    const first = buf[this.pos++]!;
    if (first < 0x80) return first;
    let value = first & 0x7f;
    let scale = 0x80;
    for (let i = 1; i < maxBytes; i++) {
      const b = buf[this.pos++];
      if (b === undefined) break;
      value += (b & 0x7f) * scale;
      if (b < 0x80) {
        if (value > MAX_SAFE) throw NOT_MINE;
        return value;
      }
      scale *= 0x80;
    }
    throw NOT_MINE;
  }

  /** A 32-bit varint field (enum, bool, uint32) or a length: 4 bytes at most (longer ones: the reference path). */
  small(): number {
    return this.varint(4);
  }

  /** A 64-bit varint field: 8 bytes at most, its value below 2^53 (from-wire refuses the rest). */
  large(): number {
    return this.varint(8);
  }

  /** The end of the length-delimited value starting here, within `end`. */
  delimited(end: number): number {
    const length = this.small();
    const stop = this.pos + length;
    if (stop > end) throw NOT_MINE;
    return stop;
  }

  text(end: number, max: number): string {
    const stop = this.delimited(end);
    const s = this.buf.toString('utf8', this.pos, stop);
    // Bytes that are not UTF-8 decode to U+FFFD here; protobufjs might decode them otherwise.
    if (badText(s, max) || (s.includes('\uFFFD') && !isUtf8(this.buf.subarray(this.pos, stop)))) throw NOT_MINE;
    this.pos = stop;
    return s;
  }

  /** text(), without making a string again for a short ASCII one read before. */
  shortText(end: number, max: number): string {
    const at = this.pos;
    const length = this.buf[at]!;
    if (length === 0 || length > 6 || at + 1 + length > end) return this.text(end, max);
    let packed = length;
    for (let i = 1; i <= length; i++) {
      const b = this.buf[at + i]!;
      if (b === 0 || b >= 0x80) return this.text(end, max);
      packed = packed * 256 + b;
    }
    let s = shortTexts.get(packed);
    if (s === undefined) {
      s = this.text(end, max);
      if (shortTexts.size < 1024) shortTexts.set(packed, s);
    } else this.pos = at + 1 + length;
    return s;
  }

  /** Past a varint of any value, 10 bytes at most. */
  skipVarint(): void {
    for (let i = 0; i < 10; i++) {
      const b = this.buf[this.pos++];
      if (b === undefined) break;
      if (b < 0x80) return;
    }
    throw NOT_MINE;
  }

  /** A field's tag: its number (1-2047) and wire type. */
  tag(): number {
    const t = this.varint(2);
    if (t < 8) throw NOT_MINE; // field number 0
    return t;
  }

  /** Step over a field this build does not know, as protobufjs does; groups and undefined wire types are refused. */
  skip(wireType: number, end: number): void {
    if (wireType === 0) this.skipVarint();
    else if (wireType === 1) this.pos += 8;
    else if (wireType === 2) this.pos = this.delimited(end);
    else if (wireType === 5) this.pos += 4;
    else throw NOT_MINE;
    if (this.pos > end) throw NOT_MINE;
  }
}

/** FlowEndpoint (agent.proto) in [r.pos, end), checked; from the cache when these bytes were read before. */
function readEndpoint(r: Reader, end: number): FlowEndpoint {
  const start = r.pos;
  const known = endpointCache.get(r.buf, start, end);
  if (known !== undefined) {
    r.pos = end;
    return known;
  }
  let kind: EndpointKind | undefined;
  let namespace = '';
  let name = '';
  const labels: string[] = [];
  let serviceAccount = '';
  let internet = false;
  let reserved = '';
  while (r.pos < end) {
    const t = r.tag();
    switch (t) {
      case (1 << 3) | 0:
        kind = KINDS[r.small()];
        break;
      case (2 << 3) | 2:
        namespace = r.text(end, LIMITS.text);
        break;
      case (3 << 3) | 2:
        name = r.text(end, LIMITS.text);
        break;
      case (4 << 3) | 2:
        labels.push(r.text(end, LIMITS.text));
        break;
      case (5 << 3) | 2:
        serviceAccount = r.text(end, LIMITS.text);
        break;
      case (6 << 3) | 0:
        internet = r.small() !== 0;
        break;
      case (7 << 3) | 2:
        reserved = r.text(end, LIMITS.reserved);
        break;
      default:
        if (t >>> 3 <= 7) throw NOT_MINE; // a known field of another wire type: protobufjs skips it
        r.skip(t & 7, end);
    }
  }
  if (r.pos !== end || kind === undefined || labels.length > LIMITS.labelsPerEndpoint) throw NOT_MINE;
  labels.sort();
  // from-wire.ts's endpointFromWire: these fields in this order, reserved only when set.
  const e: FlowEndpoint = { kind, namespace, name, labels, serviceAccount, internet };
  if (reserved) e.reserved = reserved;
  // Shared from now on, so frozen: nothing may change it under another record (store/flow-key-ids.ts relies on it).
  Object.freeze(labels);
  endpointCache.set(r.buf, start, end, Object.freeze(e));
  return e;
}

function readPolicy(r: Reader, end: number): PolicyRef {
  let tier = '';
  let namespace = '';
  let name = '';
  let action = '';
  let kind = '';
  while (r.pos < end) {
    const t = r.tag();
    switch (t) {
      case (1 << 3) | 2:
        tier = r.text(end, LIMITS.text);
        break;
      case (2 << 3) | 2:
        namespace = r.text(end, LIMITS.text);
        break;
      case (3 << 3) | 2:
        name = r.text(end, LIMITS.text);
        break;
      case (4 << 3) | 2:
        action = r.text(end, LIMITS.text);
        break;
      case (5 << 3) | 2:
        kind = r.text(end, LIMITS.text);
        break;
      default:
        if (t >>> 3 <= 5) throw NOT_MINE;
        r.skip(t & 7, end);
    }
  }
  if (r.pos !== end) throw NOT_MINE;
  return Object.freeze({ tier, namespace, name, action, kind });
}

/**
 * A run of adjacent `tag` fields (repeated PolicyRef) whose first tag started at `tagStart` (r.pos is past it), within
 * `end`, as one list (cached by its bytes). A record whose list comes in runs apart gets them appended, as protobufjs
 * appends them.
 */
function readPolicyRun(
  r: Reader,
  tag: number,
  tagStart: number,
  end: number,
  before: PolicyRef[] | undefined,
): PolicyRef[] {
  // The run's end and length first (no array of positions: that was one per record, most of the decoder's garbage);
  // the policies are read, going over the run again, only when the cache does not know its bytes.
  const first = r.pos;
  let count = 0;
  for (;;) {
    count++;
    r.pos = r.delimited(end);
    if (r.pos >= end || r.buf[r.pos] !== tag) break;
    r.pos++;
  }
  const runEnd = r.pos;
  let list = policyListCache.get(r.buf, tagStart, runEnd);
  if (list === undefined) {
    if (count > LIMITS.policiesPerRecord) throw NOT_MINE;
    list = [];
    r.pos = first;
    for (let i = 0; i < count; i++) {
      if (i > 0) r.pos++; // the next one's tag (one byte, `tag`)
      const stop = r.delimited(end);
      list.push(readPolicy(r, stop));
    }
    policyListCache.set(r.buf, tagStart, runEnd, Object.freeze(list) as PolicyRef[]);
  }
  r.pos = runEnd;
  if (before === undefined) return list;
  const joined = before.concat(list);
  if (joined.length > LIMITS.policiesPerRecord) throw NOT_MINE;
  return joined;
}

/** An empty list, shared (frozen) as the reference path's fresh [] would not be, but equal to it. */
const NO_POLICIES = Object.freeze([]) as unknown as PolicyRef[];

/** FlowRecord (agent.proto) in [r.pos, end), checked as from-wire.ts's flowFromWire and flowRecordProblem check it. */
function readRecord(r: Reader, end: number): FlowRecord {
  let source: FlowEndpoint | undefined;
  let destination: FlowEndpoint | undefined;
  let protocol = '';
  let destinationPort = 0;
  let action = 0;
  let reporter = 0;
  let policies: PolicyRef[] | undefined;
  let stagedPolicies: PolicyRef[] | undefined;
  let unnamedPolicy = false;
  let connections = 0;
  let packets = 0;
  let bytes = 0;
  let startMs = 0;
  let endMs = 0;
  let policyDecided = false;
  let policyUnknown = false;
  while (r.pos < end) {
    const at = r.pos;
    const t = r.tag();
    switch (t) {
      case (1 << 3) | 2: {
        // A second source is merged into the first by protobufjs: the reference path's business.
        if (source !== undefined) throw NOT_MINE;
        const stop = r.delimited(end);
        source = readEndpoint(r, stop);
        break;
      }
      case (2 << 3) | 2: {
        if (destination !== undefined) throw NOT_MINE;
        const stop = r.delimited(end);
        destination = readEndpoint(r, stop);
        break;
      }
      case (3 << 3) | 2:
        protocol = r.shortText(end, LIMITS.protocol);
        break;
      case (4 << 3) | 0:
        destinationPort = r.small();
        break;
      case (5 << 3) | 0:
        action = r.small();
        break;
      case (6 << 3) | 0:
        reporter = r.small();
        break;
      case (7 << 3) | 2:
        policies = readPolicyRun(r, t, at, end, policies);
        break;
      case (8 << 3) | 2:
        stagedPolicies = readPolicyRun(r, t, at, end, stagedPolicies);
        break;
      case (9 << 3) | 0:
        unnamedPolicy = r.small() !== 0;
        break;
      case (10 << 3) | 0:
        connections = r.large();
        break;
      case (11 << 3) | 0:
        packets = r.large();
        break;
      case (12 << 3) | 0:
        bytes = r.large();
        break;
      case (13 << 3) | 0:
        startMs = r.large();
        break;
      case (14 << 3) | 0:
        endMs = r.large();
        break;
      case (15 << 3) | 0:
        policyDecided = r.small() !== 0;
        break;
      case (16 << 3) | 0:
        policyUnknown = r.small() !== 0;
        break;
      default:
        if (t >>> 3 <= 16) throw NOT_MINE;
        r.skip(t & 7, end);
    }
    if (r.pos > end) throw NOT_MINE;
  }
  if (
    r.pos !== end ||
    source === undefined ||
    destination === undefined ||
    (action !== 1 && action !== 2) ||
    (reporter !== 1 && reporter !== 2) ||
    destinationPort > 65535 ||
    startMs <= 0 ||
    endMs < startMs ||
    endMs > LIMITS.maxUnixMs
  )
    throw NOT_MINE;
  // from-wire.ts's flowFromWire: these fields in this order, policyUnknown only when true.
  const flow: FlowRecord = {
    source,
    destination,
    protocol,
    destinationPort,
    action: action === 1 ? 'allow' : 'deny',
    reporter: reporter === 1 ? 'src' : 'dst',
    policies: policies ?? NO_POLICIES,
    stagedPolicies: stagedPolicies ?? NO_POLICIES,
    unnamedPolicy,
    policyDecided,
    connections,
    packets,
    bytes,
    startMs,
    endMs,
  };
  if (policyUnknown) flow.policyUnknown = true;
  return flow;
}

function readSourceCounts(r: Reader, end: number): FlowBatchMessage['sources'][number] {
  let source = '';
  let malformed = 0;
  let lost = 0;
  while (r.pos < end) {
    const t = r.tag();
    switch (t) {
      case (1 << 3) | 2:
        source = r.text(end, LIMITS.sourceText);
        break;
      case (2 << 3) | 0:
        malformed = r.large();
        break;
      case (3 << 3) | 0:
        lost = r.large();
        break;
      default:
        if (t >>> 3 <= 3) throw NOT_MINE;
        r.skip(t & 7, end);
    }
    if (r.pos > end) throw NOT_MINE;
  }
  if (r.pos !== end) throw NOT_MINE;
  return { source, malformed, lost };
}

/** A FlowBatch being read: its fields so far. */
class BatchReader {
  readonly r: Reader;
  readonly end: number;
  seq = 0;
  droppedRecords = 0;
  readonly flows: FlowRecord[] = [];
  readonly sources: FlowBatchMessage['sources'] = [];

  /** Undefined when `buf` is not exactly one AgentMessage field, flow_batch. */
  static open(buf: Buffer): BatchReader | undefined {
    if (buf.length < 2 || buf[0] !== FLOW_BATCH_TAG) return undefined;
    const r = new Reader(buf);
    r.pos = 1;
    const end = r.delimited(buf.length);
    return end === buf.length ? new BatchReader(r, end) : undefined;
  }

  private constructor(r: Reader, end: number) {
    this.r = r;
    this.end = end;
  }

  /** Read fields until `until` (a field that starts before it is read whole) or the end. */
  readUntil(until: number): void {
    const { r, end } = this;
    while (r.pos < end && r.pos < until) {
      const t = r.tag();
      switch (t) {
        case (1 << 3) | 0:
          this.seq = r.large();
          break;
        case (2 << 3) | 0:
        case (3 << 3) | 0:
          r.skipVarint(); // the window: no rule reads it
          break;
        case (4 << 3) | 2: {
          const stop = r.delimited(end);
          this.flows.push(readRecord(r, stop));
          break;
        }
        case (5 << 3) | 2: {
          const stop = r.delimited(end);
          this.sources.push(readSourceCounts(r, stop));
          break;
        }
        case (6 << 3) | 0:
          this.droppedRecords = r.large();
          break;
        default:
          if (t >>> 3 <= 6) throw NOT_MINE;
          r.skip(t & 7, end);
      }
      if (r.pos > end) throw NOT_MINE;
    }
  }

  get done(): boolean {
    return this.r.pos >= this.end;
  }

  /** from-wire.ts's flowBatchHeadFromWire rules, once every field is read. */
  finish(): FlowBatchMessage {
    if (this.r.pos !== this.end || this.seq < 1 || this.sources.length > LIMITS.sourcesPerBatch) throw NOT_MINE;
    return { seq: this.seq, flows: this.flows, sources: this.sources, droppedRecords: this.droppedRecords };
  }
}

/**
 * The checked flow batch in `buf` (a whole AgentMessage), or undefined: take the reference path (another kind of
 * message, bytes protobufjs might read otherwise, or a batch some rule refuses).
 */
export function flowBatchFromBytes(buf: Buffer): FlowBatchMessage | undefined {
  try {
    const b = BatchReader.open(buf);
    if (!b) return undefined;
    b.readUntil(b.end);
    return b.finish();
  } catch (err) {
    if (err === NOT_MINE) return undefined;
    throw err;
  }
}

/** flowBatchFromBytes for a large message, giving the event loop a turn whenever `slice` is up. Same answers. */
export async function flowBatchFromBytesInSlices(buf: Buffer, slice: TimeSlice): Promise<FlowBatchMessage | undefined> {
  try {
    const b = BatchReader.open(buf);
    if (!b) return undefined;
    while (!b.done) {
      if (slice.isUp()) await slice.next();
      b.readUntil(b.r.pos + BYTES_PER_STEP);
    }
    return b.finish();
  } catch (err) {
    if (err === NOT_MINE) return undefined;
    throw err;
  }
}
