import { spawnSync } from 'node:child_process';
import t from 'tap';
import { Counter, Gauge, Registry } from 'prom-client';
import { isConnected } from '../../aggregator/compute/cis.js';
import { AggregatorMetrics } from '../../aggregator/metrics.js';
import { escapeLabelValue } from '../../aggregator/metrics-text.js';
import type { NodeCisSummary, NodeRecord, Store } from '../../aggregator/store/index.js';
import { findTool, skipUnlessFound } from '../fixtures/tools.js';

// /metrics writes its per-node families (issue 13: ~55,000 series at 5,000 nodes) as text kept per node instead
// of through prom-client's per-series work. What it exports must be what the prom-client gauges and counters
// exported before, series for series: checked here with a parser of the text format that owes nothing to
// prom-client (and with promtool's linter when it is installed), against a reference built the old way with
// prom-client from the same store contents and the same increments, over a not-assessable node, a node whose
// summary changes, a node the store forgets, an agent that disconnects, label values that need escaping and a
// store that stops answering.

const PROMTOOL = findTool('promtool', 'VERDICT_PROMTOOL');

const PER_NODE_GAUGES = [
  'verdict_cis_node_score_ratio',
  'verdict_cis_node_checks',
  'verdict_cis_node_assessable',
  'verdict_agent_connected',
  'verdict_agent_last_seen_timestamp_seconds',
];
const PER_NODE_COUNTERS = [
  'verdict_flows_received_total',
  'verdict_agent_flows_dropped_total',
  'verdict_benchmark_runs_stored_total',
];
const PER_NODE = [...PER_NODE_GAUGES, ...PER_NODE_COUNTERS];

interface Family {
  help: string;
  type: string;
  /** `name{k="v",...}` with the label values unescaped, to the value. */
  samples: Map<string, number>;
}

const unescape = (v: string) => v.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
const seriesKey = (name: string, labels: [string, string][]) =>
  `${name}{${labels.map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(',')}}`;

/**
 * A strict reader of the Prometheus text format (0.0.4): every line is HELP, TYPE or a sample; HELP and TYPE come
 * once per family, before its samples; a family's samples are contiguous (not split by another family); label
 * values are quoted with only \\, \" and \n escaped; no series appears twice.
 */
