import { docOf, field, fieldDoc, fieldList, fieldString, stringList, type Doc } from './document.js';
import { networkSetsCover, selectedNetworkSets } from './network-sets.js';
import {
  calicoSelector,
  labelSelector,
  namespaceScope,
  selectorMatches,
  selectsAll,
  type Coverage,
} from './selectors.js';
import { ciliumPolicy } from './cilium.js';
import {
  type Direction,
  type Peer,
  type RuleAction,
  type PolicyRule,
  type PolicyKind,
  type ConfiguredPolicy,
  type ConfigTier,
  type ConfigHostEndpoint,
  calicoEndpointLabels,
  calicoNamespaceLabels,
  type CompileContext,
  narrowed,
  netsCover,
  strongest,
} from './policy-model.js';

/** What an object is, from apiVersion and kind; undefined for anything that is not a network policy or a tier. */
export function policyObjectKind(d: Doc): PolicyKind | 'Tier' | undefined {
  const api = fieldString(d, 'apiVersion') ?? '';
  const group = api.includes('/') ? api.slice(0, api.indexOf('/')) : '';
  const kind = fieldString(d, 'kind') ?? '';
  if (group === 'networking.k8s.io' && kind === 'NetworkPolicy') return 'KubernetesNetworkPolicy';
  if (group === 'projectcalico.org' || group === 'crd.projectcalico.org') {
    const known = [
      'NetworkPolicy',
      'GlobalNetworkPolicy',
      'StagedNetworkPolicy',
      'StagedGlobalNetworkPolicy',
      'StagedKubernetesNetworkPolicy',
      'Tier',
    ] as const;
    return known.find((k) => k === kind);
  }
  if (group === 'cilium.io' && (kind === 'CiliumNetworkPolicy' || kind === 'CiliumClusterwideNetworkPolicy'))
    return kind;
  return undefined;
}

/** A Tier object, compiled. */
export function compileTier(d: Doc): ConfigTier {
  const spec = fieldDoc(d, 'spec');
  const order = field(spec, 'order');
  return {
    name: fieldString(fieldDoc(d, 'metadata'), 'name') ?? '',
    order: typeof order === 'number' ? order : undefined,
    defaultAction: fieldString(spec, 'defaultAction') === 'Pass' ? 'Pass' : 'Deny',
  };
}

/**
 * Compile one policy object; throws (a SelectorError, or an Error saying what is missing) when it cannot be read, so
 * the caller counts it.
 */
export function compilePolicy(d: Doc, ctx: CompileContext): ConfiguredPolicy {
  const kind = policyObjectKind(d);
  const meta = fieldDoc(d, 'metadata');
  const name = fieldString(meta, 'name');
  if (!name) throw new Error('metadata.name is missing');
  const namespace = fieldString(meta, 'namespace') ?? '';
  switch (kind) {
    case 'KubernetesNetworkPolicy':
    case 'StagedKubernetesNetworkPolicy':
      return kubernetesPolicy(d, kind, namespace, name, ctx);
    case 'NetworkPolicy':
    case 'GlobalNetworkPolicy':
    case 'StagedNetworkPolicy':
    case 'StagedGlobalNetworkPolicy':
      return calicoPolicy(d, kind, namespace, name, ctx);
    case 'CiliumNetworkPolicy':
    case 'CiliumClusterwideNetworkPolicy':
      return ciliumPolicy(d, kind, namespace, name, ctx);
    default:
      throw new Error(
        `${fieldString(d, 'apiVersion') ?? '?'} ${fieldString(d, 'kind') ?? '?'} is not a network policy`,
      );
  }
}

// ---------------------------------------------------------------- Kubernetes NetworkPolicy

