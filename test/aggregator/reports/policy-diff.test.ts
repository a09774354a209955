import t from 'tap';
import { windowsAround } from '../../../aggregator/reports/policy-events.js';
import { jsonDiff, policyChanges } from '../../../aggregator/reports/types/policy-audit.js';
import type { StoredAuditEvent } from '../../../aggregator/store/index.js';
import { nested } from '../../fixtures/audit.js';

// Policy diffs over stored audit events, which may hold any shape an API server
// (or an older Verdict) stored: iterative, depth-bounded, and linear.

t.test('jsonDiff: objects key by key in key order, everything else as a whole', async (t) => {
  const cases: {
    name: string;
    before: unknown;
    after: unknown;
    diff: { path: string; before?: unknown; after?: unknown }[];
  }[] = [
    { name: 'equal values', before: { a: [1, { b: 2 }] }, after: { a: [1, { b: 2 }] }, diff: [] },
    {
      name: 'key order does not matter, in arrays either',
      before: { a: [{ x: 1, y: 2 }], b: 1 },
      after: { b: 1, a: [{ y: 2, x: 1 }] },
      diff: [],
    },
    {
      name: 'a changed leaf',
      before: { a: { b: 1, c: 2 } },
      after: { a: { b: 1, c: 3 } },
      diff: [{ path: 'spec.a.c', before: 2, after: 3 }],
    },
    {
      name: 'keys in sorted order',
      before: { z: 1, a: 1 },
      after: { z: 2, a: 2 },
      diff: [
        { path: 'spec.a', before: 1, after: 2 },
        { path: 'spec.z', before: 1, after: 2 },
      ],
    },
    {
      name: 'an array is one value',
      before: { ports: [80] },
      after: { ports: [80, 443] },
      diff: [{ path: 'spec.ports', before: [80], after: [80, 443] }],
    },
    {
      name: 'added and removed keys',
      before: { a: 1 },
      after: { b: 1 },
      diff: [
        { path: 'spec.a', before: 1 },
        { path: 'spec.b', after: 1 },
      ],
    },
    { name: 'no previous version', before: undefined, after: { a: 1 }, diff: [{ path: 'spec', after: { a: 1 } }] },
    {
      name: 'prototype-named keys are data',
      before: { constructor: 1, toString: 'x' },
      after: {},
      diff: [
        { path: 'spec.constructor', before: 1 },
        { path: 'spec.toString', before: 'x' },
      ],
    },
    {
      name: 'a key only the other side has is not read from Object.prototype',
      before: {},
      after: { constructor: { name: 'x' } },
      diff: [{ path: 'spec.constructor', after: { name: 'x' } }],
    },
  ];
  const withProto = JSON.parse('{"a":{"__proto__":{"x":1}}}') as unknown;
  t.equal(
    JSON.stringify(jsonDiff({ a: 1 }, withProto, 'spec')),
    '[{"path":"spec.a","before":1,"after":{"__proto__":{"x":1}}}]',
    'a "__proto__" key in a changed value is kept as data',
  );
  for (const c of cases)
    t.same(
      jsonDiff(c.before, c.after, 'spec'),
      c.diff.map((d) => ({ path: d.path, before: d.before, after: d.after })),
      c.name,
    );
});

t.test(
  'jsonDiff over 100,000 levels: no stack overflow, one change 64 levels down with its values cut to 32 levels',
  async (t) => {
    const diff = jsonDiff(nested(100_000, 'one'), nested(100_000, 'two'), 'spec');
    t.equal(diff.length, 1);
    t.equal(diff[0]?.path, `spec${'.a'.repeat(64)}`);
    t.match(JSON.stringify(diff[0]?.before), /\[verdict: truncated, nested deeper than 32 levels\]/);
    t.same(jsonDiff(nested(100_000, 'same'), nested(100_000, 'same'), 'spec'), [], 'equal deep values compare equal');
  },
);

t.test(
  'policyChanges: many changes to one object, each diffed against the one before, watch twins merged',
  async (t) => {
    const ev = (i: number, source: 'audit' | 'watch', spec: unknown): StoredAuditEvent => ({
      auditId: source === 'watch' ? `watch:uid:${i}:` : `a-${i}`,
      stageMs: 1_000_000 + i * 120_000 + (source === 'watch' ? 1000 : 0),
      verb: 'update',
      resource: 'networkpolicies',
      apiGroup: 'networking.k8s.io',
      namespace: 'payments',
      name: 'allow-api',
      username: source === 'audit' ? 'alice' : '',
      event: { ...(source === 'watch' ? { source: 'watch' } : {}), responseObject: { spec } },
    });
    const n = 20_000;
    const events: StoredAuditEvent[] = [];
    for (let i = 0; i < n; i++) {
      // The watch sees each version a second after the audit log; the audit event carries the same object.
      events.push(ev(i, 'audit', { replicas: i }), ev(i, 'watch', { replicas: i }));
    }
    const changes = policyChanges(events, [ev(-1, 'audit', { replicas: -1 })]);
    t.equal(changes.length, n, 'one change per version: each watched twin merged into its audit event');
    t.ok(changes.every((c) => c.source === 'audit' && c.user === 'alice'));
    t.same(changes[0]?.diff, [{ path: 'spec.replicas', before: -1, after: 0 }]);
    t.same(changes[n - 1]?.diff, [{ path: 'spec.replicas', before: n - 2, after: n - 1 }]);
  },
);

t.test('windowsAround: the ranges near each time, merged where they overlap', async (t) => {
  t.same(windowsAround([], 60_000), []);
  t.same(windowsAround([1_000_000], 60_000), [[940_000, 1_060_001]]);
  t.same(
    windowsAround([1_000_000, 1_100_000, 5_000_000], 60_000),
    [
      [940_000, 1_160_001],
      [4_940_000, 5_060_001],
    ],
    'near times share one range, far ones get their own',
  );
});
