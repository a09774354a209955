import { join } from 'node:path';
import { pino } from 'pino';
import t, { type Test } from 'tap';
import { parseReportsYaml } from '../../../aggregator/reports/globalreport.js';
import { ReportRegistry } from '../../../aggregator/reports/registry.js';
import {
  DEFAULT_SCHEDULER_OPTIONS,
  reportStatus,
  ReportScheduler,
  type RunReport,
  type SchedulerOptions,
} from '../../../aggregator/reports/scheduler.js';
import type { ReportResult } from '../../../aggregator/reports/result.js';
import { SqliteStore } from '../../../aggregator/store/sqlite.js';
import type { ReportRunRecord } from '../../../aggregator/store/index.js';
import { tempDir } from '../../fixtures/tmp.js';

// The scheduler with a controlled clock: time only moves when the test sets it,
// and tick() does one scheduling round. Nothing sleeps.
const silent = pino({ level: 'silent' });
const at = (iso: string) => Date.parse(iso);

function report(name: string, extra = ''): string {
  return `apiVersion: projectcalico.org/v3
kind: GlobalReport
metadata: {name: ${name}}
spec:
  reportType: cis-benchmark
  schedule: "0 * * * *"
${extra}`;
}

function setup(
  t: Test,
  opts: {
    runner?: RunReport;
    leader?: () => Promise<boolean>;
    yaml?: string;
    start?: string;
    options?: Partial<SchedulerOptions>;
    /** Another scheduler's store (a second process on the same database); opened here when left out. */
    store?: SqliteStore;
  } = {},
) {
  const store = opts.store ?? SqliteStore.open(join(tempDir(t), 'v.db'));
  if (!opts.store) t.teardown(() => store.close());
  let now = at(opts.start ?? '2026-11-20T10:10:00Z');
  const clock = { set: (iso: string) => (now = at(iso)), now: () => now };
  const registry = new ReportRegistry(silent, clock.now);
  registry.replace(parseReportsYaml(opts.yaml ?? report('hourly'), 'test.yaml'));
  const calls: ReportRunRecord[] = [];
  const finished: string[] = [];
  const runner: RunReport =
    opts.runner ??
    (async (run) => {
      calls.push(run);
      return { report: run.report } as unknown as ReportResult;
    });
  const scheduler = new ReportScheduler(
    store,
    registry,
    runner,
    opts.leader ?? (async () => true),
    { runFinished: (r, result) => finished.push(`${r}:${result}`) },
    silent,
    { ...DEFAULT_SCHEDULER_OPTIONS, now: clock.now, retryDelayMs: () => 60_000, ...opts.options },
  );
  return {
    store,
    clock,
    registry,
    scheduler,
    calls,
    finished,
    tickAt: async (iso: string) => {
      clock.set(iso);
      await scheduler.tick();
      await scheduler.idle();
    },
  };
}

t.test(
  'a scheduled run covers the interval since the previous scheduled time and starts after the delay',
  async (t) => {
    const s = setup(t);
    await s.tickAt('2026-11-20T10:59:59Z');
    t.same(await s.store.reportRuns('hourly', 10), [], 'nothing before the first scheduled time');
    await s.tickAt('2026-11-20T11:00:00Z');
    const [run] = await s.store.reportRuns('hourly', 10);
    t.match(run, {
      status: 'queued',
      trigger: 'scheduled',
      intervalStartMs: at('2026-11-20T10:00:00Z'),
      intervalEndMs: at('2026-11-20T11:00:00Z'),
      notBeforeMs: at('2026-11-20T11:30:00Z'),
    });
    await s.tickAt('2026-11-20T11:29:59Z');
    t.equal(s.calls.length, 0, 'not before the 30-minute start delay');
    await s.tickAt('2026-11-20T11:30:00Z');
    t.equal(s.calls.length, 1);
    const done = await s.store.reportRun(run!.id);
    t.equal(done?.status, 'succeeded');
    t.same(done?.result, { report: 'hourly' });
    t.same(s.finished, ['hourly:succeeded']);
    await s.tickAt('2026-11-20T11:45:00Z');
    t.equal((await s.store.reportRuns('hourly', 10)).length, 1, 'the same interval is never scheduled twice');
  },
);