/**
 * networking.k8s.io/v1 NetworkPolicy. Types: policyTypes, else Ingress, plus Egress when egress rules are given (the
 * API's default). A rule with no `from`/`to` admits everything; a peer with podSelector alone stays in the policy's
 * namespace; namespaceSelector picks namespaces by their labels ({} all of them); ipBlock is an address range. In a
 * Calico cluster these sit in the default tier at order 1000 (Calico's "Kubernetes network policy" mapping), so they
 * are compiled as Calico policies whose rules are all Allow, and Calico's end-of-tier deny is Kubernetes' isolation.
 */
function kubernetesPolicy(
  d: Doc,
  kind: 'KubernetesNetworkPolicy' | 'StagedKubernetesNetworkPolicy',
  namespace: string,
  name: string,
  ctx: CompileContext,
): ConfiguredPolicy {
  const spec = fieldDoc(d, 'spec');
  const podSelector = labelSelector(field(spec, 'podSelector')) ?? [];
  const types = stringList(spec, 'policyTypes');
  const directions = new Set<Direction>();
  if (types.length > 0) {
    if (types.includes('Ingress')) directions.add('ingress');
    if (types.includes('Egress')) directions.add('egress');
  } else {
    directions.add('ingress');
    if (fieldList(spec, 'egress') !== undefined) directions.add('egress');
  }
  const rulesOf = (dir: Direction): PolicyRule[] =>
    (fieldList(spec, dir) ?? []).map((r) => {
      const peers = fieldList(docOf(r), dir === 'ingress' ? 'from' : 'to');
      // ports narrow what is allowed, not from whom: a rule on one port still allows its peers (see `narrowed`).
      const byPorts = (fieldList(docOf(r), 'ports') ?? []).length > 0;
      if (peers === undefined || peers.length === 0) return { action: 'Allow', covers: () => narrowed('all', byPorts) };
      const covers = peers.map((p) => kubernetesPeer(docOf(p), namespace, ctx));
      return { action: 'Allow', covers: (peer: Peer) => narrowed(strongest(covers.map((c) => c(peer))), byPorts) };
    });
  return {
    // As Verdict names policies everywhere (common/flow.ts policyName, the inventory report): Calico's flow logs say
    // "ns/knp.default.name", which the agent reads as the default tier's "name" in "ns".
    id: `${namespace}/${name}`,
    kind,
    namespace,
    name,
    staged: kind === 'StagedKubernetesNetworkPolicy',
    engine: 'calico',
    tier: 'default',
    order: 1000,
    directions,
    rules: { ingress: rulesOf('ingress'), egress: rulesOf('egress') },
    selects: (pod) => pod.namespace === namespace && selectorMatches(podSelector, pod.labels),
  };
}

function kubernetesPeer(p: Doc | undefined, ownNamespace: string, ctx: CompileContext): (peer: Peer) => Coverage {
  const ipBlock = fieldDoc(p, 'ipBlock');
  if (ipBlock) {
    const cidr = fieldString(ipBlock, 'cidr') ?? '';
    const except = stringList(ipBlock, 'except');
    return (peer) => netsCover(peer, [cidr], except.length > 0, ctx);
  }
  const podSel = labelSelector(field(p, 'podSelector'));
  const nsSel = labelSelector(field(p, 'namespaceSelector'));
  return (peer) => {
    if (peer.kind !== 'namespace') return 'none';
    const inNs = nsSel
      ? selectorMatches(nsSel, calicoNamespaceLabels(peer.namespace))
      : peer.namespace.name === ownNamespace;
    if (!inNs) return 'none';
    return podSel === undefined || podSel.length === 0 ? 'all' : 'some';
  };
}

// ---------------------------------------------------------------- Calico NetworkPolicy / GlobalNetworkPolicy

/**
 * projectcalico.org/v3 (Staged)(Global)NetworkPolicy. Types: `types`, else Ingress, plus Egress when egress rules are
 * given (Calico's documented default). A namespaced policy applies to its namespace's endpoints; a global one to every
 * endpoint its selector (and namespaceSelector, serviceAccountSelector) picks. Rule peers (source for ingress,
 * destination for egress): nets, selector (pods and network sets within the policy's namespace for a namespaced
 * policy unless a namespaceSelector is given; every namespace and the global sets for a global one),
 * namespaceSelector (`global()`: non-namespaced resources), serviceAccounts, services; a peer with none of them is
 * everything. notNets / notSelector narrow a peer to "some"; so do the rule's protocol, ports, ICMP, HTTP and
 * ipVersion matches (see `narrowed`).
 */
