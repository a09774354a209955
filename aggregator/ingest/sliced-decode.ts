import type { TimeSlice } from '../../common/time-slice.js';
import type { WireAgentMessage, WireFlowRecord } from '../../proto/index.js';

/**
 * Agent messages this large or larger are decoded by their session in time
 * slices, not in grpc-js's deserializer callback, which must answer at once:
 * a 4 MiB FlowBatch of 90,000 small records takes the best part of a second
 * to decode. Smaller messages take a few ms at most.
 */
export const SLICED_DECODE_MIN_BYTES = 64 * 1024;

/** Record bytes decoded in one step: a few ms of work. */
const RECORD_BYTES_PER_STEP = 64 * 1024;

/** AgentMessage.flow_batch (field 3), length-delimited. */
const FLOW_BATCH_TAG = (3 << 3) | 2;
const RECORDS_FIELD = 4;
/** The wire type of each FlowBatch field in agent.proto; any other field is skipped by decoders. */
const FLOW_BATCH_WIRE_TYPES: Record<number, number> = { 1: 0, 2: 0, 3: 0, 4: 2, 5: 2, 6: 0 };

/**
 * Decode an AgentMessage as `decode` (the one-step protobuf decoder) would, in
 * steps with a turn of the event loop in between whenever `slice` is up.
 *
 * A protobuf message may be parsed in parts: each repeated element appends,
 * and scalars keep their last value as long as their order is kept. So a
 * FlowBatch is cut at its field boundaries: its fields but the records decode
 * in one step; the records in runs of up to 64 KiB, each run through `decode`
 * itself, wrapped as a FlowBatch of its own: the same decoder, so the same
 * values and defaults. A message that is not a single well-framed FlowBatch
 * (another kind, a truncated or odd frame) is decoded in one step, so its
 * outcome, an error included, is exactly `decode`'s.
 */
export async function decodeInSlices(
  buf: Buffer,
  decode: (b: Buffer) => WireAgentMessage,
  slice: TimeSlice,
): Promise<WireAgentMessage> {
  const parts = flowBatchParts(buf);
  if (!parts) return decode(buf);
  const head = decode(asFlowBatch(parts.head));
  if (head.kind !== 'flowBatch') return decode(buf);
  const records: WireFlowRecord[] = [];
  for (const run of parts.recordRuns) {
    if (slice.isUp()) await slice.next();
    const part = decode(asFlowBatch([run]));
    if (part.kind !== 'flowBatch') return decode(buf);
    for (const r of part.flowBatch.records) records.push(r);
  }
  return { ...head, flowBatch: { ...head.flowBatch, records } };
}

/**
 * The fields of the FlowBatch that is all of `buf`: the bytes of its fields
 * but records, in order, and its records in runs of adjacent fields. Undefined
 * unless every field is whole and has the wire type agent.proto gives it.
 */
function flowBatchParts(buf: Buffer): { head: Buffer[]; recordRuns: Buffer[] } | undefined {
  const at = { pos: 0 };
  if (readVarint(buf, at, 5) !== FLOW_BATCH_TAG) return undefined;
  const length = readVarint(buf, at, 5);
  if (length === undefined || at.pos + length !== buf.length) return undefined;
  const head: Buffer[] = [];
  const recordRuns: Buffer[] = [];
  let runStart = -1;
  while (at.pos < buf.length) {
    const start = at.pos;
    const tag = readVarint(buf, at, 5);
    if (tag === undefined || tag >>> 3 === 0) return undefined;
    const field = tag >>> 3;
    const wireType = tag & 7;
    const expected = FLOW_BATCH_WIRE_TYPES[field];
    if (expected !== undefined && wireType !== expected) return undefined;
    if (!skipValue(buf, at, wireType)) return undefined;
    if (field === RECORDS_FIELD) {
      if (runStart >= 0 && start - runStart >= RECORD_BYTES_PER_STEP) {
        recordRuns.push(buf.subarray(runStart, start));
        runStart = -1;
      }
      if (runStart < 0) runStart = start;
      continue;
    }
    if (runStart >= 0) recordRuns.push(buf.subarray(runStart, start));
    runStart = -1;
    head.push(buf.subarray(start, at.pos));
  }
  if (runStart >= 0) recordRuns.push(buf.subarray(runStart));
  return { head, recordRuns };
}

/** `fields` (whole FlowBatch fields) as an AgentMessage holding that FlowBatch. */
function asFlowBatch(fields: Buffer[]): Buffer {
  const length = fields.reduce((n, f) => n + f.length, 0);
  return Buffer.concat([Buffer.from([FLOW_BATCH_TAG, ...varint(length)]), ...fields]);
}

function skipValue(buf: Buffer, at: { pos: number }, wireType: number): boolean {
  switch (wireType) {
    case 0:
      return readVarint(buf, at, 10) !== undefined;
    case 1:
      at.pos += 8;
      break;
    case 2: {
      const length = readVarint(buf, at, 5);
      if (length === undefined) return false;
      at.pos += length;
      break;
    }
    case 5:
      at.pos += 4;
      break;
    default:
      return false; // groups (3, 4) and undefined wire types
  }
  return at.pos <= buf.length;
}

/**
 * A varint of at most `maxBytes` bytes at `at.pos`, moving past it; undefined when cut short, longer, or (5 bytes) over
 * 32 bits.
 */
function readVarint(buf: Buffer, at: { pos: number }, maxBytes: 5 | 10): number | undefined {
  let value = 0;
  for (let i = 0; i < maxBytes; i++) {
    const byte = buf[at.pos++];
    if (byte === undefined) return undefined;
    value += (byte & 0x7f) * 2 ** (7 * i);
    if (byte < 0x80) return maxBytes === 5 && value > 0xffffffff ? undefined : value;
  }
  return undefined;
}

function varint(n: number): number[] {
  const bytes: number[] = [];
  for (; n >= 0x80; n = Math.floor(n / 0x80)) bytes.push((n & 0x7f) | 0x80);
  bytes.push(n);
  return bytes;
}
