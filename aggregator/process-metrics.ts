import { readdirSync, statSync } from 'node:fs';
import { Gauge, collectDefaultMetrics, type Registry } from 'prom-client';

/** Every process metric is exported under this prefix. */
export const PROCESS_METRICS_PREFIX = 'verdict_aggregator_';

/** A sample of the handle and resource counts younger than this is exported as it is. */
const HANDLES_FRESH_MS = 1_000;
/** A sample older than this is not exported: the scrape takes a new one itself. */
const HANDLES_STALE_MS = 120_000;
/** With no scrape asking, a new sample is taken this long after the last, so scrapes never find none fresh enough. */
export const HANDLES_KEEP_MS = 60_000;

/**
 * Node.js process metrics, prefixed verdict_aggregator_: prom-client's default metrics, with the three that walk every
 * open socket done differently (issue 13). With 5,000 agents connected, prom-client's process_open_fds lists
 * /proc/self/fd and nodejs_active_handles and nodejs_active_resources enumerate every handle, at each scrape: some
 * 10-20 ms of a scrape on an idle machine and ten times that under load, growing with the agents. Here the
 * descriptors are counted by the kernel (see openFds), and the handle and resource counts are sampled right after a
 * scrape (HandleSampler), not during one. Names, HELP, types and labels are prom-client's (a test compares them).
 */
export function processMetrics(registry: Registry): void {
  collectDefaultMetrics({ register: registry, prefix: PROCESS_METRICS_PREFIX });
  // prom-client's totals of active handles/requests/resources are gauges named *_total, which
  // `promtool check metrics` rejects; the per-type gauges it also exports hold the same numbers.
  for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'])
    registry.removeSingleMetric(`${PROCESS_METRICS_PREFIX}${name}`);
  replace(registry, 'process_open_fds', (help) => {
    new Gauge({
      name: `${PROCESS_METRICS_PREFIX}process_open_fds`,
      help,
      registers: [registry],
      collect() {
        const n = openFds();
        if (n !== undefined) this.set(n);
      },
    });
  });
  const sampler = new HandleSampler();
  const byType = (name: string, counts: (s: HandleCounts) => Map<string, number>) =>
    replace(registry, name, (help) => {
      new Gauge({
        name: `${PROCESS_METRICS_PREFIX}${name}`,
        help,
        labelNames: ['type'],
        registers: [registry],
        collect() {
          this.reset();
          for (const [type, n] of counts(sampler.counts())) this.set({ type }, n);
        },
      });
    });
  byType('nodejs_active_handles', (s) => s.handles);
  byType('nodejs_active_resources', (s) => s.resources);
}

/** Put `make`'s metric in place of prom-client's `name` (with its HELP), when prom-client exports one here. */
function replace(registry: Registry, name: string, make: (help: string) => void): void {
  const theirs = registry.getSingleMetric(`${PROCESS_METRICS_PREFIX}${name}`);
  if (theirs === undefined) return;
  const help = (theirs as unknown as { help: string }).help;
  registry.removeSingleMetric(`${PROCESS_METRICS_PREFIX}${name}`);
  make(help);
}

/**
 * Open file descriptors, as prom-client counts them (the entries of /proc/self/fd, the listing's own not counted).
 * Since Linux 6.2 the size stat() gives /proc/self/fd is that count, taken from the descriptor table's bitmap
 * without listing 5,000 sockets; older kernels say 0 there, and the directory is listed.
 */
export function openFds(): number | undefined {
  try {
    const size = statSync('/proc/self/fd').size;
    return size > 0 ? size : readdirSync('/proc/self/fd').length - 1;
  } catch {
    return undefined;
  }
}

export interface HandleCounts {
  /** Active libuv handles by the class of their JavaScript object (prom-client's nodejs_active_handles). */
  handles: Map<string, number>;
  /** Resources keeping the event loop alive, by type (prom-client's nodejs_active_resources). */
  resources: Map<string, number>;
}

/**
 * The handle and resource counts, sampled off the scrape's path: a scrape exports the latest sample and, when it is
 * older than HANDLES_FRESH_MS, has a new one taken once the reply is under way (setImmediate), so the cost of
 * walking every socket never lands on a scrape's latency. A scrape sees the counts as they were after the one
 * before it (Prometheus scrapes every 15-60 s). Without scrapes a sample is taken every HANDLES_KEEP_MS (one at
 * start): the first scrape after a quiet spell, such as 5,000 agents connecting before anyone scraped, exports one at
 * most that old instead of walking every socket itself (10-50 ms of the first scrape, issue 13). Only a sample older
 * than HANDLES_STALE_MS (the timer held up) is taken by the scrape itself.
 */
export class HandleSampler {
  private sample: HandleCounts | undefined;
  private takenMs = 0;
  private pending = false;
  private keeper: NodeJS.Timeout | undefined;

  constructor(
    private readonly now: () => number = Date.now,
    private readonly keepMs = HANDLES_KEEP_MS,
  ) {
    this.take();
  }

  counts(): HandleCounts {
    const age = this.now() - this.takenMs;
    if (this.sample === undefined || age > HANDLES_STALE_MS) this.take();
    else if (age > HANDLES_FRESH_MS && !this.pending) {
      this.pending = true;
      setImmediate(() => {
        this.pending = false;
        this.take();
      }).unref();
    }
    return this.sample!;
  }

  private take(): void {
    this.sample = { handles: countHandles(), resources: countResources() };
    this.takenMs = this.now();
    clearTimeout(this.keeper);
    this.keeper = setTimeout(() => this.take(), this.keepMs).unref();
  }
}

/** prom-client's count: handles grouped by their object's constructor name, those without one left out. */
function countHandles(): Map<string, number> {
  const active = (process as unknown as { _getActiveHandles?: () => unknown[] })._getActiveHandles?.() ?? [];
  return tally(active.map((h) => (h as { constructor?: { name?: string } } | null)?.constructor?.name));
}

function countResources(): Map<string, number> {
  return tally(process.getActiveResourcesInfo());
}

/** How often each defined value occurs. */
function tally(values: (string | undefined)[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const v of values) if (v !== undefined) out.set(v, (out.get(v) ?? 0) + 1);
  return out;
}
