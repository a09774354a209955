import http2 from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import Database from 'better-sqlite3';
import { pino } from 'pino';
import t from 'tap';
import { AggregatorMetrics } from '../../aggregator/metrics.js';
import { DEFAULT_INGEST_OPTIONS, IngestServer } from '../../aggregator/ingest/server.js';
import { LoopbackOnly } from '../../aggregator/ingest/auth.js';
import { openStore } from '../../aggregator/store/index.js';
import { flowToWire, reportToWire } from '../../proto/convert.js';
import { agentServiceDefinition } from '../../proto/index.js';
import { flow, T0 } from '../fixtures/flows.js';
import { HELLO, rawAgentStream, startTestAggregator } from '../fixtures/aggregator.js';
import { testPostgres } from '../fixtures/postgres.js';
import { reportOf } from '../fixtures/reports.js';
import { tempDir } from '../fixtures/tmp.js';
import { until } from '../fixtures/wait.js';

// Regression tests for issue 10, defect 3: messages the aggregator can never
// store (what a newer agent sends an older aggregator) used to fail inside the
// store, end the stream with UNAVAILABLE on every retry and stall the node for
// good. Each is now a Reject, and the valid message behind it is stored.

const run = (seq: number | string, benchmark = 'cis-1.12') => ({
  benchmarkRun: { ...reportToWire(reportOf('n1', { '4.1.1': 'PASS', '4.2.1': 'FAIL' }, { benchmark }), 1), seq },
});
const batch = (seq: number | string, records = [flowToWire(flow())]) => ({
  flowBatch: { seq, windowStartUnixMs: T0, windowEndUnixMs: T0 + 15_000, records, sources: [], droppedRecords: 0 },
});

async function metric(port: number, name: string): Promise<string> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  return text
    .split('\n')
    .filter((l) => l.startsWith(name))
    .join('\n');
}

const kinds = (s: { received: { kind: string }[] }) => s.received.map((m) => m.kind);
const rejectOf = (m: unknown) => (m as { reject?: { seq: number; code: string; message: string } }).reject;

t.test(
  'values no enum of this build defines are rejected by name, and the message behind them is stored',
  async (t) => {
    const agg = await startTestAggregator(t);
    const s = rawAgentStream(agg.grpcPort);
    t.teardown(() => s.close());
    s.send(HELLO('n1'));
    const kind42 = flowToWire(flow());
    (kind42.destination as unknown as { kind: number }).kind = 42;
    s.send(batch(1, [kind42]));
    const status9 = run(2);
    (status9.benchmarkRun.checks[1] as unknown as { status: number }).status = 9;
    s.send(status9);
    const action7 = flowToWire(flow());
    (action7 as unknown as { action: number }).action = 7;
    s.send(batch(3, [action7]));
    s.send(batch(4));
    s.send(run(5));
    await s.waitFor(6);
    t.same(kinds(s), ['welcome', 'reject', 'reject', 'reject', 'ack', 'ack']);
    t.match(rejectOf(s.received[1]), {
      seq: 1,
      code: 'VERDICT_INGEST_INVALID',
      message: /records\[0\]: destination endpoint: kind 42 is not one this aggregator knows/,
    });
    t.match(rejectOf(s.received[2]), {
      seq: 2,
      code: 'VERDICT_INGEST_INVALID',
      message: /checks\[1\] \(4\.2\.1\)\.status 9 is not one this aggregator knows/,
    });
    t.match(rejectOf(s.received[3]), { seq: 3, message: /action 7/ });
    t.equal(
      (await agg.store.flowRows({ fromMs: T0 - 3600_000, toMs: T0 + 3600_000 })).length,
      1,
      'only the valid batch is stored',
    );
    t.equal((await agg.store.listNodes())[0]?.latest?.fail, 1, 'the valid run behind them is stored');
    t.match(await metric(agg.httpPort, 'verdict_ingest_rejected_total'), /reason="invalid"} 3/);
  },
);

t.test('numbers past 2^53, ports past 65535 and oversized strings are rejected, not stored', async (t) => {
  const agg = await startTestAggregator(t);
  const s = rawAgentStream(agg.grpcPort);
  t.teardown(() => s.close());
  s.send(HELLO('n1'));
  s.send(batch('18446744073709551615')); // seq 2^64-1: a JS number cannot hold it, PostgreSQL's bigint ends at 2^63-1
  s.send(batch(2, [{ ...flowToWire(flow()), connections: '9007199254740993' as unknown as number }]));
  s.send(batch(3, [{ ...flowToWire(flow()), destinationPort: 70000 }]));
  s.send(batch(4, [flowToWire(flow({ source: { labels: Array.from({ length: 300 }, (_, i) => `l${i}=x`) } }))]));
  s.send(batch(5, [flowToWire(flow({ destination: { name: 'x'.repeat(2000) } }))]));
  s.send(batch(6));
  await s.waitFor(7);
  t.same(kinds(s), ['welcome', 'reject', 'reject', 'reject', 'reject', 'reject', 'ack']);
  t.match(rejectOf(s.received[1]), { seq: 0, message: /seq 18446744073709552000 is not from 1 to 2\^53-1/ });
  t.match(rejectOf(s.received[2]), { seq: 2, message: /connections is not a whole number/ });
  t.match(rejectOf(s.received[3]), { seq: 3, message: /destination port 70000/ });
  t.match(rejectOf(s.received[4]), { seq: 4, message: /labels is not a list of at most 256/ });
  t.match(rejectOf(s.received[5]), { seq: 5, message: /destination.name is longer than 1024/ });
});

