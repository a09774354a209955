import Type, { type Static } from 'typebox';
import { Compile, type Validator } from 'typebox/compile';
import { boundJson, STORED_EVENT_MAX_DEPTH } from '../reports/json-bounds.js';
import { isPolicyChange } from '../reports/types/policy-audit.js';
import type { StoredAuditEvent } from '../store/index.js';

/** Limits on one audit event received on the webhook. */
const AUDIT_EVENT_LIMITS = {
  maxDepth: STORED_EVENT_MAX_DEPTH,
  /**
   * Characters of JSON per stored event: etcd takes objects up to 1.5 MiB, and an event can hold the request and the
   * response.
   */
  maxEventChars: 4 * 1024 * 1024,
};

const Name = Type.String({ maxLength: 1024 });

/**
 * The fields of an audit.k8s.io/v1 Event that Verdict reads, with their types;
 * everything else (requestObject, responseObject, annotations, ...) is kept as
 * it came, only bounded in depth and size. Optional where the old webhook took
 * a missing field as empty.
 */
const AuditEventFields = Type.Object({
  auditID: Type.String({ minLength: 1, maxLength: 256 }),
  stage: Type.String({ maxLength: 64 }),
  verb: Type.String({ maxLength: 64 }),
  stageTimestamp: Type.String({ maxLength: 64 }),
  user: Type.Optional(Type.Object({ username: Type.Optional(Name) })),
  objectRef: Type.Optional(
    Type.Object({
      resource: Type.Optional(Name),
      namespace: Type.Optional(Name),
      name: Type.Optional(Name),
      apiGroup: Type.Optional(Name),
    }),
  ),
  responseStatus: Type.Optional(Type.Object({ code: Type.Optional(Type.Integer()) })),
  sourceIPs: Type.Optional(Type.Array(Type.String({ maxLength: 64 }), { maxItems: 64 })),
});

let validator: Validator | undefined;

/** What the webhook does with one item of an EventList. */
export type AuditItem =
  | {
      outcome: 'keep';
      event: StoredAuditEvent;
      /**
       * Set when part of the event was cut before storing: what and why (also in the stored event's
       * `verdictTruncated`).
       */
      truncation?: string;
    }
  /** A well-formed event that is not a completed, successful network-policy change. */
  | { outcome: 'ignore' }
  /** Not an audit event Verdict can read; the reason names the field. */
  | { outcome: 'refuse'; reason: string };

const describe = (v: unknown) => (v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v);

/**
 * Validate one item of a webhook EventList and, for a network-policy change,
 * the event to store. Pure and linear in the item's size: it never recurses on
 * the item's shape, so an item nested millions of levels deep costs what its
 * bytes cost.
 *
 * An event nested deeper than AUDIT_EVENT_LIMITS.maxDepth is stored, not
 * refused: the API server sends the client's raw requestObject, so refusing it
 * would let anyone allowed to change a policy hide the change from the audit
 * trail by adding a deep unknown field. Its deeper parts are replaced by a
 * marker, keys named "__proto__" are left out, and an event still over
 * maxEventChars loses its request and response objects; the stored event lists
 * what was cut in `verdictTruncated`, and the webhook counts it. Who changed
 * which object, and when, is always kept.
 */
export function readAuditItem(raw: unknown): AuditItem {
  validator ??= Compile(AuditEventFields) as unknown as Validator;
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    return { outcome: 'refuse', reason: `expected an audit.k8s.io/v1 Event object, got ${describe(raw)}` };
  if (!validator.Check(raw)) {
    const err = [...validator.Errors(raw)].sort((a, b) => b.instancePath.length - a.instancePath.length)[0];
    const where = (err?.instancePath ?? '').replace(/^\//, '').replace(/\//g, '.');
    return {
      outcome: 'refuse',
      reason: `${where ? `${where}: ` : ''}${err?.message ?? 'not an audit.k8s.io/v1 Event'}`,
    };
  }
  const e = raw as Static<typeof AuditEventFields>;
  const stageMs = Date.parse(e.stageTimestamp);
  if (!Number.isFinite(stageMs))
    return {
      outcome: 'refuse',
      reason: `stageTimestamp: expected an RFC 3339 time like "2026-11-20T10:01:00.000000Z", got ${JSON.stringify(e.stageTimestamp)}`,
    };
  const ref = e.objectRef ?? {};
  const fields = {
    auditId: e.auditID,
    stageMs,
    verb: e.verb,
    resource: ref.resource ?? '',
    apiGroup: ref.apiGroup ?? '',
    namespace: ref.namespace ?? '',
    name: ref.name ?? '',
    username: e.user?.username ?? '',
  };
  if (e.stage !== 'ResponseComplete' || (e.responseStatus?.code ?? 200) >= 400 || !isPolicyChange(fields))
    return { outcome: 'ignore' };

  const cut: string[] = [];
  let bounded = boundJson(raw, AUDIT_EVENT_LIMITS.maxDepth);
  if (bounded.truncated > 0)
    cut.push(
      `${bounded.truncated} part(s) nested deeper than ${AUDIT_EVENT_LIMITS.maxDepth} levels replaced by a marker, the first at ${bounded.firstTruncatedAt}`,
    );
  if (bounded.protoKeysRemoved > 0) cut.push(`${bounded.protoKeysRemoved} key(s) named __proto__ removed`);
  if (bounded.approxJsonChars > AUDIT_EVENT_LIMITS.maxEventChars) {
    const limit = `${AUDIT_EVENT_LIMITS.maxEventChars / 1024 / 1024} MiB`;
    const slim: Record<string, unknown> = { ...(bounded.value as Record<string, unknown>) };
    for (const k of ['requestObject', 'responseObject'])
      if (k in slim) slim[k] = `[verdict: removed, the event was larger than ${limit}]`;
    bounded = boundJson(slim, AUDIT_EVENT_LIMITS.maxDepth);
    if (bounded.approxJsonChars > AUDIT_EVENT_LIMITS.maxEventChars)
      return {
        outcome: 'refuse',
        reason: `the event is larger than ${limit} even without its requestObject and responseObject`,
      };
    cut.push(`requestObject and responseObject removed: the event was larger than ${limit}`);
  }
  const event = bounded.value as Record<string, unknown>;
  // The mark is Verdict's: one that came with the event is not kept.
  if (cut.length > 0) event.verdictTruncated = cut;
  else delete event.verdictTruncated;
  return { outcome: 'keep', event: { ...fields, event }, ...(cut.length > 0 ? { truncation: cut.join('; ') } : {}) };
}
