// Policy audit: every change to network controls (who, when, what, the diff), newest first, with tamper alerts
// (changes in protected namespaces or tiers) highlighted. From GET /api/v1/tamper-alerts?all=true.
import { api, explain } from './api.js';
import { badge, fmtTime, h } from './dom.js';
import { select } from './nodes.js';
import { navigate } from './router.js';

const DAY = 86_400_000;
const RANGES = [
  ['7d', 'last 7 days', 7 * DAY],
  ['30d', 'last 30 days', 30 * DAY],
  ['93d', 'last 93 days', 93 * DAY],
];

const value = (v) => (v === undefined ? h('span', { class: 'muted' }, '(none)') : h('code', {}, JSON.stringify(v)));

export async function renderAudit(_params, query) {
  const range = RANGES.find(([k]) => k === query.get('range')) ?? RANGES[0];
  const tamperOnly = query.get('tamper') === '1';
  let data;
  try {
    data = await api('/api/v1/tamper-alerts', {
      from: new Date(Date.now() - range[2]).toISOString(),
      all: !tamperOnly,
    });
  } catch (err) {
    return h('div', {}, h('h1', {}, 'Policy audit'), h('p', { class: 'error', role: 'alert' }, explain(err)));
  }
  const items = [...data.items].sort((a, b) => b.time.localeCompare(a.time));
  const alerts = items.filter((c) => c.reason).length;
  return h(
    'div',
    {},
    h('h1', {}, 'Policy audit'),
    h(
      'form',
      {
        class: 'filters',
        onsubmit: (e) => {
          e.preventDefault();
          const f = new FormData(e.target);
          navigate('/audit', { range: f.get('range'), tamper: f.get('tamper') ? '1' : '' });
        },
      },
      h(
        'label',
        {},
        'Interval ',
        select(
          'range',
          range[0],
          RANGES.map(([k, l]) => [k, l]),
        ),
      ),
      h(
        'label',
        {},
        h('input', { type: 'checkbox', name: 'tamper', value: '1', checked: tamperOnly }),
        ' Tamper alerts only',
      ),
      h('button', { type: 'submit' }, 'Show'),
    ),
    h(
      'p',
      { class: 'muted', role: 'status' },
      `${items.length} change${items.length === 1 ? '' : 's'}, ${alerts} tamper alert${alerts === 1 ? '' : 's'}. Protected: namespaces ${data.protected.namespaces.join(', ') || 'none'}; tiers ${data.protected.tiers.join(', ') || 'none'}.`,
    ),
    h(
      'ol',
      { class: 'timeline', 'data-testid': 'audit-timeline' },
      items.length === 0
        ? h('li', { class: 'muted' }, 'No network-policy changes in this interval.')
        : items.map(change),
    ),
  );
}

function change(c) {
  const where = `${c.kind} ${c.namespace ? `${c.namespace}/` : ''}${c.name}`;
  return h(
    'li',
    { class: ['change', c.reason ? 'tamper' : null], 'data-audit-id': c.auditId },
    h(
      'div',
      { class: 'change-head' },
      h('time', { datetime: c.time }, fmtTime(c.time)),
      ' ',
      badge(c.verb, 'neutral'),
      ' ',
      h('strong', {}, where),
      c.tier ? h('span', { class: 'muted' }, ` tier ${c.tier}`) : null,
      ' by ',
      h('span', { class: 'user' }, c.user || (c.source === 'watch' ? 'unknown (seen by Verdict’s watch)' : 'unknown')),
      c.sourceIPs.length ? h('span', { class: 'muted' }, ` from ${c.sourceIPs.join(', ')}`) : null,
    ),
    c.reason ? h('p', { class: 'alert', role: 'note' }, badge('tamper alert', 'fail'), ' ', c.reason) : null,
    h(
      'details',
      {},
      h('summary', {}, `Diff: ${c.diff.length} field${c.diff.length === 1 ? '' : 's'}`),
      h(
        'table',
        { class: 'diff' },
        h(
          'thead',
          {},
          h(
            'tr',
            {},
            h('th', { scope: 'col' }, 'Field'),
            h('th', { scope: 'col' }, 'Before'),
            h('th', { scope: 'col' }, 'After'),
          ),
        ),
        h(
          'tbody',
          {},
          c.diff.map((d) =>
            h(
              'tr',
              {},
              h('td', {}, h('code', {}, d.path)),
              h('td', { class: 'before' }, value(d.before)),
              h('td', { class: 'after' }, value(d.after)),
            ),
          ),
        ),
      ),
    ),
  );
}
