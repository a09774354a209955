import type { PolicyRef } from '../../../common/flow.js';
import { uniquePolicies } from '../normalize.js';

/**
 * The `policies` of a Felix flow-log record: its hits ("index|tier|name|action[|rule]") read into the policies that
 * decided the flow. Split from calico.ts, which reads the rest of the record.
 */

/** What a record's `policies` says: its enforced policies (undefined: a hit cannot be read), staged ones, decided. */
export interface PolicyHits {
  enforced: PolicyRef[] | undefined;
  staged: PolicyRef[];
  decided: boolean;
}

/** Bounded like calico.ts's endpoints: emptied when it holds this many. */
const MAX_CACHED_LISTS = 10_000;

/** Policy lists already read, by their JSON: like endpoints, a log repeats the same few; shared, never changed. */
const policyLists = new Map<string, PolicyHits>();

export function cachedPolicies(field: unknown): PolicyHits {
  if (field === null || field === undefined) return NO_POLICIES;
  const key = policiesKey(field);
  const known = policyLists.get(key);
  if (known) return known;
  if (policyLists.size >= MAX_CACHED_LISTS) policyLists.clear();
  const hits = policiesOf(field);
  policyLists.set(key, hits);
  return hits;
}

/** Empty the cache (tests: a record parsed with warm caches must equal the same record parsed cold). */
export function forgetPolicyLists(): void {
  policyLists.clear();
}

/**
 * What policiesOf reads of a `policies` object, as a string: its three hit lists joined (cheaper than its JSON);
 * anything but lists of hit strings goes by its JSON.
 */

/** Whether a hit holds one of the characters the key separates with (\u0001-\u0004): it then goes by its JSON. */
function hasSeparator(h: string): boolean {
  for (let i = 0; i < h.length; i++) {
    const c = h.charCodeAt(i);
    if (c >= 1 && c <= 4) return true;
  }
  return false;
}

function policiesKey(field: unknown): string {
  if (typeof field !== 'object' || field === null || Array.isArray(field)) return `j${JSON.stringify(field)}`;
  const f = field as Record<string, unknown>;
  let key = 'h';
  for (const list of [f.all_policies, f.enforced_policies, f.pending_policies]) {
    if (list === undefined) key += '\u0002';
    else if (list === null) key += '\u0003';
    else if (Array.isArray(list) && list.every((h) => typeof h === 'string' && !hasSeparator(h)))
      key += `\u0004${list.join('\u0001')}`;
    else return `j${JSON.stringify(field)}`;
  }
  return key;
}

export const NO_POLICIES: PolicyHits = Object.freeze({ enforced: [], staged: [], decided: false });

interface Hit {
  index: number;
  policy: PolicyRef;
  staged: boolean;
  profile: boolean;
}

/**
 * Enforced policy hits (profiles and staged ones left out), the staged hits
 * seen, and whether the verdict came from a real policy: sorted by index, the
 * last allow/deny hit decides ("pass" hands over to the next tier); if that is
 * a profile, no policy protected the endpoint. `enforced_policies` is the
 * truth where present; old records only have `all_policies`. Staged hits are
 * taken from `pending_policies` (or `all_policies`) and never decide anything.
 */
function policiesOf(field: unknown): PolicyHits {
  if (field === null || field === undefined) return { enforced: [], staged: [], decided: false };
  if (typeof field !== 'object') return { enforced: undefined, staged: [], decided: false };
  const f = field as Record<string, unknown>;
  const parseList = (v: unknown): Hit[] | undefined => {
    if (v === null || v === undefined) return [];
    if (!Array.isArray(v)) return undefined;
    const hits: Hit[] = [];
    for (const x of v) {
      const h = typeof x === 'string' ? parseHit(x) : undefined;
      if (!h) return undefined;
      hits.push(h);
    }
    return hits.sort((a, b) => a.index - b.index);
  };
  const enforcedHits = f.enforced_policies !== undefined ? parseList(f.enforced_policies) : parseList(f.all_policies);
  const pendingHits = f.pending_policies !== undefined ? parseList(f.pending_policies) : parseList(f.all_policies);
  if (!enforcedHits || !pendingHits) return { enforced: undefined, staged: [], decided: false };
  const real = enforcedHits.filter((h) => !h.staged);
  const decisive = [...real].reverse().find((h) => h.policy.action === 'allow' || h.policy.action === 'deny');
  return {
    enforced: uniquePolicies(real.filter((h) => !h.profile).map((h) => h.policy)),
    staged: uniquePolicies(pendingHits.filter((h) => h.staged).map((h) => h.policy)),
    decided: decisive !== undefined && !decisive.profile,
  };
}

