import t from 'tap';
import { parseReportsYaml, type ReportDefinition } from '../../../aggregator/reports/globalreport.js';
import { inventoryReport, type InventorySnapshot } from '../../../aggregator/reports/types/inventory.js';
import { toCsv } from '../../../common/csv.js';

// The inventory generator over a small hand-written cluster: which policies
// select each pod, by Kubernetes rules (podSelector in the pod's namespace;
// policyTypes, else Ingress plus Egress when egress rules exist) and Calico's
// (selector over the pod's labels, namespaceSelector over the namespace's;
// types, else from the rules present). Expectations worked out by hand below.

const INTERVAL = { start: '2026-11-20T00:00:00.000Z', end: '2026-11-21T00:00:00.000Z' };

function inventoryDef(endpoints = ''): ReportDefinition {
  const yaml = `apiVersion: compliance.verdict.dev/v1
kind: GlobalReport
metadata: {name: inventory}
spec:
  reportType: inventory
${endpoints}`;
  return parseReportsYaml(yaml, 'test')[0] as ReportDefinition;
}

const snapshot: InventorySnapshot = {
  namespaces: [{ metadata: { name: 'payments', labels: { tier: 'pci' } } }, { metadata: { name: 'shop' } }],
  pods: [
    // Istio's init and proxy containers: Envoy enabled.
    {
      metadata: { name: 'web-1', namespace: 'shop', labels: { app: 'web' } },
      spec: { containers: [{ name: 'web' }, { name: 'istio-proxy' }], initContainers: [{ name: 'istio-init' }] },
    },
    // No containers known (a pod from pod history): Envoy unknown.
    { metadata: { name: 'api-1', namespace: 'payments', labels: { app: 'api' } }, spec: { serviceAccountName: 'api' } },
    {
      metadata: { name: 'cart-1', namespace: 'shop', labels: { app: 'cart' } },
      spec: { serviceAccountName: 'cart', containers: [{ name: 'cart' }] },
    },
    // Host-network pods are the node's, not endpoints.
    { metadata: { name: 'node-agent', namespace: 'kube-system' }, spec: { hostNetwork: true } },
  ],
  serviceAccounts: [],
  services: [
    { metadata: { name: 'web', namespace: 'shop' }, spec: { selector: { app: 'web' } } },
    { metadata: { name: 'cart', namespace: 'shop' }, spec: { selector: { app: 'cart' } } },
    { metadata: { name: 'api', namespace: 'payments' }, spec: { selector: { app: 'api' } } },
    // No selector (endpoints kept by hand): it selects no pod.
    { metadata: { name: 'external-db', namespace: 'shop' } },
    // Same selector, other namespace: not web-1's.
    { metadata: { name: 'web', namespace: 'other' }, spec: { selector: { app: 'web' } } },
  ],
  networkPolicies: [
    // Every pod in payments, both directions.
    {
      metadata: { name: 'lockdown', namespace: 'payments' },
      spec: { podSelector: {}, policyTypes: ['Ingress', 'Egress'] },
    },
    // No policyTypes and no egress rules: Ingress only.
    { metadata: { name: 'web-in', namespace: 'shop' }, spec: { podSelector: { matchLabels: { app: 'web' } } } },
    {
      metadata: { name: 'cart-out', namespace: 'shop' },
      spec: {
        podSelector: { matchExpressions: [{ key: 'app', operator: 'In', values: ['cart'] }] },
        policyTypes: ['Egress'],
      },
    },
    // Same labels, other namespace: selects nothing here.
    { metadata: { name: 'web-elsewhere', namespace: 'other' }, spec: { podSelector: { matchLabels: { app: 'web' } } } },
  ],
  calicoPolicies: [
    // No types, egress rules only: Egress.
    {
      kind: 'GlobalNetworkPolicy',
      metadata: { name: 'security.allow-dns' },
      spec: { selector: "app == 'cart'", egress: [{}] },
    },
    // A selector Calico would refuse selects nothing.
    { kind: 'NetworkPolicy', metadata: { name: 'broken', namespace: 'shop' }, spec: { selector: '((' } },
    // All pods in namespaces labelled tier=pci, Ingress.
    {
      kind: 'GlobalNetworkPolicy',
      metadata: { name: 'pci-ingress' },
      spec: { namespaceSelector: "tier == 'pci'", types: ['Ingress'] },
    },
  ],
};

