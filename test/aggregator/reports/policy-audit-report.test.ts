import t from 'tap';
import { parseReportsYaml, type ReportDefinition } from '../../../aggregator/reports/globalreport.js';
import { documentFile } from '../../../aggregator/reports/report-file.js';
import { policyAuditReport } from '../../../aggregator/reports/types/policy-audit.js';
import type { StoredAuditEvent } from '../../../aggregator/store/index.js';
import { toCsv } from '../../../common/csv.js';

// The policy-audit generator over a handful of stored audit events: which are
// policy changes, who made them, the tier, and the fields changed against the
// version before (from earlier events in `history` when the interval has none).
// Expectations worked out by hand below.

const INTERVAL = { start: '2026-11-20T00:00:00.000Z', end: '2026-11-21T00:00:00.000Z' };
const T0 = Date.parse(INTERVAL.start);
const at = (minutes: number) => new Date(T0 + minutes * 60_000).toISOString();

function auditDef(endpoints = ''): ReportDefinition {
  const yaml = `apiVersion: compliance.verdict.dev/v1
kind: GlobalReport
metadata: {name: audit}
spec:
  reportType: policy-audit
${endpoints}`;
  return parseReportsYaml(yaml, 'test')[0] as ReportDefinition;
}

function ev(
  auditId: string,
  minutes: number,
  verb: string,
  where: { namespace: string; name: string; resource?: string; apiGroup?: string },
  user: string,
  spec?: unknown,
  sourceIPs?: string[],
): StoredAuditEvent {
  return {
    auditId,
    stageMs: T0 + minutes * 60_000,
    verb,
    resource: where.resource ?? 'networkpolicies',
    apiGroup: where.apiGroup ?? 'networking.k8s.io',
    namespace: where.namespace,
    name: where.name,
    username: user,
    event: {
      ...(sourceIPs ? { sourceIPs } : {}),
      ...(spec === undefined ? {} : { responseObject: { kind: 'NetworkPolicy', spec } }),
    },
  };
}

const web = { namespace: 'shop', name: 'allow-web' };
const lock = { namespace: 'payments', name: 'lock' };
const calicoGlobal = {
  namespace: '',
  name: 'security.block',
  resource: 'globalnetworkpolicies',
  apiGroup: 'projectcalico.org',
};
const calicoTeam = { namespace: 'shop', name: 'team.allow', apiGroup: 'projectcalico.org' };

const history = [ev('h1', -60, 'create', lock, 'carol', { a: 1 })];
const events = [
  ev('a1', 1, 'create', web, 'alice', { podSelector: { app: 'web' }, policyTypes: ['Ingress'] }, ['10.0.0.1']),
  ev('a2', 2, 'patch', web, 'bob', { podSelector: { app: 'web' }, policyTypes: ['Ingress', 'Egress'] }, [
    '10.0.0.2',
    '10.0.0.3',
  ]),
  ev('a3', 3, 'delete', web, '', undefined, ['10.0.0.1']),
  ev('a4', 4, 'update', lock, 'carol', { a: 2, b: true }),
  ev('a5', 5, 'create', calicoGlobal, 'alice', { tier: 'security', order: 1 }),
  ev('a6', 6, 'get', web, 'alice', { podSelector: {} }),
  ev('a7', 7, 'create', { namespace: 'shop', name: 'web-1', resource: 'pods', apiGroup: '' }, 'alice', {}),
  ev('a8', 8, 'create', calicoTeam, 'dave', { selector: 'all()' }),
  ev('watch:u9:17:', 9, 'update', { namespace: 'payments', name: 'lock2' }, '', { x: 1 }),
];

const HEADER = [
  'time',
  'verb',
  'kind',
  'namespace',
  'name',
  'tier',
  'user',
  'sourceIPs',
  'source',
  'auditId',
  'changedFields',
];
// A first version is one change of the whole spec; a delete too. No user: "unknown".
const A1 = [
  at(1),
  'create',
  'networkpolicies',
  'shop',
  'allow-web',
  '',
  'alice',
  ['10.0.0.1'],
  'audit',
  'a1',
  ['spec'],
];
const A2 = [
  at(2),
  'patch',
  'networkpolicies',
  'shop',
  'allow-web',
  '',
  'bob',
  ['10.0.0.2', '10.0.0.3'],
  'audit',
  'a2',
  ['spec.policyTypes'],
];
const A3 = [
  at(3),
  'delete',
  'networkpolicies',
  'shop',
  'allow-web',
  '',
  'unknown',
  ['10.0.0.1'],
  'audit',
  'a3',
  ['spec'],
];
// Diffed against the version in history: a changed, b added.
const A4 = [
  at(4),
  'update',
  'networkpolicies',
  'payments',
  'lock',
  '',
  'carol',
  [],
  'audit',
  'a4',
  ['spec.a', 'spec.b'],
];
// Calico: the tier from spec.tier, else the name's prefix.
const A5 = [
  at(5),
  'create',
  'globalnetworkpolicies',
  '',
  'security.block',
  'security',
  'alice',
  [],
  'audit',
  'a5',
  ['spec'],
];
const A8 = [at(8), 'create', 'networkpolicies', 'shop', 'team.allow', 'team', 'dave', [], 'audit', 'a8', ['spec']];
// A version the aggregator's own watch saw, with no audit event beside it.
const A9 = [
  at(9),
  'update',
  'networkpolicies',
  'payments',
  'lock2',
  '',
  'unknown',
  [],
  'watch',
  'watch:u9:17:',
  ['spec'],
];

