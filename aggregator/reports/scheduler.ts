import { randomUUID } from 'node:crypto';
import { Cron } from 'croner';
import type { Logger } from 'pino';
import { AGGREGATOR_DEFAULTS } from '../config.js';
import { AGGREGATOR_DEFAULTS_TABLE } from '../defaults.js';
import { VerdictError } from '../../common/errors.js';
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
  /** On-demand runs of one report queued or running at once; one more is refused (runNow throws). */
  maxWaitingOnDemand: number;
  /**
   * A run another process left "running" longer than this is assumed dead with
   * that process and queued again by the leader (0 with a single replica, where
   * no other process runs jobs).
   */
  staleRunMs: number;
}

const SCHEDULER = AGGREGATOR_DEFAULTS_TABLE.scheduler;

/** runNow refused: too many on-demand runs of the report wait already (HTTP 429). */
export const TOO_MANY_WAITING_RUNS = 'VERDICT_TOO_MANY_WAITING_RUNS';

/**
 * The scheduler settings of aggregator/defaults.ts (startDelayMs: --report-start-delay's default); staleRunMs 0 is a
 * single replica's (aggregator/main.ts sets --report-takeover-after with PostgreSQL).
 */
export const DEFAULT_SCHEDULER_OPTIONS: Omit<SchedulerOptions, 'now'> = {
  startDelayMs: AGGREGATOR_DEFAULTS.reportStartDelayMs,
  maxConcurrent: SCHEDULER.maxConcurrentRuns,
  maxRetries: SCHEDULER.maxRetries,
  retryDelayMs: (attempt) => Math.min(SCHEDULER.retryBaseDelayMs * 2 ** (attempt - 1), SCHEDULER.retryMaxDelayMs),
  maxCatchUp: SCHEDULER.maxCatchUpRuns,
  maxWaitingOnDemand: SCHEDULER.maxWaitingOnDemandRuns,
  staleRunMs: 0,
};

/**
 * Runs one report. `signal` is aborted when the scheduler stops (shutdown): the run should give up at its next
 * stage, and whatever it answers then is discarded (the run is queued again).
 */
export type RunReport = (run: ReportRunRecord, def: ReportDefinition, signal?: AbortSignal) => Promise<ReportResult>;

/**
 * How an attempt ended: succeeded; retry (it failed and the run is queued again); failed (for good); abandoned (the
 * process running it died during the run, found "running" by the process that took over, and the run is queued
 * once more; lost again, it is failed).
 */
export type RunOutcome = 'succeeded' | 'failed' | 'retry' | 'abandoned';

export interface ReportEvents {
  runFinished(report: string, result: RunOutcome, atMs: number): void;
}

/**
 * Whether a run found "running" by a process that took over (its process died during the run) is failed rather
 * than queued again: a run is queued again after such a loss only when the lost attempt was its first. A run
 * that has already been tried once (and lost, or failed) is not risked again: it may be what kills the process
 * (out of memory), and every try takes the whole aggregator down with it. So a run kills at most two processes.
 */
export function failsWhenLost(run: ReportRunRecord, maxRetries: number): boolean {
  return run.attempts >= 2 || run.attempts > maxRetries;
}

/** The error a run lost with its process is failed with. */
export function abandonedError(attempts: number): string {
  return (
    `VERDICT_REPORT_ABANDONED: the process running this report died during the run (attempt ${attempts}), ` +
    'e.g. killed out of memory; it is not tried again, as it may be what kills the process: ' +
    "narrow the interval (run it over parts of it) or raise the aggregator's memory limit"
  );
}

/** The note a run lost with its process is queued again with. */
export function requeuedAfterLossNote(attempts: number): string {
  return (
    `the process running attempt ${attempts} of this report died during the run (e.g. killed out of memory); ` +
    'queued once more, and failed if that is lost too'
  );
}

interface Job {
  run: ReportRunRecord;
  done: Promise<void>;
  abort: AbortController;
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
  private readonly running = new Map<string, Job>();
  /** Reports seen suspended; on resume, intervals that ended while suspended are skipped. */
  private readonly suspended = new Set<string>();
  private readonly resumeAnchor = new Map<string, number>();
  /** The scheduling round in progress. */
  private round?: Promise<void>;
  private stopped = false;
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

