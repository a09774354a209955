import { randomUUID } from 'node:crypto';
import { Cron } from 'croner';
import type { Logger } from 'pino';
import type { ReportRunRecord, Store } from '../store/index.js';
import { isValid, toDefinition, type ReportDefinition } from './globalreport.js';
import type { ReportRegistry } from './registry.js';
import type { ReportResult } from './result.js';

export interface SchedulerOptions {
  now: () => number;
  /** Wait after an interval ends before its report runs, so late flow data arrives first (default 30 min). */
  startDelayMs: number;
  /** Report jobs running at once (default 5). */
  maxConcurrent: number;
  /** Retries of a failed job (default 6). */
  maxRetries: number;
  /** Delay before retry n (1-based). */
  retryDelayMs: (attempt: number) => number;
  /** Missed scheduled runs created at most per report per tick (a long outage does not flood). */
  maxCatchUp: number;
  /**
   * A run another process left "running" longer than this is assumed dead with
   * that process and queued again by the leader (0 with a single replica, where
   * no other process runs jobs).
   */
  staleRunMs: number;
}

export const DEFAULT_SCHEDULER_OPTIONS: Omit<SchedulerOptions, 'now'> = {
  startDelayMs: 30 * 60_000,
  maxConcurrent: 5,
  maxRetries: 6,
  retryDelayMs: (attempt) => Math.min(60_000 * 2 ** (attempt - 1), 30 * 60_000),
  maxCatchUp: 100,
  staleRunMs: 0,
};

export type RunReport = (run: ReportRunRecord, def: ReportDefinition) => Promise<ReportResult>;

export interface ReportEvents {
  runFinished(report: string, result: 'succeeded' | 'failed' | 'retry', atMs: number): void;
}

/**
 * Turns GlobalReport schedules into runs and runs them. Each run covers the
 * interval from the previous scheduled time to its own, and starts a delay
 * after it. Only the leader (one replica: a PostgreSQL advisory lock or a
 * Kubernetes Lease) creates scheduled runs and executes runs; a new leader
 * resumes from the last scheduled interval in the store, so missed runs are
 * created then. Time comes in through `now`, and `tick()` does one round, so
 * tests drive the clock instead of sleeping. Rounds never overlap.
 */
export class ReportScheduler {
  private readonly running = new Map<string, Promise<void>>();
  /** Reports seen suspended; on resume, intervals that ended while suspended are skipped. */
  private readonly suspended = new Set<string>();
  private readonly resumeAnchor = new Map<string, number>();
  private ticking = false;
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly store: Store,
    private readonly registry: ReportRegistry,
    private readonly runReport: RunReport,
    private readonly isLeader: () => Promise<boolean>,
    private readonly events: ReportEvents,
    private readonly log: Logger,
    private readonly options: SchedulerOptions,
  ) {}

  start(intervalMs = 10_000): void {
    this.timer = setInterval(() => void this.tick(), intervalMs);
    this.timer.unref();
    void this.tick();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await Promise.allSettled(this.running.values());
  }

  /** Runs in progress in this process. */
  get active(): number {
    return this.running.size;
  }

  /** Wait for the jobs started so far (tests). */
  async idle(): Promise<void> {
    while (this.running.size > 0) await Promise.allSettled([...this.running.values()]);
  }

  /** One round: create due scheduled runs, then start queued runs up to the cap. */
  async tick(): Promise<void> {
    if (this.ticking) return;
    this.ticking = true;
    try {
      if (!(await this.isLeader())) return;
      const now = this.options.now();
      // Runs another process left "running" for longer than any job takes died with it (a
      // previous leader killed mid-run). Checked every round, not only when the lead is
      // taken: a replica that takes over right after such a run started must still find
      // it once it is stale. This process's own jobs are never its to requeue.
      const requeued = await this.store.requeueRunningReportRuns(now - this.options.staleRunMs, [
        ...this.running.keys(),
      ]);
      if (requeued > 0)
        this.log.warn({ requeued }, 'report runs left running by a process that is gone are queued again');
      for (const def of this.registry.all()) {
        if (!def.schedule) continue;
        if (def.suspend) {
          this.suspended.add(def.name);
          continue;
        }
        if (this.suspended.delete(def.name)) {
          const prev = new Cron(def.schedule, { paused: true, timezone: 'UTC' }).previousRuns(1, new Date(now))[0];
          if (prev) this.resumeAnchor.set(def.name, prev.getTime());
        }
        await this.schedule(def, now);
      }
      const room = this.options.maxConcurrent - this.running.size;
      if (room <= 0) return;
      for (const run of await this.store.dueReportRuns(now, room)) {
        if (this.running.size >= this.options.maxConcurrent) break;
        if (
          !(await this.store.transitionReportRun(run.id, 'queued', {
            status: 'running',
            startedMs: now,
            attempts: run.attempts + 1,
          }))
        )
          continue;
        const job = this.execute({ ...run, attempts: run.attempts + 1 })
          .catch((err: unknown) =>
            this.log.error(
              { report: run.report, run: run.id, err },
              "recording a report run's outcome failed; the run is requeued when leadership is next taken",
            ),
          )
          .finally(() => this.running.delete(run.id));
        this.running.set(run.id, job);
      }
    } catch (err) {
      this.log.error({ err }, 'report scheduling round failed; next round retries');
    } finally {
      this.ticking = false;
    }
  }

  /** Create the scheduled runs whose interval has ended since the last one. */
  private async schedule(def: ReportDefinition, now: number): Promise<void> {
    const cron = new Cron(def.schedule as string, { paused: true, timezone: 'UTC' });
    let from = Math.max(
      (await this.store.lastScheduledIntervalEnd(def.name)) ?? this.anchor(def, cron),
      this.resumeAnchor.get(def.name) ?? -Infinity,
    );
    for (let i = 0; i < this.options.maxCatchUp; i++) {
      const next = cron.nextRun(new Date(from))?.getTime();
      if (next === undefined || next > now) break;
      await this.store.createReportRun(newRun(def, 'scheduled', from, next, next + this.options.startDelayMs, now));
      from = next;
    }
  }

  /** Where a report without runs starts: the last scheduled time before it was first seen. */
  private anchor(def: ReportDefinition, cron: Cron): number {
    const seen = this.registry.firstSeenMs.get(def.name) ?? this.options.now();
    const prev = cron.previousRuns(1, new Date(seen))[0];
    return prev ? prev.getTime() : seen;
  }

  /** An on-demand run over any interval; starts at the next round. */
  async runNow(def: ReportDefinition, startMs: number, endMs: number): Promise<ReportRunRecord> {
    const run = newRun(def, 'on-demand', startMs, endMs, this.options.now(), this.options.now());
    await this.store.createReportRun(run);
    void this.tick();
    return run;
  }

  private async execute(run: ReportRunRecord): Promise<void> {
    const def = definitionOf(run);
    const log = this.log.child({ report: run.report, run: run.id, attempt: run.attempts });
    try {
      const result = await this.runReport(run, def);
      const now = this.options.now();
      if (
        !(await this.store.transitionReportRun(run.id, 'running', { status: 'succeeded', finishedMs: now, result }))
      ) {
        log.warn('report run finished but was taken over meanwhile; this result is discarded');
        return;
      }
      this.events.runFinished(run.report, 'succeeded', now);
      log.info('report run succeeded');
    } catch (err) {
      const now = this.options.now();
      // No NUL reaches a store (PostgreSQL refuses it in text).
      const message = String((err as Error)?.message ?? err).replaceAll('\u0000', '');
      if (run.attempts <= this.options.maxRetries) {
        await this.store.transitionReportRun(run.id, 'running', {
          status: 'queued',
          notBeforeMs: now + this.options.retryDelayMs(run.attempts),
          error: message,
        });
        this.events.runFinished(run.report, 'retry', now);
        log.warn({ err: message }, 'report run failed; it will be retried');
      } else {
        await this.store.transitionReportRun(run.id, 'running', { status: 'failed', finishedMs: now, error: message });
        this.events.runFinished(run.report, 'failed', now);
        log.error({ err: message }, 'report run failed for good');
      }
    }
  }
}

