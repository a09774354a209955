import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { pino } from 'pino';
import t from 'tap';
import { Outbox } from '../../../agent/transport/outbox.js';
import { Spool } from '../../../agent/transport/spool.js';
import { AGENT_DEFAULTS } from '../../../agent/defaults.js';
import { flowToWire } from '../../../proto/convert.js';
import type { WireBenchmarkRun, WireFlowBatch } from '../../../proto/index.js';
import { flow, T0 } from '../../fixtures/flows.js';
import { fuzzParams } from '../../fixtures/fuzz.js';
import { decodeAgentMessage } from '../../fixtures/outbox.js';
import { tempDir } from '../../fixtures/tmp.js';

// The spool's size bounds (--max-spool-bytes and the message count): the spool keeps what the outbox keeps, and
// the outbox bounds it (agent/transport/outbox.ts, "Bounds are the outbox's business: it tells the spool what to
// forget"). Past either bound the oldest unacked message goes: counted (messages and their flow records), its
// spool file removed, its records told upstream in the next batch cut. Expected values are worked out by hand:
// every window here is one FlowBatch of `PER` records whose encoded size is the same (ports and seqs below 128
// encode in one byte each), so a byte bound of k messages is k times that size.
//
// The byte bound holds twice: the encoded bytes kept in memory, and, with a spool, what the spool takes on disk
// (its group files, base64 in JSON, and its two fixed-size state slots, Spool.fixedBytes): the directory never
// grows past --max-spool-bytes.

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
/** Every file of the spool directory, as `du --apparent-size` would add them up (directories not counted). */
function dirBytes(dir: string): number {
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    n += e.isDirectory() ? dirBytes(p) : statSync(p).size;
  }
  return n;
}
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
  const exact = new Outbox({ log: silent, maxBytes: 3 * s, maxMessages: 1e6 });
  for (let i = 1; i <= 5; i++) exact.addFlowWindow(window(i), pos(i));
  t.same(seqsOf(exact), [3, 4, 5], 'at the bound is within it');
  t.equal(exact.unackedBytes, 3 * s);
  t.equal(exact.stats.dropped, 2);
  t.equal(exact.stats.droppedRecords, 2 * PER);

  const tight = new Outbox({ log: silent, maxBytes: 3 * s - 1, maxMessages: 1e6 });
  for (let i = 1; i <= 5; i++) tight.addFlowWindow(window(i), pos(i));
  t.same(seqsOf(tight), [4, 5], 'one byte under three messages: two');
  t.equal(tight.unackedBytes, 2 * s);
  t.equal(tight.stats.dropped, 3);
  t.equal(tight.stats.droppedRecords, 3 * PER);
});

t.test('byte bound on disk: exactly k group files fit beside the state slots; one byte less keeps k - 1', async (t) => {
  // Every group file here is the same size too (one message, the same positions shape, offsets of one digit).
  const probe = tempDir(t);
  const one = new Outbox({ log: silent, spool: Spool.open(probe), maxBytes: 1e9, maxMessages: 1e6 });
  one.addFlowWindow(window(1), pos(1));
  const f = statSync(join(probe, 'batches', '1.json')).size;
  t.ok(f > messageBytes(), `a group file (${f} bytes) is larger than its message (${messageBytes()})`);

  const dir = tempDir(t);
  const exact = new Outbox({
    log: silent,
    spool: Spool.open(dir),
    maxBytes: Spool.fixedBytes + 3 * f,
    maxMessages: 1e6,
  });
  for (let i = 1; i <= 5; i++) exact.addFlowWindow(window(i), pos(i));
  t.same(seqsOf(exact), [3, 4, 5], 'at the bound is within it');
  t.same(files(dir), ['3.json', '4.json', '5.json']);
  t.equal(dirBytes(dir), Spool.fixedBytes + 3 * f, 'the directory is exactly at its bound');
  t.equal(exact.stats.dropped, 2);
  t.equal(exact.stats.droppedRecords, 2 * PER);

  const tightDir = tempDir(t);
  const bound = Spool.fixedBytes + 3 * f - 1;
  const tight = new Outbox({ log: silent, spool: Spool.open(tightDir), maxBytes: bound, maxMessages: 1e6 });
  for (let i = 1; i <= 5; i++) tight.addFlowWindow(window(i), pos(i));
  t.same(seqsOf(tight), [4, 5], 'one byte under three files: two');
  t.same(files(tightDir), ['4.json', '5.json']);
  t.ok(dirBytes(tightDir) <= bound);
  t.equal(tight.stats.dropped, 3);
  t.equal(tight.stats.droppedRecords, 3 * PER);
  t.equal(tight.stats.unspooled, 0);
  // Room is made after a window is cut: window 4 tells seq 1's records, window 5 seq 2's; seq 3's wait for the next.
  t.equal(batchOf(tight, 4).droppedRecords, PER);
  t.equal(batchOf(tight, 5).droppedRecords, PER);

  // A restart with a bound that the spool is over: the oldest go at once, counted.
  const again = new Outbox({
    log: silent,
    spool: Spool.open(tightDir),
    maxBytes: Spool.fixedBytes + f,
    maxMessages: 1e6,
  });
  t.same(seqsOf(again), [5]);
  t.same(files(tightDir), ['5.json']);
  t.equal(again.stats.droppedRecords, PER);
});

