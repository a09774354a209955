import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t, { type Test } from 'tap';
import type { ChainBreak } from '../../../aggregator/evidence/chain.js';
import { checkStoredChains } from '../../../aggregator/evidence/run-evidence.js';
import { openStore } from '../../../aggregator/store/index.js';
import { packageRoot } from '../../../common/package-root.js';
import {
  archiveRun,
  postgresBackend,
  REPORT,
  seededDb,
  sqliteBackend,
  testPostgres,
  type Backend,
} from './seeded-store.js';
import type { TestPostgres } from '../../fixtures/postgres.js';

const AGGREGATOR = join(packageRoot(), 'dist', 'aggregator', 'cli.js');
const run = promisify(execFile);

/** `verdict-aggregator verify ARGS`: its exit code and output. */
async function verifyCli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [AGGREGATOR, 'verify', ...args]);
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

async function breaksOf(db: string): Promise<ChainBreak[]> {
  const store = await openStore(db);
  try {
    return (await checkStoredChains(store, {})).flatMap((c) => c.breaks);
  } finally {
    await store.close();
  }
}

type Seeded = Awaited<ReturnType<typeof seededDb>>;

/** A tampering done to the seeded rows, and the breaks verify must name for it (matched field by field). */
interface TamperCase {
  name: string;
  statements(s: Seeded): string[];
  breaks(s: Seeded): Partial<ChainBreak>[];
}

