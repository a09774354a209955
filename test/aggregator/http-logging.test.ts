import { Writable } from 'node:stream';
import { pino } from 'pino';
import t from 'tap';
import { join } from 'node:path';
import { AGGREGATOR_DEFAULTS } from '../../aggregator/config.js';
import { startAggregator } from '../../aggregator/main.js';
import { tempDir } from '../fixtures/tmp.js';

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
  const agg = await startAggregator(
    {
      ...AGGREGATOR_DEFAULTS,
      httpAddress: '127.0.0.1:0',
      grpcAddress: '127.0.0.1:0',
      db: `sqlite:${join(tempDir(t), 'verdict.db')}`,
      logLevel: 'info',
    },
    pino({ level: 'info' }, sink),
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
  // process 'warning' events are emitted on the next tick.
  await new Promise((resolve) => setImmediate(resolve));

  t.ok(
    lines.some((l) => l.msg === 'verdict-aggregator started'),
    'the log is captured (the start line is there)',
  );
  const perRequest = lines.filter((l) =>
    /^(incoming request|request completed|request errored|Route .* not found)$/.test(l.msg ?? ''),
  );
  t.same(perRequest, [], 'no per-request line');
  t.same(
    warnings.filter((w) => /^FSTDEP/.test(w)),
    [],
    'no fastify deprecation warning',
  );
});
