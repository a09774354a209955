import Type from 'typebox';
import { FINDING_KINDS, networkAccessOver } from '../network-access/index.js';
import type { App, HttpDeps } from './deps.js';
import { ErrorReplies } from './schemas.js';

const Interval = {
  from: Type.Optional(
    Type.String({ format: 'date-time', description: 'start, ISO-8601 (default: an hour before `to`)' }),
  ),
  to: Type.Optional(Type.String({ format: 'date-time', description: 'end, ISO-8601 (default: now)' })),
};
const Name = Type.String({ pattern: '^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$', maxLength: 253 });

const EndpointRef = Type.Object({
  kind: Type.String(),
  namespace: Type.String(),
  name: Type.String(),
  labels: Type.Array(Type.String()),
  serviceAccount: Type.String(),
  internet: Type.Boolean(),
  reserved: Type.Optional(Type.String({ description: 'the Cilium reserved identity (Hubble); absent otherwise' })),
});
const Policy = Type.Object({
  tier: Type.String(),
  namespace: Type.String(),
  name: Type.String(),
  action: Type.String(),
  kind: Type.String(),
});

const Strings = Type.Array(Type.String());
const Finding = Type.Object({
  endpoint: Type.String(),
  namespace: Type.String(),
  direction: Type.Union([Type.Literal('ingress'), Type.Literal('egress')]),
  kind: Type.String({ description: Object.values(FINDING_KINDS).join(', ') }),
  detail: Type.String(),
  connections: Type.Integer(),
});
const Configuration = Type.Object({
  source: Type.String({ description: '"cluster", "snapshot DIR", or "none": the flags are then the flows\' ' }),
  problems: Type.Array(Type.String(), { description: 'policy documents that could not be read (counted as absent)' }),
});

const NetworkAccessReply = Type.Object({
  from: Type.String(),
  to: Type.String(),
  configuration: Configuration,
  endpoints: Type.Array(
    Type.Object({
      endpoint: Type.String(),
      namespace: Type.String(),
      name: Type.String(),
      kind: Type.String(),
      labels: Strings,
      serviceAccount: Type.String(),
      ingressProtected: Type.Boolean(),
      egressProtected: Type.Boolean(),
      ingressFromInternet: Type.Boolean(),
      egressToInternet: Type.Boolean(),
      ingressFromOtherNamespaces: Type.Boolean(),
      egressToOtherNamespaces: Type.Boolean(),
      envoyEnabled: Type.Boolean(),
      appliedPolicies: Strings,
      services: Strings,
      trafficAggregationPrefix: Type.String(),
      endpointsGeneratingTrafficToThisEndpoint: Strings,
      endpointsReceivingTrafficFromThisEndpoint: Strings,
      allowedIn: Type.Integer(),
      deniedIn: Type.Integer(),
      allowedOut: Type.Integer(),
      deniedOut: Type.Integer(),
      policies: Strings,
      stagedPolicies: Strings,
      evidence: Type.Union([Type.Literal('configured'), Type.Literal('observed')]),
      configured: Type.Union([
        Type.Object({
          pods: Type.Integer(),
          ingressProtected: Type.Boolean(),
          egressProtected: Type.Boolean(),
          ingressFromInternet: Type.Boolean(),
          egressToInternet: Type.Boolean(),
          ingressNamespaces: Strings,
          egressNamespaces: Strings,
          appliedPolicies: Strings,
          stagedPolicies: Strings,
        }),
        Type.Null(),
      ]),
      observed: Type.Union([
        Type.Object({
          ingressProtected: Type.Union([Type.Boolean(), Type.Null()]),
          egressProtected: Type.Union([Type.Boolean(), Type.Null()]),
          ingressFromInternet: Type.Boolean(),
          egressToInternet: Type.Boolean(),
          ingressNamespaces: Strings,
          egressNamespaces: Strings,
          internetAllowedIn: Type.Integer(),
          internetAllowedOut: Type.Integer(),
          unprotectedAllowedIn: Type.Integer(),
          unprotectedAllowedOut: Type.Integer(),
          unknownAllowedIn: Type.Integer({ description: 'allowed connections no event could say a policy decided' }),
          unknownAllowedOut: Type.Integer(),
        }),
        Type.Null(),
      ]),
      findings: Type.Array(Finding),
    }),
  ),
  namespaces: Type.Array(
    Type.Object({
      namespace: Type.String(),
      endpoints: Type.Integer(),
      ingressProtected: Type.Integer(),
      egressProtected: Type.Integer(),
      allowedIn: Type.Integer(),
      deniedIn: Type.Integer(),
      allowedOut: Type.Integer(),
      deniedOut: Type.Integer(),
      allowedPercent: Type.Union([Type.Number(), Type.Null()]),
    }),
  ),
  continue: Type.Optional(
    Type.String({ description: 'more endpoints follow: pass this as `continue` (same interval) for the next page' }),
  ),
});

const FindingsReply = Type.Object({
  from: Type.String(),
  to: Type.String(),
  configuration: Configuration,
  items: Type.Array(Finding),
});

