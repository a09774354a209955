import type { Conn, Dialect, Table } from './sql.js';

/** A namespace's labels from `fromMs` until its next version; null labels: deleted then. */
export interface NamespaceVersion {
  name: string;
  fromMs: number;
  labels: Record<string, string> | null;
}

export const NAMESPACE_VERSIONS: Table = {
  name: 'namespace_versions',
  columns: [
    ['name', 'text'],
    ['from_ms', 'bigint'],
    ['labels_json', 'text'],
  ],
};

const labelsOf = (json: string | null): Record<string, string> | null => {
  if (json === null) return null;
  const out = Object.create(null) as Record<string, string>;
  const parsed: unknown = JSON.parse(json);
  if (typeof parsed === 'object' && parsed !== null)
    for (const [k, v] of Object.entries(parsed)) if (typeof v === 'string') out[k] = v;
  return out;
};

/** The version rows sightings at `atMs` add: a namespace first seen, or whose labels (or existence) changed. */
export async function namespaceVersionRows(
  reader: Conn,
  d: Dialect,
  seen: { name: string; labels: Record<string, string> | null }[],
  atMs: number,
): Promise<unknown[][]> {
  if (seen.length === 0) return [];
  const latest = new Map(
    (
      await reader.all<{ name: string; labels_json: string | null }>(
        `SELECT v.name, v.labels_json FROM namespace_versions v
         WHERE v.name IN ${d.jsonTexts('$1')}
           AND v.from_ms = (SELECT MAX(w.from_ms) FROM namespace_versions w WHERE w.name = v.name)`,
        [JSON.stringify(seen.map((n) => n.name))],
      )
    ).map((r) => [r.name, r.labels_json]),
  );
  const rows: unknown[][] = [];
  for (const n of seen) {
    const json = n.labels === null ? null : JSON.stringify(n.labels);
    if (latest.has(n.name) ? latest.get(n.name) === json : json === null) continue;
    rows.push([n.name, atMs, json]);
  }
  return rows;
}

/**
 * Every namespace's versions over [fromMs, toMs): the one in force at fromMs, then each change before toMs, by name
 * then time; undefined when the history does not reach back to fromMs. Namespaces are few: one statement.
 */
export async function namespaceVersionsDuring(
  reader: Conn,
  d: Dialect,
  fromMs: number,
  toMs: number,
): Promise<NamespaceVersion[] | undefined> {
  const [oldest] = await reader.all<{ m: number | string | null }>('SELECT MIN(from_ms) AS m FROM namespace_versions');
  if (oldest?.m === null || oldest?.m === undefined || Number(oldest.m) > fromMs) return undefined;
  const rows = await reader.all<{ name: string; from_ms: number | string; labels_json: string | null }>(
    `SELECT name, from_ms, labels_json FROM namespace_versions WHERE from_ms < $1
     ORDER BY ${d.byteOrder('name')}, from_ms`,
    [toMs],
  );
  const out: NamespaceVersion[] = [];
  for (const [i, r] of rows.entries()) {
    const next = rows[i + 1];
    // Superseded before the interval: the next version of the same namespace starts at or before fromMs.
    if (next && next.name === r.name && Number(next.from_ms) <= fromMs) continue;
    out.push({ name: r.name, fromMs: Number(r.from_ms), labels: labelsOf(r.labels_json) });
  }
  return out;
}
