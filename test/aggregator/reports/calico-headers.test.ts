import t from 'tap';
import { parseReportsYaml, type ReportDefinition } from '../../../aggregator/reports/globalreport.js';
import { documentFileNames } from '../../../aggregator/reports/report-file.js';
import { cisBenchmarkReport } from '../../../aggregator/reports/types/cis-benchmark.js';
import { inventoryReport } from '../../../aggregator/reports/types/inventory.js';
import { policyAuditReport } from '../../../aggregator/reports/types/policy-audit.js';
import { toCsv } from '../../../common/csv.js';
import { reportOf } from '../../fixtures/reports.js';

// Every file and column header Calico Enterprise's compliance reports define, for
// the cis-benchmark, inventory and policy-audit types, against what Verdict writes:
// each of Calico's files exists under its name, its columns come first and in
// Calico's order, and Verdict's own columns only follow them. (network-access is
// held to the reference by its own test.)
//
// The reference, copied by hand:
// - tigera/operator, pkg/render/compliance.go: the GlobalReportType download templates
//   Calico Enterprise installs (complianceGlobalReportInventory, complianceGlobalReportPolicyAudit,
//   getCISDownloadReportTemplates), i.e. the files its reporter writes.
// - tigera/docs, calico-enterprise/reference/resources/compliance-reports/{cis-benchmark,inventory,
//   policy-audit}.mdx (docs.tigera.io, "Compliance reports"). Where the two differ the templates win,
//   being what a Calico user's scripts actually read: the CIS page names the thresholds
//   hiPercentageThreshold / medPercentageThreshold and lists failed-tests.csv without
//   testDescription and remediation; the templates write hiPercentThreshold, medPercentThreshold
//   and nodeName,testIndex,testDescription,status,scored,remediation for both test files.
// - Array cells: the templates join lists with `join ";"`; the docs' Format column says
//   '";" separated list'.

const CALICO: Record<string, Record<string, string[] | 'document'>> = {
  'cis-benchmark': {
    'total-summary.csv': [
      'startTime',
      'endTime',
      'type',
      'hiPercentThreshold',
      'medPercentThreshold',
      'hiNodeCount',
      'medNodeCount',
      'lowNodeCount',
    ],
    'node-summary.csv': ['node', 'version', 'status', 'testsPassing', 'testsFailing', 'testsUnknown', 'testsTotal'],
    'failed-tests.csv': ['nodeName', 'testIndex', 'testDescription', 'status', 'scored', 'remediation'],
    'all-tests.csv': ['nodeName', 'testIndex', 'testDescription', 'status', 'scored', 'remediation'],
  },
  inventory: {
    'summary.csv': [
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
    ],
    'endpoints.csv': ['endpoint', 'ingressProtected', 'egressProtected', 'envoyEnabled', 'appliedPolicies', 'services'],
    'namespaces.csv': ['namespace', 'ingressProtected', 'egressProtected', 'envoyEnabled'],
    'services.csv': ['service', 'ingressProtected', 'envoyEnabled'],
  },
  'policy-audit': {
    'summary.csv': [
      'startTime',
      'endTime',
      'endpointSelector',
      'namespaceNames',
      'namespaceSelector',
      'serviceAccountNames',
      'serviceAccountSelectors',
      'numCreatedPolicies',
      'numModifiedPolicies',
      'numDeletedPolicies',
    ],
    'events.json': 'document',
    'events.yaml': 'document',
  },
};

const def = (reportType: string, extra = ''): ReportDefinition =>
  parseReportsYaml(
    `apiVersion: projectcalico.org/v3\nkind: GlobalReport\nmetadata: {name: r}\nspec:\n  reportType: ${reportType}\n${extra}`,
    'test',
  )[0] as ReportDefinition;
const INTERVAL = { start: '2026-11-20T00:00:00.000Z', end: '2026-11-21T00:00:00.000Z' };
const SCOPE = `  endpoints:
    selector: "app == 'web'"
    namespaces: {names: [shop, payments], selector: "projectcalico.org/name == 'shop'"}
    serviceAccounts: {names: [web, api], selector: "projectcalico.org/name == 'web'"}
`;

const outputs = {
  'cis-benchmark': cisBenchmarkReport(
    def('cis-benchmark'),
    [{ node: 'n1', kubeletVersion: 'v1.32.1', report: reportOf('n1', { '1.1.1': 'PASS', '1.1.2': 'FAIL' }) }],
    INTERVAL,
  ),
  inventory: inventoryReport(
    def('inventory', SCOPE),
    {
      pods: [
        {
          metadata: { name: 'web-1', namespace: 'shop', labels: { app: 'web' } },
          spec: { serviceAccountName: 'web', containers: [{ name: 'web' }] },
        },
      ],
      namespaces: [{ metadata: { name: 'shop', labels: { tier: 'pci' } } }],
      serviceAccounts: [],
      services: [
        { metadata: { name: 'web', namespace: 'shop' }, spec: { selector: { app: 'web' } } },
        { metadata: { name: 'all', namespace: 'shop' }, spec: { selector: { app: 'web' } } },
      ],
      networkPolicies: [],
      calicoPolicies: [],
    },
    INTERVAL,
  ),
  'policy-audit': policyAuditReport(def('policy-audit', SCOPE), [], [], INTERVAL),
};

for (const [type, files] of Object.entries(CALICO)) {
  t.test(`${type}: every file of Calico's reference, its columns first and in order`, async (t) => {
    const out = outputs[type as keyof typeof outputs];
    const names = [...Object.keys(out.files), ...documentFileNames(out.documents)];
    for (const [file, columns] of Object.entries(files)) {
      t.ok(names.includes(file), `${file} is written`);
      if (columns === 'document') continue;
      const header = out.files[file]?.header ?? [];
      t.same(header.slice(0, columns.length), columns, `${file}: Calico's columns, in Calico's order`);
      for (const extra of header.slice(columns.length))
        t.notOk(columns.includes(extra), `${file}: Verdict's ${extra} does not repeat one of Calico's`);
    }
  });
}

t.test('array cells are joined with ";" as the reference says', async (t) => {
  const inv = outputs.inventory.files;
  const summary = toCsv(inv['summary.csv']!.header, inv['summary.csv']!.rows).split('\r\n')[1];
  t.equal(
    summary,
    "2026-11-20T00:00:00Z,2026-11-21T00:00:00Z,app == 'web',shop;payments,projectcalico.org/name == 'shop',web;api,projectcalico.org/name == 'web',1,0,0,1,0,0,1,2",
    'namespaceNames and serviceAccountNames; times as RFC 3339 (dateRfc3339)',
  );
  t.equal(
    toCsv(inv['endpoints.csv']!.header, inv['endpoints.csv']!.rows).split('\r\n')[1],
    'shop/web-1,false,false,false,,shop/all;shop/web,shop,web',
    'appliedPolicies (none) and services',
  );
  const audit = outputs['policy-audit'].files['summary.csv']!;
  t.equal(
    toCsv(audit.header, audit.rows).split('\r\n')[1],
    "2026-11-20T00:00:00Z,2026-11-21T00:00:00Z,app == 'web',shop;payments,projectcalico.org/name == 'shop',web;api,projectcalico.org/name == 'web',0,0,0",
  );
});
