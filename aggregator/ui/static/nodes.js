// Nodes: the table is filtered, sorted and paged by the API (GET /api/v1/nodes?name=&rating=&connected=&sort=&order=
// &limit=&offset=), so 5,000 nodes cost one page of rows; a node's page shows its latest scan grouped by section and
// its score history.
import { api, explain } from './api.js';
import { navigate } from './router.js';
import { scoreLine } from './charts.js';
import { badge, card, fmtPercent, fmtTime, h, table } from './dom.js';

const PAGE_SIZE = 50;
const COLUMNS = [
  ['name', 'Node'],
  [null, 'Role'],
  ['score', 'Score'],
  [null, 'Rating'],
  ['fail', 'Failed'],
  [null, 'Benchmark'],
  [null, 'Agent'],
  ['lastSeen', 'Last seen'],
];

export async function renderNodes(_params, query) {
  const q = Object.fromEntries(query);
  const page = Math.max(1, Number(q.page) || 1);
  const view = { name: q.name, rating: q.rating, connected: q.connected, sort: q.sort ?? 'name', order: q.order };
  const go = (changes) => navigate('/nodes', { ...view, page, ...changes });
  let data;
  try {
    data = await api('/api/v1/nodes', { ...view, limit: PAGE_SIZE, offset: (page - 1) * PAGE_SIZE });
  } catch (err) {
    return h('div', {}, h('h1', {}, 'Nodes'), h('p', { class: 'error', role: 'alert' }, explain(err)));
  }
  const pages = Math.max(1, Math.ceil(data.total / PAGE_SIZE));
  const header = COLUMNS.map(([key, label]) => {
    if (!key) return h('th', { scope: 'col' }, label);
    const active = view.sort === key;
    const order = active ? (view.order === 'desc' ? 'descending' : 'ascending') : 'none';
    return h(
      'th',
      { scope: 'col', 'aria-sort': order },
      h(
        'button',
        {
          type: 'button',
          class: 'sort',
          onclick: () => go({ sort: key, order: active && view.order !== 'desc' ? 'desc' : 'asc', page: 1 }),
        },
        label,
        active ? (view.order === 'desc' ? ' ▼' : ' ▲') : '',
      ),
    );
  });
  const rows = data.items.map((n) => [
    h('a', { href: `#/nodes/${encodeURIComponent(n.name)}` }, n.name),
    n.role,
    fmtPercent(n.scorePercent),
    n.rating ? badge(n.rating) : '—',
    String(n.fail),
    n.benchmark ?? '—',
    n.connected ? badge('connected') : badge('disconnected'),
    fmtTime(n.lastSeen),
  ]);
  return h(
    'div',
    {},
    h('h1', {}, 'Nodes'),
    filters(view, go),
    h('p', { class: 'muted', role: 'status' }, `${data.total} nodes match.`),
    table(null, header, rows, { 'data-testid': 'nodes-table' }),
    pager(page, pages, (p) => go({ page: p })),
  );
}

function filters(view, go) {
  const form = h(
    'form',
    {
      class: 'filters',
      role: 'search',
      onsubmit: (e) => {
        e.preventDefault();
        const f = new FormData(e.target);
        go({ name: f.get('name'), rating: f.get('rating'), connected: f.get('connected'), page: 1 });
      },
    },
    h('label', {}, 'Name contains ', h('input', { name: 'name', type: 'search', value: view.name ?? '' })),
    h(
      'label',
      {},
      'Rating ',
      select('rating', view.rating, [
        ['', 'any'],
        ['high', 'high'],
        ['medium', 'medium'],
        ['low', 'low'],
        ['none', 'no scan'],
      ]),
    ),
    h(
      'label',
      {},
      'Agent ',
      select('connected', view.connected, [
        ['', 'any'],
        ['true', 'connected'],
        ['false', 'not connected'],
      ]),
    ),
    h('button', { type: 'submit' }, 'Filter'),
  );
  return form;
}