t.test('suspend stops new runs; after resuming, the intervals that ended while suspended are not run', async (t) => {
  const s = setup(t);
  await s.tickAt('2026-11-20T11:00:00Z');
  s.registry.replace(parseReportsYaml(report('hourly', '  suspend: true'), 'test.yaml'));
  await s.tickAt('2026-11-20T12:00:00Z');
  await s.tickAt('2026-11-20T13:00:00Z');
  t.equal((await s.store.reportRuns('hourly', 10)).length, 1, 'no runs while suspended');
  s.registry.replace(parseReportsYaml(report('hourly'), 'test.yaml'));
  await s.tickAt('2026-11-20T13:10:00Z');
  await s.tickAt('2026-11-20T14:00:00Z');
  const ends = (await s.store.reportRuns('hourly', 10)).map((r) => new Date(r.intervalEndMs).toISOString()).sort();
  t.same(ends, ['2026-11-20T11:00:00.000Z', '2026-11-20T14:00:00.000Z']);
});

t.test('at most 5 report jobs run at once; the rest wait for a free slot', async (t) => {
  const releases: (() => void)[] = [];
  const s = setup(t, {
    runner: (run) =>
      new Promise((resolve) => releases.push(() => resolve({ report: run.report } as unknown as ReportResult))),
  });
  for (let i = 0; i < 7; i++) {
    await s.store.createReportRun({
      id: `00000000-0000-4000-8000-00000000000${i}`,
      report: 'hourly',
      reportType: 'cis-benchmark',
      trigger: 'on-demand',
      status: 'queued',
      attempts: 0,
      intervalStartMs: at('2026-11-19T00:00:00Z'),
      intervalEndMs: at('2026-11-20T00:00:00Z'),
      notBeforeMs: at('2026-11-20T10:00:00Z'),
      createdMs: at('2026-11-20T10:00:00Z') + i,
      inputs: { apiVersion: 'projectcalico.org/v3', spec: { reportType: 'cis-benchmark' }, origin: 'test' },
    });
  }
  s.clock.set('2026-11-20T10:20:00Z');
  await s.scheduler.tick();
  t.equal(s.scheduler.active, 5);
  t.equal((await s.store.reportRuns('hourly', 20)).filter((r) => r.status === 'queued').length, 2);
  await s.scheduler.tick();
  t.equal(s.scheduler.active, 5, 'another round starts nothing while all slots are taken');
  for (const r of releases.splice(0)) r();
  await s.scheduler.idle();
  await s.scheduler.tick();
  t.equal(s.scheduler.active, 2, 'the last two start once slots are free');
  for (const r of releases.splice(0)) r();
  await s.scheduler.idle();
  t.equal((await s.store.reportRuns('hourly', 20)).filter((r) => r.status !== 'succeeded').length, 0);
});

t.test(
  'a failing job is retried up to 6 times, then failed; status keeps the last 3 failures and 2 successes',
  async (t) => {
    let fail = true;
    const s = setup(t, {
      runner: async (run) => {
        if (fail) throw new Error('store unavailable');
        return { report: run.report } as unknown as ReportResult;
      },
    });
    await s.tickAt('2026-11-20T11:00:00Z');
    let minute = 30;
    for (let i = 0; i < 10; i++) await s.tickAt(`2026-11-20T11:${String(minute++).padStart(2, '0')}:00Z`);
    const [run] = await s.store.reportRuns('hourly', 10);
    t.equal(run?.status, 'failed');
    t.equal(run?.attempts, 7, 'the first try and 6 retries');
    t.equal(run?.error, 'store unavailable');
    t.equal(s.finished.filter((f) => f === 'hourly:retry').length, 6);
    // More failures and then successes, for the status history.
    for (const h of ['12', '13', '14']) {
      await s.tickAt(`2026-11-20T${h}:00:00Z`);
      for (let m = 30; m < 40; m++) await s.tickAt(`2026-11-20T${h}:${m}:00Z`);
    }
    fail = false;
    for (const h of ['15', '16', '17']) {
      await s.tickAt(`2026-11-20T${h}:00:00Z`);
      await s.tickAt(`2026-11-20T${h}:30:00Z`);
    }
    const status = reportStatus(await s.store.reportRuns('hourly', 100));
    t.equal(status.lastFailedReportJobs.length, 3);
    t.same(
      status.lastSuccessfulReportJobs.map((j) => j.end),
      ['2026-11-20T17:00:00.000Z', '2026-11-20T16:00:00.000Z'],
    );
    t.equal(status.lastScheduledReportJob?.end, '2026-11-20T17:00:00.000Z');
    t.same(status.activeReportJobs, []);
  },
);

