import { spawnSync } from 'node:child_process';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import t, { type Test } from 'tap';
import type { AggregatorConfig } from '../../aggregator/config.js';
import { decodeInSlices } from '../../aggregator/ingest/sliced-decode.js';
import { SqliteStore } from '../../aggregator/store/sqlite.js';
import { TimeSlice } from '../../common/time-slice.js';
import { flowToWire } from '../../proto/convert.js';
import { agentServiceDefinition, type WireAgentMessage } from '../../proto/index.js';
import { HELLO, rawAgentStream, startTestAggregator } from '../fixtures/aggregator.js';
import { flow, T0 } from '../fixtures/flows.js';
import { testPostgres } from '../fixtures/postgres.js';
import { tempDir } from '../fixtures/tmp.js';
import { helloFields } from '../fixtures/node-hello.js';

// Issue 10, defect 10: one FlowBatch near the 4 MiB message limit, of many tiny
// flows, used to hold the aggregator's event loop for seconds while it was
// decoded, checked and written in one synchronous SQLite transaction: /healthz
// went unanswered (a liveness probe would restart the pod) and every other
// agent's acks waited.

const RECORDS = 90_000;
/**
 * The longest the event loop may be held while the batch is handled, ms: far
 * below any probe timeout, and far below the 3.3 s one synchronous transaction
 * took. Measured here at ~100 ms alone and up to ~390 ms with a full test run
 * on the same 2 cores (garbage collection, other processes): the bound leaves
 * room for a loaded CI machine without letting the old behaviour pass.
 */
const MAX_STALL_MS = 1000;

const connect = agentServiceDefinition().Connect as {
  requestSerialize: (m: unknown) => Buffer;
  requestDeserialize: (b: Buffer) => WireAgentMessage;
};
const encode = connect.requestSerialize;
const decode = connect.requestDeserialize;

/**
 * `n` small flow records, each its own flow key (so nothing merges: the worst
 * case for the store), about 44 bytes each on the wire: one-letter names, no
 * labels, no policies, ports below 16384 (a 2-byte varint); fields left at
 * their defaults are not sent, and the aggregator fills them in.
 */
function tinyRecords(n: number): Record<string, unknown>[] {
  const names = 'abcdef';
  return Array.from({ length: n }, (_, i) => ({
    source: { kind: 'ENDPOINT_KIND_POD', name: names[i % names.length] as string },
    destination: { kind: 'ENDPOINT_KIND_POD', name: 'b' },
    protocol: 'tcp',
    destinationPort: 1 + Math.floor(i / names.length),
    action: 'FLOW_ACTION_ALLOW',
    reporter: 'FLOW_REPORTER_SOURCE',
    connections: 1,
    startUnixMs: T0 + 1000,
    endUnixMs: T0 + 2000,
  }));
}

/** Both stores: SQLite writes synchronously on the event loop; PostgreSQL's driver builds each query's text on it. */
const stores: [string, (t: Test) => Promise<Partial<AggregatorConfig>>][] = [
  ['SQLite', async () => ({})],
  ['PostgreSQL', async (t) => ({ db: await (await testPostgres(t)).freshSchema() })],
];

for (const [store, config] of stores) {
  t.test(
    `${store}: a 90,000-record flow batch is stored exactly once without holding the event loop; /healthz answers meanwhile`,
    async (t) => {
      const agg = await startTestAggregator(t, await config(t));
      const s = rawAgentStream(agg.grpcPort);
      t.teardown(() => s.close());
      s.send(HELLO('n1'));
      await s.waitFor(1);

      // Encoded before measuring: the client shares this process's event loop.
      const message = encode({
        flowBatch: {
          seq: 1,
          windowStartUnixMs: T0,
          windowEndUnixMs: T0 + 15_000,
          records: tinyRecords(RECORDS),
          sources: [],
          droppedRecords: 0,
        },
      });
      t.ok(message.length < 4 * 1024 * 1024, `the batch (${message.length} bytes) is under the 4 MiB message limit`);

      const delay = monitorEventLoopDelay({ resolution: 10 });
      let stored = false;
      let healthyDuringStore = 0;
      let slowestHealthMs = 0;
      const probe = (async () => {
        while (!stored) {
          const sent = performance.now();
          const res = await fetch(`http://127.0.0.1:${agg.httpPort}/healthz`);
          await res.text();
          slowestHealthMs = Math.max(slowestHealthMs, performance.now() - sent);
          if (res.status === 200 && !stored) healthyDuringStore++;
          // A probe period, as a kubelet's liveness probe has: it only sets how often /healthz is asked while the
          // batch is handled (which takes seconds). Nothing waits on it: the loop ends at the ack, and each answer's
          // delay is measured from its own request. Probing back to back instead asked 5 times as often on
          // PostgreSQL (up to 1,800 requests) in this same process, load that the stall bound above would measure.
          await new Promise((r) => setTimeout(r, 20));
        }
      })();
      delay.enable();
      s.sendRaw(message);
      await s.waitFor(2, 120_000);
      stored = true;
      delay.disable();
      await probe;

      t.same(s.received[1], { kind: 'ack', ack: { seq: 1, duplicate: false } }, 'acked once stored');
      const worstMs = delay.max / 1e6;
      t.ok(
        worstMs < MAX_STALL_MS,
        `the event loop was never held ${MAX_STALL_MS} ms or more (worst ${worstMs.toFixed(0)} ms, mean ${(delay.mean / 1e6).toFixed(1)} ms)`,
      );
      t.ok(healthyDuringStore >= 2, `/healthz answered while the batch was stored (${healthyDuringStore} times)`);
      t.ok(
        slowestHealthMs < 2 * MAX_STALL_MS,
        `each /healthz answer came within ${2 * MAX_STALL_MS} ms (slowest ${slowestHealthMs.toFixed(0)} ms)`,
      );

      const rows = await agg.store.flowRows({ fromMs: T0 - 3_600_000, toMs: T0 + 3_600_000 });
      t.equal(rows.length, RECORDS, 'one row per flow key');
      t.equal(
        rows.reduce((sum, r) => sum + r.flow.connections, 0),
        RECORDS,
        'every record stored exactly once',
      );
    },
  );
}