export function select(name, value, options) {
  return h(
    'select',
    { name },
    options.map(([v, label]) => h('option', { value: v, selected: (value ?? '') === v }, label)),
  );
}

export function pager(page, pages, go) {
  return h(
    'nav',
    { class: 'pager', 'aria-label': 'Pages of the table' },
    h('button', { type: 'button', disabled: page <= 1, onclick: () => go(page - 1) }, '← Previous'),
    h('span', {}, `Page ${page} of ${pages}`),
    h('button', { type: 'button', disabled: page >= pages, onclick: () => go(page + 1) }, 'Next →'),
  );
}

/** A node's score over its latest scans (the API walks them back; an agent sends a scan only when it changed). */
async function history(name) {
  const { items } = await api(`/api/v1/nodes/${encodeURIComponent(name)}/history`, { limit: 20 });
  return items.map((i) => ({ t: Date.parse(i.startedAt), v: i.scorePercent })).reverse();
}
export async function renderNode([name], query) {
  let report;
  try {
    report = await api(`/api/v1/nodes/${encodeURIComponent(name)}/cis`);
  } catch (err) {
    return h('div', {}, h('h1', {}, name), h('p', { class: 'error', role: 'alert' }, explain(err)));
  }
  const status = query.get('status') ?? '';
  const shown = report.checks.filter((c) => !status || c.status === status);
  const sections = new Map();
  for (const c of shown) sections.set(c.section, [...(sections.get(c.section) ?? []), c]);
  const sum = report.summary;
  return h(
    'div',
    {},
    h('p', {}, h('a', { href: '#/nodes' }, '← All nodes')),
    h('h1', {}, name),
    h(
      'div',
      { class: 'grid' },
      card(
        'Latest scan',
        h('p', { class: 'big', 'data-testid': 'node-score' }, fmtPercent(sum.scorePercent)),
        h('p', {}, `${sum.pass} passed, ${sum.fail} failed, ${sum.skip} skipped (scored checks)`),
        h(
          'p',
          { class: 'muted' },
          `${report.benchmark.id} ${report.benchmark.version}, ${report.nodeRole}, scanned `,
          fmtTime(report.startedAt),
        ),
      ),
      card('Score history', scoreLine(`Score of ${name} over its scans`, await history(name))),
    ),
    h(
      'nav',
      { class: 'filters', 'aria-label': 'Checks by status' },
      ['', 'FAIL', 'PASS', 'SKIP'].map((st) =>
        h(
          'a',
          {
            href: `#/nodes/${encodeURIComponent(name)}${st ? `?status=${st}` : ''}`,
            'aria-current': st === status ? 'true' : null,
          },
          st || 'All checks',
        ),
      ),
    ),
    [...sections].map(([section, checks]) => checkSection(section, checks)),
  );
}

function checkSection(section, checks) {
  const failed = checks.filter((c) => c.status === 'FAIL').length;
  return h(
    'section',
    { class: 'card', 'aria-label': `Section ${section}` },
    h('h2', {}, `Section ${section}`, h('span', { class: 'muted' }, ` · ${checks.length} checks, ${failed} failed`)),
    table(
      null,
      ['Check', 'Status', 'Expected', 'Actual', 'Evidence', 'Remediation'],
      checks.map((c) =>
        h(
          'tr',
          { class: c.status === 'FAIL' ? 'row-fail' : null, 'data-check': c.id },
          h(
            'td',
            {},
            h('strong', {}, c.id),
            ' ',
            c.title,
            c.scored ? '' : h('span', { class: 'muted' }, ' (not scored)'),
          ),
          h('td', {}, badge(c.status), c.skipReason ? h('div', { class: 'muted' }, c.skipReason) : null),
          h('td', {}, h('code', {}, c.expected)),
          h('td', {}, h('code', {}, c.actual)),
          h('td', {}, c.evidence),
          h(
            'td',
            {},
            c.status === 'FAIL' ? h('details', {}, h('summary', {}, 'How to fix'), h('p', {}, c.remediation)) : '',
          ),
        ),
      ),
    ),
  );
}
