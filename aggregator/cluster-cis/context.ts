import type { ClusterModel, KindName } from './model.js';

export type ClusterCheckStatus = 'PASS' | 'FAIL' | 'MANUAL' | 'SKIP';

/** An object that fails a check and why ("RoleBinding team-a/dev", "may get secrets in team-a"). */
export interface FailingObject {
  object: string;
  reason: string;
}

/** What one group evaluator says about one check (evaluate.ts adds the YAML's id, title, remediation). */
export interface Outcome {
  status: ClusterCheckStatus;
  expected: string;
  actual: string;
  failing?: FailingObject[];
  /** What was left out of the evaluation and why (system namespaces, system: subjects). */
  excluded?: string;
  /** The kinds the check read: their unreadable items are counted into the result. */
  kinds?: KindName[];
}

export interface EvalContext {
  model: ClusterModel;
  /** True for namespaces left out (kube-system, kube-public, kube-node-lease and the configured ones). */
  excludedNamespace(ns: string | undefined): boolean;
  excludedNamespaces: string[];
  /** Subject names excluded besides system: ones (default: the kubeadm admin group). */
  excludedSubjects: string[];
}

/** SKIP with the reasons of the kinds that could not be read, or undefined when all are there. */
export function missingKinds(ctx: EvalContext, kinds: KindName[]): Outcome | undefined {
  const reasons = kinds.map((k) => ctx.model.available[k]).filter((r): r is string => r !== true);
  if (reasons.length === 0) return undefined;
  return { status: 'SKIP', expected: '', actual: [...new Set(reasons)].join('; '), kinds };
}

export function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}
