import type { EvalContext, FailingObject, Outcome, ClusterCheckStatus } from './context.js';
import { buildModel, type ClusterObjects } from './model.js';
import { namespacesHavePolicies, cniSupportsPolicies } from './network.js';
import { PSA_RULES, policyControl, psaCheck } from './pod-security.js';
import {
  PERMISSIONS,
  clusterAdmin,
  defaultServiceAccounts,
  permissionCheck,
  tokenAutomount,
  wildcards,
} from './rbac.js';
import { defaultNamespace, seccomp, secretsAsEnv, securityContext } from './workloads.js';

export type { ClusterObjects, KindName, KindRead } from './model.js';
export type { ClusterCheckStatus, FailingObject } from './context.js';

/** The part of a benchmark file (agent/cis/schema.ts BenchmarkSpec) the evaluator uses. */
export interface ClusterBenchmark {
  id: string;
  version: string;
  checks: { id: string; title: string; section: string; level: number; automated: boolean; remediation: string }[];
}

export interface ClusterCheckResult {
  id: string;
  title: string;
  level: number;
  /** The YAML's `automated` (CIS "Automated" = scored). */
  scored: boolean;
  status: ClusterCheckStatus;
  expected: string;
  actual: string;
  /** Up to `maxFailing` failing objects; `failingTotal` counts them all. */
  failing: FailingObject[];
  failingTotal: number;
  /** What was left out and why. */
  excluded?: string;
  /** Items of the kinds this check reads that had the wrong shape and were ignored. */
  unreadable: number;
  remediation: string;
}

export interface EvaluateOptions {
  benchmark: ClusterBenchmark;
  /** Namespaces left out besides kube-system, kube-public and kube-node-lease. */
  excludeNamespaces?: string[];
  /** Subject names left out besides system:* ones (default: kubeadm:cluster-admins, kubeadm's admin.conf group). */
  excludeSubjects?: string[];
  /** Failing objects listed per check (default 20). */
  maxFailing?: number;
}

export const SYSTEM_NAMESPACES = ['kube-system', 'kube-public', 'kube-node-lease'];
export const DEFAULT_EXCLUDED_SUBJECTS = ['kubeadm:cluster-admins'];

type Evaluator = (ctx: EvalContext) => Outcome;
const manual =
  (reason: string): Evaluator =>
  () => ({ status: 'MANUAL', expected: '', actual: reason });

/**
 * Section 5 recommendations by title (ids move between versions: 1.9's 5.2.9
 * "added capabilities" and 5.7.x are 1.12's dropped item and 5.6.x), first match wins.
 */
export const BY_TITLE: [RegExp, Evaluator][] = [
  [/cluster-admin role/i, clusterAdmin],
  [/access to secrets/i, (c) => permissionCheck(c, PERMISSIONS.secrets)],
  [/wildcard/i, wildcards],
  [/access to create pods/i, (c) => permissionCheck(c, PERMISSIONS.createPods)],
  [/default service accounts/i, defaultServiceAccounts],
  [/service account tokens are only mounted/i, tokenAutomount],
  [
    /system:masters/i,
    manual(
      'system:masters membership is the O= field of client certificates, which no API object lists; review the issued certificates',
    ),
  ],
  [/bind, impersonate and escalate/i, (c) => permissionCheck(c, PERMISSIONS.bindEscalate)],
  [/create persistent volumes/i, (c) => permissionCheck(c, PERMISSIONS.createPV)],
  [/proxy sub-resource of nodes/i, (c) => permissionCheck(c, PERMISSIONS.nodesProxy)],
  [/approval sub-resource/i, (c) => permissionCheck(c, PERMISSIONS.csrApproval)],
  [/webhook configuration/i, (c) => permissionCheck(c, PERMISSIONS.webhooks)],
  [/service account token creation/i, (c) => permissionCheck(c, PERMISSIONS.tokenCreate)],
  [/active policy control mechanism/i, policyControl],
  [/privileged containers/i, (c) => psaCheck(c, PSA_RULES.privileged)],
  [/host process ID/i, (c) => psaCheck(c, PSA_RULES.hostPID)],
  [/host IPC/i, (c) => psaCheck(c, PSA_RULES.hostIPC)],
  [/host network/i, (c) => psaCheck(c, PSA_RULES.hostNetwork)],
  [/allowPrivilegeEscalation/i, (c) => psaCheck(c, PSA_RULES.allowPrivilegeEscalation)],
  [/root containers/i, (c) => psaCheck(c, PSA_RULES.root)],
  [/NET_RAW/i, (c) => psaCheck(c, PSA_RULES.netRaw)],
  [/added capabilities/i, (c) => psaCheck(c, PSA_RULES.addedCaps)],
  [/capabilities assigned/i, (c) => psaCheck(c, PSA_RULES.capsAssigned)],
  [/HostProcess/i, (c) => psaCheck(c, PSA_RULES.hostProcess)],
  [/HostPath/i, (c) => psaCheck(c, PSA_RULES.hostPath)],
  [/HostPorts/i, (c) => psaCheck(c, PSA_RULES.hostPorts)],
  [/CNI in use supports/i, cniSupportsPolicies],
  [/Namespaces have Network ?Policies/i, namespacesHavePolicies],
  [/secrets as files/i, secretsAsEnv],
  [
    /external secret storage/i,
    manual('an organisational choice of secret store; no API object shows whether an external store is used'),
  ],
  [
    /Image Provenance/i,
    manual(
      'image provenance is enforced by an admission backend (ImagePolicyWebhook configuration file, a signature-verifying webhook) whose policy is not an object this reader can judge',
    ),
  ],
  [
    /administrative boundaries/i,
    manual("whether namespaces match the organisation's trust boundaries is a judgement about who owns what"),
  ],
  [/seccomp profile/i, seccomp],
  [/Security ?Context/i, securityContext],
  [/default namespace/i, defaultNamespace],
];

/**
 * Evaluates the benchmark's section 5 recommendations against the cluster's
 * objects. Pure and total: garbage in the objects is counted as unreadable,
 * never thrown.
 */
export function evaluateClusterSection(objects: ClusterObjects, options: EvaluateOptions): ClusterCheckResult[] {
  const model = buildModel(objects);
  const excludedNamespaces = [...new Set([...SYSTEM_NAMESPACES, ...(options.excludeNamespaces ?? [])])];
  const ctx: EvalContext = {
    model,
    excludedNamespaces,
    excludedNamespace: (ns) => ns !== undefined && excludedNamespaces.includes(ns),
    excludedSubjects: options.excludeSubjects ?? DEFAULT_EXCLUDED_SUBJECTS,
  };
  const max = options.maxFailing ?? 20;
  return options.benchmark.checks
    .filter((c) => c.id.split('.')[0] === '5')
    .map((check) => {
      const evaluator =
        BY_TITLE.find(([re]) => re.test(check.title))?.[1] ??
        manual('no automated evaluation for this recommendation; review it by hand');
      let o: Outcome;
      try {
        o = evaluator(ctx);
      } catch (err) {
        o = { status: 'SKIP', expected: '', actual: `evaluation failed: ${(err as Error).message}` };
      }
      const failing = o.failing ?? [];
      return {
        id: check.id,
        title: check.title,
        level: check.level,
        scored: check.automated,
        status: o.status,
        expected: o.expected,
        actual: o.actual,
        failing: failing.slice(0, max),
        failingTotal: failing.length,
        excluded: o.excluded,
        unreadable: (o.kinds ?? []).reduce((n, k) => n + model.unreadable[k], 0),
        remediation: check.remediation,
      };
    });
}
