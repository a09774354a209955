import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { INGEST_REJECT_REASONS } from '../../aggregator/ingest/reasons.js';
import { POLICY_KINDS } from '../../aggregator/reports/policy-resources.js';
import { packageRoot } from '../../common/package-root.js';
import { HELLO, rawAgentStream, startTestAggregator } from '../fixtures/aggregator.js';
import { tempDir } from '../fixtures/tmp.js';

// A healthy system shows 0, not "No data": every metric family the README
// documents is in a fresh aggregator's first scrape, and every counter has its
// series at 0 for each label value the aggregator knows — every ingest refusal
// reason, flow source, policy kind, compaction and report result — and, per
// node, as soon as the node is known (its agent's Hello, or listed in the store).

const README = readFileSync(join(packageRoot(), 'README.md'), 'utf8');
const DOCUMENTED = [...README.matchAll(/^\| `(verdict_[a-z_]+)` \|/gm)].map((m) => m[1] as string);

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The Prometheus text format: the TYPE of each family, and every sample. */
function parseExposition(text: string): { types: Map<string, string>; samples: Sample[] } {
  const types = new Map<string, string>();
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type) types.set(type[1] as string, type[2] as string);
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const labels = Object.fromEntries(
      [...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((l) => [l[1] as string, l[2] as string]),
    );
    samples.push({ name: m[1] as string, labels, value: Number(m[3]) });
  }
  return { types, samples };
}

async function scrape(port: number) {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  if (res.status !== 200) throw new Error(`/metrics answered ${res.status}`);
  return parseExposition(await res.text());
}

/** The value of one series, or undefined when the scrape does not have it. */
const valueOf = (samples: Sample[], name: string, labels: Record<string, string> = {}) =>
  samples.find(
    (s) =>
      s.name === name &&
      Object.keys(s.labels).length === Object.keys(labels).length &&
      Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  )?.value;

const PER_NODE = [
  'verdict_flows_received_total',
  'verdict_agent_flows_dropped_total',
  'verdict_benchmark_runs_stored_total',
];

t.test(
  "a fresh aggregator's first scrape has every documented family and every counter at 0 for the label values it knows",
  async (t) => {
    const dir = tempDir(t);
    mkdirSync(join(dir, 'reports'));
    writeFileSync(
      join(dir, 'reports', 'weekly-cis.yaml'),
      'apiVersion: compliance.verdict.dev/v1\nkind: GlobalReport\nmetadata: {name: weekly-cis}\nspec:\n  reportType: cis-benchmark\n  schedule: "0 0 * * 0"\n',
    );
    const agg = await startTestAggregator(t, { reportsDir: join(dir, 'reports') });
    const { types, samples } = await scrape(agg.httpPort);

    t.ok(DOCUMENTED.length > 20, 'the README table was read');
    for (const name of DOCUMENTED) t.ok(types.has(name), `${name} is in the first scrape`);

    const zeros: [string, Record<string, string>][] = [
      ...INGEST_REJECT_REASONS.map((reason): [string, Record<string, string>] => [
        'verdict_ingest_rejected_total',
        { reason },
      ]),
      ...['calico', 'hubble', 'goldmane'].flatMap((source): [string, Record<string, string>][] => [
        ['verdict_flows_malformed_total', { source }],
        ['verdict_flows_lost_total', { source }],
      ]),
      ...POLICY_KINDS.flatMap((kind): [string, Record<string, string>][] => [
        ['verdict_policy_changes_total', { kind }],
        ['verdict_policy_tamper_alerts_total', { kind }],
      ]),
      ['verdict_flow_buckets_compacted_total', { what: 'rolled_up' }],
      ['verdict_flow_buckets_compacted_total', { what: 'deleted' }],
      ...['succeeded', 'failed', 'retry'].map((result): [string, Record<string, string>] => [
        'verdict_report_runs_total',
        { report: 'weekly-cis', result },
      ]),
      ['verdict_ingest_duplicates_total', {}],
      ['verdict_ingest_store_failures_total', {}],
      ['verdict_audit_events_ignored_total', {}],
      ['verdict_audit_events_refused_total', {}],
      ['verdict_audit_events_truncated_total', {}],
    ];
    for (const [name, labels] of zeros)
      t.equal(valueOf(samples, name, labels), 0, `${name}${JSON.stringify(labels)} is exported at 0`);
    t.ok(
      POLICY_KINDS.includes('networkpolicies') &&
        POLICY_KINDS.includes('globalnetworkpolicies') &&
        POLICY_KINDS.includes('ciliumnetworkpolicies'),
      'the kinds are the Kubernetes, Calico and Cilium policy resources',
    );

    // Every counter family but the per-node ones (no node yet) has series, all at 0.
    const counters = DOCUMENTED.filter((n) => types.get(n) === 'counter');
    t.ok(counters.length >= 15, `${counters.length} counters documented`);
    for (const name of counters.filter((n) => !PER_NODE.includes(n))) {
      const series = samples.filter((s) => s.name === name);
      t.ok(series.length > 0, `${name} has series before any event`);
      t.same(
        series.filter((s) => s.value !== 0),
        [],
        `${name} is 0 everywhere`,
      );
    }
    t.ok(
      valueOf(samples, 'verdict_report_next_run_timestamp_seconds', { report: 'weekly-cis' })! > Date.now() / 1000,
      'the scheduled report has its next run',
    );
    for (const name of PER_NODE)
      t.same(
        samples.filter((s) => s.name === name),
        [],
        `${name} has no series before a node is known`,
      );
  },
);

