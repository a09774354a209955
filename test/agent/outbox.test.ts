import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import t from 'tap';
import { AGENT_DEFAULTS } from '../../agent/defaults.js';
import { Outbox } from '../../agent/transport/outbox.js';
import { Spool } from '../../agent/transport/spool.js';
import { flowToWire } from '../../proto/convert.js';
import type { WireFlowBatch } from '../../proto/index.js';
import { flow, T0 } from '../fixtures/flows.js';
import { decodeAgentMessage } from '../fixtures/outbox.js';
import { tempDir } from '../fixtures/tmp.js';

const silent = pino({ level: 'silent' });
const records = (n: number, from = 0) =>
  Array.from({ length: n }, (_, i) => flowToWire(flow({ destinationPort: 1 + from + i, connections: 1 })));
const window = (recs = records(3), droppedRecords = 0) => ({
  windowStartUnixMs: T0,
  windowEndUnixMs: T0 + 15_000,
  records: recs,
  sources: [{ source: 'calico:/x', malformed: 2, lost: 0 }],
  droppedRecords,
});
const pos = (offset: number) => ({ 'calico:/x': { dev: 1, ino: 2, offset } });
const batches = (o: Outbox) =>
  [...o.after(0)].map((e) => ({
    seq: e.seq,
    bytes: e.bytes.length,
    batch: decodeAgentMessage(e.bytes).flowBatch as WireFlowBatch | undefined,
  }));

t.test(
  'a window over the message limit is cut into batches that each fit; every record once; counts with the first only',
  async (t) => {
    const o = new Outbox({ log: silent, maxBytes: 1e9, maxMessages: 1e6 });
    o.setMaxMessageBytes(64 * 1024);
    const recs = records(3000);
    const seqs = o.addFlowWindow(window(recs, 5), pos(100));
    const out = batches(o);
    t.ok(seqs.length > 2, `${seqs.length} batches`);
    t.same(
      out.map((b) => b.seq),
      seqs,
      'consecutive seqs, in order',
    );
    for (const b of out) t.ok(b.bytes <= 64 * 1024, `batch ${b.seq} is ${b.bytes} bytes`);
    const ports = out.flatMap((b) => b.batch?.records.map((r) => r.destinationPort) ?? []);
    t.same(
      ports,
      recs.map((r) => r.destinationPort),
      'every record once, in order',
    );
    t.same(
      out.map((b) => b.batch?.sources.length),
      [1, ...Array(out.length - 1).fill(0)],
      'source counts once',
    );
    t.same(
      out.map((b) => b.batch?.droppedRecords),
      [5, ...Array(out.length - 1).fill(0)],
    );
  },
);

t.test(
  'a batch refused as oversized is cut smaller under new seqs; refused otherwise, its records are counted and told upstream',
  async (t) => {
    const o = new Outbox({ log: silent, maxBytes: 1e9, maxMessages: 1e6 });
    const [seq] = o.addFlowWindow(window(records(400)), pos(1));
    o.rejected(0, 'VERDICT_INGEST_OVERSIZED'); // seq 0: the oldest in flight
    const out = batches(o);
    t.ok(out.length >= 2);
    t.ok(
      out.every((b) => b.seq > (seq as number)),
      'new seqs, above the refused one',
    );
    t.equal(
      out.reduce((n, b) => n + (b.batch?.records.length ?? 0), 0),
      400,
      'no record lost or doubled',
    );
    t.equal(o.stats.recut, 1);

    for (const b of out) o.rejected(b.seq, 'VERDICT_INGEST_INVALID');
    t.equal(o.stats.droppedRecords, 400);
    o.addFlowWindow(window(records(1, 999)), pos(2));
    t.equal(batches(o)[0]?.batch?.droppedRecords, 400, 'the next batch tells the aggregator');
  },
);

t.test('bounded by bytes: past the bound the oldest messages go, their records counted', async (t) => {
  const o = new Outbox({ log: silent, maxBytes: 20_000, maxMessages: 1e6 });
  for (let i = 0; i < 20; i++) o.addFlowWindow(window(records(10, i * 10)), pos(i));
  t.ok(o.unackedBytes <= 20_000, `${o.unackedBytes} bytes kept`);
  t.ok(o.stats.dropped > 0);
  t.equal(o.stats.droppedRecords, o.stats.dropped * 10);
  const kept = batches(o);
  t.equal(kept.at(-1)?.batch?.records[0]?.destinationPort, 191, 'the newest are kept');
});

t.test('a record too large to send even alone is dropped and counted, the rest of its window is sent', async (t) => {
  const o = new Outbox({ log: silent, maxBytes: 1e9, maxMessages: 1e6 });
  o.setMaxMessageBytes(32 * 1024);
  const huge = flowToWire(
    flow({ source: { labels: Array.from({ length: 200 }, (_, i) => `label-${i}=${'v'.repeat(200)}`) } }),
  );
  o.addFlowWindow(window([...records(2), huge, ...records(2, 2)]), pos(3));
  const out = batches(o);
  t.equal(
    out.reduce((n, b) => n + (b.batch?.records.length ?? 0), 0),
    4,
  );
  t.equal(o.stats.droppedRecords, 1);
  // Told with the next batch cut (the window's first batch may be out before the record is found too large).
  o.addFlowWindow(window(records(1, 50)), pos(4));
  t.equal(
    batches(o).reduce((n, b) => n + (b.batch?.droppedRecords ?? 0), 0),
    1,
    'told upstream exactly once',
  );
});

