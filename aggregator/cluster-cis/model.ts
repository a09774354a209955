/**
 * The cluster objects the section 5 ("Policies") evaluator reads, and their
 * normalisation into the few fields the checks use. Everything here is total:
 * an item of the wrong shape (not an object, no name, a field of the wrong
 * type) is counted as unreadable for its kind and otherwise ignored.
 */

/** The kinds read from the cluster (the reader's list paths are in read.ts). */
export const KINDS = [
  'clusterroles',
  'roles',
  'clusterrolebindings',
  'rolebindings',
  'namespaces',
  'pods',
  'serviceaccounts',
  'networkpolicies',
  'calico-networkpolicies',
  'cilium-networkpolicies',
] as const;
export type KindName = (typeof KINDS)[number];

/** One kind as read: its items, or why it could not be read (the checks that need it SKIP with this reason). */
export type KindRead = { items: unknown[] } | { unavailable: string };

/** What readClusterObjects returns and evaluateClusterSection takes. A kind left out is "not read". */
export type ClusterObjects = Partial<Record<KindName, KindRead>>;

export interface Rule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
  resourceNames: string[];
}
export interface RoleObj {
  kind: 'ClusterRole' | 'Role';
  namespace?: string;
  name: string;
  builtIn: boolean;
  rules: Rule[];
}
export interface Subject {
  kind: string;
  name: string;
  namespace?: string;
}
export interface BindingObj {
  kind: 'ClusterRoleBinding' | 'RoleBinding';
  namespace?: string;
  name: string;
  roleRef: { kind: string; name: string };
  subjects: Subject[];
}
export interface NamespaceObj {
  name: string;
  labels: Record<string, string>;
}
export interface ContainerObj {
  name: string;
  privileged?: boolean;
  allowPrivilegeEscalation?: boolean;
  runAsNonRoot?: boolean;
  runAsUser?: number;
  capsAdd: string[];
  capsDrop: string[];
  seccomp?: string;
  hostProcess?: boolean;
  hostPorts: number[];
  /** "env NAME ← secret/key" and "envFrom secret/name" entries. */
  secretEnv: string[];
}
export interface PodObj {
  namespace: string;
  name: string;
  serviceAccount: string;
  automount?: boolean;
  hostPID: boolean;
  hostIPC: boolean;
  hostNetwork: boolean;
  runAsNonRoot?: boolean;
  runAsUser?: number;
  seccomp?: string;
  hostProcess?: boolean;
  hostPathVolumes: string[];
  containers: ContainerObj[];
}
export interface ServiceAccountObj {
  namespace: string;
  name: string;
  automount?: boolean;
}
export interface PolicyObj {
  kind: string;
  namespace: string;
  name: string;
}

/** The normalised cluster. `available[kind]` is true or the reason it is not. */
export interface ClusterModel {
  available: Record<KindName, true | string>;
  unreadable: Record<KindName, number>;
  clusterRoles: RoleObj[];
  roles: RoleObj[];
  clusterRoleBindings: BindingObj[];
  roleBindings: BindingObj[];
  namespaces: NamespaceObj[];
  pods: PodObj[];
  serviceAccounts: ServiceAccountObj[];
  policies: PolicyObj[];
}

class Unreadable extends Error {}
const bad = (what: string): never => {
  throw new Unreadable(what);
};

function obj(v: unknown, what: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return bad(what);
  return v as Record<string, unknown>;
}
function optObj(v: unknown, what: string): Record<string, unknown> {
  return v === undefined || v === null ? {} : obj(v, what);
}
function str(v: unknown, what: string): string {
  if (typeof v !== 'string' || v === '') return bad(what);
  return v;
}
function optStr(v: unknown, what: string): string | undefined {
  return v === undefined || v === null ? undefined : str(v, what);
}
function optBool(v: unknown, what: string): boolean | undefined {
  if (v === undefined || v === null) return undefined;
  return typeof v === 'boolean' ? v : bad(what);
}
function optInt(v: unknown, what: string): number | undefined {
  if (v === undefined || v === null) return undefined;
  return typeof v === 'number' && Number.isInteger(v) ? v : bad(what);
}
function arr(v: unknown, what: string): unknown[] {
  if (v === undefined || v === null) return [];
  return Array.isArray(v) ? v : bad(what);
}
function strs(v: unknown, what: string): string[] {
  return arr(v, what).map((s) => (typeof s === 'string' ? s : bad(what)));
}
function labels(v: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(optObj(v, 'labels'))) out[k] = typeof val === 'string' ? val : bad('labels');
  return out;
}
function meta(
  item: unknown,
  namespaced: boolean,
): { name: string; namespace?: string; labels: Record<string, string> } {
  const m = obj(obj(item, 'item').metadata, 'metadata');
  return {
    name: str(m.name, 'metadata.name'),
    namespace: namespaced ? str(m.namespace, 'metadata.namespace') : undefined,
    labels: labels(m.labels),
  };
}

