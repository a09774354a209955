import { clusterSummary, DEFAULT_THRESHOLDS, mostFailedChecks } from '../compute/cis.js';
import type { App, HttpDeps } from './deps.js';
import { CisSummary, ClusterScanSchema, ErrorReplies, ThresholdQuery } from './schemas.js';

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
      const [summaries, cluster] = await Promise.all([store.cisSummaries(), store.latestClusterScan()]);
      const options = { highThreshold, medThreshold, benchmark: q.benchmark };
      const titles = await store.checkTitles(
        mostFailedChecks(summaries, options).map((f) => ({ runId: f.sampleRunId, checkId: f.id })),
      );
      return clusterSummary(summaries, titles, options, cluster);
    },
  );

  app.get(
    '/api/v1/cis/cluster',
    {
      config: { access: { verb: 'get', resource: 'nodes' } },
      schema: {
        summary:
          "The cluster section's (CIS 5.x) latest evaluation from the API, each failing check naming its objects",
        response: { 200: ClusterScanSchema, ...ErrorReplies },
      },
    },
    async (_req, reply) => {
      const scan = await store.latestClusterScan();
      if (!scan)
        return reply.status(404).send({
          error: 'VERDICT_NOT_FOUND',
          message:
            'no cluster scan yet: the aggregator evaluates section 5 from the API when it has cluster access (in a cluster, or with --kubeconfig), every 5 minutes on the leader',
        });
      return scan;
    },
  );
}