const runChain = `report ${REPORT}`;
const CASES: TamperCase[] = [
  {
    name: "editing an archived run's result (a CSV cell) breaks that run's digest",
    statements: (s) => [
      `UPDATE report_runs SET result_json = REPLACE(result_json, '"high"', '"low"') WHERE id = '${s.runs[1]}'`,
    ],
    breaks: (s) => [{ chain: runChain, kind: 'digest', seq: 2, id: `run ${s.runs[1]}` }],
  },
  {
    name: "editing a run's digest to match its new contents breaks the next run's link",
    statements: (s) => [
      `UPDATE report_runs SET interval_end_ms = interval_end_ms + 1, digest = 'f00d' WHERE id = '${s.runs[1]}'`,
    ],
    breaks: (s) => [
      { chain: runChain, kind: 'digest', seq: 2, id: `run ${s.runs[1]}`, expected: 'f00d' },
      { chain: runChain, kind: 'link', seq: 3, id: `run ${s.runs[2]}`, expected: 'f00d' },
    ],
  },
  {
    name: 'deleting an archived run leaves its place in the chain missing',
    statements: (s) => [`DELETE FROM report_runs WHERE id = '${s.runs[1]}'`],
    breaks: (s) => [{ chain: runChain, kind: 'missing', seq: 2, id: `run ${s.runs[2]}`, found: '3' }],
  },
  {
    name: 'deleting the newest archived run leaves the chain short of its head',
    statements: (s) => [`DELETE FROM report_runs WHERE id = '${s.runs[2]}'`],
    breaks: (s) => [{ chain: runChain, kind: 'truncated', seq: 3, id: `run ${s.runs[1]}` }],
  },
  {
    name: 'deleting every run of a report leaves its head with no chain',
    statements: () => [`DELETE FROM report_runs WHERE report = '${REPORT}'`],
    breaks: () => [{ chain: runChain, kind: 'truncated', seq: 3, found: null }],
  },
  {
    name: 'reordering two archived runs breaks both digests',
    statements: (s) => [
      `UPDATE report_runs SET chain_seq = 100 WHERE id = '${s.runs[0]}'`,
      `UPDATE report_runs SET chain_seq = 1 WHERE id = '${s.runs[1]}'`,
      `UPDATE report_runs SET chain_seq = 2 WHERE id = '${s.runs[0]}'`,
    ],
    breaks: (s) => [
      { chain: runChain, kind: 'link', seq: 1, id: `run ${s.runs[1]}` },
      { chain: runChain, kind: 'digest', seq: 1, id: `run ${s.runs[1]}` },
      { chain: runChain, kind: 'digest', seq: 2, id: `run ${s.runs[0]}` },
    ],
  },
  {
    name: 'a run added to the table directly is in no chain',
    statements: (s) => [
      `INSERT INTO report_runs (id, report, report_type, trigger_kind, status, attempts, interval_start_ms, interval_end_ms, not_before_ms, created_ms, inputs_json, result_json)
       SELECT '00000000-0000-4000-8000-000000000000', report, report_type, 'on-demand', status, attempts, interval_start_ms, interval_end_ms, not_before_ms, created_ms, inputs_json, result_json
       FROM report_runs WHERE id = '${s.runs[0]}'`,
    ],
    breaks: () => [{ chain: runChain, kind: 'unchained', id: 'run 00000000-0000-4000-8000-000000000000' }],
  },
  {
    name: "editing a stored scan's report (a FAIL made PASS) breaks that scan's digest",
    statements: (s) => [
      `UPDATE benchmark_runs SET report_json = REPLACE(report_json, '"FAIL"', '"PASS"') WHERE id = ${s.scans[1]}`,
    ],
    breaks: (s) => [{ chain: 'scans', kind: 'digest', seq: 2, id: `scan ${s.scans[1]} (node n1)` }],
  },
  {
    name: "editing a scan's summary column breaks that scan's digest",
    statements: (s) => [`UPDATE benchmark_runs SET pass = pass + 1 WHERE id = ${s.scans[0]}`],
    breaks: (s) => [{ chain: 'scans', kind: 'digest', seq: 1, id: `scan ${s.scans[0]} (node n1)` }],
  },
  {
    name: 'deleting a stored scan leaves its place in the scan chain missing',
    statements: (s) => [
      `DELETE FROM check_results WHERE run_id = ${s.scans[1]}`,
      `DELETE FROM benchmark_runs WHERE id = ${s.scans[1]}`,
    ],
    breaks: (s) => [{ chain: 'scans', kind: 'missing', seq: 2, id: `scan ${s.scans[2]} (node n1)` }],
  },
  {
    name: 'deleting the latest scan is seen by the runs sealed after it',
    statements: (s) => [
      `UPDATE nodes SET latest_run_id = NULL`,
      `DELETE FROM check_results WHERE run_id = ${s.scans[2]}`,
      `DELETE FROM benchmark_runs WHERE id = ${s.scans[2]}`,
    ],
    breaks: (s) => [
      { chain: 'scans', kind: 'truncated', seq: 3, id: `scan ${s.scans[1]} (node n1)` },
      { chain: runChain, kind: 'scan-anchor', seq: 1, id: `run ${s.runs[0]}`, found: null },
      { chain: runChain, kind: 'scan-anchor', seq: 3, id: `run ${s.runs[2]}`, found: null },
    ],
  },
  {
    name: 'reordering two stored scans breaks both digests',
    statements: (s) => [
      `UPDATE benchmark_runs SET chain_seq = 100 WHERE id = ${s.scans[1]}`,
      `UPDATE benchmark_runs SET chain_seq = 2 WHERE id = ${s.scans[2]}`,
      `UPDATE benchmark_runs SET chain_seq = 3 WHERE id = ${s.scans[1]}`,
    ],
    breaks: (s) => [
      { chain: 'scans', kind: 'digest', seq: 2, id: `scan ${s.scans[2]} (node n1)` },
      { chain: 'scans', kind: 'digest', seq: 3, id: `scan ${s.scans[1]} (node n1)` },
    ],
  },
];

