import { clusterSummary, DEFAULT_THRESHOLDS } from '../compute/cis.js';
import type { App, HttpDeps } from './deps.js';
import { CisSummary, ErrorReplies, ThresholdQuery } from './schemas.js';

export function registerCisRoutes(app: App, { store }: HttpDeps): void {
  app.get(
    '/api/v1/cis/summary',
    {
      config: { access: { verb: 'get', resource: 'nodes' } },
      schema: {
        summary: 'Cluster CIS totals, nodes per band and the most failed checks',
        querystring: ThresholdQuery,
        response: { 200: CisSummary, ...ErrorReplies },
      },
    },
    async (req, reply) => {
      const q = req.query;
      const highThreshold = q.highThreshold ?? DEFAULT_THRESHOLDS.highThreshold;
      const medThreshold = q.medThreshold ?? DEFAULT_THRESHOLDS.medThreshold;
      if (medThreshold > highThreshold) {
        return reply.status(400).send({
          error: 'VERDICT_BAD_REQUEST',
          message: `medThreshold (${medThreshold}) must not be above highThreshold (${highThreshold})`,
        });
      }
      const [nodes, checks] = await Promise.all([store.listNodes(), store.latestCheckStatuses()]);
      return clusterSummary(nodes, checks, { highThreshold, medThreshold, benchmark: q.benchmark });
    },
  );
}
