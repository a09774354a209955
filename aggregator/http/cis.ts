import { clusterSummary, DEFAULT_THRESHOLDS, mostFailedChecks } from '../compute/cis.js';
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
      // One compact row per node (kept as runs are stored), and the titles of the few most failed checks.
      const summaries = await store.cisSummaries();
      const options = { highThreshold, medThreshold, benchmark: q.benchmark };
      const titles = await store.checkTitles(
        mostFailedChecks(summaries, options).map((f) => ({ runId: f.sampleRunId, checkId: f.id })),
      );
      return clusterSummary(summaries, titles, options);
    },
  );
}
