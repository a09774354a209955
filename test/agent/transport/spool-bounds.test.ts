import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import t from 'tap';
import { Outbox } from '../../../agent/transport/outbox.js';
import { Spool } from '../../../agent/transport/spool.js';
import { flowToWire } from '../../../proto/convert.js';
import type { WireBenchmarkRun, WireFlowBatch } from '../../../proto/index.js';
import { flow, T0 } from '../../fixtures/flows.js';
import { decodeAgentMessage } from '../../fixtures/outbox.js';
import { tempDir } from '../../fixtures/tmp.js';

// The spool's size bounds (--max-spool-bytes and the message count): the spool keeps what the outbox keeps, and
// the outbox bounds it (agent/transport/outbox.ts, "Bounds are the outbox's business: it tells the spool what to
// forget"). Past either bound the oldest unacked message goes: counted (messages and their flow records), its
// spool file removed, its records told upstream in the next batch cut. Expected values are worked out by hand:
// every window here is one FlowBatch of `PER` records whose encoded size is the same (ports and seqs below 128
// encode in one byte each), so a byte bound of k messages is k times that size.

const silent = pino({ level: 'silent' });
const PER = 2;
const pos = (offset: number) => ({ 'calico:/x': { dev: 1, ino: 2, offset } });
/** Window `i` (1-based): PER records with ports 10i, 10i+1. */
const window = (i: number) => ({
  windowStartUnixMs: T0,
  windowEndUnixMs: T0 + 15_000,
  records: Array.from({ length: PER }, (_, k) => flowToWire(flow({ destinationPort: 10 * i + k, connections: 1 }))),
  sources: [],
  droppedRecords: 0,
});
const seqsOf = (o: Outbox) => [...o.after(0)].map((e) => e.seq);
const batchOf = (o: Outbox, seq: number) =>
  decodeAgentMessage([...o.after(seq - 1)][0]?.bytes as Buffer).flowBatch as WireFlowBatch;
const files = (dir: string) =>
  readdirSync(join(dir, 'batches'))
    .filter((n) => /^\d+\.json$/.test(n))
    .sort((a, b) => parseInt(a) - parseInt(b));

/** The encoded size of one window's message. */
function messageBytes(): number {
  const o = new Outbox({ log: silent, maxBytes: 1e9, maxMessages: 1e6 });
  o.addFlowWindow(window(1), undefined);
  return [...o.after(0)][0]?.bytes.length as number;
}

t.test('every window here encodes to the same size (the premise of the byte arithmetic)', async (t) => {
  const o = new Outbox({ log: silent, maxBytes: 1e9, maxMessages: 1e6 });
  for (let i = 1; i <= 8; i++) o.addFlowWindow(window(i), undefined);
  const sizes = new Set([...o.after(0)].map((e) => e.bytes.length));
  t.same([...sizes], [messageBytes()]);
});

t.test('count bound: three kept; the two oldest of five go, counted, their spool files removed', async (t) => {
  const dir = tempDir(t);
  const settled: [number, string][] = [];
  const o = new Outbox({
    log: silent,
    spool: Spool.open(dir),
    maxBytes: 1e9,
    maxMessages: 3,
    onSettled: (seq, outcome) => void settled.push([seq, outcome]),
  });
  for (let i = 1; i <= 5; i++) o.addFlowWindow(window(i), pos(i));
  t.same(seqsOf(o), [3, 4, 5], 'the newest three (a fresh spool numbers from 1)');
  t.equal(o.stats.dropped, 2, 'two messages dropped');
  t.equal(o.stats.droppedRecords, 2 * PER, 'with their 4 records');
  t.same(
    settled,
    [
      [1, 'dropped'],
      [2, 'dropped'],
    ],
    'oldest first',
  );
  t.same(files(dir), ['3.json', '4.json', '5.json'], 'the spool holds exactly what is kept');
  t.equal(o.unackedBytes, 3 * messageBytes());

  // A drop is told by the next batch cut after it: window 4 was cut before seq 1 went (it carries 0), window 5
  // after (it carries seq 1's 2 records) and before seq 2 went; window 6 carries seq 2's, and queueing it drops seq 3.
  t.equal(batchOf(o, 4).droppedRecords, 0);
  t.equal(batchOf(o, 5).droppedRecords, PER);
  o.addFlowWindow(window(6), pos(6));
  t.equal(batchOf(o, 6).droppedRecords, PER);
  t.same(seqsOf(o), [4, 5, 6]);
  t.equal(o.stats.droppedRecords, 3 * PER);
  o.addFlowWindow(window(7), pos(7));
  t.equal(batchOf(o, 7).droppedRecords, PER, "seq 3's records");
  t.same(files(dir), ['5.json', '6.json', '7.json']);

  // A restart finds only what was kept, and resumes after the newest window.
  const again = Spool.open(dir);
  t.same(
    again.pending().map((m) => m.seq),
    [5, 6, 7],
  );
  t.same(again.positions(), pos(7));
});

