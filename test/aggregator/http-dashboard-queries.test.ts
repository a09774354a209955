import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { packageRoot } from '../../common/package-root.js';
import { eventList, policyAuditEvent, postAudit } from '../fixtures/audit.js';
import { startTestAggregator } from '../fixtures/aggregator.js';
import { reportOf } from '../fixtures/reports.js';
import { tempDir } from '../fixtures/tmp.js';

// The query parameters the dashboard pages with (issue 17): the node list filtered, sorted and paged by the API, a
// node's score history, network access by finding, every policy change with the tamper alerts marked, and the
// report list per reader.
const HELLO = {
  role: 'worker' as const,
  labels: {},
  kubeletVersion: 'v1.32.1',
  kubernetesVersion: '',
  osImage: '',
  kernelVersion: '',
  architecture: '',
  agentVersion: '0.1.0',
  bootId: 'b',
};

type Row = { name: string; scorePercent: number | null; rating: string | null; fail: number };

async function nodes(t: Test) {
  const agg = await startTestAggregator(t);
  // 12 nodes: node-00..node-11, node-i failing i of 11 checks; node-11 has no scan at all.
  for (let i = 0; i < 12; i++) {
    const name = `node-${String(i).padStart(2, '0')}`;
    await agg.store.recordHello({ name, ...HELLO }, Date.now());
    if (i === 11) continue;
    const statuses = Object.fromEntries(
      Array.from({ length: 11 }, (_, k) => [`4.1.${k + 1}`, k < i ? 'FAIL' : 'PASS'] as const),
    );
    await agg.store.recordBenchmarkRun(name, 'b', 1, reportOf(name, statuses), 2000);
  }
  const get = async <T>(path: string) => {
    const res = await fetch(`http://127.0.0.1:${agg.httpPort}${path}`);
    return { status: res.status, body: (await res.json()) as T };
  };
  return { agg, get };
}

t.test('GET /api/v1/nodes filters, sorts and pages on the server, with the total the filters keep', async (t) => {
  const { get } = await nodes(t);
  const all = await get<{ items: Row[]; total: number }>('/api/v1/nodes');
  t.equal(all.body.items.length, 12, 'without parameters: every node');
  t.equal(all.body.total, 12);

  const page = await get<{ items: Row[]; total: number }>('/api/v1/nodes?sort=score&order=desc&limit=5&offset=5');
  t.same(
    page.body.items.map((r) => r.name),
    ['node-05', 'node-06', 'node-07', 'node-08', 'node-09'],
    'the second page of five by score, highest first',
  );
  t.equal(page.body.total, 12, 'total counts every node, not the page');
  const last = await get<{ items: Row[] }>('/api/v1/nodes?sort=score&order=desc&limit=5&offset=10');
  t.same(
    last.body.items.map((r) => r.name),
    ['node-10', 'node-11'],
    'a node without a scan sorts below every score',
  );

  const low = await get<{ items: Row[]; total: number }>('/api/v1/nodes?rating=low&sort=fail');
  t.ok(
    low.body.items.every((r) => r.rating === 'low'),
    'only low-band nodes',
  );
  t.same(
    low.body.items.map((r) => r.fail),
    [...low.body.items.map((r) => r.fail)].sort((a, b) => a - b),
    'sorted by failures, fewest first',
  );
  t.equal(low.body.total, low.body.items.length);
  const none = await get<{ items: Row[] }>('/api/v1/nodes?rating=none');
  t.same(
    none.body.items.map((r) => r.name),
    ['node-11'],
    'rating=none: the nodes without a scan',
  );
  const named = await get<{ items: Row[]; total: number }>('/api/v1/nodes?name=DE-0&connected=true');
  t.equal(named.body.total, 10, 'name matches a part, in any case; connected filters');
  const offline = await get<{ total: number }>('/api/v1/nodes?connected=false');
  t.equal(offline.body.total, 0);
  const bad = await get<{ error: string }>('/api/v1/nodes?sort=colour');
  t.equal(bad.status, 400, 'an unknown sort key is a 400');
  t.equal(bad.body.error, 'VERDICT_BAD_REQUEST');
});

