import fc from 'fast-check';
import t from 'tap';
import { parseEventListBody } from '../../aggregator/http/event-list-body.js';
import { startTestAggregator } from '../fixtures/aggregator.js';
import { nestedJson, postAudit } from '../fixtures/audit.js';
import { fuzzParams } from '../fixtures/fuzz.js';

// Property-based fuzzing of the audit webhook's input. EventLists are built from
// valid audit.k8s.io/v1 Events for network-policy changes, some with one field
// mutated, nulled, retyped or nested deep, or with prototype-named keys. Whatever
// comes, the webhook answers (never 500), counts each bad item, and stores every
// good item around them exactly once. Fixed seeds (fuzzParams: FUZZ_RUNS and
// FUZZ_SEED for longer runs): a failure is reproducible.

/** What the webhook must do with an item. */
type Expect = 'store' | 'store-truncated' | 'ignore' | 'refuse';

interface Mutation {
  expect: Expect;
  what: string;
  apply: (e: Record<string, unknown>) => unknown;
}

// Placeholders JSON.stringify cannot produce otherwise, replaced in the item's text:
// a "__proto__" key (an object literal would set the prototype instead) and nesting
// deeper than JSON.stringify can write. fast-check strings are printable ASCII, so
// they never contain the NUL these start with.
const PROTO = '\u0000PROTO';
const deep = (depth: number) => `\u0000DEEP:${depth}`;
const toText = (v: unknown) =>
  JSON.stringify(v)
    .replaceAll('"\\u0000PROTO"', '"__proto__"')
    .replace(/"\\u0000DEEP:(\d+)"/g, (_m, d: string) => nestedJson(Number(d)));

const POLICY_REFS = [
  { apiGroup: 'networking.k8s.io', resource: 'networkpolicies', namespaced: true },
  { apiGroup: 'projectcalico.org', resource: 'networkpolicies', namespaced: true },
  { apiGroup: 'projectcalico.org', resource: 'globalnetworkpolicies', namespaced: false },
  { apiGroup: 'projectcalico.org', resource: 'tiers', namespaced: false },
  { apiGroup: 'crd.projectcalico.org', resource: 'stagednetworkpolicies', namespaced: true },
  { apiGroup: 'cilium.io', resource: 'ciliumnetworkpolicies', namespaced: true },
];
const BASE_MS = Date.parse('2026-11-20T10:00:00Z');

/** A Kubernetes object spec without "__proto__" keys (those are a mutation of their own). */
const specValue = fc.jsonValue({ maxDepth: 3 }).filter((v) => !JSON.stringify(v).includes('"__proto__"'));

const validEvent = fc
  .record({
    verb: fc.constantFrom('create', 'update', 'patch', 'delete'),
    ref: fc.constantFrom(...POLICY_REFS),
    namespace: fc.constantFrom('payments', 'shop', 'kube-system'),
    name: fc.stringMatching(/^[a-z][a-z0-9.-]{0,20}$/),
    second: fc.integer({ min: 0, max: 3599 }),
    micros: fc.boolean(),
    spec: specValue,
    username: fc.option(
      fc.constantFrom('alice@example.com', 'system:serviceaccount:argocd:argocd-application-controller'),
      { nil: undefined },
    ),
    sourceIPs: fc.option(fc.array(fc.ipV4(), { maxLength: 3 }), { nil: undefined }),
    withStatus: fc.boolean(),
  })
  .map((g) => {
    const at = new Date(BASE_MS + g.second * 1000).toISOString().replace('.000Z', g.micros ? '.000000Z' : 'Z');
    const object = {
      apiVersion: 'networking.k8s.io/v1',
      kind: 'Policy',
      metadata: { name: g.name, ...(g.ref.namespaced ? { namespace: g.namespace } : {}) },
      spec: g.spec,
    };
    return {
      kind: 'Event',
      apiVersion: 'audit.k8s.io/v1',
      level: 'RequestResponse',
      auditID: 'set-later',
      stage: 'ResponseComplete',
      requestURI: `/apis/${g.ref.apiGroup}/v1/${g.ref.resource}/${g.name}`,
      verb: g.verb,
      user:
        g.username === undefined
          ? { groups: ['system:authenticated'] }
          : { username: g.username, groups: ['system:authenticated'] },
      ...(g.sourceIPs ? { sourceIPs: g.sourceIPs } : {}),
      objectRef: {
        resource: g.ref.resource,
        apiGroup: g.ref.apiGroup,
        name: g.name,
        apiVersion: 'v1',
        ...(g.ref.namespaced ? { namespace: g.namespace } : {}),
      },
      ...(g.withStatus ? { responseStatus: { metadata: {}, code: g.verb === 'create' ? 201 : 200 } } : {}),
      ...(g.verb === 'delete' ? {} : { requestObject: object, responseObject: object }),
      requestReceivedTimestamp: at,
      stageTimestamp: at,
    } as Record<string, unknown>;
  });

