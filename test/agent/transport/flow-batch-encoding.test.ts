import { createServer } from 'node:net';
import { isDeepStrictEqual } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import fc from 'fast-check';
import { pino } from 'pino';
import t from 'tap';
import { FlowBatchEncoder } from '../../../agent/transport/flow-batch-encoding.js';
import { Outbox } from '../../../agent/transport/outbox.js';
import { AgentStream } from '../../../agent/transport/stream.js';
import type { EndpointKind, FlowEndpoint, FlowRecord, PolicyRef } from '../../../common/flow.js';
import { flowToWire } from '../../../proto/convert.js';
import { agentServiceDefinition, type WireFlowBatch, type WireFlowRecord } from '../../../proto/index.js';
import { fuzzParams } from '../../fixtures/fuzz.js';
import { decodeAgentMessage } from '../../fixtures/outbox.js';
import { agentHello } from '../../fixtures/agent-hello.js';

// Issue 13: a window's FlowBatches are written straight to bytes, one bounded chunk (batch) at a time, instead of
// building protobufjs objects for the whole window. Held here: the bytes are protobufjs's, byte for byte; every record
// of a window goes in exactly one chunk, in order, each chunk under the aggregator's limit; and over a real gRPC stream
// that breaks, what was not stored is sent again and nothing is stored twice.

const silent = pino({ level: 'silent' });
const T0 = Date.UTC(2026, 10, 30, 12);

const text = fc.oneof(
  fc.constantFrom('', 'shop', 'kube-system', 'app=frontend', 'é', '日本', 'x'.repeat(300)),
  fc.string({ maxLength: 20 }),
);
const endpointArb: fc.Arbitrary<FlowEndpoint> = fc.record({
  kind: fc.constantFrom<EndpointKind>('pod', 'host', 'networkset', 'network', 'apiserver'),
  namespace: text,
  name: text,
  labels: fc.array(text, { maxLength: 5 }),
  serviceAccount: text,
  internet: fc.boolean(),
});
const policyArb: fc.Arbitrary<PolicyRef> = fc.record({
  tier: text,
  namespace: text,
  name: text,
  action: fc.constantFrom('allow', 'deny', 'pass'),
  kind: text,
});
const count = fc.oneof(fc.constantFrom(0, 1, 127, 128, 2 ** 31, 2 ** 32, 2 ** 53 - 1), fc.nat());
/** Records sharing a few endpoints and policy lists, as the parsers share them (the encoder caches their bytes). */
const recordsArb: fc.Arbitrary<FlowRecord[]> = fc
  .tuple(
    fc.array(endpointArb, { minLength: 1, maxLength: 4 }),
    fc.array(fc.array(policyArb, { maxLength: 3 }), { minLength: 1, maxLength: 3 }),
    fc.array(
      fc.record({
        s: fc.nat(),
        d: fc.nat(),
        p: fc.nat(),
        sp: fc.nat(),
        reserved: fc.option(fc.constantFrom('host', 'world'), { nil: undefined }),
        protocol: fc.constantFrom('tcp', 'udp', '132', ''),
        port: fc.integer({ min: 0, max: 65535 }),
        action: fc.constantFrom<'allow' | 'deny'>('allow', 'deny'),
        reporter: fc.constantFrom<'src' | 'dst'>('src', 'dst'),
        flags: fc.tuple(fc.boolean(), fc.boolean(), fc.option(fc.boolean(), { nil: undefined })),
        counts: fc.tuple(count, count, count),
        start: fc.integer({ min: 1, max: 2 ** 45 }),
        span: fc.nat(100_000),
      }),
      { maxLength: 60 },
    ),
  )
  .map(([endpoints, lists, rows]) =>
    rows.map((r) => ({
      source: r.reserved
        ? { ...(endpoints[r.s % endpoints.length] as FlowEndpoint), reserved: r.reserved }
        : (endpoints[r.s % endpoints.length] as FlowEndpoint),
      destination: endpoints[r.d % endpoints.length] as FlowEndpoint,
      protocol: r.protocol,
      destinationPort: r.port,
      action: r.action,
      reporter: r.reporter,
      policies: lists[r.p % lists.length] as PolicyRef[],
      stagedPolicies: lists[r.sp % lists.length] as PolicyRef[],
      unnamedPolicy: r.flags[0],
      policyDecided: r.flags[1],
      ...(r.flags[2] === undefined ? {} : { policyUnknown: r.flags[2] }),
      connections: r.counts[0],
      packets: r.counts[1],
      bytes: r.counts[2],
      startMs: r.start,
      endMs: r.start + r.span,
    })),
  );

