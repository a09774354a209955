import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import t from 'tap';
import { Outbox } from '../../../agent/transport/outbox.js';
import { Spool } from '../../../agent/transport/spool.js';
import { AgentStream } from '../../../agent/transport/stream.js';
import type { FlowEndpoint } from '../../../common/flow.js';
import { flowToWire, reportToWire } from '../../../proto/convert.js';
import { agentServiceDefinition, type WireFlowBatch, type WireFlowRecord } from '../../../proto/index.js';
import { T0 } from '../../fixtures/flows.js';
import { reportOf } from '../../fixtures/reports.js';
import { agentHello } from '../../fixtures/agent-hello.js';
import { decodeAgentMessage } from '../../fixtures/outbox.js';
import { tempDir } from '../../fixtures/tmp.js';

// The outbox's bound on bytes in flight (OutboxOptions.maxInFlightBytes, the agent's default without a spool): a
// flow window's batches are encoded as the aggregator's acks free room, not all at the window's close. Over real gRPC
// on loopback, against a stand-in aggregator on the real proto that acks in order after a delay: the aggregator never
// holds more unacked batches than the bound lets through, every record arrives once and in order, seqs reach it in
// order even with a benchmark run queued while a window waits, flushed() waits for the whole window, and a stream
// broken mid-window sends the rest after the reconnect, nothing stored twice. With a spool, a window's group file is
// whole on disk before any of it is sent, and only the batches within the bound stay in memory: the others are read
// back from the file as acks free room (and a file removed under the agent turns its batches into counted drops).

const silent = pino({ level: 'silent' });
/** The stand-in's message limit: the outbox cuts batches of about 4 KiB under it (16 KiB is kept as headroom). */
const LIMIT = 20 * 1024;

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

/**
 * An aggregator stand-in: stores each message by seq (a repeat counts as a duplicate), acks in order `ackDelayMs`
 * after it arrives, and notes the most messages it held unacked at once and whether seqs ever went backwards on a
 * connection. With `breakAfter`, the first connection ends after that many messages, the last neither stored nor
 * acked, the one before stored but not acked.
 */
