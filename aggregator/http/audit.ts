import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Type from 'typebox';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { policyChanges } from '../reports/types/policy-audit.js';
import { noteNewPolicyEvents } from '../reports/policy-events.js';
import { tamperAlerts } from '../reports/tamper.js';
import type { Store, StoredAuditEvent } from '../store/index.js';
import type { App, HttpDeps } from './deps.js';
import { readAuditItem } from './audit-input.js';
import { parseEventListBody } from './event-list-body.js';
import { parseInterval } from './flows.js';
import { ErrorReplies } from './schemas.js';

/** The largest EventList accepted: the API server's default webhook batch is far smaller. */
const WEBHOOK_BODY_LIMIT = 16 * 1024 * 1024;
/** Items validated and stored per turn of the event loop, so a 16 MiB EventList does not stall /healthz. */
const ITEMS_PER_TURN = 1000;
/** Refusal reasons told back per request; the rest are only counted. */
const MAX_REASONS = 10;

const WebhookReply = Type.Object({
  received: Type.Integer(),
  stored: Type.Integer(),
  ignored: Type.Integer(),
  refused: Type.Integer(),
  truncated: Type.Integer(),
  /** The first refusal reasons ("items[3]: stageTimestamp: ..."); absent when none was refused. */
  errors: Type.Optional(Type.Array(Type.String())),
});

/**
 * Tamper alerts. Their shape is reports/tamper.ts's (TamperConfig, TamperAlert): fields added there are passed
 * through, not dropped by the serializer.
 */
const TamperAlertsReply = Type.Object({
  protected: Type.Object(
    { namespaces: Type.Array(Type.String()), tiers: Type.Array(Type.String()) },
    { additionalProperties: true },
  ),
  items: Type.Array(
    Type.Object(
      {
        time: Type.String(),
        verb: Type.String(),
        kind: Type.String(),
        namespace: Type.String(),
        name: Type.String(),
        tier: Type.String(),
        user: Type.String(),
        sourceIPs: Type.Array(Type.String()),
        auditId: Type.String(),
        diff: Type.Array(
          Type.Object({
            path: Type.String(),
            before: Type.Optional(Type.Unknown()),
            after: Type.Optional(Type.Unknown()),
          }),
        ),
        source: Type.String(),
        reason: Type.String(),
      },
      { additionalProperties: true },
    ),
  ),
});

/**
 * The Kubernetes audit webhook (an audit.k8s.io/v1 EventList per POST, as the
 * API server's --audit-webhook-config-file sends it) and the tamper alerts
 * derived from it. Only completed, successful changes to network-policy
 * resources are kept; everything else is acknowledged and counted as ignored.
 * An item that is not an audit event Verdict can read is refused and counted,
 * and the rest of its list is still kept: the answer says how many were
 * refused and why (the first few), and the API server does not resend a list
 * that was answered 200.
 */