t.test(
  'after a node says Hello, its per-node series exist at 0, and a node the store lists has them from the first scrape',
  async (t) => {
    const agg = await startTestAggregator(t);
    // Another replica on the same store saw this node (or it was seen before a restart).
    await agg.store.recordHello(
      {
        name: 'listed',
        role: 'worker',
        labels: {},
        kubeletVersion: 'v1.32.1',
        kubernetesVersion: '',
        osImage: '',
        kernelVersion: '',
        architecture: '',
        agentVersion: '0.1.0',
        bootId: 'b',
      },
      Date.now(),
    );
    const before = (await scrape(agg.httpPort)).samples;
    t.equal(
      valueOf(before, 'verdict_agent_flows_dropped_total', { node: 'listed' }),
      0,
      'a listed node has its drop counter at 0',
    );
    t.equal(valueOf(before, 'verdict_flows_received_total', { node: 'listed', action: 'allow' }), 0);
    t.equal(valueOf(before, 'verdict_flows_received_total', { node: 'listed', action: 'deny' }), 0);
    t.equal(valueOf(before, 'verdict_benchmark_runs_stored_total', { node: 'listed' }), 0);
    t.equal(
      valueOf(before, 'verdict_agent_flows_dropped_total', { node: 'n1' }),
      undefined,
      'an unknown node has none',
    );

    const s = rawAgentStream(agg.grpcPort);
    t.teardown(() => s.close());
    s.send(HELLO('n1'));
    await s.waitFor(1);
    t.equal(s.received[0]?.kind, 'welcome');
    const after = (await scrape(agg.httpPort)).samples;
    t.equal(valueOf(after, 'verdict_agent_connected', { node: 'n1' }), 1);
    for (const [name, labels] of [
      ['verdict_agent_flows_dropped_total', { node: 'n1' }],
      ['verdict_flows_received_total', { node: 'n1', action: 'allow' }],
      ['verdict_flows_received_total', { node: 'n1', action: 'deny' }],
      ['verdict_benchmark_runs_stored_total', { node: 'n1' }],
    ] as const) {
      t.equal(valueOf(after, name, labels), 0, `${name}${JSON.stringify(labels)} is exported at 0 after Hello`);
    }
    // The drop counter still counts from there: a batch carrying only its dropped records.
    s.send({
      flowBatch: {
        seq: 1,
        windowStartUnixMs: Date.now() - 1000,
        windowEndUnixMs: Date.now(),
        records: [],
        sources: [],
        droppedRecords: 4,
      },
    });
    await s.waitFor(2);
    t.match(s.received[1], { kind: 'ack', ack: { seq: 1 } });
    t.equal(valueOf((await scrape(agg.httpPort)).samples, 'verdict_agent_flows_dropped_total', { node: 'n1' }), 4);
  },
);