t.test(
  'every policy change: who, when, tier, source and changed fields; reads and other resources left out',
  async (t) => {
    const out = policyAuditReport(auditDef(), events, history, INTERVAL);
    const summary = {
      startTime: INTERVAL.start,
      endTime: INTERVAL.end,
      namespaceNames: [],
      numCreatedPolicies: 3,
      numModifiedPolicies: 3,
      numDeletedPolicies: 1,
    };
    t.same(out.summary, summary);
    t.same(Object.keys(out.files), ['summary.csv', 'events.csv']);
    // Calico Enterprise's summary.csv columns
    // (tigera/operator pkg/render/compliance.go, complianceGlobalReportPolicyAudit).
    t.same(out.files['summary.csv'], {
      header: [
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
      rows: [['2026-11-20T00:00:00Z', '2026-11-21T00:00:00Z', '', [], '', [], '', 3, 3, 1]],
    });
    // events.json / events.yaml: the stored events of the reported changes, as written (a6 is a read, a7 a pod).
    const reported = ['a1', 'a2', 'a3', 'a4', 'a5', 'a8', 'watch:u9:17:'];
    t.same(out.documents, { events: events.filter((e) => reported.includes(e.auditId)).map((e) => e.event) });
    const json = documentFile(out.documents, 'events.json');
    t.equal(json?.contentType, 'application/json; charset=utf-8');
    t.same(JSON.parse(json?.body ?? ''), out.documents?.events);
    const yaml = documentFile(out.documents, 'events.yaml');
    t.equal(yaml?.contentType, 'application/yaml; charset=utf-8');
    t.match(yaml?.body, /^- sourceIPs:\n {4}- 10\.0\.0\.1\n {2}responseObject:\n {4}kind: NetworkPolicy\n/);
    t.equal(documentFile(out.documents, 'changes.json'), undefined, 'only the documents the run has');
    t.same(out.files['events.csv'], { header: HEADER, rows: [A1, A2, A3, A4, A5, A8, A9] });
    t.equal(
      toCsv(out.files['events.csv']!.header, out.files['events.csv']!.rows).split('\r\n')[2],
      `${at(2)},patch,networkpolicies,shop,allow-web,,bob,10.0.0.2;10.0.0.3,audit,a2,spec.policyTypes`,
    );
    t.same(out.data.changes[1]?.diff, [
      { path: 'spec.policyTypes', before: ['Ingress'], after: ['Ingress', 'Egress'] },
    ]);
    t.same(out.data.changes[3]?.diff, [
      { path: 'spec.a', before: 1, after: 2 },
      { path: 'spec.b', before: undefined, after: true },
    ]);
    t.equal(out.data.changes[2]?.user, '', 'the data keeps the empty user; only the CSV says unknown');
  },
);

t.test('scoped to namespaces: changes elsewhere drop out, cluster-wide ones stay', async (t) => {
  const out = policyAuditReport(auditDef('  endpoints:\n    namespaces: {names: [shop]}\n'), events, history, INTERVAL);
  t.same(out.summary, {
    startTime: INTERVAL.start,
    endTime: INTERVAL.end,
    namespaceNames: ['shop'],
    numCreatedPolicies: 3,
    numModifiedPolicies: 1,
    numDeletedPolicies: 1,
  });
  t.same(out.files['events.csv']!.rows, [A1, A2, A3, A5, A8]);
  t.same(out.files['summary.csv']!.rows[0]!.slice(2, 10), ['', ['shop'], '', [], '', 3, 1, 1]);
  t.same((out.documents?.events as unknown[]).length, 5, 'events.json holds the changes in scope only');
});

t.test('without the history, the first change in the interval is the whole spec', async (t) => {
  const out = policyAuditReport(auditDef(), [events[3]!], [], INTERVAL);
  t.same(out.files['events.csv']!.rows, [[...A4.slice(0, 10), ['spec']]]);
});
