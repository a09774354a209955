export interface BackoffOptions {
  /** The first delay, ms; each failure doubles it up to maxMs. */
  initialMs: number;
  maxMs: number;
  /**
   * How far a delay may stray from the doubling, as a fraction: 0.2 waits
   * between 80 % and 120 % of it, so peers that lost the same server at once
   * do not all come back at once. 0 (the default) waits exactly.
   */
  jitter?: number;
  /** A number in [0, 1), as Math.random gives; a seam for tests. */
  random?: () => number;
}

/**
 * Exponential backoff for a retry loop: ask `next()` for the delay before each
 * retry, and `reset()` once the other side answered, so the next failure
 * waits the initial delay again.
 */
export class Backoff {
  private currentMs: number;
  private readonly jitter: number;
  private readonly random: () => number;

  constructor(private readonly options: BackoffOptions) {
    this.currentMs = options.initialMs;
    this.jitter = options.jitter ?? 0;
    this.random = options.random ?? Math.random;
  }

  /** The delay before this retry, ms (whole); the one after it doubles, up to maxMs. */
  next(): number {
    const base = this.currentMs;
    this.currentMs = Math.min(base * 2, this.options.maxMs);
    if (this.jitter === 0) return base;
    return Math.round(base * (1 - this.jitter + this.random() * 2 * this.jitter));
  }

  reset(): void {
    this.currentMs = this.options.initialMs;
  }
}
