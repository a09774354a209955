import { mkdirSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { join } from 'node:path';
import fc from 'fast-check';
import t from 'tap';
import { startTestAggregator } from '../fixtures/aggregator.js';
import { flow } from '../fixtures/flows.js';
import { reportOf } from '../fixtures/reports.js';
import { tempDir } from '../fixtures/tmp.js';
import { fuzzParams } from '../fixtures/fuzz.js';
import { servedRoutes } from '../fixtures/routes.js';
import { helloFields } from '../fixtures/node-hello.js';

// Property: whatever a client puts in the query string or the path parameters of
// any GET route (random and unicode strings, huge, negative and non-finite
// numbers, odd dates, raw and broken percent-escapes, repeated keys, array
// syntax, prototype names), the answer is never a 5xx, every 4xx carries a
// VERDICT_ code and a message, and the server keeps answering /healthz.
// Fixed seed: a failure here reproduces exactly.
const RUNS = fuzzParams(200);

const REPORT = `apiVersion: compliance.verdict.dev/v1
kind: GlobalReport
metadata: {name: weekly-cis}
spec:
  reportType: cis-benchmark
`;

/**
 * Percent-encode everything but RFC 3986 unreserved characters (lone surrogates become U+FFFD, as in any UTF-8 client).
 */
const encode = (s: string) =>
  [...Buffer.from(s, 'utf8')]
    .map((b) =>
      /[A-Za-z0-9._~-]/.test(String.fromCharCode(b))
        ? String.fromCharCode(b)
        : `%${b.toString(16).toUpperCase().padStart(2, '0')}`,
    )
    .join('');
/** Leave printable ASCII as it is (so "%zz" and "&" arrive raw); encode only what Node's client refuses to send. */
const sendable = (s: string) => s.replace(/[^\x21-\x7e]/gu, (c) => encode(c));

interface Reply {
  status: number;
  text: string;
}

function get(port: number, agent: Agent, path: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent, timeout: 10_000 }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within 10 s for ${path}`)));
    req.on('error', reject);
    req.end();
  });
}

t.test(
  'no query or path parameter on any GET route gets a 5xx; every 4xx has a VERDICT_ code and a message; /healthz keeps answering',
  async (t) => {
    const dir = tempDir(t);
    mkdirSync(join(dir, 'reports'));
    writeFileSync(join(dir, 'reports', 'weekly-cis.yaml'), REPORT);
    const agg = await startTestAggregator(t, { reportsDir: join(dir, 'reports') });
    const hello = helloFields({ kubeletVersion: 'v1.32.1', agentVersion: '0.1.0' });
    await agg.store.recordHello({ name: 'n1', ...hello }, Date.now());
    await agg.store.recordBenchmarkRun('n1', 'b', 1, reportOf('n1', { '4.1.1': 'PASS', '4.2.1': 'FAIL' }), Date.now());
    await agg.store.recordFlowBatch(
      'n1',
      'b',
      2,
      [flow({ startMs: Date.now() - 120_000, endMs: Date.now() - 60_000 })],
      Date.now(),
    );
    const def = agg.registry.get('weekly-cis');
    if (!def) throw new Error('the weekly-cis report did not load');
    const run = await agg.scheduler.runNow(def, Date.now() - 86_400_000, Date.now() - 3_600_000);
    await agg.scheduler.tick();
    await agg.scheduler.idle();

    const routes = servedRoutes(agg.app.printRoutes({ commonPrefix: false }))
      .filter((r) => r.startsWith('GET '))
      .map((r) => r.slice('GET '.length));
    t.ok(
      [
        '/healthz',
        '/readyz',
        '/metrics',
        '/api/v1/nodes',
        '/api/v1/nodes/:name/cis',
        '/api/v1/cis/summary',
        '/api/v1/flows',
        '/api/v1/network-access',
        '/api/v1/reports',
        '/api/v1/reports/:name/runs',
        '/api/v1/reports/:name/runs/:id',
        '/api/v1/tamper-alerts',
        '/docs',
        '/docs/json',
      ].every((r) => routes.includes(r)),
      `every GET route is found (${routes.join(' ')})`,
    );

    // Parameter names each route declares (OpenAPI document), so the generator also sends the ones the handlers read.
    const doc = agg.app.swagger() as {
      paths?: Record<string, { get?: { parameters?: { in: string; name: string }[] } }>;
    };
    const queryNames = (route: string) =>
      (doc.paths?.[route.replace(/:(\w+)/g, '{$1}')]?.get?.parameters ?? [])
        .filter((p) => p.in === 'query')
        .map((p) => p.name);

    const special = fc.constantFrom(
      '',
      'NaN',
      'Infinity',
      '-Infinity',
      '-0',
      '1e309',
      '-1e309',
      '0x10',
      '1_000',
      '9007199254740993',
      '-9007199254740993',
      '4294967296',
      '-1',
      '0',
      'null',
      'undefined',
      'true',
      '[]',
      '{}',
      '__proto__',
      'constructor',
      'prototype',
      'hasOwnProperty',
      '..',
      '.',
      '../../etc/passwd',
      'csv',
      'json',
      'allow',
      'deny',
      'x.csv',
      'node-summary.csv',
      'all-tests.csv',
      'weekly-cis',
      'n1',
      'shop/frontend',
      run.id,
      '0000-01-01T00:00:00Z',
      '9999-12-31T23:59:59Z',
      '+275760-09-13T00:00:00.000Z',
      '-271821-04-20T00:00:00.000Z',
      '2026-02-30T00:00:00Z',
      '2026-11-30T23:59:60Z',
      '2026-11-30T00:00:00+25:00',
      '1970-01-01T00:00:00Z',
      '2026-11-30T00:00:00.123456789Z',
      '2026-11-30',
    );
    const rawPiece = fc.constantFrom(
      '%',
      '%2',
      '%zz',
      '%00',
      '%FF',
      '%C0%AF',
      '%E2%80%AE',
      '%2F',
      '%25',
      '%u0041',
      '%%',
      '%0A',
      '%0D%0A',
      '%2e%2e',
      '+',
      '&',
      '=',
      ';',
      '#',
      '[',
      ']',
      '{',
      '}',
      '|',
      '\\',
      '^',
      '`',
      '"',
      "'",
      '<',
      '>',
      '?',
      '/',
    );
    const value = fc.oneof(
      fc.string().map(encode),
      fc.string({ unit: 'grapheme' }).map(encode),
      fc.string({ unit: 'binary' }).map(encode),
      fc.bigInt({ min: -(10n ** 40n), max: 10n ** 40n }).map(String),
      fc.integer().map(String),
      fc.double().map((d) => encode(String(d))),
      fc.date({ noInvalidDate: true }).map((d) => encode(d.toISOString())),
      special.map(encode),
      special.map(sendable),
      fc.array(fc.oneof(rawPiece, fc.string(), special), { maxLength: 6 }).map((parts) => sendable(parts.join(''))),
      fc.string({ minLength: 200, maxLength: 2000 }).map(encode),
    );
    const key = (names: string[]) =>
      fc.oneof(
        ...(names.length ? [{ arbitrary: fc.constantFrom(...names), weight: 4 }] : []),
        { arbitrary: fc.string({ maxLength: 12 }).map(encode), weight: 1 },
        {
          arbitrary: fc.constantFrom('__proto__', 'constructor', 'toString', ...names).map((k) => `${k}[]`),
          weight: 1,
        },
        { arbitrary: fc.constantFrom('__proto__[x]', 'a[0]', 'a[b][c]', ...names.map((n) => `${n}[0]`)), weight: 1 },
      );
    // Values a handler accepts, or nearly: so requests get past the schema and into the handlers and the store.
    const plausible = fc.oneof(
      special.map(encode),
      fc.integer({ min: -5, max: 20_000 }).map(String),
      fc.integer({ min: -400, max: 400 }).map((d) => encode(new Date(Date.now() + d * 86_400_000).toISOString())),
    );
    const query = (names: string[]) =>
      fc.oneof(
        {
          arbitrary: fc
            .subarray(names)
            .chain((chosen) => fc.tuple(...chosen.map((n) => plausible.map((v) => `${n}=${v}`))))
            .map((pairs) => pairs.join('&')),
          weight: 3,
        },
        {
          arbitrary: fc
            .array(fc.tuple(key(names), value), { maxLength: 6 })
            .map((pairs) => pairs.map(([k, v]) => `${k}=${v}`).join('&')),
          weight: 2,
        },
        // The same parameter more than once (an array to the parser).
        {
          arbitrary: fc
            .tuple(key(names), fc.array(value, { minLength: 2, maxLength: 4 }))
            .map(([k, vs]) => vs.map((v) => `${k}=${v}`).join('&')),
          weight: 1,
        },
        {
          arbitrary: fc
            .array(fc.oneof(rawPiece, key(names), value), { maxLength: 8 })
            .map((parts) => sendable(parts.join(''))),
          weight: 1,
        },
      );
    // A path parameter: junk, edge cases, or a value that exists (so the deeper handler code runs too).
    const existing: Record<string, string[]> = { name: ['n1', 'weekly-cis'], id: [run.id] };
    const pathValue = (param: string) =>
      fc.oneof(
        {
          arbitrary: value.filter((v) => v.length > 0 && !v.includes('/') && !v.includes('?') && !v.includes('#')),
          weight: 2,
        },
        { arbitrary: fc.constantFrom('%2F', '..', '.', '%2e%2e', 'a'.repeat(253), 'a'.repeat(254)), weight: 1 },
        { arbitrary: fc.constantFrom(...(existing[param] ?? ['x'])), weight: 4 },
      );

    const agent = new Agent({ keepAlive: true, maxSockets: 2 });
    t.teardown(() => agent.destroy());
    let requests = 0;
    for (const route of routes) {
      const names = queryNames(route);
      const params = [...route.matchAll(/:(\w+)/g)].map((m) => m[1] as string);
      await fc.assert(
        fc.asyncProperty(fc.tuple(...params.map(pathValue)), query(names), async (pathValues, qs) => {
          let i = 0;
          const path = `${route.replace(/:(\w+)/g, () => pathValues[i++] as string)}?${qs}`;
          const res = await get(agg.httpPort, agent, path);
          requests++;
          if (res.status >= 500) throw new Error(`GET ${path} answered ${res.status}: ${res.text.slice(0, 300)}`);
          if (res.status >= 400) {
            const body = JSON.parse(res.text) as { error?: unknown; message?: unknown };
            if (typeof body.error !== 'string' || !/^VERDICT_[A-Z_]+$/.test(body.error))
              throw new Error(`GET ${path} answered ${res.status} without a VERDICT_ code: ${res.text.slice(0, 300)}`);
            if (typeof body.message !== 'string' || body.message.length === 0)
              throw new Error(`GET ${path} answered ${res.status} without a message: ${res.text.slice(0, 300)}`);
          }
          const health = await get(agg.httpPort, agent, '/healthz');
          if (health.status !== 200) throw new Error(`/healthz answered ${health.status} after GET ${path}`);
        }),
        RUNS,
      );
      t.pass(`GET ${route}: ${RUNS.numRuns} generated requests, no 5xx, every 4xx with a code and message`);
    }
    t.equal(requests, routes.length * RUNS.numRuns);
    t.equal((await get(agg.httpPort, agent, '/healthz')).status, 200, 'the server still answers at the end');
  },
);

// Found by the property above: RFC 3339 allows a leap second, the schema's
// date-time format passes it, and Date.parse cannot read it.
t.test('a leap second in from, to or at is a 400 with a message, not a 500', async (t) => {
  const agg = await startTestAggregator(t);
  for (const path of [
    '/api/v1/flows?to=2026-12-31T23:59:60Z',
    '/api/v1/network-access?from=2026-12-31T23:59:60Z',
    '/api/v1/tamper-alerts?to=2026-12-31T23:59:60Z',
    '/api/v1/nodes/n1/cis?at=2016-12-31T23:59:60Z',
  ]) {
    const res = await fetch(`http://127.0.0.1:${agg.httpPort}${path}`);
    t.equal(res.status, 400, path);
    t.match(
      await res.json(),
      {
        error: 'VERDICT_BAD_REQUEST',
        message: /is not a time Verdict can read; give an ISO-8601 time like 2026-11-01T10:00:00Z \(no leap second\)/,
      },
      path,
    );
  }
});
