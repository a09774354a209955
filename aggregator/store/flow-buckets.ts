import { flowKey, type FlowEndpoint, type FlowRecord, type PolicyRef } from '../../common/flow.js';
import { sortInSlices, type TimeSlice } from '../../common/time-slice.js';
import { flowKeyParts, flowKeyText, type FlowKeyParts, type StagedKeyIds } from './flow-key-ids.js';

/**
 * A flow's bucket row before it is stored: the bucket, the flow's key (as a
 * short text, and its parts for the dictionary tables of
 * migrations/sqlite/008_flow_dictionary.sql), the counts and times. keyId is
 * set once the key is looked up (resolveKeyIds).
 */
export interface BucketRow {
  bucketMs: number;
  bucketStart: number;
  /** The key as flowKeyText: merges a batch's rows and finds the key's id in FlowKeyIds. */
  key: string;
  /** The key's parts (shared by the rows of the key): a new key's dictionary entries are made from them. */
  parts: FlowKeyParts;
  connections: number;
  packets: number;
  bytes: number;
  first: number;
  last: number;
  /** Set in the row from the start (undefined), so a row keeps its shape when resolveKeyIds sets it. */
  keyId: number | undefined;
}

/**
 * An endpoint as flow_endpoints.endpoint_json holds it (its identity): every field, in one order. `reserved` last and
 * only when set, so every endpoint without it keeps the JSON (and the entry) it had before the field existed.
 */
export function endpointJson(e: FlowEndpoint): string {
  return JSON.stringify({
    kind: e.kind,
    namespace: e.namespace,
    name: e.name,
    labels: e.labels,
    serviceAccount: e.serviceAccount,
    internet: e.internet,
    ...(e.reserved ? { reserved: e.reserved } : {}),
  });
}

/** A policy list as flow_policy_lists.policies_json holds it (its identity). */
export function policiesJson(ps: PolicyRef[]): string {
  return JSON.stringify(
    ps.map((p) => ({ tier: p.tier, namespace: p.namespace, name: p.name, action: p.action, kind: p.kind })),
  );
}

/** A flow_keys row: its columns in order, ids for the endpoints and policy lists. */
export type KeyTuple = [
  srcId: number,
  dstId: number,
  protocol: string,
  destinationPort: number,
  action: string,
  reporter: string,
  policiesId: number,
  stagedId: number,
  unnamedPolicy: boolean,
  policyDecided: boolean,
  policyUnknown: boolean,
];

/** flow_keys' identity columns, in KeyTuple's order (its UNIQUE constraint); policy_unknown came with migration 013. */
export const KEY_TUPLE_COLUMNS = [
  'src_id',
  'dst_id',
  'protocol',
  'destination_port',
  'action',
  'reporter',
  'policies_id',
  'staged_id',
  'unnamed_policy',
  'policy_decided',
  'policy_unknown',
] as const;

/**
 * The identity columns before migration 013, where migration 008's conversion of legacy rows runs (a legacy record
 * never has policyUnknown: its tuple's last element is false, and the column's default says the same).
 */
export const KEY_TUPLE_COLUMNS_BEFORE_013 = KEY_TUPLE_COLUMNS.slice(0, -1);

/**
 * Looks up (adding what is missing) dictionary entries, in one transaction
 * with the batch. Each call gets distinct items, sorted: every writer adds
 * entries in the same order, so two PostgreSQL writers adding the same new
 * entries wait for one another rather than deadlock, and ids come out the same
 * in both dialects.
 */
export interface FlowDictionary {
  endpoints(items: { json: string; e: FlowEndpoint }[]): Promise<Map<string, number>>;
  policyLists(jsons: string[]): Promise<Map<string, number>>;
  /** Answers ids by JSON.stringify(tuple). */
  keys(tuples: KeyTuple[]): Promise<Map<string, number>>;
}

