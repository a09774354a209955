import t from 'tap';
import { Registry } from 'prom-client';
import { networkAccessFindingsGauge, type NetworkAccessConfig } from '../../../aggregator/network-access/index.js';
import { parseReportsYaml, type ReportDefinition } from '../../../aggregator/reports/globalreport.js';
import { REPORT_TYPES } from '../../../aggregator/reports/report-types.js';
import { reportRunner } from '../../../aggregator/reports/runner.js';
import type { InventorySnapshot } from '../../../aggregator/reports/types/inventory.js';
import type { ReportRunRecord, StoredAuditEvent, Store } from '../../../aggregator/store/index.js';
import { reportOf } from '../../fixtures/reports.js';

// The runner dispatches through REPORT_TYPES: each type reads its inputs for the
// run's interval (these fakes record what was asked), and the result carries the
// report's name and type, the interval, when it was generated and the type's
// evidence annex.

const START_MS = Date.parse('2026-11-20T00:00:00.000Z');
const END_MS = Date.parse('2026-11-21T00:00:00.000Z');
const NOW_MS = Date.parse('2026-11-21T00:30:00.000Z');

function def(type: string): ReportDefinition {
  const yaml = `apiVersion: compliance.verdict.dev/v1\nkind: GlobalReport\nmetadata: {name: r-${type}}\nspec: {reportType: ${type}}\n`;
  return parseReportsYaml(yaml, 'test')[0] as ReportDefinition;
}

function runOf(d: ReportDefinition): ReportRunRecord {
  return {
    id: '00000000-0000-0000-0000-000000000001',
    report: d.name,
    reportType: d.reportType,
    trigger: 'on-demand',
    status: 'running',
    attempts: 1,
    intervalStartMs: START_MS,
    intervalEndMs: END_MS,
    notBeforeMs: START_MS,
    createdMs: START_MS,
    inputs: {},
  };
}

/** A store answering only what the report types read, noting each call. */
function fakeStore() {
  const calls: unknown[][] = [];
  const history: StoredAuditEvent[] = [];
  const store = {
    listNodes: async () => [
      { name: 'n1', kubeletVersion: 'v1.32.0' },
      { name: 'n2', kubeletVersion: 'v1.32.0' },
    ],
    nodeReport: async (node: string, atMs?: number) => {
      calls.push(['nodeReport', node, atMs]);
      return node === 'n1' ? reportOf('n1', { '1.1': 'PASS', '1.2': 'FAIL' }) : undefined;
    },
    latestClusterScan: async (atMs?: number) => {
      calls.push(['latestClusterScan', atMs]);
      return undefined;
    },
    flowTotals: async (query: unknown, opts: unknown) => {
      calls.push(['flowTotals', query, opts]);
      return [];
    },
    auditEvents: async (fromMs: number, toMs: number) => {
      calls.push(['auditEvents', fromMs, toMs]);
      return [];
    },
    latestAuditEvents: async (events: StoredAuditEvent[], beforeMs: number) => {
      calls.push(['latestAuditEvents', events, beforeMs]);
      return history;
    },
  };
  return { store: store as unknown as Store, calls };
}

t.test('REPORT_TYPES has one kind per report type, under its own name; only inventory needs the cluster', async (t) => {
  t.same(Object.keys(REPORT_TYPES).sort(), ['cis-benchmark', 'inventory', 'network-access', 'policy-audit']);
  for (const [name, kind] of Object.entries(REPORT_TYPES)) {
    t.equal(kind.name, name);
    t.ok(kind.evidence.soc2.length > 0 && kind.evidence.pciDss.length > 0, `${name} has an evidence annex`);
  }
  t.same(
    Object.values(REPORT_TYPES)
      .filter((k) => k.needsCluster)
      .map((k) => k.name),
    ['inventory'],
  );
});