function evidence(t: Test, backend: Backend): void {
  t.test('an untouched store verifies: every run and scan is chained, and the CLI exits 0', async (t) => {
    const s = await seededDb(t, backend);
    t.same(await breaksOf(s.db), []);
    const store = await openStore(s.db);
    const checks = await checkStoredChains(store, {});
    await store.close();
    t.same(
      checks.map((c) => [c.chain, c.links, c.tip?.seq]),
      [
        [runChain, 3, 3],
        ['scans', 3, 3],
      ],
    );
    const cli = await verifyCli(['--db', s.db]);
    t.equal(cli.code, 0, cli.stderr);
    t.match(cli.stdout, new RegExp(`report ${REPORT}\\s+3\\s+#3 [0-9a-f]{64}\\s+intact`));
  });

  for (const c of CASES)
    t.test(`${c.name}, and verify names it`, async (t) => {
      const s = await seededDb(t, backend);
      await backend.tamper(s.db, c.statements(s));
      const breaks = await breaksOf(s.db);
      for (const want of c.breaks(s))
        t.ok(
          breaks.some((b) => Object.entries(want).every(([k, v]) => b[k as keyof ChainBreak] === v)),
          `a break ${JSON.stringify(want)} among ${JSON.stringify(breaks.map((b) => [b.kind, b.seq, b.id]))}`,
        );
    });

  t.test('the CLI says which run broke, with the digests, and exits 1; --json says the same', async (t) => {
    const s = await seededDb(t, backend);
    await backend.tamper(s.db, CASES[0]!.statements(s));
    const text = await verifyCli(['--db', s.db, '--report', REPORT]);
    t.equal(text.code, 1, text.stderr);
    t.match(text.stdout, `run ${s.runs[1]}`);
    t.match(text.stdout, /BROKEN \(1\)/);
    t.match(text.stdout, /expected [0-9a-f]{64}\n {2}found {4}[0-9a-f]{64}/);
    const json = await verifyCli(['--db', s.db, '--run', s.runs[1] as string, '--json']);
    t.equal(json.code, 1);
    const out = JSON.parse(json.stdout) as { ok: boolean; chains: { breaks: ChainBreak[] }[] };
    t.equal(out.ok, false);
    t.same(
      out.chains.flatMap((c) => c.breaks).map((b) => [b.kind, b.seq, b.id]),
      [['digest', 2, `run ${s.runs[1]}`]],
    );
    const other = await verifyCli(['--db', s.db, '--run', s.runs[0] as string]);
    t.equal(other.code, 0, 'another run of the same chain, untouched, verifies alone');
    const absent = await verifyCli(['--db', s.db, '--run', '00000000-0000-4000-8000-000000000000']);
    t.equal(absent.code, 1, 'a run that is not in the store is a break, not a pass');
    t.match(absent.stdout, /no run 00000000-0000-4000-8000-000000000000 is in the store/);
  });

  t.test(
    'following the scan links only (the HTTP route) finds deletions; rehashing (the CLI) also finds edits',
    async (t) => {
      const s = await seededDb(t, backend);
      await backend.tamper(s.db, [
        `UPDATE benchmark_runs SET report_json = REPLACE(report_json, '"FAIL"', '"PASS"') WHERE id = ${s.scans[1]}`,
        `DELETE FROM check_results WHERE run_id = ${s.scans[0]}`,
        `DELETE FROM benchmark_runs WHERE id = ${s.scans[0]}`,
      ]);
      const store = await openStore(s.db);
      const scanBreaks = async (scanLinksOnly: boolean) =>
        (await checkStoredChains(store, { report: REPORT, scanLinksOnly }))
          .filter((c) => c.chain === 'scans')
          .flatMap((c) => c.breaks.map((b) => [b.kind, b.seq]));
      t.same(await scanBreaks(true), [['missing', 1]]);
      t.same(await scanBreaks(false), [
        ['missing', 1],
        ['digest', 2],
      ]);
      await store.close();
    },
  );

  t.test('runs archived after one is tampered with still chain on, and the break stays', async (t) => {
    const s = await seededDb(t, backend);
    await backend.tamper(s.db, CASES[0]!.statements(s));
    const store = await openStore(s.db);
    await archiveRun(store, 4);
    const [check] = await checkStoredChains(store, { report: REPORT });
    await store.close();
    t.equal(check?.links, 4);
    t.same(
      check?.breaks.map((b) => [b.kind, b.seq]),
      [['digest', 2]],
    );
  });
}

t.test('SQLite', async (t) => evidence(t, sqliteBackend));

let server: TestPostgres | undefined;
t.test('PostgreSQL', async (t) => {
  server = await testPostgres(t);
  evidence(
    t,
    postgresBackend(() => server as TestPostgres),
  );
});

t.test('bad arguments exit 2 with one line', async (t) => {
  for (const args of [
    [],
    ['--db', 'sqlite:/nonexistent/verdict.db'],
    ['--file', 'x.csv'],
    ['--bogus'],
    ['--db', 'sqlite:x', '--public-key', 'k.pem'],
  ]) {
    const r = await verifyCli(args);
    t.equal(r.code, 2, `verify ${args.join(' ')}`);
    t.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    t.match(r.stderr, /^verdict-aggregator: VERDICT_(USAGE|CONFIG_INVALID): /);
  }
});
