import type Database from 'better-sqlite3';
import * as grpc from '@grpc/grpc-js';
import pg from 'pg';
import t from 'tap';
import type { FlowRecord } from '../../common/flow.js';
import { flowKeyParts, flowKeyText } from '../../aggregator/store/flow-key-ids.js';
import { GroupCommit, type FlowBatchWrite } from '../../aggregator/store/group-commit.js';
import type { BucketRow } from '../../aggregator/store/flow-buckets.js';
import { flowToWire } from '../../proto/convert.js';
import { HELLO, rawAgentStream, startTestAggregator } from '../fixtures/aggregator.js';
import { startAggregatorProcess } from '../fixtures/aggregator-process.js';
import { testPostgres } from '../fixtures/postgres.js';
import { deepFrozen, flow, T0 } from '../fixtures/flows.js';
import { until } from '../fixtures/wait.js';

/** A batch of `rows` bucket rows for `node` (GroupCommit only counts them). */
const batchOf = (node: string, rows = 1, seq = 1): FlowBatchWrite => ({
  node,
  bootId: 'b1',
  seq,
  rows: Array.from({ length: rows }, () => ({}) as BucketRow),
  atMs: T0,
});

/** A GroupCommit whose writes are recorded and held until the test lets each one finish. */
function heldGroups(fail: (group: FlowBatchWrite[]) => Error | undefined = () => undefined, outage = false) {
  const groups: string[][] = [];
  const release: (() => void)[] = [];
  const commit = new GroupCommit(
    async (group) => {
      groups.push(group.map((b) => `${b.node}#${b.seq}`));
      await new Promise<void>((resolve) => release.push(resolve));
      const err = fail(group);
      if (err) throw err;
      return group.map(() => ({ duplicate: false }));
    },
    { maxRows: 10, concurrency: 1, isOutage: () => outage },
  );
  return { commit, groups, release };
}

t.test(
  'batches that arrive while a group is written go in the next group together: one per node, up to maxRows',
  async (t) => {
    const { commit, groups, release } = heldGroups();
    const settled: string[] = [];
    const submit = (b: FlowBatchWrite) => commit.submit(b).then(() => void settled.push(`${b.node}#${b.seq}`));
    const all = [submit(batchOf('n1'))]; // an idle store writes it at the next turn of the event loop
    await until(() => groups.length === 1, 'the first group');
    t.same(groups, [['n1#1']]);
    all.push(
      submit(batchOf('n2', 4)),
      submit(batchOf('n3', 4)),
      submit(batchOf('n2', 1, 2)), // n2's next: not in the same group as n2#1
      submit(batchOf('n4', 4)), // 4 + 4 + 4 rows is over maxRows (10)
      submit(batchOf('n5', 30)), // larger than maxRows: a group of its own
    );
    t.same(settled, [], 'nothing settles before its group is written');
    release.shift()!();
    await until(() => groups.length === 2, 'the second group');
    t.same(groups[1], ['n2#1', 'n3#1'], 'what waited meanwhile, up to maxRows, one batch per node');
    t.same(settled, ['n1#1']);
    for (let i = 3; i <= 4; i++) {
      release.shift()!();
      await until(() => groups.length === i, `group ${i}`);
    }
    release.shift()!();
    await Promise.all(all);
    t.same(groups.slice(2), [['n2#2', 'n4#1'], ['n5#1']]);
  },
);

t.test(
  'an idle store starts a group at the next turn of the event loop, with the batches submitted by then',
  async (t) => {
    const { commit, groups, release } = heldGroups();
    const releaseAll = setInterval(() => release.shift()?.(), 5);
    t.teardown(() => clearInterval(releaseAll));
    // Three streams' messages read in one turn (one poll of the sockets): one group, not one each.
    const turn = ['n1', 'n2', 'n3'].map((n) => commit.submit(batchOf(n)));
    await Promise.all(turn);
    // One that comes later, the store idle again: a group of its own.
    await new Promise((resolve) => setTimeout(resolve, 20));
    await commit.submit(batchOf('n1', 1, 2));
    t.same(groups, [['n1#1', 'n2#1', 'n3#1'], ['n1#2']]);
  },
);

