import { errorDetail } from '../../common/errors.js';
import { InternalRanges } from './cidr.js';
import { podConfiguration } from './decide.js';
import type { Doc } from './document.js';
import { compilePolicy, compileTier, policyObjectKind } from './policies.js';
import { compileNetworkSet, networkSetObjectKind } from './network-sets.js';
import type { ConfigNamespace, ConfigNetworkSet, ConfigPod, ConfigTier, ConfiguredPolicy } from './policy-model.js';

/** A pod of the configuration, with what the network-access report says about it beside its policies. */
export interface ClusterPod extends ConfigPod {
  /** An injected Istio sidecar (Envoy) runs in it: Calico's envoyEnabled. */
  envoy: boolean;
}

/** A policy, Tier or Calico network set object and when it was in force: [fromMs, toMs). */
export interface PolicyVersion {
  fromMs: number;
  toMs: number;
  object: Doc;
}

/** What configured evidence is computed from: the cluster's endpoints and the policy versions of an interval. */
export interface ClusterConfiguration {
  /** Where it came from, for logs and reports ("cluster", "snapshot DIR"). */
  source: string;
  namespaces: ConfigNamespace[];
  pods: ClusterPod[];
  /** v1 Services by the pods their selector picks; absent: unknown. */
  services?: { namespace: string; name: string; selector: Readonly<Record<string, string>> }[];
  policies: PolicyVersion[];
}

/** One endpoint (a workload: the pods one flow-log name stands for) as the configuration protects it. */
export interface ConfiguredEndpoint {
  /** "namespace/workload", the name flow records give it. */
  endpoint: string;
  namespace: string;
  name: string;
  pods: number;
  /** The first pod's labels ("key=value", sorted) and service account (report scope). */
  labels: string[];
  serviceAccount: string;
  /** Every pod had an enforced ingress (egress) policy applying throughout the interval. */
  ingressProtected: boolean;
  egressProtected: boolean;
  /** At some point in the interval the configuration let some internet / other-namespace traffic in (out). */
  ingressFromInternet: boolean;
  egressToInternet: boolean;
  ingressFromOtherNamespace: boolean;
  egressToOtherNamespace: boolean;
  /** The other namespaces it let traffic in from / out to at some point. */
  ingressNamespaces: string[];
  egressNamespaces: string[];
  appliedPolicies: string[];
  stagedPolicies: string[];
  envoyEnabled: boolean;
  /** "namespace/name" of the services selecting a pod; undefined when services are not known. */
  services?: string[];
}

export interface ConfiguredEvidence {
  source: string;
  /** By endpoint ("namespace/workload"). */
  endpoints: Map<string, ConfiguredEndpoint>;
  /** Policy objects that could not be compiled, each with its reason; they count as absent. */
  problems: string[];
}

const SAFE = '[bcdfghjklmnpqrstvwxz2456789]';
const GENERATED = [new RegExp(`-${SAFE}{6,10}-${SAFE}{5}$`), new RegExp(`-${SAFE}{5}$`), /-\d+$/];

/**
 * The workload a pod belongs to, as the agent names flow endpoints: a Deployment pod's ReplicaSet hash and suffix, a
 * DaemonSet pod's suffix or a StatefulSet ordinal removed (Kubernetes draws generated suffixes from an alphabet
 * without vowels). The same rule the agent applies to pod names, so both sides meet on one name.
 */
export function workloadOf(podName: string): string {
  for (const re of GENERATED) if (re.test(podName)) return podName.replace(re, '');
  return podName;
}

interface Compiled {
  version: PolicyVersion;
  policy?: ConfiguredPolicy;
  tier?: ConfigTier;
  networkSet?: ConfigNetworkSet;
}

function compileAll(
  versions: readonly PolicyVersion[],
  ranges: InternalRanges,
  problems: string[],
  namespaceLabels: (ns: string) => Readonly<Record<string, string>>,
): Compiled[] {
  return versions.flatMap((version): Compiled[] => {
    if (networkSetObjectKind(version.object))
      return [{ version, networkSet: compileNetworkSet(version.object, namespaceLabels) }];
    const kind = policyObjectKind(version.object);
    if (kind === undefined) return [];
    if (kind === 'Tier') return [{ version, tier: compileTier(version.object) }];
    try {
      return [{ version, policy: compilePolicy(version.object, { ranges }) }];
    } catch (err) {
      problems.push(`${kind} ${describe(version.object)}: ${errorDetail(err)}`);
      return [];
    }
  });
}

function describe(d: Doc): string {
  const m = d['metadata'];
  if (typeof m !== 'object' || m === null) return '?';
  const md = m as Record<string, unknown>;
  const ns = typeof md['namespace'] === 'string' ? `${md['namespace']}/` : '';
  return `${ns}${typeof md['name'] === 'string' ? md['name'] : '?'}`;
}