function newRun(
  def: ReportDefinition,
  trigger: ReportRunRecord['trigger'],
  startMs: number,
  endMs: number,
  notBeforeMs: number,
  now: number,
): ReportRunRecord {
  return {
    id: randomUUID(),
    report: def.name,
    reportType: def.reportType,
    trigger,
    status: 'queued',
    attempts: 0,
    intervalStartMs: startMs,
    intervalEndMs: endMs,
    notBeforeMs,
    createdMs: now,
    // The definition as it was: a run is reproducible from its archived inputs.
    inputs: { apiVersion: def.apiVersion, spec: def.spec, origin: def.origin },
  };
}

/** A run carries its definition's spec as archived; the parsed form is rebuilt from it. */
function definitionOf(run: ReportRunRecord): ReportDefinition {
  const inputs = run.inputs as { apiVersion: string; spec: unknown; origin: string };
  const def = toDefinition(
    { apiVersion: inputs.apiVersion, kind: 'GlobalReport', metadata: { name: run.report }, spec: inputs.spec },
    inputs.origin,
  );
  if (!isValid(def)) throw new Error(`the archived definition no longer validates: ${def.error}`);
  return def;
}

/** Calico's GlobalReport status, from the archived runs. */
export function reportStatus(runs: ReportRunRecord[]) {
  const job = (r: ReportRunRecord) => ({
    id: r.id,
    start: new Date(r.intervalStartMs).toISOString(),
    end: new Date(r.intervalEndMs).toISOString(),
    trigger: r.trigger,
    createdAt: new Date(r.createdMs).toISOString(),
    ...(r.finishedMs ? { finishedAt: new Date(r.finishedMs).toISOString() } : {}),
    ...(r.error ? { error: r.error } : {}),
  });
  const scheduled = runs.filter((r) => r.trigger === 'scheduled').sort((a, b) => b.intervalEndMs - a.intervalEndMs);
  return {
    lastScheduledReportJob: scheduled[0] ? job(scheduled[0]) : null,
    activeReportJobs: runs.filter((r) => r.status === 'queued' || r.status === 'running').map(job),
    lastFailedReportJobs: runs
      .filter((r) => r.status === 'failed')
      .sort((a, b) => (b.finishedMs ?? 0) - (a.finishedMs ?? 0))
      .slice(0, 3)
      .map(job),
    lastSuccessfulReportJobs: runs
      .filter((r) => r.status === 'succeeded')
      .sort((a, b) => (b.finishedMs ?? 0) - (a.finishedMs ?? 0))
      .slice(0, 2)
      .map(job),
  };
}