function parseRole(item: unknown, kind: RoleObj['kind']): RoleObj {
  const m = meta(item, kind === 'Role');
  const rules = arr((item as Record<string, unknown>).rules, 'rules').map((r) => {
    const o = obj(r, 'rule');
    return {
      apiGroups: strs(o.apiGroups, 'apiGroups'),
      resources: strs(o.resources, 'resources'),
      verbs: strs(o.verbs, 'verbs'),
      resourceNames: strs(o.resourceNames, 'resourceNames'),
    };
  });
  const builtIn = m.name.startsWith('system:') || m.labels['kubernetes.io/bootstrapping'] === 'rbac-defaults';
  return { kind, namespace: m.namespace, name: m.name, builtIn, rules };
}

function parseBinding(item: unknown, kind: BindingObj['kind']): BindingObj {
  const m = meta(item, kind === 'RoleBinding');
  const o = item as Record<string, unknown>;
  const ref = obj(o.roleRef, 'roleRef');
  const subjects = arr(o.subjects, 'subjects').map((s) => {
    const so = obj(s, 'subject');
    return {
      kind: str(so.kind, 'subject.kind'),
      name: str(so.name, 'subject.name'),
      namespace: optStr(so.namespace, 'subject.namespace'),
    };
  });
  return {
    kind,
    namespace: m.namespace,
    name: m.name,
    roleRef: { kind: str(ref.kind, 'roleRef.kind'), name: str(ref.name, 'roleRef.name') },
    subjects,
  };
}

function parseSecurity(v: unknown): {
  runAsNonRoot?: boolean;
  runAsUser?: number;
  seccomp?: string;
  hostProcess?: boolean;
} {
  const sc = optObj(v, 'securityContext');
  return {
    runAsNonRoot: optBool(sc.runAsNonRoot, 'runAsNonRoot'),
    runAsUser: optInt(sc.runAsUser, 'runAsUser'),
    seccomp: optStr(optObj(sc.seccompProfile, 'seccompProfile').type, 'seccompProfile.type'),
    hostProcess: optBool(optObj(sc.windowsOptions, 'windowsOptions').hostProcess, 'hostProcess'),
  };
}

function parseContainer(c: unknown): ContainerObj {
  const o = obj(c, 'container');
  const sc = optObj(o.securityContext, 'securityContext');
  const caps = optObj(sc.capabilities, 'capabilities');
  const secretEnv: string[] = [];
  for (const e of arr(o.env, 'env')) {
    const eo = obj(e, 'env');
    const ref = optObj(optObj(eo.valueFrom, 'valueFrom').secretKeyRef, 'secretKeyRef');
    if (Object.keys(ref).length > 0)
      secretEnv.push(
        `env ${str(eo.name, 'env.name')} ← secret ${optStr(ref.name, 'secretKeyRef.name') ?? '?'}/${optStr(ref.key, 'secretKeyRef.key') ?? '?'}`,
      );
  }
  for (const e of arr(o.envFrom, 'envFrom')) {
    const ref = optObj(obj(e, 'envFrom').secretRef, 'secretRef');
    if (Object.keys(ref).length > 0) secretEnv.push(`envFrom secret ${optStr(ref.name, 'secretRef.name') ?? '?'}`);
  }
  const hostPorts = arr(o.ports, 'ports')
    .map((p) => optInt(obj(p, 'port').hostPort, 'hostPort') ?? 0)
    .filter((p) => p > 0);
  return {
    name: str(o.name, 'container.name'),
    privileged: optBool(sc.privileged, 'privileged'),
    allowPrivilegeEscalation: optBool(sc.allowPrivilegeEscalation, 'allowPrivilegeEscalation'),
    ...parseSecurity(sc),
    capsAdd: strs(caps.add, 'capabilities.add'),
    capsDrop: strs(caps.drop, 'capabilities.drop'),
    hostPorts,
    secretEnv,
  };
}