const FlowsReply = Type.Object({
  from: Type.String(),
  to: Type.String(),
  items: Type.Array(
    Type.Object({
      node: Type.String(),
      bucketStart: Type.String(),
      bucketSeconds: Type.Integer(),
      source: EndpointRef,
      destination: EndpointRef,
      protocol: Type.String(),
      destinationPort: Type.Integer(),
      action: Type.String(),
      reporter: Type.String(),
      policies: Type.Array(Policy),
      stagedPolicies: Type.Array(Policy),
      unnamedPolicy: Type.Boolean(),
      policyDecided: Type.Boolean(),
      policyUnknown: Type.Optional(
        Type.Boolean({
          description: 'true: no event could say whether a policy decided it (Hubble trace events only)',
        }),
      ),
      connections: Type.Integer(),
      packets: Type.Integer(),
      bytes: Type.Integer(),
      firstSeen: Type.String(),
      lastSeen: Type.String(),
    }),
  ),
});

/** What `flag` picks out of the endpoints: a finding a reader filters on (the dashboard's network page). */
const ENDPOINT_FLAGS = [
  'ingressUnprotected',
  'egressUnprotected',
  'ingressFromInternet',
  'egressToInternet',
  'ingressFromOtherNamespaces',
  'egressToOtherNamespaces',
] as const;
type EndpointFlag = (typeof ENDPOINT_FLAGS)[number];
type FlaggedEndpoint = Record<Exclude<EndpointFlag, `${string}Unprotected`>, boolean> & {
  ingressProtected: boolean;
  egressProtected: boolean;
};

/** Unprotected: not protected throughout the interval (Calico's meaning; the flows' without configuration). */
function hasFlag(e: FlaggedEndpoint, flag: EndpointFlag): boolean {
  if (flag === 'ingressUnprotected') return !e.ingressProtected;
  if (flag === 'egressUnprotected') return !e.egressProtected;
  return e[flag];
}

/** The longest interval one request may cover (reports cover longer ones from the store directly). */
const MAX_RANGE_MS = 93 * 24 * 3600 * 1000;

export function parseInterval(
  q: { from?: string; to?: string },
  now: number,
): { fromMs: number; toMs: number } | string {
  const toMs = q.to ? Date.parse(q.to) : now;
  const fromMs = q.from ? Date.parse(q.from) : toMs - 3600_000;
  // RFC 3339 allows a leap second (23:59:60), which the schema's date-time format passes and Date.parse cannot read.
  if (Number.isNaN(toMs))
    return `to (${q.to}) is not a time Verdict can read; give an ISO-8601 time like 2026-11-01T10:00:00Z (no leap second)`;
  if (Number.isNaN(fromMs))
    return `from (${q.from}) is not a time Verdict can read; give an ISO-8601 time like 2026-11-01T10:00:00Z (no leap second)`;
  if (!(fromMs < toMs))
    return `from (${q.from ?? new Date(fromMs).toISOString()}) must be before to (${q.to ?? new Date(toMs).toISOString()})`;
  if (toMs - fromMs > MAX_RANGE_MS) return 'the interval may span at most 93 days; ask for a shorter one';
  return { fromMs, toMs };
}

/** The (endpoint, kind) a `continue` token stands for, or undefined when it is not one. */
function continueToken(token: string): [string, string] | undefined {
  try {
    const v: unknown = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
    if (Array.isArray(v) && v.length === 2 && typeof v[0] === 'string' && typeof v[1] === 'string') return [v[0], v[1]];
  } catch {
    // not JSON: not ours
  }
  return undefined;
}

/**
 * One page of `endpoints`: those after `after` (endpoint, kind), at most `limit`, and the token for the rest. Pages
 * follow one total order: endpoint as listed, then kind (a pod and a host may share a name). Without a limit or
 * continue, the list as it is.
 */
function pageOf<E extends { endpoint: string; kind: string }>(
  endpoints: E[],
  limit: number | undefined,
  after: [string, string] | undefined,
): { items: E[]; next?: string } {
  if (limit === undefined && after === undefined) return { items: endpoints };
  const cmp = (e: E, [endpoint, kind]: [string, string]) =>
    e.endpoint.localeCompare(endpoint) || (e.kind < kind ? -1 : e.kind > kind ? 1 : 0);
  let items = [...endpoints].sort((x, y) => cmp(x, [y.endpoint, y.kind]));
  if (after !== undefined) items = items.filter((e) => cmp(e, after) > 0);
  if (limit === undefined || items.length <= limit) return { items };
  items = items.slice(0, limit);
  const last = items[items.length - 1]!;
  return { items, next: Buffer.from(JSON.stringify([last.endpoint, last.kind])).toString('base64url') };
}

