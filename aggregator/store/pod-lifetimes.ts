import type { Conn, Dialect, Table } from './sql.js';

/** A pod's labels and service account from `fromMs` until its next version (or its deletion). */
export interface PodLabelVersion {
  fromMs: number;
  labels: Record<string, string>;
  serviceAccount: string;
}

/** A pod, when it existed (first seen until deleted), and its label versions in an interval, in time order. */
export interface PodLifetime {
  uid: string;
  namespace: string;
  name: string;
  hostNetwork: boolean;
  firstSeenMs: number;
  /** Absent: not deleted (as far as the store knows). */
  deletedMs?: number;
  /** The version in force at the interval's start (or the first), then each change before its end. */
  versions: PodLabelVersion[];
}

export const POD_LABEL_VERSIONS: Table = {
  name: 'pod_label_versions',
  columns: [
    ['uid', 'text'],
    ['from_ms', 'bigint'],
    ['labels_json', 'text'],
    ['service_account', 'text'],
  ],
};

/** The pod fields a change of version compares (what PodHistory writes on). */
interface Sighting {
  uid: string;
  labels: Record<string, string>;
  serviceAccount: string;
}

/**
 * The label-version rows a sighting at `atMs` adds: a pod not seen before starts its first version; a pod whose labels
 * or service account differ from pod_history's starts a new one, and its earlier labels get a row from its first
 * sighting if none is there (a pod recorded before migration 014), which ON CONFLICT DO NOTHING keeps once.
 */
export async function podVersionRows(reader: Conn, d: Dialect, pods: Sighting[], atMs: number): Promise<unknown[][]> {
  if (pods.length === 0) return [];
  const known = new Map(
    (
      await reader.all<{ uid: string; labels_json: string; service_account: string; first_seen_ms: number | string }>(
        `SELECT uid, labels_json, service_account, first_seen_ms FROM pod_history WHERE uid IN ${d.jsonTexts('$1')}`,
        [JSON.stringify(pods.map((p) => p.uid))],
      )
    ).map((r) => [r.uid, r]),
  );
  const rows: unknown[][] = [];
  for (const p of pods) {
    const labels = JSON.stringify(p.labels);
    const was = known.get(p.uid);
    if (was && was.labels_json === labels && was.service_account === p.serviceAccount) continue;
    if (was) rows.push([p.uid, Number(was.first_seen_ms), was.labels_json, was.service_account]);
    rows.push([p.uid, atMs, labels, p.serviceAccount]);
  }
  return rows;
}

interface LifetimeRow {
  uid: string;
  namespace: string;
  name: string;
  labels_json: string;
  service_account: string;
  host_network: boolean | number;
  first_seen_ms: number | string;
  deleted_ms: number | string | null;
}

const labelsOf = (json: string): Record<string, string> => {
  const out = Object.create(null) as Record<string, string>;
  const parsed: unknown = JSON.parse(json);
  if (typeof parsed === 'object' && parsed !== null)
    for (const [k, v] of Object.entries(parsed)) if (typeof v === 'string') out[k] = v;
  return out;
};

/**
 * One page of the pods that existed in [fromMs, toMs), by uid in byte order after `afterUid`, each with its label
 * versions from the one in force at fromMs on; undefined when the pod history does not reach back to fromMs. Two
 * statements a page, whatever the interval: the page's pods, then their versions before toMs.
 */
export async function podLifetimePage(
  reader: Conn,
  d: Dialect,
  fromMs: number,
  toMs: number,
  page: { afterUid?: string; limit: number },
): Promise<PodLifetime[] | undefined> {
  const [oldest] = await reader.all<{ m: number | string | null }>('SELECT MIN(first_seen_ms) AS m FROM pod_history');
  if (oldest?.m === null || oldest?.m === undefined || Number(oldest.m) > fromMs) return undefined;
  const after = page.afterUid === undefined ? '' : `AND ${d.byteOrder('uid')} > $4`;
  const pods = await reader.all<LifetimeRow>(
    `SELECT uid, namespace, name, labels_json, service_account, host_network, first_seen_ms, deleted_ms
     FROM pod_history WHERE first_seen_ms < $1 AND (deleted_ms IS NULL OR deleted_ms > $2) ${after}
     ORDER BY ${d.byteOrder('uid')} LIMIT $3`,
    [toMs, fromMs, page.limit, ...(page.afterUid === undefined ? [] : [page.afterUid])],
  );
  if (pods.length === 0) return [];
  const versions = await reader.all<{
    uid: string;
    from_ms: number | string;
    labels_json: string;
    service_account: string;
  }>(
    `SELECT uid, from_ms, labels_json, service_account FROM pod_label_versions
     WHERE uid IN ${d.jsonTexts('$1')} AND from_ms < $2 ORDER BY ${d.byteOrder('uid')}, from_ms`,
    [JSON.stringify(pods.map((p) => p.uid)), toMs],
  );
  const byUid = new Map<string, PodLabelVersion[]>();
  for (const v of versions) {
    const list = byUid.get(v.uid) ?? [];
    const fromV = Number(v.from_ms);
    // Only the version in force at fromMs and those after it: an earlier one is superseded before the interval.
    if (fromV <= fromMs) list.length = 0;
    list.push({ fromMs: fromV, labels: labelsOf(v.labels_json), serviceAccount: v.service_account });
    byUid.set(v.uid, list);
  }
  return pods.map((p) => {
    const firstSeenMs = Number(p.first_seen_ms);
    const recorded = byUid.get(p.uid) ?? [];
    // No version before the pod's first sighting: the latest labels stand for a pod that never changed since.
    const list: PodLabelVersion[] =
      recorded.length > 0
        ? recorded
        : [{ fromMs: firstSeenMs, labels: labelsOf(p.labels_json), serviceAccount: p.service_account }];
    return {
      uid: p.uid,
      namespace: p.namespace,
      name: p.name,
      hostNetwork: p.host_network === true || p.host_network === 1,
      firstSeenMs,
      ...(p.deleted_ms === null ? {} : { deletedMs: Number(p.deleted_ms) }),
      versions: list,
    };
  });
}
