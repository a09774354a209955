import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { startTestAggregator } from '../fixtures/aggregator.js';
import { tempDir } from '../fixtures/tmp.js';

// ajv (coerceTypes) turns a query value such as "Infinity" or "1e400" into a number and then skips `minimum` and
// `maximum` for it, as they compare finite numbers only: `?limit=Infinity` passed the schema and reached the store,
// where SQLite answered "datatype mismatch" (a 500 on /api/v1/flows and a report's runs), and `?highThreshold=1e400`
// passed a maximum of 100. Every numeric query parameter of every route refuses a non-finite number with a 400.

const REPORT = `apiVersion: compliance.verdict.dev/v1
kind: GlobalReport
metadata: {name: weekly-cis}
spec:
  reportType: cis-benchmark
`;

const NON_FINITE = ['Infinity', '-Infinity', '1e400', '-1e400', '%2B1e999'];

t.test('a non-finite number in any numeric query parameter is a 400 naming it, never a 5xx or a pass', async (t) => {
  const dir = tempDir(t);
  mkdirSync(join(dir, 'reports'));
  writeFileSync(join(dir, 'reports', 'weekly-cis.yaml'), REPORT);
  const agg = await startTestAggregator(t, { reportsDir: join(dir, 'reports') });
  const base = `http://127.0.0.1:${agg.httpPort}`;
  const params: [string, string][] = [
    ['/api/v1/nodes', 'limit'],
    ['/api/v1/nodes', 'offset'],
    ['/api/v1/nodes/n1/history', 'limit'],
    ['/api/v1/cis/summary', 'highThreshold'],
    ['/api/v1/cis/summary', 'medThreshold'],
    ['/api/v1/flows', 'limit'],
    ['/api/v1/network-access', 'limit'],
    ['/api/v1/reports/weekly-cis/runs', 'limit'],
  ];
  for (const [route, name] of params)
    for (const value of NON_FINITE) {
      const res = await fetch(`${base}${route}?${name}=${value}`);
      const body = (await res.json()) as { error?: string; message?: string };
      t.equal(
        res.status,
        400,
        `${route}?${name}=${value}: 400 (got ${res.status} ${JSON.stringify(body).slice(0, 120)})`,
      );
      t.equal(body.error, 'VERDICT_BAD_REQUEST', `${route}?${name}=${value}: VERDICT_BAD_REQUEST`);
      t.match(body.message, new RegExp(`${name}.*finite`), `${route}?${name}=${value}: the message names ${name}`);
    }
  // A finite value in range still answers; a string parameter may still hold the word.
  t.equal((await fetch(`${base}/api/v1/flows?limit=10`)).status, 200, 'a finite limit answers 200');
  t.equal((await fetch(`${base}/api/v1/nodes?name=Infinity`)).status, 200, 'a name filter "Infinity" is a string');
  t.equal((await fetch(`${base}/healthz`)).status, 200, 'the server keeps answering');
});