export function registerAuditRoutes(app: App, deps: HttpDeps): void {
  const { store, metrics, tamper, log } = deps;
  app.register(async (plugin) => {
    // An encapsulated scope (its own JSON parser); typed again, as fastify does not carry the provider into plugins.
    const scope = plugin.withTypeProvider<TypeBoxTypeProvider>();
    // fastify's own JSON parser refuses a whole body with a "__proto__" key anywhere, which
    // would lose every good event of a batch for one bad one. JSON.parse only makes such a
    // key an own property (it never sets a prototype); readAuditItem removes it per event.
    scope.removeContentTypeParser('application/json');
    scope.addContentTypeParser(
      'application/json',
      { parseAs: 'string', bodyLimit: WEBHOOK_BODY_LIMIT },
      async (_req: unknown, body: string | Buffer) => {
        try {
          return await parseEventListBody(body.toString());
        } catch (err) {
          throw Object.assign(new Error(`the body is not JSON: ${(err as Error).message}`), {
            statusCode: 400,
            code: 'VERDICT_BAD_REQUEST',
          });
        }
      },
    );
    scope.post(
      '/api/v1/audit/webhook',
      {
        bodyLimit: WEBHOOK_BODY_LIMIT,
        // The access hook runs on onRequest: the caller is authorized before fastify reads and parses up to 16 MiB.
        config: { access: { verb: 'create', resource: 'auditevents' } },
        schema: {
          summary: 'Kubernetes audit webhook (audit.k8s.io/v1 EventList)',
          body: Type.Object({
            apiVersion: Type.String(),
            kind: Type.Literal('EventList'),
            items: Type.Array(Type.Unknown()),
          }),
          response: { 200: WebhookReply, ...ErrorReplies },
        },
      },
      async (req, reply) => {
        const body = req.body;
        if (body.apiVersion !== 'audit.k8s.io/v1')
          return reply.status(400).send({
            error: 'VERDICT_BAD_REQUEST',
            message: `expected apiVersion audit.k8s.io/v1, got ${body.apiVersion}`,
          });
        const { fresh, counts, reasons } = await storeEventList(store, body.items);
        metrics.auditEventsIgnored.inc(counts.ignored);
        metrics.auditEventsRefused.inc(counts.refused);
        metrics.auditEventsTruncated.inc(counts.truncated);
        if (counts.refused > 0 || counts.truncated > 0)
          log.warn(
            { source: 'audit-webhook', ...counts, reasons: reasons.slice(0, 3) },
            'audit webhook items refused or truncated',
          );
        // Only events stored now count: a retried webhook batch raises nothing twice.
        await noteNewPolicyEvents(store, metrics, tamper, log, fresh);
        return {
          received: body.items.length,
          stored: fresh.length,
          ...counts,
          ...(reasons.length > 0 ? { errors: reasons } : {}),
        };
      },
    );
  });

  app.get(
    '/api/v1/tamper-alerts',
    {
      config: { access: { verb: 'list', resource: 'auditevents' } },
      schema: {
        summary: 'Changes to policies in protected namespaces or tiers',
        querystring: Type.Object(
          {
            from: Type.Optional(Type.String({ format: 'date-time' })),
            to: Type.Optional(Type.String({ format: 'date-time' })),
            all: Type.Optional(
              Type.Boolean({
                description:
                  'every network-policy change of the interval, the alerts with their reason, others with ""',
              }),
            ),
          },
          { additionalProperties: false },
        ),
        response: { 200: TamperAlertsReply, ...ErrorReplies },
      },
    },
    async (req, reply) => {
      const q = req.query;
      const interval = parseInterval(
        { from: q.from ?? new Date(Date.now() - 7 * 86_400_000).toISOString(), to: q.to },
        Date.now(),
      );
      if (typeof interval === 'string')
        return reply.status(400).send({ error: 'VERDICT_BAD_REQUEST', message: interval });
      const events = await store.auditEvents(interval.fromMs, interval.toMs);
      const history = await store.latestAuditEvents(events, interval.fromMs);
      const changes = policyChanges(events, history);
      const alerts = tamperAlerts(changes, tamper);
      if (!q.all) return { protected: tamper, items: alerts };
      // The policy-audit timeline: every change, the alerts among them marked by their reason.
      const reasons = new Map(alerts.map((a) => [a.auditId, a.reason]));
      return { protected: tamper, items: changes.map((c) => ({ ...c, reason: reasons.get(c.auditId) ?? '' })) };
    },
  );
}

/**
 * Validate and store the items of one EventList, a slice per turn of the event
 * loop, so a 16 MiB list neither takes quadratic time nor stalls /healthz.
 * Returns the events stored now (not before), the counts, and the first
 * refusal reasons.
 */
async function storeEventList(
  store: Store,
  items: unknown[],
): Promise<{
  fresh: StoredAuditEvent[];
  counts: { ignored: number; refused: number; truncated: number };
  reasons: string[];
}> {
  const counts = { ignored: 0, refused: 0, truncated: 0 };
  const reasons: string[] = [];
  // An audit ID twice in one list keeps its first event, as the stores do.
  const seen = new Set<string>();
  const fresh: StoredAuditEvent[] = [];
  for (let start = 0; start < items.length; start += ITEMS_PER_TURN) {
    if (start > 0) await nextTurn();
    const keep: StoredAuditEvent[] = [];
    for (let i = start; i < Math.min(items.length, start + ITEMS_PER_TURN); i++) {
      const item = readAuditItem(items[i]);
      if (item.outcome === 'refuse') {
        counts.refused++;
        if (reasons.length < MAX_REASONS) reasons.push(`items[${i}]: ${item.reason}`);
      } else if (item.outcome === 'ignore') {
        counts.ignored++;
      } else if (!seen.has(item.event.auditId)) {
        seen.add(item.event.auditId);
        if (item.truncation) counts.truncated++;
        keep.push(item.event);
      }
    }
    // Stored a slice at a time: a list that fails half-way is resent by the API
    // server, and what was stored already is recognised by its audit ID.
    const stored = new Set(await store.recordAuditEvents(keep));
    for (const k of keep) if (stored.has(k.auditId)) fresh.push(k);
  }
  return { fresh, counts, reasons };
}
