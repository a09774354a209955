import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { InternalNetworks } from '../../../agent/flows/normalize.js';
import { parseCalicoLine } from '../../../agent/flows/sources/calico.js';
import { packageRoot } from '../../../common/package-root.js';
import { startTestAggregator } from '../../fixtures/aggregator.js';
import { reportOf } from '../../fixtures/reports.js';
import { tempDir } from '../../fixtures/tmp.js';

// Reports end to end through HTTP: GlobalReports from --reports, on-demand runs,
// JSON and CSV downloads, static reader tokens with per-report grants, the
// audit webhook, policy-audit and tamper alerts.
const ADMIN = 'admin-token-0123456789abcdef';
const AUDITOR = 'auditor-token-0123456789abcdef';

const REPORTS = `apiVersion: projectcalico.org/v3
kind: GlobalReport
metadata: {name: weekly-cis}
spec:
  reportType: cis-benchmark
  schedule: "0 0 * * 0"
  cis: {highThreshold: 90, medThreshold: 40, includeUnscoredTests: false, numFailedTests: 2}
---
apiVersion: compliance.verdict.dev/v1
kind: GlobalReport
metadata: {name: shop-access}
spec:
  reportType: network-access
  endpoints:
    namespaces: {names: [shop]}
---
apiVersion: compliance.verdict.dev/v1
kind: GlobalReport
metadata: {name: policy-changes}
spec:
  reportType: policy-audit
---
apiVersion: compliance.verdict.dev/v1
kind: GlobalReport
metadata: {name: broken-schedule}
spec:
  reportType: inventory
  schedule: "every tuesday"
`;

async function setup(t: Test) {
  const dir = tempDir(t);
  mkdirSync(join(dir, 'reports'));
  writeFileSync(join(dir, 'reports', 'reports.yaml'), REPORTS);
  writeFileSync(
    join(dir, 'tokens.yaml'),
    `tokens:\n- {user: admin, token: ${ADMIN}, verbs: [get, list, create], reports: ["*"], resources: [globalreports, nodes, flows, auditevents]}\n- {user: auditor-a, token: ${AUDITOR}, verbs: [get, list], reports: [weekly-cis]}\n`,
  );
  const agg = await startTestAggregator(t, {
    reportsDir: join(dir, 'reports'),
    httpTokensFile: join(dir, 'tokens.yaml'),
    protectedNamespaces: ['payments'],
  });
  const call = async (method: string, path: string, token?: string, body?: unknown) => {
    const res = await fetch(`http://127.0.0.1:${agg.httpPort}${path}`, {
      method,
      headers: {
        ...(token ? { authorization: `Bearer ${token}` } : {}),
        ...(body ? { 'content-type': 'application/json' } : {}),
      },
      body: body ? JSON.stringify(body) : undefined,
    });
    const text = await res.text();
    let json: Record<string, unknown> = {};
    try {
      json = JSON.parse(text) as Record<string, unknown>;
    } catch {
      // CSV
    }
    return { status: res.status, json, text, headers: res.headers };
  };
  const runNow = async (name: string, start: string, end: string) => {
    const r = await call('POST', `/api/v1/reports/${name}/runs`, ADMIN, { start, end });
    t.equal(r.status, 202, `run ${name}`);
    await agg.scheduler.tick();
    await agg.scheduler.idle();
    return r.json.id as string;
  };
  return { agg, call, runNow };
}

