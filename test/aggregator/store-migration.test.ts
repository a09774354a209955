import { join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import t, { type Test } from 'tap';
import { openStore } from '../../aggregator/store/index.js';
import type { FlowRecord } from '../../common/flow.js';
import { migrationFiles } from '../../aggregator/store/migrations.js';
import { sqliteAtSchema, postgresAtSchema } from '../fixtures/old-schema.js';
import { queryOnce, testPostgres } from '../fixtures/postgres.js';
import { reportOf } from '../fixtures/reports.js';
import { tempDir } from '../fixtures/tmp.js';

/**
 * A database made by an older Verdict, with data in it, opened by this one:
 * the store migrates it and reads back what was there. The old database is
 * built from the migration files up to UPGRADE_FROM only, and filled by SQL in
 * that schema, as the old store wrote it: PostgreSQL's nodes.labels JSONB and
 * benchmark_runs.report JSON (before 007_json_text_columns), SQLite before its
 * audit indexes were rebuilt (007_audit_event_indexes).
 */
const UPGRADE_FROM = { sqlite: 6, postgres: 6 } as const;

const T = Date.UTC(2026, 10, 1, 10, 0, 0);
const report = reportOf('n1', { '4.1.1': 'PASS', '4.1.2': 'FAIL' }, { startedAt: new Date(T).toISOString() });
/** The report as the agent sent it: key order and spacing the store must keep. */
const reportText = JSON.stringify(report, null, 1);
const labels = { zone: 'a', 'kubernetes.io/hostname': 'n1', tier: '' };
/**
 * Flows as the old store kept them: each row with its record's JSON (counts and times zeroed) and its key. The
 * second row is the first's flow written with its fields in another order (another key then, the same flow now):
 * the migration merges them. The third, an hour row of another node, has what a key can hold that is awkward.
 */
const flowF = {
  source: {
    kind: 'pod',
    namespace: 'shop',
    name: 'web',
    labels: ['app=web', 'ünïcode=✓'],
    serviceAccount: 'web',
    internet: false,
  },
  destination: { kind: 'pod', namespace: 'shop', name: 'db', labels: [], serviceAccount: '', internet: false },
  protocol: 'tcp',
  destinationPort: 5432,
  action: 'allow',
  reporter: 'dst',
  policies: [{ tier: 'default', namespace: 'shop', name: 'allow-web', action: 'allow', kind: 'NetworkPolicy' }],
  stagedPolicies: [],
  unnamedPolicy: false,
  policyDecided: true,
} satisfies Omit<FlowRecord, 'connections' | 'packets' | 'bytes' | 'startMs' | 'endMs'>;
const zeroed = { connections: 0, packets: 0, bytes: 0, startMs: 0, endMs: 0 };
const flowJson = JSON.stringify({ ...flowF, ...zeroed });
const { policyDecided: decidedF, destination: destinationF, ...restF } = flowF;
const flowJsonReordered = JSON.stringify({
  ...zeroed,
  policyDecided: decidedF,
  destination: destinationF,
  ...restF,
});
const flowG = {
  source: { kind: 'network', namespace: '', name: 'pub', labels: [], serviceAccount: '', internet: true },
  destination: {
    kind: 'pod',
    namespace: 'pay',
    name: 'ledger "main"',
    labels: ['a=b\nc'],
    serviceAccount: '',
    internet: false,
  },
  protocol: 'udp',
  destinationPort: 0,
  action: 'deny',
  reporter: 'dst',
  policies: [],
  stagedPolicies: [{ tier: 'security', namespace: '', name: 'deny-all', action: 'deny', kind: 'GlobalNetworkPolicy' }],
  unnamedPolicy: true,
  policyDecided: false,
} satisfies Omit<FlowRecord, 'connections' | 'packets' | 'bytes' | 'startMs' | 'endMs'>;
const event = { kind: 'Event', auditID: 'a1', verb: 'update', objectRef: { resource: 'networkpolicies' } };

/** One old row per table, in SQL both dialects read; `$n` placeholders, booleans as the dialect spells them. */
function seed(dialect: 'sqlite' | 'postgres'): [string, unknown[]][] {
  const pgOnly = dialect === 'postgres';
  return [
    [
      `INSERT INTO nodes (name, role, ${pgOnly ? 'labels' : 'labels_json'}, kubelet_version, kubernetes_version, os_image, kernel_version, architecture, agent_version, boot_id, connected, first_seen_ms, last_seen_ms, latest_run_id, connection_id)
       VALUES ('n1', 'worker', $1, 'v1.32.1', 'v1.32.1', 'Debian', '6.1.0', 'x64', '0.1.0', 'b1', ${pgOnly ? 'TRUE' : 1}, $2, $3, 1, 'c1')`,
      [JSON.stringify(labels), T - 60_000, T],
    ],
    [
      `INSERT INTO benchmark_runs (node, boot_id, seq, benchmark_id, benchmark_version, role, started_at_ms, duration_ms, pass, fail, skip, score_percent, received_at_ms, ${pgOnly ? 'report' : 'report_json'})
       VALUES ('n1', 'b1', 7, 'cis-1.12', '1.12.0', 'worker', $1, 5, 1, 1, 0, 50, $1, $2)`,
      [T, reportText],
    ],
    [
      `INSERT INTO check_results (run_id, check_id, title, status, scored) VALUES (1, '4.1.1', 'check 4.1.1', 'PASS', ${pgOnly ? 'TRUE' : 1}), (1, '4.1.2', 'check 4.1.2', 'FAIL', ${pgOnly ? 'TRUE' : 1})`,
      [],
    ],
    ["INSERT INTO agent_sequences (node, boot_id, last_seq, updated_ms) VALUES ('n1', 'b1', 7, $1)", [T]],
    ...(
      [
        [60000, 'n1', 'k1', 'pod', 'shop', 'web', 'pod', 'shop', 'db', 'allow', flowJson, 3, T, T],
        [60000, 'n1', 'k1b', 'pod', 'shop', 'web', 'pod', 'shop', 'db', 'allow', flowJsonReordered, 1, T - 5, T + 5],
        [
          3600000,
          'n2',
          'k2',
          'network',
          '',
          'pub',
          'pod',
          'pay',
          'ledger "main"',
          'deny',
          JSON.stringify({ ...flowG, ...zeroed }),
          5,
          T,
          T + 9,
        ],
      ] as const
    ).map(([bucketMs, node, key, sk, sn, sname, dk, dn, dname, action, json, n, first, last]): [string, unknown[]] => [
      `INSERT INTO flow_buckets (bucket_ms, bucket_start_ms, node, ${pgOnly ? 'flow_key_sha256, ' : ''}flow_key, src_kind, src_namespace, src_name, dst_kind, dst_namespace, dst_name, action, reporter, record_json, connections, packets, bytes, first_ms, last_ms)
       VALUES ($1, $2, $3, ${pgOnly ? "sha256(convert_to($4, 'UTF8')), " : ''}$4, $5, $6, $7, $8, $9, $10, $11, 'dst', $12, $13, $14, $15, $16, $17)`,
      [bucketMs, T, node, key, sk, sn, sname, dk, dn, dname, action, json, n, n * 10, n * 100, first, last],
    ]),
    [
      `INSERT INTO report_runs (id, report, report_type, trigger_kind, status, attempts, interval_start_ms, interval_end_ms, not_before_ms, created_ms, started_ms, finished_ms, inputs_json, result_json)
       VALUES ('r1', 'daily-cis', 'cis-benchmark', 'scheduled', 'succeeded', 1, $1, $2, $2, $2, $2, $2, '{"b":1,"a":[1.50]}', '{"ok": true}')`,
      [T - 86_400_000, T],
    ],
    [
      `INSERT INTO audit_events (audit_id, stage_ms, verb, resource, api_group, namespace, name, username, event_json)
       VALUES ('a1', $1, 'update', 'networkpolicies', 'networking.k8s.io', 'shop', 'deny-all', 'alice', $2)`,
      [T, JSON.stringify(event)],
    ],
    [
      `INSERT INTO pod_history (uid, namespace, name, labels_json, service_account, host_network, first_seen_ms, last_seen_ms, deleted_ms)
       VALUES ('u1', 'shop', 'web-0', '{"app":"web"}', 'web', ${pgOnly ? 'FALSE' : 0}, $1, $1, NULL)`,
      [T - 60_000],
    ],
  ];
}

/** What every case reads back after the upgrade: the rows seed() wrote, through the Store. */
async function readsBack(t: Test, db: string, rawReport: () => Promise<string>): Promise<void> {
  const store = await openStore(db);
  t.teardown(() => store.close());
  const [node] = await store.listNodes();
  t.same(node?.labels, labels, 'node labels');
  t.equal(node?.connected, true);
  t.same(node?.latest, {
    benchmarkId: 'cis-1.12',
    benchmarkVersion: '1.12.0',
    role: 'worker',
    startedAtMs: T,
    pass: 1,
    fail: 1,
    skip: 0,
    scorePercent: 50,
  });
  t.strictSame(await store.nodeReport('n1'), report, 'the latest report');
  t.equal(await rawReport(), reportText, 'stored exactly as the agent sent it (spacing, key order)');
  t.same(
    (await store.latestCheckStatuses()).map((c) => [c.checkId, c.status, c.scored]),
    [
      ['4.1.1', 'PASS', true],
      ['4.1.2', 'FAIL', true],
    ],
  );
  const flowsBack = [
    {
      node: 'n1',
      bucketStartMs: T,
      bucketMs: 60_000,
      flow: { ...flowF, connections: 4, packets: 40, bytes: 400, startMs: T - 5, endMs: T + 5 },
    },
    {
      node: 'n2',
      bucketStartMs: T,
      bucketMs: 3_600_000,
      flow: { ...flowG, connections: 5, packets: 50, bytes: 500, startMs: T, endMs: T + 9 },
    },
  ];
  t.strictSame(
    await store.flowRows({ fromMs: 0, toMs: T + 60_000 }),
    flowsBack,
    'the flows, one row per (bucket, node, flow): the two keys of one flow merged',
  );
  // New batches of the same flows find them in the dictionaries: they add to the same rows.
  t.same(
    await store.recordFlowBatch(
      'n1',
      'b2',
      1,
      [{ ...flowF, connections: 1, packets: 10, bytes: 100, startMs: T + 1, endMs: T + 2 }],
      T,
    ),
    { duplicate: false },
  );
  await store.recordFlowBatch(
    'n2',
    'b2',
    1,
    [{ ...flowG, connections: 0, packets: 0, bytes: 0, startMs: T, endMs: T }],
    T,
  );
  await store.compactFlows(T + 3_600_000, 0);
  t.strictSame(
    (await store.flowRows({ fromMs: 0, toMs: T + 60_000 })).map((r) => [r.node, r.bucketMs, r.flow.connections]),
    [
      ['n1', 3_600_000, 5],
      ['n2', 3_600_000, 5],
    ],
    'rolled up with the converted rows, one row each',
  );
  const run = await store.reportRun('r1');
  t.same([run?.status, run?.inputs, run?.result], ['succeeded', { b: 1, a: [1.5] }, { ok: true }]);
  t.strictSame(
    (await store.auditEvents(0, T + 1)).map((e) => [e.auditId, e.username, e.event]),
    [['a1', 'alice', event]],
  );
  t.same(await store.podsDuring(T - 60_000, T), [
    { uid: 'u1', namespace: 'shop', name: 'web-0', labels: { app: 'web' }, serviceAccount: 'web', hostNetwork: false },
  ]);
  // And the migrated tables take new writes as a new store's would.
  const hello = {
    name: 'n1',
    role: 'worker' as const,
    labels: { zone: 'b' },
    kubeletVersion: 'v1.32.1',
    kubernetesVersion: 'v1.32.1',
    osImage: 'Debian',
    kernelVersion: '6.1.0',
    architecture: 'x64',
    agentVersion: '0.2.0',
    bootId: 'b1',
  };
  t.same(await store.recordHello(hello, T + 1), { lastStoredSeq: 7 }, 'the ledger');
  t.same(await store.recordBenchmarkRun('n1', 'b1', 7, report, T + 2), { duplicate: true });
  const next = reportOf('n1', { '4.1.1': 'PASS' }, { startedAt: new Date(T + 3).toISOString() });
  t.same(await store.recordBenchmarkRun('n1', 'b1', 8, next, T + 3), { duplicate: false });
  const [after] = await store.listNodes();
  t.same([after?.labels, after?.latest?.pass, after?.latest?.fail], [{ zone: 'b' }, 1, 0]);
  t.strictSame(await store.nodeReport('n1'), next);
}

t.test('SQLite: a database at the previous schema version migrates and reads back its data', async (t) => {
  const file = join(tempDir(t), 'verdict.db');
  sqliteAtSchema(file, UPGRADE_FROM.sqlite, seed('sqlite'));
  await readsBack(t, `sqlite:${file}`, async () => {
    const db = new Database(file, { readonly: true });
    try {
      return (db.prepare('SELECT report_json FROM benchmark_runs WHERE id = 1').get() as { report_json: string })
        .report_json;
    } finally {
      db.close();
    }
  });
  const db = new Database(file, { readonly: true });
  t.teardown(() => db.close());
  t.same(
    (db.prepare('SELECT version FROM schema_migrations ORDER BY version').all() as { version: number }[]).map(
      (r) => r.version,
    ),
    migrationFiles('sqlite').map((m) => m.version),
    'every migration recorded',
  );
});

t.test('PostgreSQL: a database at the previous schema version migrates and reads back its data', async (t) => {
  const server = await testPostgres(t);
  const db = await server.freshSchema();
  const query = <R extends pg.QueryResultRow>(sql: string, values: unknown[] = []) => queryOnce<R>(db, sql, values);
  await postgresAtSchema(db, UPGRADE_FROM.postgres, seed('postgres'));
  t.same(
    (
      await query<{ c: string; ty: string }>(
        `SELECT column_name AS c, data_type AS ty FROM information_schema.columns
       WHERE table_schema = current_schema() AND table_name IN ('nodes', 'benchmark_runs') AND column_name IN ('labels', 'report') ORDER BY 1`,
      )
    ).map((r) => [r.c, r.ty]),
    [
      ['labels', 'jsonb'],
      ['report', 'json'],
    ],
    'the old schema',
  );
  await readsBack(t, db, async () => {
    const [row] = await query<{ report_json: string }>('SELECT report_json FROM benchmark_runs WHERE id = 1');
    return row?.report_json ?? '';
  });
  t.same(
    (
      await query<{ c: string; ty: string }>(
        `SELECT column_name AS c, data_type AS ty FROM information_schema.columns
       WHERE table_schema = current_schema() AND (data_type IN ('json', 'jsonb')
         OR table_name IN ('nodes', 'benchmark_runs') AND column_name IN ('labels', 'labels_json', 'report', 'report_json')) ORDER BY 1`,
      )
    ).map((r) => [r.c, r.ty]),
    [
      ['labels_json', 'text'],
      ['report_json', 'text'],
    ],
    'labels_json and report_json are TEXT, as in SQLite; no JSON or JSONB column left',
  );
  t.same(
    (await query<{ version: number }>('SELECT version FROM schema_migrations ORDER BY version')).map((r) => r.version),
    migrationFiles('postgres').map((m) => m.version),
    'every migration recorded',
  );
});
