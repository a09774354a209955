import t, { type Test } from 'tap';
import { checkStoredChains } from '../../../aggregator/evidence/run-evidence.js';
import { migrationFiles } from '../../../aggregator/store/migrations.js';
import { openStore } from '../../../aggregator/store/index.js';
import { testPostgres, type TestPostgres } from '../../fixtures/postgres.js';
import { reportOf } from '../../fixtures/reports.js';
import { postgresBackend, resultOf, sqliteBackend, type Backend } from './seeded-store.js';

/** The last migration before evidence chains (010). */
const BEFORE_EVIDENCE = 9;
const T = Date.UTC(2026, 10, 1);

/**
 * Rows an older Verdict stored, in its schema (no chain columns): two scans, two succeeded runs (the second one
 * finished first) and one still queued.
 */
function oldRows(): string[] {
  const scan = (seq: number) =>
    `INSERT INTO benchmark_runs (node, boot_id, seq, benchmark_id, benchmark_version, role, started_at_ms, duration_ms, pass, fail, skip, score_percent, received_at_ms, report_json)
     VALUES ('n1', 'b1', ${seq}, 'cis-1.12', '1.12.0', 'worker', ${T + seq}, 5, 1, 1, 0, 50, ${T + seq}, '${JSON.stringify(reportOf('n1', { '4.1.1': 'PASS', '4.1.2': 'FAIL' }))}')`;
  const runRow = (id: string, status: string, finished: number | null, i: number) =>
    `INSERT INTO report_runs (id, report, report_type, trigger_kind, status, attempts, interval_start_ms, interval_end_ms, not_before_ms, created_ms, started_ms, finished_ms, inputs_json, result_json)
     VALUES ('${id}', 'weekly-cis', 'cis-benchmark', 'scheduled', '${status}', 1, ${T}, ${T + i}, ${T}, ${T + i}, ${T + i}, ${finished ?? 'NULL'}, '{"name":"weekly-cis"}',
       ${finished === null ? 'NULL' : `'${JSON.stringify(resultOf(i))}'`})`;
  return [
    scan(1),
    scan(2),
    runRow('00000000-0000-4000-8000-00000000000a', 'succeeded', T + 900, 1),
    runRow('00000000-0000-4000-8000-00000000000b', 'succeeded', T + 500, 2),
    runRow('00000000-0000-4000-8000-00000000000c', 'queued', null, 3),
  ];
}

/** A database at migration BEFORE_EVIDENCE holding oldRows(), as the older store left it. */
async function oldDatabase(t: Test, backend: Backend, extra: string[] = []): Promise<string> {
  const db = await backend.freshDb(t);
  const create =
    backend.dialect === 'sqlite'
      ? 'CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at_ms INTEGER NOT NULL)'
      : 'CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at_ms BIGINT NOT NULL)';
  const older = migrationFiles(backend.dialect).filter((m) => m.version <= BEFORE_EVIDENCE);
  await backend.tamper(db, [
    create,
    ...older.flatMap((m) => [m.sql, `INSERT INTO schema_migrations VALUES (${m.version}, '${m.name}', 0)`]),
    ...oldRows(),
    ...extra,
  ]);
  return db;
}

function backlog(t: Test, backend: Backend): void {
  t.test('migration 010 chains the rows stored before it: scans by id, runs in the order they finished', async (t) => {
    const db = await oldDatabase(t, backend);
    const store = await openStore(db);
    t.teardown(() => store.close());
    t.same(
      (await store.storedScans()).map((s) => [s.id, s.chain?.seq, s.chain?.prev === null]),
      [
        [1, 1, true],
        [2, 2, false],
      ],
    );
    const runs = await store.archivedRuns('weekly-cis');
    t.same(
      runs.filter((r) => r.chain).map((r) => [r.id.slice(-1), r.chain?.seq, r.scanAnchor?.seq]),
      [
        ['b', 1, 2],
        ['a', 2, 2],
      ],
    );
    t.equal(runs.find((r) => r.id.endsWith('c'))?.chain, null, 'a queued run has nothing to seal yet');
    t.same(
      (await checkStoredChains(store, {})).flatMap((c) => c.breaks),
      [],
    );
  });

  t.test('an old run whose result is not JSON does not stop the migration; it stays unchained, said so', async (t) => {
    const db = await oldDatabase(t, backend, [
      `INSERT INTO report_runs (id, report, report_type, trigger_kind, status, attempts, interval_start_ms, interval_end_ms, not_before_ms, created_ms, finished_ms, inputs_json, result_json)
       VALUES ('00000000-0000-4000-8000-00000000000d', 'weekly-cis', 'cis-benchmark', 'on-demand', 'succeeded', 1, 0, 1, 0, 1, 1, '{}', '{"cut off')`,
    ]);
    const store = await openStore(db);
    t.teardown(() => store.close());
    t.same(
      (await checkStoredChains(store, {})).flatMap((c) => c.breaks.map((b) => [b.kind, b.seq, b.id])),
      [['unchained', null, 'run 00000000-0000-4000-8000-00000000000d']],
    );
  });

  t.test('a row chained by the migration is protected like any other', async (t) => {
    const db = await oldDatabase(t, backend);
    await (await openStore(db)).close();
    await backend.tamper(db, [
      "UPDATE report_runs SET result_json = REPLACE(result_json, 'node-1', 'node-9') WHERE id LIKE '%a'",
    ]);
    const store = await openStore(db);
    t.teardown(() => store.close());
    t.same(
      (await checkStoredChains(store, {})).flatMap((c) => c.breaks.map((b) => [b.kind, b.seq, b.id])),
      [['digest', 2, 'run 00000000-0000-4000-8000-00000000000a']],
    );
  });
}

t.test('SQLite', async (t) => backlog(t, sqliteBackend));
let server: TestPostgres | undefined;
t.test('PostgreSQL', async (t) => {
  server = await testPostgres(t);
  backlog(
    t,
    postgresBackend(() => server as TestPostgres),
  );
});
