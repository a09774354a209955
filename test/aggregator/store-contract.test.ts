import { createServer } from 'node:net';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import t, { type Test } from 'tap';
import { openStore, type NodeHello, type NodeRecord, type Store } from '../../aggregator/store/index.js';
import { migrationFiles } from '../../aggregator/store/migrations.js';
import { testPostgres, type TestPostgres } from '../fixtures/postgres.js';
import { reportOf } from '../fixtures/reports.js';
import { tempDir } from '../fixtures/tmp.js';

/**
 * One set of behaviours, run against both Store implementations: the SQLite file
 * and a real PostgreSQL server. A case here is the contract; a difference between
 * the stores is a bug in one of them.
 */
interface Backend {
  dialect: 'sqlite' | 'postgres';
  /** A `--db` value naming a new, empty store. */
  freshDb(t: Test): Promise<string>;
  /** The versions recorded in the store's schema_migrations, ascending. */
  appliedMigrations(db: string): Promise<number[]>;
}

const hello = (name: string, bootId = 'b1', labels: Record<string, string> = { zone: 'a' }): NodeHello => ({
  name,
  role: 'worker',
  labels,
  kubeletVersion: 'v1.32.1',
  kubernetesVersion: 'v1.32.1',
  osImage: 'Debian GNU/Linux 12',
  kernelVersion: '6.1.0',
  architecture: 'x64',
  agentVersion: '0.1.0',
  bootId,
});

/** Open a fresh store, closed when the test ends. */
async function freshStore(t: Test, backend: Backend): Promise<Store> {
  const store = await openStore(await backend.freshDb(t));
  t.teardown(() => store.close());
  return store;
}

