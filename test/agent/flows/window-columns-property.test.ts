import fc from 'fast-check';
import t from 'tap';
import { FlowWindow } from '../../../agent/flows/window.js';
import { flowKey, type FlowEndpoint, type FlowRecord, type PolicyRef } from '../../../common/flow.js';
import { flow, T0 } from '../../fixtures/flows.js';
import { fuzzParams } from '../../fixtures/fuzz.js';

// FlowWindow (agent/flows/window.ts) keeps a window's records as columns and finds a flow's slot in its own hash
// table over the key's numbers. Against a reference built on common/flow.ts flowKey() (the key the aggregator
// computes): for any flows, drawn from small pools so keys repeat and collide, and any key bound, the window hands
// back the same records (same fields, counts summed, time ranges widened, in first-seen order), the same drop count,
// whether endpoints and policy lists come as the same object or as equal copies, and across table growth.

const endpoint = (name: string, labels: string[] = []): FlowEndpoint => ({
  kind: 'pod',
  namespace: 'shop',
  name,
  labels,
  serviceAccount: name,
  internet: false,
});
const ENDPOINTS = [endpoint('a'), endpoint('b', ['app=b']), endpoint('c', ['app=c', 'tier=x'])];
const POLICIES: PolicyRef[][] = [
  [],
  [{ tier: 'default', namespace: 'shop', name: 'p1', action: 'allow', kind: 'NetworkPolicy' }],
  [{ tier: 'security', namespace: '', name: 'g', action: 'deny', kind: 'GlobalNetworkPolicy' }],
];
/** The pool's object, or an equal copy (a parser that did not share it). */
const pick = <T>(pool: T[], i: number, copy: boolean): T =>
  copy ? (JSON.parse(JSON.stringify(pool[i])) as T) : (pool[i] as T);

const flowArb = fc
  .record({
    src: fc.nat(2),
    dst: fc.nat(2),
    pol: fc.nat(2),
    staged: fc.nat(2),
    copy: fc.boolean(),
    protocol: fc.constantFrom('tcp', 'udp', 'icmp'),
    port: fc.oneof(fc.constantFrom(0, 1, 65535), fc.integer({ min: 0, max: 65535 })),
    action: fc.constantFrom('allow' as const, 'deny' as const),
    reporter: fc.constantFrom('src' as const, 'dst' as const),
    unnamedPolicy: fc.boolean(),
    policyDecided: fc.boolean(),
    policyUnknown: fc.boolean(),
    connections: fc.nat(1000),
    packets: fc.nat(1000),
    bytes: fc.nat(1_000_000),
    start: fc.nat(60_000),
    length: fc.nat(60_000),
  })
  .map((r): FlowRecord => {
    const f = flow({
      protocol: r.protocol,
      destinationPort: r.port,
      action: r.action,
      reporter: r.reporter,
      unnamedPolicy: r.unnamedPolicy,
      policyDecided: r.policyDecided,
      connections: r.connections,
      packets: r.packets,
      bytes: r.bytes,
      startMs: T0 + r.start,
      endMs: T0 + r.start + r.length,
    });
    f.source = pick(ENDPOINTS, r.src, r.copy);
    f.destination = pick(ENDPOINTS, r.dst, r.copy);
    f.policies = pick(POLICIES, r.pol, r.copy);
    f.stagedPolicies = pick(POLICIES, r.staged, r.copy);
    if (r.policyUnknown) f.policyUnknown = true;
    return f;
  });

/** The reference: a Map on flowKey(), in first-seen order, bounded like the window. */
function reference(flows: FlowRecord[], maxKeys: number): { records: FlowRecord[]; dropped: number } {
  const byKey = new Map<string, FlowRecord>();
  let dropped = 0;
  for (const f of flows) {
    const k = flowKey(f);
    const hit = byKey.get(k);
    if (hit) {
      hit.connections += f.connections;
      hit.packets += f.packets;
      hit.bytes += f.bytes;
      hit.startMs = Math.min(hit.startMs, f.startMs);
      hit.endMs = Math.max(hit.endMs, f.endMs);
    } else if (byKey.size >= maxKeys) dropped++;
    else byKey.set(k, { ...f });
  }
  return { records: [...byKey.values()], dropped };
}

/** A record as plain data, its fields in one order (so equal records compare equal whatever built them). */
const plain = (f: FlowRecord) => JSON.parse(flowKey(f) + '') as unknown;
const counts = (f: FlowRecord) => [f.connections, f.packets, f.bytes, f.startMs, f.endMs];

t.test('property: the window sums exactly what a flowKey() map sums, in the same order, bounded alike', async (t) => {
  fc.assert(
    fc.property(
      // Long enough, with the repeats, to grow the window's columns and table past their first size (1024 slots).
      fc.array(flowArb, { maxLength: 3000 }),
      fc.oneof(fc.constant(50_000), fc.nat(40)),
      (flows, maxKeys) => {
        const w = new FlowWindow(() => T0, maxKeys);
        for (const f of flows) w.add(f);
        const want = reference(flows, maxKeys);
        const got = w.close();
        if (got.dropped !== want.dropped) throw new Error(`dropped ${got.dropped}, want ${want.dropped}`);
        if (got.size !== want.records.length) throw new Error(`${got.size} records, want ${want.records.length}`);
        for (let i = 0; i < got.size; i++) {
          const g = got.record(i);
          const r = want.records[i] as FlowRecord;
          if (JSON.stringify(plain(g)) !== JSON.stringify(plain(r))) throw new Error(`record ${i}: other key`);
          if (JSON.stringify(counts(g)) !== JSON.stringify(counts(r))) throw new Error(`record ${i}: other counts`);
          if ('policyUnknown' in g !== 'policyUnknown' in r) throw new Error(`record ${i}: policyUnknown set unlike`);
        }
      },
    ),
    fuzzParams(100, 20261201),
  );
  t.pass('property held');
});

t.test('many distinct keys (the table and columns grow several times): every one kept, counts summed', async (t) => {
  const w = new FlowWindow(() => T0, 50_000);
  for (let round = 0; round < 2; round++)
    for (let port = 0; port < 20_000; port++) w.add(flow({ destinationPort: port, connections: 1 }));
  const out = w.close();
  t.equal(out.size, 20_000);
  t.same(
    [0, 9_999, 19_999].map((i) => [out.record(i).destinationPort, out.record(i).connections]),
    [
      [0, 2],
      [9_999, 2],
      [19_999, 2],
    ],
  );
});