/**
 * Configured evidence over [fromMs, toMs): the interval is cut wherever a policy or tier version starts or ends, each
 * piece evaluated with the versions in force then, and folded per endpoint as Calico's report defines it: protected
 * only if protected in every piece (a policy added mid-interval does not protect that interval), the internet and
 * other-namespace flags true if true in any piece, the applied policies those that applied at any point.
 */
export function configuredEvidence(
  cfg: ClusterConfiguration,
  fromMs: number,
  toMs: number,
  opts: { internalCidrs?: readonly string[] } = {},
): ConfiguredEvidence {
  const problems: string[] = [];
  const nsByName = new Map(cfg.namespaces.map((n) => [n.name, n]));
  const compiled = compileAll(
    cfg.policies.filter((v) => v.fromMs < toMs && v.toMs > fromMs),
    new InternalRanges(opts.internalCidrs),
    problems,
    (ns) => nsByName.get(ns)?.labels ?? {},
  );
  const cuts = new Set<number>([fromMs]);
  for (const c of compiled) for (const t of [c.version.fromMs, c.version.toMs]) if (t > fromMs && t < toMs) cuts.add(t);
  const starts = [...cuts].sort((a, b) => a - b);
  const endpoints = new Map<string, ConfiguredEndpoint>();
  const services = cfg.services;
  const folded = new Map<
    ConfiguredEndpoint,
    { ingress: Set<string>; egress: Set<string>; applied: Set<string>; staged: Set<string> }
  >();
  const setsOf = (e: ConfiguredEndpoint) => {
    let f = folded.get(e);
    if (!f) {
      f = { ingress: new Set(), egress: new Set(), applied: new Set(), staged: new Set() };
      folded.set(e, f);
    }
    return f;
  };

  for (const [i, at] of starts.entries()) {
    const active = compiled.filter((c) => c.version.fromMs <= at && c.version.toMs > at);
    const policies = active.flatMap((c) => (c.policy ? [c.policy] : []));
    const tiers = new Map(active.flatMap((c) => (c.tier ? [[c.tier.name, c.tier] as const] : [])));
    const networkSets = active.flatMap((c) => (c.networkSet ? [c.networkSet] : []));
    for (const pod of cfg.pods) {
      const ns = nsByName.get(pod.namespace) ?? { name: pod.namespace, labels: {} };
      const pc = podConfiguration(pod, ns, policies, cfg.namespaces, tiers, networkSets);
      const name = workloadOf(pod.name);
      const id = `${pod.namespace}/${name}`;
      let e = endpoints.get(id);
      if (!e) {
        e = {
          endpoint: id,
          namespace: pod.namespace,
          name,
          pods: 0,
          labels: Object.keys(pod.labels)
            .map((k) => `${k}=${pod.labels[k]}`)
            .sort(),
          serviceAccount: pod.serviceAccount,
          ingressProtected: true,
          egressProtected: true,
          ingressFromInternet: false,
          egressToInternet: false,
          ingressFromOtherNamespace: false,
          egressToOtherNamespace: false,
          ingressNamespaces: [],
          egressNamespaces: [],
          appliedPolicies: [],
          stagedPolicies: [],
          envoyEnabled: false,
          ...(services ? { services: [] } : {}),
        };
        endpoints.set(id, e);
      }
      if (i === 0) {
        e.pods++;
        e.envoyEnabled ||= pod.envoy;
        if (e.services && services)
          for (const s of services)
            if (
              s.namespace === pod.namespace &&
              Object.keys(s.selector).length > 0 &&
              Object.keys(s.selector).every((k) => pod.labels[k] === s.selector[k])
            )
              e.services.push(`${s.namespace}/${s.name}`);
      }
      e.ingressProtected &&= pc.protected.ingress;
      e.egressProtected &&= pc.protected.egress;
      e.ingressFromInternet ||= pc.internet.ingress;
      e.egressToInternet ||= pc.internet.egress;
      // Sets while folding: memory stays one entry per namespace or policy, however many pieces the interval has.
      const sets = setsOf(e);
      for (const n of pc.otherNamespaces.ingress) sets.ingress.add(n);
      for (const n of pc.otherNamespaces.egress) sets.egress.add(n);
      for (const p of pc.applied) sets.applied.add(p);
      for (const p of pc.staged) sets.staged.add(p);
    }
  }
  const uniq = (xs: Iterable<string>) => [...new Set(xs)].sort();
  for (const e of endpoints.values()) {
    const sets = setsOf(e);
    e.ingressNamespaces = uniq(sets.ingress);
    e.egressNamespaces = uniq(sets.egress);
    e.ingressFromOtherNamespace = e.ingressNamespaces.length > 0;
    e.egressToOtherNamespace = e.egressNamespaces.length > 0;
    e.appliedPolicies = uniq(sets.applied);
    e.stagedPolicies = uniq(sets.staged);
    if (e.services) e.services = uniq(e.services);
  }
  return { source: cfg.source, endpoints, problems };
}