function parse(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  if (!text.endsWith('\n')) throw new Error('the exposition does not end in a line feed');
  let current: string | undefined;
  const closed = new Set<string>();
  const open = (name: string) => {
    if (current !== name) {
      if (closed.has(name)) throw new Error(`family ${name} is split`);
      if (current !== undefined) closed.add(current);
      current = name;
    }
    let f = families.get(name);
    if (!f) families.set(name, (f = { help: '', type: '', samples: new Map() }));
    return f;
  };
  for (const line of text.slice(0, -1).split('\n')) {
    if (line === '') continue;
    const meta = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
    if (meta) {
      const f = open(meta[2] as string);
      const field = meta[1] === 'HELP' ? 'help' : 'type';
      if (f[field] !== '') throw new Error(`${meta[1]} of ${meta[2]} twice`);
      if (f.samples.size > 0) throw new Error(`${meta[1]} of ${meta[2]} after its samples`);
      f[field] = meta[3] as string;
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`not a line of the text format: ${JSON.stringify(line)}`);
    const name = m[1] as string;
    // A histogram's or summary's samples belong to the family without their suffix.
    const family = families.has(name) ? name : name.replace(/_(bucket|sum|count)$/, '');
    const f = open(family);
    if (f.type === '') throw new Error(`${name} has a sample before its TYPE`);
    const labels: [string, string][] = [];
    let rest = m[2] ?? '';
    while (rest !== '') {
      const l = /^([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)/.exec(rest);
      if (!l) throw new Error(`bad labels in ${JSON.stringify(line)}`);
      labels.push([l[1] as string, unescape(l[2] as string)]);
      rest = rest.slice(l[0].length);
    }
    const value = /^(?:[+-]?Inf|Nan|NaN|[+-]?\d+(?:\.\d+)?(?:e[+-]?\d+)?)$/.test(m[3] as string);
    if (!value) throw new Error(`bad value in ${JSON.stringify(line)}`);
    const key = seriesKey(name, labels);
    if (f.samples.has(key)) throw new Error(`${key} twice`);
    f.samples.set(key, Number(m[3]));
  }
  return families;
}

/** A store holding only what the metrics read, changed by the test between scrapes. */
function fakeStore() {
  const state = {
    nodes: new Map<string, NodeRecord>(),
    summaries: new Map<string, NodeCisSummary>(),
    down: false,
  };
  const answer = async <T>(v: () => T): Promise<T> => {
    if (state.down) throw new Error('the store is out');
    return v();
  };
  // Each read answers fresh objects, as a store's rows are.
  const store = {
    listNodes: () => answer(() => [...state.nodes.values()].map((n) => ({ ...n }))),
    nodeLiveness: () =>
      answer(() =>
        [...state.nodes.values()].map((n) => ({ name: n.name, connected: n.connected, lastSeenMs: n.lastSeenMs })),
      ),
    cisSummaries: () => answer(() => [...state.summaries.values()].map((s) => ({ ...s }))),
    latestClusterScan: () => answer(() => undefined),
  } as unknown as Store;
  return { state, store };
}

function node(name: string, lastSeenMs: number, connected = true): NodeRecord {
  return {
    name,
    role: 'worker',
    os: 'linux',
    kernel: '6.1',
    agentVersion: '0.1.0',
    kubeletVersion: 'v1.31.0',
    bootId: 'boot',
    connected,
    firstSeenMs: lastSeenMs - 1000,
    lastSeenMs,
  } as unknown as NodeRecord;
}

function summary(name: string, runId: number, pass: number, fail: number, notAssessable?: string): NodeCisSummary {
  return {
    node: name,
    runId,
    benchmarkId: 'cis-1.12',
    role: name.startsWith('cp') ? 'controlplane' : 'worker',
    pass,
    fail,
    skip: 3,
    scorePercent: 0,
    failedChecks: fail > 0 ? ['4.2.1'] : [],
    ...(notAssessable === undefined ? {} : { notAssessable }),
  } as NodeCisSummary;
}

/**
 * The per-node families as the code before wrote them: prom-client gauges filled from the store's nodes and
 * summaries (reset at each scrape), and prom-client counters started at 0 for every node seen and increased.
 */
async function reference(
  nodes: NodeRecord[],
  summaries: NodeCisSummary[],
  seen: string[],
  incs: Inc[],
  nowMs: number,
): Promise<string> {
  const registry = new Registry();
  const registers = [registry];
  const gauge = <L extends string>(name: string, labelNames: L[]) =>
    new Gauge<L>({ name, help: 'h', labelNames, registers });
  const score = gauge('verdict_cis_node_score_ratio', ['node', 'benchmark', 'role']);
  const checks = gauge('verdict_cis_node_checks', ['node', 'benchmark', 'status']);
  const assessable = gauge('verdict_cis_node_assessable', ['node']);
  const connected = gauge('verdict_agent_connected', ['node']);
  const lastSeen = gauge('verdict_agent_last_seen_timestamp_seconds', ['node']);
  for (const n of summaries) {
    if (n.notAssessable === undefined) {
      score.set({ node: n.node, benchmark: n.benchmarkId, role: n.role }, n.pass / (n.pass + n.fail));
      for (const [status, v] of [
        ['pass', n.pass],
        ['fail', n.fail],
        ['skip', n.skip],
      ] as const)
        checks.set({ node: n.node, benchmark: n.benchmarkId, status }, v);
    }
    assessable.set({ node: n.node }, n.notAssessable === undefined ? 1 : 0);
  }
  for (const n of nodes) {
    connected.set({ node: n.name }, isConnected(n, nowMs) ? 1 : 0);
    lastSeen.set({ node: n.name }, n.lastSeenMs / 1000);
  }
  const received = new Counter({
    name: 'verdict_flows_received_total',
    help: 'h',
    labelNames: ['node', 'action'],
    registers,
  });
  const dropped = new Counter({
    name: 'verdict_agent_flows_dropped_total',
    help: 'h',
    labelNames: ['node'],
    registers,
  });
  const runs = new Counter({ name: 'verdict_benchmark_runs_stored_total', help: 'h', labelNames: ['node'], registers });
  for (const name of seen) {
    for (const action of ['allow', 'deny']) received.inc({ node: name, action }, 0);
    dropped.inc({ node: name }, 0);
    runs.inc({ node: name }, 0);
  }
  for (const i of incs)
    if (i.what === 'received') received.inc({ node: i.node, action: i.action ?? 'allow' }, i.n);
    else if (i.what === 'dropped') dropped.inc({ node: i.node }, i.n);
    else runs.inc({ node: i.node }, i.n);
  return registry.metrics();
}

interface Inc {
  what: 'received' | 'dropped' | 'runs';
  node: string;
  action?: 'allow' | 'deny';
  n: number;
}

t.test('the per-node families are the series the prom-client gauges and counters exported', async (t) => {
  const { state, store } = fakeStore();
  const metrics = new AggregatorMetrics(store);
  const now = Date.now();
  const WEIRD = 'we"ird\\node\nname';
  const names = ['cp-1', 'worker-1', 'worker-2', 'bare-1', WEIRD];
  for (const [i, name] of names.entries()) state.nodes.set(name, node(name, now - i * 1000));
  state.summaries.set('cp-1', summary('cp-1', 1, 50, 2));
  state.summaries.set('worker-1', summary('worker-1', 2, 40, 7));
  state.summaries.set('worker-2', summary('worker-2', 3, 45, 0));
  state.summaries.set('bare-1', summary('bare-1', 4, 0, 0, 'no kubelet under /host'));
  state.summaries.set(WEIRD, summary(WEIRD, 5, 10, 10));
  // A node only the store knows (seen by another replica) gets its counters at a scrape; these had a Hello here.
  const helloed = ['worker-1', 'a node with no row yet'];
  for (const name of helloed) metrics.nodeSeen(name);
  const incs: Inc[] = [];
  const inc = (i: Inc) => {
    incs.push(i);
    if (i.what === 'received') metrics.flowsReceived.inc({ node: i.node, action: i.action ?? 'allow' }, i.n);
    else if (i.what === 'dropped') metrics.agentFlowsDropped.inc({ node: i.node }, i.n);
    else metrics.benchmarkRunsStored.inc({ node: i.node }, i.n);
  };
  inc({ what: 'runs', node: 'worker-1', n: 1 });
  inc({ what: 'received', node: 'worker-1', action: 'deny', n: 12 });
  inc({ what: 'received', node: WEIRD, action: 'allow', n: 3 });

  // Counters are per process: a node keeps its counters after the store forgets it.
  const everSeen = new Set(helloed);
  const seen = () => {
    for (const name of state.nodes.keys()) everSeen.add(name);
    return [...everSeen];
  };
  /** The per-node families of a scrape and of the reference, with what the rest of the scrape holds. */
  const compare = async (what: string) => {
    const text = await metrics.exposition();
    const got = parse(text);
    const want = parse(await reference([...state.nodes.values()], [...state.summaries.values()], seen(), incs, now));
    for (const name of PER_NODE) {
      const g = got.get(name);
      t.ok(g, `${what}: ${name} is exported`);
      t.same(
        [...(g?.samples ?? new Map<string, number>()).entries()].sort(),
        [...(want.get(name)?.samples ?? new Map<string, number>()).entries()].sort(),
        `${what}: ${name} has the series it had`,
      );
      t.equal(g?.type, PER_NODE_GAUGES.includes(name) ? 'gauge' : 'counter', `${what}: ${name}'s TYPE`);
      // prom-client formatting the same values (the registry's own path, through get()) writes the same text.
      const family = text
        .slice(0, -1)
        .split('\n\n')
        .find((f) => f.startsWith(`# HELP ${name} `));
      t.equal(
        family,
        await metrics.registry.getSingleMetricAsString(name),
        `${what}: ${name} as prom-client writes it`,
      );
    }
    return { text, got };
  };

  const first = await compare('first scrape');
  t.same([...first.got.keys()].sort(), [...new Set(metrics.registry.getMetricsAsArray().map((m) => m.name))].sort());
  const has = (name: string, labels: [string, string][]) => first.got.get(name)?.samples.get(seriesKey(name, labels));
  t.equal(has('verdict_cis_node_assessable', [['node', 'bare-1']]), 0, 'a node that is not assessable says so');
  t.notOk(
    [...first.got.get('verdict_cis_node_score_ratio')!.samples.keys()].some((k) => k.includes('"bare-1"')),
    'and has no score series',
  );
  t.notOk(
    [...first.got.get('verdict_cis_node_checks')!.samples.keys()].some((k) => k.includes('"bare-1"')),
    'nor check series',
  );
  t.equal(has('verdict_agent_connected', [['node', 'bare-1']]), 1, 'its agent is there');
  t.equal(
    has('verdict_cis_node_score_ratio', [
      ['node', WEIRD],
      ['benchmark', 'cis-1.12'],
      ['role', 'worker'],
    ]),
    0.5,
    'a node name with a quote, a backslash and a line feed reads back as it is',
  );
  t.match(
    first.text,
    'verdict_cis_node_assessable{node="we\\"ird\\\\node\\nname"} 1\n',
    'its label value is escaped in the text',
  );
  t.equal(escapeLabelValue('a\\b"c\nd'), 'a\\\\b\\"c\\nd');
  t.equal(
    has('verdict_flows_received_total', [
      ['node', 'a node with no row yet'],
      ['action', 'deny'],
    ]),
    0,
    'a node seen only by its Hello has its counters at 0',
  );
  t.equal(has('verdict_agent_connected', [['node', 'a node with no row yet']]), undefined, 'and no gauges');

  await t.test(
    'promtool check metrics is clean',
    { skip: skipUnlessFound({ promtool: PROMTOOL }, 'apt-get install prometheus') },
    async (t) => {
      const lint = spawnSync(PROMTOOL!, ['check', 'metrics'], { input: first.text, encoding: 'utf8' });
      t.equal(lint.status, 0, `promtool check metrics:\n${lint.stdout}${lint.stderr}`);
    },
  );

  // A new run for one node, another stops being assessable, one agent goes, one node is forgotten.
  state.summaries.set('worker-1', summary('worker-1', 6, 44, 3));
  state.summaries.set('worker-2', summary('worker-2', 7, 0, 0, 'no kubelet under /host'));
  state.nodes.set('cp-1', node('cp-1', now - 10 * 60_000, false));
  state.nodes.delete('bare-1');
  state.summaries.delete('bare-1');
  inc({ what: 'runs', node: 'worker-1', n: 1 });
  inc({ what: 'dropped', node: 'cp-1', n: 5 });
  inc({ what: 'received', node: 'worker-1', action: 'deny', n: 1 });
  const second = await compare('after changes');
  const s = (name: string, labels: [string, string][]) => second.got.get(name)?.samples.get(seriesKey(name, labels));
  t.equal(
    s('verdict_cis_node_score_ratio', [
      ['node', 'worker-1'],
      ['benchmark', 'cis-1.12'],
      ['role', 'worker'],
    ]),
    44 / 47,
    "a node's new summary is exported",
  );
  t.equal(
    s('verdict_cis_node_checks', [
      ['node', 'worker-1'],
      ['benchmark', 'cis-1.12'],
      ['status', 'fail'],
    ]),
    3,
  );
  t.equal(s('verdict_cis_node_assessable', [['node', 'worker-2']]), 0, 'a node no longer assessable says so');
  t.notOk(second.text.includes('verdict_cis_node_checks{node="worker-2"'), 'and its check series are gone');
  t.equal(s('verdict_agent_connected', [['node', 'cp-1']]), 0, 'an agent gone is 0');
  t.notOk(
    PER_NODE_GAUGES.some((name) => second.text.includes(`${name}{node="bare-1"`)),
    'a node the store forgot has no gauge series',
  );
  t.equal(s('verdict_benchmark_runs_stored_total', [['node', 'bare-1']]), 0, 'but keeps its counters (per process)');
  t.equal(s('verdict_benchmark_runs_stored_total', [['node', 'worker-1']]), 2);

  // The store stops answering: the gauges' series are left out of the scrape, the counters stay.
  state.down = true;
  const out = parse(await metrics.exposition());
  for (const name of PER_NODE_GAUGES) t.equal(out.get(name)?.samples.size, 0, `store out: ${name} has no series`);
  t.equal(out.get('verdict_flows_received_total')?.samples.size, 2 * seen().length, 'store out: counters stay');
  state.down = false;
  await compare('store back');
});

t.test('the text format reader refuses what it should', async (t) => {
  t.throws(() => parse('# TYPE a gauge\na 1\n# TYPE b gauge\nb 1\na{x="1"} 2\n'), /split/);
  t.throws(() => parse('# TYPE a gauge\na{x="a"b"} 1\n'), /bad labels/);
  t.throws(() => parse('# TYPE a gauge\n# TYPE a gauge\n'), /twice/);
  t.throws(() => parse('a 1\n'), /before its TYPE/);
  t.throws(() => parse('# TYPE a gauge\na 1\na 2\n'), /twice/);
  t.same([...parse('# TYPE a gauge\na{x="q\\"b\\\\n\\n"} 1\n').get('a')!.samples.keys()], ['a{x="q\\"b\\\\n\\n"}']);
});
