import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { CisView } from '../../aggregator/cis-view.js';
import { NodeListBody } from '../../aggregator/http/node-list-body.js';
import { AggregatorMetrics } from '../../aggregator/metrics.js';
import type { NodeChange, NodeCisSummary, NodeLiveness, Store } from '../../aggregator/store/index.js';
import { startTestAggregator } from '../fixtures/aggregator.js';
import { helloFields } from '../fixtures/node-hello.js';
import { reportOf } from '../fixtures/reports.js';
import { tempDir } from '../fixtures/tmp.js';

// Issue 13: /metrics and GET /api/v1/nodes (without a query) answer from bodies kept as bytes, built again only when
// something they show changed. A request after a change must show it; requests with nothing changed in between get
// the same bytes; the reply's headers are what they were; and the kept node list is still refused to a reader not
// allowed to list nodes.

// Names the JSON and the text format must escape, and one outside the Basic Multilingual Plane.
const NAMES = ['plain', 'we"ird\\node', 'line\u2028sep', 'n\u{1F600}'];

const HELLO = helloFields({ kubeletVersion: 'v1.32.1', agentVersion: '0.1.0' });

async function get(port: number, path: string, token?: string) {
  // The bytes as kept: fetch asks for gzip by default (metrics-gzip.test.ts has that reply).
  const res = await fetch(`http://127.0.0.1:${port}${path}`, {
    headers: { 'accept-encoding': 'identity', ...(token === undefined ? {} : { authorization: `Bearer ${token}` }) },
  });
  return { res, bytes: Buffer.from(await res.arrayBuffer()) };
}

/** The per-node families' lines of a scrape (the process's own metrics move between any two scrapes). */
const perNodeLines = (text: string) =>
  text.split('\n').filter((l) => /^verdict_(cis_node_|agent_connected|agent_last_seen|benchmark_runs_stored)/.test(l));

