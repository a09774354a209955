import Type from 'typebox';
import { policyChanges, isPolicyChange } from '../reports/types/policy-audit.js';
import { noteNewPolicyEvents } from '../reports/policy-events.js';
import { tamperAlerts } from '../reports/tamper.js';
import type { StoredAuditEvent } from '../store/index.js';
import type { App, HttpDeps } from './app.js';
import { parseInterval } from './flows.js';

interface AuditEvent {
  auditID?: unknown;
  stage?: unknown;
  stageTimestamp?: unknown;
  verb?: unknown;
  user?: { username?: unknown };
  objectRef?: { resource?: unknown; namespace?: unknown; name?: unknown; apiGroup?: unknown };
  responseStatus?: { code?: unknown };
}

/**
 * The Kubernetes audit webhook (an audit.k8s.io/v1 EventList per POST, as the
 * API server's --audit-webhook-config-file sends it) and the tamper alerts
 * derived from it. Only completed, successful changes to network-policy
 * resources are kept; everything else is acknowledged and counted as ignored.
 */
export function registerAuditRoutes(app: App, deps: HttpDeps): void {
  const { store, metrics, authorizer, tamper, log } = deps;
  app.post('/api/v1/audit/webhook', {
    bodyLimit: 16 * 1024 * 1024,
    // Authorize before fastify reads and parses up to 16 MiB for an unknown caller.
    onRequest: async (req, reply) => {
      const d = await authorizer.authorize(req, { verb: 'create', resource: 'auditevents' });
      if (!d.allowed) return reply.status(d.status).send({ error: d.status === 401 ? 'VERDICT_UNAUTHENTICATED' : 'VERDICT_FORBIDDEN', message: d.reason });
    },
    schema: { summary: 'Kubernetes audit webhook (audit.k8s.io/v1 EventList)', body: Type.Object({ apiVersion: Type.String(), kind: Type.Literal('EventList'), items: Type.Array(Type.Unknown()) }) } }, async (req, reply) => {
    const d = await authorizer.authorize(req, { verb: 'create', resource: 'auditevents' });
    if (!d.allowed) return reply.status(d.status).send({ error: d.status === 401 ? 'VERDICT_UNAUTHENTICATED' : 'VERDICT_FORBIDDEN', message: d.reason });
    const body = req.body as { apiVersion: string; items: unknown[] };
    if (body.apiVersion !== 'audit.k8s.io/v1') return reply.status(400).send({ error: 'VERDICT_BAD_REQUEST', message: `expected apiVersion audit.k8s.io/v1, got ${body.apiVersion}` });
    const keep: StoredAuditEvent[] = [];
    let ignored = 0;
    for (const raw of body.items) {
      const e = raw as AuditEvent;
      const ref = e.objectRef ?? {};
      const stored: StoredAuditEvent = {
        auditId: String(e.auditID ?? ''),
        stageMs: Date.parse(String(e.stageTimestamp ?? '')),
        verb: String(e.verb ?? ''),
        resource: String(ref.resource ?? ''),
        apiGroup: String(ref.apiGroup ?? ''),
        namespace: String(ref.namespace ?? ''),
        name: String(ref.name ?? ''),
        username: String(e.user?.username ?? ''),
        event: raw,
      };
      const code = Number(e.responseStatus?.code ?? 200);
      if (!stored.auditId || !Number.isFinite(stored.stageMs) || e.stage !== 'ResponseComplete' || code >= 400 || !isPolicyChange(stored)) {
        ignored++;
        continue;
      }
      keep.push(stored);
    }
    const newIds = new Set(await store.recordAuditEvents(keep));
    metrics.auditEventsIgnored.inc(ignored);
    // Only events stored now count: a retried webhook batch raises nothing twice.
    const fresh = keep.filter((k, i) => newIds.has(k.auditId) && keep.findIndex((x) => x.auditId === k.auditId) === i);
    await noteNewPolicyEvents(store, metrics, tamper, log, fresh);
    return { received: body.items.length, stored: newIds.size, ignored };
  });

  app.get(
    '/api/v1/tamper-alerts',
    { schema: { summary: 'Changes to policies in protected namespaces or tiers', querystring: Type.Object({ from: Type.Optional(Type.String({ format: 'date-time' })), to: Type.Optional(Type.String({ format: 'date-time' })) }, { additionalProperties: false }) } },
    async (req, reply) => {
      const d = await authorizer.authorize(req, { verb: 'list', resource: 'auditevents' });
      if (!d.allowed) return reply.status(d.status).send({ error: d.status === 401 ? 'VERDICT_UNAUTHENTICATED' : 'VERDICT_FORBIDDEN', message: d.reason });
      const q = req.query as { from?: string; to?: string };
      const interval = parseInterval({ from: q.from ?? new Date(Date.now() - 7 * 86_400_000).toISOString(), to: q.to }, Date.now());
      if (typeof interval === 'string') return reply.status(400).send({ error: 'VERDICT_BAD_REQUEST', message: interval });
      const events = await store.auditEvents(interval.fromMs, interval.toMs);
      const history = await store.latestAuditEvents(events, interval.fromMs);
      return { protected: tamper, items: tamperAlerts(policyChanges(events, history), tamper) };
    },
  );
}