t.test('a failed group is written again batch by batch: only the batch the store refuses fails', async (t) => {
  const { commit, groups, release } = heldGroups((g) =>
    g.some((b) => b.node === 'bad') ? new Error('CHECK constraint failed') : undefined,
  );
  const first = commit.submit(batchOf('n0'));
  await until(() => groups.length === 1, 'the first group');
  const outcomes = ['n1', 'bad', 'n2'].map((n) =>
    commit.submit(batchOf(n)).then(
      () => `${n} stored`,
      (err: Error) => `${n} failed: ${err.message}`,
    ),
  );
  const releaseAll = setInterval(() => release.shift()?.(), 5);
  t.teardown(() => clearInterval(releaseAll));
  await first;
  t.same(await Promise.all(outcomes), ['n1 stored', 'bad failed: CHECK constraint failed', 'n2 stored']);
  t.same(groups.slice(1), [['n1#1', 'bad#1', 'n2#1'], ['n1#1'], ['bad#1'], ['n2#1']]);
});

t.test('when the store is out, every batch of the group fails at once and none is tried again', async (t) => {
  const { commit, groups, release } = heldGroups(() => new Error('SQLITE_FULL'), true);
  const first = commit.submit(batchOf('n0')).catch(() => undefined);
  await until(() => groups.length === 1, 'the first group');
  const outcomes = ['n1', 'n2'].map((n) =>
    commit.submit(batchOf(n)).then(
      () => 'stored',
      () => 'failed',
    ),
  );
  const releaseAll = setInterval(() => release.shift()?.(), 5);
  t.teardown(() => clearInterval(releaseAll));
  await first;
  t.same(await Promise.all(outcomes), ['failed', 'failed']);
  t.same(groups.slice(1), [['n1#1', 'n2#1']]);
});

t.test('a flow key text stands for its key, and its parts are that key', async (t) => {
  const cases: [string, FlowRecord][] = [
    ['the fixture flow', flow()],
    [
      'empty fields, no labels, an internet source, UDP, denied, two policies and a staged one',
      flow({
        source: { kind: 'network', namespace: '', name: '', labels: [], serviceAccount: '', internet: true },
        destination: { labels: ['a=b', 'c=', '=d', 'x\u0001y'] },
        protocol: 'udp',
        destinationPort: 0,
        action: 'deny',
        reporter: 'dst',
        policies: [
          { tier: 'default', namespace: 'shop', name: 'p1', action: 'deny', kind: 'NetworkPolicy' },
          { tier: 'security', namespace: '', name: 'g', action: 'pass', kind: 'GlobalNetworkPolicy' },
        ],
        stagedPolicies: [{ tier: 't', namespace: 'n', name: 's', action: 'allow', kind: 'StagedNetworkPolicy' }],
        unnamedPolicy: true,
        policyDecided: false,
      }),
    ],
    [
      'a trace-only Hubble connection from a reserved identity (policyUnknown, reserved)',
      flow({
        source: { kind: 'host', namespace: '', name: 'worker-1', labels: [], serviceAccount: '', reserved: 'host' },
        policies: [],
        policyDecided: false,
        policyUnknown: true,
      }),
    ],
  ];
  for (const [name, f] of cases) {
    const { connections, packets, bytes, startMs, endMs, ...key } = f;
    void [connections, packets, bytes, startMs, endMs];
    const text = flowKeyText(f);
    t.same(flowKeyParts(text, f), key, name);
    // Another record of the same key (fresh objects, other counts and times), and a frozen copy (the decoder's).
    const again = structuredClone({ ...f, connections: 7, startMs: f.startMs + 1 });
    t.equal(flowKeyText(again), text, `${name}: the same key, the same text`);
    t.equal(flowKeyText(deepFrozen(structuredClone(f))), text, `${name}: frozen, the same text`);
    t.equal(flowKeyParts(text, again), flowKeyParts(text, f), `${name}: one parts object per key`);
    // Parts outlive their record: a later change to the record's (unfrozen) objects is not theirs.
    const before = structuredClone(key);
    f.source.labels.push('later=1');
    t.same(flowKeyParts(text, f), before, `${name}: parts unchanged`);
    f.source.labels.pop();
  }
  const texts = new Set(cases.map(([, f]) => flowKeyText(f)));
  t.equal(texts.size, cases.length, 'different keys, different texts');
  const variants: Partial<FlowRecord>[] = [
    { protocol: 'udp' },
    { destinationPort: 81 },
    { action: 'deny' },
    { reporter: 'dst' },
    { unnamedPolicy: true },
    { policyDecided: false },
    { stagedPolicies: flow().policies },
    { policies: [] },
    { source: flow().destination, destination: flow().source },
  ];
  for (const v of variants)
    t.not(
      flowKeyText({ ...flow(), ...v }),
      flowKeyText(flow()),
      `${JSON.stringify(Object.keys(v))} is part of the key`,
    );
  t.not(
    flowKeyText(flow({ source: { labels: ['a', 'b'] } })),
    flowKeyText(flow({ source: { labels: ['a'], serviceAccount: 'b' } })),
    'fields cannot run into each other',
  );
  t.not(flowKeyText(flow({ policyUnknown: true })), flowKeyText(flow()), 'policyUnknown is part of the key');
  t.equal(flowKeyText(flow({ source: { reserved: '' } })), flowKeyText(flow()), 'an empty reserved identity is none');
  t.not(flowKeyText(flow({ source: { reserved: 'world' } })), flowKeyText(flow()), 'reserved is part of the key');
});