t.test('GlobalReports load from --reports; an invalid one is listed with its reason and the others run', async (t) => {
  const { call } = await setup(t);
  const r = await call('GET', '/api/v1/reports', ADMIN);
  t.equal(r.status, 200);
  t.same(
    (r.json.items as { name: string }[]).map((i) => i.name),
    ['policy-changes', 'shop-access', 'weekly-cis'],
  );
  const invalid = r.json.invalid as { name: string; error: string }[];
  t.equal(invalid[0]?.name, 'broken-schedule');
  t.match(invalid[0]?.error, /spec\.schedule/);
  t.match((r.json.items as { status: unknown }[])[0]?.status, {
    lastScheduledReportJob: null,
    activeReportJobs: [],
    lastFailedReportJobs: [],
    lastSuccessfulReportJobs: [],
  });
  const metrics = await call('GET', '/metrics');
  t.match(
    metrics.text,
    /verdict_report_runs_total\{report="weekly-cis",result="failed"\} 0/,
    'report counters start at 0',
  );
  const next = /verdict_report_next_run_timestamp_seconds\{report="weekly-cis"\} (\d+)/.exec(metrics.text);
  t.ok(next, 'a scheduled report has its next run time');
  const due = new Date(Number(next?.[1]) * 1000);
  t.equal(due.getUTCDay(), 0, 'Sunday, as "0 0 * * 0" says');
  t.equal(`${due.getUTCHours()}:${due.getUTCMinutes()}`, '0:30', 'midnight plus the 30-minute start delay');
  t.notMatch(
    metrics.text,
    /verdict_report_next_run_timestamp_seconds\{report="shop-access"\}/,
    'an unscheduled report has none',
  );
});

t.test(
  'a cis-benchmark run: bands by the report thresholds, unscored tests left out, the N most failed, four CSV files, formula-safe',
  async (t) => {
    const { agg, call, runNow } = await setup(t);
    const hello = {
      role: 'worker' as const,
      labels: {},
      kubeletVersion: 'v1.32.1',
      kubernetesVersion: '',
      osImage: '',
      kernelVersion: '',
      architecture: '',
      agentVersion: '',
      bootId: 'b',
    };
    for (const n of ['n1', 'n2', 'n3']) await agg.store.recordHello({ name: n, ...hello }, 0);
    const at = '2026-11-20T10:00:00.000Z';
    await agg.store.recordBenchmarkRun(
      'n1',
      'b',
      1,
      reportOf(
        'n1',
        { '4.1.1': 'PASS', '4.1.2': 'PASS', '4.2.1': 'PASS', '4.2.4': 'FAIL' },
        { startedAt: at, unscored: ['4.2.4'] },
      ),
      1,
    );
    await agg.store.recordBenchmarkRun(
      'n2',
      'b',
      1,
      reportOf(
        'n2',
        { '4.1.1': 'PASS', '4.1.2': 'FAIL', '4.2.1': 'FAIL', '4.2.4': 'FAIL' },
        { startedAt: at, unscored: ['4.2.4'] },
      ),
      1,
    );
    const hostile = reportOf('n3', { '4.1.1': 'FAIL', '4.1.2': 'FAIL', '4.2.1': 'PASS' }, { startedAt: at });
    hostile.checks[0]!.actual = '=HYPERLINK("http://evil","x")';
    await agg.store.recordBenchmarkRun('n3', 'b', 1, hostile, 1);
    const id = await runNow('weekly-cis', '2026-11-19T00:00:00Z', '2026-11-21T00:00:00Z');
    const run = await call('GET', `/api/v1/reports/weekly-cis/runs/${id}`, ADMIN);
    t.equal(run.json.status, 'succeeded');
    const result = run.json.result as {
      summary: Record<string, unknown>;
      data: { mostFailedTests: { id: string; failedNodes: number }[] };
      evidence: { soc2: { criterion: string }[] };
    };
    t.match(result.summary, {
      nodes: 3,
      pass: 5,
      fail: 4,
      skip: 0,
      highCount: 1,
      medCount: 0,
      lowCount: 2,
      highThreshold: 90,
    });
    t.same(
      result.data.mostFailedTests.map((f) => [f.id, f.failedNodes]),
      [
        ['4.1.2', 2],
        ['4.1.1', 1],
      ],
      'numFailedTests: 2, unscored 4.2.4 left out',
    );
    t.ok(result.evidence.soc2.some((c) => c.criterion === 'CC6.1'));
    const nodes = await call('GET', `/api/v1/reports/weekly-cis/runs/${id}?format=csv&file=node-summary.csv`, ADMIN);
    t.equal(nodes.status, 200);
    t.match(nodes.headers.get('content-type'), /text\/csv/);
    t.match(nodes.headers.get('content-disposition'), /attachment; filename="weekly-cis-2026-11-21-node-summary\.csv"/);
    const lines = nodes.text.trim().split('\r\n');
    // Calico Enterprise's node-summary.csv columns (tigera/operator pkg/render/compliance.go), then Verdict's.
    t.equal(
      lines[0],
      'node,version,status,testsPassing,testsFailing,testsUnknown,testsTotal,notRatedReason,benchmark,benchmarkVersion,scorePercent,scannedAt',
    );
    t.match(lines[1], /^n1,v1\.32\.1,HIGH,3,0,0,3,,cis-1\.12,1\.12\.0,100,/);
    const all = await call('GET', `/api/v1/reports/weekly-cis/runs/${id}?format=csv&file=all-tests.csv`, ADMIN);
    t.match(all.text, /"'=HYPERLINK\(""http:\/\/evil"",""x""\)"/, 'a formula is defused and quoted per RFC 4180');
    const def = await call('GET', `/api/v1/reports/weekly-cis/runs/${id}?format=csv`, ADMIN);
    t.match(
      def.text,
      /^startTime,endTime,type,hiPercentThreshold,medPercentThreshold,hiNodeCount,medNodeCount,lowNodeCount,/,
      'the first file is the default',
    );
    const missing = await call('GET', `/api/v1/reports/weekly-cis/runs/${id}?format=csv&file=nope.csv`, ADMIN);
    t.equal(missing.status, 404);
    t.match(missing.json.message, /has no file "nope\.csv"; it has total-summary\.csv, node-summary\.csv/);
  },
);

