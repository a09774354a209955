import type { App, HttpDeps } from './deps.js';

export function registerHealthRoutes(app: App, { store, metrics }: HttpDeps): void {
  app.get('/healthz', { schema: { hide: true } }, async () => ({ status: 'ok' }));
  app.get('/readyz', { schema: { hide: true } }, async (_req, reply) => {
    try {
      await store.ping();
      return { status: 'ready', store: store.kind };
    } catch (err) {
      return reply.status(503).send({
        error: 'VERDICT_STORE_UNAVAILABLE',
        message: `the ${store.kind} store does not answer: ${(err as Error).message}`,
      });
    }
  });
  app.get('/metrics', { schema: { hide: true } }, async (_req, reply) => {
    reply.type(metrics.registry.contentType);
    return metrics.registry.metrics();
  });
}
