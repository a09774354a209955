import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import fc from 'fast-check';
import t from 'tap';
import { stringify as toYaml } from 'yaml';
import { loadClusterSnapshot, readClusterSnapshot, type ClusterSnapshot } from '../../aggregator/snapshot/index.js';
import { fuzzParams } from '../fixtures/fuzz.js';
import { tempDir } from '../fixtures/tmp.js';

// Property-based fuzzing of the --cluster-snapshot reader. A directory of YAML and JSON files holds good objects
// (single documents and List items, with extra fields whose keys include "__proto__" and "constructor"), bad
// documents (broken YAML, scalars, alias bombs and cycles, nesting too deep, binary values, objects without
// apiVersion, kind, name or namespace, Lists without items) and bad List items, plus files the reader skips. Whatever
// the mix: every bad document or item is one problem naming its file and document, with a one-line reason; every good
// object is kept exactly once, as written, in the place its kind belongs; and no key reaches an object's prototype:
// every mapping read has none, so no later merge can be led into Object.prototype. Fixed seeds (fuzzParams: FUZZ_RUNS
// and FUZZ_SEED for longer runs): a failure is reproducible.
const RUNS = fuzzParams(100);

type Bucket = 'pods' | 'namespaces' | 'serviceAccounts' | 'services' | 'policies' | 'ignored';

const KINDS: { apiVersion: string; kind: string; bucket: Bucket; namespaced: boolean }[] = [
  { apiVersion: 'v1', kind: 'Pod', bucket: 'pods', namespaced: true },
  { apiVersion: 'v1', kind: 'Namespace', bucket: 'namespaces', namespaced: false },
  { apiVersion: 'v1', kind: 'ServiceAccount', bucket: 'serviceAccounts', namespaced: true },
  { apiVersion: 'v1', kind: 'Service', bucket: 'services', namespaced: true },
  { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', bucket: 'policies', namespaced: true },
  { apiVersion: 'projectcalico.org/v3', kind: 'GlobalNetworkPolicy', bucket: 'policies', namespaced: false },
  { apiVersion: 'cilium.io/v2', kind: 'CiliumNetworkPolicy', bucket: 'policies', namespaced: true },
  { apiVersion: 'apps/v1', kind: 'Deployment', bucket: 'ignored', namespaced: false },
  { apiVersion: 'v1', kind: 'ConfigMap', bucket: 'ignored', namespaced: false },
];

/** Keys JavaScript gives meaning to, beside ordinary ones. */
const key = fc.oneof(
  fc.constantFrom('__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', 'polluted'),
  fc.constantFrom('spec', 'status', 'labels', 'x'),
  fc.string({ minLength: 1, maxLength: 12 }),
);
const scalar = fc.oneof(
  fc.string({ maxLength: 16 }),
  fc.string({ unit: 'grapheme', maxLength: 8 }),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.boolean(),
  fc.constant(null),
);
/** JSON text of a value whose mappings may hold any of those keys (JSON.parse makes "__proto__" an own key). */
const valueText: fc.Arbitrary<string> = fc.letrec<{ v: string }>((tie) => ({
  v: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    scalar.map((s) => JSON.stringify(s)),
    fc.array(tie('v'), { maxLength: 3 }).map((xs) => `[${xs.join(',')}]`),
    fc
      .uniqueArray(fc.tuple(key, tie('v')), { maxLength: 4, selector: ([k]) => k })
      .map((kv) => `{${kv.map(([k, v]) => `${JSON.stringify(k)}:${v}`).join(',')}}`),
  ),
})).v;
const extraFields = fc.uniqueArray(
  fc.tuple(
    key.filter((k) => !['apiVersion', 'kind', 'metadata'].includes(k)),
    valueText,
  ),
  { maxLength: 4, selector: ([k]) => k },
);

/** A good object as data (so a counterexample prints whole); its name is given when the directory is laid out. */
interface Good {
  k: (typeof KINDS)[number];
  extra: [string, string][];
  meta: [string, string][];
  ns: string;
}

const goodObject: fc.Arbitrary<Good> = fc.record({
  k: fc.constantFrom(...KINDS),
  extra: extraFields,
  meta: extraFields,
  ns: fc.constantFrom('shop', 'x'),
});

