import { missingKinds, plural, type EvalContext, type FailingObject, type Outcome } from './context.js';
import type { BindingObj, KindName, RoleObj, Rule, Subject } from './model.js';

/**
 * 5.1 RBAC and service accounts. A subject's rights are the rules of the roles
 * its bindings reference (aggregated ClusterRoles carry their aggregated rules
 * in the API object). Excluded, as CIS's audit notes and Kubescape do: subjects
 * named system:* (the control plane's own users and groups), service accounts
 * of the excluded namespaces, RoleBindings in excluded namespaces, and the
 * configured subject names (by default kubeadm's break-glass group
 * kubeadm:cluster-admins).
 */
const RBAC_KINDS: KindName[] = ['clusterroles', 'roles', 'clusterrolebindings', 'rolebindings'];

export interface Permission {
  groups: string[];
  resources: string[];
  verbs: string[];
  /** How the permission reads in a reason: "get/list/watch secrets". */
  describe: string;
}

export const PERMISSIONS = {
  secrets: {
    groups: [''],
    resources: ['secrets'],
    verbs: ['get', 'list', 'watch'],
    describe: 'get/list/watch secrets',
  },
  createPods: { groups: [''], resources: ['pods'], verbs: ['create'], describe: 'create pods' },
  bindEscalate: {
    groups: ['rbac.authorization.k8s.io', ''],
    resources: ['roles', 'clusterroles', 'users', 'groups', 'serviceaccounts', 'uids', 'userextras/*'],
    verbs: ['bind', 'escalate', 'impersonate'],
    describe: 'bind/escalate roles or impersonate users, groups or service accounts',
  },
  createPV: { groups: [''], resources: ['persistentvolumes'], verbs: ['create'], describe: 'create persistentvolumes' },
  nodesProxy: {
    groups: [''],
    resources: ['nodes/proxy'],
    verbs: ['get', 'create', 'update', 'patch', 'delete', 'list', 'watch'],
    describe: 'access nodes/proxy (the kubelet API)',
  },
  csrApproval: {
    groups: ['certificates.k8s.io'],
    resources: ['certificatesigningrequests/approval'],
    verbs: ['update', 'patch'],
    describe: 'update certificatesigningrequests/approval',
  },
  webhooks: {
    groups: ['admissionregistration.k8s.io'],
    resources: ['validatingwebhookconfigurations', 'mutatingwebhookconfigurations'],
    verbs: ['create', 'update', 'patch', 'delete'],
    describe: 'create/update/patch/delete admission webhook configurations',
  },
  tokenCreate: {
    groups: [''],
    resources: ['serviceaccounts/token'],
    verbs: ['create'],
    describe: 'create serviceaccounts/token',
  },
} satisfies Record<string, Permission>;

function resourceMatches(ruleRes: string, res: string): boolean {
  if (ruleRes === '*' || ruleRes === res) return true;
  // As Kubernetes' RBAC matches: '*', the exact resource, or '*/<subresource>' ('pods/*' grants nothing).
  const sub = res.split('/')[1];
  return sub !== undefined && ruleRes === `*/${sub}`;
}

/** Whether a rule grants any of the permission's verbs on any of its resources. */
export function ruleGrants(rule: Rule, p: Permission): boolean {
  return (
    rule.apiGroups.some((g) => g === '*' || p.groups.includes(g)) &&
    rule.resources.some((r) => p.resources.some((res) => resourceMatches(r, res))) &&
    rule.verbs.some((v) => v === '*' || p.verbs.includes(v))
  );
}

export function subjectName(s: Subject): string {
  return s.kind === 'ServiceAccount' ? `ServiceAccount ${s.namespace ?? '?'}/${s.name}` : `${s.kind} ${s.name}`;
}

function bindingName(b: BindingObj): string {
  return b.kind === 'RoleBinding' ? `RoleBinding ${b.namespace}/${b.name}` : `ClusterRoleBinding ${b.name}`;
}

function subjectExcluded(ctx: EvalContext, b: BindingObj, s: Subject): boolean {
  if (s.name.startsWith('system:') || ctx.excludedSubjects.includes(s.name)) return true;
  if (s.kind === 'ServiceAccount' && ctx.excludedNamespace(s.namespace ?? b.namespace)) return true;
  return b.kind === 'RoleBinding' && ctx.excludedNamespace(b.namespace);
}

