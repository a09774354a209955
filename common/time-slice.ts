import { performance } from 'node:perf_hooks';
import { setImmediate as nextTurn } from 'node:timers/promises';

/**
 * How long a loop over one message's items may hold the event loop before it
 * lets others run, ms. A 4 MiB flow batch holds 90,000 records, and decoding,
 * checking and storing them takes seconds in all; in 10 ms slices, liveness
 * probes, timers and other agents' streams wait at most about that long.
 */
const SLICE_MS = 10;

/**
 * Cooperative time slicing for long loops on the event loop:
 *
 *     const slice = new TimeSlice();
 *     for (const item of items) {
 *       if (slice.isUp()) await slice.next();
 *       ...
 *     }
 *
 * `next()` resolves on setImmediate, after pending I/O (an HTTP request, a
 * gRPC frame), not on a microtask, which would let nothing else in. The clock
 * is only a budget: where the loop pauses never changes what it computes.
 */
export class TimeSlice {
  private endsAt: number;

  constructor(private readonly ms: number = SLICE_MS) {
    this.endsAt = performance.now() + ms;
  }

  /** This slice's time is used up: `await next()` before the next item. */
  isUp(): boolean {
    return performance.now() >= this.endsAt;
  }

  /** Let everything waiting on the event loop run, then start a new slice. */
  async next(): Promise<void> {
    await nextTurn();
    this.endsAt = performance.now() + this.ms;
  }
}

/** Items sorted in one step of sortInSlices: a few ms of comparisons. */
const SORT_RUN = 2048;

/**
 * `items` sorted by `compare` (stable), giving the event loop a turn whenever
 * `slice` is up: runs of 2048 are sorted, then merged pairwise. For lists
 * long enough that one Array.prototype.sort would hold the loop (90,000 long
 * keys: about 100 ms here).
 */
export async function sortInSlices<T>(
  items: readonly T[],
  compare: (a: T, b: T) => number,
  slice: TimeSlice,
): Promise<T[]> {
  let runs: T[][] = [];
  for (let i = 0; i < items.length; i += SORT_RUN) {
    if (slice.isUp()) await slice.next();
    runs.push(items.slice(i, i + SORT_RUN).sort(compare));
  }
  while (runs.length > 1) {
    const merged: T[][] = [];
    for (let r = 0; r < runs.length; r += 2) {
      const a = runs[r] as T[];
      const b = runs[r + 1];
      if (b === undefined) {
        merged.push(a);
        continue;
      }
      const out: T[] = [];
      let i = 0;
      let j = 0;
      while (i < a.length && j < b.length) {
        if ((out.length & 1023) === 0 && slice.isUp()) await slice.next();
        // Ties from the earlier run first: stable, as Array.prototype.sort.
        out.push(compare(b[j] as T, a[i] as T) < 0 ? (b[j++] as T) : (a[i++] as T));
      }
      for (; i < a.length; i++) out.push(a[i] as T);
      for (; j < b.length; j++) out.push(b[j] as T);
      merged.push(out);
    }
    runs = merged;
  }
  return runs[0] ?? [];
}
