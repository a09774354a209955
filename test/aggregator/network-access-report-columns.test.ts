import t from 'tap';
import type { FlowEndpoint, FlowRecord } from '../../common/flow.js';
import { networkAccess } from '../../aggregator/compute/network-access.js';
import { configuredEvidence, networkAccessEvidence } from '../../aggregator/network-access/index.js';
import { parseReportsYaml, type ReportDefinition } from '../../aggregator/reports/globalreport.js';
import { networkAccessReport } from '../../aggregator/reports/types/network-access.js';

/**
 * Every column of Calico Enterprise's network-access report, with its meaning, against what Verdict writes. The
 * reference, copied by hand:
 * - tigera/operator pkg/render/compliance.go, complianceGlobalReportNetworkAccess: the download templates Calico
 *   Enterprise installs (summary.csv and endpoints.csv, columns in this order; lists joined with ";";
 *   endpointsNum*Unprotected = NumTotal - Num*Protected).
 * - tigera/docs calico-enterprise/reference/resources/compliance-reports/network-access (docs.tigera.io): the same
 *   columns with their descriptions, and `services` in endpoints.csv (absent from the template; Verdict writes it
 *   right after Calico's template columns).
 * Verdict's own columns follow Calico's; its own files (namespaces.csv, findings.csv) follow Calico's files.
 */

type Meaning = [column: string, meaning: string];

const SUMMARY: Meaning[] = [
  ['startTime', 'the report interval start time (RFC3339)'],
  ['endTime', 'the report interval end time (RFC3339)'],
  ['endpointSelector', 'the endpoint selector restricting in-scope endpoints'],
  ['namespaceNames', 'the namespace names restricting in-scope endpoints, ";"-separated'],
  ['namespaceSelector', 'the namespace selector restricting in-scope endpoints'],
  ['serviceAccountNames', 'the service account names restricting in-scope endpoints, ";"-separated'],
  ['serviceAccountSelectors', 'the service account selector restricting in-scope endpoints'],
  ['endpointsNumIngressProtected', 'in-scope endpoints always ingress protected during the interval'],
  ['endpointsNumEgressProtected', 'in-scope endpoints always egress protected during the interval'],
  ['endpointsNumIngressUnprotected', 'in-scope endpoints ingress unprotected at any point during the interval'],
  ['endpointsNumEgressUnprotected', 'in-scope endpoints egress unprotected at any point during the interval'],
  ['endpointsNumIngressFromInternet', 'in-scope endpoints allowing ingress from the internet at any point'],
  ['endpointsNumEgressToInternet', 'in-scope endpoints allowing egress to the internet at any point'],
  ['endpointsNumIngressFromOtherNamespace', 'in-scope endpoints allowing ingress from other namespaces at any point'],
  ['endpointsNumEgressToOtherNamespace', 'in-scope endpoints allowing egress to other namespaces at any point'],
  ['endpointsNumEnvoyEnabled', 'in-scope endpoints with Envoy enabled'],
];

const ENDPOINTS: Meaning[] = [
  ['endpoint', 'the endpoint'],
  ['ingressProtected', 'ingress protected throughout the interval (at least one ingress policy applied)'],
  ['egressProtected', 'egress protected throughout the interval'],
  ['ingressFromInternet', 'ingress from the internet allowed at any point'],
  ['egressToInternet', 'egress to the internet allowed at any point'],
  ['ingressFromOtherNamespace', 'ingress from other namespaces allowed at any point'],
  ['egressToOtherNamespace', 'egress to other namespaces allowed at any point'],
  ['envoyEnabled', 'Envoy is enabled for the endpoint'],
  ['appliedPolicies', 'the policies that applied at any point, ";"-separated'],
  ['trafficAggregationPrefix', 'the flow-log aggregation prefix the traffic columns describe'],
  ['endpointsGeneratingTrafficToThisEndpoint', 'endpoints generating traffic to it, ";"-separated'],
  ['endpointsReceivingTrafficFromThisEndpoint', 'endpoints receiving traffic from it, ";"-separated'],
  ['services', 'the services that exposed it at any point, ";"-separated'],
];

