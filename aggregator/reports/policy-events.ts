import type { Logger } from 'pino';
import type { AggregatorMetrics } from '../metrics.js';
import type { Store, StoredAuditEvent } from '../store/index.js';
import { tamperAlerts, type TamperConfig } from './tamper.js';
import { policyChanges } from './types/policy-audit.js';

/**
 * Count and alert on policy changes just stored (from the audit webhook or the
 * policy watch). A change the other source already reported (same object and
 * verb within a minute) is not counted or alerted twice.
 */
export async function noteNewPolicyEvents(store: Store, metrics: AggregatorMetrics, tamper: TamperConfig, log: Logger, fresh: StoredAuditEvent[]): Promise<void> {
  const events = fresh.filter((e) => e.verb !== 'observe');
  if (events.length === 0) return;
  const from = Math.min(...events.map((e) => e.stageMs));
  const to = Math.max(...events.map((e) => e.stageMs));
  const freshIds = new Set(fresh.map((e) => e.auditId));
  const nearby = (await store.auditEvents(from - 60_000, to + 60_001)).filter((e) => !freshIds.has(e.auditId));
  const sameChange = (a: StoredAuditEvent, b: StoredAuditEvent) =>
    a.apiGroup === b.apiGroup && a.resource === b.resource && a.namespace === b.namespace && a.name === b.name && a.verb.replace('patch', 'update') === b.verb.replace('patch', 'update') && Math.abs(a.stageMs - b.stageMs) < 60_000 && a.auditId.startsWith('watch:') !== b.auditId.startsWith('watch:');
  const firstSeen = events.filter((e) => !nearby.some((n) => sameChange(e, n)));
  if (firstSeen.length === 0) return;
  const history = await store.latestAuditEvents(firstSeen, from);
  const changes = policyChanges(firstSeen, history);
  for (const c of changes) metrics.policyChanges.inc({ kind: c.kind });
  for (const a of tamperAlerts(changes, tamper)) {
    metrics.tamperAlerts.inc({ kind: a.kind });
    log.warn({ alert: 'policy-tamper', kind: a.kind, namespace: a.namespace, name: a.name, verb: a.verb, user: a.user || 'unknown', source: a.source, reason: a.reason, auditId: a.auditId }, 'change to a protected network policy');
  }
}
