/**
 * Timed values grouped by key, for "is there a matching event less than a
 * minute from this one" questions over many events: each key's list is sorted
 * once and searched by bisection, so n questions cost O(n log n) even when
 * every event concerns the same object.
 */
export class TimeIndex<T> {
  private readonly lists = new Map<string, { ms: number; value: T }[]>();
  private sorted = true;

  add(key: string, ms: number, value: T): void {
    const list = this.lists.get(key);
    if (list) list.push({ ms, value });
    else this.lists.set(key, [{ ms, value }]);
    this.sorted = false;
  }

  /** The earliest value under `key` strictly less than `windowMs` away from `ms`, if any. */
  earliestWithin(key: string, ms: number, windowMs: number): T | undefined {
    if (!this.sorted) {
      // Stable sort: values at the same time keep the order they were added in.
      for (const list of this.lists.values()) list.sort((a, b) => a.ms - b.ms);
      this.sorted = true;
    }
    const list = this.lists.get(key);
    if (!list) return undefined;
    let lo = 0;
    let hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((list[mid] as { ms: number }).ms > ms - windowMs) hi = mid;
      else lo = mid + 1;
    }
    const found = list[lo];
    return found && found.ms < ms + windowMs ? found.value : undefined;
  }
}
