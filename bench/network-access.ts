import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import Database from 'better-sqlite3';
import pg from 'pg';
import type { FlowRecord } from '../common/flow.js';
import { openStore } from '../aggregator/store/index.js';
import { syntheticFlow } from './flows.js';
import { profileArgs } from './ingest.js';
import {
  bounded,
  rssWatch,
  sleep,
  startAggregatorChild,
  type AggregatorChild,
  type BenchOptions,
  type Sink,
} from './harness.js';
import { freshPostgresUrl } from './postgres.js';
import { failed, figure, timedOut } from './table.js';

/**
 * bench/network-access: GET /api/v1/network-access and an on-demand run of a
 * network-access GlobalReport, each over 30 days, on a store seeded with N
 * hour-bucket rows (the shape minute buckets are rolled up into) spread over
 * the last 30 days: 1,000 endpoints in 40 namespaces, 100 nodes. Each query
 * runs in a fresh aggregator process, so a heap blow-up is that process dying
 * (a measured failure) and its RSS high-water mark is the query's; each is
 * bounded in time. Rows are seeded through the store and copied by SQL (see
 * seed), so the seeding follows the store's flow schema as it changes.
 * Goals (over 10M rows): at most 10 s and 512 MiB.
 */
const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const HOURS = 30 * 24 - 2;
const REPORT = 'bench-network-access';

