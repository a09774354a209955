import type { StoredAuditEvent } from '../../store/index.js';
import type { ReportDefinition } from '../globalreport.js';
import type { ReportFile } from '../result.js';

/** Network-policy resources whose changes are audited: Kubernetes, Calico (API and CRD groups) and Cilium. */
export const POLICY_RESOURCES: Record<string, string[]> = {
  'networking.k8s.io': ['networkpolicies'],
  'projectcalico.org': ['networkpolicies', 'globalnetworkpolicies', 'stagednetworkpolicies', 'stagedglobalnetworkpolicies', 'stagedkubernetesnetworkpolicies', 'tiers', 'networksets', 'globalnetworksets'],
  'crd.projectcalico.org': ['networkpolicies', 'globalnetworkpolicies', 'stagednetworkpolicies', 'stagedglobalnetworkpolicies', 'stagedkubernetesnetworkpolicies', 'tiers', 'networksets', 'globalnetworksets'],
  'cilium.io': ['ciliumnetworkpolicies', 'ciliumclusterwidenetworkpolicies'],
};
const CHANGE_VERBS = new Set(['create', 'update', 'patch', 'delete']);

export function isPolicyChange(e: Pick<StoredAuditEvent, 'apiGroup' | 'resource' | 'verb'>): boolean {
  return isPolicyResource(e) && CHANGE_VERBS.has(e.verb);
}

/** The API group is an audit event's word ("constructor" is not a group of ours): own keys only. */
function isPolicyResource(e: Pick<StoredAuditEvent, 'apiGroup' | 'resource'>): boolean {
  return Object.hasOwn(POLICY_RESOURCES, e.apiGroup) && (POLICY_RESOURCES[e.apiGroup] as string[]).includes(e.resource);
}

export interface PolicyChange {
  time: string;
  verb: string;
  kind: string;
  namespace: string;
  name: string;
  /** Calico's tier: from the object, or the "tier." prefix of the name. */
  tier: string;
  user: string;
  sourceIPs: string[];
  auditId: string;
  /** Field changes against the previous known version: path, before, after. */
  diff: { path: string; before: unknown; after: unknown }[];
  /** "audit": the API server's audit log (knows the user); "watch": Verdict's own policy version history. */
  source: 'audit' | 'watch';
}

type AuditEvent = { objectRef?: { apiGroup?: string; resource?: string; namespace?: string; name?: string }; requestObject?: unknown; responseObject?: unknown; user?: { username?: string }; sourceIPs?: string[] };

/**
 * Every create/update/patch/delete of a network policy in the interval, who
 * made it and what changed. The previous version of each policy is the last
 * one seen in earlier events (`history`), so a diff needs no cluster access;
 * where no earlier version is known the whole object is the change.
 */
export function policyChanges(events: StoredAuditEvent[], history: StoredAuditEvent[] = []): PolicyChange[] {
  const last = new Map<string, unknown>();
  const key = (e: StoredAuditEvent) => `${e.apiGroup}/${e.resource}/${e.namespace}/${e.name}`;
  const objectOf = (e: StoredAuditEvent): unknown => {
    const ev = e.event as AuditEvent;
    return e.verb === 'delete' ? undefined : (ev.responseObject ?? ev.requestObject);
  };
  const known = (e: StoredAuditEvent) => isPolicyChange(e) || (e.verb === 'observe' && isPolicyResource(e));
  for (const e of history.filter(known)) last.set(key(e), objectOf(e));
  const out: PolicyChange[] = [];
  for (const e of events.filter(known)) {
    if (e.verb === 'observe') {
      // A watch (re)list: the version as it was then, a baseline for the next diff, not a change.
      last.set(key(e), objectOf(e));
      continue;
    }
    const ev = e.event as AuditEvent;
    const before = last.get(key(e));
    const after = objectOf(e);
    last.set(key(e), after);
    const spec = (o: unknown) => (o as { spec?: unknown } | undefined)?.spec;
    const tierField = (spec(after ?? before) as { tier?: string } | undefined)?.tier;
    out.push({
      time: new Date(e.stageMs).toISOString(),
      verb: e.verb,
      kind: e.resource,
      namespace: e.namespace,
      name: e.name,
      tier: tierField ?? (e.name.includes('.') && e.apiGroup.includes('projectcalico') ? (e.name.split('.')[0] as string) : e.apiGroup.includes('projectcalico') ? 'default' : ''),
      user: e.username,
      sourceIPs: ev.sourceIPs ?? [],
      auditId: e.auditId,
      diff: jsonDiff(spec(before), spec(after), 'spec'),
      source: (ev as { source?: string }).source === 'watch' ? 'watch' : 'audit',
    });
  }
  // The same change seen by the watch and by the audit webhook is one change: the audit event
  // says who; whichever came first saw the version before, so it has the diff.
  const same = (a: PolicyChange, w: PolicyChange) =>
    a.source === 'audit' && w.source === 'watch' && a.verb.replace('patch', 'update') === w.verb && a.kind === w.kind && a.namespace === w.namespace && a.name === w.name && Math.abs(Date.parse(a.time) - Date.parse(w.time)) < 60_000;
  return out
    .filter((c) => c.source === 'audit' || !out.some((a) => same(a, c)))
    .map((c) => {
      const w = c.source === 'audit' && c.diff.length === 0 ? out.find((x) => same(c, x)) : undefined;
      return w ? { ...c, diff: w.diff } : c;
    });
}

/** Leaf-level differences between two JSON values. */
export function jsonDiff(a: unknown, b: unknown, path = ''): { path: string; before: unknown; after: unknown }[] {
  if (JSON.stringify(a) === JSON.stringify(b)) return [];
  const isObj = (v: unknown) => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (isObj(a) && isObj(b)) {
    const keys = [...new Set([...Object.keys(a as object), ...Object.keys(b as object)])].sort();
    // A key on one side only is undefined on the other, never something inherited ("constructor").
    const at = (o: unknown, k: string) => (Object.hasOwn(o as object, k) ? (o as Record<string, unknown>)[k] : undefined);
    return keys.flatMap((k) => jsonDiff(at(a, k), at(b, k), path ? `${path}.${k}` : k));
  }
  return [{ path, before: a, after: b }];
}

/** The policy-audit report: changes in the interval within the namespace scope. */
export function policyAuditReport(def: ReportDefinition, events: StoredAuditEvent[], history: StoredAuditEvent[], interval: { start: string; end: string }) {
  const names = def.spec.endpoints?.namespaces?.names;
  const changes = policyChanges(events, history).filter((c) => !names || c.namespace === '' || names.includes(c.namespace));
  const summary = {
    startTime: interval.start,
    endTime: interval.end,
    namespaceNames: names ?? [],
    numCreatedPolicies: changes.filter((c) => c.verb === 'create').length,
    numModifiedPolicies: changes.filter((c) => c.verb === 'update' || c.verb === 'patch').length,
    numDeletedPolicies: changes.filter((c) => c.verb === 'delete').length,
  };
  const files: Record<string, ReportFile> = {
    'summary.csv': { header: Object.keys(summary), rows: [Object.values(summary)] },
    'events.csv': {
      header: ['time', 'verb', 'kind', 'namespace', 'name', 'tier', 'user', 'sourceIPs', 'source', 'auditId', 'changedFields'],
      rows: changes.map((c) => [c.time, c.verb, c.kind, c.namespace, c.name, c.tier, c.user || 'unknown', c.sourceIPs, c.source, c.auditId, c.diff.map((d) => d.path)]),
    },
  };
  return { summary, data: { changes }, files };
}
