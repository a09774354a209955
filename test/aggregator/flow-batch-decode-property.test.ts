import fc from 'fast-check';
import t from 'tap';
import type { FlowEndpoint, FlowRecord, PolicyRef } from '../../common/flow.js';
import { TimeSlice } from '../../common/time-slice.js';
import { flowKeyText } from '../../aggregator/store/flow-key-ids.js';
import { flowToWire } from '../../proto/convert.js';
import { flowBatchFromBytes, flowBatchFromBytesInSlices } from '../../proto/flow-batch-decode.js';
import { flowBatchFromWireInSlices, type FlowBatchMessage } from '../../proto/from-wire.js';
import { agentServiceDefinition, type WireFlowBatch } from '../../proto/index.js';
import { HELLO, rawAgentStream, startTestAggregator } from '../fixtures/aggregator.js';
import { flow, T0 } from '../fixtures/flows.js';
import { fuzzParams } from '../fixtures/fuzz.js';

// The fast flow-batch decoder (proto/flow-batch-decode.ts) against the reference path it stands in for: protobufjs's
// decode and toObject (grpc-js's deserializer) and then proto/from-wire.ts. For arbitrary valid batches the fast path
// must take the message and give exactly the reference's records (same values, same key order: keys are built by
// JSON.stringify); for arbitrary mutated, cut or spliced bytes, the aggregator's answer (fast path, else the
// reference path) must be the reference's: the same records, or the same problem (a Reject with the same reason and
// message), or the same decode error — and nothing thrown. Fixed seeds; `npm run fuzz` for a longer run.
const def = agentServiceDefinition().Connect as {
  requestSerialize: (m: unknown) => Buffer;
  requestDeserialize: (b: Buffer) => Record<string, unknown>;
};

type Outcome = { ok: FlowBatchMessage } | { problem: string } | { malformed: string } | { other: string };

/** What the aggregator did with these bytes before the fast decoder. */
async function reference(bytes: Buffer): Promise<Outcome> {
  let m: Record<string, unknown>;
  try {
    m = def.requestDeserialize(bytes);
  } catch (err) {
    return { malformed: (err as Error).message };
  }
  if (m.kind !== 'flowBatch') return { other: String(m.kind) };
  const r = await flowBatchFromWireInSlices(m.flowBatch as WireFlowBatch, new TimeSlice());
  return r.ok ? { ok: r.value } : { problem: r.problem };
}

/** What it does now: the fast decoder, and the reference path for what it leaves; its sliced form must agree. */
async function now(bytes: Buffer): Promise<{ outcome: Outcome; fast: boolean }> {
  const fast = flowBatchFromBytes(bytes);
  // A slice of 0 ms is always up: the sliced reader pauses at every step it can.
  const sliced = await flowBatchFromBytesInSlices(bytes, new TimeSlice(0));
  if (JSON.stringify(sliced) !== JSON.stringify(fast)) throw new Error('the sliced decoder answered otherwise');
  return fast ? { outcome: { ok: fast }, fast: true } : { outcome: await reference(bytes), fast: false };
}

/** Equal including key order and which keys are absent (flowKey and endpointJson stringify records). */
const same = (a: Outcome, b: Outcome): boolean => JSON.stringify(a) === JSON.stringify(b);

// Text as agents send it (any Unicode, labels in any order) and at the bounds (1024 characters; 32 for a protocol).
const text = (max = 1024) =>
  fc.oneof(
    { weight: 4, arbitrary: fc.string({ maxLength: 12 }) },
    { weight: 2, arbitrary: fc.string({ unit: 'grapheme', maxLength: 8 }) },
    { weight: 1, arbitrary: fc.constantFrom('', 'x'.repeat(max), 'é'.repeat(max), '😀'.repeat(max / 2)) },
  );
const count = fc.oneof(fc.nat(1000), fc.constantFrom(0, 2 ** 32, 2 ** 53 - 1));
const policy: fc.Arbitrary<PolicyRef> = fc.record({
  tier: text(),
  namespace: text(),
  name: text(),
  action: fc.constantFrom('allow', 'deny', 'pass', ''),
  kind: text(),
});
const endpoint: fc.Arbitrary<FlowEndpoint> = fc
  .record({
    kind: fc.constantFrom('pod', 'host', 'networkset', 'network', 'apiserver'),
    namespace: text(),
    name: text(),
    labels: fc.oneof(
      { weight: 5, arbitrary: fc.array(text(), { maxLength: 4 }) },
      { weight: 1, arbitrary: fc.constant(Array.from({ length: 256 }, (_, i) => `k${255 - i}=v`)) },
    ),
    serviceAccount: text(),
    internet: fc.boolean(),
    reserved: fc.option(fc.oneof(text(64), fc.constantFrom('world', 'host', 'remote-node')), { nil: undefined }),
  })
  .map((e) => {
    const { reserved, ...rest } = e;
    return reserved === undefined ? rest : { ...rest, reserved };
  });
