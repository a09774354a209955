import t, { type Test } from 'tap';
import { startTestAggregator } from '../fixtures/aggregator.js';
import { reportOf } from '../fixtures/reports.js';
import { helloFields } from '../fixtures/node-hello.js';

async function seeded(t: Test) {
  const agg = await startTestAggregator(t);
  const hello = helloFields({ kubeletVersion: 'v1.32.1', agentVersion: '0.1.0' });
  await agg.store.recordHello({ name: 'good', ...hello }, Date.now());
  await agg.store.recordHello({ name: 'bad', ...hello }, Date.now());
  await agg.store.recordBenchmarkRun('good', 'b', 1, reportOf('good', { '4.1.1': 'PASS', '4.2.1': 'PASS' }), 2000);
  await agg.store.recordBenchmarkRun(
    'bad',
    'b',
    1,
    reportOf('bad', { '4.1.1': 'FAIL', '4.2.1': 'PASS', '4.2.2': 'FAIL', '4.2.4': 'FAIL' }, { unscored: ['4.2.4'] }),
    2000,
  );
  const get = async (path: string) => {
    const res = await fetch(`http://127.0.0.1:${agg.httpPort}${path}`);
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  return { agg, get };
}

t.test('GET /api/v1/nodes lists nodes with their latest counts, score and rating', async (t) => {
  const { get } = await seeded(t);
  const { status, body } = await get('/api/v1/nodes');
  t.equal(status, 200);
  const items = body.items as Record<string, unknown>[];
  t.same(
    items.map((i) => [i.name, i.pass, i.fail, i.skip, i.scorePercent, i.rating, i.benchmark, i.connected]),
    [
      ['bad', 1, 2, 0, 33.3, 'low', 'cis-1.12', true],
      ['good', 2, 0, 0, 100, 'high', 'cis-1.12', true],
    ],
  );
});

t.test('GET /api/v1/nodes answers from the nodes kept in memory, not a join of the store per request', async (t) => {
  const { agg, get } = await seeded(t);
  // Issue 13: at 5,000 nodes the join took 50-200 ms a request. A store that can no longer join is not asked.
  agg.store.listNodes = () => Promise.reject(new Error('GET /api/v1/nodes joined nodes and runs in the store'));
  const { status, body } = await get('/api/v1/nodes?sort=score&order=desc');
  t.equal(status, 200);
  t.same(
    (body.items as Record<string, unknown>[]).map((i) => [i.name, i.fail, i.rating, i.kubeletVersion, i.agentVersion]),
    [
      ['good', 0, 'high', 'v1.32.1', '0.1.0'],
      ['bad', 2, 'low', 'v1.32.1', '0.1.0'],
    ],
  );
  // A run this replica stored is in the next answer.
  await agg.store.recordBenchmarkRun('good', 'b', 2, reportOf('good', { '4.1.1': 'FAIL', '4.2.1': 'PASS' }), 3000);
  const after = await get('/api/v1/nodes?name=goo');
  t.same(
    (after.body.items as Record<string, unknown>[]).map((i) => [i.name, i.fail, i.rating]),
    [['good', 1, 'medium']],
  );
});

t.test(
  'GET /api/v1/nodes/:name/cis answers the scan report; unknown nodes and bad times are 4xx with a message',
  async (t) => {
    const { get } = await seeded(t);
    const ok = await get('/api/v1/nodes/bad/cis');
    t.equal(ok.status, 200);
    t.equal((ok.body.checks as unknown[]).length, 4);
    t.same(ok.body.summary, { pass: 1, fail: 2, skip: 0, total: 3, scorePercent: 33.3 });
    const missing = await get('/api/v1/nodes/nobody/cis');
    t.equal(missing.status, 404);
    t.match(missing.body, { error: 'VERDICT_NOT_FOUND', message: /nobody has no scan/ });
    const badAt = await get('/api/v1/nodes/bad/cis?at=yesterday');
    t.equal(badAt.status, 400);
    t.match(badAt.body, { error: 'VERDICT_BAD_REQUEST', message: /at/ });
    const before = await get('/api/v1/nodes/bad/cis?at=2020-01-01T00:00:00Z');
    t.equal(before.status, 404);
  },
);

t.test('GET /api/v1/cis/summary pools scored checks and honours thresholds', async (t) => {
  const { get } = await seeded(t);
  const s = await get('/api/v1/cis/summary');
  t.match(s.body, { nodes: 2, pass: 3, fail: 2, skip: 0, scorePercent: 60, bands: { high: 1, medium: 0, low: 1 } });
  t.same(
    (s.body.mostFailed as { id: string }[]).map((m) => m.id),
    ['4.1.1', '4.2.2'],
    'unscored 4.2.4 is not a "most failed" check',
  );
  const lenient = await get('/api/v1/cis/summary?highThreshold=90&medThreshold=30');
  t.same(lenient.body.bands, { high: 1, medium: 1, low: 0 });
  for (const q of ['highThreshold=abc', 'highThreshold=150', 'medThreshold=80&highThreshold=60', 'colour=blue']) {
    const bad = await get(`/api/v1/cis/summary?${q}`);
    t.equal(bad.status, 400, q);
    t.equal(bad.body.error, 'VERDICT_BAD_REQUEST', q);
    t.type(bad.body.message, 'string');
  }
});

t.test('health, readiness, docs and unknown routes', async (t) => {
  const { get, agg } = await seeded(t);
  t.equal((await get('/healthz')).status, 200);
  t.same((await get('/readyz')).body, { status: 'ready', store: 'sqlite' });
  const docs = await get('/docs/json');
  t.ok((docs.body.paths as Record<string, unknown>)['/api/v1/nodes'], 'the OpenAPI document lists the routes');
  const none = await get('/api/v1/nope');
  t.equal(none.status, 404);
  t.match(none.body.message, /no route GET \/api\/v1\/nope/);
  const metrics = await (await fetch(`http://127.0.0.1:${agg.httpPort}/metrics`)).text();
  t.match(metrics, /verdict_cis_node_score_ratio\{node="bad",benchmark="cis-1.12",role="worker"\} 0\.333/);
  t.match(metrics, /verdict_cis_node_checks\{node="bad",benchmark="cis-1.12",status="fail"\} 2/);
  t.match(metrics, /verdict_cis_cluster_score_ratio\{benchmark="cis-1.12"\} 0\.6\n/);
  t.match(metrics, /verdict_cis_check_failing_nodes\{benchmark="cis-1.12",check="4.1.1"\} 1/);
  t.match(metrics, /verdict_agent_connected\{node="good"\} 1/);
});

t.test('network-access and flows: the interval and filters are validated; namespace narrows the answer', async (t) => {
  const { get, agg } = await seeded(t);
  const { flow, T0 } = await import('../fixtures/flows.js');
  await agg.store.recordFlowBatch(
    'good',
    'b',
    2,
    [
      flow({ reporter: 'dst', connections: 4 }),
      flow({
        reporter: 'src',
        source: { namespace: 'web', name: 'ui' },
        destination: { kind: 'network', namespace: '', name: 'pub', internet: true },
        connections: 2,
        policies: [],
        policyDecided: false,
      }),
    ],
    2000,
  );
  const from = new Date(T0 - 60_000).toISOString();
  const to = new Date(T0 + 600_000).toISOString();
  const all = await get(`/api/v1/network-access?from=${from}&to=${to}`);
  t.equal(all.status, 200);
  t.same(
    (all.body.endpoints as { endpoint: string }[]).map((e) => e.endpoint),
    ['shop/checkout', 'web/ui'],
  );
  const ui = (all.body.endpoints as Record<string, unknown>[]).find((e) => e.endpoint === 'web/ui');
  // No ingress observed and no configuration known: false (Calico's flags have no "unknown"); the observed evidence
  // keeps null.
  t.match(ui, {
    egressToInternet: true,
    egressProtected: false,
    ingressProtected: false,
    allowedOut: 2,
    evidence: 'observed',
    observed: { ingressProtected: null },
  });
  const shop = await get(`/api/v1/network-access?from=${from}&to=${to}&namespace=shop`);
  t.same(
    (shop.body.namespaces as { namespace: string; allowedPercent: number }[]).map((n) => [
      n.namespace,
      n.allowedPercent,
    ]),
    [['shop', 100]],
  );
  const flows = await get(`/api/v1/flows?from=${from}&to=${to}&endpoint=web/ui`);
  t.equal((flows.body.items as unknown[]).length, 1);
  for (const q of [
    'from=not-a-date',
    `from=${to}&to=${from}`,
    'from=2020-01-01T00:00:00Z&to=2026-01-01T00:00:00Z',
    'namespace=Bad_NS',
    'colour=red',
  ]) {
    const bad = await get(`/api/v1/network-access?${q}`);
    t.equal(bad.status, 400, q);
    t.equal(bad.body.error, 'VERDICT_BAD_REQUEST', q);
  }
  t.equal((await get('/api/v1/flows?action=maybe')).status, 400);
  t.equal((await get('/api/v1/flows?limit=0')).status, 400);
});

t.test('network-access pages its endpoints with limit and continue', async (t) => {
  const { get, agg } = await seeded(t);
  const { flow, T0 } = await import('../fixtures/flows.js');
  const names = ['a', 'b', 'c', 'd', 'e'];
  await agg.store.recordFlowBatch(
    'good',
    'b',
    2,
    names.map((n) => flow({ reporter: 'dst', destination: { namespace: 'shop', name: n }, connections: 1 })),
    2000,
  );
  const from = new Date(T0 - 60_000).toISOString();
  const to = new Date(T0 + 600_000).toISOString();
  const base = `/api/v1/network-access?from=${from}&to=${to}`;
  const whole = await get(base);
  t.notOk('continue' in whole.body, 'no continue without a limit');
  const all = (whole.body.endpoints as { endpoint: string }[]).map((e) => e.endpoint);
  t.ok(names.every((n) => all.includes(`shop/${n}`)));
  const paged: string[] = [];
  let cont: string | undefined;
  let pages = 0;
  do {
    const page = await get(`${base}&limit=2${cont ? `&continue=${encodeURIComponent(cont)}` : ''}`);
    t.equal(page.status, 200);
    t.ok((page.body.endpoints as unknown[]).length <= 2);
    t.same(page.body.namespaces, whole.body.namespaces, 'every page has all namespaces');
    paged.push(...(page.body.endpoints as { endpoint: string }[]).map((e) => e.endpoint));
    cont = page.body.continue as string | undefined;
    pages++;
  } while (cont !== undefined && pages < 10);
  t.same(paged, all, 'the pages put together are the whole list, in order');
  t.equal(pages, Math.ceil(all.length / 2));
  for (const q of ['limit=0', 'limit=10001', 'continue=not-a-token']) {
    const bad = await get(`${base}&${q}`);
    t.equal(bad.status, 400, q);
  }
});
