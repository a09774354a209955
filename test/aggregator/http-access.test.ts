import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RouteOptions } from 'fastify';
import t from 'tap';
import { requireAccess } from '../../aggregator/http/access.js';
import { startTestAggregator } from '../fixtures/aggregator.js';
import { servedRoutes } from '../fixtures/routes.js';
import { tempDir } from '../fixtures/tmp.js';

// HTTP authorization is one onRequest hook deciding on what each route declares
// (config.access): every served route either is public or is refused to a caller
// without credentials, in the one ErrorReply shape, before its input is read.
const TOKEN = 'nothing-granted-0123456789abcdef';
const PUBLIC = ['GET /healthz', 'GET /readyz', 'GET /metrics', 'GET /docs', 'GET /docs/json'];
// The dashboard's static pages hold no data (they read the API with the reader's token), so they are public too.
PUBLIC.push('GET /', 'GET /ui', 'GET /ui/', 'GET /ui/:file');

t.test(
  'every route is public or refused without credentials, as a 401 ErrorReply, before its input is read',
  async (t) => {
    const dir = tempDir(t);
    mkdirSync(join(dir, 'reports'));
    writeFileSync(
      join(dir, 'reports', 'weekly-cis.yaml'),
      'apiVersion: compliance.verdict.dev/v1\nkind: GlobalReport\nmetadata: {name: weekly-cis}\nspec:\n  reportType: cis-benchmark\n',
    );
    writeFileSync(join(dir, 'tokens.yaml'), `tokens:\n- {user: nobody, token: ${TOKEN}, verbs: [], resources: []}\n`);
    const agg = await startTestAggregator(t, {
      reportsDir: join(dir, 'reports'),
      httpTokensFile: join(dir, 'tokens.yaml'),
    });
    const routes = servedRoutes(agg.app.printRoutes({ commonPrefix: false }));
    t.ok(routes.includes('POST /api/v1/audit/webhook') && routes.includes('GET /api/v1/reports/:name/runs/:id'));
    for (const route of routes) {
      const [method, path] = route.split(' ') as [string, string];
      const url = path.replace(':name', 'weekly-cis').replace(':id', '00000000-0000-0000-0000-000000000000');
      for (const token of [undefined, TOKEN]) {
        // A body that is not JSON and an unknown query parameter: refused for access first, never a 400 or 415.
        const res = await fetch(`http://127.0.0.1:${agg.httpPort}${url}?unknown=1`, {
          method,
          headers: {
            ...(token ? { authorization: `Bearer ${token}` } : {}),
            ...(method === 'POST' ? { 'content-type': 'text/plain' } : {}),
          },
          body: method === 'POST' ? 'not json' : undefined,
        });
        const text = await res.text();
        if (PUBLIC.includes(route)) {
          t.notOk([401, 403].includes(res.status), `${route} is public`);
          continue;
        }
        const status = token ? 403 : 401;
        t.equal(res.status, status, `${route} ${token ? 'without the grant' : 'without credentials'}`);
        t.same(Object.keys(JSON.parse(text) as object), ['error', 'message'], `${route}: the ErrorReply shape`);
        t.match(JSON.parse(text), { error: token ? 'VERDICT_FORBIDDEN' : 'VERDICT_UNAUTHENTICATED', message: /\S/ });
        if (token && route.includes('/reports/:name'))
          t.match(
            JSON.parse(text),
            { message: /globalreports "weekly-cis"/ },
            `${route}: the report name is asked about`,
          );
      }
    }
  },
);

t.test('a route that declares no access is a startup error', async (t) => {
  const route = { method: 'GET', url: '/api/v1/new', handler: async () => ({}) } as RouteOptions;
  t.throws(() => requireAccess(route), /route GET \/api\/v1\/new declares no config\.access/);
  t.doesNotThrow(() => requireAccess({ ...route, config: { access: 'public' } }));
});