t.test(
  'on-demand runs waiting per report are capped: one more is refused with what to do, until one finishes',
  async (t) => {
    // A follower (no lead) never starts runs, so the on-demand runs stay queued; the cap here is 3.
    const s = setup(t, { leader: async () => false, options: { maxWaitingOnDemand: 3 } });
    s.clock.set('2026-11-20T10:20:00Z');
    const def = s.registry.get('hourly')!;
    const from = at('2026-11-19T00:00:00Z');
    const to = at('2026-11-20T00:00:00Z');
    const ids = [];
    for (let i = 0; i < 3; i++) ids.push((await s.scheduler.runNow(def, from, to)).id);
    // Scheduled runs do not count against the cap.
    await s.store.createReportRun({
      id: '00000000-0000-4000-8000-0000000000aa',
      report: 'hourly',
      reportType: 'cis-benchmark',
      trigger: 'scheduled',
      status: 'queued',
      attempts: 0,
      intervalStartMs: from,
      intervalEndMs: to,
      notBeforeMs: to,
      createdMs: to,
      inputs: { apiVersion: 'projectcalico.org/v3', spec: { reportType: 'cis-benchmark' }, origin: 'test' },
    });
    await t.rejects(s.scheduler.runNow(def, from, to), {
      code: 'VERDICT_TOO_MANY_WAITING_RUNS',
      message: /3 on-demand runs of report hourly are queued or running \(at most 3\); wait for one to finish/,
    });
    t.equal((await s.store.reportRuns('hourly', 20)).length, 4, 'the refused run was not stored');
    t.ok(await s.store.transitionReportRun(ids[0]!, 'queued', { status: 'failed', finishedMs: to, error: 'x' }));
    t.match(await s.scheduler.runNow(def, from, to), { status: 'queued', trigger: 'on-demand' }, 'a slot again');
    await t.rejects(s.scheduler.runNow(def, from, to), { code: 'VERDICT_TOO_MANY_WAITING_RUNS' });
  },
);

t.test('only the leader schedules; a new leader creates the runs that were missed', async (t) => {
  let leader = false;
  const s = setup(t, { leader: async () => leader });
  await s.tickAt('2026-11-20T11:00:00Z');
  await s.tickAt('2026-11-20T12:00:00Z');
  t.same(await s.store.reportRuns('hourly', 10), [], 'a follower creates nothing');
  leader = true;
  await s.tickAt('2026-11-20T14:05:00Z');
  const ends = (await s.store.reportRuns('hourly', 10)).map((r) => new Date(r.intervalEndMs).toISOString()).sort();
  t.same(ends, [
    '2026-11-20T11:00:00.000Z',
    '2026-11-20T12:00:00.000Z',
    '2026-11-20T13:00:00.000Z',
    '2026-11-20T14:00:00.000Z',
  ]);
});

t.test('a run left running by a dead leader is queued again when this scheduler takes the lead', async (t) => {
  const s = setup(t);
  const id = '00000000-0000-4000-8000-0000000000aa';
  await s.store.createReportRun({
    id,
    report: 'hourly',
    reportType: 'cis-benchmark',
    trigger: 'on-demand',
    status: 'queued',
    attempts: 0,
    intervalStartMs: at('2026-11-19T00:00:00Z'),
    intervalEndMs: at('2026-11-20T00:00:00Z'),
    notBeforeMs: at('2026-11-20T09:00:00Z'),
    createdMs: at('2026-11-20T09:00:00Z'),
    inputs: { apiVersion: 'projectcalico.org/v3', spec: { reportType: 'cis-benchmark' }, origin: 'test' },
  });
  t.ok(await s.store.transitionReportRun(id, 'queued', { status: 'running', startedMs: at('2026-11-20T09:00:00Z') }));
  await s.tickAt('2026-11-20T10:15:00Z');
  t.equal((await s.store.reportRun(id))?.status, 'succeeded');
  t.equal(s.calls.length, 1);
});

// Issue 10: a leader killed mid-run left its run "running"; the replica that took
// over within the staleness bound checked only once, on taking the lead, so the
// interval never got a result.
const onDemandRun = (id: string) => ({
  id,
  report: 'hourly',
  reportType: 'cis-benchmark',
  trigger: 'on-demand' as const,
  status: 'queued' as const,
  attempts: 0,
  intervalStartMs: at('2026-11-19T00:00:00Z'),
  intervalEndMs: at('2026-11-20T00:00:00Z'),
  notBeforeMs: at('2026-11-20T09:00:00Z'),
  createdMs: at('2026-11-20T09:00:00Z'),
  inputs: { apiVersion: 'projectcalico.org/v3', spec: { reportType: 'cis-benchmark' }, origin: 'test' },
});

