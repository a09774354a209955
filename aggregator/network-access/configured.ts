import { errorDetail } from '../../common/errors.js';
import { InternalRanges } from './cidr.js';
import { podConfiguration } from './decide.js';
import type { Doc } from './document.js';
import { compilePolicy, compileTier, policyObjectKind } from './policies.js';
import {
  compileHostEndpoint,
  type EndpointEvidence,
  hostEndpointRows,
  isHostEndpointObject,
  labelTexts,
  unfoldedEvidence,
} from './host-endpoints.js';
import { compileNetworkSet, networkSetObjectKind } from './network-sets.js';
import type {
  ConfigHostEndpoint,
  ConfigNamespace,
  ConfigNetworkSet,
  ConfigPod,
  ConfigTier,
  ConfiguredPolicy,
} from './policy-model.js';

/** A pod of the configuration, with what the network-access report says about it beside its policies. */
export interface ClusterPod extends ConfigPod {
  /** An injected Istio sidecar (Envoy) runs in it: Calico's envoyEnabled. */
  envoy: boolean;
  /**
   * When it existed and with which labels and service account, in time order: [fromMs, toMs) each, cut at its own
   * label changes; a gap is a time it did not exist. Absent: it existed throughout any interval asked about, with
   * `labels` and `serviceAccount` (a snapshot, the live list).
   */
  lifetime?: PodVersion[];
}

/** A pod's labels and service account over [fromMs, toMs). */
export interface PodVersion {
  fromMs: number;
  toMs: number;
  labels: Readonly<Record<string, string>>;
  serviceAccount: string;
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
  /**
   * Namespace labels over time (the aggregator's namespace history), each version over [fromMs, toMs); absent:
   * `namespaces` throughout. Namespace selectors are evaluated with the labels a namespace had then.
   */
  namespaceHistory?: { fromMs: number; toMs: number; namespace: ConfigNamespace }[];
  /**
   * More pods, a page at a time (a cluster's pod history read in pages, so an interval of any length never holds all
   * its pods at once); folded after `pods`.
   */
  podPages?: AsyncIterable<ClusterPod[]>;
}

/** One endpoint (a workload: the pods one flow-log name stands for) as the configuration protects it. */
export interface ConfiguredEndpoint extends EndpointEvidence {
  /** "namespace/workload", the name flow records give it. */
  endpoint: string;
  namespace: string;
  name: string;
  pods: number;
  /** The first pod's labels ("key=value", sorted) and service account (report scope). */
  labels: string[];
  serviceAccount: string;
  /** "namespace/name" of the services selecting a pod; undefined when services are not known. */
  services?: string[];
  /** A Calico host endpoint's node: its flows name it by the node (felix's flow-log aggregated name for a hep). */
  node?: string;
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
  hostEndpoint?: ConfigHostEndpoint;
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
    if (isHostEndpointObject(version.object)) return [{ version, hostEndpoint: compileHostEndpoint(version.object) }];
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
 * Configured evidence over [fromMs, toMs): the interval is cut wherever a policy or tier version starts or ends, and
 * each pod's existence in it is cut again at its own label changes; each piece is evaluated with the pod's labels and
 * the versions in force then, and folded per endpoint as Calico's report defines it: protected only if protected in
 * every piece of every pod's existence (a policy added mid-interval does not protect that interval; a pod created
 * after its policy is protected; a label change out of the selector unprotects), the internet and other-namespace
 * flags true if true in any piece, the applied policies those that applied at any point. A pod that came or went
 * mid-interval is judged over the part it existed, and listed.
 */
export function configuredEvidence(
  cfg: ClusterConfiguration,
  fromMs: number,
  toMs: number,
  opts: { internalCidrs?: readonly string[] } = {},
): ConfiguredEvidence {
  const fold = configuredFold(cfg, fromMs, toMs, opts);
  fold.add(cfg.pods);
  return fold.result();
}

/** configuredEvidence with the configuration's pod pages folded in too, one page in memory at a time. */
export async function configuredEvidenceOf(
  cfg: ClusterConfiguration,
  fromMs: number,
  toMs: number,
  opts: { internalCidrs?: readonly string[] } = {},
): Promise<ConfiguredEvidence> {
  const fold = configuredFold(cfg, fromMs, toMs, opts);
  fold.add(cfg.pods);
  if (cfg.podPages) for await (const page of cfg.podPages) fold.add(page);
  return fold.result();
}

/** The pieces of a pod's existence inside [fromMs, toMs), each with its labels and service account then. */
export function podPieces(pod: ClusterPod, fromMs: number, toMs: number): PodVersion[] {
  const versions = pod.lifetime ?? [
    { fromMs: -Infinity, toMs: Infinity, labels: pod.labels, serviceAccount: pod.serviceAccount },
  ];
  return versions.flatMap((v) => {
    const a = Math.max(v.fromMs, fromMs);
    const b = Math.min(v.toMs, toMs);
    return a < b ? [{ ...v, fromMs: a, toMs: b }] : [];
  });
}

/** An endpoint before any piece is folded in: labels and service account as its first pod had them last (scope). */
function newEndpoint(
  id: string,
  namespace: string,
  name: string,
  last: PodVersion,
  withServices: boolean,
): ConfiguredEndpoint {
  return {
    endpoint: id,
    namespace,
    name,
    pods: 0,
    labels: labelTexts(last.labels),
    serviceAccount: last.serviceAccount,
    ...unfoldedEvidence(),
    ...(withServices ? { services: [] } : {}),
  };
}