const REQUIRED_STRINGS = ['auditID', 'stage', 'verb', 'stageTimestamp'];
const OPTIONAL_STRINGS = [
  'user.username',
  'objectRef.resource',
  'objectRef.namespace',
  'objectRef.name',
  'objectRef.apiGroup',
];
const OBJECTS = ['user', 'objectRef', 'responseStatus'];
const PROTOTYPE_NAMES = ['constructor', 'prototype', 'toString', 'valueOf', 'hasOwnProperty', '__defineGetter__'];

const notAString = fc.oneof(
  fc.constant(null),
  fc.integer(),
  fc.boolean(),
  fc.constant({ toString: 1 }),
  fc.constant({ valueOf: 'x', toString: 'y' }),
  fc.array(fc.string(), { maxLength: 2 }),
  fc.dictionary(fc.string(), fc.integer(), { maxKeys: 2 }),
  fc.integer({ min: 1, max: 3000 }).map((d) => deep(d)),
);
const notAnObject = fc.oneof(
  fc.constant(null),
  fc.integer(),
  fc.string(),
  fc.boolean(),
  fc.array(fc.integer(), { maxLength: 2 }),
);

/** Set (or with `undefined`, delete) a dotted path, creating the parent if the event lacks it. */
function setPath(e: Record<string, unknown>, path: string, value: unknown): Record<string, unknown> {
  const copy = structuredClone(e);
  const parts = path.split('.');
  let o = copy;
  for (const p of parts.slice(0, -1)) {
    if (typeof o[p] !== 'object' || o[p] === null || Array.isArray(o[p])) o[p] = {};
    o = o[p] as Record<string, unknown>;
  }
  const last = parts[parts.length - 1] as string;
  if (value === undefined) delete o[last];
  else o[last] = value;
  return copy;
}

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  // Refused: not an audit event Verdict can read.
  fc
    .record({ path: fc.constantFrom(...REQUIRED_STRINGS, ...OPTIONAL_STRINGS), value: notAString })
    .map(({ path, value }) => ({
      expect: 'refuse' as const,
      what: `${path} = ${JSON.stringify(value)}`,
      apply: (e: Record<string, unknown>) => setPath(e, path, value),
    })),
  fc
    .record({ path: fc.constantFrom(...OBJECTS, 'sourceIPs'), value: notAnObject })
    .filter(({ path, value }) => !(path === 'sourceIPs' && Array.isArray(value) && value.length === 0))
    .map(({ path, value }) => ({
      expect: 'refuse' as const,
      what: `${path} = ${JSON.stringify(value)}`,
      apply: (e: Record<string, unknown>) => setPath(e, path, value),
    })),
  fc.constantFrom(...REQUIRED_STRINGS).map((path) => ({
    expect: 'refuse' as const,
    what: `no ${path}`,
    apply: (e: Record<string, unknown>) => setPath(e, path, undefined),
  })),
  fc
    .constantFrom<[string, unknown]>(
      ['auditID', ''],
      ['auditID', 'x'.repeat(257)],
      ['stageTimestamp', 'yesterday'],
      ['stageTimestamp', ''],
      ['stageTimestamp', '2026-13-45T99:99:99Z'],
      ['responseStatus.code', '200'],
      ['responseStatus.code', 200.5],
      ['responseStatus.code', null],
      ['sourceIPs', [1]],
      ['sourceIPs', 'x'],
    )
    .map(([path, value]) => ({
      expect: 'refuse' as const,
      what: `${path} = ${JSON.stringify(value)}`,
      apply: (e: Record<string, unknown>) => setPath(e, path, value),
    })),
  fc
    .oneof(
      fc.constant(null),
      fc.integer(),
      fc.string(),
      fc.boolean(),
      fc.array(fc.jsonValue({ maxDepth: 1 }), { maxLength: 3 }),
      fc.integer({ min: 1, max: 3000 }).map((d) => [deep(d)]),
    )
    .map((item) => ({ expect: 'refuse' as const, what: `item = ${JSON.stringify(item)}`, apply: () => item })),
  // Ignored: well formed, but not a completed, successful network-policy change.
  fc
    .constantFrom<[string, unknown]>(
      ['stage', 'RequestReceived'],
      ['stage', 'Panic'],
      ['verb', 'get'],
      ['verb', 'watch'],
      ['verb', '__proto__'],
      ['verb', 'constructor'],
      ['objectRef.apiGroup', 'constructor'],
      ['objectRef.apiGroup', '__proto__'],
      ['objectRef.apiGroup', 'toString'],
      ['objectRef.apiGroup', 'apps'],
      ['objectRef.resource', 'constructor'],
      ['objectRef.resource', 'pods'],
      ['responseStatus.code', 403],
      ['responseStatus.code', 500],
    )
    .map(([path, value]) => ({
      expect: 'ignore' as const,
      what: `${path} = ${JSON.stringify(value)}`,
      apply: (e: Record<string, unknown>) => setPath(e, path, value),
    })),
  // Stored as they came: prototype-named keys are data, and a forged truncation mark is dropped.
  fc
    .record({
      where: fc.constantFrom('', 'user.', 'objectRef.', 'requestObject.', 'requestObject.metadata.'),
      key: fc.constantFrom(...PROTOTYPE_NAMES, 'verdictTruncated'),
      value: fc.jsonValue({ maxDepth: 2 }),
    })
    .map(({ where, key, value }) => ({
      expect: 'store' as const,
      what: `${where}${key} = ${JSON.stringify(value)}`,
      apply: (e: Record<string, unknown>) => setPath(e, `${where}${key}`, value),
    })),
  // Stored cut and marked: "__proto__" keys, nesting deeper than 64 levels.
  fc
    .record({
      where: fc.constantFrom('', 'user.', 'objectRef.', 'requestObject.', 'requestObject.spec.'),
      value: fc.jsonValue({ maxDepth: 2 }),
    })
    .map(({ where, value }) => ({
      expect: 'store-truncated' as const,
      what: `${where}__proto__ = ${JSON.stringify(value)}`,
      apply: (e: Record<string, unknown>) => setPath(e, `${where}${PROTO}`, value),
    })),
  fc
    .record({
      where: fc.constantFrom('requestObject', 'responseObject', 'requestObject.spec', 'annotations'),
      depth: fc.integer({ min: 64, max: 3000 }),
    })
    .map(({ where, depth }) => ({
      expect: 'store-truncated' as const,
      what: `${where} nested ${depth} deep`,
      apply: (e: Record<string, unknown>) => setPath(e, where, deep(depth)),
    })),
);