t.test(
  'with a spool: a restart queues the unacked messages again with their seqs and resumes after the newest window',
  async (t) => {
    const dir = tempDir(t);
    const spool = Spool.open(dir);
    const o = new Outbox({ log: silent, spool, maxBytes: 1e9, maxMessages: 1e6 });
    o.setMaxMessageBytes(16 * 1024);
    const first = o.addFlowWindow(window(records(200)), pos(100));
    const second = o.addFlowWindow(window(records(10, 500)), pos(200));
    o.acked(first[0] as number); // one batch of the first window stored
    t.equal(readdirSync(join(dir, 'batches')).length, 2, 'one file per window');

    const again = Spool.open(dir);
    t.equal(again.bootId, spool.bootId);
    t.same(again.positions(), pos(200), 'resume after the newest window');
    const o2 = new Outbox({ log: silent, spool: again, maxBytes: 1e9, maxMessages: 1e6 });
    const seqs = [...o2.after(0)].map((e) => e.seq);
    t.same(
      seqs,
      [...first, ...second],
      'every unacked message, with its seq (an acked one again is a harmless duplicate)',
    );
    t.ok(again.takeSeq() > Math.max(...seqs), 'new seqs never reuse old ones');
    o2.acked(Math.max(...seqs));
    t.equal(readdirSync(join(dir, 'batches')).length, 0, 'settled windows leave no files');
    t.same(Spool.open(dir).positions(), pos(200));
  },
);

t.test('a spool of the previous version (one batch per file, state.json) is read and sent on', async (t) => {
  const dir = tempDir(t);
  mkdirSync(join(dir, 'batches'));
  writeFileSync(
    join(dir, 'state.json'),
    JSON.stringify({ bootId: 'old-boot', seqReservedUpTo: 1001, positions: pos(10) }),
  );
  const batch = {
    seq: 7,
    windowStartUnixMs: T0,
    windowEndUnixMs: T0 + 1,
    records: records(2),
    sources: [],
    droppedRecords: 0,
  };
  writeFileSync(join(dir, 'batches', '7.json'), JSON.stringify({ seq: 7, batch, positions: pos(20) }));
  const spool = Spool.open(dir);
  t.equal(spool.bootId, 'old-boot');
  t.same(spool.positions(), pos(20));
  const o = new Outbox({ log: silent, spool, maxBytes: 1e9, maxMessages: 1e6 });
  const out = batches(o);
  t.same(
    out.map((b) => [b.seq, b.batch?.records.length]),
    [[7, 2]],
  );
  t.ok(spool.takeSeq() >= 1001);
});

t.test('a torn state slot falls back to the other one', async (t) => {
  const dir = tempDir(t);
  const spool = Spool.open(dir);
  const o = new Outbox({ log: silent, spool, maxBytes: 1e9, maxMessages: 1e6 });
  const [a] = o.addFlowWindow(window(), pos(1));
  o.acked(a as number); // state saved again: both slots written
  const slots = readdirSync(dir).filter((n) => n.startsWith('state.'));
  t.same(slots.sort(), ['state.0', 'state.1']);
  // Tear the newest slot: the state before it is still there.
  const newest = slots
    .map((n) => ({ n, gen: JSON.parse(readFileSync(join(dir, n), 'utf8').trimEnd()).gen as number }))
    .sort((x, y) => y.gen - x.gen)[0]?.n as string;
  writeFileSync(join(dir, newest), '{"gen": 99, "sum": "x", "body": "{}"' + ' '.repeat(100));
  const again = Spool.open(dir);
  t.equal(again.bootId, spool.bootId, 'same boot id from the other slot');
});

t.test(
  'a window is cut into batches of about flowBatchTargetBytes (256 KiB) even when the aggregator takes 4 MiB; a larger record goes alone',
  async (t) => {
    const o = new Outbox({ log: silent, maxBytes: 1e9, maxMessages: 1e6 });
    o.setMaxMessageBytes(4 * 1024 * 1024);
    const big = flowToWire(
      flow({
        destinationPort: 99_999,
        source: { labels: Array.from({ length: 1500 }, (_, i) => `label-${i}=${'v'.repeat(1000)}`) },
      }),
    );
    const recs = [...records(6000), big, ...records(6000, 6000)];
    o.addFlowWindow(window(recs), pos(1));
    const out = batches(o);
    const alone = out.filter((b) => b.bytes > AGENT_DEFAULTS.outbox.flowBatchTargetBytes);
    t.same(
      alone.map((b) => b.batch?.records.map((r) => r.destinationPort)),
      [[99_999]],
      'only the record over the target makes a larger batch, alone in it',
    );
    t.ok(out.length >= 4, `${out.length} batches`);
    t.same(
      out.flatMap((b) => b.batch?.records.map((r) => r.destinationPort) ?? []),
      recs.map((r) => r.destinationPort),
      'every record once, in order',
    );
    t.equal(o.stats.droppedRecords, 0);
  },
);
