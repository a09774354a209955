import { ok, strictEqual } from 'node:assert';
import fc from 'fast-check';
import { Registry } from 'prom-client';
import t from 'tap';
import { NodeCounter, NodeFamily, seriesLine, type Series } from '../../aggregator/metrics-text.js';
import { fuzzParams } from '../fixtures/fuzz.js';

// Issue 13: a per-node family keeps its exposition as one body of bytes, built again after a change by copying the
// nodes that did not change from the body before and writing only the ones that did (kept-bytes.ts). Whatever the
// changes — series rewritten to a longer or shorter text, nodes dropped, swept, added again, counters increased,
// names outside ASCII — every scrape must be the family as written from scratch (so a scrape after a change shows
// it), and a scrape with nothing changed in between must send the same bytes.

const NODES = ['n1', 'n2', 'n3', 'we"ird\\n', 'n\u{1F600}', 'ünï'];

type Op =
  | { op: 'put'; node: string; value: number; lines: number }
  | { op: 'drop'; node: string }
  | { op: 'sweep'; keep: string[] }
  | { op: 'inc'; node: string; action: 'allow' | 'deny'; by: number }
  | { op: 'scrape' };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      op: fc.constant('put' as const),
      node: fc.constantFrom(...NODES),
      // Values of any length: a node's text grows and shrinks, so pieces move in the body.
      value: fc.oneof(fc.integer({ min: 0, max: 12 }), fc.double({ noNaN: true }), fc.constant(1e21)),
      lines: fc.integer({ min: 0, max: 3 }),
    }),
  },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('drop' as const), node: fc.constantFrom(...NODES) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('sweep' as const), keep: fc.subarray(NODES) }) },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant('inc' as const),
      node: fc.constantFrom(...NODES),
      action: fc.constantFrom('allow' as const, 'deny' as const),
      by: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 100_000 })),
    }),
  },
  { weight: 1, arbitrary: fc.constant({ op: 'scrape' as const }) },
);

/** A family's text as prom-client's registry writes it, from the series each node holds, in the nodes' order. */
function fromScratch(name: string, help: string, type: string, nodes: Map<string, Series[]>): string {
  const lines = [...nodes.values()].flatMap((series) => series.map((s) => seriesLine(name, s))).join('');
  return `# HELP ${name} ${help}\n# TYPE ${name} ${type}${lines === '' ? '' : `\n${lines.slice(0, -1)}`}`;
}

/** Throws (for fast-check to shrink) when a scrape is not the family from scratch, or not the same bytes. */
async function run(ops: Op[]): Promise<void> {
  const registry = new Registry();
  const gauge = new NodeFamily(registry, 'g', 'a gauge', 'gauge', async () => true);
  const counter = new NodeCounter<'node' | 'action'>(registry, 'c_total', 'a counter', async () => undefined);
  // What the family should hold, in its order: a node set again keeps its place, as in a Map.
  const gauges = new Map<string, { key: string; series: Series[] }>();
  const counts = new Map<string, Series[]>();
  let seen = 0;
  let last: { g: Buffer; c: Buffer } | undefined;
  for (const [i, o] of ops.entries()) {
    if (o.op === 'put') {
      const key = `${o.value} ${o.lines}`;
      const series = Array.from({ length: o.lines }, (_, k) => ({
        labels: { node: o.node, status: `s${k}` },
        value: o.value,
      }));
      gauge.put(o.node, key, seen, () => series);
      const had = gauges.get(o.node);
      if (had?.key !== key) gauges.set(o.node, { key, series });
    } else if (o.op === 'drop') {
      gauge.drop(o.node);
      gauges.delete(o.node);
    } else if (o.op === 'sweep') {
      // A refresh puts the nodes it still sees (their key unchanged) and forgets the rest.
      seen++;
      for (const [node, { key }] of gauges) if (o.keep.includes(node)) gauge.put(node, key, seen, () => []);
      gauge.sweep(seen);
      for (const node of [...gauges.keys()]) if (!o.keep.includes(node)) gauges.delete(node);
    } else if (o.op === 'inc') {
      counter.inc({ node: o.node, action: o.action }, o.by);
      const series = counts.get(o.node) ?? [];
      const s = series.find((x) => x.labels.action === o.action);
      if (s) s.value += o.by;
      else series.push({ labels: { node: o.node, action: o.action }, value: o.by });
      counts.set(o.node, series);
    }
    // A scrape after every step: each body is built from the one before, with what the step changed.
    const g = await gauge.expositionBytes();
    const c = await counter.expositionBytes();
    const series = new Map([...gauges].map(([node, v]) => [node, v.series]));
    strictEqual(g.toString(), fromScratch('g', 'a gauge', 'gauge', series), `op ${i}: the gauge family`);
    strictEqual(c.toString(), fromScratch('c_total', 'a counter', 'counter', counts), `op ${i}: the counter family`);
    if (last !== undefined && o.op === 'scrape')
      ok(g.equals(last.g) && c.equals(last.c), `op ${i}: nothing changed since the scrape before, the same bytes`);
    last = { g, c };
  }
}

t.test('a per-node family scrapes as written from scratch after any changes, the same bytes without', async (t) => {
  await fc.assert(fc.asyncProperty(fc.array(opArb, { maxLength: 40 }), run), fuzzParams(500));
  t.pass('every sequence of changes and scrapes');
});