async function standIn(ackDelayMs: number, breakAfter = 0) {
  const stored = new Map<number, Record<string, unknown>>();
  const s = { duplicates: 0, connections: 0, mostUnacked: 0, outOfOrder: 0 };
  const server = new grpc.Server();
  server.addService(agentServiceDefinition(), {
    Connect: (call: grpc.ServerDuplexStream<Record<string, unknown>, Record<string, unknown>>) => {
      const first = ++s.connections === 1;
      let seen = 0;
      let unacked = 0;
      let lastSeq = 0;
      let broken = false;
      call.on('data', (m: Record<string, unknown>) => {
        if (broken) return;
        if (m.hello) {
          const last = stored.size === 0 ? 0 : Math.max(...stored.keys());
          call.write({ welcome: { lastStoredSeq: last, aggregatorVersion: 'test', maxMessageBytes: LIMIT } });
          return;
        }
        const body = (m.flowBatch ?? m.benchmarkRun) as { seq: number } | undefined;
        if (!body) return;
        const seq = Number(body.seq);
        if (seq <= lastSeq) s.outOfOrder++;
        lastSeq = seq;
        seen++;
        if (first && seen === breakAfter) {
          broken = true;
          call.end();
          return;
        }
        if (stored.has(seq)) s.duplicates++;
        else stored.set(seq, m);
        if (first && seen === breakAfter - 1) return;
        unacked++;
        s.mostUnacked = Math.max(s.mostUnacked, unacked);
        setTimeout(() => {
          unacked--;
          if (!broken) call.write({ ack: { seq, duplicate: false } });
        }, ackDelayMs);
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
  const batches = () =>
    [...stored.entries()]
      .sort(([a], [b]) => a - b)
      .map(([, m]) => m.flowBatch as WireFlowBatch | undefined)
      .filter((b): b is WireFlowBatch => b !== undefined);
  return { port, stored, s, batches, stop: () => server.forceShutdown() };
}

function agentStream(port: number, outbox: Outbox) {
  return new AgentStream({
    address: `127.0.0.1:${port}`,
    credentials: grpc.credentials.createInsecure(),
    metadata: () => new grpc.Metadata(),
    hello: () => agentHello(),
    log: silent,
    outbox,
    maxUnacked: 1000,
    minBackoffMs: 20,
    maxBackoffMs: 100,
  });
}

const pod = (n: number): FlowEndpoint => ({
  kind: 'pod',
  namespace: 'shop',
  name: `app-${n}`,
  labels: [`app=app-${n}`, 'team=payments', 'tier=backend'],
  serviceAccount: `app-${n}`,
  internet: false,
});

/** `n` records, ports from `from`: about 100 bytes each, so 600 take some fifteen 4 KiB batches. */
const records = (n: number, from = 1000): WireFlowRecord[] =>
  Array.from({ length: n }, (_, i) =>
    flowToWire({
      source: pod(i % 7),
      destination: pod((i + 1) % 7),
      protocol: 'tcp',
      destinationPort: from + i,
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

const window = (recs: WireFlowRecord[]) => ({
  windowStartUnixMs: T0,
  windowEndUnixMs: T0 + 15_000,
  records: recs,
  sources: [{ source: 'calico:/x', malformed: 3, lost: 1 }],
  droppedRecords: 2,
});

async function connected(stream: AgentStream): Promise<void> {
  for (let i = 0; i < 300 && !stream.connected; i++) await new Promise((r) => setTimeout(r, 10));
  if (!stream.connected) throw new Error('the stream did not connect');
}

t.test(
  'a window goes out as acks free room: never more unacked than the bound lets through; every record once, in order; seqs in order with a benchmark run queued meanwhile; flushed() waits for the whole window',
  async (t) => {
    t.setTimeout(30_000);
    const agg = await standIn(20);
    t.teardown(() => agg.stop());
    // About two and a half batches: the outbox encodes the next batch while under it, so three are in flight.
    const outbox = new Outbox({ log: silent, maxBytes: 1e9, maxMessages: 1e6, maxInFlightBytes: 10 * 1024 });
    const stream = agentStream(agg.port, outbox);
    t.teardown(() => stream.stop());
    stream.start();
    await connected(stream);
    const recs = records(600);
    const first = outbox.addFlowWindow(window(recs), undefined);
    t.equal(first.length, 3, 'three batches encoded at the close; the rest wait');
    let mostKept = outbox.unackedBytes;
    const watch = setInterval(() => (mostKept = Math.max(mostKept, outbox.unackedBytes)), 1);
    t.teardown(() => clearInterval(watch));
    // A benchmark run queued while the window waits takes the next seq: it goes between the window's batches.
    stream.send((seq) => ({
      kind: 'benchmarkRun',
      benchmarkRun: reportToWire(reportOf('n1', { '4.1.1': 'PASS' }, { startedAt: '2026-11-01T00:00:01Z' }), seq),
    }));
    await stream.flushed();
    clearInterval(watch);
    const batches = agg.batches();
    t.ok(batches.length >= 12, `${batches.length} batches`);
    t.same(
      batches.flatMap((b) => b.records.map((r) => r.destinationPort)),
      recs.map((r) => r.destinationPort),
      'every record stored once, in order, before flushed() resolved',
    );
    t.same(
      batches.map((b) => Number(b.droppedRecords)),
      [2, ...Array(batches.length - 1).fill(0)],
      'the counts go with the first batch only',
    );
    t.ok(agg.s.mostUnacked <= 4, `the aggregator held at most ${agg.s.mostUnacked} unacked (3 batches and the run)`);
    t.ok(mostKept <= 10 * 1024 + LIMIT, `the outbox kept at most ${mostKept} bytes unacked`);
    t.equal(agg.s.outOfOrder, 0, 'seqs only ever went up');
    t.equal(agg.s.duplicates, 0);
    t.equal(outbox.size, 0);
  },
);

for (const spooled of [false, true])
  t.test(
    `${spooled ? 'with a spool (the rest of the window read back from its file), ' : ''}a stream broken mid-window: the batches not stored and the rest of the window go after the reconnect, nothing stored twice`,
    async (t) => {
      t.setTimeout(30_000);
      // The first connection takes four batches: the third stored but not acked, the fourth lost.
      const agg = await standIn(20, 4);
      t.teardown(() => agg.stop());
      const outbox = new Outbox({
        log: silent,
        ...(spooled ? { spool: Spool.open(tempDir(t)) } : {}),
        maxBytes: 1e9,
        maxMessages: 1e6,
        maxInFlightBytes: 10 * 1024,
      });
      const stream = agentStream(agg.port, outbox);
      t.teardown(() => stream.stop());
      stream.start();
      await connected(stream);
      const recs = records(600);
      outbox.addFlowWindow(window(recs), undefined);
      await stream.flushed();
      t.ok(agg.s.connections >= 2, 'the stream broke and was opened again');
      t.equal(agg.s.duplicates, 0, 'the batch stored before the break was not sent again');
      t.equal(agg.s.outOfOrder, 0, 'seqs only ever went up on each connection');
      const seqs = [...agg.stored.keys()].sort((a, b) => a - b);
      t.same(
        seqs,
        seqs.map((_, i) => (seqs[0] as number) + i),
        'consecutive seqs: none skipped',
      );
      t.same(
        agg.batches().flatMap((b) => b.records.map((r) => r.destinationPort)),
        recs.map((r) => r.destinationPort),
        'every record stored once, in order',
      );
    },
  );

t.test(
  'a second window closed while the first still waits: the first is encoded whole, and both arrive in order',
  async (t) => {
    t.setTimeout(30_000);
    const outbox = new Outbox({ log: silent, maxBytes: 1e9, maxMessages: 1e6, maxInFlightBytes: 10 * 1024 });
    // No aggregator yet: nothing is acked, so the first window waits after its first three batches.
    outbox.setMaxMessageBytes(LIMIT);
    const a = records(600, 1000);
    const b = records(600, 5000);
    outbox.addFlowWindow(window(a), undefined);
    const kept = outbox.size;
    t.equal(kept, 3, 'three batches of the first window encoded');
    outbox.addFlowWindow(window(b), undefined);
    t.ok(outbox.size > kept + 3, `the first window encoded whole (${outbox.size} messages kept)`);
    const agg = await standIn(5);
    t.teardown(() => agg.stop());
    const stream = agentStream(agg.port, outbox);
    t.teardown(() => stream.stop());
    stream.start();
    await stream.flushed();
    t.same(
      agg.batches().flatMap((x) => x.records.map((r) => r.destinationPort)),
      [...a, ...b].map((r) => r.destinationPort),
      'every record of both windows once, in order',
    );
    t.equal(agg.s.outOfOrder, 0);
  },
);

/** The spool's group files, parsed. */
const groupFiles = (dir: string) =>
  readdirSync(join(dir, 'batches'))
    .filter((n) => /^\d+\.json$/.test(n))
    .map((n) => JSON.parse(readFileSync(join(dir, 'batches', n), 'utf8')) as { messages: { seq: number }[] });

t.test(
  'with a spool: the whole window is in its group file before any of it is sent, only the batches within the bound are held in memory, the rest read back as acks free room; every record once, in order',
  async (t) => {
    t.setTimeout(30_000);
    const agg = await standIn(20);
    t.teardown(() => agg.stop());
    const dir = tempDir(t);
    const bound = 10 * 1024;
    const outbox = new Outbox({
      log: silent,
      spool: Spool.open(dir),
      maxBytes: 1e9,
      maxMessages: 1e6,
      maxInFlightBytes: bound,
    });
    const stream = agentStream(agg.port, outbox);
    t.teardown(() => stream.stop());
    stream.start();
    await connected(stream);
    const recs = records(600);
    const seqs = outbox.addFlowWindow(window(recs), { 'calico:/x': { dev: 1, ino: 2, offset: 600 } });
    // Nothing has gone out yet (a gRPC write leaves on a later turn): the file already lists every batch.
    t.same(
      groupFiles(dir).flatMap((g) => g.messages.map((m) => m.seq)),
      seqs,
      `the group file lists all ${seqs.length} batches as addFlowWindow returns`,
    );
    t.ok(seqs.length >= 12, `${seqs.length} batches`);
    t.ok(outbox.residentBytes <= bound + LIMIT, `${outbox.residentBytes} bytes held in memory at the close`);
    t.ok(
      outbox.residentBytes < outbox.unackedBytes / 3,
      `most of the window (${outbox.unackedBytes} bytes) is only in the file`,
    );
    let mostResident = outbox.residentBytes;
    const watch = setInterval(() => (mostResident = Math.max(mostResident, outbox.residentBytes)), 1);
    t.teardown(() => clearInterval(watch));
    await stream.flushed();
    clearInterval(watch);
    t.same(
      agg.batches().flatMap((b) => b.records.map((r) => r.destinationPort)),
      recs.map((r) => r.destinationPort),
      'every record stored once, in order',
    );
    t.same(
      agg.batches().map((b) => Number(b.seq)),
      seqs,
      'the batches as spooled, in seq order',
    );
    t.ok(agg.s.mostUnacked <= 3, `the aggregator held at most ${agg.s.mostUnacked} unacked`);
    t.ok(mostResident <= bound + LIMIT, `at most ${mostResident} bytes held in memory while it went out`);
    t.equal(agg.s.outOfOrder, 0);
    t.equal(agg.s.duplicates, 0);
    t.equal(outbox.residentBytes, 0, 'nothing held once all is acked');
    t.same(groupFiles(dir), [], 'the group file is removed once the window is settled');
  },
);

t.test(
  'a group file removed under the agent: the batches held only there go out as their count of dropped records, under the same seqs, counted',
  async (t) => {
    const dir = tempDir(t);
    const outbox = new Outbox({
      log: silent,
      spool: Spool.open(dir),
      maxBytes: 1e9,
      maxMessages: 1e6,
      maxInFlightBytes: 10 * 1024,
    });
    outbox.setMaxMessageBytes(LIMIT);
    const recs = records(600);
    const seqs = outbox.addFlowWindow(window(recs), undefined);
    const held = outbox.residentBytes;
    for (const n of readdirSync(join(dir, 'batches'))) rmSync(join(dir, 'batches', n));
    const batches = [...outbox.after(0)].map((e) => decodeAgentMessage(e.bytes).flowBatch as WireFlowBatch);
    t.same(
      batches.map((b) => Number(b.seq)),
      seqs,
      'every seq still goes, in order',
    );
    const sent = batches.flatMap((b) => b.records.map((r) => r.destinationPort));
    const lost = batches.filter((b) => b.records.length === 0);
    t.ok(sent.length > 0 && lost.length > 0, `${sent.length} records from memory, ${lost.length} batches lost`);
    t.same(
      sent,
      recs.slice(0, sent.length).map((r) => r.destinationPort),
      'the batches held in memory go whole, the first of the window',
    );
    t.ok(held > 0);
    t.equal(outbox.stats.droppedRecords, recs.length - sent.length, 'each record of the lost batches counted');
    t.equal(
      batches.reduce((n, b) => n + Number(b.droppedRecords), 0),
      2 + recs.length - sent.length,
      "the aggregator is told every one (and the window's own 2)",
    );
    t.same(
      lost.map((b) => [Number(b.windowStartUnixMs), Number(b.windowEndUnixMs)]),
      lost.map(() => [T0, T0 + 15_000]),
      'under the window they belonged to',
    );
  },
);

t.test(
  'a restart with the spool full of unacked windows: none of it is read into memory at start; it goes out within the bound, read back from the files, every record once, in order',
  async (t) => {
    t.setTimeout(30_000);
    const dir = tempDir(t);
    const bound = 10 * 1024;
    const options = { log: silent, maxBytes: 1e9, maxMessages: 1e6, maxInFlightBytes: bound };
    // The agent before the restart: the aggregator was unreachable, two windows were spooled and never sent.
    const before = new Outbox({ ...options, spool: Spool.open(dir) });
    before.setMaxMessageBytes(LIMIT);
    const a = records(600, 1000);
    const b = records(600, 5000);
    const seqs = [...before.addFlowWindow(window(a), undefined), ...before.addFlowWindow(window(b), undefined)];
    const outbox = new Outbox({ ...options, spool: Spool.open(dir) });
    t.equal(outbox.size, seqs.length, `all ${seqs.length} batches found again`);
    t.equal(outbox.residentBytes, 0, 'none of them in memory');
    t.ok(outbox.unackedBytes > 20 * bound, `${outbox.unackedBytes} bytes waiting in the spool`);
    const agg = await standIn(10);
    t.teardown(() => agg.stop());
    let mostResident = 0;
    const watch = setInterval(() => (mostResident = Math.max(mostResident, outbox.residentBytes)), 1);
    t.teardown(() => clearInterval(watch));
    const stream = agentStream(agg.port, outbox);
    t.teardown(() => stream.stop());
    stream.start();
    await stream.flushed();
    clearInterval(watch);
    t.same(
      agg.batches().map((x) => Number(x.seq)),
      seqs,
      'every batch, under its seq, in order',
    );
    t.same(
      agg.batches().flatMap((x) => x.records.map((r) => r.destinationPort)),
      [...a, ...b].map((r) => r.destinationPort),
      'every record of both windows once, in order',
    );
    // The bound is in bytes: three ~4 KiB batches, or four when one of them is a window's short last batch.
    t.ok(agg.s.mostUnacked <= 4, `the aggregator held at most ${agg.s.mostUnacked} unacked`);
    t.ok(mostResident <= bound + LIMIT, `at most ${mostResident} bytes held in memory while it went out`);
    t.same(groupFiles(dir), [], 'the group files are removed once settled');
  },
);