export async function runNetworkAccessBench(o: BenchOptions, out: Sink, signal: AbortSignal): Promise<void> {
  const nowHour = Math.floor(Date.now() / HOUR) * HOUR;
  for (const db of o.dbs)
    for (const rows of o.rows) {
      if (signal.aborted) return;
      const dir = mkdtempSync(join(tmpdir(), 'verdict-bench-na-'));
      try {
        const url = db === 'sqlite' ? `sqlite:${join(dir, 'v.db')}` : await freshPostgresUrl();
        const size = rows >= 1e6 ? `${rows / 1e6}M` : `${rows / 1e3}k`;
        const seedBound = 60_000 + rows * (db === 'sqlite' ? 0.03 : 0.05);
        const t0 = performance.now();
        const seeded = await bounded(seedBound, () => seed(url, rows, nowHour));
        if (!seeded.ok) {
          out.add(
            seeded.error === undefined
              ? timedOut('network-access', `seed ${size} rows, ${db}`, seedBound, 's')
              : failed('network-access', `seed ${size} rows, ${db}`, String(seeded.error)),
          );
          continue;
        }
        out.add(
          figure({
            bench: 'network-access',
            name: `seed ${size} rows (${seeded.value} in flow_buckets) via the store + SQL copy, ${db}`,
            value: (performance.now() - t0) / 1000,
            unit: 's',
          }),
        );
        writeFileSync(
          join(dir, 'report.yaml'),
          `apiVersion: compliance.verdict.dev/v1\nkind: GlobalReport\nmetadata:\n  name: ${REPORT}\nspec:\n  reportType: network-access\n`,
        );
        // The goals are set for 10M rows; a smaller store must meet them too.
        const goals = rows >= 1e6;
        const queryBound = Math.max(60_000, rows * 0.012);
        for (const what of ['api', 'report'] as const) {
          const name =
            what === 'api'
              ? `GET /api/v1/network-access, 30 days, ${size} rows, ${db}`
              : `network-access report run, 30 days, ${size} rows, ${db}`;
          for (const f of await queryOnce(what, url, dir, name, nowHour, queryBound, goals, signal)) out.add(f);
        }
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
}

async function queryOnce(
  what: 'api' | 'report',
  url: string,
  dir: string,
  name: string,
  nowHour: number,
  boundMs: number,
  goals: boolean,
  signal: AbortSignal,
) {
  const agg = await startAggregatorChild(['--db', url, '--reports', dir], {
    signal,
    nodeArgs: profileArgs(`na-${what}`, url.startsWith('sqlite') ? 'sqlite' : 'postgres'),
  });
  const rss = rssWatch(agg.pid, 50);
  const startRss = rss.peak();
  try {
    const from = new Date(nowHour - 30 * DAY).toISOString();
    const to = new Date(nowHour + HOUR).toISOString();
    const t0 = performance.now();
    const r = await bounded(boundMs, (s) =>
      what === 'api' ? apiQuery(agg, from, to, s) : reportRun(agg, from, to, s),
    );
    const ms = performance.now() - t0;
    const peak = rss.stop();
    const rssNote = `RSS ${peak.toFixed(0)} MiB at most (${startRss.toFixed(0)} MiB idle)`;
    if (!r.ok) {
      if (r.error === undefined) return [timedOut('network-access', name, boundMs, 's', rssNote)];
      const why = agg.exited ? agg.exitReason() : r.error instanceof Error ? r.error.message : String(r.error);
      return [{ ...failed('network-access', name, `${why}; ${rssNote}`), value: undefined }];
    }
    return [
      figure({
        bench: 'network-access',
        name: `${name} (${r.value})`,
        value: ms / 1000,
        unit: 's',
        ...(goals ? { goal: { on: 'value' as const, op: '<=' as const, target: 10 } } : {}),
      }),
      figure({
        bench: 'network-access',
        name: `aggregator RSS high-water, ${name.replace(/^GET /, '')}`,
        value: peak,
        unit: 'MiB',
        ...(goals ? { goal: { on: 'value' as const, op: '<=' as const, target: 512 } } : {}),
      }),
    ];
  } finally {
    rss.stop();
    await agg.stop();
  }
}

async function apiQuery(agg: AggregatorChild, from: string, to: string, signal: AbortSignal): Promise<string> {
  const res = await fetch(
    `http://127.0.0.1:${agg.httpPort}/api/v1/network-access?from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}`,
    { signal },
  );
  const body = await res.text();
  if (res.status !== 200) throw new Error(`network-access answered ${res.status}: ${body.slice(0, 200)}`);
  const j = JSON.parse(body) as { endpoints: unknown[] };
  return `${j.endpoints.length} endpoints`;
}

async function reportRun(agg: AggregatorChild, start: string, end: string, signal: AbortSignal): Promise<string> {
  const base = `http://127.0.0.1:${agg.httpPort}/api/v1/reports/${REPORT}/runs`;
  const res = await fetch(base, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ start, end }),
    signal,
  });
  const created = (await res.json()) as { id?: string; message?: string };
  if (res.status !== 202 || !created.id)
    throw new Error(`report run answered ${res.status}: ${JSON.stringify(created)}`);
  for (;;) {
    await sleep(100);
    if (agg.exited) throw new Error(agg.exitReason());
    const run = (await (await fetch(`${base}/${created.id}`, { signal })).json()) as {
      status?: string;
      error?: string;
      result?: { summary?: { endpointsNumInScope?: number } };
    };
    if (run.status === 'succeeded') return `${run.result?.summary?.endpointsNumInScope ?? '?'} endpoints`;
    if (run.status === 'failed') throw new Error(`report run failed: ${run.error}`);
  }
}

/**
 * Seed `rows` hour-bucket rows over the last 30 days, whatever the store's flow
 * schema is today: one hour's flows go in through the store's own batch insert
 * (Store.recordFlowBatch: 100 nodes, flows from bench/flows.ts) and are rolled
 * up into an hour bucket by Store.compactFlows; then that hour's flow_buckets
 * rows are copied by SQL into every other hour, each column ending in _ms but
 * bucket_ms moved by whole hours, with the table's secondary indexes dropped
 * during the copy and rebuilt after. Answers the rows the table holds.
 */
