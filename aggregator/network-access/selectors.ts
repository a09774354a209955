import { parseSelector, Selector, type SelectorNode } from '../reports/selector.js';
import { docOf, field, fieldList, fieldString, labelMap, stringList, type Doc } from './document.js';

/** What a rule's peer covers of a class of traffic: all of it, some of it (more labels decide), or none. */
export type Coverage = 'all' | 'some' | 'none';

/** A metav1.LabelSelector, compiled: matchLabels and matchExpressions (In, NotIn, Exists, DoesNotExist). */
export interface LabelRequirement {
  key: string;
  op: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';
  values: string[];
}

/** A LabelSelector's requirements; undefined when the value is not a selector object. `{}` has none: it selects all. */
export function labelSelector(
  v: unknown,
  normalizeKey: (k: string) => string = (k) => k,
): LabelRequirement[] | undefined {
  const d = docOf(v);
  if (!d) return undefined;
  const reqs: LabelRequirement[] = [];
  const ml = labelMap(field(d, 'matchLabels'));
  for (const k of Object.keys(ml)) reqs.push({ key: normalizeKey(k), op: 'In', values: [ml[k] as string] });
  for (const e of fieldList(d, 'matchExpressions') ?? []) {
    const ed = docOf(e);
    const key = fieldString(ed, 'key');
    const op = fieldString(ed, 'operator');
    if (key === undefined || (op !== 'In' && op !== 'NotIn' && op !== 'Exists' && op !== 'DoesNotExist')) continue;
    reqs.push({ key: normalizeKey(key), op, values: stringList(ed, 'values') });
  }
  return reqs;
}

export function requirementHolds(r: LabelRequirement, labels: Readonly<Record<string, string>>): boolean {
  const has = Object.hasOwn(labels, r.key);
  const v = has ? labels[r.key] : undefined;
  switch (r.op) {
    case 'In':
      return v !== undefined && r.values.includes(v);
    case 'NotIn':
      return v === undefined || !r.values.includes(v);
    case 'Exists':
      return has;
    case 'DoesNotExist':
      return !has;
  }
}

export function selectorMatches(reqs: readonly LabelRequirement[], labels: Readonly<Record<string, string>>): boolean {
  return reqs.every((r) => requirementHolds(r, labels));
}

/** A Calico selector from a document field (absent: undefined); an invalid one throws SelectorError. */
export function calicoSelector(d: Doc | undefined, key: string): Selector | undefined {
  const text = fieldString(d, key);
  return text === undefined ? undefined : parseSelector(text);
}

/** Whether a Calico selector selects everything (absent, empty or all()). */
export function selectsAll(s: Selector | undefined): boolean {
  return s === undefined || s.root.kind === 'all';
}

/**
 * A Calico namespaceSelector, with `global()` given its EntityRule meaning (Calico's "Global network set" and
 * "automatic labels" references): it is true of non-namespaced resources (GlobalNetworkSets, host endpoints) and false
 * of every namespace. The rest of the selector reads a namespace's labels; a non-namespaced resource has none.
 */
export interface NamespaceScope {
  /** Whether resources in this namespace are selected. */
  namespace(labels: Readonly<Record<string, string>>): boolean;
  /** Whether non-namespaced resources are selected. */
  readonly global: boolean;
}

const TRUE: SelectorNode = { kind: 'all' };
const FALSE: SelectorNode = { kind: 'not', operand: TRUE };

function withGlobal(node: SelectorNode, value: boolean): SelectorNode {
  switch (node.kind) {
    case 'global':
      return value ? TRUE : FALSE;
    case 'not':
      return { kind: 'not', operand: withGlobal(node.operand, value) };
    case 'and':
    case 'or':
      return { kind: node.kind, operands: node.operands.map((o) => withGlobal(o, value)) };
    default:
      return node;
  }
}

export function namespaceScope(s: Selector): NamespaceScope {
  if (!s.usesGlobal) return { namespace: (labels) => s.matches(labels), global: false };
  const inNamespace = new Selector(s.source, withGlobal(s.root, false));
  const outside = new Selector(s.source, withGlobal(s.root, true));
  return { namespace: (labels) => inNamespace.matches(labels), global: outside.matches({}) };
}