function resolveRole(ctx: EvalContext, b: BindingObj): RoleObj | undefined {
  if (b.roleRef.kind === 'ClusterRole') return ctx.model.clusterRoles.find((r) => r.name === b.roleRef.name);
  return ctx.model.roles.find((r) => r.name === b.roleRef.name && r.namespace === b.namespace);
}

interface Grant {
  binding: BindingObj;
  subject: Subject;
  role: RoleObj;
}

/** Every (binding, non-excluded subject, role) triple, and how many subjects were excluded. */
function grants(ctx: EvalContext): { grants: Grant[]; excluded: number } {
  const out: Grant[] = [];
  let excluded = 0;
  for (const binding of [...ctx.model.clusterRoleBindings, ...ctx.model.roleBindings]) {
    const role = resolveRole(ctx, binding);
    for (const subject of binding.subjects) {
      if (subjectExcluded(ctx, binding, subject)) excluded++;
      else if (role) out.push({ binding, subject, role });
    }
  }
  return { grants: out, excluded };
}

function exclusionNote(ctx: EvalContext, excluded: number): string {
  return (
    `${plural(excluded, 'binding subject')} excluded: system:* users and groups, ` +
    `${ctx.excludedSubjects.length ? ctx.excludedSubjects.join(', ') + ', ' : ''}` +
    `service accounts and RoleBindings of ${ctx.excludedNamespaces.join(', ')}`
  );
}

function subjectFailures(list: Grant[], reason: (g: Grant) => string): FailingObject[] {
  const seen = new Set<string>();
  const out: FailingObject[] = [];
  for (const g of list) {
    const object = `${subjectName(g.subject)} via ${bindingName(g.binding)} → ${g.role.kind} ${g.role.name}`;
    if (seen.has(object)) continue;
    seen.add(object);
    out.push({ object, reason: reason(g) });
  }
  return out;
}

function verdict(failing: FailingObject[], expected: string, what: string, excluded: string): Outcome {
  return {
    status: failing.length ? 'FAIL' : 'PASS',
    expected,
    actual: failing.length ? `${plural(failing.length, what)}` : `none found`,
    failing,
    excluded,
    kinds: RBAC_KINDS,
  };
}

/** 5.1.1: non-system subjects bound to cluster-admin. */
export function clusterAdmin(ctx: EvalContext): Outcome {
  const skip = missingKinds(ctx, RBAC_KINDS);
  if (skip) return skip;
  const { grants: gs, excluded } = grants(ctx);
  const failing = subjectFailures(
    gs.filter((g) => g.binding.roleRef.kind === 'ClusterRole' && g.binding.roleRef.name === 'cluster-admin'),
    (g) => `bound to cluster-admin ${g.binding.kind === 'RoleBinding' ? `in ${g.binding.namespace}` : 'cluster-wide'}`,
  );
  return verdict(
    failing,
    'no subject outside the system ones is bound to the cluster-admin ClusterRole',
    'subject bound to cluster-admin',
    exclusionNote(ctx, excluded),
  );
}

/** 5.1.2, 5.1.4, 5.1.8-5.1.13: non-system subjects holding a permission. */
export function permissionCheck(ctx: EvalContext, p: Permission): Outcome {
  const skip = missingKinds(ctx, RBAC_KINDS);
  if (skip) return skip;
  const { grants: gs, excluded } = grants(ctx);
  const failing = subjectFailures(
    gs.filter((g) => g.role.rules.some((r) => ruleGrants(r, p))),
    (g) => {
      const rule = g.role.rules.find((r) => ruleGrants(r, p)) as Rule;
      const scope = g.binding.kind === 'RoleBinding' ? `in namespace ${g.binding.namespace}` : 'cluster-wide';
      return `may ${p.describe} ${scope} (rule verbs [${rule.verbs.join(',')}] on [${rule.resources.join(',')}]${rule.resourceNames.length ? ` names [${rule.resourceNames.join(',')}]` : ''})`;
    },
  );
  return verdict(
    failing,
    `no subject outside the system ones may ${p.describe}`,
    'subject',
    exclusionNote(ctx, excluded),
  );
}