const entries = fc.array(
  fc.record({ event: validEvent, mutation: fc.option(mutation, { freq: 2, nil: undefined }), resend: fc.boolean() }),
  { minLength: 1, maxLength: 25 },
);

t.test(
  'the audit webhook answers any EventList of mutated events, counts each bad item and stores each good one once',
  async (t) => {
    const agg = await startTestAggregator(t, { protectedNamespaces: ['payments'], protectedTiers: ['default'] });
    const params = fuzzParams(200);
    let run = 0;
    const totals = { refused: 0, ignored: 0, truncated: 0 };
    await fc.assert(
      fc.asyncProperty(entries, async (list) => {
        const prefix = `run${++run}-`;
        const texts: string[] = [];
        const expected: { id: string; expect: Expect; text: string; mutated: boolean }[] = [];
        list.forEach(({ event, mutation: m }, i) => {
          const id = `${prefix}${i}`;
          const item = m ? m.apply({ ...event, auditID: id }) : { ...event, auditID: id };
          const text = toText(item);
          texts.push(text);
          expected.push({ id, expect: m?.expect ?? 'store', text, mutated: m !== undefined });
        });
        // Good items sent twice in one list: the second is neither stored again nor counted.
        list.forEach(({ resend }, i) => {
          if (resend && !list[i]?.mutation) texts.push((expected[i] as { text: string }).text);
        });
        const body = `{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[${texts.join(',')}]}`;
        const res = await postAudit(agg.httpPort, body);
        const count = (x: Expect) => expected.filter((e) => e.expect === x).length;
        const want = {
          received: texts.length,
          stored: count('store') + count('store-truncated'),
          ignored: count('ignore'),
          refused: count('refuse'),
          truncated: count('store-truncated'),
        };
        const problem = (what: string) =>
          new Error(
            `${what}\nanswer: ${res.status} ${JSON.stringify(res.json).slice(0, 2000)}\nmutations: ${JSON.stringify(list.map((l) => l.mutation?.what ?? 'none'))}`,
          );
        if (res.status !== 200) throw problem('the webhook did not answer 200');
        const { errors, ...counts } = res.json as Record<string, unknown> & { errors?: string[] };
        if (JSON.stringify(counts) !== JSON.stringify(want)) throw problem(`expected ${JSON.stringify(want)}`);
        const refusedAt = expected.flatMap((e, i) => (e.expect === 'refuse' ? [i] : [])).slice(0, 10);
        if (
          JSON.stringify((errors ?? []).map((m) => Number(/^items\[(\d+)\]: ./.exec(m)?.[1]))) !==
          JSON.stringify(refusedAt)
        )
          throw problem(`expected reasons for items ${JSON.stringify(refusedAt)}`);

        const stored = (await agg.store.auditEvents(BASE_MS, BASE_MS + 3_600_000)).filter((e) =>
          e.auditId.startsWith(prefix),
        );
        const storedIds = stored.map((e) => e.auditId).sort();
        const wantIds = expected
          .filter((e) => e.expect === 'store' || e.expect === 'store-truncated')
          .map((e) => e.id)
          .sort();
        if (JSON.stringify(storedIds) !== JSON.stringify(wantIds))
          throw problem(`stored ${JSON.stringify(storedIds)}, expected ${JSON.stringify(wantIds)}`);
        for (const e of expected) {
          const s = stored.find((x) => x.auditId === e.id);
          if (e.expect === 'store' && !e.mutated && JSON.stringify(s?.event) !== JSON.stringify(JSON.parse(e.text)))
            throw problem(`${e.id} was not stored as it came`);
          const mark = (s?.event as { verdictTruncated?: unknown } | undefined)?.verdictTruncated;
          if (e.expect === 'store' && mark !== undefined) throw problem(`${e.id} is marked truncated`);
          if (e.expect === 'store-truncated' && !Array.isArray(mark)) throw problem(`${e.id} is not marked truncated`);
        }
        totals.refused += want.refused;
        totals.ignored += want.ignored;
        totals.truncated += want.truncated;
      }),
      params,
    );
    t.pass(
      `${params.numRuns} EventLists answered, ${totals.refused} items refused, ${totals.ignored} ignored, ${totals.truncated} stored cut`,
    );
    t.ok(totals.refused > 0 && totals.ignored > 0 && totals.truncated > 0, 'every kind of outcome was exercised');
    t.equal(({} as Record<string, unknown>).polluted, undefined);
    const health = await fetch(`http://127.0.0.1:${agg.httpPort}/healthz`);
    t.equal(health.status, 200, 'the aggregator keeps serving');
    const metrics = await (await fetch(`http://127.0.0.1:${agg.httpPort}/metrics`)).text();
    t.match(
      metrics,
      new RegExp(`verdict_audit_events_refused_total ${totals.refused}\\b`),
      'every refused item is counted',
    );
    t.match(metrics, new RegExp(`verdict_audit_events_ignored_total ${totals.ignored}\\b`));
    t.match(metrics, new RegExp(`verdict_audit_events_truncated_total ${totals.truncated}\\b`));
  },
);