// Calico Enterprise's columns (tigera/operator pkg/render/compliance.go, complianceGlobalReportInventory),
// then Verdict's.
const ENDPOINTS_HEADER = [
  'endpoint',
  'ingressProtected',
  'egressProtected',
  'envoyEnabled',
  'appliedPolicies',
  'services',
  'namespace',
  'serviceAccount',
];
// api-1: lockdown (Ingress, Egress) and pci-ingress (Ingress); Envoy unknown; in service payments/api.
const API = [
  'payments/api-1',
  true,
  true,
  null,
  ['payments/lockdown', 'pci-ingress'],
  ['payments/api'],
  'payments',
  'api',
];
// cart-1: cart-out (Egress) and security.allow-dns (Egress); nothing for ingress; no Istio.
const CART = [
  'shop/cart-1',
  false,
  true,
  false,
  ['security.allow-dns', 'shop/cart-out'],
  ['shop/cart'],
  'shop',
  'cart',
];
// web-1: web-in (Ingress); no service account named, so "default"; Istio's sidecar.
const WEB = ['shop/web-1', true, false, true, ['shop/web-in'], ['shop/web'], 'shop', 'default'];

t.test('every pod in scope: the policies selecting it, namespaces protected when all their pods are', async (t) => {
  const out = inventoryReport(inventoryDef(), snapshot, INTERVAL);
  t.same(out.summary, {
    startTime: INTERVAL.start,
    endTime: INTERVAL.end,
    endpointsNumInScope: 3,
    endpointsNumIngressProtected: 2,
    endpointsNumEgressProtected: 2,
    namespacesNumInScope: 2,
    // payments: its one pod is protected both ways; shop: cart-1 lacks ingress, web-1 egress.
    namespacesNumIngressProtected: 1,
    namespacesNumEgressProtected: 1,
    serviceAccountsNumInScope: 3,
    servicesNumInScope: 3,
  });
  t.same(Object.keys(out.files), [
    'summary.csv',
    'endpoints.csv',
    'namespaces.csv',
    'services.csv',
    'serviceaccounts.csv',
  ]);
  t.same(out.files['summary.csv'], {
    header: [
      'startTime',
      'endTime',
      'endpointSelector',
      'namespaceNames',
      'namespaceSelector',
      'serviceAccountNames',
      'serviceAccountSelectors',
      'endpointsNumInScope',
      'endpointsNumIngressProtected',
      'endpointsNumEgressProtected',
      'namespacesNumInScope',
      'namespacesNumIngressProtected',
      'namespacesNumEgressProtected',
      'serviceAccountsNumInScope',
      'servicesNumInScope',
    ],
    rows: [['2026-11-20T00:00:00Z', '2026-11-21T00:00:00Z', '', [], '', [], '', 3, 2, 2, 2, 1, 1, 3, 3]],
  });
  t.same(out.files['endpoints.csv'], { header: ENDPOINTS_HEADER, rows: [API, CART, WEB] });
  // Envoy: payments' one pod is unknown (empty cell); shop has cart-1 without it (false).
  t.same(out.files['namespaces.csv'], {
    header: ['namespace', 'ingressProtected', 'egressProtected', 'envoyEnabled', 'endpoints'],
    rows: [
      ['payments', true, true, null, 1],
      ['shop', false, false, false, 2],
    ],
  });
  // Only the services with endpoints in scope; Calico counts no egress for services.
  t.same(out.files['services.csv'], {
    header: ['service', 'ingressProtected', 'envoyEnabled', 'endpoints'],
    rows: [
      ['payments/api', true, null, 1],
      ['shop/cart', false, false, 1],
      ['shop/web', true, true, 1],
    ],
  });
  t.same(out.files['serviceaccounts.csv'], {
    header: ['serviceAccount'],
    rows: [['payments/api'], ['shop/cart'], ['shop/default']],
  });
  t.equal(
    toCsv(out.files['endpoints.csv']!.header, out.files['endpoints.csv']!.rows).split('\r\n')[1],
    'payments/api-1,true,true,,payments/lockdown;pci-ingress,payments/api,payments,api',
    'lists joined with ";", as the reference says; an unknown Envoy is an empty cell',
  );
  t.same(out.data.serviceAccounts, ['payments/api', 'shop/cart', 'shop/default']);
  t.same(
    out.data.endpoints[0],
    {
      endpoint: 'payments/api-1',
      namespace: 'payments',
      serviceAccount: 'api',
      ingressProtected: true,
      egressProtected: true,
      appliedPolicies: ['payments/lockdown', 'pci-ingress'],
      envoyEnabled: null,
      services: ['payments/api'],
    },
    'the data has no labels',
  );
});