const serialize = (m: Record<string, unknown>) => agentServiceDefinition().Connect?.requestSerialize(m) as Buffer;

t.test("a FlowBatch's bytes are protobufjs's, byte for byte", async (t) => {
  fc.assert(
    fc.property(
      recordsArb,
      fc.nat(),
      fc.array(fc.record({ source: text, malformed: count, lost: count }), { maxLength: 3 }),
      count,
      (records, seq, sources, droppedRecords) => {
        const wire = records.map(flowToWire);
        const enc = new FlowBatchEncoder();
        const header = { seq, windowStartUnixMs: T0, windowEndUnixMs: T0 + 15_000, sources, droppedRecords };
        const sizes = wire.map((r) => enc.recordSize(r));
        const mine = enc.encode(header, 0, wire.length, sizes, (i) => wire[i] as WireFlowRecord);
        const theirs = serialize({ flowBatch: { ...header, records: wire } });
        if (!mine.equals(theirs)) throw new Error(`differ: ${mine.toString('hex')} / ${theirs.toString('hex')}`);
        // A refused batch as it decodes (every default filled in) encodes to the same bytes again.
        const decoded = decodeAgentMessage(theirs).flowBatch as WireFlowBatch;
        const again = enc.encode(
          decoded,
          0,
          decoded.records.length,
          decoded.records.map((r) => enc.recordSize(r)),
          (i) => decoded.records[i] as WireFlowRecord,
        );
        if (!again.equals(theirs)) throw new Error('a decoded batch encodes to other bytes');
      },
    ),
    fuzzParams(300, 20261204),
  );
  t.pass('property held');
});

const window = (records: WireFlowRecord[]) => ({
  windowStartUnixMs: T0,
  windowEndUnixMs: T0 + 15_000,
  records,
  sources: [{ source: 'calico:/x', malformed: 3, lost: 1 }],
  droppedRecords: 2,
});

t.test('a window is cut into chunks under the limit: every record in exactly one, in order', async (t) => {
  fc.assert(
    fc.property(
      fc.array(recordsArb, { minLength: 1, maxLength: 4 }),
      fc.integer({ min: 17 * 1024, max: 64 * 1024 }),
      (windows, limit) => {
        const o = new Outbox({ log: silent, maxBytes: 1e9, maxMessages: 1e6 });
        o.setMaxMessageBytes(limit);
        const sent: WireFlowRecord[][] = [];
        for (const w of windows) {
          const wire = w.map(flowToWire);
          sent.push(wire);
          o.addFlowWindow(window(wire), undefined);
        }
        const entries = [...o.after(0)];
        const seqs = entries.map((e) => e.seq);
        if (seqs.some((s, i) => i > 0 && s !== (seqs[i - 1] as number) + 1)) throw new Error('seqs not consecutive');
        const got: WireFlowRecord[] = [];
        let told = 0;
        for (const e of entries) {
          if (e.bytes.length > limit) throw new Error(`a chunk of ${e.bytes.length} bytes, over ${limit}`);
          const b = decodeAgentMessage(e.bytes).flowBatch as WireFlowBatch;
          if (b.seq !== e.seq || b.records.length !== e.records) throw new Error('entry and bytes disagree');
          got.push(...b.records);
          told += Number(b.droppedRecords);
        }
        const want = sent.flat().map((r) => decodeAgentMessage(serialize({ flowBatch: { records: [r] } })));
        const gotOne = got.map((r) => decodeAgentMessage(serialize({ flowBatch: { records: [r] } })));
        if (!isDeepStrictEqual(gotOne, want)) throw new Error('records lost, doubled or out of order');
        if (told !== 2 * windows.length) throw new Error(`told ${told} dropped records`);
      },
    ),
    fuzzParams(100, 20261205),
  );
  t.pass('property held');
});

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

