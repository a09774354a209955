// Network access: endpoints and namespaces with their evidence (allowed and denied connections, the policies that
// decided), filtered by namespace and finding, paged by the API (limit/continue).
import { api, ApiError, explain } from './api.js';
import { badge, card, h, table } from './dom.js';
import { pager, select } from './nodes.js';
import { navigate } from './router.js';

const PAGE_SIZE = 50;
const INTERVALS = [
  ['1h', 'last hour', 3_600_000],
  ['24h', 'last day', 86_400_000],
  ['7d', 'last 7 days', 7 * 86_400_000],
  ['30d', 'last 30 days', 30 * 86_400_000],
];
const FLAGS = [
  ['', 'any'],
  ['ingressUnprotected', 'ingress unprotected'],
  ['egressUnprotected', 'egress unprotected'],
  ['ingressFromInternet', 'reached from the internet'],
  ['egressToInternet', 'reaches the internet'],
  ['ingressFromOtherNamespaces', 'reached from other namespaces'],
  ['egressToOtherNamespaces', 'reaches other namespaces'],
];

const yes = (v) =>
  v === null ? h('span', { class: 'muted' }, 'not observed') : v ? badge('yes', 'pass') : badge('no', 'fail');
const row = (attrs, cells) =>
  h(
    'tr',
    attrs,
    cells.map((c) => h('td', {}, c)),
  );
const flagCell = (v) => (v ? badge('yes', 'medium') : '');

export async function renderNetwork(_params, query) {
  const q = Object.fromEntries(query);
  const range = INTERVALS.find(([k]) => k === q.range) ?? INTERVALS[0];
  // The continue tokens of the pages before this one, so Previous works without the API keeping state.
  const trail = q.trail ? q.trail.split('.') : [];
  const view = { namespace: q.namespace, flag: q.flag, range: range[0] };
  const to = new Date();
  // The interval is fixed while paging (a continue token belongs to one interval): it rides in the hash.
  const toIso = q.to ?? to.toISOString();
  const fromIso = new Date(Date.parse(toIso) - range[2]).toISOString();
  let data;
  try {
    data = await api('/api/v1/network-access', {
      from: fromIso,
      to: toIso,
      namespace: view.namespace,
      flag: view.flag,
      limit: PAGE_SIZE,
      continue: trail.at(-1),
    });
  } catch (err) {
    return h('div', {}, h('h1', {}, 'Network access'), h('p', { class: 'error', role: 'alert' }, explain(err)));
  }
  const page = trail.length + 1;
  const go = (p) =>
    navigate('/network', {
      ...view,
      to: toIso,
      trail: p > page ? [...trail, data.continue].join('.') : trail.slice(0, p - 1).join('.'),
    });
  const namespaces = data.namespaces.map((n) => [
    h('a', { href: `#/network?namespace=${encodeURIComponent(n.namespace)}&range=${range[0]}` }, n.namespace),
    String(n.endpoints),
    `${n.ingressProtected} / ${n.endpoints}`,
    `${n.egressProtected} / ${n.endpoints}`,
    `${n.allowedIn} / ${n.deniedIn}`,
    `${n.allowedOut} / ${n.deniedOut}`,
    n.allowedPercent === null ? '—' : `${n.allowedPercent}%`,
  ]);
  const endpoints = data.endpoints.map((e) =>
    row({ 'data-endpoint': e.endpoint }, [
      h('span', {}, e.endpoint, h('div', { class: 'muted' }, e.kind)),
      yes(e.ingressProtected),
      yes(e.egressProtected),
      flagCell(e.ingressFromInternet),
      flagCell(e.egressToInternet),
      flagCell(e.ingressFromOtherNamespaces),
      flagCell(e.egressToOtherNamespaces),
      `${e.allowedIn} / ${e.deniedIn}`,
      `${e.allowedOut} / ${e.deniedOut}`,
      [...e.policies, ...e.stagedPolicies.map((p) => `${p} (staged)`)].join(', ') || '—',
    ]),
  );
  return h(
    'div',
    {},
    h('h1', {}, 'Network access'),
    filters(view, data.namespaces),
    h(
      'p',
      { class: 'muted' },
      `From ${data.from} to ${data.to}. Evidence is what the dataplane decided (flow verdicts).`,
    ),
    card(
      'Namespaces',
      table(
        null,
        [
          'Namespace',
          'Endpoints',
          'Ingress protected',
          'Egress protected',
          'In allowed / denied',
          'Out allowed / denied',
          'Allowed',
        ],
        namespaces,
      ),
    ),
    card(
      'Endpoints',
      table(
        null,
        [
          'Endpoint',
          'Ingress protected',
          'Egress protected',
          'From internet',
          'To internet',
          'From other namespaces',
          'To other namespaces',
          'In allowed / denied',
          'Out allowed / denied',
          'Policies',
        ],
        endpoints,
        { 'data-testid': 'endpoints-table' },
      ),
      pager(page, data.continue ? page + 1 : page, go),
    ),
    card('Configured vs observed', await configuredVsObserved({ from: fromIso, to: toIso, namespace: view.namespace })),
  );
}

function filters(view, namespaces) {
  return h(
    'form',
    {
      class: 'filters',
      role: 'search',
      onsubmit: (e) => {
        e.preventDefault();
        const f = new FormData(e.target);
        navigate('/network', { namespace: f.get('namespace'), flag: f.get('flag'), range: f.get('range') });
      },
    },
    h(
      'label',
      {},
      'Namespace ',
      select('namespace', view.namespace, [['', 'all'], ...namespaces.map((n) => [n.namespace, n.namespace])]),
    ),
    h('label', {}, 'Finding ', select('flag', view.flag, FLAGS)),
    h(
      'label',
      {},
      'Interval ',
      select(
        'range',
        view.range,
        INTERVALS.map(([k, label]) => [k, label]),
      ),
    ),
    h('button', { type: 'submit' }, 'Filter'),
  );
}

/**
 * Where configuration and traffic disagree (GET /api/v1/network-access/findings): an endpoint protected by policy yet
 * allowed without one, internet traffic no rule allows, traffic between namespaces no rule allows. An aggregator
 * without that route answers 404 for it, shown as "not available".
 */
async function configuredVsObserved(params) {
  let data;
  try {
    data = await api('/api/v1/network-access/findings', params);
  } catch (err) {
    if (err instanceof ApiError && err.status === 404)
      return h('p', { class: 'muted' }, 'This aggregator does not compare configured policies with observed traffic.');
    return h('p', { class: 'error' }, explain(err));
  }
  const problems = data.configuration.problems;
  return [
    h(
      'p',
      { class: 'muted' },
      `Configuration from ${data.configuration.source}`,
      problems.length ? `; ${problems.length} policy documents could not be read` : '',
      '.',
    ),
    table(
      null,
      ['Endpoint', 'Direction', 'Finding', 'Detail', 'Connections'],
      data.items.map((f) => [f.endpoint, f.direction, badge(f.kind, 'fail'), f.detail, String(f.connections)]),
      { 'data-testid': 'findings-table' },
    ),
  ];
}
