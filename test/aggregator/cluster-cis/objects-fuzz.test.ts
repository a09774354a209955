import fc from 'fast-check';
import t from 'tap';
import { loadBenchmarks } from '../../../agent/cis/benchmarks.js';
import { evaluateClusterSection, type ClusterObjects } from '../../../aggregator/cluster-cis/evaluate.js';
import { KINDS, type KindName } from '../../../aggregator/cluster-cis/model.js';
import { fuzzParams } from '../../fixtures/fuzz.js';
import { hardenedCluster, weakCluster } from './clusters.js';

// Property-based: whatever the API returns — the stand-in clusters' objects with
// fields removed, nulled or retyped, or plain garbage items — the evaluator
// never throws, every result is well formed, and items without a usable
// metadata.name are counted as unreadable (never as passing or failing).
const benchmarks = loadBenchmarks();
const STATUSES = new Set(['PASS', 'FAIL', 'MANUAL', 'SKIP']);

const oddValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.constant(null),
  fc.constant(undefined),
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.string(),
  fc.constant(''),
  fc.array(fc.anything(), { maxLength: 3 }),
  fc.dictionary(fc.string(), fc.anything(), { maxKeys: 3 }),
  fc.constant({ __proto__: { name: 'x' } }),
  fc.constant(['*']),
);

/** An item no evaluator can read: not an object, or no non-empty string name. */
const garbageItem: fc.Arbitrary<unknown> = fc.oneof(
  fc.constant(null),
  fc.integer(),
  fc.string(),
  fc.array(fc.anything(), { maxLength: 3 }),
  fc.record({ metadata: fc.oneof(fc.constant(null), fc.integer(), fc.string(), fc.constant([])) }),
  fc.record({
    metadata: fc.record({ name: fc.oneof(fc.integer(), fc.constant(''), fc.boolean(), fc.constant(null)) }),
  }),
);

/** Replace the value at a random path of a JSON-like value. */
function mutate(value: unknown, path: number[], replacement: unknown): unknown {
  if (path.length === 0 || typeof value !== 'object' || value === null) return replacement;
  const [step, ...rest] = path as [number, ...number[]];
  if (Array.isArray(value)) {
    if (value.length === 0) return replacement;
    const i = step % value.length;
    return value.map((v, j) => (j === i ? mutate(v, rest, replacement) : v));
  }
  const keys = Object.keys(value);
  if (keys.length === 0) return replacement;
  const key = keys[step % keys.length] as string;
  return { ...value, [key]: mutate((value as Record<string, unknown>)[key], rest, replacement) };
}

t.test('mutated cluster objects never make the evaluator throw; results stay well formed', async () => {
  fc.assert(
    fc.property(
      fc.boolean(),
      fc.array(fc.tuple(fc.array(fc.nat(), { minLength: 1, maxLength: 8 }), oddValue), { minLength: 1, maxLength: 6 }),
      fc.nat(benchmarks.length - 1),
      (weak, mutations, b) => {
        let objects: unknown = weak ? weakCluster() : hardenedCluster();
        for (const [path, value] of mutations) objects = mutate(objects, path, value);
        const results = evaluateClusterSection(objects as ClusterObjects, { benchmark: benchmarks[b]! });
        for (const r of results) {
          if (!STATUSES.has(r.status)) return false;
          if (r.failing.length > r.failingTotal || r.failing.length > 20) return false;
          if (!Number.isInteger(r.unreadable) || r.unreadable < 0) return false;
          if (r.status === 'SKIP' && /evaluation failed/.test(r.actual)) return false;
        }
        return results.length >= 34;
      },
    ),
    fuzzParams(300),
  );
});

t.test('garbage items are counted as unreadable, and the readable ones still judged', async () => {
  const benchmark = benchmarks.find((b) => b.id === 'cis-1.12')!;
  fc.assert(
    fc.property(
      fc.record(
        Object.fromEntries(KINDS.map((k) => [k, fc.array(garbageItem, { maxLength: 4 })])) as Record<
          KindName,
          fc.Arbitrary<unknown[]>
        >,
      ),
      (garbage) => {
        const objects = weakCluster();
        for (const k of KINDS) {
          const read = objects[k];
          if (read && 'items' in read) read.items.push(...garbage[k]);
        }
        const r = new Map(evaluateClusterSection(objects, { benchmark }).map((x) => [x.id, x]));
        const n = (...kinds: KindName[]) => kinds.reduce((s, k) => s + garbage[k].length, 0);
        return (
          r.get('5.1.1')?.unreadable === n('clusterroles', 'roles', 'clusterrolebindings', 'rolebindings') &&
          r.get('5.1.3')?.unreadable === n('clusterroles', 'roles') &&
          r.get('5.4.1')?.unreadable === n('pods') &&
          r.get('5.2.2')?.unreadable === n('namespaces', 'pods') &&
          r.get('5.3.2')?.unreadable === n('namespaces', 'networkpolicies') &&
          r.get('5.1.1')?.failingTotal === 1 &&
          r.get('5.4.1')?.failingTotal === 2 &&
          r.get('5.3.2')?.failingTotal === 3
        );
      },
    ),
    fuzzParams(200),
  );
});

t.test('not even an object: every check SKIPs as not read (or stays MANUAL)', async (t) => {
  for (const junk of [null, 42, 'x', [], { pods: 7 }, { pods: { items: 'no' } }]) {
    const results = evaluateClusterSection(junk as unknown as ClusterObjects, { benchmark: benchmarks[0]! });
    t.ok(
      results.every((r) => r.status === 'SKIP' || r.status === 'MANUAL'),
      JSON.stringify(junk),
    );
  }
});
