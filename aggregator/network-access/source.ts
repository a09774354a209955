import { KubeApiError, type KubeClient } from '../../common/kube-client.js';
import { isWatchedVersion, watchedTypeOf } from '../reports/policy-resources.js';
import type { ClusterSnapshot } from '../snapshot/index.js';
import type { NamespaceVersion, PodLifetime, Store, StoredAuditEvent } from '../store/index.js';
import type { ClusterConfiguration, ClusterPod, PolicyVersion } from './configured.js';
import { docOf, field, fieldDoc, fieldList, fieldString, labelMap, type Doc } from './document.js';
import type { ConfigNamespace } from './policy-model.js';

/** Where configured evidence reads the cluster's endpoints and policies for an interval. */
export interface ConfigurationSource {
  /** The configuration over [fromMs, toMs); undefined when nothing is known (no cluster, no snapshot). */
  configuration(fromMs: number, toMs: number): Promise<ClusterConfiguration | undefined>;
}

function podOf(d: Doc): ClusterPod {
  const meta = fieldDoc(d, 'metadata');
  const spec = fieldDoc(d, 'spec');
  const names = (key: string) => (fieldList(spec, key) ?? []).map((c) => fieldString(docOf(c), 'name') ?? '');
  const init = names('initContainers');
  // Calico's "Envoy enabled", as the inventory report reads it: Istio's istio-proxy (a container or a native sidecar)
  // and its injection (istio-init, or the Istio CNI's sidecar.istio.io/status annotation).
  const proxy = [...names('containers'), ...init].includes('istio-proxy');
  const injected =
    init.includes('istio-init') || labelMap(field(meta, 'annotations'))['sidecar.istio.io/status'] !== undefined;
  return {
    namespace: fieldString(meta, 'namespace') ?? '',
    name: fieldString(meta, 'name') ?? '',
    labels: labelMap(field(meta, 'labels')),
    serviceAccount: fieldString(spec, 'serviceAccountName') ?? 'default',
    envoy: proxy && injected,
  };
}

function namespaceOf(d: Doc): ConfigNamespace {
  const meta = fieldDoc(d, 'metadata');
  return { name: fieldString(meta, 'name') ?? '', labels: labelMap(field(meta, 'labels')) };
}

function podsAreOnHost(d: Doc): boolean {
  return field(fieldDoc(d, 'spec'), 'hostNetwork') === true;
}

/**
 * A snapshot is the cluster as it was when written: its policies are taken to have been in force throughout any
 * interval asked about (the snapshot says nothing of changes). Host-network pods are the node's, not endpoints.
 */
export function snapshotConfigurationSource(s: ClusterSnapshot): ConfigurationSource {
  const cfg: ClusterConfiguration = {
    source: `snapshot ${s.dir}`,
    namespaces: s.namespaces.map(namespaceOf),
    pods: s.pods.filter((p) => !podsAreOnHost(p)).map(podOf),
    services: s.services.map((d) => {
      const meta = fieldDoc(d, 'metadata');
      return {
        namespace: fieldString(meta, 'namespace') ?? '',
        name: fieldString(meta, 'name') ?? '',
        selector: labelMap(field(fieldDoc(d, 'spec'), 'selector')),
      };
    }),
    policies: s.policies.map((object) => ({ fromMs: -Infinity, toMs: Infinity, object })),
  };
  return { configuration: async () => cfg };
}

/** The current version of each watched policy object (kube/policy-history.ts keeps them). */
export interface CurrentPolicies {
  current(): { apiGroup: string; resource: string; namespace: string; name: string }[];
}

const objectKey = (o: { apiGroup: string; resource: string; namespace: string; name: string }) =>
  JSON.stringify([o.apiGroup, o.resource, o.namespace, o.name]);

function versionObject(e: StoredAuditEvent): Doc | undefined {
  if (e.verb === 'delete') return undefined;
  const object = fieldDoc(docOf(e.event), 'responseObject');
  if (!object || (fieldString(object, 'apiVersion') && fieldString(object, 'kind'))) return object;
  // Recorded from a list, whose items carry no apiVersion or kind: the watched resource says what it is. A copy
  // without a prototype, the object's own fields only.
  const type = watchedTypeOf(e.apiGroup, e.resource);
  if (!type) return object;
  const typed = Object.create(null) as Record<string, unknown>;
  for (const k of Object.keys(object)) typed[k] = object[k];
  typed['apiVersion'] = type.apiVersion;
  typed['kind'] = type.kind;
  return typed;
}