t.test('a network-access run over the sample flows, scoped to one namespace', async (t) => {
  const { agg, call, runNow } = await setup(t);
  const internal = new InternalNetworks();
  const flows = readFileSync(join(packageRoot(), 'examples/flows/calico/flows.log'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .flatMap((l) => {
      const r = parseCalicoLine(l, internal);
      return r.kind === 'flow' ? [r.flow] : [];
    });
  await agg.store.recordHello(
    {
      name: 'w1',
      role: 'worker',
      labels: {},
      kubeletVersion: '',
      kubernetesVersion: '',
      osImage: '',
      kernelVersion: '',
      architecture: '',
      agentVersion: '',
      bootId: 'b',
    },
    0,
  );
  await agg.store.recordFlowBatch('w1', 'b', 1, flows, 1);
  const id = await runNow('shop-access', '2026-11-20T09:00:00Z', '2026-11-20T12:00:00Z');
  const run = await call('GET', `/api/v1/reports/shop-access/runs/${id}`, ADMIN);
  const result = run.json.result as { summary: Record<string, unknown>; data: { endpoints: { endpoint: string }[] } };
  t.same(
    result.data.endpoints.map((e) => e.endpoint),
    ['shop/cart', 'shop/checkout', 'shop/frontend'],
  );
  t.match(result.summary, {
    endpointsNumInScope: 3,
    endpointsNumIngressProtected: 3,
    endpointsNumEgressProtected: 1,
    endpointsNumEgressUnprotected: 2,
    endpointsNumIngressFromInternet: 1,
    endpointsNumEgressToInternet: 3,
    endpointsNumEgressToOtherNamespace: 2,
    namespaceNames: ['shop'],
  });
  const csv = await call('GET', `/api/v1/reports/shop-access/runs/${id}?format=csv&file=endpoints.csv`, ADMIN);
  // Calico's columns first (endpoint, the six protection and reach flags, envoyEnabled, ...), Verdict's after them:
  // read each by its header so the test says which fact it checks.
  const [header, , , row] = csv.text.split('\r\n').map((l) => l.split(','));
  const cell = (name: string) => row![header!.indexOf(name)];
  t.same(
    [
      'endpoint',
      'ingressProtected',
      'egressProtected',
      'ingressFromInternet',
      'egressToInternet',
      'ingressFromOtherNamespace',
      'egressToOtherNamespace',
      'envoyEnabled',
    ].map(cell),
    ['shop/frontend', 'true', 'false', 'true', 'true', 'false', 'true', 'false'],
  );
  t.same(['namespace', 'kind', 'allowedIn', 'deniedIn', 'allowedOut', 'deniedOut'].map(cell), [
    'shop',
    'pod',
    '245',
    '2',
    '236',
    '0',
  ]);
  t.same(
    header!.slice(0, 8),
    [
      'endpoint',
      'ingressProtected',
      'egressProtected',
      'ingressFromInternet',
      'egressToInternet',
      'ingressFromOtherNamespace',
      'egressToOtherNamespace',
      'envoyEnabled',
    ],
    "Calico's columns first",
  );
});

t.test(
  'a reader with get on one report reads it and not another; listing and creating need their own verbs',
  async (t) => {
    const { call, runNow } = await setup(t);
    const id = await runNow('weekly-cis', '2026-11-19T00:00:00Z', '2026-11-20T00:00:00Z');
    await runNow('shop-access', '2026-11-19T00:00:00Z', '2026-11-20T00:00:00Z');
    t.equal((await call('GET', '/api/v1/reports/weekly-cis/runs', AUDITOR)).status, 200);
    t.equal((await call('GET', `/api/v1/reports/weekly-cis/runs/${id}`, AUDITOR)).status, 200);
    const other = await call('GET', '/api/v1/reports/shop-access/runs', AUDITOR);
    t.equal(other.status, 403);
    t.match(other.json, { error: 'VERDICT_FORBIDDEN', message: /auditor-a may not get globalreports "shop-access"/ });
    t.equal(
      (
        await call('POST', '/api/v1/reports/weekly-cis/runs', AUDITOR, {
          start: '2026-11-19T00:00:00Z',
          end: '2026-11-20T00:00:00Z',
        })
      ).status,
      403,
    );
    t.equal((await call('GET', '/api/v1/reports/weekly-cis/runs')).status, 401);
    t.equal((await call('GET', '/api/v1/reports/weekly-cis/runs', 'wrong-token-0123456789')).status, 401);
    t.equal((await call('GET', '/api/v1/nodes', AUDITOR)).status, 403, 'node data needs its own grant');
    t.equal(
      (
        await call('POST', '/api/v1/reports/nope/runs', ADMIN, {
          start: '2026-11-19T00:00:00Z',
          end: '2026-11-20T00:00:00Z',
        })
      ).status,
      404,
    );
    t.equal(
      (
        await call('POST', '/api/v1/reports/weekly-cis/runs', ADMIN, {
          start: '2026-11-20T00:00:00Z',
          end: '2026-11-19T00:00:00Z',
        })
      ).status,
      400,
    );
    t.equal((await call('POST', '/api/v1/reports/weekly-cis/runs', ADMIN, { start: 'yesterday' })).status, 400);
  },
);

t.test(
  'an on-demand run covers at most 366 days, from 2000 on and not ahead of now; anything else is a 400 saying what to change',
  async (t) => {
    const { call } = await setup(t);
    const day = 86_400_000;
    const today = Math.floor(Date.now() / day) * day;
    const iso = (ms: number) => new Date(ms).toISOString();
    const refused: [string, { start: string; end: string }, RegExp][] = [
      ['10,000 years', { start: '0001-01-01T00:00:00Z', end: '9999-12-31T23:59:59Z' }, /before 2000-01-01/],
      [
        '367 days',
        { start: iso(today - 367 * day), end: iso(today) },
        /spans 367 days; an on-demand run covers at most 366, so split it/,
      ],
      ['the year 1999', { start: '1999-06-01T00:00:00Z', end: '1999-07-01T00:00:00Z' }, /before 2000-01-01/],
      ['next year', { start: iso(today + 300 * day), end: iso(today + 301 * day) }, /more than a day in the future/],
      ['far future', { start: '9999-12-30T00:00:00Z', end: '9999-12-31T00:00:00Z' }, /more than a day in the future/],
      ['backwards', { start: '2026-11-20T00:00:00Z', end: '2026-11-19T00:00:00Z' }, /must be before end/],
      ['empty', { start: '2026-11-20T00:00:00Z', end: '2026-11-20T00:00:00Z' }, /must be before end/],
    ];
    for (const [name, body, message] of refused) {
      const r = await call('POST', '/api/v1/reports/weekly-cis/runs', ADMIN, body);
      t.equal(r.status, 400, name);
      t.match(r.json, { error: 'VERDICT_BAD_REQUEST', message }, name);
    }
    const year = await call('POST', '/api/v1/reports/weekly-cis/runs', ADMIN, {
      start: iso(today - 366 * day),
      end: iso(today),
    });
    t.equal(year.status, 202, 'a leap year up to today is accepted');
    t.equal(
      (await call('POST', '/api/v1/reports/weekly-cis/runs', ADMIN, { start: iso(today), end: iso(today + day) }))
        .status,
      202,
      'today until midnight is accepted',
    );
  },
);

const auditEvent = (id: string, verb: string, ts: string, spec: unknown, name = 'allow-api') => ({
  kind: 'Event',
  apiVersion: 'audit.k8s.io/v1',
  level: 'RequestResponse',
  auditID: id,
  stage: 'ResponseComplete',
  requestURI: `/apis/networking.k8s.io/v1/namespaces/payments/networkpolicies/${name}`,
  verb,
  user: { username: 'alice@example.com', groups: ['system:authenticated'] },
  sourceIPs: ['10.0.0.7'],
  objectRef: {
    resource: 'networkpolicies',
    namespace: 'payments',
    name,
    apiGroup: 'networking.k8s.io',
    apiVersion: 'v1',
  },
  responseStatus: { metadata: {}, code: verb === 'create' ? 201 : 200 },
  ...(verb === 'delete'
    ? {}
    : {
        requestObject: { kind: 'NetworkPolicy', spec },
        responseObject: { kind: 'NetworkPolicy', metadata: { name }, spec },
      }),
  requestReceivedTimestamp: ts,
  stageTimestamp: ts,
});

t.test(
  'the audit webhook feeds policy-audit reports (who, when, the diff) and tamper alerts for protected namespaces',
  async (t) => {
    const { call, runNow, agg } = await setup(t);
    const events = {
      kind: 'EventList',
      apiVersion: 'audit.k8s.io/v1',
      items: [
        auditEvent('a1', 'create', '2026-11-20T10:01:00.000000Z', {
          podSelector: { matchLabels: { app: 'api' } },
          policyTypes: ['Ingress'],
        }),
        auditEvent('a2', 'update', '2026-11-20T10:02:00.000000Z', {
          podSelector: { matchLabels: { app: 'api' } },
          policyTypes: ['Ingress', 'Egress'],
        }),
        auditEvent('a3', 'delete', '2026-11-20T10:03:00.000000Z', undefined),
        { ...auditEvent('a4', 'get', '2026-11-20T10:04:00Z', {}), stage: 'ResponseComplete' },
        { ...auditEvent('a5', 'create', '2026-11-20T10:05:00Z', {}), stage: 'RequestReceived' },
      ],
    };
    const posted = await call('POST', '/api/v1/audit/webhook', ADMIN, events);
    t.same(posted.json, { received: 5, stored: 3, ignored: 2, refused: 0, truncated: 0 });
    t.same(
      (await call('POST', '/api/v1/audit/webhook', ADMIN, events)).json,
      { received: 5, stored: 0, ignored: 2, refused: 0, truncated: 0 },
      'redelivered events are stored once',
    );
    t.equal((await call('POST', '/api/v1/audit/webhook', AUDITOR, events)).status, 403);
    const id = await runNow('policy-changes', '2026-11-20T10:00:00Z', '2026-11-20T11:00:00Z');
    const result = (await call('GET', `/api/v1/reports/policy-changes/runs/${id}`, ADMIN)).json.result as {
      summary: Record<string, unknown>;
      data: { changes: { verb: string; user: string; diff: { path: string; before: unknown; after: unknown }[] }[] };
    };
    t.match(result.summary, { numCreatedPolicies: 1, numModifiedPolicies: 1, numDeletedPolicies: 1 });
    t.same(
      result.data.changes.map((c) => [c.verb, c.user]),
      [
        ['create', 'alice@example.com'],
        ['update', 'alice@example.com'],
        ['delete', 'alice@example.com'],
      ],
    );
    t.same(result.data.changes[1]?.diff, [
      { path: 'spec.policyTypes', before: ['Ingress'], after: ['Ingress', 'Egress'] },
    ]);
    // Calico's events.json and events.yaml: the audit events of the three changes, as the API server sent them.
    const json = await call('GET', `/api/v1/reports/policy-changes/runs/${id}?file=events.json`, ADMIN);
    t.equal(json.status, 200);
    t.match(json.headers.get('content-type'), /^application\/json/);
    t.match(json.headers.get('content-disposition'), /filename="policy-changes-2026-11-20-events\.json"/);
    const sent = JSON.parse(json.text) as { auditID: string; verb: string; user: { username: string } }[];
    t.same(
      sent.map((e) => [e.auditID, e.verb, e.user.username]),
      [
        ['a1', 'create', 'alice@example.com'],
        ['a2', 'update', 'alice@example.com'],
        ['a3', 'delete', 'alice@example.com'],
      ],
    );
    const yaml = await call('GET', `/api/v1/reports/policy-changes/runs/${id}?file=events.yaml`, ADMIN);
    t.equal(yaml.status, 200);
    t.match(yaml.headers.get('content-type'), /^application\/yaml/);
    t.match(yaml.text, /^- kind: Event\n {2}apiVersion: audit\.k8s\.io\/v1\n/m);
    const none = await call('GET', `/api/v1/reports/policy-changes/runs/${id}?file=changes.json`, ADMIN);
    t.equal(none.status, 404);
    t.match(none.json.message, /it has summary\.csv, events\.csv, events\.json, events\.yaml$/);
    const alerts = await call('GET', '/api/v1/tamper-alerts?from=2026-11-20T00:00:00Z&to=2026-11-21T00:00:00Z', ADMIN);
    t.equal((alerts.json.items as unknown[]).length, 3);
    t.match((alerts.json.items as { reason: string }[])[0]?.reason, /namespace payments is protected/);
    const metrics = await (await fetch(`http://127.0.0.1:${agg.httpPort}/metrics`)).text();
    t.match(metrics, /verdict_policy_tamper_alerts_total\{kind="networkpolicies"\} 3/);
    t.match(metrics, /verdict_policy_changes_total\{kind="networkpolicies"\} 3/);
    t.match(metrics, /verdict_report_runs_total\{report="policy-changes",result="succeeded"\} 1/);
  },
);

t.test(
  'POST runs: past 10 waiting on-demand runs of a report, 429 with what to do; other reports unaffected',
  async (t) => {
    const { agg, call } = await setup(t);
    // Ten on-demand runs not due before tomorrow: queued, none started.
    const tomorrow = Date.now() + 86_400_000;
    for (let i = 0; i < 10; i++)
      await agg.store.createReportRun({
        id: `00000000-0000-4000-8000-0000000001${String(i).padStart(2, '0')}`,
        report: 'weekly-cis',
        reportType: 'cis-benchmark',
        trigger: 'on-demand',
        status: 'queued',
        attempts: 0,
        intervalStartMs: tomorrow - 2 * 86_400_000,
        intervalEndMs: tomorrow - 86_400_000,
        notBeforeMs: tomorrow,
        createdMs: Date.now(),
        inputs: { apiVersion: 'projectcalico.org/v3', spec: { reportType: 'cis-benchmark' }, origin: 'test' },
      });
    const body = { start: '2026-11-19T00:00:00Z', end: '2026-11-20T00:00:00Z' };
    const refused = await call('POST', '/api/v1/reports/weekly-cis/runs', ADMIN, body);
    t.equal(refused.status, 429);
    t.match(refused.json, {
      error: 'VERDICT_TOO_MANY_WAITING_RUNS',
      message:
        /^10 on-demand runs of report weekly-cis are queued or running \(at most 10\); wait for one to finish \(GET \/api\/v1\/reports\/weekly-cis\/runs\)/,
    });
    t.equal((await agg.store.reportRuns('weekly-cis', 100)).length, 10, 'nothing stored for the refused request');
    t.equal((await call('POST', '/api/v1/reports/policy-changes/runs', ADMIN, body)).status, 202, 'another report');
    t.equal((await call('GET', '/healthz')).status, 200, 'and the aggregator serves on');
  },
);
