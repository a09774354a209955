import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type Database from 'better-sqlite3';
import { pino } from 'pino';
import t, { type Test } from 'tap';
import { AGGREGATOR_DEFAULTS } from '../../aggregator/config.js';
import { startAggregator, type RunningAggregator } from '../../aggregator/main.js';
import { startTestAggregator } from '../fixtures/aggregator.js';
import { flow } from '../fixtures/flows.js';
import { testPostgres } from '../fixtures/postgres.js';
import { reportOf } from '../fixtures/reports.js';
import { tempDir } from '../fixtures/tmp.js';
import { until } from '../fixtures/wait.js';
import { helloFields } from '../fixtures/node-hello.js';

// A store that cannot answer is an outage, not a bug: every API route answers
// 503 VERDICT_STORE_UNAVAILABLE (clients retry), /readyz says not ready, and
// both recover by themselves when the store is back.

const REPORT = `apiVersion: compliance.verdict.dev/v1
kind: GlobalReport
metadata: {name: daily-cis}
spec:
  reportType: cis-benchmark
`;

const HELLO = helloFields({ kubeletVersion: 'v1.32.1', agentVersion: '0.1.0' });

function reportsDir(t: Test): string {
  const dir = join(tempDir(t), 'reports');
  mkdirSync(dir);
  writeFileSync(join(dir, 'daily-cis.yaml'), REPORT);
  return dir;
}

