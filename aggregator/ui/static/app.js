// The dashboard's shell: the token form, the hash router (#/nodes/worker-1, #/reports/weekly-cis/runs/ID) and the
// page frame. Every page is a module exporting render(params, query) → a Node; data comes from the JSON API.
import { token } from './api.js';
import { currentRoute } from './router.js';
import { h } from './dom.js';
import { renderOverview } from './overview.js';
import { renderNodes, renderNode } from './nodes.js';
import { renderReports, renderReport, renderRun } from './reports.js';
import { renderNetwork } from './network.js';
import { renderAudit } from './audit.js';

/** Routes: a pattern over the hash path, the nav entry it belongs to, and the page. */
const ROUTES = [
  [/^\/?$/, 'overview', renderOverview],
  [/^\/nodes$/, 'nodes', renderNodes],
  [/^\/nodes\/([^/]+)$/, 'nodes', renderNode],
  [/^\/reports$/, 'reports', renderReports],
  [/^\/reports\/([^/]+)$/, 'reports', renderReport],
  [/^\/reports\/([^/]+)\/runs\/([^/]+)$/, 'reports', renderRun],
  [/^\/network$/, 'network', renderNetwork],
  [/^\/audit$/, 'audit', renderAudit],
];

const main = document.getElementById('main');
let rendering = 0;

async function render() {
  const mine = ++rendering;
  const { path, query } = currentRoute();
  const match = ROUTES.map(([re, nav, page]) => ({ m: re.exec(path), nav, page })).find((r) => r.m);
  for (const a of document.querySelectorAll('nav a'))
    if (match && a.dataset.page === match.nav) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  main.setAttribute('aria-busy', 'true');
  let content;
  try {
    content = match
      ? await match.page(match.m.slice(1).map(decodeURIComponent), query)
      : h('p', {}, 'No such page. ', h('a', { href: '#/' }, 'Back to the overview'));
  } catch (err) {
    content = h('p', { class: 'error', role: 'alert' }, `This page failed: ${err.message}`);
  }
  if (mine !== rendering) return; // a later navigation won
  main.replaceChildren(content);
  main.setAttribute('aria-busy', 'false');
  document.title = `${main.querySelector('h1')?.textContent ?? 'Verdict'} · Verdict compliance`;
  // One short announcement per view for screen readers, not the whole page read out again.
  document.getElementById('announce').textContent = `${document.title} loaded`;
}

function showTokenState() {
  document.getElementById('token-state').textContent = token.get()
    ? 'A token is in use for this tab.'
    : 'No token: only this machine can read.';
}

document.getElementById('token-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const input = document.getElementById('token-input');
  token.set(input.value.trim());
  input.value = '';
  showTokenState();
  void render();
});
document.getElementById('token-forget').addEventListener('click', () => {
  token.set('');
  showTokenState();
  void render();
});

// A new page gets the focus on its content, so the next Tab starts there; a filter or sort change on the same page
// leaves the focus where the reader is.
let lastPath = currentRoute().path;
window.addEventListener('hashchange', () => {
  const { path } = currentRoute();
  const moved = path !== lastPath;
  lastPath = path;
  void render().then(() => moved && main.focus({ preventScroll: true }));
});
// The skip link focuses the content without touching the hash (the router owns it).
document.querySelector('.skip').addEventListener('click', (e) => {
  e.preventDefault();
  main.focus();
});
showTokenState();
void render();