function parsePod(item: unknown): PodObj {
  const m = meta(item, true);
  const spec = obj((item as Record<string, unknown>).spec, 'spec');
  const containers = [
    ...arr(spec.initContainers, 'initContainers'),
    ...arr(spec.containers, 'containers'),
    ...arr(spec.ephemeralContainers, 'ephemeralContainers'),
  ].map(parseContainer);
  if (containers.length === 0) bad('no containers');
  const hostPathVolumes = arr(spec.volumes, 'volumes')
    .map((v) => obj(v, 'volume'))
    .filter((v) => v.hostPath !== undefined && v.hostPath !== null)
    .map((v) => `${str(v.name, 'volume.name')} (${optStr(obj(v.hostPath, 'hostPath').path, 'hostPath.path') ?? '?'})`);
  return {
    namespace: m.namespace as string,
    name: m.name,
    serviceAccount:
      optStr(spec.serviceAccountName, 'serviceAccountName') ??
      optStr(spec.serviceAccount, 'serviceAccount') ??
      'default',
    automount: optBool(spec.automountServiceAccountToken, 'automountServiceAccountToken'),
    hostPID: optBool(spec.hostPID, 'hostPID') ?? false,
    hostIPC: optBool(spec.hostIPC, 'hostIPC') ?? false,
    hostNetwork: optBool(spec.hostNetwork, 'hostNetwork') ?? false,
    ...parseSecurity(spec.securityContext),
    hostPathVolumes,
    containers,
  };
}

/** Items of one kind parsed with `parse`; the ones it refuses are counted. */
function parseAll<T>(objects: ClusterObjects, kind: KindName, model: ClusterModel, parse: (i: unknown) => T): T[] {
  const read: unknown = objects[kind];
  if (read === undefined || read === null) {
    model.available[kind] = `${kind} were not read`;
    return [];
  }
  const r = read as Record<string, unknown>;
  if (typeof read !== 'object' || !Array.isArray(r.items)) {
    model.available[kind] = typeof r.unavailable === 'string' ? r.unavailable : `${kind}: not a list of items`;
    return [];
  }
  const out: T[] = [];
  for (const item of r.items) {
    try {
      out.push(parse(item));
    } catch {
      model.unreadable[kind]++;
    }
  }
  return out;
}

const policy =
  (kind: string) =>
  (item: unknown): PolicyObj => {
    const m = meta(item, true);
    return { kind, namespace: m.namespace as string, name: m.name };
  };

/** The normalised model of what was read. Never throws. */
export function buildModel(objects: ClusterObjects): ClusterModel {
  const model: ClusterModel = {
    available: Object.fromEntries(KINDS.map((k) => [k, true])) as Record<KindName, true | string>,
    unreadable: Object.fromEntries(KINDS.map((k) => [k, 0])) as Record<KindName, number>,
    clusterRoles: [],
    roles: [],
    clusterRoleBindings: [],
    roleBindings: [],
    namespaces: [],
    pods: [],
    serviceAccounts: [],
    policies: [],
  };
  const o = typeof objects === 'object' && objects !== null ? objects : {};
  model.clusterRoles = parseAll(o, 'clusterroles', model, (i) => parseRole(i, 'ClusterRole'));
  model.roles = parseAll(o, 'roles', model, (i) => parseRole(i, 'Role'));
  model.clusterRoleBindings = parseAll(o, 'clusterrolebindings', model, (i) => parseBinding(i, 'ClusterRoleBinding'));
  model.roleBindings = parseAll(o, 'rolebindings', model, (i) => parseBinding(i, 'RoleBinding'));
  model.namespaces = parseAll(o, 'namespaces', model, (i) => {
    const m = meta(i, false);
    return { name: m.name, labels: m.labels };
  });
  model.pods = parseAll(o, 'pods', model, parsePod);
  model.serviceAccounts = parseAll(o, 'serviceaccounts', model, (i) => {
    const m = meta(i, true);
    const automount = optBool((i as Record<string, unknown>).automountServiceAccountToken, 'automount');
    return { namespace: m.namespace as string, name: m.name, automount };
  });
  model.policies = [
    ...parseAll(o, 'networkpolicies', model, policy('NetworkPolicy')),
    ...parseAll(o, 'calico-networkpolicies', model, policy('Calico NetworkPolicy')),
    ...parseAll(o, 'cilium-networkpolicies', model, policy('CiliumNetworkPolicy')),
  ];
  return model;
}
