import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import type { Test } from 'tap';
import { openStore, type ReportRunRecord, type Store } from '../../../aggregator/store/index.js';
import { testPostgres, type TestPostgres } from '../../fixtures/postgres.js';
import { reportOf } from '../../fixtures/reports.js';
import { tempDir } from '../../fixtures/tmp.js';

/** A store kind the evidence tests run on, with a way to change its rows behind the aggregator's back. */
export interface Backend {
  dialect: 'sqlite' | 'postgres';
  freshDb(t: Test): Promise<string>;
  /** Run statements on `db` directly, as someone with the database's password would. */
  tamper(db: string, statements: string[]): Promise<void>;
}

export const sqliteBackend: Backend = {
  dialect: 'sqlite',
  freshDb: async (t) => `sqlite:${join(tempDir(t), 'verdict.db')}`,
  async tamper(db, statements) {
    const conn = new Database(db.slice('sqlite:'.length));
    try {
      for (const s of statements) conn.exec(s);
    } finally {
      conn.close();
    }
  },
};

export function postgresBackend(pgServer: () => TestPostgres): Backend {
  return {
    dialect: 'postgres',
    freshDb: () => pgServer().freshSchema(),
    async tamper(db, statements) {
      const c = new pg.Client({ connectionString: db });
      await c.connect();
      try {
        for (const s of statements) await c.query(s);
      } finally {
        await c.end();
      }
    },
  };
}

export { testPostgres };

export const REPORT = 'weekly-cis';
const DAY_MS = 86_400_000;
const T0 = Date.parse('2026-11-02T00:00:00Z');

/** A succeeded run's result: what the runner archives, with one CSV file. */
export const resultOf = (i: number) => ({
  report: REPORT,
  reportType: 'cis-benchmark',
  startTime: new Date(T0 + (i - 1) * DAY_MS).toISOString(),
  endTime: new Date(T0 + i * DAY_MS).toISOString(),
  generatedAt: new Date(T0 + i * DAY_MS + 1000).toISOString(),
  summary: { highNodeCount: i },
  data: { nodes: [`node-${i}`] },
  files: {
    'node-summary.csv': { header: ['node', 'status', 'testsPassing'], rows: [[`node-${i}`, 'high', 10 + i]] },
  },
  evidence: { soc2: [], pciDss: [] },
});

/** A run archived the way the scheduler archives one: created, claimed, then succeeded with its result. */
export async function archiveRun(store: Store, i: number, report = REPORT): Promise<string> {
  const run: ReportRunRecord = {
    id: randomUUID(),
    report,
    reportType: 'cis-benchmark',
    trigger: 'scheduled',
    status: 'queued',
    attempts: 0,
    intervalStartMs: T0 + (i - 1) * DAY_MS,
    intervalEndMs: T0 + i * DAY_MS,
    notBeforeMs: T0 + i * DAY_MS,
    createdMs: T0 + i * DAY_MS,
    inputs: { name: report, spec: { reportType: 'cis-benchmark', schedule: '0 0 * * *' } },
  };
  await store.createReportRun(run);
  await store.transitionReportRun(run.id, 'queued', { status: 'running', attempts: 1, startedMs: T0 + i * DAY_MS + 5 });
  await store.transitionReportRun(
    run.id,
    'running',
    { status: 'succeeded', finishedMs: T0 + i * DAY_MS + 9, result: resultOf(i) },
    { attempts: 1 },
  );
  return run.id;
}

/** A store with three scans of node n1 and then three archived runs of REPORT; closed again. */
export async function seededDb(t: Test, backend: Backend): Promise<{ db: string; runs: string[]; scans: number[] }> {
  const db = await backend.freshDb(t);
  const store = await openStore(db);
  try {
    await store.recordHello(
      {
        name: 'n1',
        role: 'worker',
        labels: {},
        kubeletVersion: 'v1.32.1',
        kubernetesVersion: 'v1.32.1',
        osImage: 'Debian GNU/Linux 12',
        kernelVersion: '6.1.0',
        architecture: 'x64',
        agentVersion: '0.1.0',
        bootId: 'b1',
      },
      T0,
    );
    for (let i = 1; i <= 3; i++)
      await store.recordBenchmarkRun(
        'n1',
        'b1',
        i,
        reportOf(
          'n1',
          { '4.1.1': 'PASS', '4.1.2': i === 2 ? 'FAIL' : 'PASS' },
          { startedAt: new Date(T0 + i * 1000).toISOString() },
        ),
        T0 + i * 1000,
      );
    const runs = [];
    for (let i = 1; i <= 3; i++) runs.push(await archiveRun(store, i));
    const scans = (await store.storedScans()).map((s) => s.id);
    return { db, runs, scans };
  } finally {
    await store.close();
  }
}
