import { deepStrictEqual } from 'node:assert';
import { join } from 'node:path';
import fc from 'fast-check';
import pg from 'pg';
import t, { type Test } from 'tap';
import { CisView } from '../../aggregator/cis-view.js';
import { clusterSummary, mostFailedChecks, nodeRows, type Thresholds } from '../../aggregator/compute/cis.js';
import { AggregatorMetrics } from '../../aggregator/metrics.js';
import { openStore, type NodeHello, type Store } from '../../aggregator/store/index.js';
import type { CheckResult, NodeRole } from '../../common/scan-report.js';
import { fuzzParams } from '../fixtures/fuzz.js';
import { testPostgres } from '../fixtures/postgres.js';
import { reportOf } from '../fixtures/reports.js';
import { tempDir } from '../fixtures/tmp.js';
import { until } from '../fixtures/wait.js';

// Issue 13: the CIS summary and the CIS series of /metrics are kept in memory as the store tells its changes
// (cis-view.ts), not read whole at every request. Whatever happens to the nodes — runs, not-assessable runs, older
// resends, Hellos, disconnects (also by a stream that is no longer the node's), heartbeats, nodes forgotten, every
// node marked disconnected — what is kept must equal what a reading of the store from scratch gives: the summary as
// compute/cis.ts makes it from store.cisSummaries(), and the CIS series as an aggregator that reads the store at
// every scrape exports them, and the `/api/v1/nodes` rows as made from store.listNodes(). Real SQLite and real
// PostgreSQL; on PostgreSQL also across two replicas.

// The last two sort apart in UTF-8 byte order (the store's) and in UTF-16 code unit order (JavaScript's <).
const NODES = ['n1', 'n2', 'n3', 'we"ird\\n', 'n\uFFFD', 'n\u{1F600}'];
const CHECKS = ['1.1.1', '1.1.2', '4.2.1', '4.2.9', '4.2.10'];
const OPTIONS: (Thresholds & { benchmark?: string })[] = [
  { highThreshold: 100, medThreshold: 50 },
  { highThreshold: 60, medThreshold: 20 },
  { highThreshold: 100, medThreshold: 50, benchmark: 'cis-1.11' },
];
const NOT_A_NODE = 'no kubelet found under /host';

const hello = (name: string, bootId: string, kubeletVersion = 'v1.32.1', role: NodeRole = 'worker'): NodeHello => ({
  name,
  role,
  labels: {},
  kubeletVersion,
  kubernetesVersion: 'v1.32.1',
  osImage: '',
  kernelVersion: '',
  architecture: 'x64',
  agentVersion: '0.1.0',
  bootId,
});

type Op =
  | { op: 'hello'; node: string; agoMin: number; kubelet?: string; role?: NodeRole }
  | {
      op: 'run';
      node: string;
      agoMin: number;
      statuses: Record<string, CheckResult['status']>;
      unscored: string[];
      benchmark: string;
      startedDay: number;
      notAssessable: boolean;
    }
  | { op: 'disconnect'; node: string; agoMin: number; stale: boolean }
  | { op: 'touch'; node: string; agoMin: number }
  | { op: 'forget'; node: string }
  | { op: 'allDisconnected' };

const node = fc.constantFrom(...NODES);
// Whole minutes away from the 3-minute connection bound, so a scrape a few ms later decides the same.
const agoMin = fc.constantFrom(0, 1, 5, 10);
const OP: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({
      op: fc.constant('hello' as const),
      node,
      agoMin,
      // An agent upgraded, or the node relabelled: `/api/v1/nodes` shows what the latest Hello said.
      kubelet: fc.constantFrom('v1.32.1', 'v1.33.0'),
      role: fc.constantFrom<NodeRole>('worker', 'control-plane'),
    }),
  },
  {
    weight: 5,
    arbitrary: fc.record({
      op: fc.constant('run' as const),
      node,
      agoMin,
      statuses: fc.dictionary(
        fc.constantFrom(...CHECKS),
        fc.constantFrom<CheckResult['status']>('PASS', 'FAIL', 'SKIP'),
        {
          minKeys: 1,
        },
      ),
      unscored: fc.subarray(CHECKS, { maxLength: 2 }),
      benchmark: fc.constantFrom('cis-1.12', 'cis-1.11'),
      // An older start than the node's latest is a late resend: stored, never the latest.
      startedDay: fc.integer({ min: 1, max: 28 }),
      notAssessable: fc.oneof(
        { weight: 4, arbitrary: fc.constant(false) },
        { weight: 1, arbitrary: fc.constant(true) },
      ),
    }),
  },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('disconnect' as const), node, agoMin, stale: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('touch' as const), node, agoMin }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('forget' as const), node }) },
  { weight: 1, arbitrary: fc.constant({ op: 'allDisconnected' as const }) },
);

