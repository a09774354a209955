import { docOf, field, fieldDoc, fieldList, fieldString, stringList, type Doc } from './document.js';
import { calicoSelector, labelSelector, selectorMatches, selectsAll, type Coverage } from './selectors.js';
import { ciliumPolicy } from './cilium.js';
import {
  type Direction,
  type Peer,
  type RuleAction,
  type PolicyRule,
  type PolicyKind,
  type ConfiguredPolicy,
  type ConfigTier,
  calicoEndpointLabels,
  calicoNamespaceLabels,
  type CompileContext,
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
      if (peers === undefined || peers.length === 0) return { action: 'Allow', covers: () => 'all' };
      const covers = peers.map((p) => kubernetesPeer(docOf(p), namespace, ctx));
      return { action: 'Allow', covers: (peer: Peer) => strongest(covers.map((c) => c(peer))) };
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
 * destination for egress): nets, selector (within the policy's namespace for a namespaced policy unless a
 * namespaceSelector is given; every namespace for a global one), namespaceSelector, serviceAccounts; a peer with
 * none of them is everything. notNets / notSelector narrow a peer to "some".
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
    (fieldList(spec, dir) ?? []).map((r) => {
      const rd = docOf(r);
      const a = fieldString(rd, 'action');
      const action: RuleAction = a === 'Deny' || a === 'Pass' || a === 'Log' ? a : 'Allow';
      const entity = fieldDoc(rd, dir === 'ingress' ? 'source' : 'destination');
      const self = fieldDoc(rd, dir === 'ingress' ? 'destination' : 'source');
      const selfSel = calicoSelector(self, 'selector');
      const selfNs = calicoSelector(self, 'namespaceSelector');
      const rule: PolicyRule = { action, covers: calicoPeer(entity, global ? undefined : namespace, ctx) };
      if (selfSel || selfNs)
        rule.selfMatches = (pod, ns) =>
          (selfSel?.matches(calicoEndpointLabels(pod)) ?? true) && (selfNs?.matches(calicoNamespaceLabels(ns)) ?? true);
      return rule;
    });
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
      (nsSelector?.matches(calicoNamespaceLabels(ns)) ?? true) &&
      (saSelector?.matches({ 'projectcalico.org/name': pod.serviceAccount }) ?? true),
  };
}

function calicoPeer(entity: Doc | undefined, ownNamespace: string | undefined, ctx: CompileContext) {
  const nets = stringList(entity, 'nets');
  const notNets = stringList(entity, 'notNets');
  const selector = calicoSelector(entity, 'selector');
  const notSelector = calicoSelector(entity, 'notSelector');
  const nsSelector = calicoSelector(entity, 'namespaceSelector');
  const serviceAccounts = fieldDoc(entity, 'serviceAccounts');
  const byEndpoint = selector !== undefined || nsSelector !== undefined || serviceAccounts !== undefined;
  const narrowed = notNets.length > 0 || notSelector !== undefined;
  return (peer: Peer): Coverage => {
    if (peer.kind === 'internet') {
      // Endpoint selectors name cluster endpoints (and network sets, whose nets are not known here): not the internet.
      if (byEndpoint) return 'none';
      if (nets.length === 0) return narrowed ? 'some' : 'all';
      return netsCover(peer, nets, narrowed, ctx);
    }
    if (nets.length > 0) return 'none';
    let inNs: boolean;
    if (nsSelector !== undefined) inNs = nsSelector.matches(calicoNamespaceLabels(peer.namespace));
    else if (selector !== undefined || serviceAccounts !== undefined)
      inNs = ownNamespace === undefined || peer.namespace.name === ownNamespace;
    else inNs = true;
    if (!inNs) return 'none';
    return selectsAll(selector) && serviceAccounts === undefined && !narrowed ? 'all' : 'some';
  };
}
