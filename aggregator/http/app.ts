import Fastify, { LogController, type FastifyError, type FastifyReply, type FastifyRequest } from 'fastify';
import swagger from '@fastify/swagger';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Type from 'typebox';
import { VERDICT_VERSION } from '../../common/version.js';
import { registerCisRoutes } from './cis.js';
import { registerFlowRoutes } from './flows.js';
import { registerReportRoutes } from './reports.js';
import { registerAuditRoutes } from './audit.js';
import { registerHealthRoutes } from './health.js';
import { registerNodeRoutes } from './nodes.js';
import { registerUiRoutes } from '../ui/index.js';
import { authorizeRequest, requireAccess } from './access.js';
import { answerClientError, errorAnswer, MAX_PARAM_LENGTH } from './errors.js';
import type { App, HttpDeps } from './deps.js';

// Re-exported: main.ts and others have always found these on app.ts.
export type { App, HttpDeps } from './deps.js';

/**
 * How long a request (headers and body) may take to arrive: a 16 MiB webhook body needs well under a second on a
 * cluster network. Node answers a late one 408 (checked every 30 s) and closes the connection.
 */
const REQUEST_TIMEOUT_MS = 60_000;

/**
 * The aggregator's HTTP API: a thin adapter over compute/ and store/. Every
 * route declares its query, params and reply schemas; bad input is a 400 with
 * a stable code and a message, never a crash.
 */
export async function buildHttpApp(deps: HttpDeps): Promise<App> {
  const app = Fastify({
    loggerInstance: deps.log,
    // No per-request log lines: probes and scrapes would fill the log. fastify
    // 5.12 takes this through a LogController; its top-level
    // disableRequestLogging option is deprecated (FSTDEP023).
    logController: new LogController({ disableRequestLogging: true }),
    ajv: { customOptions: { coerceTypes: true, removeAdditional: false } },
    routerOptions: { maxParamLength: MAX_PARAM_LENGTH },
    // fastify answers these itself, before any route or error handler, unless told otherwise.
    frameworkErrors: (err, req, reply) => {
      const { status, body } = errorAnswer(err, req);
      // fastify types this reply with the route's unknown generics; no route has been matched, so no schema applies.
      void (reply as FastifyReply).status(status).send(body);
    },
    clientErrorHandler: answerClientError,
    // fastify turns Node's request timeout off; without one a client trickling a body holds its connection for ever.
    requestTimeout: REQUEST_TIMEOUT_MS,
  }).withTypeProvider<TypeBoxTypeProvider>();
  await app.register(swagger, {
    openapi: { info: { title: 'Verdict aggregator API', version: VERDICT_VERSION }, servers: [] },
  });
  app.setErrorHandler((err: FastifyError, req, reply) => {
    // A store that cannot answer (PostgreSQL down, disk full) is an outage, not a bug: 503 on every route, so clients
    // retry.
    const unavailable = deps.store.unavailableReason(err);
    if (unavailable !== undefined) {
      req.log.warn({ url: req.url, reason: unavailable }, 'request failed: store unavailable');
      return reply.status(503).send({
        error: 'VERDICT_STORE_UNAVAILABLE',
        message: `the ${deps.store.kind} store cannot answer now (${unavailable}); retry when /readyz answers 200`,
      });
    }
    const { status, body } = errorAnswer(err, req);
    if (status >= 500) req.log.error({ err, url: req.url }, 'request failed');
    return reply.status(status).send(body);
  });
  // Authorization, in one place: every route declares its config.access, and this hook decides before anything else.
  app.addHook('onRoute', requireAccess);
  app.addHook('onRequest', authorizeRequest(deps.authorizer));
  app.addHook('preHandler', refuseNonFiniteQuery);
  app.setNotFoundHandler((req, reply) =>
    reply.status(404).send({
      error: 'VERDICT_NOT_FOUND',
      message: `no route ${req.method} ${req.url.split('?')[0]}; see /docs for the API`,
    }),
  );
  registerHealthRoutes(app, deps);
  registerNodeRoutes(app, deps);
  registerCisRoutes(app, deps);
  registerFlowRoutes(app, deps);
  registerReportRoutes(app, deps);
  registerAuditRoutes(app, deps);
  registerUiRoutes(app);
  const docs = {
    config: { access: 'public' },
    schema: { hide: true, response: { 200: Type.Object({}, { additionalProperties: true }) } },
  } as const;
  app.get('/docs', docs, async () => app.swagger());
  app.get('/docs/json', docs, async () => app.swagger());
  return app;
}

/**
 * ajv (coerceTypes) turns a query value like "Infinity" or "1e400" into a number, then skips `minimum` and `maximum`
 * for it (they compare finite numbers only): `?limit=Infinity` would pass the schema and reach the store. A preHandler
 * runs after validation, when the query holds the coerced numbers: a number there is finite, or the request is a 400
 * like any other out-of-range value.
 */
async function refuseNonFiniteQuery(req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> {
  const query: unknown = req.query;
  if (typeof query !== 'object' || query === null) return undefined;
  for (const [name, value] of Object.entries(query)) {
    const values: unknown[] = Array.isArray(value) ? value : [value];
    if (values.some((v) => typeof v === 'number' && !Number.isFinite(v)))
      return reply.status(400).send({
        error: 'VERDICT_BAD_REQUEST',
        message: `querystring /${name} must be a finite number; see /docs for the API`,
      });
  }
  return undefined;
}