/** Applies ops to a store as the aggregator's ingest and node lifecycle do. */
function applier(store: Store) {
  let seq = 0;
  let conn = 0;
  const connection = new Map<string, string>();
  return async (o: Op): Promise<void> => {
    const at = Date.now() - ('agoMin' in o ? o.agoMin : 0) * 60_000;
    switch (o.op) {
      case 'hello':
        connection.set(o.node, `c${++conn}`);
        await store.recordHello(hello(o.node, 'b1', o.kubelet, o.role), at, connection.get(o.node));
        return;
      case 'run': {
        const report = reportOf(o.node, o.statuses, {
          unscored: o.unscored,
          benchmark: o.benchmark,
          startedAt: `2026-11-${String(o.startedDay).padStart(2, '0')}T00:00:00.000Z`,
        });
        await store.recordBenchmarkRun(
          o.node,
          'b1',
          ++seq,
          o.notAssessable ? { ...report, checks: [], notAssessable: NOT_A_NODE } : report,
          at,
        );
        return;
      }
      case 'disconnect':
        await store.markDisconnected(o.node, at, o.stale ? 'a stream long gone' : connection.get(o.node));
        return;
      case 'touch':
        await store.touchNode(o.node, at);
        return;
      case 'forget':
        await store.forgetNode(o.node);
        return;
      case 'allDisconnected':
        await store.markAllDisconnected();
    }
  };
}

/** The summary as compute/cis.ts makes it from the store's rows, read now. */
async function summaryFromScratch(store: Store, options: Thresholds & { benchmark?: string }) {
  const [summaries, cluster] = await Promise.all([store.cisSummaries(), store.latestClusterScan()]);
  const titles = await store.checkTitles(
    mostFailedChecks(summaries, options).map((f) => ({ runId: f.sampleRunId, checkId: f.id })),
  );
  return clusterSummary(summaries, titles, options, cluster);
}

