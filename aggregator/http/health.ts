import { Readable } from 'node:stream';
import Type from 'typebox';
import type { App, HttpDeps } from './deps.js';
import { ErrorReplies } from './schemas.js';

export function registerHealthRoutes(app: App, { store, metrics }: HttpDeps): void {
  app.get(
    '/healthz',
    {
      config: { access: 'public' },
      schema: { hide: true, response: { 200: Type.Object({ status: Type.Literal('ok') }), ...ErrorReplies } },
    },
    async () => ({ status: 'ok' as const }),
  );
  app.get(
    '/readyz',
    {
      config: { access: 'public' },
      schema: {
        hide: true,
        response: { 200: Type.Object({ status: Type.Literal('ready'), store: Type.String() }), ...ErrorReplies },
      },
    },
    async (_req, reply) => {
      try {
        await store.ping();
        return { status: 'ready' as const, store: store.kind };
      } catch (err) {
        return reply.status(503).send({
          error: 'VERDICT_STORE_UNAVAILABLE',
          message: `the ${store.kind} store does not answer: ${(err as Error).message}`,
        });
      }
    },
  );
  app.get(
    '/metrics',
    {
      config: { access: 'public' },
      // Prometheus text, not JSON: fastify serializes only JSON replies, so the schema only documents it.
      schema: { hide: true, response: { 200: Type.String(), ...ErrorReplies } },
    },
    async (_req, reply) => {
      reply.type(metrics.registry.contentType);
      // The pieces as kept, written one after the other (no 3.5 MB copy per scrape); the schema documents the text.
      return reply.send(Readable.from(await metrics.expositionBytes(), { objectMode: false }) as unknown as string);
    },
  );
}