const byText = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** FlowDictionary for a store that looks up synchronously (SQLite). */
export interface SyncFlowDictionary {
  endpoints(items: { json: string; e: FlowEndpoint }[]): Map<string, number>;
  policyLists(jsons: string[]): Map<string, number>;
  keys(tuples: KeyTuple[]): Map<string, number>;
}

/** A row's key parts as the dictionaries hold them: endpoint and policy-list JSON. */
interface RowParts {
  src: string;
  dst: string;
  policies: string;
  staged: string;
}

/** Collects the distinct endpoints and policy lists of the rows given to add(), and then their key tuples. */
class KeyPlan {
  private readonly endpointsSeen = new Map<string, FlowEndpoint>();
  private readonly listsSeen = new Set<string>();
  private readonly tuplesSeen = new Map<string, KeyTuple>();
  private readonly parts: RowParts[] = [];
  private readonly flows: FlowKeyParts[] = [];
  readonly tupleOf: string[] = [];

  add(r: BucketRow): void {
    const f = r.parts;
    this.flows.push(f);
    const parts = {
      src: endpointJson(f.source),
      dst: endpointJson(f.destination),
      policies: policiesJson(f.policies),
      staged: policiesJson(f.stagedPolicies),
    };
    this.parts.push(parts);
    this.endpointsSeen.set(parts.src, f.source);
    this.endpointsSeen.set(parts.dst, f.destination);
    this.listsSeen.add(parts.policies);
    this.listsSeen.add(parts.staged);
  }

  /** The distinct endpoints, sorted. */
  endpoints(): { json: string; e: FlowEndpoint }[] {
    return [...this.endpointsSeen.keys()].sort(byText).map((json) => ({ json, e: this.endpointsSeen.get(json)! }));
  }

  /** The distinct policy lists, sorted. */
  lists(): string[] {
    return [...this.listsSeen].sort(byText);
  }

  /** The `i`th row added's key tuple, once its endpoints and lists have ids. */
  addTuple(i: number, epIds: Map<string, number>, listIds: Map<string, number>): void {
    const f = this.flows[i]!;
    const p = this.parts[i]!;
    const tuple: KeyTuple = [
      epIds.get(p.src)!,
      epIds.get(p.dst)!,
      f.protocol,
      f.destinationPort,
      f.action,
      f.reporter,
      listIds.get(p.policies)!,
      listIds.get(p.staged)!,
      f.unnamedPolicy,
      f.policyDecided,
      f.policyUnknown === true,
    ];
    const t = JSON.stringify(tuple);
    this.tuplesSeen.set(t, tuple);
    this.tupleOf.push(t);
  }

  /** The distinct key tuples, sorted. */
  tuples(): KeyTuple[] {
    return [...this.tuplesSeen.keys()].sort(byText).map((t) => this.tuplesSeen.get(t)!);
  }
}

/**
 * The rows whose key has no id in `known` yet (each key once); the others get theirs. What is left to look up in the
 * dictionaries.
 */
function unknownKeys(rows: BucketRow[], known: StagedKeyIds | undefined): BucketRow[] {
  if (!known) return rows;
  const missing = new Map<string, BucketRow>();
  for (const r of rows) {
    r.keyId = known.get(r.key);
    if (r.keyId === undefined) missing.set(r.key, r);
  }
  return [...missing.values()];
}

/** After the lookups: rows of the same key as a looked-up one take its id, and `known` learns them. */
function learnKeys(rows: BucketRow[], looked: BucketRow[], known: StagedKeyIds | undefined): void {
  if (!known || looked.length === 0) return;
  for (const r of looked) known.set(r.key, r.keyId!);
  for (const r of rows) r.keyId ??= known.get(r.key);
}

/**
 * Give each row its key's id: from `known` (ids kept in memory) when it is
 * there; for the rest, endpoints, then policy lists, then keys, each added
 * where missing, and `known` learns them. The lookups are a few statements
 * per batch; the loops over rows are short next to them, so the event loop
 * gets its turns between the statements (`slice`).
 */