const record: fc.Arbitrary<FlowRecord> = fc
  .record({
    source: endpoint,
    destination: endpoint,
    protocol: text(32),
    destinationPort: fc.oneof(fc.constantFrom(0, 65535), fc.nat(65535)),
    action: fc.constantFrom('allow' as const, 'deny' as const),
    reporter: fc.constantFrom('src' as const, 'dst' as const),
    policies: fc.array(policy, { maxLength: 3 }),
    stagedPolicies: fc.array(policy, { maxLength: 2 }),
    unnamedPolicy: fc.boolean(),
    policyDecided: fc.boolean(),
    policyUnknown: fc.boolean(),
    connections: count,
    packets: count,
    bytes: count,
    startMs: fc.oneof(fc.constantFrom(1, T0), fc.integer({ min: 1, max: 8.64e15 })),
    span: fc.oneof(fc.constant(0), fc.nat(120_000)),
  })
  .map(({ span, policyUnknown, ...f }) => ({
    ...f,
    endMs: Math.min(f.startMs + span, 8.64e15),
    ...(policyUnknown ? { policyUnknown } : {}),
  }));
const sources = fc.array(
  fc.record({ source: fc.oneof(text(4096), fc.constant('calico:/var/log/flows.log')), malformed: count, lost: count }),
  { maxLength: 3 },
);

function encode(seq: number, records: FlowRecord[], src: unknown[], droppedRecords = 0): Buffer {
  return def.requestSerialize({
    flowBatch: {
      seq,
      windowStartUnixMs: T0,
      windowEndUnixMs: T0 + 60_000,
      records: records.map(flowToWire),
      sources: src,
      droppedRecords,
    },
  });
}

const batch = fc.record({
  seq: fc.oneof(fc.integer({ min: 1, max: 1000 }), fc.constant(2 ** 53 - 1)),
  records: fc.array(record, { maxLength: 12 }),
  sources,
  dropped: count,
});

t.test('a valid flow batch is taken by the fast decoder and read exactly as the reference path reads it', async (t) => {
  await fc.assert(
    fc.asyncProperty(batch, async (b) => {
      const bytes = encode(b.seq, b.records, b.sources, b.dropped);
      const want = await reference(bytes);
      if (!('ok' in want)) throw new Error(`the reference path refused a valid batch: ${JSON.stringify(want)}`);
      const got = await now(bytes);
      if (!got.fast) throw new Error('the fast decoder left a valid batch to the reference path');
      if (!same(got.outcome, want))
        throw new Error(`different records:\n${JSON.stringify(got.outcome)}\n${JSON.stringify(want)}`);
      // The store's key text of a shared (frozen) endpoint or policy list is kept: the same text as the reference's
      // records (built fresh each time), on the first call and on the next.
      const fast = (got.outcome as { ok: FlowBatchMessage }).ok.flows;
      for (const [i, f] of want.ok.flows.entries())
        for (let n = 0; n < 2; n++)
          if (flowKeyText(fast[i]!) !== flowKeyText(f)) throw new Error(`record ${i}: another key text`);
    }),
    fuzzParams(300, 20261201),
  );
  t.pass('property held');
});

/** A change to a batch's bytes: a byte set, bytes cut off, removed, inserted or repeated. */
const byteMutation = fc.oneof(
  fc.tuple(fc.constant('set' as const), fc.nat(), fc.nat(255)),
  fc.tuple(fc.constant('cut' as const), fc.nat(), fc.constant(0)),
  fc.tuple(fc.constant('remove' as const), fc.nat(), fc.integer({ min: 1, max: 4 })),
  fc.tuple(fc.constant('insert' as const), fc.nat(), fc.nat(255)),
  fc.tuple(fc.constant('repeat' as const), fc.nat(), fc.integer({ min: 1, max: 40 })),
);

function mutate(bytes: Buffer, [how, at, v]: [string, number, number]): Buffer {
  const i = at % (bytes.length + 1);
  switch (how) {
    case 'set': {
      const b = Buffer.from(bytes);
      if (b.length > 0) b[i % b.length] = v;
      return b;
    }
    case 'cut':
      return bytes.subarray(0, i);
    case 'remove':
      return Buffer.concat([bytes.subarray(0, i), bytes.subarray(i + v)]);
    case 'insert':
      return Buffer.concat([bytes.subarray(0, i), Buffer.from([v]), bytes.subarray(i)]);
    default:
      // A run of the message's own bytes again: a field twice, a record repeated, a length that now lies.
      return Buffer.concat([bytes.subarray(0, i), bytes.subarray(i, i + v), bytes.subarray(i)]);
  }
}

