import { readdirSync } from 'node:fs';
import Fastify from 'fastify';
import t from 'tap';
import type { App } from '../../aggregator/http/deps.js';
import { registerUiRoutes, UI_DIR } from '../../aggregator/ui/index.js';
import { startTestAggregator } from '../fixtures/aggregator.js';

// How the aggregator serves the dashboard (no browser needed): / and /ui send a browser to /ui/, every file of
// aggregator/ui/static is served with its type and a same-origin-only CSP, and nothing else is.

t.test('the dashboard files are served with their types and a CSP that allows this origin only', async (t) => {
  const agg = await startTestAggregator(t);
  const get = (path: string) => fetch(`http://127.0.0.1:${agg.httpPort}${path}`, { redirect: 'manual' });
  for (const path of ['/', '/ui']) {
    const res = await get(path);
    t.equal(res.status, 302, `${path} redirects`);
    t.equal(res.headers.get('location'), '/ui/', 'to /ui/');
  }
  const page = await get('/ui/');
  t.equal(page.status, 200);
  t.match(page.headers.get('content-type'), /^text\/html/);
  t.match(page.headers.get('content-security-policy'), /default-src 'none'; script-src 'self'/);
  t.notMatch(page.headers.get('content-security-policy'), /unsafe|https?:/, 'no inline script, eval or other origin');
  const html = await page.text();
  t.notMatch(html, /https?:\/\//, 'the page loads nothing from elsewhere');
  const files = readdirSync(UI_DIR);
  t.ok(files.includes('app.js') && files.includes('style.css'));
  for (const f of files) {
    const res = await get(`/ui/${f}`);
    t.equal(res.status, 200, `${f} is served`);
    const text = await res.text();
    if (f.endsWith('.js')) {
      t.match(res.headers.get('content-type'), /^text\/javascript/, `${f} as a module script`);
      t.notMatch(text, /https?:\/\/(?!www\.w3\.org\/2000\/svg)/, `${f} reaches no other origin`);
      t.notMatch(
        text,
        /\.(innerHTML|outerHTML|insertAdjacentHTML)\b|\beval\(|new Function/,
        `${f} parses no markup or code from strings`,
      );
    }
  }
  for (const bad of ['/ui/nope.js', '/ui/..%2fpackage.json', '/ui/index.ts']) {
    const res = await get(bad);
    t.ok([400, 404].includes(res.status), `${bad} is not served (${res.status})`);
    t.same(Object.keys((await res.json()) as object), ['error', 'message'], 'an ErrorReply');
  }
});

t.test('without the page files the API still starts, and /ui/ says what is missing', async (t) => {
  const app = Fastify().withTypeProvider() as unknown as App;
  app.addHook('onRoute', () => undefined);
  registerUiRoutes(app, '/nonexistent/verdict-ui');
  const res = await app.inject({ method: 'GET', url: '/ui/' });
  t.equal(res.statusCode, 404);
  t.match(res.json(), { error: 'VERDICT_NOT_FOUND', message: /files are not installed/ });
  await app.close();
});
