// Overview: the cluster score, nodes per band, the most failed tests, agents connected, the last report runs and
// the open findings. Each card reads its own route, so a reader allowed only some of them sees those and a reason
// for the rest.
import { api, explain } from './api.js';
import { barChart } from './charts.js';
import { badge, card, fmtPercent, fmtTime, h, table } from './dom.js';

/** A card whose content comes from a promise; an API refusal becomes a line in the card, not a broken page. */
async function cardOf(title, promise, fill) {
  try {
    return card(title, ...[fill(await promise)].flat());
  } catch (err) {
    return card(title, h('p', { class: 'error' }, explain(err)));
  }
}

const settled = (p) =>
  p.then(
    (v) => ({ ok: true, v }),
    (err) => ({ ok: false, err }),
  );

export async function renderOverview() {
  const summary = api('/api/v1/cis/summary');
  const all = api('/api/v1/nodes', { limit: 1 });
  const connected = api('/api/v1/nodes', { connected: true, limit: 1 });
  const reports = api('/api/v1/reports');
  const since = new Date(Date.now() - 7 * 86_400_000).toISOString();
  const [alerts, exposed, unprotected, mismatches] = await Promise.all([
    settled(api('/api/v1/tamper-alerts', { from: since })),
    settled(api('/api/v1/network-access', { flag: 'ingressFromInternet', limit: 1000 })),
    settled(api('/api/v1/network-access', { flag: 'ingressUnprotected', limit: 1000 })),
    settled(api('/api/v1/network-access/findings')),
  ]);
  const cards = await Promise.all([
    cardOf('Cluster score', summary, (s) => [
      h('p', { class: 'big', 'data-testid': 'cluster-score' }, fmtPercent(s.scorePercent)),
      h('p', { class: 'muted' }, `${s.pass} passed, ${s.fail} failed, ${s.skip} skipped over ${s.nodes} nodes`),
    ]),
    cardOf('Nodes per band', summary, (s) => [
      barChart('Nodes per band (high ≥ 100%, medium ≥ 50%)', [
        { label: 'High', value: s.bands.high, kind: 'high' },
        { label: 'Medium', value: s.bands.medium, kind: 'medium' },
        { label: 'Low', value: s.bands.low, kind: 'low' },
      ]),
      h('p', {}, h('a', { href: '#/nodes?rating=low' }, 'The low-band nodes')),
    ]),
    cardOf('Agents connected', Promise.all([all, connected]), ([a, c]) => [
      h('p', { class: 'big', 'data-testid': 'agents-connected' }, `${c.total} of ${a.total}`),
      h('p', {}, h('a', { href: '#/nodes?connected=false' }, 'Nodes whose agent is not connected')),
    ]),
    cardOf('Most failed tests', summary, (s) =>
      table(
        null,
        ['Check', 'Title', 'Failing nodes'],
        s.mostFailed.slice(0, 10).map((m) => [m.id, m.title, String(m.failedNodes)]),
      ),
    ),
    cardOf('Last report runs', reports, (r) => lastRuns(r.items)),
    card('Open findings', findings(alerts, exposed, unprotected, mismatches)),
  ]);
  return h('div', {}, h('h1', {}, 'Overview'), h('div', { class: 'grid' }, cards));
}

function lastRuns(items) {
  const runs = [];
  for (const rep of items) {
    const st = rep.status;
    for (const j of [...st.activeReportJobs, ...st.lastSuccessfulReportJobs, ...st.lastFailedReportJobs])
      runs.push({ report: rep.name, job: j, state: jobState(st, j) });
  }
  runs.sort((a, b) => (b.job.finishedAt ?? b.job.createdAt).localeCompare(a.job.finishedAt ?? a.job.createdAt));
  return table(
    null,
    ['Report', 'Interval end', 'Status', 'Finished'],
    runs
      .slice(0, 8)
      .map((r) => [
        h('a', { href: `#/reports/${encodeURIComponent(r.report)}/runs/${r.job.id}` }, r.report),
        fmtTime(r.job.end),
        badge(r.state),
        fmtTime(r.job.finishedAt),
      ]),
  );
}

const jobState = (st, j) =>
  st.activeReportJobs.includes(j) ? 'running' : st.lastFailedReportJobs.includes(j) ? 'failed' : 'succeeded';

function findings(alerts, exposed, unprotected, mismatches) {
  const line = (r, count, [one, many], href) => {
    if (!r.ok) return h('li', { class: 'error' }, `${many}: ${explain(r.err)}`);
    const n = count(r.v);
    return h('li', {}, h('a', { href }, `${n} ${n === 1 ? one : many}`));
  };
  return [
    h(
      'ul',
      { class: 'findings' },
      line(
        alerts,
        (v) => v.items.length,
        ['tamper alert in the last 7 days', 'tamper alerts in the last 7 days'],
        '#/audit?tamper=1',
      ),
      line(
        exposed,
        (v) => v.endpoints.length,
        ['endpoint reached from the internet (last hour)', 'endpoints reached from the internet (last hour)'],
        '#/network?flag=ingressFromInternet',
      ),
      line(
        unprotected,
        (v) => v.endpoints.length,
        ['endpoint with unprotected ingress (last hour)', 'endpoints with unprotected ingress (last hour)'],
        '#/network?flag=ingressUnprotected',
      ),
      line(
        mismatches,
        (v) => v.items.length,
        [
          'place where configured policy and observed traffic disagree (last hour)',
          'places where configured policy and observed traffic disagree (last hour)',
        ],
        '#/network',
      ),
    ),
  ];
}
