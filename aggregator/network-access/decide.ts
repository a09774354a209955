import type {
  ConfigHostEndpoint,
  ConfigNamespace,
  ConfigNetworkSet,
  ConfigPod,
  ConfigTier,
  ConfiguredPolicy,
  Direction,
  Peer,
  SelfEndpoint,
} from './policy-model.js';

/** What the configuration does with a class of peers in one direction of one endpoint. */
export interface Decision {
  /** Some traffic of the class is allowed. */
  allowed: boolean;
  /** A policy decides it (false: no policy applies in this direction; the profile or Cilium's default allows). */
  byPolicy: boolean;
}

/** Calico's default tier sits after every tier with a lower order (Calico's documented default order 1,000,000). */
const DEFAULT_TIER: ConfigTier = { name: 'default', order: 1_000_000, defaultAction: 'Deny' };

const byOrder = (a: number | undefined, b: number | undefined) =>
  a === undefined ? (b === undefined ? 0 : 1) : b === undefined ? -1 : a - b;

/**
 * Calico's tiered evaluation for one class of peers: tiers in order; within a tier, policies by order then name, rules
 * in order. A rule covering the whole class decides it (Allow, Deny) or sends it to the next tier (Pass). A rule
 * covering some of it splits the class: that part takes the rule's action (an Allow makes "some allowed", a Pass
 * sends that part on to the next tier, whose answer counts), the rest goes on to the following rules. A tier with an
 * applicable policy and no decision ends with its default action (Deny unless the Tier says Pass). No tier deciding:
 * the profile, which allows for a pod (its namespace's) and for a host endpoint with profiles, else denies.
 *
 * Exact for whole classes. For partial rules it is exact as long as the parts rules cover are independent of one
 * another; where two partial rules on one path name disjoint traffic (a Pass for port 80, then a next tier that
 * allows only port 443), the path is still counted as allowing: Verdict answers "allowed" for traffic no packet can
 * take, never the other way round.
 */
function calicoDecision(
  policies: readonly ConfiguredPolicy[],
  dir: Direction,
  peer: Peer,
  tiers: ReadonlyMap<string, ConfigTier>,
  profileAllows: boolean,
): Decision {
  if (policies.length === 0) return { allowed: profileAllows, byPolicy: false };
  const tierOf = (name: string) =>
    tiers.get(name) ?? (name === 'default' ? DEFAULT_TIER : { name, order: undefined, defaultAction: 'Deny' as const });
  const tierNames = [...new Set(policies.map((p) => p.tier))].sort(
    (a, b) => byOrder(tierOf(a).order, tierOf(b).order) || a.localeCompare(b),
  );
  // What happens to (part of) the class entering tier k; each tier's answer does not depend on how traffic got there,
  // so it is worked out once.
  const answers: Decision[] = [];
  const from = (k: number): Decision => {
    const known = answers[k];
    if (known) return known;
    const answer = tierAnswer(k);
    answers[k] = answer;
    return answer;
  };
  const tierAnswer = (k: number): Decision => {
    const tierName = tierNames[k];
    if (tierName === undefined) return { allowed: profileAllows, byPolicy: false };
    const inTier = policies
      .filter((p) => p.tier === tierName)
      .sort((a, b) => byOrder(a.order, b.order) || a.id.localeCompare(b.id));
    let someAllowed = false;
    let someByPolicy = false;
    for (const p of inTier)
      for (const r of p.rules[dir]) {
        const c = r.covers(peer);
        if (c === 'none' || r.action === 'Log') continue;
        if (r.action === 'Allow') {
          if (c === 'all') return { allowed: true, byPolicy: true };
          someAllowed = someByPolicy = true;
        } else if (r.action === 'Deny') {
          if (c === 'all') return { allowed: someAllowed, byPolicy: true };
        } else {
          const next = from(k + 1);
          if (c === 'all') return { allowed: someAllowed || next.allowed, byPolicy: someByPolicy || next.byPolicy };
          someAllowed ||= next.allowed;
          someByPolicy ||= next.byPolicy;
        }
      }
    if (tierOf(tierName).defaultAction === 'Pass') {
      const next = from(k + 1);
      return { allowed: someAllowed || next.allowed, byPolicy: someByPolicy || next.byPolicy };
    }
    return { allowed: someAllowed, byPolicy: true };
  };
  return from(0);
}

/** Cilium: with no policy in this direction everything is allowed; else deny rules win, then any allow rule. */
function ciliumDecision(policies: readonly ConfiguredPolicy[], dir: Direction, peer: Peer): Decision {
  if (policies.length === 0) return { allowed: true, byPolicy: false };
  const rules = policies.flatMap((p) => p.rules[dir]);
  if (rules.some((r) => r.action === 'Deny' && r.covers(peer) === 'all')) return { allowed: false, byPolicy: true };
  return { allowed: rules.some((r) => r.action === 'Allow' && r.covers(peer) !== 'none'), byPolicy: true };
}