const T0 = Date.UTC(2026, 10, 20, 10, 0, 0);
const INTERVAL = { start: new Date(T0).toISOString(), end: new Date(T0 + 3_600_000).toISOString() };

function def(): ReportDefinition {
  return parseReportsYaml(
    'apiVersion: projectcalico.org/v3\nkind: GlobalReport\nmetadata: {name: na}\nspec:\n  reportType: network-access\n  endpoints:\n    namespaces: {names: [shop]}\n',
    'test',
  )[0] as ReportDefinition;
}

const ep = (namespace: string, name: string, internet = false): FlowEndpoint => ({
  kind: namespace ? 'pod' : 'network',
  namespace,
  name,
  labels: namespace ? [`app=${name}`] : [],
  serviceAccount: namespace ? 'default' : '',
  internet,
});
const flow = (source: FlowEndpoint, destination: FlowEndpoint, reporter: 'src' | 'dst'): FlowRecord => ({
  source,
  destination,
  protocol: 'tcp',
  destinationPort: 443,
  action: 'allow',
  reporter,
  policies: [],
  stagedPolicies: [],
  unnamedPolicy: false,
  policyDecided: true,
  connections: 4,
  packets: 40,
  bytes: 4000,
  startMs: T0,
  endMs: T0 + 60_000,
});

// shop/web: selected by a Kubernetes policy admitting 0.0.0.0/0 on ingress (so: protected, internet in), no egress
// policy (everything out allowed), an istio-proxy sidecar, the Service shop/web. Traffic: pub -> web, web -> pay/db.
const out = networkAccessReport(
  def(),
  networkAccessEvidence(
    networkAccess([
      flow(ep('', 'pub', true), ep('shop', 'web'), 'dst'),
      flow(ep('shop', 'web'), ep('pay', 'db'), 'src'),
    ]),
    configuredEvidence(
      {
        source: 'test',
        namespaces: [
          { name: 'shop', labels: {} },
          { name: 'pay', labels: {} },
        ],
        pods: [{ namespace: 'shop', name: 'web-0', labels: { app: 'web' }, serviceAccount: 'default', envoy: true }],
        services: [{ namespace: 'shop', name: 'web', selector: { app: 'web' } }],
        policies: [
          {
            fromMs: -Infinity,
            toMs: Infinity,
            object: {
              apiVersion: 'networking.k8s.io/v1',
              kind: 'NetworkPolicy',
              metadata: { name: 'web-in', namespace: 'shop' },
              spec: { podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: '0.0.0.0/0' } }] }] },
            },
          },
        ],
      },
      T0,
      T0 + 3_600_000,
    ),
  ),
  INTERVAL,
);

t.test("summary.csv: Calico's columns first, in Calico's order, then Verdict's", async (t) => {
  const header = out.files['summary.csv']?.header ?? [];
  t.same(
    header.slice(0, SUMMARY.length),
    SUMMARY.map(([c]) => c),
  );
  t.same(header.slice(SUMMARY.length), [
    'endpointsNumInScope',
    'configurationSource',
    'configurationProblems',
    'findings',
  ]);
});

t.test("endpoints.csv: Calico's columns first, in Calico's order, then Verdict's", async (t) => {
  const header = out.files['endpoints.csv']?.header ?? [];
  t.same(
    header.slice(0, ENDPOINTS.length),
    ENDPOINTS.map(([c]) => c),
  );
  t.notOk(
    header.slice(ENDPOINTS.length).some((h) => ENDPOINTS.some(([c]) => c === h)),
    'no Calico column repeated among the extras',
  );
  t.same(Object.keys(out.files), ['summary.csv', 'endpoints.csv', 'namespaces.csv', 'findings.csv']);
});