/** The store as a test's stand-in offers it: no change notices, so a view reads it whole at every request. */
const unwatched = (store: Store): Store =>
  new Proxy(store, {
    get(target, key) {
      if (key === 'watchNodes') return undefined;
      const v = Reflect.get(target, key, target) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });

/** The CIS series of a scrape (not the per-process counters), sorted; as /metrics sends it, or as text. */
async function cisSeries(metrics: AggregatorMetrics, as: 'bytes' | 'text' = 'text'): Promise<string[]> {
  const text = as === 'bytes' ? Buffer.concat(await metrics.expositionBytes()).toString() : await metrics.exposition();
  return text
    .split('\n')
    .filter((l) => /^verdict_(cis_|agent_connected|agent_last_seen)/.test(l))
    .sort();
}

/** Throws (for fast-check to shrink) when the kept answers differ from the store's from scratch. */
async function sameAsFromScratch(store: Store, metrics: AggregatorMetrics, what: string): Promise<void> {
  for (const o of OPTIONS)
    deepStrictEqual(
      JSON.parse(await metrics.cis.summaryJson(o)),
      await summaryFromScratch(store, o),
      `${what}: summary ${JSON.stringify(o)}`,
    );
  deepStrictEqual(
    await cisSeries(metrics, 'bytes'),
    await cisSeries(new AggregatorMetrics(unwatched(store))),
    `${what}: /metrics`,
  );
  const now = Date.now();
  deepStrictEqual(
    nodeRows(await metrics.cis.nodeList(), undefined, now),
    nodeRows(await store.listNodes(), undefined, now),
    `${what}: /api/v1/nodes`,
  );
}

async function property(t: Test, db: string) {
  const store = await openStore(db);
  t.teardown(() => store.close());
  const metrics = new AggregatorMetrics(store);
  t.teardown(() => metrics.cis.stop());
  const apply = applier(store);
  let steps = 0;
  // One store for every run: each run's changes start from what the runs before left, as a long-lived replica.
  // A failure throws, so fast-check shrinks it to the fewest changes and prints them.
  await fc.assert(
    fc.asyncProperty(fc.array(OP, { minLength: 1, maxLength: 25 }), async (ops) => {
      for (const o of ops) {
        await apply(o);
        steps++;
        await sameAsFromScratch(store, metrics, JSON.stringify(o));
      }
    }),
    fuzzParams(12),
  );
  t.ok(steps > 50, `${steps} changes, each followed by the summary and the CIS series compared`);
}

/** Wait until the view's store listens for other replicas' notices (the view then reads nothing per request). */
async function listening(view: CisView, url: string): Promise<void> {
  await view.read();
  await until(async () => {
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try {
      const r = await c.query("SELECT 1 FROM pg_stat_activity WHERE application_name = 'verdict-aggregator-listen'");
      return (r.rowCount ?? 0) > 0;
    } finally {
      await c.end();
    }
  }, 'the store listens');
  // The link-up notice makes one more full read; wait for it to be done.
  await new Promise((r) => setTimeout(r, 50));
  await view.read();
}

t.test('SQLite: the kept summary and CIS series equal a reading from scratch after any changes', (t) =>
  property(t, `sqlite:${join(tempDir(t), 'v.db')}`),
);

t.test('a request does not wait for the periodic read of every node, but does for a change made here', async (t) => {
  const store = await openStore(`sqlite:${join(tempDir(t), 'v.db')}`);
  t.teardown(() => store.close());
  await store.recordHello(hello('n1', 'b1'), Date.now());
  const view = new CisView(store, 20);
  t.teardown(() => view.stop());
  await view.read();
  // The view's timer does not keep the process alive; this does, until the test ends.
  const alive = setInterval(() => undefined, 1_000);
  t.teardown(() => clearInterval(alive));
  // Every node's liveness read (the periodic read) is held until the test lets it go.
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  let heldReads!: () => void;
  const underWay = new Promise<void>((r) => (heldReads = r));
  const read = store.nodeLiveness.bind(store);
  store.nodeLiveness = async (names) => {
    if (names === undefined) {
      heldReads();
      await held;
    }
    return read(names);
  };
  await underWay;
  // Answered from what is held: before any I/O could complete (at 5,000 nodes the periodic read takes 10-100 ms).
  const before = await Promise.race([
    view.read().then(() => 'answered'),
    new Promise((r) => setImmediate(() => r('waited'))),
  ]);
  t.equal(before, 'answered', 'a read during the periodic read answers at once');
  await store.recordHello(hello('n2', 'b1'), Date.now());
  let done = false;
  const after = view.read().then(() => (done = true));
  await new Promise((r) => setImmediate(r));
  t.notOk(done, 'a read after a change made here waits for it');
  release();
  await after;
  t.same(
    [...view.all()].map((n) => n.name),
    ['n1', 'n2'],
    'and finds it',
  );
});

t.test('PostgreSQL', async (t) => {
  const server = await testPostgres(t);

  await t.test('the kept summary and CIS series equal a reading from scratch after any changes', async (t) =>
    property(t, await server.freshSchema()),
  );

  await t.test("a replica's view shows another replica's changes within the stated bound", async (t) => {
    const db = await server.freshSchema();
    const [a, b] = [await openStore(db), await openStore(db)];
    t.teardown(async () => {
      await a.close();
      await b.close();
    });
    // A resync far beyond the test: what replica b shows, it heard by LISTEN/NOTIFY.
    const view = new CisView(b, 600_000);
    t.teardown(() => view.stop());
    const metrics = new AggregatorMetrics(b);
    t.teardown(() => metrics.cis.stop());
    await listening(view, server.url);
    const apply = applier(a);
    const worst = { ms: 0 };
    const ops: Op[] = [
      { op: 'hello', node: 'n1', agoMin: 0 },
      { op: 'hello', node: 'n2', agoMin: 0 },
      {
        op: 'run',
        node: 'n1',
        agoMin: 0,
        statuses: { '1.1.1': 'FAIL', '4.2.1': 'PASS' },
        unscored: [],
        benchmark: 'cis-1.12',
        startedDay: 2,
        notAssessable: false,
      },
      {
        op: 'run',
        node: 'n2',
        agoMin: 0,
        statuses: {},
        unscored: [],
        benchmark: 'cis-1.12',
        startedDay: 2,
        notAssessable: true,
      },
      { op: 'disconnect', node: 'n1', agoMin: 0, stale: false },
      { op: 'forget', node: 'n2' },
    ];
    for (const o of ops) {
      const t0 = Date.now();
      await apply(o);
      await until(
        async () => {
          // Reading the view does not read the store here (the link is up): b shows what it heard.
          deepStrictEqual(JSON.parse(await view.summaryJson(OPTIONS[0]!)), await summaryFromScratch(a, OPTIONS[0]!));
          deepStrictEqual(
            [...view.all()].map((n) => `${n.name} ${n.connected}`).sort(),
            (await a.nodeLiveness()).map((n) => `${n.name} ${n.connected}`).sort(),
          );
          return true;
        },
        `b shows ${JSON.stringify(o)}`,
        5_000,
        5,
      );
      worst.ms = Math.max(worst.ms, Date.now() - t0);
    }
    t.ok(worst.ms < 5_000, `every change showed on the other replica within ${worst.ms} ms (bound: the 5 s resync)`);
    await until(
      async () => {
        deepStrictEqual(await cisSeries(metrics), await cisSeries(new AggregatorMetrics(unwatched(a))));
        return true;
      },
      "b's CIS series",
      5_000,
      10,
    );
    t.pass("b's /metrics CIS series are what a reads from scratch");
  });

  await t.test(
    'a change no replica told is read within the resync; with the link down, at the next read',
    async (t) => {
      const db = await server.freshSchema();
      const store = await openStore(db);
      t.teardown(() => store.close());
      await store.recordHello(hello('n1', 'b1'), Date.now(), 'c1');
      const view = new CisView(store, 300);
      t.teardown(() => view.stop());
      await listening(view, db);
      const sql = async (text: string) => {
        const c = new pg.Client({ connectionString: db });
        await c.connect();
        try {
          return (await c.query(text)).rows as Record<string, unknown>[];
        } finally {
          await c.end();
        }
      };
      // Written behind every replica's back (as a replica that died before its notice went out).
      await sql("UPDATE nodes SET connected = FALSE WHERE name = 'n1'");
      const t0 = Date.now();
      await until(
        async () => {
          await view.read();
          return [...view.all()].find((n) => n.name === 'n1')?.connected === false;
        },
        'the resync reads it',
        5_000,
        20,
      );
      t.ok(Date.now() - t0 < 2_000, `read within ${Date.now() - t0} ms (resync every 300 ms)`);

      const slow = new CisView(store, 600_000);
      t.teardown(() => slow.stop());
      await listening(slow, db);
      await sql(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'verdict-aggregator-listen'",
      );
      await sql("UPDATE nodes SET connected = TRUE WHERE name = 'n1'");
      await until(
        async () => {
          await slow.read();
          return [...slow.all()].find((n) => n.name === 'n1')?.connected === true;
        },
        'a read with the link down reads every node',
        3_000,
        20,
      );
      t.pass('with the listening connection lost, a read reads the store');
    },
  );
});
