// A small DOM builder: elements and text nodes only, never innerHTML, so no value from the API is ever parsed as
// markup (node names, policy specs and audit users come from the cluster).

const SVG_NS = 'http://www.w3.org/2000/svg';

function build(el, attrs, children) {
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.setAttribute('class', Array.isArray(v) ? v.filter(Boolean).join(' ') : v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** h('a', {href: '#/nodes'}, 'Nodes'): an HTML element with attributes (on* are listeners) and children. */
export const h = (tag, attrs, ...children) => build(document.createElement(tag), attrs, children);

/** The same for SVG elements (charts). */
export const s = (tag, attrs, ...children) => build(document.createElementNS(SVG_NS, tag), attrs, children);

/** A table from column headers and rows of cells (each a node or text). */
export function table(caption, headers, rows, attrs = {}) {
  return h(
    'div',
    { class: 'table-wrap' },
    h(
      'table',
      attrs,
      caption ? h('caption', {}, caption) : null,
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          headers.map((c) => (c instanceof Node ? c : h('th', { scope: 'col' }, c))),
        ),
      ),
      h(
        'tbody',
        {},
        rows.length === 0
          ? h('tr', {}, h('td', { colspan: headers.length, class: 'empty' }, 'Nothing to show.'))
          : rows.map((r) =>
              r instanceof Node
                ? r
                : h(
                    'tr',
                    {},
                    r.map((c) => h('td', {}, c)),
                  ),
            ),
      ),
    ),
  );
}

/** A section with a heading, as every card on every page is. */
export const card = (title, ...children) =>
  h('section', { class: 'card', 'aria-label': title }, h('h2', {}, title), ...children);

/** A badge for a status word (PASS, FAIL, succeeded, high...), coloured by its class. */
export const badge = (text, kind = String(text).toLowerCase()) => h('span', { class: ['badge', `b-${kind}`] }, text);

export const fmtTime = (iso) =>
  iso
    ? new Date(iso)
        .toISOString()
        .replace('T', ' ')
        .replace(/\.\d+Z$/, 'Z')
    : '—';
export const fmtPercent = (n) => (n === null || n === undefined ? '—' : `${Math.round(n * 10) / 10}%`);