t.test('each Calico column carries its meaning', async (t) => {
  const s = out.files['summary.csv']!;
  const cell = (h: string) => s.rows[0]?.[s.header.indexOf(h)];
  const summaryValues: Record<string, unknown> = {
    startTime: INTERVAL.start,
    endTime: INTERVAL.end,
    endpointSelector: '',
    namespaceNames: ['shop'],
    namespaceSelector: '',
    serviceAccountNames: [],
    serviceAccountSelectors: '',
    endpointsNumIngressProtected: 1,
    endpointsNumEgressProtected: 0,
    endpointsNumIngressUnprotected: 0,
    endpointsNumEgressUnprotected: 1,
    endpointsNumIngressFromInternet: 1,
    endpointsNumEgressToInternet: 1,
    endpointsNumIngressFromOtherNamespace: 0,
    endpointsNumEgressToOtherNamespace: 1,
    endpointsNumEnvoyEnabled: 1,
  };
  for (const [column, meaning] of SUMMARY) t.same(cell(column), summaryValues[column], `${column}: ${meaning}`);

  const e = out.files['endpoints.csv']!;
  t.equal(e.rows.length, 1, 'pay/db is out of scope');
  const ecell = (h: string) => e.rows[0]?.[e.header.indexOf(h)];
  const endpointValues: Record<string, unknown> = {
    endpoint: 'shop/web',
    ingressProtected: true,
    egressProtected: false,
    ingressFromInternet: true,
    egressToInternet: true,
    ingressFromOtherNamespace: false,
    egressToOtherNamespace: true,
    envoyEnabled: true,
    appliedPolicies: ['shop/web-in'],
    trafficAggregationPrefix: 'web-*',
    endpointsGeneratingTrafficToThisEndpoint: ['pub'],
    endpointsReceivingTrafficFromThisEndpoint: ['pay/db'],
    services: ['shop/web'],
  };
  for (const [column, meaning] of ENDPOINTS) t.same(ecell(column), endpointValues[column], `${column}: ${meaning}`);
});

t.test("endpoints.csv: the unknown counts (trace-only Hubble, policyUnknown) follow Calico's columns", async (t) => {
  // shop/api received 3 connections seen only through trace events (policyUnknown: no event could say whether a
  // policy decided them) and 4 a verdict event said a policy allowed; it sent 2 unknown ones to pay/db. Hand-derived:
  // unknownAllowedIn 3 of allowedIn 7, unknownAllowedOut 2 of allowedOut 2.
  const unknown = (f: FlowRecord, connections: number): FlowRecord => ({
    ...f,
    policyDecided: false,
    policyUnknown: true,
    connections,
  });
  const report = networkAccessReport(
    def(),
    networkAccessEvidence(
      networkAccess([
        unknown(flow(ep('shop', 'web'), ep('shop', 'api'), 'dst'), 3),
        flow(ep('shop', 'web'), ep('shop', 'api'), 'dst'),
        unknown(flow(ep('shop', 'api'), ep('pay', 'db'), 'src'), 2),
      ]),
      undefined,
    ),
    INTERVAL,
  );
  const e = report.files['endpoints.csv']!;
  const at = (h: string) => e.header.indexOf(h);
  t.ok(at('unknownAllowedIn') >= ENDPOINTS.length, "unknownAllowedIn is after Calico's columns");
  t.equal(at('unknownAllowedOut'), at('unknownAllowedIn') + 1, 'unknownAllowedOut right after it');
  t.ok(at('unknownAllowedIn') > at('deniedOut'), 'beside the traffic counts it is part of');
  const row = (endpoint: string) => e.rows.find((r) => r[at('endpoint')] === endpoint);
  const cells = (endpoint: string) =>
    ['allowedIn', 'unknownAllowedIn', 'allowedOut', 'unknownAllowedOut'].map((h) => row(endpoint)?.[at(h)]);
  t.same(cells('shop/api'), [7, 3, 2, 2], 'shop/api: 3 of 7 in and 2 of 2 out could not tell');
  t.same(
    e.rows.map((r) => r[at('endpoint')]),
    ['shop/api'],
    'shop/web is only a peer (reporter dst records are the destination node observing)',
  );
});
