import { missingKinds, plural, type EvalContext, type FailingObject, type Outcome } from './context.js';
import type { ContainerObj, KindName, PodObj } from './model.js';

/**
 * 5.2 Pod Security Admission. Each check is satisfied by a namespace whose
 * `pod-security.kubernetes.io/enforce` label is the Pod Security Standards
 * level that forbids the thing (or the stricter one):
 *
 * - baseline forbids: privileged, hostPID, hostIPC, hostNetwork, HostProcess,
 *   hostPath volumes, hostPorts, capabilities added beyond the default set;
 * - restricted also forbids: allowPrivilegeEscalation not false, running as
 *   root, NET_RAW (restricted requires dropping ALL), keeping capabilities at
 *   all (drop ALL, add at most NET_BIND_SERVICE).
 *
 * Namespaces of the exclusion list are left out. The cluster-wide PSA defaults
 * of the API server's AdmissionConfiguration file are not visible through the
 * API; a cluster that relies on them FAILs here until its namespaces are
 * labelled. Each failing namespace also names the pods it runs that the
 * level would have refused.
 */
export type PsaLevel = 'baseline' | 'restricted';
const RANK: Record<string, number> = { privileged: 0, baseline: 1, restricted: 2 };
export const ENFORCE = 'pod-security.kubernetes.io/enforce';

/** Capabilities baseline lets a container add (Pod Security Standards). */
const BASELINE_CAPS = new Set([
  'AUDIT_WRITE',
  'CHOWN',
  'DAC_OVERRIDE',
  'FOWNER',
  'FSETID',
  'KILL',
  'MKNOD',
  'NET_BIND_SERVICE',
  'SETFCAP',
  'SETGID',
  'SETPCAP',
  'SETUID',
  'SYS_CHROOT',
]);
const cap = (c: string) => c.toUpperCase().replace(/^CAP_/, '');

export interface PsaRule {
  level: PsaLevel;
  /** What the level forbids, for messages. */
  what: string;
  /** Why a running pod breaks it, or undefined. */
  offends(pod: PodObj): string | undefined;
}

function containers(pod: PodObj, f: (c: ContainerObj) => boolean, what: string): string | undefined {
  const names = pod.containers.filter(f).map((c) => c.name);
  return names.length ? `${what}: ${names.join(', ')}` : undefined;
}
const nonRoot = (pod: PodObj, c: ContainerObj) =>
  (c.runAsNonRoot ?? pod.runAsNonRoot) === true || (c.runAsUser ?? pod.runAsUser ?? 0) > 0;

export const PSA_RULES = {
  privileged: {
    level: 'baseline',
    what: 'privileged containers',
    offends: (p) => containers(p, (c) => c.privileged === true, 'privileged'),
  },
  hostPID: { level: 'baseline', what: 'hostPID', offends: (p) => (p.hostPID ? 'hostPID: true' : undefined) },
  hostIPC: { level: 'baseline', what: 'hostIPC', offends: (p) => (p.hostIPC ? 'hostIPC: true' : undefined) },
  hostNetwork: {
    level: 'baseline',
    what: 'hostNetwork',
    offends: (p) => (p.hostNetwork ? 'hostNetwork: true' : undefined),
  },
  allowPrivilegeEscalation: {
    level: 'restricted',
    what: 'containers that may escalate privileges',
    offends: (p) => containers(p, (c) => c.allowPrivilegeEscalation !== false, 'allowPrivilegeEscalation not false'),
  },
  root: {
    level: 'restricted',
    what: 'containers running as root',
    offends: (p) =>
      containers(p, (c) => !nonRoot(p, c), 'may run as root (no runAsNonRoot: true or non-zero runAsUser)'),
  },
  netRaw: {
    level: 'restricted',
    what: 'containers with NET_RAW',
    offends: (p) =>
      containers(
        p,
        (c) =>
          c.capsAdd.map(cap).includes('NET_RAW') || !c.capsDrop.map(cap).some((d) => d === 'ALL' || d === 'NET_RAW'),
        'keep NET_RAW (not dropped, or added)',
      ),
  },
  addedCaps: {
    level: 'baseline',
    what: 'capabilities added beyond the default set',
    offends: (p) => containers(p, (c) => c.capsAdd.some((a) => !BASELINE_CAPS.has(cap(a))), 'add capabilities'),
  },
  capsAssigned: {
    level: 'restricted',
    what: 'containers keeping capabilities (restricted drops ALL, adds at most NET_BIND_SERVICE)',
    offends: (p) =>
      containers(
        p,
        (c) => !c.capsDrop.map(cap).includes('ALL') || c.capsAdd.some((a) => cap(a) !== 'NET_BIND_SERVICE'),
        'do not drop ALL capabilities',
      ),
  },
  hostProcess: {
    level: 'baseline',
    what: 'Windows HostProcess containers',
    offends: (p) =>
      p.hostProcess === true ? 'pod hostProcess: true' : containers(p, (c) => c.hostProcess === true, 'hostProcess'),
  },
  hostPath: {
    level: 'baseline',
    what: 'hostPath volumes',
    offends: (p) => (p.hostPathVolumes.length ? `hostPath volumes ${p.hostPathVolumes.join(', ')}` : undefined),
  },
  hostPorts: {
    level: 'baseline',
    what: 'hostPorts',
    offends: (p) => containers(p, (c) => c.hostPorts.length > 0, 'hostPort'),
  },
} satisfies Record<string, PsaRule>;

