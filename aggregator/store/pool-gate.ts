/**
 * A turn at one of a pool's `size` connections, in arrival order. node-postgres's
 * connectionTimeoutMillis counts a wait for a busy pool as a failed connect, so
 * under a burst (5,000 agents saying Hello at once) work that only had to wait
 * its turn failed as "store unavailable". Behind this gate the pool is never
 * asked for more than it has: waiting for a turn has no time limit (what waits
 * is bounded by its callers: ingest reads at most a few messages ahead per
 * stream), while opening a connection still times out when the server is out.
 * A turn is never taken while holding one (a transaction's statements go on its
 * own client): ten transactions each waiting for a second turn would wait forever.
 */
export class PoolGate {
  private free: number;
  private readonly waiters: (() => void)[] = [];

  constructor(size: number) {
    this.free = size;
  }

  /** Callers waiting for a turn now. */
  get waiting(): number {
    return this.waiters.length;
  }

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.free > 0) this.free--;
    else await new Promise<void>((resolve) => this.waiters.push(resolve));
    try {
      return await fn();
    } finally {
      const next = this.waiters.shift();
      if (next) next();
      else this.free++;
    }
  }
}
