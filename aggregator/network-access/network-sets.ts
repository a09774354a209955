import type { Selector } from '../reports/selector.js';
import { field, fieldDoc, fieldString, labelMap, stringList, withLabels, type Doc } from './document.js';
import { calicoNamespaceLabels, netsCover, type CompileContext, type ConfigNetworkSet } from './policy-model.js';
import type { Coverage, NamespaceScope } from './selectors.js';

/** NetworkSet or GlobalNetworkSet (projectcalico.org or crd.projectcalico.org), else undefined. */
export function networkSetObjectKind(d: Doc): 'NetworkSet' | 'GlobalNetworkSet' | undefined {
  const api = fieldString(d, 'apiVersion') ?? '';
  const group = api.includes('/') ? api.slice(0, api.indexOf('/')) : '';
  if (group !== 'projectcalico.org' && group !== 'crd.projectcalico.org') return undefined;
  const kind = fieldString(d, 'kind');
  return kind === 'NetworkSet' || kind === 'GlobalNetworkSet' ? kind : undefined;
}

/**
 * A network set object, compiled: its labels and `spec.nets`. `allowedEgressDomains` (Calico Enterprise's domain
 * names in a GlobalNetworkSet) are internet names: an egress Allow selecting the set reaches the internet through them.
 */
export function compileNetworkSet(
  d: Doc,
  namespaceLabels: (ns: string) => Readonly<Record<string, string>>,
): ConfigNetworkSet {
  const meta = fieldDoc(d, 'metadata');
  const global = networkSetObjectKind(d) === 'GlobalNetworkSet';
  const namespace = global ? '' : (fieldString(meta, 'namespace') ?? '');
  const spec = fieldDoc(d, 'spec');
  return {
    namespace,
    name: fieldString(meta, 'name') ?? '',
    // A NetworkSet carries its namespace as a pseudo label, as workload endpoints do (Calico's "Use external IPs or
    // networks rules in policy": `!has(projectcalico.org/namespace)` keeps a selector off pods and NetworkSets).
    labels: global
      ? labelMap(field(meta, 'labels'))
      : withLabels(labelMap(field(meta, 'labels')), [['projectcalico.org/namespace', namespace]]),
    nets: stringList(spec, 'nets'),
    domains: stringList(spec, 'allowedEgressDomains').length > 0,
    ...(global ? {} : { namespaceLabels: namespaceLabels(namespace) }),
  };
}

/** Which network sets an EntityRule's selector part may name, as Calico scopes rule selectors. */
export interface SetScope {
  /** The policy's namespace (a NetworkPolicy); undefined for a GlobalNetworkPolicy. */
  ownNamespace: string | undefined;
  selector: Selector | undefined;
  notSelector: Selector | undefined;
  namespaces: NamespaceScope | undefined;
}

/**
 * The network sets an EntityRule selects (Calico's "automatic labels" reference): without a namespaceSelector, a
 * NetworkPolicy's selector reaches the sets of its own namespace and a GlobalNetworkPolicy's every set, global ones
 * included; with one, the sets of the namespaces it selects, and GlobalNetworkSets only where it says `global()`.
 * A notSelector alone (no selector) leaves every set in scope that it does not match.
 */
export function selectedNetworkSets(sets: readonly ConfigNetworkSet[], s: SetScope): ConfigNetworkSet[] {
  return sets.filter((set) => {
    let inScope: boolean;
    if (s.namespaces !== undefined)
      inScope =
        set.namespace === ''
          ? s.namespaces.global
          : s.namespaces.namespace(
              calicoNamespaceLabels({ name: set.namespace, labels: set.namespaceLabels ?? Object.create(null) }),
            );
    else inScope = s.ownNamespace === undefined || set.namespace === s.ownNamespace;
    if (!inScope) return false;
    if (s.selector !== undefined && !s.selector.matches(set.labels)) return false;
    return s.notSelector === undefined || !s.notSelector.matches(set.labels);
  });
}

/**
 * How much of the internet the selected sets cover: their nets judged as a rule's nets are (outside the private
 * ranges and --internal-cidr), domain names as some of it on egress. Calico's report: "a source selector that matches
 * one or more NetworkSets that contain at least one non-private IP" allows the internet.
 */
export function networkSetsCover(
  selected: readonly ConfigNetworkSet[],
  dir: 'ingress' | 'egress',
  partial: boolean,
  ctx: CompileContext,
): Coverage {
  const nets = selected.flatMap((s) => s.nets);
  const byNets = nets.length > 0 ? netsCover({ kind: 'internet' }, nets, partial, ctx) : 'none';
  if (byNets !== 'none') return byNets;
  return dir === 'egress' && selected.some((s) => s.domains) ? 'some' : 'none';
}