t.test('byte bound: exactly k messages fit in k times their size; one byte less keeps k - 1', async (t) => {
  const s = messageBytes();
  const exact = new Outbox({ log: silent, spool: Spool.open(tempDir(t)), maxBytes: 3 * s, maxMessages: 1e6 });
  for (let i = 1; i <= 5; i++) exact.addFlowWindow(window(i), pos(i));
  t.same(seqsOf(exact), [3, 4, 5], 'at the bound is within it');
  t.equal(exact.unackedBytes, 3 * s);
  t.equal(exact.stats.dropped, 2);
  t.equal(exact.stats.droppedRecords, 2 * PER);

  const dir = tempDir(t);
  const tight = new Outbox({ log: silent, spool: Spool.open(dir), maxBytes: 3 * s - 1, maxMessages: 1e6 });
  for (let i = 1; i <= 5; i++) tight.addFlowWindow(window(i), pos(i));
  t.same(seqsOf(tight), [4, 5], 'one byte under three messages: two');
  t.equal(tight.unackedBytes, 2 * s);
  t.equal(tight.stats.dropped, 3);
  t.equal(tight.stats.droppedRecords, 3 * PER);
  t.same(files(dir), ['4.json', '5.json']);
});

t.test('both bounds: the tighter one decides', async (t) => {
  const s = messageBytes();
  const byCount = new Outbox({ log: silent, maxBytes: 10 * s, maxMessages: 2 });
  const byBytes = new Outbox({ log: silent, maxBytes: 2 * s, maxMessages: 10 });
  for (let i = 1; i <= 6; i++) {
    byCount.addFlowWindow(window(i), undefined);
    byBytes.addFlowWindow(window(i), undefined);
  }
  t.same(seqsOf(byCount), [5, 6]);
  t.same(seqsOf(byBytes), [5, 6]);
  t.equal(byCount.stats.dropped, 4);
  t.equal(byBytes.stats.dropped, 4);
});

t.test('the newest message is kept even when it alone is over the byte bound', async (t) => {
  const s = messageBytes();
  const o = new Outbox({ log: silent, maxBytes: s - 1, maxMessages: 1e6 });
  o.addFlowWindow(window(1), undefined);
  t.same(seqsOf(o), [1], 'alone, over the bound, kept: it is what the agent has to send');
  t.equal(o.stats.dropped, 0);
  o.addFlowWindow(window(2), undefined);
  t.same(seqsOf(o), [2], 'the next one replaces it');
  t.equal(o.stats.dropped, 1);
  t.equal(o.stats.droppedRecords, PER);
});

t.test('acked messages free their room: nothing is dropped while the aggregator keeps up', async (t) => {
  const dir = tempDir(t);
  const o = new Outbox({ log: silent, spool: Spool.open(dir), maxBytes: 1e9, maxMessages: 2 });
  for (let i = 1; i <= 10; i++) {
    o.addFlowWindow(window(i), pos(i));
    o.acked(i);
  }
  t.equal(o.stats.dropped, 0);
  t.equal(o.stats.acked, 10);
  t.equal(o.unackedBytes, 0);
  t.same(files(dir), [], 'settled windows leave no files');
});

