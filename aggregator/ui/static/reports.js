// Reports: every GlobalReport the reader may see, with its schedule and last runs; a report's runs; a run with its
// summary, charts, verification and a download button for every file.
import { api, ApiError, download, explain } from './api.js';
import { barChart } from './charts.js';
import { badge, card, fmtTime, h, table } from './dom.js';

const runHref = (report, id) => `#/reports/${encodeURIComponent(report)}/runs/${id}`;
const failure = (title, err) =>
  h('div', {}, h('h1', {}, title), h('p', { class: 'error', role: 'alert' }, explain(err)));

export async function renderReports() {
  let data;
  try {
    data = await api('/api/v1/reports');
  } catch (err) {
    return failure('Reports', err);
  }
  const rows = data.items.map((r) => {
    const st = r.status;
    const last = st.lastSuccessfulReportJobs.at(-1);
    const lastFailed = st.lastFailedReportJobs.at(-1);
    return [
      h('a', { href: `#/reports/${encodeURIComponent(r.name)}` }, r.name),
      r.reportType,
      r.schedule ?? 'on demand only',
      r.suspend ? badge('suspended') : st.activeReportJobs.length > 0 ? badge('running') : badge('active'),
      last ? h('a', { href: runHref(r.name, last.id) }, fmtTime(last.finishedAt)) : '—',
      lastFailed ? h('a', { href: runHref(r.name, lastFailed.id) }, fmtTime(lastFailed.finishedAt)) : '—',
    ];
  });
  return h(
    'div',
    {},
    h('h1', {}, 'Reports'),
    table(null, ['Report', 'Type', 'Schedule', 'Status', 'Last success', 'Last failure'], rows, {
      'data-testid': 'reports-table',
    }),
    data.invalid.length > 0
      ? card(
          'Invalid reports',
          table(
            null,
            ['Report', 'From', 'Why'],
            data.invalid.map((i) => [i.name, i.origin, i.error]),
          ),
        )
      : null,
  );
}

export async function renderReport([name]) {
  let runs;
  try {
    runs = await api(`/api/v1/reports/${encodeURIComponent(name)}/runs`, { limit: 100 });
  } catch (err) {
    return failure(name, err);
  }
  return h(
    'div',
    {},
    h('p', {}, h('a', { href: '#/reports' }, '← All reports')),
    h('h1', {}, name),
    table(
      `The runs of ${name}, newest first`,
      ['Run', 'Interval', 'Trigger', 'Status', 'Attempts', 'Finished', 'Error'],
      runs.items.map((r) => [
        h('a', { href: runHref(name, r.id) }, r.id.slice(0, 8)),
        `${fmtTime(r.start)} → ${fmtTime(r.end)}`,
        r.trigger,
        badge(r.status),
        String(r.attempts),
        fmtTime(r.finishedAt),
        r.error ?? '',
      ]),
      { 'data-testid': 'runs-table' },
    ),
  );
}

/** Charts a person would rather look at than read, per report type; other types get none. */
function charts(type, s) {
  if (!s) return [];
  if (type === 'cis-benchmark')
    return [
      barChart('Nodes per band', [
        { label: 'High', value: s.highCount, kind: 'high' },
        { label: 'Medium', value: s.medCount, kind: 'medium' },
        { label: 'Low', value: s.lowCount, kind: 'low' },
      ]),
      barChart('Scored checks', [
        { label: 'Pass', value: s.pass, kind: 'pass' },
        { label: 'Fail', value: s.fail, kind: 'fail' },
        { label: 'Skip', value: s.skip, kind: 'skip' },
      ]),
    ];
  if (type === 'network-access')
    return [
      barChart('Endpoints, ingress', [
        { label: 'Protected', value: s.endpointsNumIngressProtected, kind: 'pass' },
        { label: 'Unprotected', value: s.endpointsNumIngressUnprotected, kind: 'fail' },
      ]),
      barChart('Endpoints, egress', [
        { label: 'Protected', value: s.endpointsNumEgressProtected, kind: 'pass' },
        { label: 'Unprotected', value: s.endpointsNumEgressUnprotected, kind: 'fail' },
      ]),
    ];
  if (type === 'policy-audit')
    return [
      barChart('Policy changes', [
        { label: 'Created', value: s.numCreatedPolicies, kind: 'pass' },
        { label: 'Modified', value: s.numModifiedPolicies, kind: 'medium' },
        { label: 'Deleted', value: s.numDeletedPolicies, kind: 'fail' },
      ]),
    ];
  return [];
}

const ISO_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/;
const show = (v) => (typeof v === 'string' && ISO_TIME.test(v) ? fmtTime(v) : showValue(v));
const showValue = (v) =>
  Array.isArray(v) ? v.join(', ') || '—' : typeof v === 'object' && v ? JSON.stringify(v) : String(v);

