import Type from 'typebox';
import { nodeRows } from '../compute/cis.js';
import type { App, HttpDeps } from './deps.js';
import { ErrorReplies, NodeList, ScanReportSchema } from './schemas.js';

export function registerNodeRoutes(app: App, { store }: HttpDeps): void {
  app.get(
    '/api/v1/nodes',
    {
      config: { access: { verb: 'get', resource: 'nodes' } },
      schema: { summary: 'Every node with its latest CIS counts', response: { 200: NodeList, ...ErrorReplies } },
    },
    async () => ({
      items: nodeRows(await store.listNodes()),
    }),
  );

  app.get(
    '/api/v1/nodes/:name/cis',
    {
      config: { access: { verb: 'get', resource: 'nodes' } },
      schema: {
        summary: "A node's latest scan, or the latest at or before ?at",
        params: Type.Object({ name: Type.String({ minLength: 1, maxLength: 253 }) }),
        querystring: Type.Object(
          { at: Type.Optional(Type.String({ format: 'date-time', description: 'ISO-8601 time' })) },
          { additionalProperties: false },
        ),
        response: { 200: ScanReportSchema, ...ErrorReplies },
      },
    },
    async (req, reply) => {
      const { name } = req.params;
      const { at } = req.query;
      const atMs = at === undefined ? undefined : Date.parse(at);
      // RFC 3339 allows a leap second (23:59:60), which the schema's date-time format passes and Date.parse cannot
      // read.
      if (atMs !== undefined && Number.isNaN(atMs))
        return reply.status(400).send({
          error: 'VERDICT_BAD_REQUEST',
          message: `at (${at}) is not a time Verdict can read; give an ISO-8601 time like 2026-11-01T10:00:00Z (no leap second)`,
        });
      const report = await store.nodeReport(name, atMs);
      if (!report) {
        return reply.status(404).send({
          error: 'VERDICT_NOT_FOUND',
          message: at
            ? `node ${name} has no scan at or before ${at}`
            : `node ${name} has no scan yet; GET /api/v1/nodes lists the known nodes`,
        });
      }
      return report;
    },
  );
}