t.test('a dropped benchmark run is counted as a message, with no flow records', async (t) => {
  const o = new Outbox({ log: silent, maxBytes: 1e9, maxMessages: 1 });
  o.add(() => ({ kind: 'benchmarkRun', benchmarkRun: {} as WireBenchmarkRun }));
  o.addFlowWindow(window(1), undefined);
  t.same(seqsOf(o), [2]);
  t.equal(o.stats.dropped, 1);
  t.equal(o.stats.droppedRecords, 0);
  o.addFlowWindow(window(2), undefined);
  t.equal(batchOf(o, 3).droppedRecords, 0, 'cut before window 1 went, after the run went: the run adds nothing');
  t.equal(o.stats.droppedRecords, PER, "window 1's records, dropped when window 2 was queued");
  o.addFlowWindow(window(3), undefined);
  t.equal(batchOf(o, 4).droppedRecords, PER, 'and told by the next batch');
});

t.test('a restart with a smaller bound: the oldest spooled messages go at once, counted', async (t) => {
  const dir = tempDir(t);
  const first = new Outbox({ log: silent, spool: Spool.open(dir), maxBytes: 1e9, maxMessages: 1e6 });
  for (let i = 1; i <= 4; i++) first.addFlowWindow(window(i), pos(i));
  const o = new Outbox({ log: silent, spool: Spool.open(dir), maxBytes: 1e9, maxMessages: 2 });
  t.same(seqsOf(o), [3, 4]);
  t.equal(o.stats.dropped, 2);
  t.equal(o.stats.droppedRecords, 2 * PER);
  t.same(files(dir), ['3.json', '4.json']);
  const next = o.addFlowWindow(window(5), pos(5));
  t.equal(batchOf(o, next[0] as number).droppedRecords, 2 * PER, 'and told upstream with the next batch');
});

t.todo(
  'BUG: dropped records carried by a batch that is itself dropped are never told upstream (the aggregator undercounts a long outage)',
  async (t) => {
    // maxMessages 1, the aggregator away: each window's batch carries the records dropped before it was cut, and is
    // then dropped itself when the next one is queued; only its own records are counted again, not what it carried.
    const o = new Outbox({ log: silent, maxBytes: 1e9, maxMessages: 1 });
    const told: number[] = [];
    const tell = () => {
      for (const e of o.after(0)) told[e.seq] = (decodeAgentMessage(e.bytes).flowBatch as WireFlowBatch).droppedRecords;
    };
    for (let i = 1; i <= 5; i++) o.addFlowWindow(window(i), undefined);
    t.equal(o.stats.droppedRecords, 4 * PER, 'windows 1-4 dropped: 8 records, counted locally');
    tell(); // the aggregator comes back: the one kept batch (window 5) is delivered and acked
    o.acked(5);
    o.addFlowWindow(window(6), undefined);
    tell(); // and the next batch, which carries whatever was still untold
    const delivered = told[5]! + told[6]!;
    t.equal(delivered, 4 * PER, `the aggregator is told ${delivered} dropped records of ${4 * PER}`);
  },
);

t.todo(
  'BUG? the spool directory on disk stays within --max-spool-bytes (the bound counts encoded message bytes; group files hold them base64 in JSON, about 4/3 larger)',
  async (t) => {
    const dir = tempDir(t);
    const bound = 64 * 1024;
    const o = new Outbox({ log: silent, spool: Spool.open(dir), maxBytes: bound, maxMessages: 1e6 });
    for (let i = 1; i <= 1000; i++) o.addFlowWindow(window(i % 12), pos(i));
    t.ok(o.stats.dropped > 0, 'the bound was reached');
    t.ok(o.unackedBytes <= bound, 'the outbox keeps its bound');
    const onDisk = files(dir).reduce((n, f) => n + statSync(join(dir, 'batches', f)).size, 0);
    t.ok(onDisk <= bound, `${onDisk} bytes of group files on disk for a ${bound}-byte bound`);
  },
);