const KINDS: KindName[] = ['namespaces', 'pods'];

function enforceLevel(labels: Record<string, string>): string | undefined {
  const v = labels[ENFORCE];
  return v !== undefined && v in RANK ? v : undefined;
}

function offendingPods(ctx: EvalContext, ns: string, rule: PsaRule): string[] {
  const out: string[] = [];
  for (const pod of ctx.model.pods) {
    if (pod.namespace !== ns) continue;
    const why = rule.offends(pod);
    if (why) out.push(`${pod.name} (${why})`);
  }
  return out;
}

/** A 5.2.x check: every namespace enforces `rule.level` or stricter. */
export function psaCheck(ctx: EvalContext, rule: PsaRule): Outcome {
  const skip = missingKinds(ctx, KINDS);
  if (skip) return skip;
  const failing: FailingObject[] = [];
  for (const ns of ctx.model.namespaces) {
    if (ctx.excludedNamespace(ns.name)) continue;
    const level = enforceLevel(ns.labels);
    if (level !== undefined && (RANK[level] as number) >= RANK[rule.level]!) continue;
    const pods = offendingPods(ctx, ns.name, rule);
    const label = ns.labels[ENFORCE];
    failing.push({
      object: `Namespace ${ns.name}`,
      reason:
        `${label === undefined ? `no ${ENFORCE} label` : `${ENFORCE}=${label}`}: ${rule.what} are admitted` +
        (pods.length
          ? `; running now: ${pods.slice(0, 5).join('; ')}${pods.length > 5 ? ` (+${pods.length - 5})` : ''}`
          : ''),
    });
  }
  return {
    status: failing.length ? 'FAIL' : 'PASS',
    expected: `every namespace has ${ENFORCE}: ${rule.level}${rule.level === 'baseline' ? ' or restricted' : ''} (Pod Security Standards: ${rule.level} forbids ${rule.what})`,
    actual: failing.length
      ? `${plural(failing.length, 'namespace')} admit ${rule.what}`
      : 'every namespace enforces it',
    failing,
    excluded: `namespaces ${ctx.excludedNamespaces.join(', ')} excluded; PSA defaults of the AdmissionConfiguration file are not visible through the API`,
    kinds: KINDS,
  };
}

/** 5.2.1: at least one active policy control mechanism — every namespace has a PSA enforce label. */
export function policyControl(ctx: EvalContext): Outcome {
  const skip = missingKinds(ctx, ['namespaces']);
  if (skip) return skip;
  const failing = ctx.model.namespaces
    .filter((ns) => !ctx.excludedNamespace(ns.name) && enforceLevel(ns.labels) === undefined)
    .map((ns) => ({
      object: `Namespace ${ns.name}`,
      reason: `no valid ${ENFORCE} label: Pod Security Admission enforces nothing here`,
    }));
  return {
    status: failing.length ? 'FAIL' : 'PASS',
    expected: `every namespace has a ${ENFORCE} label (Pod Security Admission, built into the API server, enforces it)`,
    actual: failing.length ? `${plural(failing.length, 'namespace')} without one` : 'every namespace has one',
    failing,
    excluded:
      `namespaces ${ctx.excludedNamespaces.join(', ')} excluded; third-party policy engines (Kyverno, Gatekeeper) ` +
      'and AdmissionConfiguration defaults are not detected: a cluster relying on them should treat this FAIL as manual',
    kinds: ['namespaces'],
  };
}