function contract(t: Test, backend: Backend): void {
  t.test('migrations apply once; reopening the store keeps the data', async (t) => {
    const db = await backend.freshDb(t);
    const first = await openStore(db);
    t.equal(first.kind, backend.dialect);
    await first.recordHello(hello('n1'), 1000);
    await first.close();
    for (let i = 0; i < 2; i++) {
      const again = await openStore(db);
      t.same((await again.listNodes()).map((n) => n.name), ['n1']);
      await again.close();
    }
    t.same(await backend.appliedMigrations(db), migrationFiles(backend.dialect).map((m) => m.version));
  });

  t.test('a run is stored once per (node, boot id, seq); a resend is a duplicate', async (t) => {
    const s = await freshStore(t, backend);
    t.same(await s.recordHello(hello('n1'), 1000), { lastStoredSeq: 0 });
    const r = reportOf('n1', { '4.1.1': 'PASS', '4.1.2': 'FAIL' });
    t.same(await s.recordBenchmarkRun('n1', 'b1', 1, r, 2000), { duplicate: false });
    t.same(await s.recordBenchmarkRun('n1', 'b1', 1, r, 3000), { duplicate: true });
    t.same(await s.recordHello(hello('n1', 'b2'), 4000), { lastStoredSeq: 0 }, 'a new boot id starts a new sequence');
    t.same(await s.recordBenchmarkRun('n1', 'b2', 1, r, 5000), { duplicate: false }, 'the same seq under another boot id is new');
    t.same(await s.recordBenchmarkRun('n2', 'b1', 1, reportOf('n2', { '4.1.1': 'PASS' }), 5000), { duplicate: false }, 'the same seq and boot id of another node is new');
  });

  t.test('a seq at or below the highest stored for its boot id is a duplicate, stored or not', async (t) => {
    const s = await freshStore(t, backend);
    await s.recordHello(hello('n1'), 0);
    t.same(await s.recordBenchmarkRun('n1', 'b1', 5, reportOf('n1', { '4.1.1': 'PASS' }, { startedAt: '2026-11-01T05:00:00Z' }), 1), { duplicate: false });
    t.same(await s.recordBenchmarkRun('n1', 'b1', 3, reportOf('n1', { '4.1.1': 'FAIL' }, { startedAt: '2026-11-01T03:00:00Z' }), 2), { duplicate: true }, 'the agent sends in order: 3 after 5 is a resend');
    t.equal(await s.nodeReport('n1', Date.parse('2026-11-01T04:00:00Z')), undefined, 'and it was not stored');
    t.same(await s.recordBenchmarkRun('n1', 'b1', 6, reportOf('n1', { '4.1.1': 'PASS' }, { startedAt: '2026-11-01T06:00:00Z' }), 3), { duplicate: false });
  });

  t.test('Hello answers the highest seq stored for its own boot id', async (t) => {
    const s = await freshStore(t, backend);
    await s.recordHello(hello('n1', 'b1'), 0);
    for (const seq of [1, 2, 3]) await s.recordBenchmarkRun('n1', 'b1', seq, reportOf('n1', { '4.1.1': 'PASS' }), seq);
    t.same(await s.recordHello(hello('n1', 'b1'), 10), { lastStoredSeq: 3 }, 'a reconnect of the same boot');
    t.same(await s.recordHello(hello('n1', 'b2'), 11), { lastStoredSeq: 0 }, 'a reboot');
    await s.recordBenchmarkRun('n1', 'b2', 1, reportOf('n1', { '4.1.1': 'PASS' }), 12);
    t.same(await s.recordHello(hello('n1', 'b2'), 13), { lastStoredSeq: 1 });
    t.same(await s.recordHello(hello('n1', 'b1'), 14), { lastStoredSeq: 3 }, 'the old boot keeps its own high-water mark');
    t.same(await s.recordHello(hello('n2', 'b1'), 15), { lastStoredSeq: 0 }, 'boot ids are per node');
  });

  t.test('an older run resent later does not replace the latest', async (t) => {
    const s = await freshStore(t, backend);
    await s.recordHello(hello('n1'), 0);
    await s.recordBenchmarkRun('n1', 'b1', 2, reportOf('n1', { '4.1.1': 'PASS' }, { startedAt: '2026-11-02T00:00:00Z' }), 1);
    await s.recordBenchmarkRun('n1', 'b1', 3, reportOf('n1', { '4.1.1': 'FAIL' }, { startedAt: '2026-11-01T00:00:00Z' }), 2);
    t.equal((await s.nodeReport('n1'))?.checks[0]?.status, 'PASS');
    t.equal((await s.listNodes())[0]?.latest?.startedAtMs, Date.parse('2026-11-02T00:00:00Z'));
    await s.recordBenchmarkRun('n1', 'b1', 4, reportOf('n1', { '4.1.1': 'FAIL' }, { startedAt: '2026-11-02T00:00:00Z' }), 3);
    t.equal((await s.nodeReport('n1'))?.checks[0]?.status, 'FAIL', 'a run that started at the same time as the latest replaces it');
  });

  t.test('nodeReport answers the report as sent; ?at the latest run started at or before it', async (t) => {
    const s = await freshStore(t, backend);
    await s.recordHello(hello('n1'), 0);
    const older = reportOf('n1', { '4.1.1': 'FAIL', '4.1.2': 'SKIP' }, { startedAt: '2026-11-01T00:00:00.000Z', unscored: ['4.1.2'] });
    const newer = reportOf('n1', { '4.1.1': 'PASS' }, { startedAt: '2026-11-02T00:00:00.000Z' });
    await s.recordBenchmarkRun('n1', 'b1', 1, older, 1);
    await s.recordBenchmarkRun('n1', 'b1', 2, newer, 2);
    t.equal(JSON.stringify(await s.nodeReport('n1')), JSON.stringify(newer), 'the same document, key order included');
    t.strictSame(await s.nodeReport('n1', Date.parse('2026-11-01T12:00:00Z')), older);
    t.strictSame(await s.nodeReport('n1', Date.parse('2026-11-01T00:00:00Z')), older, 'at is inclusive');
    t.strictSame(await s.nodeReport('n1', Date.parse('2026-11-03T00:00:00Z')), newer);
    t.equal(await s.nodeReport('n1', Date.parse('2026-10-01T00:00:00Z')), undefined, 'nothing started that early');
    t.equal(await s.nodeReport('nobody'), undefined);
    t.equal(await s.nodeReport('nobody', Date.now()), undefined);
  });

  t.test("latest check statuses come from each node's latest run only", async (t) => {
    const s = await freshStore(t, backend);
    await s.recordHello(hello('n1'), 0);
    await s.recordHello(hello('n2'), 0);
    await s.recordHello(hello('n3'), 0);
    await s.recordBenchmarkRun('n1', 'b1', 1, reportOf('n1', { '4.1.1': 'FAIL', '4.1.9': 'FAIL' }, { startedAt: '2026-11-01T00:00:00Z' }), 1);
    await s.recordBenchmarkRun('n1', 'b1', 2, reportOf('n1', { '4.1.1': 'PASS' }, { startedAt: '2026-11-02T00:00:00Z' }), 2);
    await s.recordBenchmarkRun('n2', 'b1', 1, reportOf('n2', { '4.1.1': 'FAIL', '4.2.1': 'SKIP' }, { unscored: ['4.2.1'], benchmark: 'cis-1.11' }), 3);
    const statuses = (await s.latestCheckStatuses()).sort((a, b) => `${a.node} ${a.checkId}`.localeCompare(`${b.node} ${b.checkId}`));
    t.strictSame(statuses, [
      { node: 'n1', benchmarkId: 'cis-1.12', checkId: '4.1.1', title: 'check 4.1.1', status: 'PASS', scored: true },
      { node: 'n2', benchmarkId: 'cis-1.11', checkId: '4.1.1', title: 'check 4.1.1', status: 'FAIL', scored: true },
      { node: 'n2', benchmarkId: 'cis-1.11', checkId: '4.2.1', title: 'check 4.2.1', status: 'SKIP', scored: false },
    ]);
  });

  t.test('listNodes answers the Hello and the latest counts as plain numbers, sorted by name', async (t) => {
    const s = await freshStore(t, backend);
    await s.recordHello(hello('n2', 'b1', {}), 1000);
    await s.recordHello(hello('n1', 'b1', { zone: 'a', 'node-role.kubernetes.io/worker': '' }), 2000);
    await s.recordBenchmarkRun('n1', 'b1', 1, reportOf('n1', { '4.1.1': 'PASS', '4.1.2': 'FAIL', '4.1.3': 'FAIL', '4.1.4': 'SKIP' }, { startedAt: '2026-11-01T10:00:00.000Z' }), 3000);
    await s.recordHello(hello('n1', 'b2', { zone: 'b' }), 4000);
    const expected: NodeRecord[] = [
      {
        ...hello('n1', 'b2', { zone: 'b' }),
        connected: true,
        firstSeenMs: 2000,
        lastSeenMs: 4000,
        latest: { benchmarkId: 'cis-1.12', benchmarkVersion: '1.12.0', role: 'worker', startedAtMs: Date.parse('2026-11-01T10:00:00.000Z'), pass: 1, fail: 2, skip: 1, scorePercent: 33.3 },
      },
      { ...hello('n2', 'b1', {}), connected: true, firstSeenMs: 1000, lastSeenMs: 1000, latest: undefined },
    ];
    t.strictSame(await s.listNodes(), expected);
  });

  t.test('connected follows Hello and disconnects; last seen never goes back', async (t) => {
    const s = await freshStore(t, backend);
    await s.recordHello(hello('n1'), 1000);
    await s.recordHello(hello('n2'), 1000);
    t.same((await s.listNodes()).map((n) => n.connected), [true, true]);
    await s.recordBenchmarkRun('n1', 'b1', 1, reportOf('n1', { '4.1.1': 'PASS' }), 3000);
    t.equal((await s.listNodes())[0]?.lastSeenMs, 3000, 'a stored run is a sign of life');
    await s.markDisconnected('n1', 5000);
    let [n1, n2] = await s.listNodes();
    t.same([n1?.connected, n1?.lastSeenMs], [false, 5000]);
    t.equal(n2?.connected, true, 'other nodes stay connected');
    await s.markDisconnected('n1', 4000);
    t.equal((await s.listNodes())[0]?.lastSeenMs, 5000, 'a late disconnect does not move last seen back');
    await s.recordBenchmarkRun('n1', 'b1', 1, reportOf('n1', { '4.1.1': 'PASS' }), 6000);
    t.equal((await s.listNodes())[0]?.lastSeenMs, 6000, 'a resend is a sign of life too');
    await s.recordHello(hello('n1'), 7000);
    await s.markAllDisconnected();
    [n1, n2] = await s.listNodes();
    t.same([n1?.connected, n2?.connected, n1?.lastSeenMs], [false, false, 7000]);
    await s.markDisconnected('nobody', 1);
    t.equal((await s.listNodes()).length, 2, 'disconnecting an unknown node creates nothing');
  });

  t.test('ping answers while open; close is idempotent', async (t) => {
    const store = await openStore(await backend.freshDb(t));
    await store.ping();
    await store.close();
    await store.close();
    t.pass();
  });
}