export function registerFlowRoutes(app: App, { store, networkAccess: naConfig }: HttpDeps): void {
  app.get(
    '/api/v1/network-access',
    {
      config: { access: { verb: 'get', resource: 'flows' } },
      schema: {
        summary:
          'Per endpoint and per namespace: protection, internet and cross-namespace traffic, allowed and denied connections',
        querystring: Type.Object(
          {
            ...Interval,
            namespace: Type.Optional(Name),
            flag: Type.Optional(
              Type.Union(
                ENDPOINT_FLAGS.map((f) => Type.Literal(f)),
                {
                  description: 'only endpoints with this finding (before paging; namespaces are not filtered)',
                },
              ),
            ),
            limit: Type.Optional(
              Type.Integer({ minimum: 1, maximum: 10000, description: 'at most this many endpoints (default: all)' }),
            ),
            continue: Type.Optional(
              Type.String({ maxLength: 4096, description: "the previous page's `continue`: the endpoints after it" }),
            ),
          },
          { additionalProperties: false },
        ),
        response: { 200: NetworkAccessReply, ...ErrorReplies },
      },
    },
    async (req, reply) => {
      const q = req.query;
      const interval = parseInterval(q, Date.now());
      if (typeof interval === 'string')
        return reply.status(400).send({ error: 'VERDICT_BAD_REQUEST', message: interval });
      let after: [string, string] | undefined;
      if (q.continue !== undefined) {
        after = continueToken(q.continue);
        if (after === undefined)
          return reply
            .status(400)
            .send({ error: 'VERDICT_BAD_REQUEST', message: 'continue is not a token this API handed out' });
      }
      // Flows summed per distinct flow in the store (bounded by the flows, not the rows), configuration beside them.
      const summary = await networkAccessOver(store, naConfig, { ...interval, namespace: q.namespace });
      const endpoints = summary.endpoints.filter(
        (e) => (!q.namespace || e.namespace === q.namespace) && (!q.flag || hasFlag(e, q.flag)),
      );
      const namespaces = q.namespace
        ? summary.namespaces.filter((n) => n.namespace === q.namespace)
        : summary.namespaces;
      const page = pageOf(endpoints, q.limit, after);
      return {
        from: new Date(interval.fromMs).toISOString(),
        to: new Date(interval.toMs).toISOString(),
        configuration: summary.configuration,
        endpoints: page.items,
        namespaces,
        ...(page.next !== undefined ? { continue: page.next } : {}),
      };
    },
  );

  registerFindingsRoute(app, store, naConfig);

  app.get(
    '/api/v1/flows',
    {
      config: { access: { verb: 'get', resource: 'flows' } },
      schema: {
        summary: 'Flows as stored: per time bucket, node and key, with summed counts',
        querystring: Type.Object(
          {
            ...Interval,
            namespace: Type.Optional(Name),
            endpoint: Type.Optional(
              Type.String({
                pattern: '^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9*]([-A-Za-z0-9_.*]*)$',
                maxLength: 300,
                description: 'namespace/name or name',
              }),
            ),
            action: Type.Optional(Type.Union([Type.Literal('allow'), Type.Literal('deny')])),
            limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 10000, default: 1000 })),
          },
          { additionalProperties: false },
        ),
        response: { 200: FlowsReply, ...ErrorReplies },
      },
    },
    async (req, reply) => {
      const q = req.query;
      const interval = parseInterval(q, Date.now());
      if (typeof interval === 'string')
        return reply.status(400).send({ error: 'VERDICT_BAD_REQUEST', message: interval });
      const rows = await store.flowRows({
        ...interval,
        namespace: q.namespace,
        endpoint: q.endpoint,
        action: q.action,
        limit: q.limit ?? 1000,
      });
      return {
        from: new Date(interval.fromMs).toISOString(),
        to: new Date(interval.toMs).toISOString(),
        items: rows.map((r) => {
          const { startMs, endMs, ...f } = r.flow;
          return {
            node: r.node,
            bucketStart: new Date(r.bucketStartMs).toISOString(),
            bucketSeconds: r.bucketMs / 1000,
            ...f,
            firstSeen: new Date(startMs).toISOString(),
            lastSeen: new Date(endMs).toISOString(),
          };
        }),
      };
    },
  );
}

/** The cross-check alone: where configuration and traffic disagree over an interval. */
function registerFindingsRoute(app: App, store: HttpDeps['store'], naConfig: HttpDeps['networkAccess']): void {
  app.get(
    '/api/v1/network-access/findings',
    {
      config: { access: { verb: 'get', resource: 'flows' } },
      schema: {
        summary:
          'Where configuration and traffic disagree: protected but allowed without a policy, internet allowed that no rule allows, traffic from (to) a namespace no rule allows',
        querystring: Type.Object({ ...Interval, namespace: Type.Optional(Name) }, { additionalProperties: false }),
        response: { 200: FindingsReply, ...ErrorReplies },
      },
    },
    async (req, reply) => {
      const q = req.query;
      const interval = parseInterval(q, Date.now());
      if (typeof interval === 'string')
        return reply.status(400).send({ error: 'VERDICT_BAD_REQUEST', message: interval });
      const summary = await networkAccessOver(store, naConfig, { ...interval, namespace: q.namespace });
      return {
        from: new Date(interval.fromMs).toISOString(),
        to: new Date(interval.toMs).toISOString(),
        configuration: summary.configuration,
        items: summary.findings.filter((f) => !q.namespace || f.namespace === q.namespace),
      };
    },
  );
}
