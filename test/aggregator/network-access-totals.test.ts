import fc from 'fast-check';
import t, { type Test } from 'tap';
import type { FlowEndpoint, FlowRecord, PolicyRef } from '../../common/flow.js';
import { networkAccess } from '../../aggregator/compute/network-access.js';
import { openStore, type Store } from '../../aggregator/store/index.js';
import { fuzzParams } from '../fixtures/fuzz.js';
import { testPostgres } from '../fixtures/postgres.js';
import { tempDir } from '../fixtures/tmp.js';

/**
 * Network access from the store's per-flow totals (Store.flowTotals, summed in
 * SQL) is the same as networkAccess over every stored bucket row (the way it
 * was computed before), on a few thousand random flows over several nodes,
 * minutes and hours (rolled up), in both dialects, with and without a
 * namespace filter and over part of the interval.
 */

const T0 = Date.UTC(2026, 10, 1, 0, 0, 0);
const HOUR = 3_600_000;

const label = fc.constantFrom('app=web', 'app=db', 'tier=front', 'team=a', 'pod-template-hash=7d9f');
const endpoint: fc.Arbitrary<FlowEndpoint> = fc.oneof(
  fc.record({
    kind: fc.constant('pod' as const),
    namespace: fc.constantFrom('shop', 'pay', 'kube-system'),
    name: fc.constantFrom('web', 'db', 'ledger', 'cache'),
    labels: fc.uniqueArray(label, { maxLength: 2 }).map((l) => l.sort()),
    serviceAccount: fc.constantFrom('', 'default', 'web'),
    internet: fc.constant(false),
  }),
  fc.record({
    kind: fc.constant('host' as const),
    namespace: fc.constant(''),
    name: fc.constantFrom('node-1', 'node-2'),
    labels: fc.constant<string[]>([]),
    serviceAccount: fc.constant(''),
    internet: fc.constant(false),
  }),
  fc.record({
    kind: fc.constant('network' as const),
    namespace: fc.constant(''),
    name: fc.constantFrom('pub', 'pvt'),
    labels: fc.constant<string[]>([]),
    serviceAccount: fc.constant(''),
    internet: fc.boolean(),
  }),
  // Cilium's reserved identities (kept in the endpoint's JSON only when set).
  fc.record({
    kind: fc.constant('host' as const),
    namespace: fc.constant(''),
    name: fc.constantFrom('node-1', '10.0.0.2'),
    labels: fc.constant<string[]>([]),
    serviceAccount: fc.constant(''),
    internet: fc.constant(false),
    reserved: fc.constantFrom('host', 'remote-node'),
  }),
  fc.record({
    kind: fc.constant('networkset' as const),
    namespace: fc.constantFrom('', 'shop'),
    name: fc.constantFrom('partners'),
    labels: fc.constant<string[]>([]),
    serviceAccount: fc.constant(''),
    internet: fc.boolean(),
  }),
);
const policy: fc.Arbitrary<PolicyRef> = fc.record({
  tier: fc.constantFrom('default', 'security'),
  namespace: fc.constantFrom('', 'shop', 'pay'),
  name: fc.constantFrom('allow-web', 'default-deny', 'allow-dns'),
  action: fc.constantFrom('allow', 'deny'),
  kind: fc.constantFrom('NetworkPolicy', 'GlobalNetworkPolicy'),
});
const flow: fc.Arbitrary<FlowRecord> = fc
  .record({
    source: endpoint,
    destination: endpoint,
    protocol: fc.constantFrom('tcp', 'udp'),
    destinationPort: fc.constantFrom(53, 80, 443, 5432),
    action: fc.constantFrom('allow' as const, 'deny' as const),
    reporter: fc.constantFrom('src' as const, 'dst' as const),
    policies: fc.array(policy, { maxLength: 2 }),
    stagedPolicies: fc.array(policy, { maxLength: 1 }),
    unnamedPolicy: fc.boolean(),
    policyDecided: fc.boolean(),
    // Set only when true, as the agent sends it.
    unknown: fc.boolean(),
    connections: fc.nat(1000),
    packets: fc.nat(100_000),
    bytes: fc.nat(10_000_000),
    // Minutes over six hours: several buckets per key, some rolled up into hours below.
    minute: fc.nat(6 * 60 - 1),
    second: fc.nat(59),
  })
  .map(({ minute, second, unknown, ...f }) => {
    const startMs = T0 + minute * 60_000 + second * 1000;
    return { ...f, ...(unknown ? { policyUnknown: true } : {}), startMs, endMs: startMs + 500 };
  });
const batch = fc.record({
  node: fc.constantFrom('n1', 'n2', 'n3'),
  flows: fc.array(flow, { minLength: 250, maxLength: 400 }),
});

type Backend = { name: string; freshDb: () => Promise<string> };

async function compare(t: Test, s: Store, fromMs: number, toMs: number, namespace?: string): Promise<void> {
  const rows = await s.flowRows({ fromMs, toMs, namespace });
  const totals = await s.flowTotals({ fromMs, toMs, namespace });
  t.strictSame(
    networkAccess(await s.flowTotals({ fromMs, toMs, namespace }, { connectionsOnly: true })),
    networkAccess(totals),
    'connectionsOnly: the same network access',
  );
  t.ok(totals.length <= rows.length, 'no more totals than rows');
  t.strictSame(
    networkAccess(totals),
    networkAccess(rows.map((r) => r.flow)),
    `same network access over [${fromMs}, ${toMs}) ${namespace ?? ''}`,
  );
}

function cases(t: Test, backend: Backend): void {
  t.test('flowTotals gives the network access of every bucket row', async (t) => {
    const { seed } = fuzzParams(1);
    // Three samples of ~10 batches each: a few thousand flows per sample.
    const samples = fc.sample(fc.array(batch, { minLength: 8, maxLength: 12 }), { seed, numRuns: 3 });
    for (const [i, batches] of samples.entries()) {
      const s = await openStore(await backend.freshDb());
      try {
        let seq = 0;
        for (const b of batches) await s.recordFlowBatch(b.node, 'boot', ++seq, b.flows, T0);
        // The first three hours rolled up into hour buckets, the rest left in minutes.
        if (i > 0) await s.compactFlows(T0 + 3 * HOUR, 0);
        const flows = batches.reduce((n, b) => n + b.flows.length, 0);
        t.ok(flows > 1000, `sample ${i}: ${flows} flows`);
        await compare(t, s, 0, Number.MAX_SAFE_INTEGER);
        await compare(t, s, T0 + HOUR + 17 * 60_000, T0 + 5 * HOUR);
        await compare(t, s, 0, Number.MAX_SAFE_INTEGER, 'shop');
        await compare(t, s, T0, T0 + 2 * HOUR, 'pay');
      } finally {
        await s.close();
      }
    }
  });
}

t.test('sqlite', async (t) => {
  let n = 0;
  const dir = tempDir(t);
  cases(t, { name: 'sqlite', freshDb: async () => `sqlite:${dir}/na-${++n}.db` });
});

t.test('postgres', async (t) => {
  const pgdb = await testPostgres(t);
  cases(t, { name: 'postgres', freshDb: () => pgdb.freshSchema() });
});
