import { missingKinds, plural, type EvalContext, type FailingObject, type Outcome } from './context.js';
import type { KindName } from './model.js';

/**
 * 5.3 Network policies. 5.3.1 passes when a policy-enforcing CNI's API is
 * there (Calico's projectcalico.org or Cilium's cilium.io); without one it
 * stays MANUAL: other CNIs (Antrea, kube-router, Weave...) may enforce
 * NetworkPolicy and leave no API object saying so. 5.3.2 counts Kubernetes
 * NetworkPolicies and the namespaced Calico and Cilium policies whose API the
 * cluster has.
 */
export function cniSupportsPolicies(ctx: EvalContext): Outcome {
  const found: string[] = [];
  if (ctx.model.available['calico-networkpolicies'] === true)
    found.push('Calico (projectcalico.org NetworkPolicy API)');
  if (ctx.model.available['cilium-networkpolicies'] === true)
    found.push('Cilium (cilium.io/v2 CiliumNetworkPolicy API)');
  const expected = 'the CNI enforces NetworkPolicies';
  if (found.length) return { status: 'PASS', expected, actual: `policy-enforcing CNI present: ${found.join(', ')}` };
  return {
    status: 'MANUAL',
    expected,
    actual:
      'no Calico or Cilium API in this cluster; whether another CNI enforces NetworkPolicy is not visible in API objects ' +
      `(${ctx.model.available['calico-networkpolicies']}; ${ctx.model.available['cilium-networkpolicies']})`,
  };
}

export function namespacesHavePolicies(ctx: EvalContext): Outcome {
  const kinds: KindName[] = ['namespaces', 'networkpolicies'];
  const skip = missingKinds(ctx, kinds);
  if (skip) return skip;
  const optional: KindName[] = ['calico-networkpolicies', 'cilium-networkpolicies'];
  const read = optional.filter((k) => ctx.model.available[k] === true);
  const failing: FailingObject[] = [];
  for (const ns of ctx.model.namespaces) {
    if (ctx.excludedNamespace(ns.name)) continue;
    if (!ctx.model.policies.some((p) => p.namespace === ns.name))
      failing.push({ object: `Namespace ${ns.name}`, reason: 'no NetworkPolicy (nor Calico/Cilium policy) in it' });
  }
  const notRead = optional.filter((k) => ctx.model.available[k] !== true).map((k) => ctx.model.available[k]);
  return {
    status: failing.length ? 'FAIL' : 'PASS',
    expected: 'every namespace has at least one NetworkPolicy',
    actual: failing.length ? `${plural(failing.length, 'namespace')} without one` : 'every namespace has one',
    failing,
    excluded:
      `namespaces ${ctx.excludedNamespaces.join(', ')} excluded; cluster-wide policies (Calico GlobalNetworkPolicy, ` +
      `CiliumClusterwideNetworkPolicy) are not counted${notRead.length ? `; not read: ${notRead.join('; ')}` : ''}`,
    kinds: [...kinds, ...read],
  };
}