t.test(
  'a run a dead leader left running is queued again once it is stale, even when the lead was taken before that',
  async (t) => {
    const s = setup(t, { options: { staleRunMs: 30 * 60_000 } });
    const id = '00000000-0000-4000-8000-0000000000ab';
    await s.store.createReportRun(onDemandRun(id));
    t.ok(
      await s.store.transitionReportRun(id, 'queued', {
        status: 'running',
        startedMs: at('2026-11-20T10:00:00Z'),
        attempts: 1,
      }),
    );
    await s.tickAt('2026-11-20T10:05:00Z'); // the lead is taken 5 minutes into the dead leader's run
    t.equal((await s.store.reportRun(id))?.status, 'running', 'not yet: the run may still be alive elsewhere');
    t.equal(s.calls.length, 0);
    await s.tickAt('2026-11-20T10:30:01Z');
    const done = await s.store.reportRun(id);
    t.equal(done?.status, 'succeeded', 'taken over once stale, by the leader that has held the lead all along');
    t.equal(done?.attempts, 2);
    t.equal(s.calls.length, 1);
  },
);

t.test('the leader never requeues its own run, however long it takes', async (t) => {
  let release = () => {};
  const calls: string[] = [];
  const s = setup(t, {
    yaml: report('hourly', '  suspend: true'), // only the run below
    options: { staleRunMs: 30 * 60_000 },
    runner: async (run) => {
      calls.push(run.id);
      await new Promise<void>((r) => (release = r));
      return { report: run.report } as unknown as ReportResult;
    },
  });
  const id = '00000000-0000-4000-8000-0000000000ac';
  await s.store.createReportRun(onDemandRun(id));
  s.clock.set('2026-11-20T10:00:00Z');
  await s.scheduler.tick();
  t.equal(s.scheduler.active, 1);
  s.clock.set('2026-11-20T12:00:00Z');
  await s.scheduler.tick();
  t.equal((await s.store.reportRun(id))?.status, 'running', 'two hours in, still its own running job');
  t.same(calls, [id], 'started once');
  release();
  await s.scheduler.idle();
  t.match(await s.store.reportRun(id), { status: 'succeeded', attempts: 1 });
});

// Issue 13: a run that killed its process (out of memory) was found "running" at the next start and queued again
// with no cap, killing the new process too: a crash loop. And a shutdown waited for the running report.