function calicoPolicy(
  d: Doc,
  kind: 'NetworkPolicy' | 'GlobalNetworkPolicy' | 'StagedNetworkPolicy' | 'StagedGlobalNetworkPolicy',
  namespace: string,
  name: string,
  ctx: CompileContext,
): ConfiguredPolicy {
  const spec = fieldDoc(d, 'spec');
  const global = kind === 'GlobalNetworkPolicy' || kind === 'StagedGlobalNetworkPolicy';
  const tier = fieldString(spec, 'tier') ?? 'default';
  const order = field(spec, 'order');
  const selector = calicoSelector(spec, 'selector');
  const nsSelector = global ? calicoSelector(spec, 'namespaceSelector') : undefined;
  const nsScope = nsSelector ? namespaceScope(nsSelector) : undefined;
  const saSelector = calicoSelector(spec, 'serviceAccountSelector');
  const types = stringList(spec, 'types');
  const directions = new Set<Direction>();
  if (types.length > 0) {
    if (types.includes('Ingress')) directions.add('ingress');
    if (types.includes('Egress')) directions.add('egress');
  } else {
    directions.add('ingress');
    if (fieldList(spec, 'egress') !== undefined) directions.add('egress');
  }
  const rulesOf = (dir: Direction): PolicyRule[] =>
    (fieldList(spec, dir) ?? []).map((r) => calicoRule(docOf(r), dir, global ? undefined : namespace, ctx));
  // Calico names a tiered policy "tier.name" (older versions stored the prefix in metadata.name); the default tier
  // has no prefix in the flow logs' policy names.
  const bare = tier !== 'default' && name.startsWith(`${tier}.`) ? name.slice(tier.length + 1) : name;
  const shown = tier === 'default' ? bare : `${tier}.${bare}`;
  return {
    id: global ? shown : `${namespace}/${shown}`,
    kind,
    namespace: global ? '' : namespace,
    name,
    staged: kind.startsWith('Staged'),
    engine: 'calico',
    tier,
    order: typeof order === 'number' ? order : undefined,
    directions,
    rules: { ingress: rulesOf('ingress'), egress: rulesOf('egress') },
    selects: (pod, ns) =>
      (global || pod.namespace === namespace) &&
      (selector?.matches(calicoEndpointLabels(pod)) ?? true) &&
      (nsScope?.namespace(calicoNamespaceLabels(ns)) ?? true) &&
      (saSelector?.matches({ 'projectcalico.org/name': pod.serviceAccount }) ?? true),
    // A host endpoint is in no namespace and has no service account: a namespaceSelector reaches it only through
    // global(), a serviceAccountSelector never.
    ...(global
      ? {
          selectsHost: (h: ConfigHostEndpoint) =>
            (selector?.matches(h.labels) ?? true) && (nsScope?.global ?? true) && saSelector === undefined,
        }
      : {}),
  };
}

/** Rule fields that match on what the traffic is rather than who sends it (Calico's Rule and EntityRule). */
const TRAFFIC_FIELDS = ['protocol', 'notProtocol', 'icmp', 'notICMP', 'ipVersion', 'http'] as const;
const ENTITY_TRAFFIC_FIELDS = ['ports', 'notPorts'] as const;

