import { flowKey, type FlowRecord } from '../../common/flow.js';
import type { TimeSlice } from '../../common/time-slice.js';

/** The columns of one flow's bucket row, as both stores write them. */
export interface BucketParams {
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
  /** The flow without its counts and times: what the key stands for. */
  json: string;
  connections: number;
  packets: number;
  bytes: number;
  first: number;
  last: number;
}

/** The columns of a flow's bucket row: the filter columns, and the key's JSON with zeroed counts. */
export function bucketParams(node: string, f: FlowRecord, bucketMs: number): BucketParams {
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

/**
 * A batch's bucket rows with one row per (bucket, key): flows with the same key
 * in the same bucket summed and their times widened, as one upsert after the
 * other would (the first flow's JSON stays, as the upsert keeps the stored
 * row's). In the order each row first appears. A 4 MiB batch holds 90,000
 * records and takes the best part of a second here, so the loop gives the
 * event loop a turn whenever `slice` is up.
 */
export async function mergeBucketRows(
  node: string,
  flows: FlowRecord[],
  bucketMs: number,
  slice: TimeSlice,
): Promise<BucketParams[]> {
  const rows = new Map<string, BucketParams>();
  for (const f of flows) {
    if (slice.isUp()) await slice.next();
    const p = bucketParams(node, f, bucketMs);
    const id = `${p.bucketStart} ${p.key}`;
    const seen = rows.get(id);
    if (seen === undefined) {
      rows.set(id, p);
      continue;
    }
    seen.connections += p.connections;
    seen.packets += p.packets;
    seen.bytes += p.bytes;
    seen.first = Math.min(seen.first, p.first);
    seen.last = Math.max(seen.last, p.last);
  }
  return [...rows.values()];
}

/** Bucket start, then key (UTF-16 order): the one order in which writers lock bucket rows. */
export function lockOrder(a: BucketParams, b: BucketParams): number {
  return a.bucketStart - b.bucketStart || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);
}
