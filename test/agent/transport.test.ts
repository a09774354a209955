import { createServer } from 'node:net';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import t from 'tap';
import { startAggregator } from '../../aggregator/main.js';
import { AGGREGATOR_DEFAULTS } from '../../aggregator/config.js';
import { AgentStream } from '../../agent/transport/stream.js';
import { reportToWire } from '../../proto/convert.js';
import { reportOf } from '../fixtures/reports.js';
import { tempDir } from '../fixtures/tmp.js';
import { agentHello } from '../fixtures/agent-hello.js';

const silent = pino({ level: 'silent' });

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

function agentStream(port: number, opts: Partial<ConstructorParameters<typeof AgentStream>[0]> = {}) {
  return new AgentStream({
    address: `127.0.0.1:${port}`,
    credentials: grpc.credentials.createInsecure(),
    metadata: () => new grpc.Metadata(),
    hello: () => agentHello(),
    log: silent,
    maxUnacked: 100,
    minBackoffMs: 50,
    maxBackoffMs: 200,
    ...opts,
  });
}

const startAt = (port: number, db: string, maxMessageBytes = 4 * 1024 * 1024) =>
  startAggregator(
    {
      ...AGGREGATOR_DEFAULTS,
      httpAddress: '127.0.0.1:0',
      grpcAddress: `127.0.0.1:${port}`,
      db: `sqlite:${db}`,
      maxMessageBytes,
      logLevel: 'silent',
    },
    silent,
  );

const runMsg = (startedAt: string) => (seq: number) => ({
  kind: 'benchmarkRun' as const,
  benchmarkRun: reportToWire(reportOf('n1', { '4.1.1': 'PASS' }, { startedAt }), seq),
});

t.test(
  'messages queued while the aggregator is down are sent after it comes up, then again after a restart nothing is lost or doubled',
  async (t) => {
    const port = await freePort();
    const db = join(tempDir(t), 'v.db');
    const stream = agentStream(port);
    t.teardown(() => stream.stop());
    stream.start();
    stream.send(runMsg('2026-11-01T00:00:01Z'));
    stream.send(runMsg('2026-11-01T00:00:02Z'));
    t.equal(stream.unacked, 2, 'kept while nobody listens');

    let agg = await startAt(port, db);
    await stream.flushed();
    t.equal(stream.unacked, 0);
    t.equal((await agg.store.nodeReport('n1'))?.startedAt, '2026-11-01T00:00:02.000Z');

    await agg.close();
    stream.send(runMsg('2026-11-01T00:00:03Z'));
    agg = await startAt(port, db);
    t.teardown(() => agg.close());
    await stream.flushed();
    t.equal((await agg.store.nodeReport('n1'))?.startedAt, '2026-11-01T00:00:03.000Z');
    t.equal(stream.stats.duplicates, 0);
    t.ok(stream.stats.reconnects >= 1);
    const runs = await (await fetch(`http://127.0.0.1:${agg.httpPort}/metrics`)).text();
    t.match(runs, /verdict_ingest_duplicates_total 0/);
  },
);

t.test('a message the aggregator rejects is dropped and counted, and later ones still flow', async (t) => {
  const port = await freePort();
  const agg = await startAt(port, join(tempDir(t), 'v.db'), 2048);
  t.teardown(() => agg.close());
  const stream = agentStream(port);
  t.teardown(() => stream.stop());
  stream.start();
  stream.send((seq) => {
    const m = runMsg('2026-11-01T00:00:01Z')(seq);
    m.benchmarkRun.checks[0]!.evidence = 'x'.repeat(5000);
    return m;
  });
  stream.send(runMsg('2026-11-01T00:00:02Z'));
  await stream.flushed();
  t.equal(stream.stats.rejected, 1);
  t.equal((await agg.store.nodeReport('n1'))?.startedAt, '2026-11-01T00:00:02.000Z');
});

t.test('when the outbox is full the oldest message is dropped and counted', async (t) => {
  const stream = agentStream(await freePort(), { maxUnacked: 2 });
  t.teardown(() => stream.stop());
  for (let i = 1; i <= 5; i++) stream.send(runMsg(`2026-11-01T00:00:0${i}Z`));
  t.equal(stream.unacked, 2);
  t.equal(stream.outbox.stats.dropped, 3);
});