/** Field values a rule refuses (set on the protobufjs object before encoding, as a buggy or hostile agent would). */
type Json = Record<string, unknown>;
const fieldMutation: fc.Arbitrary<(m: Json) => void> = fc.oneof(
  fc.integer({ min: 0, max: 9 }).map((v) => (m: Json) => ((m.source as Json).kind = v)),
  fc.integer({ min: 0, max: 4 }).map((v) => (m: Json) => (m.action = v)),
  fc.integer({ min: 0, max: 4 }).map((v) => (m: Json) => (m.reporter = v)),
  fc.constantFrom(65536, 2 ** 32 - 1).map((v) => (m: Json) => (m.destinationPort = v)),
  fc.constantFrom('9007199254740992', '18446744073709551615', -1, 0).map((v) => (m: Json) => (m.connections = v)),
  fc.constantFrom(0, -5, 8.64e15 + 1).map((v) => (m: Json) => (m.startUnixMs = v)),
  fc.constantFrom(0, 1).map((v) => (m: Json) => (m.endUnixMs = v)),
  fc.constantFrom('a\u0000b', 'x'.repeat(1025), '\uD800').map((v) => (m: Json) => ((m.source as Json).name = v)),
  fc.constantFrom('x'.repeat(33), '\u0000').map((v) => (m: Json) => (m.protocol = v)),
  fc.constantFrom('x'.repeat(65), '\u0000').map((v) => (m: Json) => ((m.destination as Json).reserved = v)),
  fc.constant((m: Json) => ((m.source as Json).labels = Array.from({ length: 257 }, (_, i) => `l${i}`))),
  fc.constant(
    (m: Json) =>
      (m.policies = Array.from({ length: 257 }, () => ({
        tier: 't',
        namespace: '',
        name: 'p',
        action: 'a',
        kind: '',
      }))),
  ),
  fc.constant((m: Json) => (m.stagedPolicies = [{ tier: '\u0000', namespace: '', name: 'p', action: '', kind: '' }])),
  fc.constant((m: Json) => (m.source = null)),
  fc.constant((m: Json) => (m.destination = {})),
);

t.test('mutated, cut and spliced batches: the same answer as the reference path, nothing thrown', async (t) => {
  let fastTaken = 0;
  let runs = 0;
  await fc.assert(
    fc.asyncProperty(
      batch,
      fc.array(fc.tuple(fc.nat(11), fieldMutation), { maxLength: 2 }),
      fc.array(byteMutation, { maxLength: 3 }),
      fc.option(fc.constantFrom(0, -1, '18446744073709551615'), { freq: 6 }),
      async (b, fields, bytesChanges, badSeq) => {
        runs++;
        const wire = b.records.map((r) => flowToWire(r) as unknown as Json);
        for (const [i, m] of fields) {
          try {
            if (wire.length > 0) m(wire[i % wire.length]!);
          } catch {
            // a mutation of a part an earlier one removed
          }
        }
        let bytes: Buffer;
        try {
          bytes = def.requestSerialize({
            flowBatch: {
              seq: badSeq ?? b.seq,
              windowStartUnixMs: T0,
              windowEndUnixMs: T0,
              records: wire,
              sources: b.sources,
              droppedRecords: b.dropped,
            },
          });
        } catch {
          return; // a value protobufjs cannot encode never reaches the wire
        }
        for (const c of bytesChanges) bytes = mutate(bytes, c);
        const want = await reference(bytes);
        const got = await now(bytes);
        if (got.fast) fastTaken++;
        if (!same(got.outcome, want))
          throw new Error(`different answers:\n${JSON.stringify(got.outcome)}\n${JSON.stringify(want)}`);
      },
    ),
    fuzzParams(1500, 20261202),
  );
  t.ok(fastTaken > 0 && fastTaken < runs, `the fast path took ${fastTaken} of ${runs} messages, left the rest`);
});