t.test("GET /api/v1/nodes/:name/history walks a node's scans back, newest first", async (t) => {
  const { agg, get } = await nodes(t);
  const times = ['2026-11-02T10:00:00.000Z', '2026-11-03T10:00:00.000Z'];
  await agg.store.recordBenchmarkRun(
    'node-00',
    'b',
    2,
    reportOf('node-00', { '4.1.1': 'FAIL' }, { startedAt: times[0] }),
    3000,
  );
  await agg.store.recordBenchmarkRun(
    'node-00',
    'b',
    3,
    reportOf('node-00', { '4.1.1': 'PASS', '4.1.2': 'FAIL' }, { startedAt: times[1] }),
    4000,
  );
  const h = await get<{ items: { startedAt: string; scorePercent: number }[] }>('/api/v1/nodes/node-00/history');
  t.same(
    h.body.items.map((i) => [i.startedAt, i.scorePercent]),
    [
      [times[1], 50],
      [times[0], 0],
      ['2026-11-01T10:00:00.000Z', 100],
    ],
  );
  const two = await get<{ items: unknown[] }>('/api/v1/nodes/node-00/history?limit=2');
  t.equal(two.body.items.length, 2, 'limit bounds the walk');
  const missing = await get<{ error: string }>('/api/v1/nodes/node-11/history');
  t.equal(missing.status, 404, 'a node without a scan has no history');
});

t.test('GET /api/v1/tamper-alerts?all=true lists every policy change, the alerts marked by their reason', async (t) => {
  const agg = await startTestAggregator(t, { protectedNamespaces: ['payments'] });
  const at = new Date(Date.now() - 60_000).toISOString();
  const posted = await postAudit(
    agg.httpPort,
    eventList([
      policyAuditEvent({ id: 'a-1', at, namespace: 'payments' }),
      policyAuditEvent({ id: 'a-2', at, namespace: 'shop' }),
    ]),
  );
  t.equal(posted.status, 200);
  const get = async (q: string) =>
    (
      (await (await fetch(`http://127.0.0.1:${agg.httpPort}/api/v1/tamper-alerts${q}`)).json()) as {
        items: { auditId: string; reason: string }[];
      }
    ).items;
  t.same(
    (await get('')).map((i) => i.auditId),
    ['a-1'],
    'without all: the alerts only',
  );
  t.same(
    (await get('?all=true')).map((i) => [i.auditId, i.reason]),
    [
      ['a-1', 'namespace payments is protected'],
      ['a-2', ''],
    ],
    'with all=true: every change',
  );
});

t.test('GET /api/v1/network-access?flag= keeps the endpoints with that finding', async (t) => {
  const agg = await startTestAggregator(t);
  const res = await fetch(`http://127.0.0.1:${agg.httpPort}/api/v1/network-access?flag=ingressFromInternet`);
  t.equal(res.status, 200, 'a known flag is accepted');
  const bad = await fetch(`http://127.0.0.1:${agg.httpPort}/api/v1/network-access?flag=spicy`);
  t.equal(bad.status, 400, 'an unknown one is a 400');
});

t.test('GET /api/v1/reports lists only the reports the reader may get', async (t) => {
  const dir = tempDir(t);
  const token = (user: string) => `${user}-token-0123456789abcdef`;
  writeFileSync(
    join(dir, 'tokens.yaml'),
    `tokens:
- {user: one, token: ${token('one')}, verbs: [get, list], reports: [weekly-cis]}
- {user: all, token: ${token('all')}, verbs: [get, list], reports: ["*"]}
- {user: lister, token: ${token('lister')}, verbs: [list], reports: ["*"]}
`,
  );
  const agg = await startTestAggregator(t, {
    reportsDir: join(packageRoot(), 'examples', 'reports'),
    httpTokensFile: join(dir, 'tokens.yaml'),
  });
  const names = async (user: string) => {
    const res = await fetch(`http://127.0.0.1:${agg.httpPort}/api/v1/reports`, {
      headers: { authorization: `Bearer ${token(user)}` },
    });
    return ((await res.json()) as { items: { name: string }[] }).items.map((i) => i.name).sort();
  };
  t.same(await names('one'), ['weekly-cis'], 'a token for one report lists that one');
  t.same(await names('all'), ['daily-network-access', 'policy-changes', 'weekly-cis'], 'a token for all, all');
  t.same(await names('lister'), [], 'list without get lists nothing it could not read');
});