export async function resolveKeyIds(
  rows: BucketRow[],
  dict: FlowDictionary,
  slice: TimeSlice,
  known?: StagedKeyIds,
): Promise<void> {
  const look = unknownKeys(rows, known);
  if (look.length === 0) return;
  const plan = new KeyPlan();
  for (const r of look) {
    if (slice.isUp()) await slice.next();
    plan.add(r);
  }
  const epIds = await inSteps(plan.endpoints(), (part) => dict.endpoints(part), slice);
  const listIds = await inSteps(plan.lists(), (part) => dict.policyLists(part), slice);
  for (let i = 0; i < look.length; i++) {
    if (slice.isUp()) await slice.next();
    plan.addTuple(i, epIds, listIds);
  }
  const keyIds = await inSteps(plan.tuples(), (part) => dict.keys(part), slice);
  look.forEach((r, i) => (r.keyId = keyIds.get(plan.tupleOf[i]!)!));
  learnKeys(rows, look, known);
}

/** Dictionary items per lookup: one statement's parameters, a few ms to build. */
const DICTIONARY_ITEMS_PER_STEP = 2000;

/** `lookup` over `items` in steps, in their (sorted) order, the event loop given its turns between them. */
async function inSteps<T>(
  items: T[],
  lookup: (part: T[]) => Promise<Map<string, number>>,
  slice: TimeSlice,
): Promise<Map<string, number>> {
  const ids = new Map<string, number>();
  for (let i = 0; i < items.length; i += DICTIONARY_ITEMS_PER_STEP) {
    if (slice.isUp()) await slice.next();
    for (const [k, id] of await lookup(items.slice(i, i + DICTIONARY_ITEMS_PER_STEP))) ids.set(k, id);
  }
  return ids;
}

/** resolveKeyIds, synchronously (SQLite). */
export function resolveKeyIdsSync(rows: BucketRow[], dict: SyncFlowDictionary, known?: StagedKeyIds): void {
  const look = unknownKeys(rows, known);
  if (look.length === 0) return;
  const plan = new KeyPlan();
  for (const r of look) plan.add(r);
  const epIds = dict.endpoints(plan.endpoints());
  const listIds = dict.policyLists(plan.lists());
  look.forEach((_, i) => plan.addTuple(i, epIds, listIds));
  const keyIds = dict.keys(plan.tuples());
  look.forEach((r, i) => (r.keyId = keyIds.get(plan.tupleOf[i]!)!));
  learnKeys(rows, look, known);
}

/** A flow's bucket row: its bucket, its key, its counts. */
export function bucketRow(f: FlowRecord, bucketMs: number, key = flowKeyText(f)): BucketRow {
  return {
    bucketMs,
    bucketStart: Math.floor(f.startMs / bucketMs) * bucketMs,
    key,
    parts: flowKeyParts(key, f),
    connections: f.connections,
    packets: f.packets,
    bytes: f.bytes,
    first: f.startMs,
    last: f.endMs,
    keyId: undefined,
  };
}

/**
 * A batch's bucket rows with one row per (bucket, key text): flows with the
 * same key in the same bucket summed and their times widened, as one upsert
 * after the other would (a key seldom has two texts: mergeSameKeyIds, and
 * SQLite's upsert, sum those too). In the order each row first appears. A 4 MiB batch holds 90,000
 * records and takes the best part of a second here, so the loop gives the
 * event loop a turn whenever `slice` is up.
 */