t.test('records repeated, fields twice and unknown fields: read as protobufjs reads them', async (t) => {
  const base = flow({ policies: [{ tier: 'default', namespace: 'shop', name: 'p', action: 'allow', kind: 'K' }] });
  const rec = recordBytes(base);
  const cases: [string, Buffer][] = [
    // A field of a number this build does not know (a newer agent's), in the record and in the batch: skipped.
    ['unknown varint field 40 in a record', withRecordTail(rec, Buffer.from([0xc0, 0x02, 0x05]))],
    ['unknown length-delimited field 41 in a record', withRecordTail(rec, Buffer.from([0xca, 0x02, 0x02, 0x61, 0x62]))],
    ['a record field twice (the later wins)', withRecordTail(rec, Buffer.from([0x1a, 0x03, 0x75, 0x64, 0x70]))],
    ['the source twice (protobufjs merges)', withRecordTail(rec, Buffer.from([0x0a, 0x04, 0x1a, 0x02, 0x7a, 0x7a]))],
    ['a policy list in two runs', withRecordTail(rec, Buffer.from([0x3a, 0x04, 0x1a, 0x02, 0x71, 0x71]))],
    ['a field of the wrong wire type', withRecordTail(rec, Buffer.from([0x25, 0, 0, 0, 0]))],
  ];
  for (const [name, record] of cases) {
    const bytes = agentMessage(Buffer.concat([Buffer.from([0x08, 0x07]), record]));
    const want = await reference(bytes);
    const got = await now(bytes);
    t.ok(same(got.outcome, want), name);
  }
});

/** A flow's FlowRecord bytes, as the agent encodes them. */
function recordBytes(f: FlowRecord): Buffer {
  const msg = def.requestSerialize({ flowBatch: { records: [flowToWire(f)] } });
  const at = { pos: 1 };
  readVarint(msg, at); // the FlowBatch's length
  at.pos++; // records' tag
  const length = readVarint(msg, at);
  return msg.subarray(at.pos, at.pos + length);
}

/** A FlowBatch records field holding `rec` with `tail` appended. */
function withRecordTail(rec: Buffer, tail: Buffer): Buffer {
  return Buffer.concat([Buffer.from([0x22]), varint(rec.length + tail.length), rec, tail]);
}

function readVarint(b: Buffer, at: { pos: number }): number {
  let v = 0;
  for (let shift = 0; ; shift += 7) {
    const byte = b[at.pos++]!;
    v += (byte & 0x7f) * 2 ** shift;
    if (byte < 0x80) return v;
  }
}

function agentMessage(flowBatch: Buffer): Buffer {
  return Buffer.concat([Buffer.from([0x1a]), varint(flowBatch.length), flowBatch]);
}

function varint(n: number): Buffer {
  const out: number[] = [];
  for (; n >= 0x80; n >>>= 7) out.push((n & 0x7f) | 0x80);
  out.push(n);
  return Buffer.from(out);
}

t.test(
  'through the gRPC stream: a batch with one bad record is refused and counted as invalid; the good batches around it are stored once',
  async (t) => {
    const agg = await startTestAggregator(t);
    const s = rawAgentStream(agg.grpcPort);
    t.teardown(() => s.close());
    s.send(HELLO('decode-1'));
    const good = (seq: number, n: number) =>
      encode(
        seq,
        Array.from({ length: n }, (_, i) => flow({ destinationPort: 1000 + i, connections: 2 })),
        [],
      );
    const bad = def.requestSerialize({
      flowBatch: {
        seq: 2,
        records: [flowToWire(flow({ connections: 100 })), { ...flowToWire(flow()), action: 7 }],
        sources: [],
      },
    });
    // Small batches are read in grpc-js's deserializer; one past 64 KiB is read by its session in slices.
    s.sendRaw(good(1, 3));
    s.sendRaw(bad);
    s.sendRaw(good(3, 2000));
    await s.waitFor(4, 20_000);
    t.same(
      s.received.map((m) => m.kind),
      ['welcome', 'ack', 'reject', 'ack'],
    );
    const reject = s.received[2] as { reject: { seq: number; code: string; message: string } };
    t.equal(reject.reject.seq, 2);
    t.equal(reject.reject.code, 'VERDICT_INGEST_INVALID');
    t.equal(reject.reject.message, 'flow batch: records[1]: action 7 is not one this aggregator knows');
    const rows = (await agg.store.flowRows({ fromMs: 0, toMs: 8.64e15 })).filter((r) => r.node === 'decode-1');
    t.equal(
      rows.reduce((n, r) => n + r.flow.connections, 0),
      2 * 3 + 2 * 2000,
      'every good flow stored once, none of the refused batch',
    );
    const metrics = await (await fetch(`http://127.0.0.1:${agg.httpPort}/metrics`)).text();
    t.match(metrics, /verdict_ingest_rejected_total\{reason="invalid"\} 1\n/);
  },
);