export async function renderRun([name, id]) {
  let run;
  try {
    run = await api(`/api/v1/reports/${encodeURIComponent(name)}/runs/${encodeURIComponent(id)}`);
  } catch (err) {
    return failure(`${name} run`, err);
  }
  const result = run.result;
  // Every file of the run: its CSV tables (?format=csv), its documents (events.json and .yaml, ?file=), and the run.
  const files = result
    ? [
        ...Object.keys(result.files ?? {}).map((f) => [f, `format=csv&file=${encodeURIComponent(f)}`]),
        ...Object.keys(result.documents ?? {}).flatMap((d) =>
          ['json', 'yaml'].map((ext) => [`${d}.${ext}`, `file=${encodeURIComponent(`${d}.${ext}`)}`]),
        ),
      ]
    : [];
  const summary = result?.summary ?? null;
  const status = h('p', { class: 'muted', role: 'status', 'data-testid': 'download-status' });
  const save = (path, file) => async () => {
    status.textContent = `Downloading ${file}…`;
    try {
      status.textContent = `Saved ${await download(path, file)}.`;
    } catch (err) {
      status.textContent = explain(err);
    }
  };
  const base = `/api/v1/reports/${encodeURIComponent(name)}/runs/${encodeURIComponent(id)}`;
  return h(
    'div',
    {},
    h('p', {}, h('a', { href: `#/reports/${encodeURIComponent(name)}` }, `← Runs of ${name}`)),
    h('h1', {}, `${name}: run ${id.slice(0, 8)}`),
    h(
      'div',
      { class: 'grid' },
      card(
        'Run',
        h(
          'dl',
          {},
          [
            ['Status', badge(run.status)],
            ['Report type', run.reportType],
            ['Interval', `${fmtTime(run.start)} → ${fmtTime(run.end)}`],
            ['Trigger', run.trigger],
            ['Attempts', String(run.attempts)],
            ['Finished', fmtTime(run.finishedAt)],
            ['Error', run.error ?? '—'],
          ].map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]),
        ),
      ),
      card(
        'Summary',
        summary
          ? h(
              'dl',
              {},
              Object.entries(summary).map(([k, v]) => [h('dt', {}, k), h('dd', {}, show(v))]),
            )
          : h('p', { class: 'muted' }, 'No result yet.'),
      ),
      ...charts(run.reportType, summary).map((c) => card(c.querySelector('figcaption').textContent, c)),
      card(
        'Download',
        files.length === 0
          ? h('p', { class: 'muted' }, 'Files exist once the run has succeeded.')
          : h(
              'ul',
              { class: 'downloads' },
              files.map(([f, query]) =>
                h(
                  'li',
                  {},
                  h(
                    'button',
                    { type: 'button', 'data-file': f, onclick: save(`${base}?${query}`, f) },
                    `Download ${f}`,
                  ),
                ),
              ),
              h(
                'li',
                {},
                h(
                  'button',
                  { type: 'button', 'data-file': 'run.json', onclick: save(base, `${name}-${id}.json`) },
                  'Download the run as JSON',
                ),
              ),
            ),
        status,
      ),
      card('Verification', await verification(name, id, run.status, base, save)),
    ),
  );
}

/**
 * VERIFICATION: the run's digest chain and signature, from GET /api/v1/reports/:name/verify?run=ID where the
 * aggregator serves it (reports made verifiable by another change). An aggregator without that route answers 404
 * VERDICT_NOT_FOUND for the route itself, which reads here as "not available", never as a failed check.
 */
async function verification(name, id, status, base, save) {
  if (status !== 'succeeded') return h('p', { class: 'muted' }, 'A run is verified once it has succeeded.');
  try {
    const v = await api(`/api/v1/reports/${encodeURIComponent(name)}/verify`, { run: id });
    return [
      h(
        'p',
        { 'data-testid': 'verification' },
        v.ok ? badge('verified', 'pass') : badge('broken', 'fail'),
        ' ',
        v.ok ? 'Every digest in its chain matches.' : 'The chain does not hold:',
      ),
      v.ok
        ? null
        : h(
            'ul',
            {},
            v.chains.flatMap((c) => c.breaks.map((b) => h('li', {}, `${c.chain}: ${b.message}`))),
          ),
      v.signingPublicKey ? h('details', {}, h('summary', {}, 'Signing key'), h('pre', {}, v.signingPublicKey)) : null,
      h(
        'ul',
        { class: 'downloads' },
        ['manifest.json', ...(v.signingPublicKey ? ['manifest.json.sig'] : [])].map((f) =>
          h(
            'li',
            {},
            h('button', { type: 'button', 'data-file': f, onclick: save(`${base}/download/${f}`, f) }, `Download ${f}`),
          ),
        ),
      ),
    ];
  } catch (err) {
    if (err instanceof ApiError && err.status === 404)
      return h('p', { class: 'muted', 'data-testid': 'verification' }, 'This aggregator does not verify runs.');
    return h('p', { class: 'error' }, explain(err));
  }
}