/**
 * An aggregator stand-in on the real proto: it stores each FlowBatch by seq (a repeat counts as a duplicate), acks in
 * order, and on the first connection breaks the stream after `breakAfter` batches, the last of them neither stored nor
 * acked, the one before stored but not acked.
 */
async function flakyAggregator(maxMessageBytes: number, breakAfter: number) {
  const stored = new Map<number, WireFlowRecord[]>();
  let duplicates = 0;
  let connections = 0;
  const server = new grpc.Server();
  server.addService(agentServiceDefinition(), {
    Connect: (call: grpc.ServerDuplexStream<Record<string, unknown>, Record<string, unknown>>) => {
      const first = ++connections === 1;
      let seen = 0;
      let broken = false;
      call.on('data', (m: Record<string, unknown>) => {
        if (broken) return;
        if (m.hello) {
          const last = stored.size === 0 ? 0 : Math.max(...stored.keys());
          call.write({ welcome: { lastStoredSeq: last, aggregatorVersion: 'test', maxMessageBytes } });
          return;
        }
        const batch = m.flowBatch as WireFlowBatch | undefined;
        if (!batch) return;
        seen++;
        if (first && seen === breakAfter) {
          broken = true;
          call.end();
          return;
        }
        if (stored.has(batch.seq)) duplicates++;
        else stored.set(batch.seq, batch.records);
        if (!(first && seen === breakAfter - 1)) call.write({ ack: { seq: batch.seq, duplicate: false } });
      });
      call.on('error', () => undefined);
    },
  });
  const port = await freePort();
  await new Promise<void>((resolve, reject) =>
    server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err) =>
      err ? reject(err) : resolve(),
    ),
  );
  return {
    port,
    stored,
    duplicates: () => duplicates,
    connections: () => connections,
    stop: () => server.forceShutdown(),
  };
}

t.test('over a stream that breaks mid-window, every chunk is sent again until stored, none stored twice', async (t) => {
  t.setTimeout(30_000);
  const agg = await flakyAggregator(20 * 1024, 3);
  t.teardown(() => agg.stop());
  const stream = new AgentStream({
    address: `127.0.0.1:${agg.port}`,
    credentials: grpc.credentials.createInsecure(),
    metadata: () => new grpc.Metadata(),
    hello: () => agentHello(),
    log: silent,
    maxUnacked: 1000,
    minBackoffMs: 20,
    maxBackoffMs: 100,
  });
  t.teardown(() => stream.stop());
  // Endpoints with labels enough that a window of 600 records takes many 20 KiB chunks.
  const pod = (n: number): FlowEndpoint => ({
    kind: 'pod',
    namespace: 'shop',
    name: `app-${n}`,
    labels: [`app=app-${n}`, 'team=payments', 'tier=backend'],
    serviceAccount: `app-${n}`,
    internet: false,
  });
  const records = Array.from({ length: 600 }, (_, i) =>
    flowToWire({
      source: pod(i % 7),
      destination: pod((i + 1) % 7),
      protocol: 'tcp',
      destinationPort: 1000 + i,
      action: 'allow',
      reporter: 'src',
      policies: [],
      stagedPolicies: [],
      unnamedPolicy: false,
      policyDecided: true,
      connections: 1,
      packets: 2,
      bytes: 3,
      startMs: T0,
      endMs: T0 + 1,
    }),
  );
  stream.start();
  // Wait for the Welcome so the outbox cuts under the stand-in's 20 KiB limit.
  for (let i = 0; i < 200 && !stream.connected; i++) await new Promise((r) => setTimeout(r, 10));
  const seqs = stream.outbox.addFlowWindow(window(records), undefined);
  t.ok(seqs.length >= 4, `${seqs.length} chunks`);
  await stream.flushed();
  t.ok(agg.connections() >= 2, 'the stream broke and was opened again');
  t.equal(agg.duplicates(), 0, 'the chunk stored before the break was not stored again');
  t.same(
    [...agg.stored.keys()].sort((a, b) => a - b),
    seqs,
    'every chunk stored, under its seq',
  );
  const ports = [...agg.stored.entries()]
    .sort(([a], [b]) => a - b)
    .flatMap(([, rs]) => rs.map((r) => r.destinationPort));
  t.same(
    ports,
    records.map((r) => r.destinationPort),
    'every record exactly once, in order',
  );
});