/** Audit events are read a day at a time while looking for watched versions (webhook events dropped as read). */
const AUDIT_WINDOW_MS = 86_400_000;

/**
 * The watched policy versions of [fromMs, toMs) that `keep` keeps, reading the audit events a window at a time: the
 * audit webhook's events share the table, and a long interval's must never be in memory at once.
 */
async function watchedVersionsIn(
  store: Store,
  fromMs: number,
  toMs: number,
  keep: (e: StoredAuditEvent) => boolean,
): Promise<StoredAuditEvent[]> {
  const out: StoredAuditEvent[] = [];
  for (let a = fromMs; a < toMs; a += AUDIT_WINDOW_MS)
    for (const e of await store.auditEvents(a, Math.min(toMs, a + AUDIT_WINDOW_MS)))
      if (isWatchedVersion(e) && keep(e)) out.push(e);
  return out;
}

/**
 * Policy versions over [fromMs, toMs) from the aggregator's own watch history (kube/policy-history.ts, stored beside
 * audit events): each object's version in force at fromMs (its latest stored version before), then every change in
 * the interval. An object first recorded after fromMs (created then, or the aggregator started then) was not known
 * to be in force before, so it does not protect the interval's start.
 */
export async function policyVersions(
  store: Store,
  known: CurrentPolicies,
  fromMs: number,
  toMs: number,
): Promise<PolicyVersion[]> {
  const changes = await watchedVersionsIn(store, fromMs, toMs, () => true);
  // An object deleted since toMs was in force over the interval yet is neither current nor changed in it: the
  // deletions recorded after the interval name it.
  const deletedSince = await watchedVersionsIn(store, toMs, Math.max(toMs, Date.now()) + 1, (e) => e.verb === 'delete');
  const objects = new Map<string, { apiGroup: string; resource: string; namespace: string; name: string }>();
  for (const o of [...known.current(), ...changes, ...deletedSince]) objects.set(objectKey(o), o);
  // The latest watched version of each: the audit webhook stores the same change beside it, and taking the latest of
  // either kind then dropped the object whenever the webhook's event happened to come last.
  const before = await store.latestAuditEvents([...objects.values()], fromMs, true);
  const byObject = new Map<string, StoredAuditEvent[]>();
  for (const e of [...before, ...changes]) {
    const k = objectKey(e);
    byObject.set(k, [...(byObject.get(k) ?? []), e]);
  }
  const out: PolicyVersion[] = [];
  for (const events of byObject.values()) {
    events.sort((a, b) => a.stageMs - b.stageMs);
    for (const [i, e] of events.entries()) {
      const object = versionObject(e);
      if (!object) continue;
      out.push({
        fromMs: e.stageMs < fromMs ? -Infinity : e.stageMs,
        toMs: events[i + 1]?.stageMs ?? Infinity,
        object,
      });
    }
  }
  return out;
}

/** Namespace versions as [fromMs, toMs) stretches of labels, each until the namespace's next version. */
export function namespaceHistoryOf(
  versions: readonly NamespaceVersion[],
): { fromMs: number; toMs: number; namespace: ConfigNamespace }[] {
  return versions.flatMap((v, i) => {
    const next = versions[i + 1];
    if (v.labels === null) return [];
    const toMs = next && next.name === v.name ? next.fromMs : Infinity;
    return [{ fromMs: v.fromMs, toMs, namespace: { name: v.name, labels: labelMap(v.labels) } }];
  });
}

/** Pods read from the store a page at a time (configured evidence folds one page, then asks for the next). */
export const POD_PAGE_SIZE = 500;

/**
 * A recorded pod as configured evidence sees it: its lifetime from its first sighting to its deletion, cut at each
 * label version (the first stretched back to the first sighting, so a version recorded late never leaves a gap).
 */