/** The object as JSON text. */
function objectText({ k, extra, meta, ns }: Good, name: string): string {
  const metadata = [
    `"name":${JSON.stringify(name)}`,
    ...(k.namespaced ? [`"namespace":${JSON.stringify(ns)}`] : []),
    ...meta.filter(([m]) => m !== 'name' && m !== 'namespace').map(([m, v]) => `${JSON.stringify(m)}:${v}`),
  ];
  const fields = [
    `"apiVersion":${JSON.stringify(k.apiVersion)}`,
    `"kind":${JSON.stringify(k.kind)}`,
    `"metadata":{${metadata.join(',')}}`,
    ...extra.map(([f, v]) => `${JSON.stringify(f)}:${v}`),
  ];
  return `{${fields.join(',')}}`;
}

/** A document, or a List item, that cannot be used, and what its problem must say. */
interface Bad {
  text: string;
  reason: RegExp;
  /** Only as a file's last document: it would take the documents after it with it (see the test at the end). */
  last?: true;
}
const nested = (depth: number) => `${'['.repeat(depth)}${']'.repeat(depth)}`;
const badDocument: fc.Arbitrary<Bad> = fc.constantFrom<Bad>(
  { text: 'a: b: c', reason: /^not valid YAML/ },
  { text: 'k: 1\nk: 2', reason: /^not valid YAML/ },
  { text: '[1, 2', reason: /^not valid YAML/ },
  { text: '"unterminated', reason: /^not valid YAML/, last: true },
  { text: '*nowhere', reason: /^not valid YAML/ },
  { text: '- a\n b: c', reason: /^not valid YAML/ },
  { text: '42', reason: /^not an object$/ },
  { text: '"text"', reason: /^not an object$/ },
  { text: '[{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "in-a-list"}}]', reason: /^not an object$/ },
  {
    text: 'a: &a [x,x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\napiVersion: v1\nkind: Namespace\nmetadata: {name: bomb}',
    reason: /alias/i,
  },
  { text: 'apiVersion: v1\nkind: Namespace\nmetadata: {name: cycle}\nself: &s [*s]', reason: /refers to itself|alias/ },
  {
    text: `{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "deep"}, "x": ${nested(70)}}`,
    reason: /deeper than/,
  },
  {
    text: `{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "deeper"}, "x": ${nested(20_000)}}`,
    reason: /./,
  },
  { text: 'apiVersion: v1\nkind: Namespace\nmetadata: {name: bin}\ndata: !!binary aGVsbG8=', reason: /binary/ },
  { text: '{"kind": "Namespace", "metadata": {"name": "a"}}', reason: /apiVersion is missing/ },
  { text: '{"apiVersion": 1, "kind": "Namespace", "metadata": {"name": "a"}}', reason: /apiVersion is missing/ },
  { text: '{"apiVersion": "v1", "metadata": {"name": "a"}}', reason: /kind is missing/ },
  { text: '{"apiVersion": "v1", "kind": "Namespace", "metadata": {}}', reason: /metadata.name is missing/ },
  { text: '{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ""}}', reason: /metadata.name is missing/ },
  { text: '{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}', reason: /metadata.namespace is missing/ },
  {
    text: '{"apiVersion": "v1", "kind": "Namespace", "__proto__": {"metadata": {"name": "inherited"}}}',
    reason: /metadata.name is missing/,
  },
  { text: '{"apiVersion": "v1", "kind": "List"}', reason: /List without an items list/ },
  { text: '{"apiVersion": "v1", "kind": "PodList", "items": {"0": {}}}', reason: /PodList without an items list/ },
);
const badItem: fc.Arbitrary<Bad> = fc.constantFrom<Bad>(
  { text: '42', reason: /not an object/ },
  { text: 'null', reason: /not an object/ },
  { text: '["a"]', reason: /not an object/ },
  { text: '{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}', reason: /metadata.namespace is missing/ },
  { text: '{"apiVersion": "v1", "metadata": {"name": "a"}}', reason: /kind is missing/ },
  {
    text: `{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "deep"}, "x": ${nested(70)}}`,
    reason: /deep/,
  },
);

/** One document of a file. */
type Piece =
  | { type: 'object'; good: Good; style: Style }
  | { type: 'list'; kind: string; items: ({ good: Good } | { bad: Bad })[]; style: Style }
  | { type: 'bad'; bad: Bad }
  | { type: 'empty' };
type Style = 'json' | 'pretty' | 'yaml';