t.test('a cis-benchmark run reads each node latest scan at the end of the interval', async (t) => {
  const { store, calls } = fakeStore();
  const d = def('cis-benchmark');
  const result = await reportRunner(store, () => NOW_MS)(runOf(d), d);
  t.same(calls, [
    ['nodeReport', 'n1', END_MS],
    ['nodeReport', 'n2', END_MS],
    // The cluster section (5.x) as it was at the end of the interval, for cluster-tests.csv.
    ['latestClusterScan', END_MS],
  ]);
  t.match(result, {
    report: 'r-cis-benchmark',
    reportType: 'cis-benchmark',
    startTime: '2026-11-20T00:00:00.000Z',
    endTime: '2026-11-21T00:00:00.000Z',
    generatedAt: '2026-11-21T00:30:00.000Z',
    summary: { nodes: 1, pass: 1, fail: 1, scorePercent: 50 },
  });
  t.same(result.evidence, REPORT_TYPES['cis-benchmark'].evidence);
  t.same(Object.keys(result), [
    'report',
    'reportType',
    'startTime',
    'endTime',
    'generatedAt',
    'summary',
    'data',
    'files',
    'evidence',
  ]);
});

t.test('network-access and policy-audit runs read the store over the run interval', async (t) => {
  const { store, calls } = fakeStore();
  const run = reportRunner(store, () => NOW_MS);
  const na = def('network-access');
  t.match(await run(runOf(na), na), { reportType: 'network-access', summary: { endpointsNumInScope: 0 } });
  const pa = def('policy-audit');
  t.match(await run(runOf(pa), pa), { reportType: 'policy-audit', summary: { numCreatedPolicies: 0 } });
  t.same(calls, [
    ['flowTotals', { fromMs: START_MS, toMs: END_MS }, { connectionsOnly: true }],
    ['auditEvents', START_MS, END_MS],
    ['latestAuditEvents', [], START_MS],
  ]);
});

t.test(
  'an inventory run reads the cluster over the interval, and without one fails saying what it needs',
  async (t) => {
    const { store } = fakeStore();
    const d = def('inventory');
    await t.rejects(reportRunner(store, () => NOW_MS)(runOf(d), d), {
      message:
        "VERDICT_REPORT_UNSUPPORTED: inventory reports read the cluster's pods, namespaces, service accounts and network policies; run the aggregator in a cluster, give it --kubeconfig, or --cluster-snapshot DIR for an offline copy",
    });
    const asked: number[][] = [];
    const empty: InventorySnapshot = {
      pods: [],
      namespaces: [],
      serviceAccounts: [],
      networkPolicies: [],
      calicoPolicies: [],
    };
    const result = await reportRunner(
      store,
      () => NOW_MS,
      async (fromMs, toMs) => {
        asked.push([fromMs, toMs]);
        return empty;
      },
    )(runOf(d), d);
    t.same(asked, [[START_MS, END_MS]]);
    t.match(result, { reportType: 'inventory', summary: { endpointsNumInScope: 0 } });
  },
);

t.test('a network-access run reads the configuration the runner was given (ReportSources.networkAccess)', async (t) => {
  const { store } = fakeStore();
  const d = def('network-access');
  const registry = new Registry();
  const asked: [number, number][] = [];
  const networkAccess: NetworkAccessConfig = {
    internalCidrs: [],
    findings: networkAccessFindingsGauge(registry),
    source: {
      async configuration(fromMs, toMs) {
        asked.push([fromMs, toMs]);
        return {
          source: 'test source',
          namespaces: [{ name: 'shop', labels: {} }],
          pods: [{ namespace: 'shop', name: 'web-0', labels: { app: 'web' }, serviceAccount: 'default', envoy: false }],
          policies: [],
        };
      },
    },
  };
  const result = await reportRunner(store, () => NOW_MS, undefined, networkAccess)(runOf(d), d);
  t.same(asked, [[START_MS, END_MS]], "the source is asked for the run's interval");
  t.match(result.summary, { configurationSource: 'test source', endpointsNumInScope: 1, findings: 0 });
  const without = await reportRunner(store, () => NOW_MS)(runOf(d), d);
  t.match(without.summary, { configurationSource: 'none', endpointsNumInScope: 0 }, 'no configuration: none');
  t.match(
    await registry.getSingleMetricAsString('verdict_aggregator_network_access_findings'),
    /verdict_aggregator_network_access_findings\{kind="protected-but-unprotected-traffic"\} 0/,
    'the gauge it was given is the one set',
  );
});
