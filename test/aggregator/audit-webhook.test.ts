import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import Database from 'better-sqlite3';
import t, { type Test } from 'tap';
import { startTestAggregator } from '../fixtures/aggregator.js';
import { eventList, nested, nestedJson, policyAuditEvent, postAudit } from '../fixtures/audit.js';
import { tempDir } from '../fixtures/tmp.js';

// The audit webhook under hostile and oversized input: a 16 MiB EventList is
// stored in linear time without stalling the event loop, deep objects are cut
// and marked instead of breaking diffs, and unreadable items are refused one by
// one while the rest of their list is kept.

const MARKER = '[verdict: truncated, nested deeper than 64 levels]';

async function setup(t: Test) {
  const dir = tempDir(t);
  mkdirSync(join(dir, 'reports'));
  writeFileSync(
    join(dir, 'reports', 'policy.yaml'),
    'apiVersion: compliance.verdict.dev/v1\nkind: GlobalReport\nmetadata: {name: policy-changes}\nspec:\n  reportType: policy-audit\n',
  );
  const agg = await startTestAggregator(t, {
    reportsDir: join(dir, 'reports'),
    protectedNamespaces: ['payments'],
    protectedTiers: ['security'],
  });
  const base = `http://127.0.0.1:${agg.httpPort}`;
  const get = async (path: string) => {
    const res = await fetch(`${base}${path}`);
    const text = await res.text();
    return {
      status: res.status,
      text,
      json: (res.headers.get('content-type') ?? '').includes('json')
        ? (JSON.parse(text) as Record<string, unknown>)
        : {},
    };
  };
  const runReport = async (start: string, end: string) => {
    const res = await fetch(`${base}/api/v1/reports/policy-changes/runs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ start, end }),
    });
    t.equal(res.status, 202, 'report run queued');
    const id = ((await res.json()) as { id: string }).id;
    await agg.scheduler.tick();
    await agg.scheduler.idle();
    return (await get(`/api/v1/reports/policy-changes/runs/${id}`)).json as {
      status: string;
      error?: string;
      result?: {
        summary: Record<string, number>;
        data: { changes: { auditId: string; diff: { path: string; before: unknown; after: unknown }[] }[] };
      };
    };
  };
  return { agg, get, runReport };
}

t.test('a 16 MiB EventList of 90,000 changes is stored once each while /healthz keeps answering', async (t) => {
  const { agg, get } = await setup(t);
  // As small as a real event gets, so that 90,000 fit in the 16 MiB body limit.
  const n = 90_000;
  const start = Date.parse('2026-11-20T10:00:00Z');
  const items = Array.from({ length: n }, (_, i) => ({
    auditID: `big-${i}`,
    stage: 'ResponseComplete',
    verb: i % 3 === 0 ? 'create' : 'update',
    stageTimestamp: new Date(start + i * 1000).toISOString().replace('.000Z', 'Z'),
    objectRef: { resource: 'tiers', apiGroup: 'projectcalico.org', name: `t${i % 20_000}` },
  }));
  const body = JSON.stringify(eventList(items));
  t.ok(body.length < 16 * 1024 * 1024, `the body is ${(body.length / 1048576).toFixed(1)} MiB`);

  const stalls = monitorEventLoopDelay({ resolution: 10 });
  stalls.enable();
  let done = false;
  const posting = postAudit(agg.httpPort, body).finally(() => {
    done = true;
  });
  // The list is stored a slice of items per turn, in order: its first event stored and its last one not yet is the
  // window in which it is being stored. A probe counts when it was sent after the first and answered before the last,
  // so neither the upload nor the parsing of the body, nor a pace of the probes, can make up the count. Each probe
  // is sent once the one before was answered.
  const storedAt = async (i: number) =>
    (await agg.store.auditEvents(start + i * 1000, start + i * 1000 + 1)).length > 0;
  let answeredDuring = 0;
  while (!done) {
    const began = await storedAt(0);
    const h = await get('/healthz');
    if (h.status === 200 && began && !done && !(await storedAt(n - 1))) answeredDuring++;
  }
  stalls.disable();
  const posted = await posting;
  t.equal(posted.status, 200);
  t.same(posted.json, { received: n, stored: n, ignored: 0, refused: 0, truncated: 0 });
  t.ok(answeredDuring >= 3, `/healthz answered ${answeredDuring} times while the list was being stored`);
  const worstMs = stalls.max / 1e6;
  // Alone ~75-275 ms; the old code stalled 143 s. The bound leaves room for a loaded CI machine.
  t.ok(worstMs < 1000, `the longest event-loop stall was ${worstMs.toFixed(0)} ms (under 1,000 ms)`);

  const stored = await agg.store.auditEvents(start, start + n * 1000);
  t.equal(stored.length, n, 'every event is stored');
  t.equal(new Set(stored.map((e) => e.auditId)).size, n, 'each exactly once');
  t.same(
    (await postAudit(agg.httpPort, body)).json,
    { received: n, stored: 0, ignored: 0, refused: 0, truncated: 0 },
    'a resent list stores nothing twice',
  );
});

t.test(
  'events 2,000 levels deep are stored cut and marked; tamper alerts and policy-audit runs still answer',
  async (t) => {
    const { agg, get, runReport } = await setup(t);
    const at = (m: number) => `2026-11-20T10:0${m}:00.000000Z`;
    // Two versions that differ 2,000 levels down: diffing them recursively overflowed the stack.
    const posted = await postAudit(
      agg.httpPort,
      eventList([
        policyAuditEvent({ id: 'd1', verb: 'create', at: at(1), spec: { podSelector: {} } }),
        policyAuditEvent({ id: 'd2', at: at(2), spec: { podSelector: {}, ingress: nested(2000, 'one') } }),
        policyAuditEvent({ id: 'd3', at: at(3), spec: { podSelector: {}, ingress: nested(2000, 'two') } }),
      ]),
    );
    t.equal(posted.status, 200);
    t.same(posted.json, { received: 3, stored: 3, ignored: 0, refused: 0, truncated: 2 });
    // 200,000 levels: more than JSON.stringify can write (so the body is written as text), and more than the store
    // could.
    const deeper = JSON.stringify(
      eventList([
        policyAuditEvent({ id: 'd4', at: at(4), spec: 'DEEP' }),
        policyAuditEvent({ id: 'd5', at: at(5), spec: { podSelector: { matchLabels: { app: 'api' } } } }),
      ]),
    ).replace('"DEEP"', nestedJson(200_000));
    t.same((await postAudit(agg.httpPort, deeper)).json, {
      received: 2,
      stored: 2,
      ignored: 0,
      refused: 0,
      truncated: 1,
    });

    const stored = new Map(
      (await agg.store.auditEvents(Date.parse(at(0)), Date.parse(at(9)))).map((e) => [
        e.auditId,
        e.event as Record<string, unknown>,
      ]),
    );
    const d2 = stored.get('d2') as { verdictTruncated: string[]; requestObject: { spec: { ingress: unknown } } };
    t.match(d2.verdictTruncated, [
      /nested deeper than 64 levels replaced by a marker, the first at (request|response)Object\.spec\.ingress\.a\.a/,
    ]);
    let v: unknown = d2.requestObject.spec.ingress;
    let levels = 0;
    while (typeof v === 'object' && v !== null) {
      v = (v as { a: unknown }).a;
      levels++;
    }
    t.equal(v, MARKER, 'the deep part is replaced by the marker');
    t.equal(levels, 64 - 3, 'the event keeps 64 levels: event, requestObject, spec, then the rest');
    t.match(stored.get('d4')?.verdictTruncated, [/nested deeper than 64 levels/]);
    t.equal(stored.get('d1')?.verdictTruncated, undefined, 'an event within the bounds is not marked');

    const alerts = await get('/api/v1/tamper-alerts?from=2026-11-20T00:00:00Z&to=2026-11-21T00:00:00Z');
    t.equal(alerts.status, 200, 'tamper alerts answer');
    t.same(
      (alerts.json.items as { auditId: string }[]).map((a) => a.auditId),
      ['d1', 'd2', 'd3', 'd4', 'd5'],
      'every change is there, who and when kept',
    );
    const run = await runReport('2026-11-20T10:00:00Z', '2026-11-20T11:00:00Z');
    t.equal(run.status, 'succeeded', `the policy-audit run succeeds${run.error ? `: ${run.error}` : ''}`);
    t.match(run.result?.summary, { numCreatedPolicies: 1, numModifiedPolicies: 4 });
    const metrics = await get('/metrics');
    t.match(metrics.text, /verdict_audit_events_truncated_total 3/);
    t.match(metrics.text, /verdict_policy_tamper_alerts_total\{kind="networkpolicies"\} 5/);
  },
);

t.test(
  'events stored deep before the webhook bounded depth still diff: iteratively, and cut below 64 levels',
  async (t) => {
    const { agg, get, runReport } = await setup(t);
    const at = (m: number) => `2026-11-20T10:0${m}:00.000000Z`;
    await postAudit(
      agg.httpPort,
      eventList([policyAuditEvent({ id: 'o1', verb: 'create', at: at(1), spec: { podSelector: {} } })]),
    );
    // Written straight into the table, as an older Verdict could have stored them (100,000 levels).
    const db = new Database(agg.dbFile);
    t.teardown(() => db.close());
    const insert = db.prepare(
      'INSERT INTO audit_events (audit_id, stage_ms, verb, resource, api_group, namespace, name, username, event_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
    );
    for (const [id, m, leaf] of [
      ['o2', 2, '"one"'],
      ['o3', 3, '"two"'],
    ] as const) {
      const json = JSON.stringify(policyAuditEvent({ id, verb: 'update', at: at(m), spec: 'DEEP' })).replaceAll(
        '"DEEP"',
        nestedJson(100_000, leaf),
      );
      insert.run(
        id,
        Date.parse(at(m)),
        'update',
        'networkpolicies',
        'networking.k8s.io',
        'payments',
        'allow-api',
        'alice@example.com',
        json,
      );
    }
    const alerts = await get('/api/v1/tamper-alerts?from=2026-11-20T00:00:00Z&to=2026-11-21T00:00:00Z');
    t.equal(alerts.status, 200, 'tamper alerts answer');
    const items = alerts.json.items as { auditId: string; diff: { path: string; before: unknown; after: unknown }[] }[];
    t.same(
      items.map((a) => a.auditId),
      ['o1', 'o2', 'o3'],
    );
    const o3 = items[2]?.diff ?? [];
    t.equal(o3.length, 1, 'two deep versions that differ at the bottom are one change');
    t.equal(o3[0]?.path, `spec${'.a'.repeat(64)}`, 'found 64 levels below spec, where the diff stops descending');
    t.match(JSON.stringify(o3[0]?.after), /nested deeper than 32 levels/, 'the value is cut to 32 levels, marked');
    const run = await runReport('2026-11-20T10:00:00Z', '2026-11-20T11:00:00Z');
    t.equal(run.status, 'succeeded', `the policy-audit run succeeds${run.error ? `: ${run.error}` : ''}`);
    t.match(run.result?.summary, { numCreatedPolicies: 1, numModifiedPolicies: 2 });
  },
);

t.test('unreadable items are refused and counted one by one; the good ones around them are stored', async (t) => {
  const { agg, get } = await setup(t);
  const at = '2026-11-20T10:01:00Z';
  const good = (id: string) => policyAuditEvent({ id, at, name: `p-${id}` });
  const items: unknown[] = [
    good('g1'),
    null,
    { auditID: { toString: 1 } },
    good('g2'),
    42,
    'an event',
    [],
    { auditID: 'g-no-stage' },
    { ...good('g-bad-time'), stageTimestamp: 'yesterday' },
    { ...good('g-bad-ref'), objectRef: { resource: 'networkpolicies', name: ['x'] } },
    { ...good('g-other-group'), objectRef: { resource: 'networkpolicies', apiGroup: 'constructor', name: 'x' } },
    {
      ...good('g3'),
      requestObject: { spec: { PROTO: { polluted: true } }, constructor: { prototype: { polluted: true } } },
    },
    good('g4'),
    good('g1'),
  ];
  const body = JSON.stringify(eventList(items)).replace('"PROTO"', '"__proto__"');
  const posted = await postAudit(agg.httpPort, body);
  t.equal(posted.status, 200, 'the list is answered 200: the API server does not resend it');
  t.match(posted.json, { received: 14, stored: 4, ignored: 1, refused: 8, truncated: 1 });
  t.same(
    posted.json.errors,
    [
      'items[1]: expected an audit.k8s.io/v1 Event object, got null',
      'items[2]: auditID: must be string',
      'items[4]: expected an audit.k8s.io/v1 Event object, got number',
      'items[5]: expected an audit.k8s.io/v1 Event object, got string',
      'items[6]: expected an audit.k8s.io/v1 Event object, got an array',
      'items[7]: must have required properties stage, verb, stageTimestamp',
      'items[8]: stageTimestamp: expected an RFC 3339 time like "2026-11-20T10:01:00.000000Z", got "yesterday"',
      'items[9]: objectRef.name: must be string',
    ],
    'the answer says which items were refused and why',
  );

  const stored = await agg.store.auditEvents(Date.parse(at), Date.parse(at) + 1);
  t.same(stored.map((e) => e.auditId).sort(), ['g1', 'g2', 'g3', 'g4'], 'the good items are stored, the first g1 once');
  const g3 = stored.find((e) => e.auditId === 'g3')?.event as {
    requestObject: { spec: Record<string, unknown>; constructor: unknown };
    verdictTruncated: string[];
  };
  t.notOk(Object.hasOwn(g3.requestObject.spec, '__proto__'), 'the __proto__ key is left out');
  t.same(g3.verdictTruncated, ['1 key(s) named __proto__ removed']);
  t.same(
    g3.requestObject.constructor,
    { prototype: { polluted: true } },
    'a "constructor" key is data, kept as it came',
  );
  t.equal(({} as Record<string, unknown>).polluted, undefined, 'no prototype was polluted');
  const metrics = await get('/metrics');
  t.match(metrics.text, /verdict_audit_events_refused_total 8/);
  t.match(metrics.text, /verdict_audit_events_ignored_total 1/);

  const notJson = await postAudit(
    agg.httpPort,
    '{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[{"auditID":',
  );
  t.equal(notJson.status, 400);
  t.match(notJson.json, { error: 'VERDICT_BAD_REQUEST', message: /the body is not JSON/ });
  const noItems = await postAudit(agg.httpPort, { kind: 'EventList', apiVersion: 'audit.k8s.io/v1', items: null });
  t.equal(noItems.status, 400);
  t.match(noItems.json, { error: 'VERDICT_BAD_REQUEST', message: /items/ });
  const lone = await postAudit(agg.httpPort, { auditID: { toString: 1 } });
  t.equal(lone.status, 400, 'a lone event instead of an EventList');
  t.match(lone.json, { error: 'VERDICT_BAD_REQUEST', message: /kind|apiVersion|items/ });
  t.equal((await get('/healthz')).status, 200, 'the aggregator keeps serving');
});