const style = fc.constantFrom<Style>('json', 'pretty', 'yaml');
const piece: fc.Arbitrary<Piece> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ type: fc.constant('object' as const), good: goodObject, style }) },
  {
    weight: 2,
    arbitrary: fc.record({
      type: fc.constant('list' as const),
      kind: fc.constantFrom('List', 'PodList', 'NamespaceList'),
      items: fc.array(fc.oneof(fc.record({ good: goodObject }), fc.record({ bad: badItem })), { maxLength: 5 }),
      style,
    }),
  },
  { weight: 3, arbitrary: fc.record({ type: fc.constant('bad' as const), bad: badDocument }) },
  { weight: 1, arbitrary: fc.constant({ type: 'empty' as const }) },
);
/** The files: at the top, in b/ and in b/c/, with every extension the reader takes. */
const files = fc.array(
  fc.record({ at: fc.constantFrom('', 'b/', 'b/c/'), ext: fc.constantFrom('yaml', 'yml', 'json', 'YAML') }),
  { minLength: 1, maxLength: 5 },
);

function serialize(text: string, how: Style): string {
  if (how === 'json') return text;
  const value = JSON.parse(text) as unknown;
  return how === 'pretty' ? JSON.stringify(value, null, 2) : toYaml(value);
}

interface Expected {
  kept: Record<Bucket, string[]>;
  problems: { file: string; document: number; reason: RegExp }[];
  files: number;
}

/** Write the directory; return what the reader must find in it. */
function layOut(dir: string, plan: { path: string; pieces: Piece[] }[]): Expected {
  const expected: Expected = {
    kept: { pods: [], namespaces: [], serviceAccounts: [], services: [], policies: [], ignored: [] },
    problems: [],
    files: plan.length,
  };
  let names = 0;
  const keep = (good: Good) => {
    const text = objectText(good, `obj-${names++}`);
    expected.kept[good.k.bucket].push(JSON.stringify(JSON.parse(text)));
    return text;
  };
  for (const { path, pieces } of plan) {
    const docs = pieces.map((p, i) => {
      const document = i + 1;
      switch (p.type) {
        case 'object':
          return serialize(keep(p.good), p.style);
        case 'list': {
          const items = p.items.map((item, j) => {
            if ('good' in item) return keep(item.good);
            expected.problems.push({
              file: path,
              document,
              reason: new RegExp(`^items\\[${j}\\]: .*${item.bad.reason.source}`),
            });
            return item.bad.text;
          });
          return serialize(
            `{"apiVersion":"v1","kind":"${p.kind}","metadata":{},"items":[${items.join(',')}]}`,
            p.style,
          );
        }
        case 'bad':
          expected.problems.push({ file: path, document, reason: p.bad.reason });
          return p.bad.text;
        case 'empty':
          return '';
      }
    });
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    // Each document starts with its own marker, so document N of the file is piece N.
    writeFileSync(join(dir, path), docs.map((d) => `---\n${d}\n`).join(''));
  }
  // What the reader skips: other extensions, hidden files and folders.
  writeFileSync(join(dir, 'notes.txt'), 'a: b: c\n');
  writeFileSync(join(dir, '.hidden.yaml'), 'a: b: c\n');
  mkdirSync(join(dir, '.git'), { recursive: true });
  writeFileSync(join(dir, '.git', 'config.yaml'), '42\n');
  return expected;
}

/** The pieces with at most one document that must come last, moved last. */
function lastLast(pieces: Piece[]): Piece[] {
  const isLast = (p: Piece) => p.type === 'bad' && p.bad.last === true;
  const last = pieces.find(isLast);
  return [...pieces.filter((p) => !isLast(p)), ...(last ? [last] : [])];
}

/** Every mapping under a value that has a prototype (a null-prototype mapping has none to reach). */
function withPrototype(v: unknown, at: string, out: string[]): string[] {
  if (typeof v !== 'object' || v === null) return out;
  if (!Array.isArray(v) && Object.getPrototypeOf(v) !== null) out.push(at);
  for (const [k, x] of Object.entries(v)) withPrototype(x, `${at}.${k}`, out);
  return out;
}

const prototypeNames = Object.getOwnPropertyNames(Object.prototype).sort();

