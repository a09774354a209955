import { KubeApiError, type KubeClient } from '../../common/kube-client.js';
import { isWatchedVersion } from '../reports/policy-resources.js';
import type { ClusterSnapshot } from '../snapshot/index.js';
import type { Store, StoredAuditEvent } from '../store/index.js';
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
  return fieldDoc(docOf(e.event), 'responseObject');
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
  const changes = (await store.auditEvents(fromMs, toMs)).filter(isWatchedVersion);
  const objects = new Map<string, { apiGroup: string; resource: string; namespace: string; name: string }>();
  for (const o of [...known.current(), ...changes]) objects.set(objectKey(o), o);
  const before = await store.latestAuditEvents([...objects.values()], fromMs);
  const byObject = new Map<string, StoredAuditEvent[]>();
  for (const e of [...before.filter(isWatchedVersion), ...changes]) {
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

/**
 * In a cluster: pods from the recorded pod history (aggregator/kube/pods.ts; the current list when the history does
 * not reach back), namespaces (their labels, for namespace selectors) as listed now, policies from the watch history.
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
      const [history, namespaces, services, versions] = await Promise.all([
        store.podsDuring(fromMs, toMs),
        list('/api/v1/namespaces'),
        list('/api/v1/services'),
        policyVersions(store, policies, fromMs, toMs),
      ]);
      const live = history ? [] : await list('/api/v1/pods');
      const pods: ClusterPod[] = history
        ? history
            .filter((p) => !p.hostNetwork)
            .map((p) => ({
              namespace: p.namespace,
              name: p.name,
              labels: labelMap(p.labels),
              serviceAccount: p.serviceAccount,
              envoy: false,
            }))
        : live.filter((p) => !podsAreOnHost(p)).map(podOf);
      return {
        source: 'cluster',
        namespaces: namespaces.map(namespaceOf),
        pods,
        services: services.map((d) => ({
          namespace: fieldString(fieldDoc(d, 'metadata'), 'namespace') ?? '',
          name: fieldString(fieldDoc(d, 'metadata'), 'name') ?? '',
          selector: labelMap(field(fieldDoc(d, 'spec'), 'selector')),
        })),
        policies: versions,
      };
    },
  };
}