/**
 * What the enforced policies applying to an endpoint (in one direction) do with a class of peers. Calico and Cilium
 * policies are separate dataplanes' rules; where both apply, traffic passes only if both allow it. With no Calico
 * policy deciding, a pod's namespace profile allows; a host endpoint without profiles denies (Calico's "Host endpoint"
 * reference: default deny when no policy is in place), so `profileAllows` is false for it.
 */
export function decide(
  applying: readonly ConfiguredPolicy[],
  dir: Direction,
  peer: Peer,
  tiers: ReadonlyMap<string, ConfigTier>,
  self?: SelfEndpoint,
  profileAllows = true,
): Decision {
  const inDir = applying
    .filter((p) => !p.staged && p.directions.has(dir))
    .map((p) => (self && p.rules[dir].some((r) => r.selfMatches) ? forSelf(p, dir, self) : p));
  const calico = calicoDecision(
    inDir.filter((p) => p.engine === 'calico'),
    dir,
    peer,
    tiers,
    profileAllows,
  );
  const cilium = ciliumDecision(
    inDir.filter((p) => p.engine === 'cilium'),
    dir,
    peer,
  );
  return { allowed: calico.allowed && cilium.allowed, byPolicy: calico.byPolicy || cilium.byPolicy };
}

/** The policy with only the rules of a direction that apply to this endpoint. */
function forSelf(p: ConfiguredPolicy, dir: Direction, self: SelfEndpoint): ConfiguredPolicy {
  const rules = p.rules[dir].filter((r) => r.selfMatches?.(self) ?? true);
  return { ...p, rules: { ...p.rules, [dir]: rules } };
}

/** One endpoint's configured evidence at one moment. */
export interface PodConfiguration {
  /** Enforced policies that select it (either direction), by flow-log name. */
  applied: string[];
  /** Staged policies that select it: intent, not protection. */
  staged: string[];
  /** At least one enforced policy with rules in that direction selects it (Calico's "protected"). */
  protected: Record<Direction, boolean>;
  /** The configuration lets some internet traffic in / out. */
  internet: Record<Direction, boolean>;
  /** Namespaces other than its own that the configuration lets some traffic in from / out to. */
  otherNamespaces: Record<Direction, string[]>;
}

export function podConfiguration(
  pod: ConfigPod,
  ns: ConfigNamespace,
  policies: readonly ConfiguredPolicy[],
  namespaces: readonly ConfigNamespace[],
  tiers: ReadonlyMap<string, ConfigTier>,
  /** The Calico network sets in force, which rule selectors may name. */
  networkSets: readonly ConfigNetworkSet[] = [],
): PodConfiguration {
  const applying = policies.filter((p) => p.selects(pod, ns));
  return endpointConfiguration({ pod, ns }, pod.namespace, applying, namespaces, tiers, networkSets, true);
}

/**
 * A Calico host endpoint's configured evidence at one moment: the GlobalNetworkPolicies selecting it; every namespace
 * is another namespace to it. Without a profile, traffic no policy allows is denied.
 */
export function hostEndpointConfiguration(
  host: ConfigHostEndpoint,
  policies: readonly ConfiguredPolicy[],
  namespaces: readonly ConfigNamespace[],
  tiers: ReadonlyMap<string, ConfigTier>,
  networkSets: readonly ConfigNetworkSet[] = [],
): PodConfiguration {
  const applying = policies.filter((p) => p.selectsHost?.(host) ?? false);
  return endpointConfiguration({ host }, '', applying, namespaces, tiers, networkSets, host.profiles.length > 0);
}

function endpointConfiguration(
  self: SelfEndpoint,
  ownNamespace: string,
  applying: readonly ConfiguredPolicy[],
  namespaces: readonly ConfigNamespace[],
  tiers: ReadonlyMap<string, ConfigTier>,
  networkSets: readonly ConfigNetworkSet[],
  profileAllows: boolean,
): PodConfiguration {
  const enforced = applying.filter((p) => !p.staged);
  const out: PodConfiguration = {
    applied: enforced.map((p) => p.id).sort(),
    staged: applying
      .filter((p) => p.staged)
      .map((p) => p.id)
      .sort(),
    protected: { ingress: false, egress: false },
    internet: { ingress: false, egress: false },
    otherNamespaces: { ingress: [], egress: [] },
  };
  for (const dir of ['ingress', 'egress'] as const) {
    out.protected[dir] = enforced.some((p) => p.directions.has(dir));
    const allows = (peer: Peer) => decide(enforced, dir, peer, tiers, self, profileAllows).allowed;
    out.internet[dir] = allows({ kind: 'internet', networkSets });
    out.otherNamespaces[dir] = namespaces
      .filter((n) => n.name !== ownNamespace && allows({ kind: 'namespace', namespace: n }))
      .map((n) => n.name);
  }
  return out;
}
