import fc from 'fast-check';
import t from 'tap';
import { FlowWindow } from '../../../agent/flows/window.js';
import { flowKey, type FlowRecord } from '../../../common/flow.js';
import { flow, T0 } from '../../fixtures/flows.js';
import { fuzzParams } from '../../fixtures/fuzz.js';

// FlowWindow keys a record by numbers (the window's number for each endpoint and policy list, a hash over them and
// the scalar fields, each candidate compared in full). Property: whatever the flows, close() gives what summing them
// by common/flow.ts flowKey() (the key's definition, by JSON) gives, in the order keys first appeared. The flows mix
// equal endpoints given as one shared object and as separate copies, and values a weak hash would confuse (protocols
// of one length, ports and flags that sum alike).

const endpoints = [
  { name: 'frontend' },
  { name: 'checkout' },
  { name: 'frontend', labels: ['app=frontend', 'tier=web'] },
  { kind: 'network' as const, name: 'pub', labels: [], internet: true },
];
const shared = endpoints.map((e) => flow({ source: e }).source);
const policyLists = [
  [],
  [{ tier: 'default', namespace: 'shop', name: 'a', action: 'allow', kind: 'NetworkPolicy' }],
  [{ tier: 'default', namespace: 'shop', name: 'b', action: 'deny', kind: 'NetworkPolicy' }],
];

/** Mostly `usual`, now and then one of `others`: most flows share most of their key, so near misses are many. */
function mostly<T>(usual: T, ...others: T[]): fc.Arbitrary<T> {
  return fc.oneof({ weight: 6, arbitrary: fc.constant(usual) }, { weight: 1, arbitrary: fc.constantFrom(...others) });
}

const flowArb = fc
  .record({
    source: mostly(0, 1, 2, 3),
    destination: mostly(1, 0, 2, 3),
    copy: fc.boolean(),
    policies: mostly(1, 0, 2),
    staged: mostly(0, 1, 2),
    protocol: mostly('tcp', 'udp', 'sctp', '6'),
    port: mostly(8, 0, 1, 9, 80, 8080),
    action: mostly<'allow' | 'deny'>('allow', 'deny'),
    reporter: mostly<'src' | 'dst'>('src', 'dst'),
    unnamedPolicy: mostly(false, true),
    policyDecided: mostly(true, false),
    policyUnknown: mostly<boolean | undefined>(undefined, true, false),
    connections: fc.nat(9),
    startS: fc.nat(60),
    lengthS: fc.nat(60),
  })
  .map((x): FlowRecord => {
    // The same endpoint as the one shared object, or as a copy of it: a window must key both alike.
    const end = (i: number) => (x.copy ? structuredClone(shared[i]) : shared[i]) as FlowRecord['source'];
    const f: FlowRecord = {
      ...flow(),
      source: end(x.source),
      destination: end(x.destination),
      protocol: x.protocol,
      destinationPort: x.port,
      action: x.action,
      reporter: x.reporter,
      policies: structuredClone(policyLists[x.policies]) as FlowRecord['policies'],
      stagedPolicies: policyLists[x.staged] as FlowRecord['policies'],
      unnamedPolicy: x.unnamedPolicy,
      policyDecided: x.policyDecided,
      connections: x.connections,
      packets: x.connections * 3,
      bytes: x.connections * 300,
      startMs: T0 + x.startS * 1000,
      endMs: T0 + (x.startS + x.lengthS) * 1000,
    };
    if (x.policyUnknown !== undefined) f.policyUnknown = x.policyUnknown;
    return f;
  });

/** The window's result worked out from the key's definition. */
function summed(flows: FlowRecord[]): FlowRecord[] {
  const byKey = new Map<string, FlowRecord>();
  for (const f of flows) {
    const k = flowKey(f);
    const hit = byKey.get(k);
    if (!hit) byKey.set(k, { ...f });
    else {
      hit.connections += f.connections;
      hit.packets += f.packets;
      hit.bytes += f.bytes;
      hit.startMs = Math.min(hit.startMs, f.startMs);
      hit.endMs = Math.max(hit.endMs, f.endMs);
    }
  }
  return [...byKey.values()];
}

t.test('a window sums flows exactly as flowKey() groups them, in order of first appearance', async (t) => {
  const w = new FlowWindow(() => T0, 1_000_000);
  await fc.assert(
    fc.property(fc.array(flowArb, { maxLength: 60 }), (flows) => {
      for (const f of flows) w.add(f);
      const got = w.close().records;
      const want = summed(flows);
      if (JSON.stringify(got) !== JSON.stringify(want))
        throw new Error(`window: ${JSON.stringify(got)}\nflowKey: ${JSON.stringify(want)}`);
    }),
    fuzzParams(300, 20261203),
  );
  t.pass('property held');
});
