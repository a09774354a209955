import { execFile, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { parseBenchArgs } from '../../bench/harness.js';
import { failed, figure, formatTable, markdownTable, tally, timedOut, type Figure } from '../../bench/table.js';
import { packageRoot } from '../../common/package-root.js';
import { tempDir } from '../fixtures/tmp.js';

const execFileAsync = promisify(execFile);

const fixed: Figure[] = [
  figure({
    bench: 'ingest',
    name: 'flows per aggregator CPU-second vs decode',
    value: 150_000,
    unit: 'flows/CPU-s',
    baseline: { name: 'decode', value: 400_000, unit: 'flows/CPU-s' },
    ratio: 0.375,
    goal: { on: 'ratio', op: '>=', target: 0.25 },
  }),
  figure({
    bench: 'scale',
    name: 'GET /metrics p99',
    value: 250,
    unit: 'ms',
    goal: { on: 'value', op: '<=', target: 200 },
  }),
  timedOut('network-access', 'GET /api/v1/network-access, 10M rows', 120_000, 's'),
  failed('network-access', 'report run, 10M rows', 'aggregator exited (SIGABRT): JavaScript heap out of memory'),
  figure({ bench: 'scan', name: 'informative', value: 0.5, unit: 's' }),
];

t.test('the table: goal met, goal missed, timed out ("> bound"), failed, no goal', async (t) => {
  t.same(
    fixed.map((f) => f.status),
    ['met', 'missed', 'timeout', 'error', 'info'],
  );
  const text = formatTable(fixed);
  const lines = text.split('\n');
  t.equal(lines.length, 6, 'a header and one row per figure');
  t.match(lines[0], /^BENCH\s+FIGURE\s+VALUE\s+BASELINE\s+RATIO\s+GOAL\s+STATUS\s+NOTE$/);
  t.match(lines[1], /150,000 flows\/CPU-s\s+400,000 flows\/CPU-s \(decode\)\s+0\.38x\s+ratio ≥ 0\.25\s+met/);
  t.match(lines[2], /250 ms\s+≤ 200 ms\s+MISSED/);
  t.match(lines[3], /> 120 s\s+TIMEOUT/);
  t.match(lines[4], /error\s+ERROR\s+aggregator exited \(SIGABRT\): JavaScript heap out of memory/);
  t.match(lines[5], /0\.50 s\s*$/, 'no goal: no status');
  // Columns line up: every row's value column starts where the header's does.
  const at = lines[0]!.indexOf('VALUE');
  for (const l of lines.slice(1)) t.not(l[at - 1], undefined);
  const md = markdownTable(fixed).split('\n');
  t.equal(md.length, 7);
  t.match(md[4], /^\| network-access \| GET \/api\/v1\/network-access, 10M rows \| > 120 s \|/);
  t.same(tally(fixed), { met: 1, missed: 1, timeout: 1, error: 1, info: 1 });
});

t.test('flags: --quick sizes, --only checked, sizes like 10M', async (t) => {
  const q = parseBenchArgs(['--quick', '--only', 'ingest,scale']);
  t.same(
    [q.quick, q.only, q.rows, q.agents, q.dbs],
    [true, ['ingest', 'scale'], [100_000], 500, ['sqlite', 'postgres']],
  );
  const full = parseBenchArgs(['--rows', '1M,2.5M', '--db', 'sqlite']);
  t.same([full.rows, full.agents, full.dbs], [[1_000_000, 2_500_000], 5000, ['sqlite']]);
  t.equal(full.out, join(packageRoot(), 'bench', 'results.json'), 'a full run writes the table README shows');
  t.not(q.out, full.out, 'a part of the suite does not replace it');
  t.equal(parseBenchArgs(['--only', 'agent', '--out', '/x.json']).out, '/x.json');
  t.throws(() => parseBenchArgs(['--only', 'nope']), /no such benchmark/);
  t.throws(() => parseBenchArgs(['--fast']), /unknown flag/);
});

t.test('a real `npm run bench -- --quick --only scan`: the table has its row, results.json its figure', async (t) => {
  const out = join(tempDir(t), 'results.json');
  const r = await execFileAsync(
    process.execPath,
    [join(packageRoot(), 'dist', 'bench', 'index.js'), '--quick', '--only', 'scan', '--out', out],
    { timeout: 50_000 },
  );
  t.match(r.stdout, /^BENCH\s+FIGURE/m);
  t.match(
    r.stdout,
    /^scan\s+verdict-agent scan, full worker \(median of 5\)\s+[\d,.]+ ms\s+[\d,.]+ ms \(node -e 0\)\s+[\d.]+x\s+ratio ≤ 3\.00\s+(met|MISSED)/m,
  );
  const results = JSON.parse(readFileSync(out, 'utf8')) as { figures: Figure[]; durationMs: number };
  t.equal(results.figures.length, 1);
  t.equal(results.figures[0]?.bench, 'scan');
  t.ok((results.figures[0]?.ratio ?? 0) > 0);
});

/** The pids whose parent is `ppid`, from /proc. */
function childrenOf(ppid: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      // "pid (comm) state ppid ...": comm may hold spaces, so read after its last ')'.
      const [, ppidText] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(ppidText) === ppid) out.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** Whether `pid` still runs (a zombie nobody reaped yet does not). */
function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

t.test('a bench stopped by SIGTERM takes its aggregator and agent with it', async (t) => {
  const out = join(tempDir(t), 'results.json');
  const bench = spawn(
    process.execPath,
    [join(packageRoot(), 'dist', 'bench', 'index.js'), '--quick', '--only', 'agent', '--out', out],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  t.teardown(() => bench.kill('SIGKILL'));
  let stderr = '';
  bench.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => bench.once('exit', (code) => resolve(code)));
  let children: number[] = [];
  for (let i = 0; i < 300 && children.length < 2; i++) {
    await new Promise((r) => setTimeout(r, 100));
    children = childrenOf(bench.pid as number);
  }
  t.equal(children.length, 2, 'an aggregator and an agent running under the bench');
  bench.kill('SIGTERM');
  t.equal(await exited, 128 + 15, 'the bench exits as a SIGTERM asks');
  for (let i = 0; i < 50 && children.some(running); i++) await new Promise((r) => setTimeout(r, 100));
  t.same(children.filter(running), [], 'neither outlives it');
  t.match(stderr, /bench: SIGTERM; stopping 2 child process\(es\)/);
});
