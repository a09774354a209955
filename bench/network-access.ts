import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import Database from 'better-sqlite3';
import pg from 'pg';
import { openStore } from '../aggregator/store/index.js';
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
 * bounded in time. Rows are seeded by SQL straight into flow_buckets (the
 * schema the store's migrations made), secondary indexes rebuilt after.
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
        const seedBound = 30_000 + rows * (db === 'sqlite' ? 0.03 : 0.05);
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
            name: `seed ${size} flow-bucket rows by SQL, ${db}`,
            value: (performance.now() - t0) / 1000,
            unit: 's',
          }),
        );
        writeFileSync(
          join(dir, 'report.yaml'),
          `apiVersion: compliance.verdict.dev/v1\nkind: GlobalReport\nmetadata:\n  name: ${REPORT}\nspec:\n  reportType: network-access\n`,
        );
        const goals = rows >= 10e6;
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
 * One row per (hour, flow): row i of an hour is flow k = i; its endpoints,
 * port, action and reporter follow from k (see bench/flows.ts for the same
 * cluster in JS), so (hour, node, key) is unique. The SQL is the same in both
 * dialects but for the source of i.
 */
function rowSelect(perHour: number, nowHour: number, bucketMs: number, pgSha: boolean): string {
  const k = `(i % ${perHour})`;
  const sn = `(${k} % 40)`;
  const sw = `((${k} / 40) % 25)`;
  const dn = `(CASE WHEN ${k} % 8 = 0 THEN (${sn} + 1) % 40 ELSE ${sn} END)`;
  const dw = `((${sw} + 1 + ${k} % 3) % 25)`;
  const inet = `(${k} % 20 = 0)`;
  const port = `(1024 + (${k} / 1000) % 4000)`;
  const deny = `(${k} % 10 = 0)`;
  const ep = (ns: string, w: string) =>
    `'{"kind":"pod","namespace":"ns-' || ${ns} || '","name":"app-' || ${w} || '","labels":["app=app-' || ${w} || '","pod-template-hash=7d9f8b6c' || ${w} || '","team=team-' || (${ns} % 7) || '"],"serviceAccount":"app-' || ${w} || '","internet":false}'`;
  const src = `(CASE WHEN ${inet} THEN '{"kind":"network","namespace":"","name":"pub","labels":[],"serviceAccount":"","internet":true}' ELSE ${ep(sn, sw)} END)`;
  const action = `(CASE WHEN ${deny} THEN 'deny' ELSE 'allow' END)`;
  const reporter = `(CASE WHEN ${k} % 2 = 0 THEN 'src' ELSE 'dst' END)`;
  const json =
    `'{"source":' || ${src} || ',"destination":' || ${ep(dn, dw)} || ',"protocol":"tcp","destinationPort":' || ${port} || ` +
    `',"action":"' || ${action} || '","reporter":"' || ${reporter} || '","policies":[{"tier":"default","namespace":"ns-' || ${dn} || ` +
    `'","name":"' || (CASE WHEN ${deny} THEN 'default-deny' ELSE 'allow-app-' || ${dw} END) || '","action":"' || ${action} || ` +
    `'","kind":"NetworkPolicy"}],"stagedPolicies":[],"unnamedPolicy":false,"policyDecided":true,"connections":0,"packets":0,"bytes":0,"startMs":0,"endMs":0}'`;
  const bucket = `(${nowHour} - (${HOURS} - i / ${perHour}) * ${bucketMs})`;
  return `SELECT ${bucketMs}, ${bucket}, 'node-' || (${k} % 100), ${pgSha ? `sha256(convert_to(j, 'UTF8')), ` : ''}j,
      (CASE WHEN ${inet} THEN 'network' ELSE 'pod' END), (CASE WHEN ${inet} THEN '' ELSE 'ns-' || ${sn} END),
      (CASE WHEN ${inet} THEN 'pub' ELSE 'app-' || ${sw} END), 'pod', 'ns-' || ${dn}, 'app-' || ${dw},
      ${action}, ${reporter}, j, 1 + ${k} % 5, 10 + ${k} % 100, 1000 + ${k} % 10000, ${bucket} + 60000, ${bucket} + 120000
    FROM (SELECT i, ${json} AS j FROM SRC) AS g`;
}

const COLUMNS =
  'bucket_ms, bucket_start_ms, node, flow_key, src_kind, src_namespace, src_name, dst_kind, dst_namespace, dst_name, action, reporter, record_json, connections, packets, bytes, first_ms, last_ms';

async function seed(url: string, rows: number, nowHour: number): Promise<void> {
  await (await openStore(url)).close(); // the schema, by the store's own migrations
  const perHour = Math.ceil(rows / HOURS);
  const chunk = 500_000;
  if (url.startsWith('sqlite:')) {
    const db = new Database(url.slice('sqlite:'.length));
    try {
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = OFF');
      db.pragma('cache_size = -262144');
      const indexes = db
        .prepare(
          `SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'flow_buckets' AND sql IS NOT NULL`,
        )
        .all() as { name: string; sql: string }[];
      for (const ix of indexes) db.exec(`DROP INDEX ${ix.name}`);
      for (let from = 0; from < rows; from += chunk) {
        const to = Math.min(rows, from + chunk);
        const src = `(WITH RECURSIVE s(i) AS (SELECT ${from} UNION ALL SELECT i + 1 FROM s WHERE i < ${to - 1}) SELECT i FROM s)`;
        db.exec(
          `INSERT INTO flow_buckets (${COLUMNS}) ${rowSelect(perHour, nowHour, HOUR, false).replace('SRC', src)}`,
        );
        await sleep(0);
      }
      for (const ix of indexes) db.exec(ix.sql);
      db.exec('ANALYZE');
      db.pragma('wal_checkpoint(TRUNCATE)');
    } finally {
      db.close();
    }
    return;
  }
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    const { rows: indexes } = await c.query<{ indexname: string; indexdef: string }>(
      `SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'flow_buckets' AND schemaname = current_schema() AND indexname NOT LIKE '%pkey'`,
    );
    for (const ix of indexes) await c.query(`DROP INDEX ${ix.indexname}`);
    await c.query(`SET maintenance_work_mem = '512MB'`);
    for (let from = 0; from < rows; from += chunk) {
      const to = Math.min(rows, from + chunk);
      const src = `generate_series(${from}::bigint, ${to - 1}::bigint) AS i`;
      await c.query(
        `INSERT INTO flow_buckets (${COLUMNS.replace('node, flow_key', 'node, flow_key_sha256, flow_key')}) ${rowSelect(perHour, nowHour, HOUR, true).replace('SRC', src)}`,
      );
    }
    for (const ix of indexes) await c.query(ix.indexdef);
    await c.query('ANALYZE flow_buckets');
  } finally {
    await c.end();
  }
}
