import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { pino } from 'pino';
import t, { type Test } from 'tap';
import { FlowCapture, parseFlowSource } from '../../../agent/flows/index.js';
import { InternalNetworks } from '../../../agent/flows/normalize.js';
import { parseCalicoLine } from '../../../agent/flows/sources/calico.js';
import { HubbleParser } from '../../../agent/flows/sources/hubble.js';
import { flowRecordProblem } from '../../../common/flow.js';
import { packageRoot } from '../../../common/package-root.js';
import { flowFromWire } from '../../../proto/from-wire.js';
import type { WireFlowBatch } from '../../../proto/index.js';
import { recordingOutbox } from '../../fixtures/outbox.js';
import { tempDir } from '../../fixtures/tmp.js';
import { fuzzParams } from '../../fixtures/fuzz.js';

// Property-based fuzzing of the flow-line parsers through the real capture
// path (file → follower → parser → window → outbox → encoded FlowBatch), on
// records generated from the published samples in examples/flows (Calico
// flows.log, Hubble exporter lines; their sources are cited there) with fields
// mutated, nulled, retyped, nested or given prototype keys. Invariants: no
// exception escapes; every line is a flow, a skip or a counted malformed line;
// every record that leaves the agent is one the aggregator stores (it decodes
// and validates); and the good lines around bad ones arrive exactly once.
// Fixed seeds; `npm run fuzz` for a longer run.
const root = packageRoot();
const CALICO = readFileSync(join(root, 'examples', 'flows', 'calico', 'flows.log'), 'utf8')
  .split('\n')
  .filter(Boolean)
  .map((l) => JSON.parse(l) as Record<string, unknown>);
const HUBBLE = readFileSync(join(root, 'examples', 'flows', 'hubble', 'flows.jsonl'), 'utf8')
  .split('\n')
  .filter(Boolean)
  .map((l) => JSON.parse(l) as Record<string, unknown>);
const internal = new InternalNetworks(['10.0.0.0/8', '2001:db8::/32']);

/** Odd values a field may be replaced with: the shapes a hostile or buggy writer produces. */
const oddValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.constant(null),
  fc.constant(undefined),
  fc.boolean(),
  fc.integer(),
  fc.double(),
  fc.constantFrom(Number.MAX_SAFE_INTEGER + 2, -1, 1e308, 2 ** 64, 65536, 0),
  fc.string(),
  fc.constantFrom(
    '',
    '-',
    '\u0000',
    'a\u0000b',
    'x'.repeat(5000),
    '10.1.2.3',
    '::1',
    'pub',
    'wep',
    'allow',
    'deny',
    'src',
    'dst',
    'TCP',
    'DROPPED',
    'FORWARDED',
    'EGRESS',
    'INGRESS',
  ),
  fc.array(fc.oneof(fc.string(), fc.integer(), fc.constant(null)), { maxLength: 4 }),
  fc.constant({ toString: 1 }),
  fc.constant({ valueOf: 'x' }),
  fc.constant(JSON.parse('{"__proto__":{"polluted":true}}')),
  fc.constant({ constructor: { prototype: { polluted: true } } }),
  fc.constant({ TCP: null }),
  fc.constant({ labels: 'not-a-list' }),
  fc.constant({ labels: [1, null, 'a=b'] }),
);

type Json = Record<string, unknown>;

/** Set `value` at a path of keys (creating objects on the way), on a deep copy. */
function mutate(rec: Json, path: string[], value: unknown): Json {
  const copy = JSON.parse(JSON.stringify(rec)) as Json;
  let node: Json = copy;
  for (const k of path.slice(0, -1)) {
    const next = node[k];
    if (typeof next !== 'object' || next === null || Array.isArray(next)) node[k] = {};
    node = node[k] as Json;
  }
  const last = path[path.length - 1] as string;
  if (value === undefined) delete node[last];
  else Object.defineProperty(node, last, { value, enumerable: true, writable: true, configurable: true });
  return copy;
}

function pathsOf(rec: Json, prefix: string[] = [], depth = 0): string[][] {
  const out: string[][] = [];
  for (const [k, v] of Object.entries(rec)) {
    out.push([...prefix, k]);
    if (depth < 3 && typeof v === 'object' && v !== null && !Array.isArray(v))
      out.push(...pathsOf(v as Json, [...prefix, k], depth + 1));
  }
  return out;
}

/** A line: a sample record as is, with one to three fields mutated, or not JSON at all. */
function lineArb(samples: Json[]): fc.Arbitrary<string> {
  const mutated = fc
    .tuple(
      fc.nat(samples.length - 1),
      fc.array(fc.tuple(fc.nat(), oddValue, fc.constantFrom('', '__proto__', 'constructor', 'prototype')), {
        minLength: 1,
        maxLength: 3,
      }),
    )
    .map(([i, edits]) => {
      let rec = samples[i] as Json;
      for (const [p, v, extra] of edits) {
        const paths = pathsOf(rec);
        const path = paths[p % paths.length] as string[];
        rec = mutate(rec, extra ? [...path.slice(0, -1), extra] : path, v);
      }
      return JSON.stringify(rec);
    });
  // One line each: no line breaks inside; blank lines are not records at all (the follower passes over them).
  const garbage = fc
    .oneof(fc.string(), fc.constantFrom('{', '[]', 'null', '1', '"x"', '{"a":1}', '\u0000\u0000'))
    .map((g) => g.replace(/[\r\n]/g, ' '))
    .filter((g) => g.trim() !== '');
  return fc.oneof(
    { weight: 3, arbitrary: fc.nat(samples.length - 1).map((i) => JSON.stringify(samples[i])) },
    { weight: 5, arbitrary: mutated },
    { weight: 1, arbitrary: garbage },
  );
}

