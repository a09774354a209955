import { DEFAULT_THRESHOLDS } from '../compute/cis.js';
import type { Static } from 'typebox';
import type { App, HttpDeps } from './deps.js';
import { CisSummary, ClusterScanSchema, ErrorReplies, ThresholdQuery } from './schemas.js';

type CisSummaryT = Static<typeof CisSummary>;

export function registerCisRoutes(app: App, { store, metrics }: HttpDeps): void {
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
      // Kept in memory in step with the store (cis-view.ts), serialized once per change and threshold.
      const body = await metrics.cis.summaryJson({ highThreshold, medThreshold, benchmark: q.benchmark });
      // A string sent as JSON goes out as it is (fastify serializes only objects); its shape is CisSummary's.
      return reply.type('application/json; charset=utf-8').send(body as unknown as CisSummaryT);
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
