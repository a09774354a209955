import { join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import t, { type Test } from 'tap';
import { openStore } from '../../aggregator/store/index.js';
import { migrationFiles } from '../../aggregator/store/migrations.js';
import type { FlowEndpoint, FlowRecord } from '../../common/flow.js';
import { sqliteAtSchema, postgresAtSchema } from '../fixtures/old-schema.js';
import { queryOnce, testPostgres } from '../fixtures/postgres.js';
import { tempDir } from '../fixtures/tmp.js';

/**
 * Migration 013 (flow_keys.policy_unknown in the flow identity) on a database filled at the schema before it, as the
 * store of that schema wrote it: dictionary entries and a bucket row by SQL. After the upgrade the old flow reads back
 * as it was (no policyUnknown, no reserved), new batches of it add to its row, and the same flow with policyUnknown,
 * or with a peer that has a reserved identity, is another flow, read back with its field.
 */
const BEFORE = 12;

const T = Date.UTC(2026, 10, 1, 10, 0, 0);
const web: FlowEndpoint = {
  kind: 'pod',
  namespace: 'shop',
  name: 'web',
  labels: ['app=web'],
  serviceAccount: 'web',
  internet: false,
};
const db: FlowEndpoint = {
  kind: 'pod',
  namespace: 'shop',
  name: 'db',
  labels: [],
  serviceAccount: '',
  internet: false,
};
/** Allowed and decided by no policy: what a trace-only connection looked like before policyUnknown was kept. */
const oldFlow = {
  source: web,
  destination: db,
  protocol: 'tcp',
  destinationPort: 5432,
  action: 'allow',
  reporter: 'dst',
  policies: [],
  stagedPolicies: [],
  unnamedPolicy: false,
  policyDecided: false,
} satisfies Omit<FlowRecord, 'connections' | 'packets' | 'bytes' | 'startMs' | 'endMs'>;
const counts = (
  connections: number,
  startMs = T,
  endMs = T + 10,
): Pick<FlowRecord, 'connections' | 'packets' | 'bytes' | 'startMs' | 'endMs'> => ({
  connections,
  packets: connections * 10,
  bytes: connections * 100,
  startMs,
  endMs,
});

/** The old store's endpoint_json: every field, in its order. */
const json = (e: FlowEndpoint) =>
  JSON.stringify({
    kind: e.kind,
    namespace: e.namespace,
    name: e.name,
    labels: e.labels,
    serviceAccount: e.serviceAccount,
    internet: e.internet,
  });

/** The rows at schema 012, `$n` placeholders; ids come out 1, 2 in empty tables. */
function seed(dialect: 'sqlite' | 'postgres'): [string, unknown[]][] {
  const pgOnly = dialect === 'postgres';
  const sha = (n: number) => (pgOnly ? `sha256(convert_to($${n}, 'UTF8')), ` : '');
  return [
    ...[web, db].map((e): [string, unknown[]] => [
      `INSERT INTO flow_endpoints (${pgOnly ? 'endpoint_sha256, ' : ''}endpoint_json, kind, namespace, name, internet)
       VALUES (${sha(1)}$1, $2, $3, $4, ${pgOnly ? 'FALSE' : 0})`,
      [json(e), e.kind, e.namespace, e.name],
    ]),
    [`INSERT INTO flow_policy_lists (${pgOnly ? 'policies_sha256, ' : ''}policies_json) VALUES (${sha(1)}$1)`, ['[]']],
    [
      `INSERT INTO flow_keys (src_id, dst_id, protocol, destination_port, action, reporter, policies_id, staged_id, unnamed_policy, policy_decided)
       VALUES (1, 2, 'tcp', 5432, 'allow', 'dst', 1, 1, ${pgOnly ? 'FALSE, FALSE' : '0, 0'})`,
      [],
    ],
    [
      `INSERT INTO flow_buckets (key_id, bucket_start_ms, bucket_ms, node, connections, packets, bytes, first_ms, last_ms)
       VALUES (1, $1, 60000, 'n1', 3, 30, 300, $1, $2)`,
      [T, T + 10],
    ],
  ];
}

async function readsBack(t: Test, url: string, policyUnknownColumn: () => Promise<unknown[]>): Promise<void> {
  const store = await openStore(url);
  t.teardown(() => store.close());
  const interval = { fromMs: T - 60_000, toMs: T + 60_000 };
  t.strictSame(
    await store.flowTotals(interval),
    [{ ...oldFlow, ...counts(3) }],
    'the old flow reads back as it was: no policyUnknown, no reserved',
  );
  await store.recordFlowBatch('n1', 'b1', 1, [{ ...oldFlow, ...counts(1, T + 1, T + 2) }], T);
  t.strictSame(
    (await store.flowRows(interval)).map((r) => [r.node, r.flow.connections]),
    [['n1', 4]],
    'a new batch of the same flow finds its key: the same row',
  );
  const unknown: FlowRecord = { ...oldFlow, policyUnknown: true, ...counts(2) };
  const world: FlowEndpoint = {
    kind: 'network',
    namespace: '',
    name: 'world',
    labels: [],
    serviceAccount: '',
    internet: true,
    reserved: 'world',
  };
  const fromWorld: FlowRecord = { ...oldFlow, source: world, ...counts(5) };
  await store.recordFlowBatch('n1', 'b1', 2, [unknown, fromWorld], T);
  const totals = await store.flowTotals(interval);
  t.equal(totals.length, 3, 'three flows: the trace-only one is not merged with the one decided by no policy');
  t.strictSame(
    totals.find((f) => f.policyUnknown),
    unknown,
    'policyUnknown kept',
  );
  t.strictSame(
    totals.find((f) => f.source.name === 'world'),
    fromWorld,
    'reserved kept',
  );
  t.strictSame(
    totals.find((f) => f.source.name === 'web' && !f.policyUnknown),
    { ...oldFlow, ...counts(4, T, T + 10) },
    'the old flow untouched',
  );
  t.same(await policyUnknownColumn(), [false, true, false], 'flow_keys.policy_unknown: the old key false');
}

t.test('SQLite: migration 013 on a database filled at schema 012', async (t) => {
  const file = join(tempDir(t), 'verdict.db');
  sqliteAtSchema(file, BEFORE, seed('sqlite'));
  await readsBack(t, `sqlite:${file}`, async () => {
    const d = new Database(file, { readonly: true });
    try {
      return (d.prepare('SELECT policy_unknown FROM flow_keys ORDER BY id').pluck().all() as number[]).map(Boolean);
    } finally {
      d.close();
    }
  });
  const d = new Database(file, { readonly: true });
  t.teardown(() => d.close());
  t.same(
    d.prepare('SELECT version FROM schema_migrations ORDER BY version').pluck().all(),
    migrationFiles('sqlite').map((m) => m.version),
    'every migration recorded',
  );
});

t.test('PostgreSQL: migration 013 on a database filled at schema 012', async (t) => {
  const server = await testPostgres(t);
  const url = await server.freshSchema();
  const query = <R extends pg.QueryResultRow>(sql: string, values: unknown[] = []) => queryOnce<R>(url, sql, values);
  await postgresAtSchema(url, BEFORE, seed('postgres'));
  await readsBack(t, url, async () =>
    (await query<{ u: boolean }>('SELECT policy_unknown AS u FROM flow_keys ORDER BY id')).map((r) => r.u),
  );
  t.same(
    (
      await query<{ n: string }>(
        "SELECT conname AS n FROM pg_constraint WHERE conrelid = 'flow_keys'::regclass AND contype = 'u'",
      )
    ).map((r) => r.n),
    ['flow_keys_identity'],
    'one unique constraint on flow_keys, with policy_unknown',
  );
  t.same(
    (await query<{ version: number }>('SELECT version FROM schema_migrations ORDER BY version')).map((r) => r.version),
    migrationFiles('postgres').map((m) => m.version),
    'every migration recorded',
  );
});
