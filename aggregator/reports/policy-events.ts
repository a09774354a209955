import { setImmediate as nextTurn } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { AggregatorMetrics } from '../metrics.js';
import type { Store, StoredAuditEvent } from '../store/index.js';
import { isWatchedVersion } from './policy-resources.js';
import { tamperAlerts, type TamperConfig } from './tamper.js';
import { TimeIndex } from './time-index.js';
import { policyChanges } from './types/policy-audit.js';

/**
 * Changes diffed and alerted on per turn of the event loop, so a webhook batch of 100,000 changes does not stall
 * /healthz.
 */
const CHANGES_PER_TURN = 1000;

/**
 * Count and alert on policy changes just stored (from the audit webhook or the
 * policy watch). A change the other source already reported (same object and
 * verb within a minute) is not counted or alerted twice. Linear in the events
 * and the stored events around them; the work is done a slice at a time, each
 * slice holding every change to its objects, yielding to the event loop between.
 */
export async function noteNewPolicyEvents(
  store: Store,
  metrics: AggregatorMetrics,
  tamper: TamperConfig,
  log: Logger,
  fresh: StoredAuditEvent[],
): Promise<void> {
  const events = fresh.filter((e) => e.verb !== 'observe');
  if (events.length === 0) return;
  const freshIds = new Set(fresh.map((e) => e.auditId));
  const changeKey = (e: StoredAuditEvent, watch: boolean) =>
    JSON.stringify([e.apiGroup, e.resource, e.namespace, e.name, e.verb.replace('patch', 'update'), watch]);
  const seen = new TimeIndex<true>();
  const windows = windowsAround(
    events.map((e) => e.stageMs),
    60_000,
  );
  for (let w = 0; w < windows.length; w++) {
    // A store answer is a microtask, not a turn: a batch spread over many minutes is many reads.
    if (w > 0 && w % 100 === 0) await nextTurn();
    const [fromMs, toMs] = windows[w] as [number, number];
    await inTurns(await store.auditEvents(fromMs, toMs), (n) => {
      if (!freshIds.has(n.auditId)) seen.add(changeKey(n, isWatchedVersion(n)), n.stageMs, true);
    });
  }
  // Previous versions are looked up from before the batch's first change, as one batch.
  let from = Infinity;
  for (const e of events) from = Math.min(from, e.stageMs);

  // policyChanges pairs a change with its previous version and with its twin from the
  // other source by kind, namespace and name, so each slice holds all of an object's events.
  const byObject = new Map<string, StoredAuditEvent[]>();
  await inTurns(events, (e) => {
    if (seen.earliestWithin(changeKey(e, !isWatchedVersion(e)), e.stageMs, 60_000)) return;
    const k = JSON.stringify([e.resource, e.namespace, e.name]);
    const list = byObject.get(k);
    if (list) list.push(e);
    else byObject.set(k, [e]);
  });
  let slice: StoredAuditEvent[] = [];
  const noteSlice = async () => {
    const history = await store.latestAuditEvents(slice, from);
    const changes = policyChanges(slice, history);
    for (const c of changes) metrics.policyChanges.inc({ kind: c.kind });
    for (const a of tamperAlerts(changes, tamper)) {
      metrics.tamperAlerts.inc({ kind: a.kind });
      log.warn(
        {
          alert: 'policy-tamper',
          kind: a.kind,
          namespace: a.namespace,
          name: a.name,
          verb: a.verb,
          user: a.user || 'unknown',
          source: a.source,
          reason: a.reason,
          auditId: a.auditId,
        },
        'change to a protected network policy',
      );
    }
    slice = [];
    await nextTurn();
  };
  for (const list of byObject.values()) {
    for (const e of list) slice.push(e);
    if (slice.length >= CHANGES_PER_TURN) await noteSlice();
  }
  if (slice.length > 0) await noteSlice();
}

/** `fn` over `list`, yielding to the event loop every CHANGES_PER_TURN items. */
async function inTurns<T>(list: T[], fn: (v: T) => void): Promise<void> {
  for (let k = 0; k < list.length; k++) {
    if (k > 0 && k % CHANGES_PER_TURN === 0) await nextTurn();
    fn(list[k] as T);
  }
}

/**
 * The time ranges within `marginMs` of the given times, merged where they
 * overlap: reading these instead of one range from the first to the last reads
 * no more than the events near a change, however far apart a batch's times are.
 */
export function windowsAround(times: number[], marginMs: number): [number, number][] {
  const sorted = [...times].sort((a, b) => a - b);
  const out: [number, number][] = [];
  for (const t of sorted) {
    const last = out[out.length - 1];
    if (last && t - marginMs <= last[1]) last[1] = t + marginMs + 1;
    else out.push([t - marginMs, t + marginMs + 1]);
  }
  return out;
}
