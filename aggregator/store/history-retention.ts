import type { AuditEventRow } from './rows.js';
import type { Conn, Dialect } from './sql.js';

/**
 * The audit events that speak for objects of one resource the history holds as existing: each object's latest event
 * older than `beforeMs`, unless it is a deletion or any later event exists (something newer speaks for the object).
 */
export function objectsExisting(
  reader: Conn,
  d: Dialect,
  apiGroup: string,
  resource: string,
  beforeMs: number,
): Promise<AuditEventRow[]> {
  return reader.all<AuditEventRow>(
    `SELECT a.* FROM audit_events a WHERE a.api_group = $1 AND a.resource = $2 AND a.stage_ms < $3 AND a.verb <> 'delete'
       AND NOT EXISTS (SELECT 1 FROM audit_events b WHERE b.api_group = a.api_group AND b.resource = a.resource
         AND b.namespace = a.namespace AND b.name = a.name
         AND (b.stage_ms > a.stage_ms OR (b.stage_ms = a.stage_ms AND ${d.byteOrder('b.audit_id')} > ${d.byteOrder('a.audit_id')})))`,
    [apiGroup, resource, beforeMs],
  );
}

/**
 * Retention of pod and namespace history, in one transaction's connection: pods deleted before `beforeMs` go with
 * their label versions, and a label version (a pod's, a namespace's) replaced at or before `beforeMs` goes; the
 * version in force at `beforeMs` stays, so intervals after it are judged as before. Answers how many rows went.
 */
export async function deletePodHistory(c: Conn, beforeMs: number): Promise<number> {
  let n = await c.run(
    `DELETE FROM pod_label_versions WHERE uid IN
       (SELECT uid FROM pod_history WHERE deleted_ms IS NOT NULL AND deleted_ms < $1)`,
    [beforeMs],
  );
  n += await c.run('DELETE FROM pod_history WHERE deleted_ms IS NOT NULL AND deleted_ms < $1', [beforeMs]);
  n += await c.run(
    `DELETE FROM pod_label_versions WHERE EXISTS (SELECT 1 FROM pod_label_versions b
       WHERE b.uid = pod_label_versions.uid AND b.from_ms > pod_label_versions.from_ms AND b.from_ms <= $1)`,
    [beforeMs],
  );
  n += await c.run(
    `DELETE FROM namespace_versions WHERE EXISTS (SELECT 1 FROM namespace_versions b
       WHERE b.name = namespace_versions.name AND b.from_ms > namespace_versions.from_ms AND b.from_ms <= $1)`,
    [beforeMs],
  );
  // A namespace deleted before the horizon: its deletion row is all that is left of it.
  n += await c.run('DELETE FROM namespace_versions WHERE labels_json IS NULL AND from_ms < $1', [beforeMs]);
  return n;
}