function check(snapshot: ClusterSnapshot, problems: ReturnType<typeof readClusterSnapshot>['problems'], e: Expected) {
  const wrong: string[] = [];
  for (const bucket of ['pods', 'namespaces', 'serviceAccounts', 'services', 'policies'] as const) {
    const got = snapshot[bucket].map((o) => JSON.stringify(o));
    if (JSON.stringify(got) !== JSON.stringify(e.kept[bucket]))
      wrong.push(`${bucket}: kept ${got.join(' ')}\n  expected ${e.kept[bucket].join(' ')}`);
    for (const o of snapshot[bucket]) for (const p of withPrototype(o, bucket, [])) wrong.push(`${p} has a prototype`);
  }
  if (snapshot.ignored !== e.kept.ignored.length)
    wrong.push(`ignored ${snapshot.ignored}, not ${e.kept.ignored.length}`);
  if (snapshot.files !== e.files) wrong.push(`read ${snapshot.files} files, not ${e.files}`);
  const places = (ps: { file: string; document: number }[]) => ps.map((p) => `${p.file}#${p.document}`).join(' ');
  if (places(problems) !== places(e.problems))
    wrong.push(`problems at ${places(problems)}, not ${places(e.problems)}: ${JSON.stringify(problems)}`);
  else
    for (const [i, p] of problems.entries()) {
      const want = e.problems[i]!.reason;
      if (!want.test(p.reason) || /[\r\n]/.test(p.reason)) wrong.push(`${p.file}#${p.document}: ${p.reason} (${want})`);
    }
  if (JSON.stringify(Object.getOwnPropertyNames(Object.prototype).sort()) !== JSON.stringify(prototypeNames))
    wrong.push('Object.prototype has new properties');
  if (({} as Record<string, unknown>).polluted !== undefined) wrong.push('({}).polluted is set');
  return wrong;
}

t.test('bad documents are each a problem; good objects are kept once, as written, with no prototype', async (t) => {
  const root = tempDir(t);
  let run = 0;
  fc.assert(
    fc.property(files, fc.array(fc.array(piece, { maxLength: 6 }), { minLength: 5, maxLength: 5 }), (fs, docs) => {
      const dir = join(root, String(run++));
      // Distinct, sorted names: a folder's files sort after the files beside it ("a…" before "b/").
      const plan = fs
        .map((f, i) => ({ path: `${f.at}a${String(i).padStart(2, '0')}.${f.ext}`, pieces: lastLast(docs[i] ?? []) }))
        .sort((x, y) => x.path.split('/').length - y.path.split('/').length || x.path.localeCompare(y.path));
      const expected = layOut(dir, plan);
      const { snapshot, problems } = readClusterSnapshot(dir);
      const wrong = check(snapshot, problems, expected);
      rmSync(dir, { recursive: true, force: true });
      if (wrong.length > 0) throw new Error(wrong.join('\n'));
    }),
    RUNS,
  );
  t.pass(`${RUNS.numRuns} directories`);
});

t.test(
  'a quote left open with no quote after it takes the rest of its file, and the snapshot is refused',
  async (t) => {
    // The yaml package reads a double-quoted scalar that no later quote closes on to the end of the text, past "---"
    // lines (where YAML forbids it), so the documents after it are part of the broken one: not kept, not counted apart.
    // Nothing is lost quietly for it: one problem refuses the whole snapshot (loadClusterSnapshot).
    const dir = tempDir(t);
    const rest = '---\napiVersion: v1\nkind: Namespace\nmetadata: {name: swallowed}\n';
    writeFileSync(join(dir, 'a.yaml'), `---\n"open\n${rest}`);
    writeFileSync(
      join(dir, 'b.yaml'),
      `---\n"open\n${rest}---\n{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kept"}}\n`,
    );
    const { snapshot, problems } = readClusterSnapshot(dir);
    t.same(
      problems.map((p) => [p.file, p.document, p.reason]),
      [
        ['a.yaml', 1, 'not valid YAML: Missing closing "quote'],
        ['b.yaml', 1, 'not valid YAML: Missing closing "quote'],
      ],
    );
    t.same(
      snapshot.namespaces.map((n) => (n.metadata as { name: string }).name),
      ['swallowed', 'kept'],
      'with a quote further on, the documents after the open one are read',
    );
    t.throws(() => loadClusterSnapshot(dir), { message: /2 document\(s\) cannot be used: a.yaml document 1/ });
  },
);
