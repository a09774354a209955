import t from 'tap';
import { parseReportsYaml, type ReportDefinition } from '../../../aggregator/reports/globalreport.js';
import { networkAccessReport } from '../../../aggregator/reports/types/network-access.js';
import type { FlowEndpoint, FlowRecord, PolicyRef } from '../../../common/flow.js';
import { toCsv } from '../../../common/csv.js';
import { networkAccess } from '../../../aggregator/compute/network-access.js';
import { networkAccessEvidence } from '../../../aggregator/network-access/index.js';
import type { ReportFile } from '../../../aggregator/reports/report-file.js';

// The network-access generator over six hand-written flows with no configuration
// known (configured evidence: test/aggregator/network-access-evidence.test.ts);
// the expected rows are worked out below from the rules in
// compute/network-access.ts: an endpoint's ingress is what its own side saw
// (reporter dst), its egress what its own side saw (reporter src); "protected"
// when every observation in that direction was decided by a policy, false when
// none (the observed column then says "unobserved").

const INTERVAL = { start: '2026-11-20T00:00:00.000Z', end: '2026-11-21T00:00:00.000Z' };

function accessDef(endpoints = ''): ReportDefinition {
  const yaml = `apiVersion: compliance.verdict.dev/v1
kind: GlobalReport
metadata: {name: access}
spec:
  reportType: network-access
${endpoints}`;
  return parseReportsYaml(yaml, 'test')[0] as ReportDefinition;
}

const pod = (namespace: string, name: string, labels: string[] = []): FlowEndpoint => ({
  kind: 'pod',
  namespace,
  name,
  labels,
  serviceAccount: 'default',
  internet: false,
});
const internet: FlowEndpoint = {
  kind: 'network',
  namespace: '',
  name: 'pub',
  labels: [],
  serviceAccount: '',
  internet: true,
};
const policy = (namespace: string, name: string, tier = 'default'): PolicyRef => ({
  tier,
  namespace,
  name,
  action: 'allow',
  kind: 'NetworkPolicy',
});

const frontend = pod('shop', 'frontend', ['app=frontend']);
const cart = pod('shop', 'cart', ['app=cart']);
const api = pod('payments', 'api', ['app=api']);

function flow(
  source: FlowEndpoint,
  destination: FlowEndpoint,
  reporter: 'src' | 'dst',
  action: 'allow' | 'deny',
  connections: number,
  decided: { policies?: PolicyRef[]; staged?: PolicyRef[]; byPolicy: boolean },
): FlowRecord {
  return {
    source,
    destination,
    protocol: 'tcp',
    destinationPort: 8080,
    action,
    reporter,
    policies: decided.policies ?? [],
    stagedPolicies: decided.staged ?? [],
    unnamedPolicy: false,
    policyDecided: decided.byPolicy,
    connections,
    packets: connections * 10,
    bytes: connections * 1000,
    startMs: Date.parse(INTERVAL.start),
    endMs: Date.parse(INTERVAL.start) + 300_000,
  };
}

const flows: FlowRecord[] = [
  // frontend ingress from the internet, by policy shop/fe-in: 10 allowed.
  flow(internet, frontend, 'dst', 'allow', 10, { policies: [policy('shop', 'fe-in')], byPolicy: true }),
  // frontend egress to cart by the namespace profile (no policy): 5 allowed.
  flow(frontend, cart, 'src', 'allow', 5, { byPolicy: false }),
  // cart ingress from frontend, by shop/cart-in: 5 allowed; from payments/api: 2 denied.
  flow(frontend, cart, 'dst', 'allow', 5, { policies: [policy('shop', 'cart-in')], byPolicy: true }),
  flow(api, cart, 'dst', 'deny', 2, { policies: [policy('shop', 'cart-in')], byPolicy: true }),
  // cart egress to payments/api by the global security.allow-api, with a staged security.audit: 3 allowed.
  flow(cart, api, 'src', 'allow', 3, {
    policies: [policy('', 'allow-api', 'security')],
    staged: [policy('', 'audit', 'security')],
    byPolicy: true,
  }),
  // api ingress from cart with no policy: 3 allowed.
  flow(cart, api, 'dst', 'allow', 3, { byPolicy: false }),
];

/** The report over these flows with no configuration known: Calico's flags then come from the flows. */
function report(def: ReportDefinition, fs: FlowRecord[]) {
  return networkAccessReport(def, networkAccessEvidence(networkAccess(fs), undefined), INTERVAL);
}