/** A promise the test settles. */
function deferred<T>() {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

t.test(
  'a run its process died in is queued once more (counted abandoned); lost again, it is failed with the reason',
  async (t) => {
    // The first process (already dead) left the run running at its first attempt.
    const hang = deferred<ReportResult>();
    const signals: AbortSignal[] = [];
    const first = setup(t, {
      yaml: report('hourly', '  suspend: true'), // only the run below
      runner: (_run, _def, signal) => (signals.push(signal as AbortSignal), hang.promise),
    });
    const id = '00000000-0000-4000-8000-0000000000ad';
    await first.store.createReportRun(onDemandRun(id));
    t.ok(
      await first.store.transitionReportRun(id, 'queued', {
        status: 'running',
        startedMs: at('2026-11-20T09:30:00Z'),
        attempts: 1,
      }),
    );
    // The second process takes over: the lost attempt stays counted, the run is queued once more and started.
    first.clock.set('2026-11-20T10:00:00Z');
    await first.scheduler.tick();
    t.same(first.finished, ['hourly:abandoned'], 'the lost attempt is counted');
    t.equal(first.scheduler.active, 1, 'queued once more and started again at once');
    t.match(await first.store.reportRun(id), {
      status: 'running',
      attempts: 2,
      error: /the process running attempt 1 of this report died during the run/,
    });
    // ... and dies during it too (its job never ends). The third process takes over.
    const third = setup(t, { store: first.store, yaml: report('hourly', '  suspend: true') });
    await third.tickAt('2026-11-20T10:05:00Z');
    const failed = await third.store.reportRun(id);
    t.match(failed, {
      status: 'failed',
      attempts: 2,
      finishedMs: at('2026-11-20T10:05:00Z'),
      error:
        /^VERDICT_REPORT_ABANDONED: the process running this report died during the run \(attempt 2\).*out of memory.*narrow the interval.*memory limit/,
    });
    t.same(third.finished, ['hourly:failed'], 'failed for good, counted failed');
    t.same(third.calls, [], 'not run a third time');
    await third.tickAt('2026-11-20T10:10:00Z');
    t.equal((await third.store.reportRun(id))?.status, 'failed', 'and stays failed');
    // Had the second process lived after all, its late result is discarded.
    hang.resolve({ report: 'hourly' } as unknown as ReportResult);
    await first.scheduler.idle();
    t.match(await first.store.reportRun(id), { status: 'failed', result: undefined });
    t.same(first.finished, ['hourly:abandoned']);
    t.equal(signals.length, 1);
  },
);

t.test('which lost runs are queued again: only a first attempt, and only with retries allowed', async (t) => {
  const ids = ['0', '1', '2', '5'].map((n) => `00000000-0000-4000-8000-00000000010${n}`);
  const s = setup(t, { yaml: report('hourly', '  suspend: true') });
  for (const [i, id] of ids.entries()) {
    await s.store.createReportRun({ ...onDemandRun(id), createdMs: at('2026-11-20T09:00:00Z') + i });
    const attempts = Number(id.slice(-1));
    t.ok(
      await s.store.transitionReportRun(id, 'queued', {
        status: 'running',
        startedMs: at('2026-11-20T09:30:00Z'),
        attempts,
      }),
    );
  }
  s.clock.set('2026-11-20T10:00:00Z');
  // Not started again here (every slot taken), so the statuses show what the takeover did.
  const busy = setup(t, { store: s.store, yaml: report('hourly', '  suspend: true'), options: { maxConcurrent: 0 } });
  busy.clock.set('2026-11-20T10:00:00Z');
  await busy.scheduler.tick();
  const status = async (id: string) => (await s.store.reportRun(id))?.status;
  t.same(
    await Promise.all(ids.map(status)),
    ['queued', 'queued', 'failed', 'failed'],
    'attempts 0 (claimed by an older version) and 1 queued again; 2 and more failed',
  );
  t.same(busy.finished, ['hourly:abandoned', 'hourly:abandoned', 'hourly:failed', 'hourly:failed']);

  // Without retries, a first attempt lost is failed too.
  const noRetries = setup(t, { yaml: report('hourly', '  suspend: true'), options: { maxRetries: 0 } });
  const id = '00000000-0000-4000-8000-000000000110';
  await noRetries.store.createReportRun(onDemandRun(id));
  await noRetries.store.transitionReportRun(id, 'queued', {
    status: 'running',
    startedMs: at('2026-11-20T09:30:00Z'),
    attempts: 1,
  });
  await noRetries.tickAt('2026-11-20T10:00:00Z');
  t.match(await noRetries.store.reportRun(id), { status: 'failed', error: /^VERDICT_REPORT_ABANDONED/ });
});

t.test(
  'stop() does not wait for a running report: the job is aborted and its run queued again, its attempt not counted',
  async (t) => {
    const release = deferred<ReportResult>();
    const started = deferred<AbortSignal>();
    let runnerDone = false;
    const s = setup(t, {
      yaml: report('hourly', '  suspend: true'),
      runner: async (_run, _def, signal) => {
        started.resolve(signal as AbortSignal);
        const result = await release.promise; // the slow report: it ends when the test says so
        runnerDone = true;
        return result;
      },
    });
    const id = '00000000-0000-4000-8000-0000000000ae';
    await s.store.createReportRun({ ...onDemandRun(id), attempts: 2 }); // two earlier attempts failed
    s.clock.set('2026-11-20T10:00:00Z');
    await s.scheduler.tick();
    const signal = await started.promise;
    t.match(await s.store.reportRun(id), { status: 'running', attempts: 3 });

    await s.scheduler.stop(); // resolves although the report has not ended
    t.equal(runnerDone, false, 'stop() returned before the run ended');
    t.equal(signal.aborted, true, 'the job was told to stop');
    t.match(await s.store.reportRun(id), { status: 'queued', attempts: 2 }, 'queued again, the attempt not counted');
    await s.scheduler.tick();
    t.equal(s.scheduler.active, 1, 'a stopped scheduler starts nothing (the old job is still winding down)');

    // The report ends after the stop: its result is discarded, the run never recorded succeeded.
    release.resolve({ report: 'hourly' } as unknown as ReportResult);
    await s.scheduler.idle();
    t.equal(runnerDone, true);
    t.match(await s.store.reportRun(id), { status: 'queued', attempts: 2, result: undefined });
    t.same(s.finished, [], 'no outcome counted');

    // The next leader runs it again.
    const next = setup(t, { store: s.store, yaml: report('hourly', '  suspend: true') });
    await next.tickAt('2026-11-20T10:01:00Z');
    t.match(await s.store.reportRun(id), { status: 'succeeded', attempts: 3 });
    t.same(next.finished, ['hourly:succeeded']);
  },
);

t.test('a job that gives up when stopped (throws on its signal) is not counted a failure', async (t) => {
  const s = setup(t, {
    yaml: report('hourly', '  suspend: true'),
    runner: (_run, _def, signal) =>
      new Promise((_resolve, reject) => signal?.addEventListener('abort', () => reject(signal.reason))),
  });
  const id = '00000000-0000-4000-8000-0000000000af';
  await s.store.createReportRun(onDemandRun(id));
  s.clock.set('2026-11-20T10:00:00Z');
  await s.scheduler.tick();
  t.equal(s.scheduler.active, 1);
  await s.scheduler.stop();
  await s.scheduler.idle();
  t.match(await s.store.reportRun(id), { status: 'queued', attempts: 0, error: undefined });
  t.same(s.finished, []);
});

t.test('stop() does not wait for a round waiting on leadership; the round then claims nothing', async (t) => {
  const leadership = deferred<boolean>();
  const s = setup(t, { yaml: report('hourly', '  suspend: true'), leader: () => leadership.promise });
  const id = '00000000-0000-4000-8000-0000000000b0';
  await s.store.createReportRun(onDemandRun(id));
  s.clock.set('2026-11-20T10:00:00Z');
  const round = s.scheduler.tick();
  await s.scheduler.stop(); // the round is still waiting for isLeader()
  leadership.resolve(true);
  await round;
  await s.scheduler.idle();
  t.match(await s.store.reportRun(id), { status: 'queued', attempts: 0 });
  t.same(s.calls, []);
});

t.test('a run whose claim was in flight when stop() was called is put back, not started', async (t) => {
  const s = setup(t, { yaml: report('hourly', '  suspend: true') });
  const id = '00000000-0000-4000-8000-0000000000b1';
  await s.store.createReportRun(onDemandRun(id));
  const claiming = deferred<void>();
  const gate = deferred<void>();
  const transition = s.store.transitionReportRun.bind(s.store);
  s.store.transitionReportRun = async (...args: Parameters<typeof transition>) => {
    if (args[1] === 'queued') {
      claiming.resolve();
      await gate.promise;
    }
    return transition(...args);
  };
  s.clock.set('2026-11-20T10:00:00Z');
  const round = s.scheduler.tick();
  await claiming.promise;
  await s.scheduler.stop(); // returns while the claim waits
  gate.resolve();
  await round;
  await s.scheduler.idle();
  t.match(await s.store.reportRun(id), { status: 'queued', attempts: 0 }, 'claimed, then put back uncounted');
  t.same(s.calls, [], 'never started');
  t.same(s.finished, []);
});

t.test('a job whose run was taken over and claimed again records nothing: only the new attempt does', async (t) => {
  const a = deferred<ReportResult>();
  const b = deferred<ReportResult>();
  const first = setup(t, { yaml: report('hourly', '  suspend: true'), runner: () => a.promise });
  const id = '00000000-0000-4000-8000-0000000000b2';
  await first.store.createReportRun(onDemandRun(id));
  first.clock.set('2026-11-20T10:00:00Z');
  await first.scheduler.tick(); // attempt 1, in the first process
  // A second process (with SQLite every run not its own is taken over) requeues it and runs attempt 2.
  const second = setup(t, { store: first.store, yaml: report('hourly', '  suspend: true'), runner: () => b.promise });
  second.clock.set('2026-11-20T10:01:00Z');
  await second.scheduler.tick();
  t.match(await first.store.reportRun(id), { status: 'running', attempts: 2 });
  a.resolve({ report: 'hourly', from: 'first' } as unknown as ReportResult);
  await first.scheduler.idle();
  t.match(await first.store.reportRun(id), { status: 'running', attempts: 2, result: undefined }, 'discarded');
  t.same(first.finished, []);
  b.resolve({ report: 'hourly', from: 'second' } as unknown as ReportResult);
  await second.scheduler.idle();
  t.match(await first.store.reportRun(id), { status: 'succeeded', attempts: 2, result: { from: 'second' } });
  t.same(second.finished, ['hourly:abandoned', 'hourly:succeeded']);
});
