import t from 'tap';
import { mergeSameKeyIds, tableOrder, type BucketRow } from '../../aggregator/store/flow-buckets.js';
import { flowKeyParts, flowKeyText } from '../../aggregator/store/flow-key-ids.js';
import { TimeSlice } from '../../common/time-slice.js';
import { flow, T0 } from '../fixtures/flows.js';

const MINUTE = 60_000;

/** A bucket row of key id `keyId` in minute `minute` after T0, with `connections`. */
function row(keyId: number, minute = 0, connections = 1): BucketRow {
  const f = flow();
  const key = flowKeyText(f);
  return {
    bucketMs: MINUTE,
    bucketStart: T0 + minute * MINUTE,
    key,
    parts: flowKeyParts(key, f),
    connections,
    packets: connections * 10,
    bytes: connections * 100,
    first: T0 + minute * MINUTE + connections,
    last: T0 + minute * MINUTE + 1000 * connections,
    keyId,
  };
}

/** Deterministic pseudo-random numbers (a test that fails names its seed). */
function rng(seed: number): () => number {
  let x = Math.imul(seed, 0x9e3779b1) >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 2 ** 32;
  };
}

t.test('tableOrder: key id, then bucket start, then node, as the comparison sort orders them', async (t) => {
  for (const seed of [1, 2, 3, 4, 5, 6, 7, 8]) {
    const next = rng(seed);
    const nodes = 1 + Math.floor(next() * 6);
    const rows: BucketRow[] = [];
    const nodeOf: number[] = [];
    // Large key ids in some runs: the one-number sort up to 2^33, the comparison sort past it.
    const base = seed % 4 === 0 ? 2 ** 33 - 20 : seed % 3 === 0 ? 2 ** 32 : 1;
    for (let n = 0; n < nodes; n++)
      for (let i = Math.floor(next() * 300); i > 0; i--) {
        rows.push(row(base + Math.floor(next() * 40), Math.floor(next() * (seed % 2 === 0 ? 3 : 1))));
        nodeOf.push(n);
      }
    const want = rows
      .map((_, i) => i)
      .sort(
        (i, j) =>
          rows[i]!.keyId! - rows[j]!.keyId! ||
          rows[i]!.bucketStart - rows[j]!.bucketStart ||
          nodeOf[i]! - nodeOf[j]! ||
          i - j,
      );
    t.same(Array.from(await tableOrder(rows, nodeOf, new TimeSlice())), want, `seed ${seed}: ${rows.length} rows`);
  }
  t.same(Array.from(await tableOrder([], [], new TimeSlice())), [], 'no rows');
});

t.test('mergeSameKeyIds: rows of one bucket and key id become one, the batch rows stay as they were', async (t) => {
  const rows = [row(1, 0, 1), row(1, 0, 2), row(1, 0, 4), row(1, 1, 8), row(2, 1, 16), row(3, 1, 32), row(3, 1, 64)];
  const copy = structuredClone(rows);
  const merged = mergeSameKeyIds(rows);
  t.same(
    merged.map((r) => [
      r.keyId,
      r.bucketStart - T0,
      r.connections,
      r.packets,
      r.bytes,
      r.first - r.bucketStart,
      r.last - r.bucketStart,
    ]),
    [
      [1, 0, 7, 70, 700, 1, 4000],
      [1, MINUTE, 8, 80, 800, 8, 8000],
      [2, MINUTE, 16, 160, 1600, 16, 16000],
      [3, MINUTE, 96, 960, 9600, 32, 64000],
    ],
  );
  t.same(rows, copy, 'the rows given are unchanged (a group tried again writes them again)');
  const distinct = [row(1), row(2), row(3)];
  t.equal(mergeSameKeyIds(distinct), distinct, 'none to merge: the same array');
});

t.test(
  'a key text outside the compact form (a legacy row: a port that is no port, an action of its own)',
  async (t) => {
    const odd = flow({ destinationPort: 1.5, action: 'drop' as 'deny' });
    const text = flowKeyText(odd);
    t.match(text, /^#/, 'the numbers joined, after a #');
    t.not(text, flowKeyText(flow({ destinationPort: 1.5 })));
    t.not(flowKeyText(flow({ destinationPort: 70_000 })), flowKeyText(flow({ destinationPort: 70_000 - 65_536 })));
    t.equal(flowKeyText(structuredClone(odd)), text, 'the same for a copy');
    const compact = flowKeyText(flow());
    t.equal(compact.length, 20, 'compact: 20 characters');
    t.ok(compact.charCodeAt(0) < 8, 'the flags first');
    t.ok(
      [...compact].every((c) => c.charCodeAt(0) < 256),
      'each of one byte',
    );
  },
);