async function call(
  port: number,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, {
    method,
    headers: body ? { 'content-type': 'application/json' } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  return { status: res.status, json: text.startsWith('{') ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

// A shared server ($VERDICT_TEST_POSTGRES_URL) is not ours to stop.
const sharedPostgres = process.env.VERDICT_TEST_POSTGRES_URL !== undefined;

t.test(
  'with PostgreSQL stopped, every API route answers 503 VERDICT_STORE_UNAVAILABLE and /readyz is not ready; when it starts again the 200s return',
  { skip: sharedPostgres && 'VERDICT_TEST_POSTGRES_URL names a shared server, and this test would have to stop it' },
  async (t) => {
    const postgres = await testPostgres(t);
    const server = postgres.server;
    if (!server) throw new Error('the throwaway PostgreSQL cluster has no server handle');
    const agg = await startTestAggregator(t, { db: await postgres.freshSchema(), reportsDir: reportsDir(t) });
    await agg.store.recordHello({ name: 'n1', ...HELLO }, Date.now());
    await agg.store.recordBenchmarkRun('n1', 'b', 1, reportOf('n1', { '4.1.1': 'PASS' }), Date.now());
    await agg.store.recordFlowBatch(
      'n1',
      'b',
      2,
      [flow({ startMs: Date.now() - 60_000, endMs: Date.now() - 59_000 })],
      Date.now(),
    );
    const day = 86_400_000;
    const interval = {
      start: new Date(Date.now() - 2 * day).toISOString(),
      end: new Date(Date.now() - day).toISOString(),
    };
    const created = await call(agg.httpPort, 'POST', '/api/v1/reports/daily-cis/runs', interval);
    t.equal(created.status, 202);
    const runId = created.json.id as string;

    const routes: [string, string, unknown?][] = [
      ['GET', '/api/v1/nodes'],
      ['GET', '/api/v1/nodes/n1/cis'],
      ['GET', '/api/v1/cis/summary'],
      ['GET', '/api/v1/flows'],
      ['GET', '/api/v1/network-access'],
      ['GET', '/api/v1/reports'],
      ['GET', '/api/v1/reports/daily-cis/runs'],
      ['GET', `/api/v1/reports/daily-cis/runs/${runId}`],
      ['GET', '/api/v1/tamper-alerts'],
      ['POST', '/api/v1/reports/daily-cis/runs', interval],
    ];
    for (const [method, path, body] of routes)
      t.equal(
        (await call(agg.httpPort, method, path, body)).status,
        method === 'POST' ? 202 : 200,
        `${method} ${path} before the outage`,
      );

    await server.stop();
    for (const [method, path, body] of routes) {
      const r = await call(agg.httpPort, method, path, body);
      t.equal(r.status, 503, `${method} ${path} during the outage`);
      t.match(
        r.json,
        {
          error: 'VERDICT_STORE_UNAVAILABLE',
          message: /^the postgres store cannot answer now \(.+\); retry when \/readyz answers 200$/,
        },
        `${method} ${path} says why`,
      );
    }
    const ready = await call(agg.httpPort, 'GET', '/readyz');
    t.equal(ready.status, 503, '/readyz is not ready');
    t.equal(ready.json.error, 'VERDICT_STORE_UNAVAILABLE');
    t.equal((await call(agg.httpPort, 'GET', '/healthz')).status, 200, 'the process itself stays live');
    // /metrics still answers, without the store-read CIS series, so the outage itself can be seen in Prometheus.
    const scrape = await fetch(`http://127.0.0.1:${agg.httpPort}/metrics`);
    const text = await scrape.text();
    t.equal(scrape.status, 200, '/metrics answers during the outage');
    t.match(text, /verdict_ingest_store_failures_total \d+/);
    t.notMatch(text, /verdict_cis_node_score_ratio\{/, 'no stale CIS scores');

    await server.start();
    await until(async () => (await call(agg.httpPort, 'GET', '/readyz')).status === 200, '/readyz to answer 200 again');
    for (const [method, path, body] of routes)
      t.equal(
        (await call(agg.httpPort, method, path, body)).status,
        method === 'POST' ? 202 : 200,
        `${method} ${path} after the outage`,
      );
  },
);

/**
 * A volume that can run out of space under the SQLite file. As root (where
 * mounting is permitted) a real 2 MiB tmpfs, filled with a file until ENOSPC;
 * otherwise the database's own page limit (PRAGMA max_page_count, after a VACUUM
 * empties the free list), which makes SQLite fail with the same SQLITE_FULL.
 */
function fullableVolume(t: Test): {
  dir: string;
  how: 'tmpfs' | 'max_page_count';
  fill(agg: RunningAggregator): void;
  free(agg: RunningAggregator): void;
} {
  const dir = mkdtempSync(join(tmpdir(), 'verdict-full-'));
  let how: 'tmpfs' | 'max_page_count' = 'tmpfs';
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', dir], { stdio: 'pipe' });
  } catch {
    how = 'max_page_count';
  }
  t.teardown(() => {
    if (how === 'tmpfs') execFileSync('umount', ['-l', dir]);
    rmSync(dir, { recursive: true, force: true });
  });
  const filler = join(dir, 'filler');
  const db = (agg: RunningAggregator) => (agg.store as unknown as { db: Database.Database }).db;
  return {
    dir,
    how,
    fill(agg) {
      if (how === 'max_page_count') {
        db(agg).exec('VACUUM');
        db(agg).pragma(`max_page_count = ${db(agg).pragma('page_count', { simple: true }) as number}`);
        return;
      }
      const fd = openSync(filler, 'w');
      const block = Buffer.alloc(4096, 1);
      try {
        for (;;) writeSync(fd, block);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
      } finally {
        closeSync(fd);
      }
    },
    free(agg) {
      if (how === 'max_page_count') db(agg).pragma('max_page_count = 1073741823');
      else unlinkSync(filler);
    },
  };
}

/**
 * One NetworkPolicy change for the audit webhook, big enough (16 KiB) to need new
 * pages: a database at its page limit refuses it, as a full disk does.
 */
const auditBatch = (id: string) => {
  const ts = new Date().toISOString();
  return {
    kind: 'EventList',
    apiVersion: 'audit.k8s.io/v1',
    items: [
      {
        kind: 'Event',
        apiVersion: 'audit.k8s.io/v1',
        auditID: id,
        stage: 'ResponseComplete',
        verb: 'update',
        user: { username: 'alice@example.com' },
        objectRef: {
          resource: 'networkpolicies',
          namespace: 'shop',
          name: 'allow-web',
          apiGroup: 'networking.k8s.io',
          apiVersion: 'v1',
        },
        responseStatus: { code: 200 },
        requestObject: {
          kind: 'NetworkPolicy',
          metadata: { annotations: { note: 'x'.repeat(16_384) } },
          spec: { podSelector: {} },
        },
        requestReceivedTimestamp: ts,
        stageTimestamp: ts,
      },
    ],
  };
};

t.test(
  'with the SQLite volume full, /readyz is not ready and writes answer 503; once space returns it is ready and writes succeed',
  async (t) => {
    const volume = fullableVolume(t);
    t.comment(`full disk made with: ${volume.how}`);
    const agg = await startAggregator(
      {
        ...AGGREGATOR_DEFAULTS,
        httpAddress: '127.0.0.1:0',
        grpcAddress: '127.0.0.1:0',
        db: `sqlite:${join(volume.dir, 'verdict.db')}`,
        logLevel: 'silent',
        reportsDir: reportsDir(t),
      },
      pino({ level: 'silent' }),
    );
    // Before the volume's teardown: an open database would keep a tmpfs busy.
    t.teardown(() => agg.close());
    const day = 86_400_000;
    const interval = (n: number) => ({
      start: new Date(Date.now() - (n + 1) * day).toISOString(),
      end: new Date(Date.now() - n * day).toISOString(),
    });
    t.same((await call(agg.httpPort, 'GET', '/readyz')).json, { status: 'ready', store: 'sqlite' });
    t.equal((await call(agg.httpPort, 'POST', '/api/v1/reports/daily-cis/runs', interval(1))).status, 202);

    volume.fill(agg);
    const notReady = await call(agg.httpPort, 'GET', '/readyz');
    t.equal(notReady.status, 503, '/readyz is not ready on a full disk');
    t.match(notReady.json, {
      error: 'VERDICT_STORE_UNAVAILABLE',
      message: /cannot write: SQLITE_FULL: database or disk is full; free space on the volume holding the --db file/,
    });
    const write = await call(agg.httpPort, 'POST', '/api/v1/audit/webhook', auditBatch('a1'));
    t.equal(write.status, 503, 'a write is an outage, not an internal error');
    t.match(write.json, { error: 'VERDICT_STORE_UNAVAILABLE', message: /SQLITE_FULL/ });
    t.equal((await call(agg.httpPort, 'GET', '/api/v1/reports/daily-cis/runs')).status, 200, 'reads still work');
    t.equal((await call(agg.httpPort, 'GET', '/readyz')).status, 503, 'still not ready after the failed write');

    volume.free(agg);
    t.same(
      (await call(agg.httpPort, 'GET', '/readyz')).json,
      { status: 'ready', store: 'sqlite' },
      'ready again once space returns',
    );
    t.equal(
      (await call(agg.httpPort, 'POST', '/api/v1/audit/webhook', auditBatch('a1'))).status,
      200,
      'writes succeed again',
    );
    t.equal((await call(agg.httpPort, 'POST', '/api/v1/reports/daily-cis/runs', interval(2))).status, 202);
  },
);
