import Type from 'typebox';

/** Every error answer: a stable code and a message that says what to do. */
export const ErrorReply = Type.Object({ error: Type.String(), message: Type.String() }, { $id: 'ErrorReply' });

/**
 * The error replies of every route, spread into its `response` schemas: any route can answer a 4xx (bad input, 401 or
 * 403 from the access hook, 404) or a 5xx (503 when the store cannot answer, 500 on a bug), always as ErrorReply.
 */
export const ErrorReplies = { '4xx': ErrorReply, '5xx': ErrorReply };

const CheckResultSchema = Type.Object({
  id: Type.String(),
  title: Type.String(),
  section: Type.String(),
  level: Type.Integer(),
  scored: Type.Boolean(),
  status: Type.Union([Type.Literal('PASS'), Type.Literal('FAIL'), Type.Literal('SKIP')]),
  skipReason: Type.Optional(Type.String()),
  expected: Type.String(),
  actual: Type.String(),
  evidence: Type.String(),
  remediation: Type.String(),
});

/** The agent's scan JSON shape (docs/DESIGN.md, "The scan report"). */
export const ScanReportSchema = Type.Object({
  node: Type.String(),
  benchmark: Type.Object({ id: Type.String(), version: Type.String() }),
  nodeRole: Type.String(),
  startedAt: Type.String({ format: 'date-time' }),
  durationMs: Type.Integer(),
  summary: Type.Object({
    pass: Type.Integer(),
    fail: Type.Integer(),
    skip: Type.Integer(),
    total: Type.Integer(),
    scorePercent: Type.Number(),
  }),
  checks: Type.Array(CheckResultSchema),
  notAssessable: Type.Optional(
    Type.String({
      description: 'why the scanned root is not a Kubernetes node; the counts and score mean nothing then',
    }),
  ),
});

const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(t: T) => Type.Union([t, Type.Null()]);

const NodeItem = Type.Object({
  name: Type.String(),
  role: Type.String(),
  kubeletVersion: Type.String(),
  agentVersion: Type.String(),
  connected: Type.Boolean(),
  lastSeen: Type.String({ format: 'date-time' }),
  benchmark: Nullable(Type.String()),
  scorePercent: Nullable(Type.Number()),
  pass: Type.Integer(),
  fail: Type.Integer(),
  skip: Type.Integer(),
  rating: Nullable(Type.Union([Type.Literal('high'), Type.Literal('medium'), Type.Literal('low')])),
  notAssessable: Type.Optional(
    Type.String({ description: 'why the node could not be assessed (no kubelet found); no score then' }),
  ),
});

export const NodeList = Type.Object({ items: Type.Array(NodeItem) });

export const ThresholdQuery = Type.Object(
  {
    highThreshold: Type.Optional(
      Type.Number({ minimum: 0, maximum: 100, description: 'percent; nodes at or above are high (default 100)' }),
    ),
    medThreshold: Type.Optional(
      Type.Number({ minimum: 0, maximum: 100, description: 'percent; nodes at or above are medium (default 50)' }),
    ),
    benchmark: Type.Optional(Type.String({ pattern: '^[a-z0-9][a-z0-9.-]*$' })),
  },
  { additionalProperties: false },
);

export const CisSummary = Type.Object({
  nodes: Type.Integer(),
  pass: Type.Integer(),
  fail: Type.Integer(),
  skip: Type.Integer(),
  scorePercent: Type.Number(),
  bands: Type.Object({ high: Type.Integer(), medium: Type.Integer(), low: Type.Integer() }),
  mostFailed: Type.Array(Type.Object({ id: Type.String(), title: Type.String(), failedNodes: Type.Integer() })),
  notAssessable: Type.Integer({
    description: 'nodes whose agent found no Kubernetes node to scan; in no figure above',
  }),
  cluster: Nullable(
    Type.Object(
      {
        benchmark: Type.String(),
        checkedAt: Type.String({ format: 'date-time' }),
        pass: Type.Integer(),
        fail: Type.Integer(),
        skip: Type.Integer(),
        manual: Type.Integer(),
        scorePercent: Type.Number(),
      },
      { description: "the cluster section's (5.x) latest evaluation from the API; null before the first" },
    ),
  ),
});

const ClusterCheckSchema = Type.Object({
  id: Type.String(),
  title: Type.String(),
  level: Type.Integer(),
  scored: Type.Boolean(),
  status: Type.Union([Type.Literal('PASS'), Type.Literal('FAIL'), Type.Literal('MANUAL'), Type.Literal('SKIP')]),
  expected: Type.String(),
  actual: Type.String(),
  failing: Type.Array(Type.Object({ object: Type.String(), reason: Type.String() }), {
    description: 'the objects that fail it (at most 20; failingTotal counts them all)',
  }),
  failingTotal: Type.Integer(),
  excluded: Type.Optional(Type.String()),
  unreadable: Type.Integer({ description: 'items of the kinds it reads that had the wrong shape and were ignored' }),
  remediation: Type.String(),
});

/** GET /api/v1/cis/cluster: aggregator/cluster-cis/scan.ts StoredClusterScan. */
export const ClusterScanSchema = Type.Object({
  benchmark: Type.Object({ id: Type.String(), version: Type.String() }),
  kubernetesVersion: Type.String(),
  startedAt: Type.String({ format: 'date-time' }),
  durationMs: Type.Integer(),
  summary: Type.Object({
    pass: Type.Integer(),
    fail: Type.Integer(),
    skip: Type.Integer(),
    manual: Type.Integer(),
    total: Type.Integer(),
    scorePercent: Type.Number(),
  }),
  checks: Type.Array(ClusterCheckSchema),
  checkedAt: Type.String({ format: 'date-time' }),
});