  start(intervalMs = SCHEDULER.tickIntervalMs): void {
    this.timer = setInterval(() => void this.tick(), intervalMs);
    this.timer.unref();
    void this.tick();
  }

  /**
   * Stop without waiting for running reports, nor for a round in progress (it may be waiting on leadership or the
   * store): no new round starts and no more runs are claimed (a claim in flight is put back by its round), and
   * each running job is told to stop (its AbortSignal) and its run put back to "queued" with its attempt not
   * counted — a shutdown is not a crash — so the next leader runs it again. Whatever a job answers after this is
   * discarded: its run is never recorded succeeded (or failed) by this scheduler. A result whose write had already
   * begun when stop was called stands (the put-back then finds the run no longer running).
   */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await Promise.allSettled([...this.running.values()].map((job) => this.putBack(job.run, job.abort)));
  }

  private async putBack(run: ReportRunRecord, abort?: AbortController): Promise<void> {
    abort?.abort(new Error('the report scheduler is stopping'));
    const log = this.log.child({ report: run.report, run: run.id, attempt: run.attempts });
    try {
      const back = await this.store.transitionReportRun(
        run.id,
        'running',
        { status: 'queued', attempts: run.attempts - 1 },
        { attempts: run.attempts },
      );
      if (back) log.info('report run stopped by shutdown; queued again, its attempt not counted');
    } catch (err) {
      log.warn(
        { err },
        'report run stopped by shutdown but could not be queued again; the next leader finds it running and counts the attempt as lost',
      );
    }
  }

  /** Runs in progress in this process. */
  get active(): number {
    return this.running.size;
  }

  /** Wait for the jobs started so far (tests). */
  async idle(): Promise<void> {
    while (this.running.size > 0) await Promise.allSettled([...this.running.values()].map((j) => j.done));
  }

  /** One round: create due scheduled runs, then start queued runs up to the cap. */
  async tick(): Promise<void> {
    if (this.round || this.stopped) return;
    this.round = this.doTick().finally(() => (this.round = undefined));
    await this.round;
  }

  private async doTick(): Promise<void> {
    try {
      if (!(await this.isLeader()) || this.stopped) return;
      const now = this.options.now();
      await this.takeOverLostRuns(now);
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
        if (this.running.size >= this.options.maxConcurrent || this.stopped) break;
        if (
          !(await this.store.transitionReportRun(run.id, 'queued', {
            status: 'running',
            startedMs: now,
            attempts: run.attempts + 1,
          }))
        )
          continue;
        const claimed = { ...run, attempts: run.attempts + 1, startedMs: now };
        // Stopped while claiming: not started, put back as stop() puts back the running ones.
        if (this.stopped) {
          await this.putBack(claimed);
          break;
        }
        const abort = new AbortController();
        const done = this.execute(claimed, abort.signal)
          .catch((err: unknown) =>
            this.log.error(
              { report: run.report, run: run.id, err },
              "recording a report run's outcome failed; the run is requeued when leadership is next taken",
            ),
          )
          .finally(() => this.running.delete(run.id));
        this.running.set(run.id, { run: claimed, done, abort });
      }
    } catch (err) {
      this.log.error({ err }, 'report scheduling round failed; next round retries');
    }
  }

  /**
   * Runs another process left "running" for longer than any job takes died with it (a previous leader killed
   * mid-run, or this aggregator's previous process, killed out of memory by the very run). Checked every round,
   * not only when the lead is taken: a replica that takes over right after such a run started must still find it
   * once it is stale. This process's own jobs are never its to take over. The lost attempt stays counted: a run
   * lost at its first attempt is queued once more, one lost later is failed (failsWhenLost), so a run that kills
   * its process cannot do so at every start.
   */
  private async takeOverLostRuns(now: number): Promise<void> {
    const lost = await this.store.runningReportRuns(now - this.options.staleRunMs, [...this.running.keys()]);
    for (const run of lost) {
      const log = this.log.child({ report: run.report, run: run.id, attempt: run.attempts });
      // The attempts guard: only the attempt read above, not one claimed again meanwhile.
      if (failsWhenLost(run, this.options.maxRetries)) {
        const error = abandonedError(run.attempts);
        if (
          await this.store.transitionReportRun(
            run.id,
            'running',
            { status: 'failed', finishedMs: now, error },
            { attempts: run.attempts },
          )
        ) {
          this.events.runFinished(run.report, 'failed', now);
          log.error(
            { err: error },
            'report run lost with the process running it, not at its first attempt; failed for good',
          );
        }
      } else if (
        await this.store.transitionReportRun(
          run.id,
          'running',
          { status: 'queued', error: requeuedAfterLossNote(run.attempts) },
          { attempts: run.attempts },
        )
      ) {
        this.events.runFinished(run.report, 'abandoned', now);
        log.warn('report run left running by a process that is gone (died during the run); queued once more');
      }
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

  /**
   * An on-demand run over any interval; starts at the next round. Refused (TOO_MANY_WAITING_RUNS) while
   * maxWaitingOnDemand on-demand runs of the report are queued or running: each may read a whole interval's flows,
   * and a client looping on the route would otherwise queue work without end.
   */
  async runNow(def: ReportDefinition, startMs: number, endMs: number): Promise<ReportRunRecord> {
    const recent = await this.store.reportRuns(def.name, SCHEDULER.recentRunsPerReport);
    const waiting = recent.filter(
      (r) => r.trigger === 'on-demand' && (r.status === 'queued' || r.status === 'running'),
    );
    if (waiting.length >= this.options.maxWaitingOnDemand)
      throw new VerdictError(
        TOO_MANY_WAITING_RUNS,
        `${waiting.length} on-demand runs of report ${def.name} are queued or running (at most ` +
          `${this.options.maxWaitingOnDemand}); wait for one to finish (GET /api/v1/reports/${def.name}/runs), then ask again`,
      );
    const run = newRun(def, 'on-demand', startMs, endMs, this.options.now(), this.options.now());
    await this.store.createReportRun(run);
    void this.tick();
    return run;
  }

  private async execute(run: ReportRunRecord, signal: AbortSignal): Promise<void> {
    const log = this.log.child({ report: run.report, run: run.id, attempt: run.attempts });
    try {
      const def = definitionOf(run);
      const result = await this.runReport(run, def, signal);
      // Stopped meanwhile: stop() has put the run back; nothing this job made is recorded.
      if (signal.aborted) return;
      const now = this.options.now();
      // Only this attempt's run: not one taken over (failed, or queued and claimed again) meanwhile.
      const mine = { attempts: run.attempts };
      if (
        !(await this.store.transitionReportRun(
          run.id,
          'running',
          { status: 'succeeded', finishedMs: now, result },
          mine,
        ))
      ) {
        log.warn('report run finished but was taken over meanwhile; this result is discarded');
        return;
      }
      this.events.runFinished(run.report, 'succeeded', now);
      log.info('report run succeeded');
    } catch (err) {
      if (signal.aborted) return;
      const now = this.options.now();
      // No NUL reaches a store (PostgreSQL refuses it in text).
      const message = String((err as Error)?.message ?? err).replaceAll('\u0000', '');
      const mine = { attempts: run.attempts };
      const retry = run.attempts <= this.options.maxRetries;
      const recorded = retry
        ? await this.store.transitionReportRun(
            run.id,
            'running',
            { status: 'queued', notBeforeMs: now + this.options.retryDelayMs(run.attempts), error: message },
            mine,
          )
        : await this.store.transitionReportRun(
            run.id,
            'running',
            { status: 'failed', finishedMs: now, error: message },
            mine,
          );
      if (!recorded) {
        log.warn({ err: message }, 'report run failed but was taken over meanwhile; this failure is discarded');
        return;
      }
      this.events.runFinished(run.report, retry ? 'retry' : 'failed', now);
      if (retry) log.warn({ err: message }, 'report run failed; it will be retried');
      else log.error({ err: message }, 'report run failed for good');
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