const PICKED = [
  'endpoint',
  'ingressProtected',
  'egressProtected',
  'ingressFromInternet',
  'egressToInternet',
  'ingressFromOtherNamespace',
  'egressToOtherNamespace',
  'appliedPolicies',
  'allowedIn',
  'deniedIn',
  'allowedOut',
  'deniedOut',
  'stagedPolicies',
  'evidence',
  'observedEgressProtected',
];
function picked(file: ReportFile | undefined): unknown[][] {
  if (!file) return [];
  const at = PICKED.map((h) => file.header.indexOf(h));
  return file.rows.map((r) => at.map((i) => r[i]));
}
// api: ingress seen once, not by policy -> false; no egress seen -> false (Calico has no "unknown"; the observed
// column keeps "unobserved"); traffic from shop -> other namespace.
const API_ROW = ['payments/api', false, false, false, false, true, false, [], 3, 0, 0, 0, [], 'observed', 'unobserved'];
// cart: both ingress observations and its egress by policy; egress to payments; 5 + 2 in, 3 out.
const CART_ROW = [
  'shop/cart',
  true,
  true,
  false,
  false,
  false,
  true,
  ['security.allow-api', 'shop/cart-in'],
  5,
  2,
  3,
  0,
  ['security.audit'],
  'observed',
  true,
];
// frontend: ingress by policy, egress by profile only; from the internet.
const FRONTEND_ROW = [
  'shop/frontend',
  true,
  false,
  true,
  false,
  false,
  false,
  ['shop/fe-in'],
  10,
  0,
  5,
  0,
  [],
  'observed',
  false,
];
const NAMESPACE_HEADER = [
  'namespace',
  'endpoints',
  'ingressProtected',
  'egressProtected',
  'allowedIn',
  'deniedIn',
  'allowedOut',
  'deniedOut',
  'allowedPercent',
];
// payments: 3 allowed of 3 -> 100%. shop: allowed 10 + 5 in, 5 + 3 out = 23 of 25 -> 92%.
const PAYMENTS_NS = ['payments', 1, 0, 0, 3, 0, 0, 0, 100];
const SHOP_NS = ['shop', 2, 2, 1, 15, 2, 8, 0, 92];

t.test('every endpoint in scope: flags, counts and policies per endpoint and namespace', async (t) => {
  const out = report(accessDef(), flows);
  const summary = {
    startTime: INTERVAL.start,
    endTime: INTERVAL.end,
    endpointSelector: '',
    namespaceNames: [],
    namespaceSelector: '',
    serviceAccountNames: [],
    serviceAccountSelectors: '',
    endpointsNumIngressProtected: 2,
    endpointsNumEgressProtected: 1,
    // Calico's template: in scope minus protected.
    endpointsNumIngressUnprotected: 1,
    endpointsNumEgressUnprotected: 2,
    endpointsNumIngressFromInternet: 1,
    endpointsNumEgressToInternet: 0,
    endpointsNumIngressFromOtherNamespace: 1,
    endpointsNumEgressToOtherNamespace: 1,
    endpointsNumEnvoyEnabled: 0,
    endpointsNumInScope: 3,
    configurationSource: 'none',
    configurationProblems: 0,
    findings: 0,
  };
  t.same(out.summary, summary);
  t.same(out.files['summary.csv'], { header: Object.keys(summary), rows: [Object.values(summary)] });
  t.same(picked(out.files['endpoints.csv']), [API_ROW, CART_ROW, FRONTEND_ROW]);
  t.same(out.files['namespaces.csv'], { header: NAMESPACE_HEADER, rows: [PAYMENTS_NS, SHOP_NS] });
  t.same(Object.keys(out.files), ['summary.csv', 'endpoints.csv', 'namespaces.csv', 'findings.csv']);
  t.equal(
    toCsv(out.files['endpoints.csv']!.header, out.files['endpoints.csv']!.rows)
      .split('\r\n')[2]
      ?.split(',')
      .slice(0, 12)
      .join(','),
    'shop/cart,true,true,false,false,false,true,false,security.allow-api;shop/cart-in,cart-*,payments/api;shop/frontend,payments/api',
  );
  t.same(
    out.data.endpoints.map((e) => [e.endpoint, e.ingressProtected, e.egressProtected, e.observed?.egressProtected]),
    [
      ['payments/api', false, false, null],
      ['shop/cart', true, true, true],
      ['shop/frontend', true, false, false],
    ],
    'the observed evidence keeps null where nothing was seen',
  );
});

t.test('scoped by namespace name: the summary names the scope, other namespaces drop out', async (t) => {
  const out = report(accessDef('  endpoints:\n    namespaces: {names: [shop]}\n'), flows);
  t.match(out.summary, {
    namespaceNames: ['shop'],
    endpointsNumInScope: 2,
    endpointsNumIngressProtected: 2,
    endpointsNumEgressProtected: 1,
    endpointsNumIngressUnprotected: 0,
    endpointsNumEgressUnprotected: 1,
    endpointsNumIngressFromOtherNamespace: 0,
    endpointsNumEgressToOtherNamespace: 1,
  });
  t.same(picked(out.files['endpoints.csv']), [CART_ROW, FRONTEND_ROW]);
  t.same(out.files['namespaces.csv']!.rows, [SHOP_NS]);
});

t.test('scoped by endpoint selector: a namespace row counts its in-scope endpoints (Calico)', async (t) => {
  const out = report(accessDef(`  endpoints:\n    selector: "app == 'frontend'"\n`), flows);
  t.match(out.summary, { endpointSelector: "app == 'frontend'", endpointsNumInScope: 1 });
  t.same(picked(out.files['endpoints.csv']), [FRONTEND_ROW]);
  // shop with frontend only: ingress protected 1, egress 0; 10 in + 5 out allowed -> 100%.
  t.same(out.files['namespaces.csv']!.rows, [['shop', 1, 1, 0, 10, 0, 5, 0, 100]]);
});

t.test('no flows: zero counts and header-only files', async (t) => {
  const out = report(accessDef(), []);
  t.match(out.summary, { endpointsNumInScope: 0, endpointsNumIngressProtected: 0 });
  t.same(out.files['endpoints.csv']!.rows, []);
  t.same(out.files['namespaces.csv'], { header: NAMESPACE_HEADER, rows: [] });
  t.same(out.files['findings.csv']!.rows, []);
});
