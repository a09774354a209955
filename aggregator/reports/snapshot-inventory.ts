import {
  docOf,
  field,
  fieldDoc,
  fieldList,
  fieldString,
  labelMap,
  stringList,
  type Doc,
} from '../network-access/document.js';
import type { ClusterSnapshot } from '../snapshot/index.js';
import type { InventorySnapshot, LabelSelector } from './inventory-snapshot.js';
import type { ClusterSource } from './report-type.js';

const OPERATORS = new Set(['In', 'NotIn', 'Exists', 'DoesNotExist']);

/** metav1.LabelSelector from a document; 'invalid' for an operator the API server would refuse. */
function labelSelector(d: Doc | undefined): LabelSelector | undefined | 'invalid' {
  if (!d) return undefined;
  const matchExpressions: NonNullable<LabelSelector['matchExpressions']> = [];
  for (const e of fieldList(d, 'matchExpressions') ?? []) {
    const x = docOf(e);
    const key = fieldString(x, 'key');
    const operator = fieldString(x, 'operator');
    if (key === undefined || operator === undefined || !OPERATORS.has(operator)) return 'invalid';
    matchExpressions.push({
      key,
      operator: operator as 'In' | 'NotIn' | 'Exists' | 'DoesNotExist',
      values: stringList(x, 'values'),
    });
  }
  return { matchLabels: labelMap(field(d, 'matchLabels')), matchExpressions };
}

const meta = (o: Doc) => fieldDoc(o, 'metadata');
const nameOf = (o: Doc) => fieldString(meta(o), 'name') ?? '';
const namespaceOf = (o: Doc) => fieldString(meta(o), 'namespace') ?? '';
const containerNames = (spec: Doc | undefined, key: string) =>
  (fieldList(spec, key) ?? []).flatMap((c) => {
    const name = fieldString(docOf(c), 'name');
    return name === undefined ? [] : [{ name }];
  });
const groupOf = (o: Doc) => (fieldString(o, 'apiVersion') ?? '').split('/')[0] ?? '';

function pod(o: Doc): InventorySnapshot['pods'][number] {
  const spec = fieldDoc(o, 'spec');
  return {
    metadata: {
      name: nameOf(o),
      namespace: namespaceOf(o),
      labels: labelMap(field(meta(o), 'labels')),
      annotations: labelMap(field(meta(o), 'annotations')),
    },
    spec: {
      serviceAccountName: fieldString(spec, 'serviceAccountName'),
      nodeName: fieldString(spec, 'nodeName'),
      hostNetwork: field(spec, 'hostNetwork') === true,
      containers: containerNames(spec, 'containers'),
      initContainers: containerNames(spec, 'initContainers'),
    },
  };
}

/** A Kubernetes NetworkPolicy; one whose podSelector the API server would refuse is left out (it selects no pod). */
function networkPolicy(o: Doc): InventorySnapshot['networkPolicies'][number] | undefined {
  const spec = fieldDoc(o, 'spec');
  const sel = labelSelector(fieldDoc(spec, 'podSelector'));
  if (sel === 'invalid') return undefined;
  return {
    metadata: { name: nameOf(o), namespace: namespaceOf(o) },
    spec: {
      podSelector: sel,
      policyTypes: fieldList(spec, 'policyTypes') ? stringList(spec, 'policyTypes') : undefined,
      ingress: fieldList(spec, 'ingress'),
      egress: fieldList(spec, 'egress'),
    },
  };
}

/** Calico's NetworkPolicy and GlobalNetworkPolicy (staged ones enforce nothing: left out, as from the cluster). */
function calicoPolicy(o: Doc): InventorySnapshot['calicoPolicies'][number] | undefined {
  const kind = fieldString(o, 'kind');
  if (kind !== 'NetworkPolicy' && kind !== 'GlobalNetworkPolicy') return undefined;
  const spec = fieldDoc(o, 'spec');
  return {
    kind,
    metadata: { name: nameOf(o), ...(kind === 'NetworkPolicy' ? { namespace: namespaceOf(o) } : {}) },
    spec: {
      selector: fieldString(spec, 'selector'),
      namespaceSelector: fieldString(spec, 'namespaceSelector'),
      types: fieldList(spec, 'types') ? stringList(spec, 'types') : undefined,
      ingress: fieldList(spec, 'ingress'),
      egress: fieldList(spec, 'egress'),
      tier: fieldString(spec, 'tier'),
    },
  };
}

/** What an inventory report needs, from an offline snapshot (aggregator/snapshot) instead of the API server. */
export function inventoryFromSnapshot(snap: ClusterSnapshot): InventorySnapshot {
  return {
    pods: snap.pods.map(pod),
    namespaces: snap.namespaces.map((o) => ({
      metadata: { name: nameOf(o), labels: labelMap(field(meta(o), 'labels')) },
    })),
    serviceAccounts: snap.serviceAccounts.map((o) => ({ metadata: { name: nameOf(o), namespace: namespaceOf(o) } })),
    services: snap.services.map((o) => {
      const selector = field(fieldDoc(o, 'spec'), 'selector');
      return {
        metadata: { name: nameOf(o), namespace: namespaceOf(o) },
        spec: { selector: docOf(selector) ? labelMap(selector) : undefined },
      };
    }),
    networkPolicies: snap.policies
      .filter((o) => groupOf(o) === 'networking.k8s.io' && fieldString(o, 'kind') === 'NetworkPolicy')
      .flatMap((o) => networkPolicy(o) ?? []),
    calicoPolicies: snap.policies
      .filter((o) => groupOf(o) === 'projectcalico.org' || groupOf(o) === 'crd.projectcalico.org')
      .flatMap((o) => calicoPolicy(o) ?? []),
  };
}

/**
 * The cluster as an offline snapshot shows it (--cluster-snapshot DIR): one moment, so every interval gets the same
 * objects, and pods deleted before the snapshot was taken are not in it.
 */
export function snapshotClusterSource(snap: ClusterSnapshot): ClusterSource {
  const inventory = inventoryFromSnapshot(snap);
  return { inventory: () => Promise.resolve(inventory) };
}
