import { missingKinds, plural, type EvalContext, type FailingObject, type Outcome } from './context.js';
import type { KindName, PodObj } from './model.js';

/** 5.4.1, 5.7.x (5.6.x in 1.11/1.12): what running pods do. Pods of excluded namespaces are left out. */
function podCheck(
  ctx: EvalContext,
  expected: string,
  what: string,
  offends: (pod: PodObj) => string | undefined,
): Outcome {
  const skip = missingKinds(ctx, ['pods']);
  if (skip) return skip;
  const failing: FailingObject[] = [];
  for (const pod of ctx.model.pods) {
    if (ctx.excludedNamespace(pod.namespace)) continue;
    const why = offends(pod);
    if (why) failing.push({ object: `Pod ${pod.namespace}/${pod.name}`, reason: why });
  }
  return {
    status: failing.length ? 'FAIL' : 'PASS',
    expected,
    actual: failing.length ? `${plural(failing.length, 'pod')} ${what}` : 'none found',
    failing,
    excluded: `pods of ${ctx.excludedNamespaces.join(', ')} excluded`,
    kinds: ['pods'],
  };
}

export function secretsAsEnv(ctx: EvalContext): Outcome {
  return podCheck(
    ctx,
    'no container takes a Secret as an environment variable (env secretKeyRef, envFrom secretRef)',
    'with Secrets in environment variables',
    (pod) => {
      const refs = pod.containers.flatMap((c) => c.secretEnv.map((e) => `${c.name}: ${e}`));
      return refs.length ? refs.join('; ') : undefined;
    },
  );
}

const SECCOMP_OK = new Set(['RuntimeDefault', 'Localhost']);

export function seccomp(ctx: EvalContext): Outcome {
  return podCheck(
    ctx,
    'every container runs with seccompProfile RuntimeDefault or Localhost (set on the pod or the container)',
    'without a seccomp profile',
    (pod) => {
      const bad = pod.containers.filter((c) => !SECCOMP_OK.has(c.seccomp ?? pod.seccomp ?? 'Unconfined'));
      if (!bad.length) return undefined;
      return `${bad.map((c) => `${c.name}: ${c.seccomp ?? pod.seccomp ?? 'unset'}`).join(', ')} (the kubelet's --seccomp-default is not visible here)`;
    },
  );
}

/**
 * 5.7.3 (judged): a security context is "applied" when each container, with the
 * pod's settings inherited, runs as non-root (runAsNonRoot: true or a non-zero
 * runAsUser), sets allowPrivilegeEscalation: false and is not privileged.
 */
export function securityContext(ctx: EvalContext): Outcome {
  return podCheck(
    ctx,
    "every container has a security context (own or the pod's) with runAsNonRoot: true or a non-zero runAsUser, allowPrivilegeEscalation: false, and not privileged",
    'without such a security context',
    (pod) => {
      const problems = pod.containers.flatMap((c) => {
        const missing: string[] = [];
        if ((c.runAsNonRoot ?? pod.runAsNonRoot) !== true && (c.runAsUser ?? pod.runAsUser ?? 0) === 0)
          missing.push('non-root');
        if (c.allowPrivilegeEscalation !== false) missing.push('allowPrivilegeEscalation: false');
        if (c.privileged === true) missing.push('not privileged');
        return missing.length ? [`${c.name} lacks ${missing.join(', ')}`] : [];
      });
      return problems.length ? problems.join('; ') : undefined;
    },
  );
}

/**
 * 5.7.4: user objects in the default namespace (pods, service accounts other
 * than default, Roles, RoleBindings). A NetworkPolicy there protects the
 * namespace rather than uses it, and is not counted.
 */
export function defaultNamespace(ctx: EvalContext): Outcome {
  const kinds: KindName[] = ['pods', 'serviceaccounts', 'roles', 'rolebindings'];
  const skip = missingKinds(ctx, kinds);
  if (skip) return skip;
  const m = ctx.model;
  const failing: FailingObject[] = [
    ...m.pods.filter((p) => p.namespace === 'default').map((p) => `Pod default/${p.name}`),
    ...m.serviceAccounts
      .filter((s) => s.namespace === 'default' && s.name !== 'default')
      .map((s) => `ServiceAccount default/${s.name}`),
    ...m.roles.filter((r) => r.namespace === 'default').map((r) => `Role default/${r.name}`),
    ...m.roleBindings.filter((b) => b.namespace === 'default').map((b) => `RoleBinding default/${b.name}`),
  ].map((object) => ({ object, reason: 'a user object in the default namespace' }));
  return {
    status: failing.length ? 'FAIL' : 'PASS',
    expected:
      'the default namespace holds no user objects (pods, service accounts besides default, Roles, RoleBindings)',
    actual: failing.length ? `${plural(failing.length, 'object')} in default` : 'default is empty of user objects',
    failing,
    excluded:
      'the default service account and the kubernetes Service (created by the API server) are not user objects; Services, ConfigMaps and Secrets are not read',
    kinds,
  };
}
