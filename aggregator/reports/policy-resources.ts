import type { StoredAuditEvent } from '../store/index.js';

export interface PolicyResource {
  /** API group: "networking.k8s.io", "projectcalico.org", ... */
  group: string;
  /** The plural resource; also the `kind` of a policy change, a tamper alert and their metrics. */
  resource: string;
  /**
   * The API version the aggregator watches it at for its own version history
   * (kube/policy-history.ts); absent: known from audit events only. The CRD
   * group crd.projectcalico.org is not watched: Calico's API server serves the
   * same objects as projectcalico.org.
   */
  watchVersion?: string;
}

const CALICO_RESOURCES = [
  'networkpolicies',
  'globalnetworkpolicies',
  'stagednetworkpolicies',
  'stagedglobalnetworkpolicies',
  'stagedkubernetesnetworkpolicies',
  'tiers',
  'networksets',
  'globalnetworksets',
];
const CALICO_WATCHED = new Set([
  'networkpolicies',
  'globalnetworkpolicies',
  'stagednetworkpolicies',
  'stagedglobalnetworkpolicies',
  // projectcalico.org/v3 StagedKubernetesNetworkPolicy: a Kubernetes NetworkPolicy previewed, kept apart as staged.
  'stagedkubernetesnetworkpolicies',
  'tiers',
  // Network sets: the nets Calico rule selectors name, which decide whether a rule reaches the internet.
  'networksets',
  'globalnetworksets',
]);

/** The network-policy resources Verdict audits: Kubernetes, Calico (API and CRD groups) and Cilium. */
export const POLICY_RESOURCES: readonly PolicyResource[] = [
  { group: 'networking.k8s.io', resource: 'networkpolicies', watchVersion: 'v1' },
  ...CALICO_RESOURCES.map((resource) => ({
    group: 'projectcalico.org',
    resource,
    ...(CALICO_WATCHED.has(resource) ? { watchVersion: 'v3' } : {}),
  })),
  ...CALICO_RESOURCES.map((resource) => ({ group: 'crd.projectcalico.org', resource })),
  { group: 'cilium.io', resource: 'ciliumnetworkpolicies', watchVersion: 'v2' },
  { group: 'cilium.io', resource: 'ciliumclusterwidenetworkpolicies', watchVersion: 'v2' },
];

/** Every audited resource: the `kind` of a policy change and of a tamper alert. */
export const POLICY_KINDS: readonly string[] = [...new Set(POLICY_RESOURCES.map((r) => r.resource))];

const byGroup = new Map<string, Set<string>>();
for (const r of POLICY_RESOURCES) byGroup.set(r.group, (byGroup.get(r.group) ?? new Set()).add(r.resource));

/**
 * Whether a resource is a network-policy resource (any string may come from an audit event: "constructor" is no group).
 */
export function isPolicyResource(apiGroup: string, resource: string): boolean {
  return byGroup.get(apiGroup)?.has(resource) ?? false;
}

/**
 * Policy versions from the aggregator's own watch are stored beside the audit
 * webhook's events, with IDs "watch:<uid>:<resourceVersion>:<deleted?>" so each
 * version is kept once; the prefix is what tells the two sources apart.
 */
export function watchedVersionId(
  object: { uid?: string; namespace?: string; name: string; resourceVersion?: string },
  deleted: boolean,
): string {
  return `watch:${object.uid ?? `${object.namespace ?? ''}/${object.name}`}:${object.resourceVersion ?? ''}:${deleted ? 'deleted' : ''}`;
}

/** Whether a stored event is a version from the aggregator's watch (else an audit webhook event). */
export function isWatchedVersion(e: Pick<StoredAuditEvent, 'auditId'>): boolean {
  return e.auditId.startsWith('watch:');
}

/** The kind of each watched resource's objects, by "group/resource". */
const WATCHED_KINDS: Readonly<Record<string, string>> = {
  'networking.k8s.io/networkpolicies': 'NetworkPolicy',
  'projectcalico.org/networkpolicies': 'NetworkPolicy',
  'projectcalico.org/globalnetworkpolicies': 'GlobalNetworkPolicy',
  'projectcalico.org/stagednetworkpolicies': 'StagedNetworkPolicy',
  'projectcalico.org/stagedglobalnetworkpolicies': 'StagedGlobalNetworkPolicy',
  'projectcalico.org/stagedkubernetesnetworkpolicies': 'StagedKubernetesNetworkPolicy',
  'projectcalico.org/tiers': 'Tier',
  'projectcalico.org/networksets': 'NetworkSet',
  'projectcalico.org/globalnetworksets': 'GlobalNetworkSet',
  'cilium.io/ciliumnetworkpolicies': 'CiliumNetworkPolicy',
  'cilium.io/ciliumclusterwidenetworkpolicies': 'CiliumClusterwideNetworkPolicy',
};

/**
 * The apiVersion and kind of a watched resource's objects. The API server leaves both out of each item of a list
 * (kubernetes/kubernetes#3030), so a version recorded from a (re)list has neither; a watch event's object has them.
 */
export function watchedTypeOf(group: string, resource: string): { apiVersion: string; kind: string } | undefined {
  const r = POLICY_RESOURCES.find((x) => x.group === group && x.resource === resource && x.watchVersion !== undefined);
  const kind = Object.prototype.hasOwnProperty.call(WATCHED_KINDS, `${group}/${resource}`)
    ? WATCHED_KINDS[`${group}/${resource}`]
    : undefined;
  return r && kind
    ? { apiVersion: group === '' ? `${r.watchVersion}` : `${group}/${r.watchVersion}`, kind }
    : undefined;
}