export async function mergeBucketRows(flows: FlowRecord[], bucketMs: number, slice: TimeSlice): Promise<BucketRow[]> {
  // One map of keys per bucket: a batch's flows mostly share one or two buckets, so no per-flow (bucket, key) string.
  const buckets = new Map<number, Map<string, BucketRow>>();
  // At most a row per flow: filled in place and cut to length (no growing a push at a time).
  const out = new Array<BucketRow>(flows.length);
  let n = 0;
  for (let i = 0; i < flows.length; i++) {
    // The clock every 64 flows: a few µs of work between two looks.
    if ((i & 63) === 0 && slice.isUp()) await slice.next();
    const f = flows[i]!;
    const bucketStart = Math.floor(f.startMs / bucketMs) * bucketMs;
    let rows = buckets.get(bucketStart);
    if (rows === undefined) buckets.set(bucketStart, (rows = new Map()));
    const key = flowKeyText(f);
    const seen = rows.get(key);
    if (seen === undefined) {
      const row = bucketRow(f, bucketMs, key);
      rows.set(key, row);
      out[n++] = row;
      continue;
    }
    seen.connections += f.connections;
    seen.packets += f.packets;
    seen.bytes += f.bytes;
    if (f.startMs < seen.first) seen.first = f.startMs;
    if (f.endMs > seen.last) seen.last = f.endMs;
  }
  out.length = n;
  return out;
}

/** Add `p` to the rows merged so far (by bucket and key). */
export function addBucketRow(rows: Map<string, BucketRow>, p: BucketRow): void {
  const id = `${p.bucketMs} ${p.bucketStart} ${p.key}`;
  const seen = rows.get(id);
  if (seen === undefined) {
    rows.set(id, p);
    return;
  }
  seen.connections += p.connections;
  seen.packets += p.packets;
  seen.bytes += p.bytes;
  seen.first = Math.min(seen.first, p.first);
  seen.last = Math.max(seen.last, p.last);
}

/**
 * Rows of one node sorted by `lockOrder`, those of the same bucket and key id (one key can have two key texts, when
 * the ids of its parts were forgotten in between) merged: one statement may not upsert a row twice in PostgreSQL.
 * `rows` itself when none merge; a merged row is a new one (a batch's rows stay as they are, for a group tried again).
 */
export function mergeSameKeyIds(rows: BucketRow[]): BucketRow[] {
  let out: BucketRow[] | undefined;
  let lastIsNew = false;
  for (let i = 1; i < rows.length; i++) {
    const r = rows[i]!;
    const prev = out ? out[out.length - 1]! : rows[i - 1]!;
    if (r.keyId !== prev.keyId || r.bucketStart !== prev.bucketStart || r.bucketMs !== prev.bucketMs) {
      if (out) {
        out.push(r);
        lastIsNew = false;
      }
      continue;
    }
    out ??= rows.slice(0, i);
    const m = lastIsNew ? prev : { ...prev };
    m.connections += r.connections;
    m.packets += r.packets;
    m.bytes += r.bytes;
    if (r.first < m.first) m.first = r.first;
    if (r.last > m.last) m.last = r.last;
    out[out.length - 1] = m;
    lastIsNew = true;
  }
  return out ?? rows;
}

/** Rows a group may hold for tableOrder's one-number sort: a row's position takes the low 20 bits. */
const POSITION_BITS = 2 ** 20;
/** Key ids below this leave room for the position in an exact double (2^33 * 2^20 = 2^53). */
const KEY_ID_LIMIT = 2 ** 33;

/**
 * The positions of `rows` (key ids resolved; row i from node number nodeOf[i]) in SQLite's table order: key id, then
 * bucket start, then node. Rows come in node order (a group's batches by node), so a stable sort by bucket start and
 * then one by key id gives that order; the second is a native sort of one number per row (key id and position), where
 * a comparison function over 100,000 rows was 7% of ingest's CPU (profiled). Past the numbers' range (a key id from
 * 2^33 on, a million rows), the comparison sort.
 */
