import { Writable } from 'node:stream';
import { pino } from 'pino';
import t from 'tap';
import { join } from 'node:path';
import { AGGREGATOR_DEFAULTS } from '../../aggregator/config.js';
import { startAggregator } from '../../aggregator/main.js';
import { tempDir } from '../fixtures/tmp.js';
import { until } from '../fixtures/wait.js';

// The HTTP API logs no line per request (probes and scrapes would fill the
// log), and says so to fastify without its deprecated top-level
// disableRequestLogging option, which warns FSTDEP023 at every start.

t.test('HTTP requests, answered or refused, log no per-request line, and the start warns no deprecation', async (t) => {
  const warnings: string[] = [];
  const onWarning = (w: Error & { code?: string }) => warnings.push(`${w.code ?? w.name}: ${w.message}`);
  process.on('warning', onWarning);
  t.teardown(() => process.off('warning', onWarning));

  const lines: { msg?: string }[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split('\n')) if (l !== '') lines.push(JSON.parse(l) as { msg?: string });
      done();
    },
  });
  const log = pino({ level: 'info' }, sink);
  const agg = await startAggregator(
    {
      ...AGGREGATOR_DEFAULTS,
      httpAddress: '127.0.0.1:0',
      grpcAddress: '127.0.0.1:0',
      db: `sqlite:${join(tempDir(t), 'verdict.db')}`,
      logLevel: 'info',
    },
    log,
  );
  t.teardown(() => agg.close());
  const base = `http://127.0.0.1:${agg.httpPort}`;
  const answers = [
    await fetch(`${base}/healthz`),
    await fetch(`${base}/api/v1/nope`),
    await fetch(`${base}/api/v1/flows?limit=lots`),
    await fetch(`${base}/metrics`),
  ];
  t.same(
    answers.map((r) => r.status),
    [200, 404, 400, 200],
    'answered, not found, refused, scraped',
  );
  await Promise.all(answers.map((r) => r.text()));
  // Stopping the aggregator waits for its HTTP server to close, so every response has finished and any
  // per-request line ("request completed" comes at the response's end) has been written. Then markers,
  // one in the log and one as a process warning (emitted on a later tick, in order): what the checks
  // below look at is everything that came before them, not what happened to arrive within one tick.
  await agg.close();
  log.info('test marker: the requests are done');
  process.emitWarning('the requests are done', { code: 'VERDICT_TEST_MARKER' });
  const logged = await until(() => {
    const i = lines.findIndex((l) => l.msg === 'test marker: the requests are done');
    return i < 0 ? undefined : lines.slice(0, i);
  }, 'the log marker to be written');
  const warned = await until(() => {
    const i = warnings.findIndex((w) => w.startsWith('VERDICT_TEST_MARKER:'));
    return i < 0 ? undefined : warnings.slice(0, i);
  }, 'the marker warning to be emitted');

  t.ok(
    logged.some((l) => l.msg === 'verdict-aggregator started'),
    'the log is captured (the start line is there)',
  );
  const perRequest = logged.filter((l) =>
    /^(incoming request|request completed|request errored|Route .* not found)$/.test(l.msg ?? ''),
  );
  t.same(perRequest, [], 'no per-request line');
  t.same(
    warned.filter((w) => /^FSTDEP/.test(w)),
    [],
    'no fastify deprecation warning',
  );
});
