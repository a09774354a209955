import Type, { type Static } from 'typebox';
import { nodeRows, type NodeRow } from '../compute/cis.js';
import type { App, HttpDeps } from './deps.js';
import { NodeListBody } from './node-list-body.js';
import { ErrorReplies, NodeList, ScanReportSchema } from './schemas.js';

/** The list's query: all optional; without any, every node in store order (as before paging existed). */
const NodeQuery = Type.Object(
  {
    name: Type.Optional(Type.String({ maxLength: 253, description: 'nodes whose name contains this' })),
    rating: Type.Optional(
      Type.Union([Type.Literal('high'), Type.Literal('medium'), Type.Literal('low'), Type.Literal('none')], {
        description: 'one band; none: no scan yet',
      }),
    ),
    connected: Type.Optional(Type.Boolean()),
    sort: Type.Optional(
      Type.Union([Type.Literal('name'), Type.Literal('score'), Type.Literal('fail'), Type.Literal('lastSeen')]),
    ),
    order: Type.Optional(Type.Union([Type.Literal('asc'), Type.Literal('desc')])),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 5000, description: 'at most this many (default: all)' })),
    offset: Type.Optional(Type.Integer({ minimum: 0, description: 'skip this many of the filtered, sorted nodes' })),
  },
  { additionalProperties: false },
);
type NodeQueryT = { name?: string; rating?: string; connected?: boolean; sort?: string; order?: string };

/** A page of nodes: `total` counts every node the filters keep, so a table can page without reading them all. */
const NodePage = Type.Object({ items: NodeList.properties.items, total: Type.Integer() });

const ScoreHistory = Type.Object({
  items: Type.Array(
    Type.Object({
      startedAt: Type.String(),
      benchmark: Type.String(),
      scorePercent: Type.Number(),
      pass: Type.Integer(),
      fail: Type.Integer(),
    }),
  ),
});

const SORT_KEYS: Record<string, (r: NodeRow) => string | number> = {
  name: (r) => r.name,
  // No scan yet sorts below every score.
  score: (r) => r.scorePercent ?? -1,
  fail: (r) => r.fail,
  lastSeen: (r) => r.lastSeen,
};

/** Filter and sort the node rows as the query says: the dashboard pages 5,000 nodes here, not in the browser. */
function selectNodes(rows: NodeRow[], q: NodeQueryT): NodeRow[] {
  const name = q.name?.toLowerCase();
  let out = rows.filter(
    (r) =>
      (name === undefined || r.name.toLowerCase().includes(name)) &&
      (q.rating === undefined || (r.rating ?? 'none') === q.rating) &&
      (q.connected === undefined || r.connected === q.connected),
  );
  const key = q.sort === undefined ? undefined : SORT_KEYS[q.sort];
  if (key) {
    const dir = q.order === 'desc' ? -1 : 1;
    out = [...out].sort((a, b) => {
      const x = key(a);
      const y = key(b);
      return (x < y ? -1 : x > y ? 1 : a.name < b.name ? -1 : a.name > b.name ? 1 : 0) * dir;
    });
  }
  return out;
}

/** What fastify sends a JSON reply as. */
const JSON_TYPE = 'application/json; charset=utf-8';

export function registerNodeRoutes(app: App, { store, metrics }: HttpDeps): void {
  const whole = new NodeListBody(metrics.cis);
  app.get(
    '/api/v1/nodes',
    {
      config: { access: { verb: 'get', resource: 'nodes' } },
      schema: {
        summary: 'Every node with its latest CIS counts; filtered, sorted and paged when asked',
        querystring: NodeQuery,
        response: { 200: NodePage, ...ErrorReplies },
      },
    },
    async (req, reply) => {
      const q = req.query;
      // Every node, unfiltered: the same bytes for every reader until a node changes (node-list-body.ts).
      if (Object.keys(q).length === 0)
        return reply.type(JSON_TYPE).send((await whole.bytes()) as unknown as Static<typeof NodePage>);
      // From the nodes kept in memory in step with the store (cis-view.ts), as the CIS summary is answered.
      const rows = selectNodes(nodeRows(await metrics.cis.nodeList()), q);
      const offset = q.offset ?? 0;
      const items =
        q.limit === undefined && offset === 0 ? rows : rows.slice(offset, offset + (q.limit ?? rows.length));
      return { items, total: rows.length };
    },
  );

  app.get(
    '/api/v1/nodes/:name/history',
    {
      config: { access: { verb: 'get', resource: 'nodes' } },
      schema: {
        summary: "A node's scores over its latest scans, newest first",
        params: Type.Object({ name: Type.String({ minLength: 1, maxLength: 253 }) }),
        querystring: Type.Object(
          { limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 20 })) },
          { additionalProperties: false },
        ),
        response: { 200: ScoreHistory, ...ErrorReplies },
      },
    },
    async (req, reply) => {
      const { name } = req.params;
      const items: { startedAt: string; benchmark: string; scorePercent: number; pass: number; fail: number }[] = [];
      // Each scan, walked back from the latest: the latest at or before just before the one found. An agent sends a
      // scan only when its result changed, so these are the score's changes.
      let atMs: number | undefined;
      while (items.length < (req.query.limit ?? 20)) {
        const r = await store.nodeReport(name, atMs);
        if (!r) break;
        const { pass, fail, scorePercent } = r.summary;
        items.push({ startedAt: r.startedAt, benchmark: r.benchmark.id, scorePercent, pass, fail });
        atMs = Date.parse(r.startedAt) - 1;
      }
      if (items.length === 0)
        return reply.status(404).send({
          error: 'VERDICT_NOT_FOUND',
          message: `node ${name} has no scan yet; GET /api/v1/nodes lists the known nodes`,
        });
      return { items };
    },
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