/** Kind prefixes of newer Felix hit names ("knp:shop/allow-web"). */
const KIND_PREFIX: Record<string, { kind: string; staged?: boolean; profile?: boolean }> = {
  gnp: { kind: 'GlobalNetworkPolicy' },
  np: { kind: 'CalicoNetworkPolicy' },
  knp: { kind: 'NetworkPolicy' },
  sgnp: { kind: 'StagedGlobalNetworkPolicy', staged: true },
  snp: { kind: 'StagedNetworkPolicy', staged: true },
  sknp: { kind: 'StagedKubernetesNetworkPolicy', staged: true },
  kcnp: { kind: 'ClusterNetworkPolicy' },
  pro: { kind: 'Profile', profile: true },
  eot: { kind: 'EndOfTier' },
};

/**
 * One hit: "index|tier|name|action" (old) or "index|tier|name|action|ruleIndex".
 * Names, classic form: GlobalNetworkPolicy "tier.name", Calico NetworkPolicy
 * "ns/tier.name", Kubernetes NetworkPolicy "ns/knp.default.name"; staged ones
 * "tier.staged:name", "ns/tier.staged:name", "ns/staged:knp.default.name";
 * profiles are tier __PROFILE__. Newer Felix prefixes the kind instead:
 * "knp:ns/name", "gnp:tier.name", "pro:kns.default".
 */
export function parseHit(s: string): Hit | undefined {
  const parts = s.split('|');
  if (parts.length !== 4 && parts.length !== 5) return undefined;
  const [idx, tier, full, action] = parts as [string, string, string, string];
  if (!/^\d+$/.test(idx) || !tier || !full) return undefined;
  const prefixed = /^([a-z]+):(.+)$/.exec(full);
  const kindInfo = prefixed ? KIND_PREFIX[prefixed[1] as string] : undefined;
  const body = kindInfo ? (prefixed?.[2] as string) : full;
  const slash = body.indexOf('/');
  const namespace = slash >= 0 ? body.slice(0, slash) : '';
  let rest = slash >= 0 ? body.slice(slash + 1) : body;
  let staged = kindInfo?.staged ?? false;
  if (rest.startsWith('staged:')) {
    staged = true;
    rest = rest.slice('staged:'.length);
  }
  if (rest.startsWith(`${tier}.staged:`)) {
    staged = true;
    rest = `${tier}.${rest.slice(tier.length + '.staged:'.length)}`;
  }
  const profile = kindInfo?.profile ?? tier === '__PROFILE__';
  let kind: string;
  let name: string;
  let policyTier = tier;
  if (kindInfo && !kindInfo.profile) {
    kind = kindInfo.kind;
    name = rest.startsWith(`${tier}.`) ? rest.slice(tier.length + 1) : rest;
  } else if (rest.startsWith('knp.default.')) {
    kind = staged ? 'StagedKubernetesNetworkPolicy' : 'NetworkPolicy';
    name = rest.slice('knp.default.'.length);
    policyTier = 'default';
  } else {
    kind = profile
      ? 'Profile'
      : staged
        ? namespace
          ? 'StagedNetworkPolicy'
          : 'StagedGlobalNetworkPolicy'
        : namespace
          ? 'CalicoNetworkPolicy'
          : 'GlobalNetworkPolicy';
    name = rest.startsWith(`${tier}.`) ? rest.slice(tier.length + 1) : rest;
  }
  return { index: Number(idx), staged, profile, policy: { tier: policyTier, namespace, name, action, kind } };
}