t.test('scoped by namespace name', async (t) => {
  const out = inventoryReport(inventoryDef('  endpoints:\n    namespaces: {names: [shop]}\n'), snapshot, INTERVAL);
  t.match(out.summary, {
    endpointsNumInScope: 2,
    endpointsNumIngressProtected: 1,
    endpointsNumEgressProtected: 1,
    namespacesNumInScope: 1,
    namespacesNumIngressProtected: 0,
    namespacesNumEgressProtected: 0,
    serviceAccountsNumInScope: 2,
  });
  t.same(out.files['endpoints.csv']!.rows, [CART, WEB]);
  t.same(out.files['serviceaccounts.csv']!.rows, [['shop/cart'], ['shop/default']]);
  t.same(out.files['summary.csv']!.rows[0]!.slice(2, 7), ['', ['shop'], '', [], ''], 'the scope as written');
  t.equal(
    toCsv(out.files['summary.csv']!.header, out.files['summary.csv']!.rows).split('\r\n')[1],
    '2026-11-20T00:00:00Z,2026-11-21T00:00:00Z,,shop,,,,2,1,1,1,0,0,2,2',
  );
});

t.test('scoped by service account name and by label selector', async (t) => {
  const bySa = inventoryReport(
    inventoryDef('  endpoints:\n    serviceAccounts: {names: [cart]}\n'),
    snapshot,
    INTERVAL,
  );
  t.same(bySa.files['endpoints.csv']!.rows, [CART]);
  t.same(
    bySa.files['namespaces.csv']!.rows,
    [['shop', false, true, false, 1]],
    'shop is protected as far as cart-1 goes',
  );
  const byLabel = inventoryReport(inventoryDef(`  endpoints:\n    selector: "app == 'web'"\n`), snapshot, INTERVAL);
  t.same(byLabel.files['endpoints.csv']!.rows, [WEB]);
});

t.test('an empty cluster: zero counts and header-only files', async (t) => {
  const out = inventoryReport(
    inventoryDef(),
    { pods: [], namespaces: [], serviceAccounts: [], networkPolicies: [], calicoPolicies: [] },
    INTERVAL,
  );
  // No services listed (a source without them): unknown, an empty cell, not 0.
  t.same(out.files['summary.csv']!.rows, [
    ['2026-11-20T00:00:00Z', '2026-11-21T00:00:00Z', '', [], '', [], '', 0, 0, 0, 0, 0, 0, 0, null],
  ]);
  t.same(out.files['endpoints.csv'], { header: ENDPOINTS_HEADER, rows: [] });
  t.same(out.data, { endpoints: [], namespaces: [], services: [], serviceAccounts: [] });
});
