import type { NetworkAccessConfig } from '../network-access/config.js';
import type { Store, ReportRunRecord } from '../store/index.js';
import type { ReportDefinition, ReportType } from './globalreport.js';
import type { InventorySnapshot } from './inventory-snapshot.js';
import { REPORT_TYPES, type ReportTypeIO } from './report-types.js';
import { requireCluster, type ReportInterval, type ReportSources } from './report-type.js';
import type { ReportResult, ReportResultOf } from './result.js';

/**
 * Runs one report: looks its type up in REPORT_TYPES, which reads the type's
 * inputs for the run's interval (from the store, or the cluster) and hands them
 * to the type's pure generator. An aborted `signal` (the scheduler stopping)
 * ends the run between those stages with the signal's reason.
 */
export function reportRunner(
  store: Store,
  now: () => number = Date.now,
  inventorySource?: (fromMs: number, toMs: number) => Promise<InventorySnapshot>,
  networkAccess?: NetworkAccessConfig,
) {
  const sources: ReportSources = {
    store,
    ...(inventorySource ? { cluster: { inventory: inventorySource } } : {}),
    ...(networkAccess ? { networkAccess } : {}),
  };
  // runReport is typed per report type; called with the union of them, TypeScript cannot tell that the summary and
  // data belong to the reportType beside them, which ReportResult (one shape per type) says.
  return (run: ReportRunRecord, def: ReportDefinition, signal?: AbortSignal): Promise<ReportResult> =>
    runReport(def.reportType, def, sources, run, now, signal) as Promise<ReportResult>;
}

type ResultOf<K extends ReportType> = ReportResultOf<K, ReportTypeIO[K]['summary'], ReportTypeIO[K]['data']>;

/** One run of a report of type K: its kind's inputs for the interval, its generator's output, its evidence. */
async function runReport<K extends ReportType>(
  type: K,
  def: ReportDefinition,
  sources: ReportSources,
  run: ReportRunRecord,
  now: () => number,
  signal?: AbortSignal,
): Promise<ResultOf<K>> {
  const kind = REPORT_TYPES[type];
  const interval: ReportInterval = {
    start: new Date(run.intervalStartMs).toISOString(),
    end: new Date(run.intervalEndMs).toISOString(),
    startMs: run.intervalStartMs,
    endMs: run.intervalEndMs,
  };
  if (kind.needsCluster) requireCluster(kind, sources);
  await stage(signal);
  const input = await kind.load(sources, interval);
  await stage(signal);
  const out = kind.generate(def, input, interval);
  await stage(signal);
  return {
    report: def.name,
    reportType: type,
    startTime: interval.start,
    endTime: interval.end,
    generatedAt: new Date(now()).toISOString(),
    ...out,
    evidence: kind.evidence,
  };
}

/**
 * Between two stages of a run: a turn of the event loop, so a shutdown signal that arrived while a stage held the
 * loop (a SQLite read, a generator) is handled, then the run ends if the scheduler has stopped it.
 */
async function stage(signal: AbortSignal | undefined): Promise<void> {
  if (!signal) return;
  await new Promise<void>((resolve) => setImmediate(resolve));
  signal.throwIfAborted();
}