export function podOfLifetime(p: PodLifetime): ClusterPod {
  const last = p.versions[p.versions.length - 1];
  const end = p.deletedMs ?? Infinity;
  const lifetime = p.versions
    .map((v, i) => ({
      fromMs: i === 0 ? Math.min(v.fromMs, p.firstSeenMs) : v.fromMs,
      toMs: Math.min(p.versions[i + 1]?.fromMs ?? Infinity, end),
      labels: labelMap(v.labels),
      serviceAccount: v.serviceAccount,
    }))
    .filter((v) => v.fromMs < v.toMs);
  return {
    namespace: p.namespace,
    name: p.name,
    labels: labelMap(last?.labels),
    serviceAccount: last?.serviceAccount ?? 'default',
    envoy: false,
    lifetime,
  };
}

/** The pods of [fromMs, toMs) from the store's pod history, a page at a time, host-network pods left out. */
async function* podPages(
  store: Store,
  fromMs: number,
  toMs: number,
  first: PodLifetime[],
): AsyncIterable<ClusterPod[]> {
  let page = first;
  for (;;) {
    yield page.filter((p) => !p.hostNetwork).map(podOfLifetime);
    const last = page[page.length - 1];
    if (!last || page.length < POD_PAGE_SIZE) return;
    page = (await store.podLifetimes(fromMs, toMs, { afterUid: last.uid, limit: POD_PAGE_SIZE })) ?? [];
  }
}

/**
 * In a cluster: pods from the recorded pod history (aggregator/kube/pods.ts), each over its own lifetime and label
 * versions, read a page at a time (the current list, each pod taken to exist throughout, when the history does not
 * reach back), namespaces (their labels, for namespace selectors) as listed now, policies from the watch history.
 */
export function clusterConfigurationSource(opts: {
  kube: KubeClient;
  store: Store;
  policies: CurrentPolicies;
}): ConfigurationSource {
  const { kube, store, policies } = opts;
  const list = async (path: string): Promise<Doc[]> => {
    try {
      const items = fieldList(docOf(await kube.get<unknown>(path)), 'items') ?? [];
      return items.map(docOf).filter((d): d is Doc => d !== undefined);
    } catch (err) {
      if (err instanceof KubeApiError && err.status === 404) return [];
      throw err;
    }
  };
  return {
    async configuration(fromMs, toMs) {
      const [history, namespaces, services, versions, hostEndpoints, nsVersions] = await Promise.all([
        store.podLifetimes(fromMs, toMs, { limit: POD_PAGE_SIZE }),
        list('/api/v1/namespaces'),
        list('/api/v1/services'),
        policyVersions(store, policies, fromMs, toMs),
        listHostEndpoints(list),
        store.namespaceVersions(fromMs, toMs),
      ]);
      const live = history ? [] : await list('/api/v1/pods');
      return {
        source: 'cluster',
        namespaces: namespaces.map(namespaceOf),
        ...(nsVersions ? { namespaceHistory: namespaceHistoryOf(nsVersions) } : {}),
        pods: history ? [] : live.filter((p) => !podsAreOnHost(p)).map(podOf),
        ...(history ? { podPages: podPages(store, fromMs, toMs, history) } : {}),
        services: services.map((d) => ({
          namespace: fieldString(fieldDoc(d, 'metadata'), 'namespace') ?? '',
          name: fieldString(fieldDoc(d, 'metadata'), 'name') ?? '',
          selector: labelMap(field(fieldDoc(d, 'spec'), 'selector')),
        })),
        // Calico host endpoints as listed now, taken to exist throughout (they are not in the watch history).
        policies: [...versions, ...hostEndpoints.map((object) => ({ fromMs: -Infinity, toMs: Infinity, object }))],
      };
    },
  };
}

/**
 * Calico HostEndpoints (endpoints of the network-access report beside pods). None where Calico's API is not served
 * (404) or not granted (403: RBAC from before host endpoints were read): the report then has the pods only.
 */
async function listHostEndpoints(list: (path: string) => Promise<Doc[]>): Promise<Doc[]> {
  try {
    // A list's items carry no apiVersion or kind (kubernetes/kubernetes#3030): say what they are.
    return (await list('/apis/projectcalico.org/v3/hostendpoints')).map((o) => {
      const typed = Object.create(null) as Record<string, unknown>;
      for (const k of Object.keys(o)) typed[k] = o[k];
      typed['apiVersion'] = 'projectcalico.org/v3';
      typed['kind'] = 'HostEndpoint';
      return typed;
    });
  } catch (err) {
    if (err instanceof KubeApiError && err.status === 403) return [];
    throw err;
  }
}