async function seed(url: string, rows: number, nowHour: number): Promise<number> {
  const perHour = Math.ceil(rows / HOURS);
  const h0 = nowHour - HOURS * HOUR;
  const store = await openStore(url);
  try {
    const byNode = new Map<string, FlowRecord[]>();
    for (let k = 0; k < perHour; k++) {
      const node = `node-${k % 100}`;
      let list = byNode.get(node);
      if (!list) byNode.set(node, (list = []));
      list.push(syntheticFlow(k, h0));
    }
    for (const [node, flows] of byNode)
      for (let i = 0; i < flows.length; i += 20_000)
        await store.recordFlowBatch(node, 'seed', 1 + i / 20_000, flows.slice(i, i + 20_000), Date.now());
    await store.compactFlows(h0 + HOUR, 0);
  } finally {
    await store.close();
  }
  const hoursPerStatement = 48;
  if (url.startsWith('sqlite:')) {
    const db = new Database(url.slice('sqlite:'.length));
    try {
      db.pragma('synchronous = OFF');
      db.pragma('cache_size = -262144');
      const cols = (db.prepare(`PRAGMA table_info(flow_buckets)`).all() as { name: string }[]).map((c) => c.name);
      const indexes = db
        .prepare(
          `SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'flow_buckets' AND sql IS NOT NULL`,
        )
        .all() as { name: string; sql: string }[];
      for (const ix of indexes) db.exec(`DROP INDEX ${ix.name}`);
      for (let a = 1; a < HOURS; a += hoursPerStatement) {
        const z = Math.min(HOURS - 1, a + hoursPerStatement - 1);
        db.exec(
          `WITH RECURSIVE hs(h) AS (SELECT ${a} UNION ALL SELECT h + 1 FROM hs WHERE h < ${z})
           INSERT INTO flow_buckets (${cols.join(', ')})
           SELECT ${shifted(cols)} FROM hs CROSS JOIN (SELECT * FROM flow_buckets WHERE bucket_start_ms = ${h0}) AS b
           ORDER BY h`,
        );
        await sleep(0);
      }
      for (const ix of indexes) db.exec(ix.sql);
      db.exec('ANALYZE');
      db.pragma('wal_checkpoint(TRUNCATE)');
      return (db.prepare('SELECT count(*) AS n FROM flow_buckets').get() as { n: number }).n;
    } finally {
      db.close();
    }
  }
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    const cols = (
      await c.query<{ column_name: string }>(
        `SELECT column_name FROM information_schema.columns WHERE table_name = 'flow_buckets' AND table_schema = current_schema() ORDER BY ordinal_position`,
      )
    ).rows.map((r) => r.column_name);
    const { rows: indexes } = await c.query<{ indexname: string; indexdef: string }>(
      `SELECT i.indexname, i.indexdef FROM pg_indexes i WHERE i.tablename = 'flow_buckets' AND i.schemaname = current_schema()
         AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conname = i.indexname)`,
    );
    for (const ix of indexes) await c.query(`DROP INDEX ${ix.indexname}`);
    await c.query(`SET maintenance_work_mem = '512MB'`);
    for (let a = 1; a < HOURS; a += hoursPerStatement) {
      const z = Math.min(HOURS - 1, a + hoursPerStatement - 1);
      await c.query(
        `INSERT INTO flow_buckets (${cols.join(', ')})
         SELECT ${shifted(cols)} FROM generate_series(${a}::bigint, ${z}::bigint) AS h
           CROSS JOIN (SELECT * FROM flow_buckets WHERE bucket_start_ms = ${h0}) AS b ORDER BY h`,
      );
    }
    for (const ix of indexes) await c.query(ix.indexdef);
    await c.query('ANALYZE');
    return Number((await c.query<{ n: string }>('SELECT count(*) AS n FROM flow_buckets')).rows[0]?.n);
  } finally {
    await c.end();
  }
}

/** The columns, those of time (ending in _ms, but the bucket's size) moved by h hours. */
function shifted(cols: string[]): string {
  return cols.map((c) => (c.endsWith('_ms') && c !== 'bucket_ms' ? `b.${c} + h * ${HOUR}` : `b.${c}`)).join(', ');
}