/** Node `i`'s flow batch `seq`: 50 flows of its own (ports seq * 1000 + k), each with i + 1 connections. */
const nodeBatch = (i: number, seq: number) => ({
  flowBatch: {
    seq,
    windowStartUnixMs: T0,
    windowEndUnixMs: T0 + 15_000,
    records: Array.from({ length: 50 }, (_, k) =>
      flowToWire(flow({ destinationPort: seq * 1000 + k, connections: i + 1 })),
    ),
    sources: [],
    droppedRecords: 0,
  },
});

/** The acks a stream got for its batches 1, 2 and 1 again. */
const ACKS_1_2_1 = [
  { kind: 'ack', ack: { seq: 1, duplicate: false } },
  { kind: 'ack', ack: { seq: 2, duplicate: false } },
  { kind: 'ack', ack: { seq: 1, duplicate: true } },
];

/**
 * A deferred foreign key that a trigger violates whenever the switch is on: every statement of a flow group succeeds
 * and its COMMIT fails (SQLITE_CONSTRAINT_FOREIGNKEY), the transaction is rolled back.
 */
function failCommits(db: Database.Database): { on(): void; off(): void } {
  db.exec(`
    CREATE TEMP TABLE commit_fault_switch (failing INTEGER NOT NULL);
    INSERT INTO commit_fault_switch VALUES (0);
    CREATE TEMP TABLE commit_fault_target (id INTEGER PRIMARY KEY);
    CREATE TEMP TABLE commit_fault (target INTEGER REFERENCES commit_fault_target (id) DEFERRABLE INITIALLY DEFERRED);
    CREATE TEMP TRIGGER commit_fault_insert AFTER INSERT ON main.agent_sequences
      WHEN (SELECT failing FROM commit_fault_switch) = 1 BEGIN INSERT INTO commit_fault VALUES (1); END;
    CREATE TEMP TRIGGER commit_fault_update AFTER UPDATE ON main.agent_sequences
      WHEN (SELECT failing FROM commit_fault_switch) = 1 BEGIN INSERT INTO commit_fault VALUES (1); END;`);
  return {
    on: () => db.exec('UPDATE commit_fault_switch SET failing = 1'),
    off: () => db.exec('UPDATE commit_fault_switch SET failing = 0'),
  };
}

