import { join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import t, { type Test } from 'tap';
import { openStore, type NodeHello, type Store } from '../../aggregator/store/index.js';
import { flow, T0 } from '../fixtures/flows.js';
import { testPostgres } from '../fixtures/postgres.js';
import { tempDir } from '../fixtures/tmp.js';

const HOUR = 3_600_000;

const hello: NodeHello = {
  name: 'n1',
  role: 'worker',
  labels: {},
  kubeletVersion: '',
  kubernetesVersion: '',
  osImage: '',
  kernelVersion: '',
  architecture: '',
  agentVersion: '',
  bootId: 'b1',
};

/** A flow only the old bucket has: its own source endpoint and policy list. */
const OLD = flow({
  source: { name: 'old-source', labels: ['retired=yes'] },
  policies: [{ tier: 'default', namespace: 'shop', name: 'old-policy', action: 'allow', kind: 'NetworkPolicy' }],
});
/** A flow of a later bucket, kept by retention. */
const KEPT = flow({ startMs: T0 + 2 * HOUR + 1000, endMs: T0 + 2 * HOUR + 2000 });

type Counts = { keys: number; endpoints: number; lists: number };
const COUNT_SQL = `SELECT (SELECT COUNT(*) FROM flow_keys) AS keys, (SELECT COUNT(*) FROM flow_endpoints) AS endpoints,
  (SELECT COUNT(*) FROM flow_policy_lists) AS lists`;

interface Case {
  name: string;
  /** A `--db` value naming a new, empty store. */
  freshDb(t: Test): Promise<string>;
  /** The dictionary tables' row counts, read outside the stores. */
  counts(db: string): Promise<Counts>;
}

/**
 * Retention deletes the dictionary entries no bucket uses any more, and a writer that kept their ids in memory (the
 * same store, or under PostgreSQL another replica) adds them again rather than referring to ids that are gone.
 */
function pruneCase(t: Test, c: Case, replicas: boolean): void {
  t.test(
    `${c.name}: retention prunes dictionary entries no bucket uses; a writer that kept their ids adds them again`,
    async (t) => {
      const db = await c.freshDb(t);
      const writer = await openStore(db);
      t.teardown(() => writer.close());
      // Under PostgreSQL the compaction runs on another replica (its own pool and its own kept ids).
      let compactor: Store = writer;
      if (replicas) {
        compactor = await openStore(db);
        t.teardown(() => compactor.close());
      }
      await writer.recordHello(hello, T0);
      await writer.recordFlowBatch('n1', 'b1', 1, [OLD, KEPT], T0);
      t.same(await c.counts(db), { keys: 2, endpoints: 3, lists: 3 }, 'before: two keys; three endpoints; three lists');

      t.same(await compactor.compactFlows(0, T0 + HOUR), { rolledUp: 0, deleted: 1 });
      t.same(
        await c.counts(db),
        { keys: 1, endpoints: 2, lists: 2 },
        'after: the old key, its source and its policy list are gone; what the kept bucket uses stays',
      );

      // The writer still knew the old key's id: storing the old flow again must make new entries.
      await writer.recordFlowBatch('n1', 'b1', 2, [OLD], T0 + 3 * HOUR);
      const rows = await writer.flowRows({ fromMs: 0, toMs: Number.MAX_SAFE_INTEGER });
      t.same(
        rows.map((r) => [r.flow.source.name, r.flow.source.labels, r.flow.policies.map((p) => p.name)]).sort(),
        [
          ['frontend', ['app=frontend'], ['allow-frontend']],
          ['old-source', ['retired=yes'], ['old-policy']],
        ],
        'both flows read back whole',
      );
      t.same(await c.counts(db), { keys: 2, endpoints: 3, lists: 3 });
    },
  );
}

pruneCase(
  t,
  {
    name: 'SQLite',
    freshDb: async (t) => `sqlite:${join(tempDir(t), 'verdict.db')}`,
    async counts(db) {
      const file = new Database(db.slice('sqlite:'.length), { readonly: true });
      try {
        return file.prepare(COUNT_SQL).get() as Counts;
      } finally {
        file.close();
      }
    },
  },
  false,
);

t.test('PostgreSQL', async (t) => {
  const server = await testPostgres(t);
  pruneCase(
    t,
    {
      name: 'PostgreSQL, two replicas',
      freshDb: () => server.freshSchema(),
      async counts(db) {
        const c = new pg.Client({ connectionString: db });
        await c.connect();
        try {
          const [r] = (await c.query<Record<keyof Counts, string>>(COUNT_SQL)).rows;
          return { keys: Number(r!.keys), endpoints: Number(r!.endpoints), lists: Number(r!.lists) };
        } finally {
          await c.end();
        }
      },
    },
    true,
  );
});