/** A FlowBatch's own bytes (its fields), from an encoded AgentMessage holding only it. */
function batchFields(message: Buffer): Buffer {
  let at = 1; // the flow_batch tag
  while ((message[at++] as number) & 0x80); // its length
  return message.subarray(at);
}
/** An AgentMessage holding a FlowBatch of these fields (field 3, length-delimited). */
const asMessage = (fields: Buffer) => Buffer.concat([Buffer.from([0x1a]), varint(fields.length), fields]);
function varint(n: number): Buffer {
  const bytes: number[] = [];
  for (; n >= 0x80; n = Math.floor(n / 0x80)) bytes.push((n & 0x7f) | 0x80);
  return Buffer.from([...bytes, n]);
}

t.test('a message decoded in slices is what the one-step decoder makes of it, errors included', async (t) => {
  const records = Array.from({ length: 3000 }, (_, i) =>
    flowToWire(flow({ destinationPort: i, connections: i + 1, source: { labels: [`n=${i}`, 'tier=web'] } })),
  );
  const batch = (seq: number, extra: Record<string, unknown>) =>
    encode({ flowBatch: { seq, windowStartUnixMs: T0, windowEndUnixMs: T0 + 15_000, ...extra } });
  const large = batch(7, { records, sources: [{ source: 'calico:/x', malformed: 2, lost: 1 }], droppedRecords: 3 });
  // Protobuf merges concatenated messages: repeated fields append, a scalar's last value wins.
  const merged = asMessage(
    Buffer.concat([
      batchFields(batch(1, { sources: [{ source: 'a', malformed: 0, lost: 0 }] })),
      batchFields(batch(2, { records: records.slice(0, 1500) })),
      batchFields(batch(3, { sources: [{ source: 'b', malformed: 1, lost: 0 }], droppedRecords: 9 })),
      batchFields(batch(4, { records: records.slice(1500) })),
    ]),
  );
  // field 20, varint 5
  const unknownField = asMessage(Buffer.concat([batchFields(large), Buffer.from([0xa0, 0x01, 0x05])]));
  const cases: [string, Buffer][] = [
    ['a large batch', large],
    ['batches concatenated, records and other fields interleaved', merged],
    ['a field this build does not know', unknownField],
    ['a Hello', encode(HELLO('n1'))],
    [
      'two FlowBatch fields in one message',
      Buffer.concat([batch(1, { records: records.slice(0, 10) }), batch(2, { records: records.slice(10, 20) })]),
    ],
    ['an empty FlowBatch', encode({ flowBatch: {} })],
    ['a cut-off message', large.subarray(0, large.length - 100)],
    [
      'a record with a wire type protobuf does not define',
      asMessage(Buffer.concat([batchFields(large), Buffer.from([0x22, 0x01, 0x07])])),
    ],
  ];
  for (const [name, buf] of cases) {
    let want: unknown;
    try {
      want = decode(buf);
    } catch (err) {
      want = { threw: true };
      t.comment(`${name}: ${(err as Error).message}`);
    }
    // A zero-ms slice gives the event loop a turn between every two steps.
    const got = await decodeInSlices(buf, decode, new TimeSlice(0)).catch(() => ({ threw: true }));
    t.strictSame(got, want, name);
  }
  t.equal(
    (decode(large) as { flowBatch: { records: unknown[] } }).flowBatch.records.length,
    3000,
    'the large case is what it says',
  );
});

t.test(
  'SQLite: a process killed part-way through a batch leaves none of it stored and its seq unrecorded',
  async (t) => {
    const file = join(tempDir(t), 'verdict.db');
    const child = fileURLToPath(new URL('../fixtures/sqlite-batch-killed.ts', import.meta.url));
    const run = spawnSync(process.execPath, [...process.execArgv, child, file, '20000'], {
      encoding: 'utf8',
      timeout: 120_000,
    });
    t.equal(run.signal, 'SIGKILL', `killed inside the batch's transaction ${run.stdout}${run.stderr}`);
    t.ok(statSync(`${file}-wal`).size > 1024 * 1024, 'pages of the uncommitted batch had reached the WAL');

    const store = SqliteStore.open(file);
    t.teardown(() => store.close());
    t.same(await store.flowRows({ fromMs: 0, toMs: Number.MAX_SAFE_INTEGER }), [], 'no row of the batch');
    t.same(
      await store.recordHello({ name: 'n1', ...helloFields({ bootId: 'b1' }) }, T0),
      { lastStoredSeq: 0 },
      'its seq is not recorded',
    );
    const resent = Array.from({ length: 20000 }, (_, i) => flow({ destinationPort: i + 1 }));
    t.same(await store.recordFlowBatch('n1', 'b1', 1, resent, T0), { duplicate: false }, 'the resend is stored');
    t.equal((await store.flowRows({ fromMs: 0, toMs: Number.MAX_SAFE_INTEGER })).length, 20000, 'all of it');
  },
);