t.test(
  'seq 2^64-1 on PostgreSQL is a Reject and the stream goes on (it used to fail in the store forever)',
  async (t) => {
    const pg = await testPostgres(t);
    const agg = await startTestAggregator(t, { db: await pg.freshSchema() });
    const s = rawAgentStream(agg.grpcPort);
    t.teardown(() => s.close());
    s.send(HELLO('n1'));
    s.send(run('18446744073709551615'));
    s.send(run(1));
    await s.waitFor(3);
    t.same(kinds(s), ['welcome', 'reject', 'ack']);
    t.equal(s.error, undefined, 'the stream is not ended');
    t.equal((await agg.store.listNodes())[0]?.latest?.pass, 1);
  },
);

t.test(
  'a seq below one already stored on the stream is refused when it was never stored, acked as a duplicate when it was',
  async (t) => {
    const agg = await startTestAggregator(t);
    const s = rawAgentStream(agg.grpcPort);
    t.teardown(() => s.close());
    s.send(HELLO('n1'));
    s.send(batch(1));
    s.send(batch(5)); // 2-4 skipped (say, dropped by the agent)
    s.send(batch(3)); // was never stored: the high-water mark must not swallow it as a duplicate
    s.send(batch(5)); // a real resend
    await s.waitFor(5);
    t.same(kinds(s), ['welcome', 'ack', 'ack', 'reject', 'ack']);
    t.match(rejectOf(s.received[3]), { seq: 3, code: 'VERDICT_INGEST_OUT_OF_ORDER' });
    t.same(s.received[4], { kind: 'ack', ack: { seq: 5, duplicate: true } });
    const rows = await agg.store.flowRows({ fromMs: T0 - 3600_000, toMs: T0 + 3600_000 });
    t.equal(
      rows.reduce((n, r) => n + r.flow.connections, 0),
      2,
      'seq 1 and seq 5, each once',
    );
    t.match(await metric(agg.httpPort, 'verdict_ingest_rejected_total'), /reason="out_of_order"} 1/);
  },
);

t.test(
  'a message the store keeps refusing while it answers is rejected after three attempts; the node moves on',
  async (t) => {
    const agg = await startTestAggregator(t);
    // A real SQLite failure for one message only: a trigger that aborts runs of one benchmark.
    const db = new Database(agg.dbFile);
    db.exec(
      `CREATE TRIGGER poison BEFORE INSERT ON benchmark_runs WHEN NEW.benchmark_id = 'cis-poison' BEGIN SELECT RAISE(ABORT, 'poisoned row'); END`,
    );
    db.close();
    const outcomes: string[] = [];
    for (let attempt = 1; attempt <= 3; attempt++) {
      const s = rawAgentStream(agg.grpcPort);
      s.send(HELLO('n1'));
      s.send(run(1, 'cis-poison'));
      s.send(run(2));
      await s.waitFor(3, 5000).catch(() => undefined);
      outcomes.push(s.error ? `ended ${grpc.status[s.error.code]}` : kinds(s).join(','));
      s.close();
    }
    t.same(outcomes, ['ended UNAVAILABLE', 'ended UNAVAILABLE', 'welcome,reject,ack']);
    const node = (await agg.store.listNodes())[0];
    t.equal(node?.latest?.pass, 1, 'the valid run behind the poisoned one is stored');
    t.match(await metric(agg.httpPort, 'verdict_ingest_rejected_total'), /reason="unstorable"} 1/);
    t.match(await metric(agg.httpPort, 'verdict_ingest_store_failures_total'), /verdict_ingest_store_failures_total 2/);
  },
);

t.test('an agent that stops reading its acks does not hold its session forever', async (t) => {
  const store = await openStore(`sqlite:${tempDir(t)}/v.db`);
  const metrics = new AggregatorMetrics(store);
  const server = new IngestServer(store, metrics, new LoopbackOnly(), pino({ level: 'silent' }), {
    ...DEFAULT_INGEST_OPTIONS,
    drainTimeoutMs: 300,
  });
  const port = await server.listen('127.0.0.1:0');
  t.teardown(async () => {
    await server.close();
    await store.close();
  });
  // A raw HTTP/2 client with a tiny receive window that never reads: the server's acks back up at once.
  const def = agentServiceDefinition().Connect as grpc.MethodDefinition<Record<string, unknown>, unknown>;
  const frame = (m: Record<string, unknown>) => {
    const body = def.requestSerialize(m);
    const head = Buffer.alloc(5);
    head.writeUInt32BE(body.length, 1);
    return Buffer.concat([head, body]);
  };
  const session = http2.connect(`http://127.0.0.1:${port}`, { settings: { initialWindowSize: 256 } });
  t.teardown(() => session.destroy());
  const req = session.request({
    ':method': 'POST',
    ':path': '/verdict.v1.AgentService/Connect',
    'content-type': 'application/grpc',
    te: 'trailers',
  });
  req.pause();
  req.write(frame(HELLO('n1')));
  const resend = frame(batch(1));
  for (let i = 0; i < 5000; i++) req.write(resend);
  let trailers: http2.IncomingHttpHeaders | undefined;
  req.on('trailers', (h) => (trailers = h));
  // While the client still reads nothing: only the drain timeout can end the session and mark the node.
  await until(
    async () => (await store.listNodes())[0]?.connected === false,
    'the node marked disconnected while its client reads nothing',
    20_000,
    100,
  );
  t.equal((await store.listNodes())[0]?.connected, false, 'the node is marked disconnected');
  req.resume();
  const ended = await until(() => trailers, 'the trailers of the cancelled stream once the client reads', 20_000);
  t.match(decodeURIComponent(String(ended['grpc-message'] ?? '')), /VERDICT_INGEST_STALLED/);
});
