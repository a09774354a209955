import t from 'tap';
import { openStore, type StoredAuditEvent } from '../../aggregator/store/index.js';
import type { PoolGate } from '../../aggregator/store/pool-gate.js';
import { testPostgres } from '../fixtures/postgres.js';

// The PostgreSQL store's reads take a turn at its pool gate (store/pool-gate.ts) before they use a connection: with
// every turn taken, a read waits for one instead of asking the pool for a connection past its size (which
// node-postgres times out as an outage under a burst). Here the test holds every turn itself, without using a
// connection, so a read that went around the gate would answer at once.

const T = Date.UTC(2026, 10, 20, 10, 0, 0);
const event = (auditId: string, name: string, stageMs: number): StoredAuditEvent => ({
  auditId,
  stageMs,
  verb: 'update',
  resource: 'networkpolicies',
  apiGroup: 'networking.k8s.io',
  namespace: 'shop',
  name,
  username: 'alice',
  event: { auditID: auditId },
});

t.test('reads wait for a turn at the pool gate while every turn is taken', async (t) => {
  const server = await testPostgres(t);
  const store = await openStore(await server.freshSchema());
  t.teardown(() => store.close());
  await store.recordAuditEvents([event('a1', 'web', T), event('a2', 'web', T + 1000), event('a3', 'db', T + 2000)]);
  const gate = (store as unknown as { gate: PoolGate }).gate;

  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  // Take turns until one more has to wait: then every turn is held.
  const holders: Promise<void>[] = [];
  while (gate.waiting === 0) holders.push(gate.run(() => released));

  const reads = {
    latestAuditEvents: store.latestAuditEvents(
      [{ apiGroup: 'networking.k8s.io', resource: 'networkpolicies', namespace: 'shop', name: 'web' }],
      T + 5000,
    ),
    auditEvents: store.auditEvents(T, T + 5000),
  };
  const settled = new Set<string>();
  for (const [name, p] of Object.entries(reads)) void p.finally(() => settled.add(name));
  await new Promise((r) => setTimeout(r, 300));
  t.same([...settled], [], 'no read answered while the test held every turn');
  t.equal(gate.waiting, 1 + Object.keys(reads).length, 'each read waits in line behind the last holder');

  release();
  await Promise.all(holders);
  t.same(
    (await reads.latestAuditEvents).map((e) => e.auditId),
    ['a2'],
    'with turns free again, latestAuditEvents answers: the latest event of the object before the time',
  );
  t.same(
    (await reads.auditEvents).map((e) => e.auditId),
    ['a1', 'a2', 'a3'],
    'and so does auditEvents',
  );
  t.equal(gate.waiting, 0);
});