t.test('/metrics: the same headers, a length instead of chunks, and a change in the next scrape', async (t) => {
  const agg = await startTestAggregator(t);
  await agg.store.recordHello({ name: 'n1', ...HELLO }, Date.now());
  const first = await get(agg.httpPort, '/metrics');
  t.equal(first.res.status, 200);
  t.equal(first.res.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8');
  t.equal(first.res.headers.get('content-length'), `${first.bytes.length}`, 'the length is sent');
  t.equal(first.res.headers.get('transfer-encoding'), null, 'not chunked');
  t.ok(first.bytes.toString().endsWith('\n'));
  t.match(first.bytes.toString(), 'verdict_agent_connected{node="n1"} 1\n');

  // Past the families' settle time: their bodies are built, and must still be built again for a change.
  await new Promise((r) => setTimeout(r, 400));
  const again = await get(agg.httpPort, '/metrics');
  t.same(perNodeLines(again.bytes.toString()), perNodeLines(first.bytes.toString()), 'nothing changed, same series');
  await new Promise((r) => setTimeout(r, 400));
  await agg.store.recordBenchmarkRun('n1', 'b', 1, reportOf('n1', { '4.1.1': 'PASS', '4.2.1': 'FAIL' }), 2000);
  await agg.store.markDisconnected('n1', Date.now());
  const after = (await get(agg.httpPort, '/metrics')).bytes.toString();
  t.match(after, 'verdict_cis_node_score_ratio{node="n1",benchmark="cis-1.12",role="worker"} 0.5\n');
  t.match(after, 'verdict_agent_connected{node="n1"} 0\n', 'the disconnect is in the next scrape');
  t.notMatch(after, 'verdict_agent_connected{node="n1"} 1\n');

  const head = await fetch(`http://127.0.0.1:${agg.httpPort}/metrics`, { method: 'HEAD' });
  t.equal(head.status, 200, 'HEAD answers too');
  t.equal(head.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8');
  t.equal(await head.text(), '');
});

t.test(
  'GET /api/v1/nodes: the kept body is what the route serializes, new after a change, the same without',
  async (t) => {
    const agg = await startTestAggregator(t);
    const now = Date.now();
    for (const name of NAMES) await agg.store.recordHello({ name, ...HELLO }, now);
    await agg.store.recordBenchmarkRun(
      NAMES[1]!,
      'b',
      1,
      reportOf(NAMES[1]!, { '4.1.1': 'PASS', '4.2.1': 'FAIL' }),
      2000,
    );
    // The same rows through fastify's serializer for the route's schema: a query that keeps every node.
    const serialized = async () => (await get(agg.httpPort, '/api/v1/nodes?offset=0')).bytes;
    const kept = async () => {
      const { res, bytes } = await get(agg.httpPort, '/api/v1/nodes');
      t.equal(res.headers.get('content-type'), 'application/json; charset=utf-8');
      t.equal(res.headers.get('content-length'), `${bytes.length}`);
      return bytes;
    };

    const a = await kept();
    t.equal(a.toString(), (await serialized()).toString(), 'byte for byte what the serializer writes');
    t.equal((JSON.parse(a.toString()) as { total: number }).total, NAMES.length);
    t.ok((await kept()).equals(a), 'nothing changed: the same bytes');

    await agg.store.recordBenchmarkRun(NAMES[3]!, 'b', 1, reportOf(NAMES[3]!, { '4.1.1': 'PASS' }), 2000);
    await agg.store.markDisconnected(NAMES[0]!, Date.now());
    await agg.store.recordHello({ name: 'late', ...HELLO }, Date.now());
    const b = await kept();
    t.notOk(b.equals(a), 'a run, a disconnect and a new node change the body');
    t.equal(b.toString(), (await serialized()).toString(), 'and it is still what the serializer writes');
    const rows = (JSON.parse(b.toString()) as { items: { name: string; connected: boolean; pass: number }[] }).items;
    t.equal(rows.find((r) => r.name === NAMES[0])?.connected, false);
    t.equal(rows.find((r) => r.name === NAMES[3])?.pass, 1);
    t.ok(rows.some((r) => r.name === 'late'));

    await agg.store.forgetNode('late');
    const c = await kept();
    t.notOk(c.toString().includes('"late"'), 'a node forgotten is gone from the next body');
  },
);

t.test('GET /api/v1/nodes: the kept body is refused to readers not allowed to list nodes', async (t) => {
  const dir = tempDir(t);
  const NODES_TOKEN = 'may-read-nodes-0123456789';
  const REPORTS_TOKEN = 'may-read-reports-0123456789';
  writeFileSync(
    join(dir, 'tokens.yaml'),
    `tokens:\n- {user: ops, token: ${NODES_TOKEN}, resources: [nodes]}\n- {user: auditor, token: ${REPORTS_TOKEN}, reports: ["*"]}\n`,
  );
  const agg = await startTestAggregator(t, { httpTokensFile: join(dir, 'tokens.yaml') });
  await agg.store.recordHello({ name: 'n1', ...HELLO }, Date.now());
  const allowed = await get(agg.httpPort, '/api/v1/nodes', NODES_TOKEN);
  t.equal(allowed.res.status, 200);
  t.match(allowed.bytes.toString(), '"name":"n1"');
  // The body is built and kept now; it is still not sent to the others.
  for (const [token, status] of [
    [REPORTS_TOKEN, 403],
    [undefined, 401],
  ] as const) {
    const refused = await get(agg.httpPort, '/api/v1/nodes', token);
    t.equal(refused.res.status, status, `${token ?? 'no token'}: refused`);
    t.notMatch(refused.bytes.toString(), 'n1', 'and sees no node');
  }
});

t.test('the kept node list counts a node disconnected once 3 minutes pass without contact', async (t) => {
  let now = 1_000_000_000_000;
  const listeners: ((c: NodeChange) => void)[] = [];
  const node: NodeLiveness = {
    name: 'n1',
    connected: true,
    lastSeenMs: now,
    role: 'worker',
    kubeletVersion: 'v1.32.1',
    agentVersion: '0.1.0',
    latestRunId: null,
  };
  // A store that tells its changes (none come): the view reads it once, and the body is kept from then on.
  const store = quietStore(node, listeners);
  const view = new CisView(store, 600_000);
  t.teardown(() => view.stop());
  const body = new NodeListBody(view, () => now);
  const connected = async () =>
    (JSON.parse((await body.bytes()).toString()) as { items: { connected: boolean }[] }).items[0]?.connected;
  t.equal(await connected(), true);
  now += 3 * 60_000;
  t.equal(await connected(), true, 'heard from 3 minutes ago: still connected');
  now += 1;
  t.equal(await connected(), false, 'past 3 minutes: disconnected, with no change told');
});

t.test('verdict_agent_connected turns 0 once 3 minutes pass without contact, with no change told', async (t) => {
  const listeners: ((c: NodeChange) => void)[] = [];
  // Heard from just under 3 minutes ago: connected for another 300 ms.
  const node: NodeLiveness = {
    name: 'n1',
    connected: true,
    lastSeenMs: Date.now() - 3 * 60_000 + 300,
    role: 'worker',
    kubeletVersion: 'v1.32.1',
    agentVersion: '0.1.0',
    latestRunId: null,
  };
  const store = quietStore(node, listeners);
  const metrics = new AggregatorMetrics(store);
  t.teardown(() => metrics.cis.stop());
  t.match(await metrics.exposition(), 'verdict_agent_connected{node="n1"} 1\n');
  await new Promise((r) => setTimeout(r, 400));
  t.match(await metrics.exposition(), 'verdict_agent_connected{node="n1"} 0\n');
});

/** A store of one node that tells no change (its watchers are kept in `listeners`): what the view reads, no more. */
function quietStore(node: NodeLiveness, listeners: ((c: NodeChange) => void)[]): Store {
  return {
    kind: 'sqlite',
    watchNodes: (l: (c: NodeChange) => void) => (listeners.push(l), () => undefined),
    nodeLiveness: async () => [{ ...node }],
    cisSummaries: async (): Promise<NodeCisSummary[]> => [],
    latestClusterScan: async () => undefined,
  } as unknown as Store;
}