t.test('a window whose group file cannot fit beside the state slots goes out from memory only', async (t) => {
  const dir = tempDir(t);
  const bound = Spool.fixedBytes + 100;
  const o = new Outbox({ log: silent, spool: Spool.open(dir), maxBytes: bound, maxMessages: 1e6 });
  const [seq] = o.addFlowWindow(window(1), pos(1));
  t.same(seqsOf(o), [seq], 'sent from memory');
  t.equal(o.stats.unspooled, 1);
  t.equal(o.stats.dropped, 0, 'nothing dropped for a file that would not fit anyway');
  t.same(files(dir), []);
  t.ok(dirBytes(dir) <= bound);
  t.same(
    Spool.open(dir).unspooled.map((u) => u.seq),
    [seq],
    'remembered in the state, as on a full disk',
  );
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

t.test(
  'dropped records carried by a batch that is itself dropped are told by a later one: the aggregator hears of every drop once',
  async (t) => {
    // maxMessages 1, the aggregator away: each window's batch carries the records dropped before it was cut, and is
    // then dropped itself when the next one is queued; what it carried goes on to the next batch with its own records.
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

/** The droppedRecords of every kept message, told when it is acked. */
const toldIn = (o: Outbox, through: number) =>
  [...o.after(0)]
    .filter((e) => e.seq <= through)
    .reduce(
      (n, e) => n + ((decodeAgentMessage(e.bytes).flowBatch as WireFlowBatch | undefined)?.droppedRecords ?? 0),
      0,
    );

t.test('the carried count survives a restart on the spool: every drop told once', async (t) => {
  const dir = tempDir(t);
  const o = new Outbox({ log: silent, spool: Spool.open(dir), maxBytes: 1e9, maxMessages: 1 });
  for (let i = 1; i <= 5; i++) o.addFlowWindow(window(i), pos(i));
  t.equal(o.stats.droppedRecords, 4 * PER);
  // Restart while the aggregator is still away: window 5 (carrying 4) is in the spool, seq 4's records and what it
  // carried are in the state.
  const again = new Outbox({ log: silent, spool: Spool.open(dir), maxBytes: 1e9, maxMessages: 1 });
  t.same(seqsOf(again), [5]);
  let told = toldIn(again, 5);
  again.acked(5);
  const [next] = again.addFlowWindow(window(6), pos(6));
  told += toldIn(again, next as number);
  t.equal(told, 4 * PER, 'told across the restart: all 8, once');
  again.acked(next as number);
  const [last] = again.addFlowWindow(window(7), pos(7));
  t.equal(batchOf(again, last as number).droppedRecords, 0, 'and nothing told twice');
});

t.test('a crash after a group carrying drops is written, before the state is saved: told once', async (t) => {
  const dir = tempDir(t);
  const first = new Outbox({ log: silent, spool: Spool.open(dir), maxBytes: 1e9, maxMessages: 1 });
  first.addFlowWindow(window(1), pos(1));
  first.addFlowWindow(window(2), pos(2)); // seq 1 dropped: 2 untold, saved as its group went
  const o = new Outbox({ log: silent, spool: Spool.open(dir), maxBytes: 1e9, maxMessages: 1e6 });
  const slots = [0, 1].map((i) => readFileSync(join(dir, `state.${i}`)));
  const [seq] = o.addFlowWindow(window(3), pos(3));
  t.equal(batchOf(o, seq as number).droppedRecords, PER, 'window 3 carries the 2');
  slots.forEach((b, i) => writeFileSync(join(dir, `state.${i}`), b)); // the state as before the group was written
  const again = new Outbox({ log: silent, spool: Spool.open(dir), maxBytes: 1e9, maxMessages: 1e6 });
  const pending = seqsOf(again);
  t.same(pending, [2, seq]);
  let told = toldIn(again, seq as number);
  again.acked(seq as number);
  const [next] = again.addFlowWindow(window(4), pos(4));
  told += toldIn(again, next as number);
  t.equal(told, PER, 'the 2 told by window 3 only');
});

t.test('a refused batch: its records and the drops it told go with the next batch', async (t) => {
  const o = new Outbox({ log: silent, maxBytes: 1e9, maxMessages: 1 });
  o.addFlowWindow(window(1), undefined);
  o.addFlowWindow(window(2), undefined); // seq 1 dropped
  t.equal(batchOf(o, 2).droppedRecords, 0);
  o.addFlowWindow(window(3), undefined); // seq 2 dropped; seq 3 carries seq 1's
  t.equal(batchOf(o, 3).droppedRecords, PER);
  o.rejected(3, 'VERDICT_INGEST_INVALID');
  const [next] = o.addFlowWindow(window(4), undefined);
  t.equal(batchOf(o, next as number).droppedRecords, 3 * PER, "seq 2's, seq 3's own and what seq 3 carried");
  t.equal(o.stats.droppedRecords, 3 * PER);
});

t.test('the spool directory on disk stays within --max-spool-bytes (group files are base64 in JSON)', async (t) => {
  const dir = tempDir(t);
  const bound = AGENT_DEFAULTS.run.maxSpoolMinBytes; // the flag's smallest value
  const o = new Outbox({ log: silent, spool: Spool.open(dir), maxBytes: bound, maxMessages: 1e6 });
  let most = 0;
  const big = (i: number) => ({
    ...window(i),
    records: Array.from({ length: 40 }, (_, k) => flowToWire(flow({ destinationPort: 1000 * i + k, connections: 1 }))),
  });
  for (let i = 1; i <= 120; i++) {
    o.addFlowWindow(big(i), pos(i));
    most = Math.max(most, dirBytes(dir));
  }
  t.ok(o.stats.dropped > 0, 'the bound was reached');
  t.equal(o.stats.unspooled, 0, 'every window spooled');
  t.ok(o.unackedBytes <= bound, 'the outbox keeps its bound');
  t.ok(most <= bound, `at most ${most} bytes on disk for a ${bound}-byte bound`);
  t.ok(most > bound - (2 * (dirBytes(dir) - Spool.fixedBytes)) / files(dir).length, 'and the room is used');
});

type Op =
  { kind: 'window'; records: number } | { kind: 'ack'; count: number } | { kind: 'refuse' } | { kind: 'restart' };

t.test(
  'property: after any adds, acks, refusals and restarts the spool directory is within its bound, and every dropped record is told once',
  async (t) => {
    const op: fc.Arbitrary<Op> = fc.oneof(
      { weight: 6, arbitrary: fc.integer({ min: 0, max: 60 }).map((records): Op => ({ kind: 'window', records })) },
      { weight: 2, arbitrary: fc.integer({ min: 1, max: 4 }).map((count): Op => ({ kind: 'ack', count })) },
      { weight: 1, arbitrary: fc.constant<Op>({ kind: 'refuse' }) },
      { weight: 1, arbitrary: fc.constant<Op>({ kind: 'restart' }) },
    );
    let run = 0;
    fc.assert(
      fc.property(
        fc.integer({ min: 2_000, max: 40_000 }),
        fc.integer({ min: 1, max: 8 }),
        fc.array(op, { maxLength: 30 }),
        (room, maxMessages, ops) => {
          const dir = tempDir(t, `verdict-spool-${run++}-`);
          const bound = Spool.fixedBytes + room;
          const open = () => new Outbox({ log: silent, spool: Spool.open(dir), maxBytes: bound, maxMessages });
          let o = open();
          let dropped = 0; // counted by every outbox that ran
          let told = 0; // what acked batches told the aggregator
          let port = 0;
          const ack = (through: number) => {
            told += toldIn(o, through);
            o.acked(through);
          };
          for (const x of ops) {
            if (x.kind === 'window') {
              const records = Array.from({ length: x.records }, () =>
                flowToWire(flow({ destinationPort: 1 + (port++ % 60_000), connections: 1 })),
              );
              o.addFlowWindow({ ...window(1), records }, pos(port));
            } else if (x.kind === 'ack') {
              const seqs = seqsOf(o);
              if (seqs.length > 0) ack(seqs[Math.min(x.count, seqs.length) - 1] as number);
            } else if (x.kind === 'refuse') {
              const head = seqsOf(o)[0];
              if (head !== undefined) o.rejected(head, 'VERDICT_INGEST_INVALID');
            } else {
              dropped += o.stats.droppedRecords;
              o = open();
            }
            const size = dirBytes(dir);
            if (size > bound) throw new Error(`${size} bytes on disk after ${x.kind}, over ${bound}`);
          }
          // The aggregator comes back for good: everything kept is acked, then one more (empty) window tells the rest.
          const last = seqsOf(o).at(-1);
          if (last !== undefined) ack(last);
          const [final] = o.addFlowWindow({ ...window(1), records: [] }, pos(port + 1));
          ack(final as number);
          dropped += o.stats.droppedRecords;
          if (told !== dropped) throw new Error(`told ${told} dropped records of ${dropped}`);
          if (dirBytes(dir) > bound) throw new Error('over the bound at the end');
        },
      ),
      fuzzParams(40),
    );
    t.pass('held for every sequence');
  },
);