export async function tableOrder(rows: BucketRow[], nodeOf: number[], slice: TimeSlice): Promise<ArrayLike<number>> {
  const n = rows.length;
  let native = n < POSITION_BITS;
  let oneBucket = true;
  for (let i = 0; i < n && native; i++) {
    const id = rows[i]!.keyId;
    if (id === undefined || !Number.isInteger(id) || id < 0 || id >= KEY_ID_LIMIT) native = false;
    else if (i > 0 && nodeOf[i]! < nodeOf[i - 1]!) native = false; // not in node order
    if (rows[i]!.bucketStart !== rows[0]!.bucketStart) oneBucket = false;
  }
  if (!native) {
    const keyOf = new Float64Array(n);
    const bucketOf = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      keyOf[i] = rows[i]!.keyId!;
      bucketOf[i] = rows[i]!.bucketStart;
    }
    return sortInSlices(
      rows.map((_, i) => i),
      (i, j) => keyOf[i]! - keyOf[j]! || bucketOf[i]! - bucketOf[j]! || nodeOf[i]! - nodeOf[j]!,
      slice,
    );
  }
  // Stable by bucket start: each bucket's positions in row order (node order), buckets ascending.
  let byBucket: number[] | undefined;
  if (!oneBucket) {
    const lists = new Map<number, number[]>();
    for (let i = 0; i < n; i++) {
      const b = rows[i]!.bucketStart;
      let l = lists.get(b);
      if (l === undefined) lists.set(b, (l = []));
      l.push(i);
    }
    byBucket = [...lists.keys()].sort((a, b) => a - b).flatMap((b) => lists.get(b)!);
  }
  if (slice.isUp()) await slice.next();
  // Then by key id, stable: key id and position in one number, sorted natively (a few ms for 100,000).
  const keyed = new Float64Array(n);
  for (let p = 0; p < n; p++) keyed[p] = rows[byBucket ? byBucket[p]! : p]!.keyId! * POSITION_BITS + p;
  keyed.sort();
  const order = new Int32Array(n);
  for (let p = 0; p < n; p++) {
    const at = keyed[p]! % POSITION_BITS;
    order[p] = byBucket ? byBucket[at]! : at;
  }
  return order;
}

/** Bucket start, size, then key id: the one order in which writers lock bucket rows (after resolveKeyIds). */
export function lockOrder(a: BucketRow, b: BucketRow): number {
  return a.bucketStart - b.bucketStart || a.bucketMs - b.bucketMs || a.keyId! - b.keyId!;
}

/**
 * A flow record from a legacy (before 008) flow_buckets row: its record_json,
 * with the filter columns standing in for anything missing.
 */
export function legacyFlow(r: {
  record_json: string;
  src_kind: string;
  src_namespace: string;
  src_name: string;
  dst_kind: string;
  dst_namespace: string;
  dst_name: string;
  action: string;
  reporter: string;
}): FlowRecord {
  let j: Partial<FlowRecord> = {};
  try {
    const v: unknown = JSON.parse(r.record_json);
    if (v && typeof v === 'object') j = v as Partial<FlowRecord>;
  } catch {
    // not JSON: the columns only
  }
  const ep = (e: Partial<FlowEndpoint> | undefined, kind: string, namespace: string, name: string): FlowEndpoint => ({
    kind: (e?.kind ?? kind) as FlowEndpoint['kind'],
    namespace: e?.namespace ?? namespace,
    name: e?.name ?? name,
    labels: Array.isArray(e?.labels) ? e.labels : [],
    serviceAccount: e?.serviceAccount ?? '',
    internet: e?.internet ?? false,
  });
  return {
    source: ep(j.source, r.src_kind, r.src_namespace, r.src_name),
    destination: ep(j.destination, r.dst_kind, r.dst_namespace, r.dst_name),
    protocol: j.protocol ?? '',
    destinationPort: j.destinationPort ?? 0,
    action: (j.action ?? r.action) as FlowRecord['action'],
    reporter: (j.reporter ?? r.reporter) as FlowRecord['reporter'],
    policies: Array.isArray(j.policies) ? j.policies : [],
    stagedPolicies: Array.isArray(j.stagedPolicies) ? j.stagedPolicies : [],
    unnamedPolicy: j.unnamedPolicy ?? false,
    policyDecided: j.policyDecided ?? false,
    connections: 0,
    packets: 0,
    bytes: 0,
    startMs: 0,
    endMs: 0,
  };
}