t.test(
  'SQLite: a group whose commit fails acks none of its batches; the agents resend and each stream is kept exactly once',
  async (t) => {
    const agg = await startTestAggregator(t);
    const fault = failCommits((agg.store as unknown as { db: Database.Database }).db);
    const nodes = ['n1', 'n2', 'n3', 'n4', 'n5', 'n6'];
    const batch = nodeBatch;
    const connect = () =>
      nodes.map((n) => {
        const s = rawAgentStream(agg.grpcPort);
        t.teardown(() => s.close());
        s.send(HELLO(n));
        return s;
      });

    fault.on();
    const first = connect();
    await Promise.all(first.map((s) => s.waitFor(1)));
    first.forEach((s, i) => s.send(batch(i, 1)));
    const ends = await Promise.all(first.map((s) => s.waitForEnd()));
    t.same(
      ends.map((e) => e.code),
      nodes.map(() => grpc.status.UNAVAILABLE),
      'each stream ends as the store being out: the agent resends',
    );
    t.same(
      first.map((s) => s.received.map((m) => m.kind)),
      nodes.map(() => ['welcome']),
      'and no batch was acked',
    );
    t.same(await agg.store.flowRows({ fromMs: 0, toMs: Number.MAX_SAFE_INTEGER }), [], 'nothing of them stored');

    fault.off();
    const again = connect();
    await Promise.all(again.map((s) => s.waitFor(1)));
    t.same(
      again.map((s) => s.received[0]?.kind === 'welcome' && s.received[0].welcome.lastStoredSeq),
      nodes.map(() => 0),
      'no seq was recorded',
    );
    // The resend, the next batch, and the resend once more (a duplicate), on every stream at once.
    again.forEach((s, i) => [1, 2, 1].forEach((seq) => s.send(batch(i, seq))));
    await Promise.all(again.map((s) => s.waitFor(4)));
    t.same(
      again.map((s) => s.received.slice(1)),
      nodes.map(() => ACKS_1_2_1),
    );
    const rows = await agg.store.flowRows({ fromMs: 0, toMs: Number.MAX_SAFE_INTEGER });
    const perNode = new Map<string, { rows: number; connections: number }>();
    for (const r of rows) {
      const n = perNode.get(r.node) ?? { rows: 0, connections: 0 };
      perNode.set(r.node, { rows: n.rows + 1, connections: n.connections + r.flow.connections });
    }
    t.same(
      Object.fromEntries(perNode),
      Object.fromEntries(nodes.map((n, i) => [n, { rows: 100, connections: 100 * (i + 1) }])),
      'each node: both batches, each flow once',
    );
  },
);

t.test(
  'PostgreSQL: a group held inside its transaction acks nothing; killed there, none of it is stored and the resends are kept exactly once',
  async (t) => {
    const server = await testPostgres(t);
    const db = await server.freshSchema();
    const sql = new pg.Client({ connectionString: db });
    await sql.connect();
    t.teardown(() => sql.end());
    const nodes = ['n1', 'n2', 'n3', 'n4', 'n5'];
    const connect = (port: number) =>
      nodes.map((n) => {
        const s = rawAgentStream(port);
        t.teardown(() => s.close());
        s.send(HELLO(n));
        return s;
      });

    const first = await startAggregatorProcess(t, 'first', ['--db', db]);
    const streams = connect(first.grpcPort);
    await Promise.all(streams.map((s) => s.waitFor(1)));
    // The prune epoch's row, held: every flow group waits at its first statement, inside its transaction.
    const holder = new pg.Client({ connectionString: db });
    await holder.connect();
    t.teardown(() => holder.end());
    await holder.query('BEGIN');
    await holder.query('SELECT epoch FROM flow_dictionary_epoch WHERE id = 1 FOR UPDATE');
    streams.forEach((s, i) => s.send(nodeBatch(i, 1)));
    await until(
      async () =>
        (await sql.query<{ n: string }>("SELECT count(*) AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock'"))
          .rows[0]!.n !== '0',
      'a flow group waiting on the held row',
    );
    t.same(
      streams.map((s) => s.received.map((m) => m.kind)),
      nodes.map(() => ['welcome']),
      'no batch is acked while its group has not committed',
    );
    await first.kill();
    await holder.query('ROLLBACK');
    const stored = async () =>
      (
        await sql.query<{ node: string; rows: string; connections: string }>(
          'SELECT node, count(*) AS rows, sum(connections) AS connections FROM flow_buckets GROUP BY node ORDER BY node',
        )
      ).rows.map((r) => [r.node, Number(r.rows), Number(r.connections)]);
    t.same(await stored(), [], 'the killed group stored nothing');
    t.same((await sql.query('SELECT * FROM agent_sequences')).rows, [], 'and recorded no seq');

    const second = await startAggregatorProcess(t, 'second', ['--db', db]);
    const again = connect(second.grpcPort);
    await Promise.all(again.map((s) => s.waitFor(1)));
    t.same(
      again.map((s) => s.received[0]?.kind === 'welcome' && s.received[0].welcome.lastStoredSeq),
      nodes.map(() => 0),
    );
    again.forEach((s, i) => [1, 2, 1].forEach((seq) => s.send(nodeBatch(i, seq))));
    await Promise.all(again.map((s) => s.waitFor(4)));
    t.same(
      again.map((s) => s.received.slice(1)),
      nodes.map(() => ACKS_1_2_1),
    );
    t.same(
      await stored(),
      nodes.map((n, i) => [n, 100, 100 * (i + 1)]),
      'each node: both batches, each flow once',
    );
  },
);