const sqlite: Backend = {
  dialect: 'sqlite',
  freshDb: async (t) => `sqlite:${join(tempDir(t), 'verdict.db')}`,
  async appliedMigrations(db) {
    const file = new Database(db.slice('sqlite:'.length), { readonly: true });
    try {
      return (file.prepare('SELECT version FROM schema_migrations ORDER BY version').all() as { version: number }[]).map((r) => r.version);
    } finally {
      file.close();
    }
  },
};

function postgres(server: TestPostgres): Backend {
  return {
    dialect: 'postgres',
    freshDb: () => server.freshSchema(),
    appliedMigrations: async (db) => (await query<{ version: number }>(db, 'SELECT version FROM schema_migrations ORDER BY version')).map((r) => r.version),
  };
}

/** One query on a connection of its own, outside any store: what is really in the tables. */
async function query<R extends pg.QueryResultRow>(url: string, sql: string): Promise<R[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query<R>(sql)).rows;
  } finally {
    await c.end();
  }
}

/** Replicas: stores on separate pools sharing one database, as separate aggregator processes would. */
function replicas(t: Test, server: TestPostgres): void {
  t.test('replicas starting together on an empty store migrate it once', async (t) => {
    const db = await server.freshSchema();
    const stores = await Promise.all([openStore(db), openStore(db), openStore(db)]);
    t.teardown(() => Promise.all(stores.map((s) => s.close())));
    t.same(await postgres(server).appliedMigrations(db), migrationFiles('postgres').map((m) => m.version));
  });

  /**
   * One agent's messages reaching two replicas at once (it reconnected to B while
   * A still worked through the old stream): each replica takes them in order, as
   * an agent session does, and each seq must be stored exactly once.
   */
  const race = async (t: Test, withHello: boolean) => {
    const db = await server.freshSchema();
    const [a, b] = await Promise.all([openStore(db), openStore(db)]);
    t.teardown(() => Promise.all([a.close(), b.close()]));
    if (withHello) await a.recordHello(hello('n1'), 0);
    const seqs = Array.from({ length: 40 }, (_, i) => i + 1);
    const inOrder = async (store: Store) => {
      const duplicates: boolean[] = [];
      for (const seq of seqs) {
        const report = reportOf('n1', { '4.1.1': seq % 2 ? 'PASS' : 'FAIL', '4.1.2': 'PASS' }, { startedAt: new Date(Date.UTC(2026, 10, 1, 0, seq)).toISOString() });
        await new Promise((resolve) => setTimeout(resolve, Math.floor(Math.random() * 3))); // either replica may go first
        duplicates.push((await store.recordBenchmarkRun('n1', 'b1', seq, report, seq)).duplicate);
      }
      return duplicates;
    };
    const [fromA, fromB] = await Promise.all([inOrder(a), inOrder(b)]);
    t.same(
      seqs.filter((_, i) => fromA[i] === fromB[i]),
      [],
      'for every seq exactly one replica stored it and the other answered duplicate',
    );
    const rows = await query<{ seq: number; copies: number }>(db, 'SELECT seq::int, count(*)::int AS copies FROM benchmark_runs GROUP BY seq ORDER BY seq');
    t.same(rows, seqs.map((seq) => ({ seq, copies: 1 })), 'one row per seq');
    const checks = await query<{ n: number }>(db, 'SELECT count(*)::int AS n FROM check_results');
    t.equal(checks[0]?.n, seqs.length * 2, 'no check rows from a run that was not stored');
    t.same(await b.recordHello(hello('n1'), 100), { lastStoredSeq: 40 });
    const last = new Date(Date.UTC(2026, 10, 1, 0, 40)).toISOString();
    t.equal((await a.nodeReport('n1', Date.UTC(2027, 0, 1)))?.startedAt, last, 'the last run is there');
    if (withHello) t.equal((await a.nodeReport('n1'))?.startedAt, last, 'and it is the latest');
    t.comment(`replica A stored ${fromA.filter((d) => !d).length} of ${seqs.length}, replica B ${fromB.filter((d) => !d).length}`);
  };
  t.test('two replicas storing the same (node, boot id, seq) at once store it exactly once', (t) => race(t, true));
  t.test('…even for a node with no row yet (no Hello stored)', (t) => race(t, false));

  t.test('an older run that a second replica stores last does not become the latest', async (t) => {
    const db = await server.freshSchema();
    const [a, b] = await Promise.all([openStore(db), openStore(db)]);
    t.teardown(() => Promise.all([a.close(), b.close()]));
    await a.recordHello(hello('n1'), 0);
    for (let round = 0; round < 10; round++) {
      const boot = `boot-${round}`;
      // Two boots of one node (a reboot while the old stream drains): the older scan must never win.
      await Promise.all([
        a.recordBenchmarkRun('n1', `${boot}-old`, 1, reportOf('n1', { '4.1.1': 'FAIL' }, { startedAt: new Date(Date.UTC(2026, 10, 1, round, 0)).toISOString() }), 1),
        b.recordBenchmarkRun('n1', `${boot}-new`, 1, reportOf('n1', { '4.1.1': 'PASS' }, { startedAt: new Date(Date.UTC(2026, 10, 1, round, 30)).toISOString() }), 1),
      ]);
      t.equal((await a.nodeReport('n1'))?.checks[0]?.status, 'PASS', `round ${round}`);
    }
  });

  t.test('a PostgreSQL server that does not answer fails with a clear error and no password', async (t) => {
    const err = (await openStore(await freePortUrl()).then(
      () => undefined,
      (e: unknown) => e,
    )) as Error | undefined;
    t.match(err?.message, /^VERDICT_STORE_UNAVAILABLE: cannot connect to PostgreSQL at postgresql:\/\/verdict:\*\*\*@127\.0\.0\.1:\d+\/verdict: .*; check --db/);
    t.notMatch(err?.message, /secret/);
  });
}

/** A postgres:// URL for a loopback port nothing listens on. */
async function freePortUrl(): Promise<string> {
  const port = await new Promise<number>((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => resolve(typeof a === 'object' && a ? a.port : 0));
    });
  });
  return `postgresql://verdict:secret@127.0.0.1:${port}/verdict`;
}

t.test('SQLite store', async (t) => {
  contract(t, sqlite);
});

t.test('PostgreSQL store', async (t) => {
  const server = await testPostgres(t);
  contract(t, postgres(server));
  replicas(t, server);
});