// The webhook parses its body a slice at a time; whatever the text, the result
// (or the refusal) must be the one JSON.parse gives.
const KEYS = ['items', 'kind', 'apiVersion', 'metadata', '\\u0069tems', '__proto__', 'items '];
const jsonText = fc.oneof(
  fc
    .record({
      kind: fc.constant('EventList'),
      apiVersion: fc.string(),
      items: fc.array(fc.jsonValue({ maxDepth: 4 }), { maxLength: 8 }),
      extra: fc.jsonValue({ maxDepth: 2 }),
    })
    .chain((v) => fc.constantFrom(undefined, 0, 2, '\t').map((space) => JSON.stringify(v, null, space))),
  fc
    .array(fc.tuple(fc.constantFrom(...KEYS), fc.jsonValue({ maxDepth: 3 }), fc.constantFrom('', ' ', '\n\t')), {
      maxLength: 5,
    })
    .map((pairs) => `{${pairs.map(([k, v, ws]) => `${ws}"${k}"${ws}:${ws}${JSON.stringify(v)}${ws}`).join(',')}}`),
  fc.json({ maxDepth: 3 }),
);
const edited = fc
  .tuple(jsonText, fc.nat(), fc.constantFrom('', '[', ']', '{', '}', '"', '\\', ',', ':', ' ', 'x', '1', 'null'))
  .map(([text, at, insert]) => {
    const i = text.length === 0 ? 0 : at % text.length;
    return insert === '' ? text.slice(0, i) + text.slice(i + 1) : text.slice(0, i) + insert + text.slice(i);
  });

t.test('the webhook body is parsed exactly as JSON.parse parses it, valid or not', async (t) => {
  const params = fuzzParams(2000);
  await fc.assert(
    fc.asyncProperty(fc.oneof(jsonText, edited), async (text) => {
      let want: string | undefined;
      let got: string | undefined;
      try {
        want = JSON.stringify(JSON.parse(text));
      } catch {
        want = undefined;
      }
      try {
        got = JSON.stringify(await parseEventListBody(text));
      } catch {
        got = undefined;
      }
      if (got !== want)
        throw new Error(`JSON.parse gives ${want ?? 'an error'}, parseEventListBody ${got ?? 'an error'}`);
    }),
    params,
  );
  t.pass(`${params.numRuns} bodies parsed alike`);
});