/** 5.1.3: '*' in apiGroups, resources or verbs of Roles and ClusterRoles (built-in, excluded-namespace ones aside). */
export function wildcards(ctx: EvalContext): Outcome {
  const skip = missingKinds(ctx, ['clusterroles', 'roles']);
  if (skip) return skip;
  const failing: FailingObject[] = [];
  let excluded = 0;
  for (const role of [...ctx.model.clusterRoles, ...ctx.model.roles]) {
    if (role.builtIn || ctx.excludedNamespace(role.namespace)) {
      excluded++;
      continue;
    }
    const fields = new Set<string>();
    for (const r of role.rules)
      for (const f of ['apiGroups', 'resources', 'verbs'] as const) if (r[f].includes('*')) fields.add(f);
    if (fields.size)
      failing.push({
        object: role.kind === 'Role' ? `Role ${role.namespace}/${role.name}` : `ClusterRole ${role.name}`,
        reason: `'*' in ${[...fields].join(', ')}`,
      });
  }
  return {
    status: failing.length ? 'FAIL' : 'PASS',
    expected: "no Role or ClusterRole uses '*' in apiGroups, resources or verbs",
    actual: failing.length ? plural(failing.length, 'role') + " with '*'" : 'none found',
    failing,
    excluded:
      `${plural(excluded, 'role')} excluded: built-in ones (system:* names or label kubernetes.io/bootstrapping=rbac-defaults, ` +
      `e.g. cluster-admin) and Roles in ${ctx.excludedNamespaces.join(', ')}`,
    kinds: ['clusterroles', 'roles'],
  };
}

/** 5.1.5: default service accounts bound to roles, or with token automount not off. */
export function defaultServiceAccounts(ctx: EvalContext): Outcome {
  const kinds: KindName[] = [...RBAC_KINDS, 'serviceaccounts'];
  const skip = missingKinds(ctx, kinds);
  if (skip) return skip;
  const failing: FailingObject[] = [];
  for (const sa of ctx.model.serviceAccounts) {
    if (sa.name !== 'default' || ctx.excludedNamespace(sa.namespace)) continue;
    const reasons: string[] = [];
    if (sa.automount !== false) reasons.push('automountServiceAccountToken is not false');
    for (const b of [...ctx.model.clusterRoleBindings, ...ctx.model.roleBindings])
      if (
        b.subjects.some(
          (s) => s.kind === 'ServiceAccount' && s.name === 'default' && (s.namespace ?? b.namespace) === sa.namespace,
        )
      )
        reasons.push(`bound by ${bindingName(b)} to ${b.roleRef.kind} ${b.roleRef.name}`);
    if (reasons.length) failing.push({ object: `ServiceAccount ${sa.namespace}/default`, reason: reasons.join('; ') });
  }
  return {
    status: failing.length ? 'FAIL' : 'PASS',
    expected: 'every default service account has automountServiceAccountToken: false and no role bound to it',
    actual: failing.length
      ? plural(failing.length, 'default service account') + ' in use or mounting tokens'
      : 'none found',
    failing,
    excluded: `default service accounts of ${ctx.excludedNamespaces.join(', ')} excluded`,
    kinds,
  };
}

/** 5.1.6: pods that mount a service account token (pod setting, else the service account's, else true). */
export function tokenAutomount(ctx: EvalContext): Outcome {
  const kinds: KindName[] = ['pods', 'serviceaccounts'];
  const skip = missingKinds(ctx, kinds);
  if (skip) return skip;
  const failing: FailingObject[] = [];
  for (const pod of ctx.model.pods) {
    if (ctx.excludedNamespace(pod.namespace)) continue;
    const sa = ctx.model.serviceAccounts.find((s) => s.namespace === pod.namespace && s.name === pod.serviceAccount);
    // A pod that sets automountServiceAccountToken: true has opted in deliberately.
    if (pod.automount === undefined && (sa?.automount ?? true))
      failing.push({
        object: `Pod ${pod.namespace}/${pod.name}`,
        reason: `mounts the token of service account ${pod.serviceAccount} without asking for it (${sa?.automount === true ? 'the service account sets automountServiceAccountToken: true' : 'automountServiceAccountToken unset on pod and service account'})`,
      });
  }
  return {
    status: failing.length ? 'FAIL' : 'PASS',
    expected: 'a pod mounts a service account token only when it sets automountServiceAccountToken: true itself',
    actual: failing.length ? plural(failing.length, 'pod') + ' mounting a token by default' : 'none found',
    failing,
    excluded: `pods of ${ctx.excludedNamespaces.join(', ')} excluded`,
    kinds,
  };
}
