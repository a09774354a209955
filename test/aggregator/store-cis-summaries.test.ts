import { join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import t, { type Test } from 'tap';
import { openStore, type NodeCisSummary, type NodeHello, type Store } from '../../aggregator/store/index.js';
import { testPostgres } from '../fixtures/postgres.js';
import { reportOf } from '../fixtures/reports.js';
import { tempDir } from '../fixtures/tmp.js';

// Issue 13: the CIS summary and /metrics read one compact row per node (node_cis_summaries, migration 009), kept in
// the transaction that stores a run, instead of every check row of every node's latest run. Both stores, real
// databases.

const hello = (name: string, bootId = 'b1'): NodeHello => ({
  name,
  role: 'worker',
  labels: {},
  kubeletVersion: 'v1.32.1',
  kubernetesVersion: 'v1.32.1',
  osImage: '',
  kernelVersion: '',
  architecture: 'x64',
  agentVersion: '0.1.0',
  bootId,
});

interface Backend {
  /** A `--db` value naming a new, empty store. */
  freshDb(t: Test): Promise<string>;
  /** Run SQL on the database outside any store. */
  sql(db: string, text: string): Promise<void>;
}

const sqlite: Backend = {
  freshDb: async (t) => `sqlite:${join(tempDir(t), 'verdict.db')}`,
  async sql(db, text) {
    const file = new Database(db.slice('sqlite:'.length));
    try {
      file.exec(text);
    } finally {
      file.close();
    }
  },
};

const postgres = (freshSchema: () => Promise<string>): Backend => ({
  freshDb: freshSchema,
  async sql(db, text) {
    const c = new pg.Client({ connectionString: db });
    await c.connect();
    try {
      await c.query(text);
    } finally {
      await c.end();
    }
  },
});

const bySummaryNode = (s: NodeCisSummary[]) => [...s].sort((a, b) => (a.node < b.node ? -1 : 1));

const NOT_A_NODE = 'no kubelet found under /host (no kubelet, k3s or rke2 process, no kubelet.service unit)';

async function seeded(t: Test, backend: Backend): Promise<{ db: string; s: Store }> {
  const db = await backend.freshDb(t);
  const s = await openStore(db);
  for (const n of ['n1', 'n2', 'n3']) await s.recordHello(hello(n), 0);
  const at = (d: string) => ({ startedAt: `2026-11-0${d}T00:00:00.000Z` });
  await s.recordBenchmarkRun('n1', 'b1', 1, reportOf('n1', { '4.1.1': 'FAIL', '4.1.9': 'FAIL' }, at('1')), 1);
  await s.recordBenchmarkRun('n1', 'b1', 2, reportOf('n1', { '4.1.1': 'PASS', '4.1.9': 'FAIL' }, at('2')), 2);
  await s.recordBenchmarkRun(
    'n2',
    'b1',
    1,
    reportOf('n2', { '4.1.1': 'FAIL', '4.2.1': 'FAIL', '4.2.2': 'SKIP' }, { ...at('1'), unscored: ['4.2.1'] }),
    3,
  );
  return { db, s };
}

function cases(t: Test, backend: Backend): void {
  t.test(
    "a node's summary follows its latest run: scored failures only, an older resend changes nothing",
    async (t) => {
      const { s } = await seeded(t, backend);
      t.teardown(() => s.close());
      // A resend of an older run from another boot arrives late: not the latest, so the summary stays.
      await s.recordBenchmarkRun(
        'n1',
        'b0',
        9,
        reportOf('n1', { '4.1.1': 'FAIL' }, { startedAt: '2026-10-01T00:00:00.000Z' }),
        4,
      );
      const rows = bySummaryNode(await s.cisSummaries());
      t.strictSame(
        rows.map(({ runId: _, ...r }) => r),
        [
          {
            node: 'n1',
            benchmarkId: 'cis-1.12',
            role: 'worker',
            pass: 1,
            fail: 1,
            skip: 0,
            scorePercent: 50,
            failedChecks: ['4.1.9'],
          },
          {
            node: 'n2',
            benchmarkId: 'cis-1.12',
            role: 'worker',
            pass: 0,
            fail: 1,
            skip: 1,
            scorePercent: 0,
            failedChecks: ['4.1.1'],
          },
        ],
        'n3 has no run; n2 unscored 4.2.1 failure is not a failed check',
      );
      const titles = await s.checkTitles([
        { runId: rows[0]!.runId, checkId: '4.1.9' },
        { runId: rows[1]!.runId, checkId: '4.1.1' },
        { runId: rows[1]!.runId, checkId: 'nope' },
      ]);
      t.strictSame(
        [...titles.entries()].sort(),
        [
          [`${rows[0]!.runId} 4.1.9`, 'check 4.1.9'],
          [`${rows[1]!.runId} 4.1.1`, 'check 4.1.1'],
        ],
        'titles are read from the runs named, a missing check left out',
      );
      t.strictSame(await s.checkTitles([]), new Map());
    },
  );

  t.test('a not-assessable run is stored with its reason and shows on the node, not as a score', async (t) => {
    const { s } = await seeded(t, backend);
    t.teardown(() => s.close());
    const report = { ...reportOf('n3', {}, { startedAt: '2026-11-03T00:00:00.000Z' }), notAssessable: NOT_A_NODE };
    await s.recordBenchmarkRun('n3', 'b1', 1, report, 5);
    const n3 = (await s.cisSummaries()).find((r) => r.node === 'n3');
    t.equal(n3?.notAssessable, NOT_A_NODE);
    t.strictSame(n3?.failedChecks, []);
    const node = (await s.listNodes()).find((n) => n.name === 'n3');
    t.equal(node?.latest?.notAssessable, NOT_A_NODE, 'listNodes carries the reason');
    t.equal((await s.listNodes()).find((n) => n.name === 'n1')?.latest?.notAssessable, undefined);
    t.equal((await s.nodeReport('n3'))?.notAssessable, NOT_A_NODE, 'and the stored report');
    // The node becomes a node again (the host mount fixed): its next run is a score again.
    await s.recordBenchmarkRun(
      'n3',
      'b1',
      2,
      reportOf('n3', { '4.1.1': 'FAIL' }, { startedAt: '2026-11-04T00:00:00Z' }),
      6,
    );
    const again = (await s.cisSummaries()).find((r) => r.node === 'n3');
    t.equal(again?.notAssessable, undefined);
    t.strictSame(again?.failedChecks, ['4.1.1']);
  });

  t.test('a forgotten node leaves the summaries; back again, its old summary does not return', async (t) => {
    const { s } = await seeded(t, backend);
    t.teardown(() => s.close());
    await s.forgetNode('n1');
    t.same(
      (await s.cisSummaries()).map((r) => r.node),
      ['n2'],
    );
    await s.recordHello(hello('n1', 'b2'), 10);
    t.same(
      (await s.cisSummaries()).map((r) => r.node),
      ['n2'],
      'a node back with no new run has no summary',
    );
  });

  t.test('migration 009 builds the summaries of a database stored before it', async (t) => {
    const { db, s } = await seeded(t, backend);
    const before = bySummaryNode(await s.cisSummaries());
    await s.close();
    // The database as a release without 009 left it.
    await backend.sql(
      db,
      'DROP TABLE node_cis_summaries; DROP TABLE cluster_cis_scans; DELETE FROM schema_migrations WHERE version = 9',
    );
    const again = await openStore(db);
    t.teardown(() => again.close());
    const after = bySummaryNode(await again.cisSummaries());
    t.equal(after.length, 2);
    t.strictSame(after, before, 'the same rows as the store keeps them');
  });
}

t.test('SQLite store', async (t) => cases(t, sqlite));

t.test('PostgreSQL store', async (t) => {
  const server = await testPostgres(t);
  cases(
    t,
    postgres(() => server.freshSchema()),
  );
});