/** The index of the segment in force at t: the last starting at or before it (segments sorted by start). */
function segmentAt(segments: readonly { at: number }[], t: number): number {
  let lo = 0;
  let hi = segments.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if ((segments[mid] as { at: number }).at <= t) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/**
 * The fold behind configuredEvidence: the policies compiled once, pods added in any number of batches (each pod
 * once), the endpoints (one per workload) and their folded sets the only state kept.
 */
export function configuredFold(
  cfg: Omit<ClusterConfiguration, 'pods' | 'podPages'>,
  fromMs: number,
  toMs: number,
  opts: { internalCidrs?: readonly string[] } = {},
): { add(pods: Iterable<ClusterPod>): void; result(): ConfiguredEvidence } {
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
  const nsHistory = (cfg.namespaceHistory ?? []).filter((v) => v.fromMs < toMs && v.toMs > fromMs);
  for (const v of nsHistory) for (const t of [v.fromMs, v.toMs]) if (t > fromMs && t < toMs) cuts.add(t);
  const starts = [...cuts].sort((a, b) => a - b);
  // What is in force from each start to the next (policies, namespace labels): the same for every pod, built once.
  const segments = starts.map((at) => {
    const active = compiled.filter((c) => c.version.fromMs <= at && c.version.toMs > at);
    const namespaces = cfg.namespaceHistory
      ? nsHistory.filter((v) => v.fromMs <= at && v.toMs > at).map((v) => v.namespace)
      : cfg.namespaces;
    return {
      at,
      namespaces,
      nsByName: new Map(namespaces.map((n) => [n.name, n])),
      policies: active.flatMap((c) => (c.policy ? [c.policy] : [])),
      tiers: new Map(active.flatMap((c) => (c.tier ? [[c.tier.name, c.tier] as const] : []))),
      networkSets: active.flatMap((c) => (c.networkSet ? [c.networkSet] : [])),
      hostEndpoints: active.flatMap((c) => (c.hostEndpoint ? [c.hostEndpoint] : [])),
    };
  });
  const endpoints = new Map<string, ConfiguredEndpoint>();
  const services = cfg.services;
  const folded = new Map<
    ConfiguredEndpoint,
    { ingress: Set<string>; egress: Set<string>; applied: Set<string>; staged: Set<string>; services: Set<string> }
  >();
  const setsOf = (e: ConfiguredEndpoint) => {
    let f = folded.get(e);
    if (!f) {
      f = { ingress: new Set(), egress: new Set(), applied: new Set(), staged: new Set(), services: new Set() };
      folded.set(e, f);
    }
    return f;
  };

  const addPod = (pod: ClusterPod) => {
    const pieces = podPieces(pod, fromMs, toMs);
    if (pieces.length === 0) return;
    const name = workloadOf(pod.name);
    const id = `${pod.namespace}/${name}`;
    let e = endpoints.get(id);
    if (!e) {
      e = newEndpoint(id, pod.namespace, name, pieces[pieces.length - 1] as PodVersion, services !== undefined);
      endpoints.set(id, e);
    }
    e.pods++;
    e.envoyEnabled ||= pod.envoy;
    const sets = setsOf(e);
    for (const piece of pieces) {
      const view: ConfigPod = {
        namespace: pod.namespace,
        name: pod.name,
        labels: piece.labels,
        serviceAccount: piece.serviceAccount,
      };
      if (services)
        for (const s of services)
          if (
            s.namespace === pod.namespace &&
            Object.keys(s.selector).length > 0 &&
            Object.keys(s.selector).every((k) => piece.labels[k] === s.selector[k])
          )
            sets.services.add(`${s.namespace}/${s.name}`);
      // The piece from its start, then at each policy cut inside it.
      for (let i = segmentAt(segments, piece.fromMs); i < segments.length; i++) {
        const seg = segments[i] as (typeof segments)[number];
        if (seg.at >= piece.toMs) break;
        const ns = seg.nsByName.get(pod.namespace) ?? { name: pod.namespace, labels: {} };
        const pc = podConfiguration(view, ns, seg.policies, seg.namespaces, seg.tiers, seg.networkSets);
        e.ingressProtected &&= pc.protected.ingress;
        e.egressProtected &&= pc.protected.egress;
        e.ingressFromInternet ||= pc.internet.ingress;
        e.egressToInternet ||= pc.internet.egress;
        // Sets while folding: memory stays one entry per namespace or policy, however many pieces the interval has.
        for (const n of pc.otherNamespaces.ingress) sets.ingress.add(n);
        for (const n of pc.otherNamespaces.egress) sets.egress.add(n);
        for (const p of pc.applied) sets.applied.add(p);
        for (const p of pc.staged) sets.staged.add(p);
      }
    }
  };

  return {
    add(pods) {
      for (const pod of pods) addPod(pod);
    },
    result() {
      const uniq = (xs: Iterable<string>) => [...new Set(xs)].sort();
      for (const e of endpoints.values()) {
        const sets = setsOf(e);
        e.ingressNamespaces = uniq(sets.ingress);
        e.egressNamespaces = uniq(sets.egress);
        e.ingressFromOtherNamespace = e.ingressNamespaces.length > 0;
        e.egressToOtherNamespace = e.egressNamespaces.length > 0;
        e.appliedPolicies = uniq(sets.applied);
        e.stagedPolicies = uniq(sets.staged);
        if (e.services) e.services = uniq(sets.services);
      }
      for (const h of hostEndpointRows(segments, cfg.namespaces)) endpoints.set(h.endpoint, h);
      return { source: cfg.source, endpoints, problems };
    },
  };
}
