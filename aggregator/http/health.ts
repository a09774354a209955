import Type from 'typebox';
import type { App, HttpDeps } from './deps.js';
import { acceptsGzip, gzipParts } from './gzip-parts.js';
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
    async (req, reply) => {
      // Prometheus asks for gzip: 3.5 MB at 5,000 nodes goes as about a tenth of it, the per-node families'
      // compressed bytes kept with them while they do not change (gzip-parts.ts).
      const gzip = acceptsGzip(req.headers['accept-encoding']);
      const plain = await metrics.expositionBytes();
      const parts = gzip ? await gzipParts(plain) : plain;
      let length = 0;
      for (const p of parts) length += p.length;
      // The pieces as kept (no 3.5 MB copy per scrape), written in one turn of the event loop: Node corks the socket
      // for the turn, so they leave in one writev and libuv sends what the socket cannot take yet as it drains. A
      // stream piped in (fastify's way for more than one buffer) pauses at each piece until the socket drains, and
      // each resumption waits its turn behind 5,000 agents' streams on a loaded machine (issue 13). So the reply is
      // written here, past fastify's send (no hooks of this app run after the handler).
      reply.hijack();
      reply.raw.writeHead(200, {
        'content-type': metrics.registry.contentType,
        'content-length': length,
        vary: 'accept-encoding',
        ...(gzip ? { 'content-encoding': 'gzip' } : {}),
      });
      for (const p of parts) reply.raw.write(p);
      reply.raw.end();
    },
  );
}
