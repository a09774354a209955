import fc from 'fast-check';
import { pino } from 'pino';
import t from 'tap';
import { AGENT_DEFAULTS } from '../../../agent/defaults.js';
import { Outbox } from '../../../agent/transport/outbox.js';
import { Spool } from '../../../agent/transport/spool.js';
import type { FlowRecord } from '../../../common/flow.js';
import { flowToWire } from '../../../proto/convert.js';
import type { WireFlowBatch } from '../../../proto/index.js';
import { flow, T0 } from '../../fixtures/flows.js';
import { fuzzParams } from '../../fixtures/fuzz.js';
import { decodeAgentMessage } from '../../fixtures/outbox.js';
import { tempDir } from '../../fixtures/tmp.js';

const silent = pino({ level: 'silent' });
const TARGET = AGENT_DEFAULTS.outbox.flowBatchTargetBytes;

/** A record of about `bytes` (its labels), told apart by its destination port. */
const record = (port: number, bytes: number): FlowRecord =>
  flow({
    destinationPort: port,
    source: {
      labels: bytes < 100 ? ['app=a'] : Array.from({ length: 10 }, (_, i) => `l${i}=${'v'.repeat(bytes / 10)}`),
    },
  });

// Small records, records near the target (flowBatchTargetBytes), and records over a 4 MiB or 64 KiB limit.
const sizes = fc.array(fc.constantFrom(10, 10, 10, 2_000, 40_000, 300_000, 1_100_000, 4_300_000), { maxLength: 30 });

t.test(
  'any window, message limit and partly acked reconnect or restart: every record stored once or counted dropped',
  async (t) => {
    const dir = tempDir(t);
    let run = 0;
    fc.assert(
      fc.property(
        fc.array(sizes, { minLength: 1, maxLength: 3 }),
        fc.constantFrom(64 * 1024, 4 * 1024 * 1024),
        fc.nat(),
        fc.boolean(),
        (windows, limit, ackAt, restart) => {
          const spool = Spool.open(`${dir}/${run++}`);
          let o = new Outbox({ log: silent, spool, maxBytes: 1e10, maxMessages: 1e6 });
          o.setMaxMessageBytes(limit);
          let port = 1;
          const sent: number[] = [];
          for (const w of windows) {
            const recs = w.map((b) => record(port++, b));
            o.addFlowWindow(
              { windowStartUnixMs: T0, windowEndUnixMs: T0 + 15_000, records: recs, sources: [], droppedRecords: 0 },
              undefined,
              flowToWire,
            );
            sent.push(...recs.map((r) => r.destinationPort));
          }
          const first = [...o.after(0)];
          for (const e of first) {
            if (e.bytes.length > limit) return false;
            if (e.records > 1 && e.bytes.length > Math.min(limit, TARGET)) return false;
          }
          // The aggregator stored a prefix (its Welcome says up to which seq), then the agent reconnects or restarts.
          const stored = first.slice(0, ackAt % (first.length + 1));
          const lastStored = stored.at(-1)?.seq ?? 0;
          if (restart) {
            o = new Outbox({ log: silent, spool: Spool.open(`${dir}/${run - 1}`), maxBytes: 1e10, maxMessages: 1e6 });
            o.setMaxMessageBytes(limit);
          }
          o.acked(lastStored);
          const resent = [...o.after(lastStored)];
          // An empty window after: it tells what was dropped and not told yet.
          o.addFlowWindow(
            { windowStartUnixMs: T0, windowEndUnixMs: T0, records: [], sources: [], droppedRecords: 0 },
            undefined,
            flowToWire,
          );
          const last = [...o.after(resent.at(-1)?.seq ?? lastStored)];
          const got = [...stored, ...resent, ...last].map(
            (e) => decodeAgentMessage(e.bytes).flowBatch as WireFlowBatch,
          );
          const ports = got.flatMap((b) => b.records.map((r) => r.destinationPort));
          const told = got.reduce((n, b) => n + b.droppedRecords, 0);
          const tooBig = sent.filter((_, i) => windows.flat()[i]! > limit - 1000);
          return (
            JSON.stringify(ports) === JSON.stringify(sent.filter((p) => !tooBig.includes(p))) && told === tooBig.length
          );
        },
      ),
      fuzzParams(40, 20261205),
    );
  },
);

t.test('a record dropped as too large after its window’s first batch is still told after a restart', async (t) => {
  const dir = tempDir(t);
  const o = new Outbox({ log: silent, spool: Spool.open(dir), maxBytes: 1e10, maxMessages: 1e6 });
  o.setMaxMessageBytes(64 * 1024);
  const recs = [record(1, 10), record(2, 300_000)];
  o.addFlowWindow(
    { windowStartUnixMs: T0, windowEndUnixMs: T0 + 15_000, records: recs, sources: [], droppedRecords: 0 },
    undefined,
    flowToWire,
  );
  t.equal(o.stats.droppedRecords, 1);
  // The agent stops before any Ack: the next run tells the drop with its first batch.
  const again = new Outbox({ log: silent, spool: Spool.open(dir), maxBytes: 1e10, maxMessages: 1e6 });
  const seqs = again.addFlowWindow(
    { windowStartUnixMs: T0, windowEndUnixMs: T0, records: [], sources: [], droppedRecords: 0 },
    undefined,
    flowToWire,
  );
  const told = [...again.after(0)].map((e) => (decodeAgentMessage(e.bytes).flowBatch as WireFlowBatch).droppedRecords);
  t.equal(told.length, 1 + seqs.length, 'the spooled batch and the new one');
  t.same(told, [0, 1]);
});