async function capture(t: Test, kind: 'calico' | 'hubble', lines: string[]) {
  const dir = tempDir(t);
  const file = join(dir, 'flows.log');
  writeFileSync(file, '');
  const batches: WireFlowBatch[] = [];
  const cap = new FlowCapture({
    sources: [parseFlowSource(`${kind}:${file}`)],
    outbox: recordingOutbox(batches),
    internal,
    log: pino({ level: 'silent' }),
    windowMs: 3_600_000,
    pollMs: 3_600_000,
    now: Date.now,
  });
  cap.poll(); // without a spool a file is followed from its end: take that position while the file is empty
  writeFileSync(file, lines.join('\n') + '\n');
  cap.flush();
  return { cap, batches };
}

t.test(
  'Calico lines, generated from the sample and mutated: every line accounted for, good ones kept exactly once',
  async (t) => {
    await fc.assert(
      fc.asyncProperty(fc.array(lineArb(CALICO), { minLength: 1, maxLength: 30 }), async (lines) => {
        const { cap, batches } = await capture(t, 'calico', lines);
        // What each line is alone (Calico lines are independent of each other).
        let want = 0;
        let wantMalformed = 0;
        for (const l of lines) {
          let r;
          try {
            r = parseCalicoLine(l, internal);
          } catch {
            r = { kind: 'malformed' as const };
          }
          if (r.kind === 'flow' && !flowRecordProblem(r.flow)) want += r.flow.connections;
          else if (r.kind === 'malformed' || r.kind === 'flow') wantMalformed++;
        }
        const records = batches.flatMap((b) => b.records);
        for (const r of records) {
          const f = flowFromWire(r);
          if (typeof f === 'string') throw new Error(`the agent sent a record the aggregator refuses: ${f}`);
        }
        const got = records.reduce((n, r) => n + r.connections, 0);
        const malformed = batches.reduce((n, b) => n + b.sources.reduce((m, s) => m + s.malformed, 0), 0);
        if (got !== want) throw new Error(`connections sent ${got}, expected ${want}`);
        if (malformed !== wantMalformed || cap.stats.malformed !== wantMalformed)
          throw new Error(`malformed ${malformed}, expected ${wantMalformed}`);
        if (({} as Json).polluted !== undefined) throw new Error('Object.prototype was polluted');
      }),
      fuzzParams(60, 20261130),
    );
    t.pass('property held');
  },
);

t.test(
  'Hubble lines, generated from the sample and mutated: no exception escapes, every line is a flow, a skip or counted',
  async (t) => {
    await fc.assert(
      fc.asyncProperty(fc.array(lineArb(HUBBLE), { minLength: 1, maxLength: 30 }), async (lines) => {
        const { cap, batches } = await capture(t, 'hubble', lines);
        // The same lines through one parser (Hubble folds repeated events of a connection, so order matters).
        const p = new HubbleParser(internal);
        let want = 0;
        let wantMalformed = 0;
        for (const l of lines) {
          let r;
          try {
            r = p.line(l);
          } catch {
            r = { kind: 'malformed' as const };
          }
          if (r.kind === 'flow' && !flowRecordProblem(r.flow)) want += r.flow.connections;
          else if (r.kind === 'malformed' || r.kind === 'flow') wantMalformed++;
        }
        // Connections held for a verdict that never came are handed over when the window closes.
        for (const f of p.flush()) want += f.connections;
        const records = batches.flatMap((b) => b.records);
        for (const r of records)
          if (typeof flowFromWire(r) === 'string') throw new Error('the agent sent a record the aggregator refuses');
        const got = records.reduce((n, r) => n + r.connections, 0);
        if (got !== want) throw new Error(`connections sent ${got}, expected ${want}`);
        if (cap.stats.malformed !== wantMalformed)
          throw new Error(`malformed ${cap.stats.malformed}, expected ${wantMalformed}`);
      }),
      fuzzParams(60, 20261131),
    );
    t.pass('property held');
  },
);

t.test('a NUL in one flow label drops that record at the agent, counted; the rest of the window is sent', async (t) => {
  const good = CALICO.slice(0, 6).map((r) => JSON.stringify(r));
  const nul = JSON.stringify(mutate(CALICO[0] as Json, ['dest_labels', 'labels'], ['app=fr\u0000ontend']));
  const { cap, batches } = await capture(t, 'calico', [...good.slice(0, 3), nul, ...good.slice(3)]);
  t.equal(cap.stats.malformed, 1);
  t.equal(batches.length, 1);
  const want = CALICO.slice(0, 6).reduce((n, r) => n + (r.num_flows as number), 0);
  t.equal(
    batches[0]?.records.reduce((n, r) => n + r.connections, 0),
    want,
    'every other record of the window is there',
  );
  t.equal(batches[0]?.sources[0]?.malformed, 1, 'and the drop is told upstream');
});