function calicoRule(rd: Doc | undefined, dir: Direction, ownNamespace: string | undefined, ctx: CompileContext) {
  const a = fieldString(rd, 'action');
  const action: RuleAction = a === 'Deny' || a === 'Pass' || a === 'Log' ? a : 'Allow';
  const entity = fieldDoc(rd, dir === 'ingress' ? 'source' : 'destination');
  const self = fieldDoc(rd, dir === 'ingress' ? 'destination' : 'source');
  const selfSel = calicoSelector(self, 'selector');
  const selfNotSel = calicoSelector(self, 'notSelector');
  const selfNs = calicoSelector(self, 'namespaceSelector');
  const selfNsScope = selfNs ? namespaceScope(selfNs) : undefined;
  // The endpoint's own side naming its addresses or services narrows the traffic too (cautiously: some of it).
  const byTraffic =
    TRAFFIC_FIELDS.some((k) => field(rd, k) !== undefined) ||
    [entity, self].some((e) => ENTITY_TRAFFIC_FIELDS.some((k) => field(e, k) !== undefined)) ||
    ['nets', 'notNets', 'services', 'serviceAccounts'].some((k) => field(self, k) !== undefined);
  const peerCover = calicoPeer(entity, ownNamespace, dir, ctx);
  const rule: PolicyRule = { action, covers: (peer) => narrowed(peerCover(peer), byTraffic) };
  if (selfSel || selfNs || selfNotSel)
    rule.selfMatches = (self) => {
      const labels = 'host' in self ? self.host.labels : calicoEndpointLabels(self.pod);
      const inNs = 'host' in self ? selfNsScope?.global : selfNsScope?.namespace(calicoNamespaceLabels(self.ns));
      return (selfSel?.matches(labels) ?? true) && !(selfNotSel?.matches(labels) ?? false) && (inNs ?? true);
    };
  return rule;
}

function calicoPeer(entity: Doc | undefined, ownNamespace: string | undefined, dir: Direction, ctx: CompileContext) {
  const nets = stringList(entity, 'nets');
  const notNets = stringList(entity, 'notNets');
  const selector = calicoSelector(entity, 'selector');
  const notSelector = calicoSelector(entity, 'notSelector');
  const nsSelector = calicoSelector(entity, 'namespaceSelector');
  const nsScope = nsSelector ? namespaceScope(nsSelector) : undefined;
  const serviceAccounts = fieldDoc(entity, 'serviceAccounts');
  const services = fieldDoc(entity, 'services');
  const podsOnly = serviceAccounts !== undefined || services !== undefined;
  const bySelector = selector !== undefined || nsSelector !== undefined;
  const narrowedPeer = notNets.length > 0 || notSelector !== undefined;
  return (peer: Peer): Coverage => {
    if (peer.kind === 'internet') {
      // Service accounts and services name pods only: never the internet.
      if (podsOnly) return 'none';
      const byNets = nets.length > 0 ? netsCover(peer, nets, narrowedPeer, ctx) : undefined;
      if (!bySelector) return byNets ?? (narrowedPeer ? 'some' : 'all');
      // A selector names pods and network sets: the internet only through the nets of the sets it matches (and
      // within the rule's nets too, when it has both).
      const sets = selectedNetworkSets(peer.networkSets ?? [], {
        ownNamespace,
        selector,
        notSelector,
        namespaces: nsScope,
      });
      const bySets = networkSetsCover(sets, dir, notNets.length > 0, ctx);
      if (byNets === undefined) return bySets;
      return byNets === 'none' || bySets === 'none' ? 'none' : byNets === 'all' && bySets === 'all' ? 'all' : 'some';
    }
    if (nets.length > 0) return 'none';
    let inNs: boolean;
    if (nsScope !== undefined) inNs = nsScope.namespace(calicoNamespaceLabels(peer.namespace));
    else if (services !== undefined)
      inNs = peer.namespace.name === (fieldString(services, 'namespace') ?? ownNamespace ?? peer.namespace.name);
    else if (selector !== undefined || serviceAccounts !== undefined)
      inNs = ownNamespace === undefined || peer.namespace.name === ownNamespace;
    else inNs = true;
    if (!inNs) return 'none';
    return selectsAll(selector) && !podsOnly && !narrowedPeer ? 'all' : 'some';
  };
}