/** A flow_buckets row before migration 008: what it converts. */
export interface LegacyFlowRow {
  bucket_ms: number;
  bucket_start_ms: number;
  node: string;
  flow_key: string;
  record_json: string;
  src_kind: string;
  src_namespace: string;
  src_name: string;
  dst_kind: string;
  dst_namespace: string;
  dst_name: string;
  action: string;
  reporter: string;
  connections: number;
  packets: number;
  bytes: number;
  first_ms: number;
  last_ms: number;
}

/** Legacy keys remembered by a conversion: its memory stays bounded whatever the table holds. */
const LEGACY_KEYS_REMEMBERED = 100_000;

/**
 * Migration 008's rows, a step at a time: each legacy row a bucket row, merged
 * per node, bucket and key. Keys repeat over buckets and nodes, so a legacy key
 * seen in an earlier step reuses its parsed flow and its key id: each distinct
 * key is parsed and looked up about once.
 */
export class LegacyConversion {
  private readonly known = new Map<string, BucketRow>();
  private pending: [string, BucketRow][] = [];

  /** The rows of one step by node; those without a keyId need resolveKeyIds, then learned(). */
  step(legacy: LegacyFlowRow[]): Map<string, BucketRow[]> {
    const byNode = new Map<string, Map<string, BucketRow>>();
    for (const l of legacy) {
      const counts = {
        bucketMs: l.bucket_ms,
        bucketStart: l.bucket_start_ms,
        connections: l.connections,
        packets: l.packets,
        bytes: l.bytes,
        first: l.first_ms,
        last: l.last_ms,
      };
      const known = this.known.get(l.flow_key);
      const row = known ? { ...known, ...counts } : { ...bucketRow(legacyFlow(l), l.bucket_ms), ...counts };
      if (!known) this.pending.push([l.flow_key, row]);
      let rows = byNode.get(l.node);
      if (!rows) byNode.set(l.node, (rows = new Map()));
      addBucketRow(rows, row);
    }
    return new Map([...byNode].map(([node, rows]) => [node, [...rows.values()]]));
  }

  /** After the step's rows got their key ids: remember the new legacy keys. */
  learned(): void {
    for (const [legacyKey, row] of this.pending)
      if (row.keyId !== undefined && this.known.size < LEGACY_KEYS_REMEMBERED) this.known.set(legacyKey, row);
    this.pending = [];
  }
}

/** The columns of one flow's bucket row before migration 008 (one JSON key per row). The bench's baseline only. */
export interface LegacyBucketParams {
  bucketMs: number;
  bucketStart: number;
  node: string;
  key: string;
  srcKind: string;
  srcNs: string;
  srcName: string;
  dstKind: string;
  dstNs: string;
  dstName: string;
  action: string;
  reporter: string;
  json: string;
  connections: number;
  packets: number;
  bytes: number;
  first: number;
  last: number;
}

/** A flow's bucket row as stored before migration 008. The bench's baseline only; the store no longer writes it. */
export function bucketParams(node: string, f: FlowRecord, bucketMs: number): LegacyBucketParams {
  return {
    bucketMs,
    bucketStart: Math.floor(f.startMs / bucketMs) * bucketMs,
    node,
    key: flowKey(f),
    srcKind: f.source.kind,
    srcNs: f.source.namespace,
    srcName: f.source.name,
    dstKind: f.destination.kind,
    dstNs: f.destination.namespace,
    dstName: f.destination.name,
    action: f.action,
    reporter: f.reporter,
    json: JSON.stringify({ ...f, connections: 0, packets: 0, bytes: 0, startMs: 0, endMs: 0 }),
    connections: f.connections,
    packets: f.packets,
    bytes: f.bytes,
    first: f.startMs,
    last: f.endMs,
  };
}
