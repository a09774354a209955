import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { constants, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { packageRoot } from '../common/package-root.js';
import { failed, timedOut, type Figure } from './table.js';

/** What one run of the suite measures, from its flags. */
export interface BenchOptions {
  /** Smaller sizes for development and the smoke test. */
  quick: boolean;
  /** The benchmarks to run (undefined: all). */
  only?: string[];
  /** Flow-bucket row counts for network-access. */
  rows: number[];
  /** Simulated agents for the scale bench. */
  agents: number;
  /** The stores to run store-bound benches on. */
  dbs: ('sqlite' | 'postgres')[];
  /** Where results.json goes. */
  out: string;
}

export const BENCHES = [
  'cis',
  'rescan',
  'flow-batch',
  'audit-webhook',
  'scan',
  'ingest',
  'agent',
  'scale',
  'network-access',
] as const;

function sizeList(v: string): number[] {
  return v.split(',').map((s) => {
    const m = /^(\d+(?:\.\d+)?)([kKmM]?)$/.exec(s.trim());
    if (!m) throw new Error(`bench: "${s}" is not a size like 100k or 10M`);
    const mult = m[2] === '' ? 1 : m[2]?.toLowerCase() === 'k' ? 1e3 : 1e6;
    return Math.round(Number(m[1]) * mult);
  });
}

export const BENCH_USAGE = `Usage: npm run bench -- [--quick] [--only a,b] [--rows 1M,10M] [--agents N] [--db sqlite,postgres] [--out FILE]
  --quick        small sizes (100k rows, 500 agents, short windows): minutes, for development and smoke tests
  --only LIST    run only these: ${BENCHES.join(', ')}
  --rows LIST    flow-bucket rows for network-access (default 1M; --quick 100k; 10M adds ~10 min on 2 cores)
  --agents N     simulated agents for scale (default 5000; --quick 500)
  --db LIST      stores for ingest, scale and network-access (default sqlite,postgres)
  --out FILE     where the figures go as JSON (default bench/results.json; with --quick or --only,
                 $TMPDIR/verdict-bench-results.json, so a part does not replace the full run's)`;

export function parseBenchArgs(argv: string[]): BenchOptions {
  const get = (flag: string): string | undefined => {
    const i = argv.indexOf(flag);
    if (i < 0) return undefined;
    const v = argv[i + 1];
    if (v === undefined || v.startsWith('--')) throw new Error(`bench: ${flag} needs a value\n${BENCH_USAGE}`);
    return v;
  };
  const known = new Set(['--quick', '--only', '--rows', '--agents', '--db', '--out', '--help']);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (!a.startsWith('--')) continue;
    if (!known.has(a)) throw new Error(`bench: unknown flag ${a}\n${BENCH_USAGE}`);
  }
  const quick = argv.includes('--quick');
  const only = get('--only')
    ?.split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const o of only ?? [])
    if (!(BENCHES as readonly string[]).includes(o))
      throw new Error(`bench: --only ${o}: no such benchmark (${BENCHES.join(', ')})`);
  const dbs = (get('--db') ?? 'sqlite,postgres').split(',').map((s) => s.trim());
  for (const d of dbs) if (d !== 'sqlite' && d !== 'postgres') throw new Error(`bench: --db ${d}: sqlite or postgres`);
  return {
    quick,
    only,
    rows: sizeList(get('--rows') ?? (quick ? '100k' : '1M')),
    agents: Number(get('--agents') ?? (quick ? 500 : 5000)),
    dbs: dbs as ('sqlite' | 'postgres')[],
    // A part of the suite (--quick, --only) does not replace the full run's bench/results.json, which README shows.
    out:
      get('--out') ??
      (quick || only ? join(tmpdir(), 'verdict-bench-results.json') : join(packageRoot(), 'bench', 'results.json')),
  };
}

/** Where a bench puts its figures as it measures them, so a bench cut off by its bound keeps what it had. */
export interface Sink {
  add(f: Figure): void;
  figures: Figure[];
}

export function sink(): Sink {
  const figures: Figure[] = [];
  return { figures, add: (f) => void figures.push(f) };
}

/** Thrown (and caught by `bounded`) when a bound runs out. */
export class BoundExceeded extends Error {}

/**
 * Run `fn` for at most `ms`: its result, or `undefined` once the bound has
 * passed (`fn` gets an AbortSignal to stop its children; work it leaves behind
 * is its own to stop).
 */
export async function bounded<T>(
  ms: number,
  fn: (signal: AbortSignal) => Promise<T>,
): Promise<{ ok: true; value: T } | { ok: false; error?: unknown }> {
  const ac = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<{ ok: false }>((resolve) => {
    timer = setTimeout(() => {
      ac.abort(new BoundExceeded(`bound of ${ms} ms exceeded`));
      resolve({ ok: false });
    }, ms);
  });
  try {
    return await Promise.race([fn(ac.signal).then((value) => ({ ok: true as const, value })), expired]);
  } catch (error) {
    if (ac.signal.aborted) return { ok: false };
    return { ok: false, error };
  } finally {
    clearTimeout(timer);
  }
}

/** Run one figure's measurement under a bound: its figures, a "> bound" row, or an error row. */
export async function measureFigure(
  bench: string,
  name: string,
  boundMs: number,
  unit: string,
  fn: (signal: AbortSignal) => Promise<Figure[]>,
): Promise<Figure[]> {
  const r = await bounded(boundMs, fn);
  if (r.ok) return r.value;
  if (r.error === undefined) return [timedOut(bench, name, boundMs, unit)];
  return [failed(bench, name, r.error instanceof Error ? r.error.message : String(r.error), unit)];
}

const TICKS_PER_SECOND = 100; // getconf CLK_TCK on Linux

/** A process's user+system CPU seconds so far, from /proc/<pid>/stat. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // After the name: state is field 3, utime 14 and stime 15 (1-based over the whole line).
  return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
}

/** VmRSS and VmHWM (its high-water mark) of a process, in MiB, from /proc/<pid>/status. */
export function memoryMiB(pid: number): { rss: number; hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rss: kib('VmRSS') / 1024, hwm: kib('VmHWM') / 1024 };
}

/** Polls a process's RSS every `everyMs`, keeping the highest (for processes that may die before VmHWM is read). */
export function rssWatch(pid: number, everyMs = 100): { peak(): number; stop(): number } {
  let peak = 0;
  const read = () => {
    try {
      peak = Math.max(peak, memoryMiB(pid).hwm);
    } catch {
      // gone
    }
  };
  read();
  const timer = setInterval(read, everyMs);
  return {
    peak: () => (read(), peak),
    stop: () => (read(), clearInterval(timer), peak),
  };
}

export function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] as number;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Processes the bench started and has not seen exit: killed when the bench exits, so none outlives it. */
const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});
// A bench stopped by a signal (`kill`, a CI timeout, Ctrl-C) does not reach 'exit' by itself: its aggregators and
// agents outlived it, each holding a core's share and a temporary database.
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const)
  process.once(signal, () => {
    console.error(`bench: ${signal}; stopping ${live.size} child process(es)`);
    process.exit(128 + (constants.signals[signal] as number));
  });

/** Kill `child` too should the bench exit before it. */
export function track(child: ChildProcess): void {
  live.add(child);
  child.once('exit', () => live.delete(child));
}

/** A built aggregator (`node dist/aggregator/cli.js`) running as its own process. */
export interface AggregatorChild {
  pid: number;
  httpPort: number;
  grpcPort: number;
  child: ChildProcess;
  readonly exited: boolean;
  /** Why it exited, with the end of its stderr. */
  exitReason(): string;
  stop(): Promise<void>;
}

/**
 * Start an aggregator process on ephemeral loopback ports with `args` (--db
 * and what the bench needs) and wait for its start-up line. `nodeArgs` go to
 * node (--cpu-prof, --max-old-space-size).
 */
export async function startAggregatorChild(
  args: string[],
  opts: { nodeArgs?: string[]; signal?: AbortSignal; cwd?: string } = {},
): Promise<AggregatorChild> {
  const child = spawn(
    process.execPath,
    [
      ...(opts.nodeArgs ?? []),
      join(packageRoot(), 'dist', 'aggregator', 'cli.js'),
      '--http',
      '127.0.0.1:0',
      '--grpc',
      '127.0.0.1:0',
      '--log-level',
      'info',
      ...args,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], cwd: opts.cwd },
  );
  live.add(child);
  let exited = false;
  let code: string | undefined;
  const gone = new Promise<void>((resolve) =>
    child.once('exit', (c, s) => ((exited = true), (code = String(c ?? s)), live.delete(child), resolve())),
  );
  let stderr = '';
  child.stderr?.on('data', (b: Buffer) => (stderr = (stderr + b.toString()).slice(-2000)));
  const stop = async () => {
    if (!exited) child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), process.env.BENCH_CPU_PROF ? 30_000 : 5000);
    await gone;
    clearTimeout(timer);
  };
  opts.signal?.addEventListener('abort', () => void stop());
  const ports = await new Promise<{ http: number; grpc: number }>((resolve, reject) => {
    createInterface({ input: child.stdout }).on('line', (line) => {
      if (!line.includes('verdict-aggregator started')) return;
      try {
        const rec = JSON.parse(line) as { http: string; grpc: string };
        resolve({ http: portOf(rec.http), grpc: portOf(rec.grpc) });
      } catch (err) {
        reject(err as Error);
      }
    });
    void gone.then(() => reject(new Error(`aggregator exited (${code}) before it started: ${stderr}`)));
  });
  return {
    pid: child.pid as number,
    httpPort: ports.http,
    grpcPort: ports.grpc,
    child,
    get exited() {
      return exited;
    },
    exitReason: () => `aggregator exited (${code}): ${stderr.trim().split('\n').slice(-3).join(' ')}`,
    stop,
  };
}

function portOf(address: unknown): number {
  return Number(String(address).split(':').pop());
}

/** GET `url` and time it (ms, to the last body byte); throws on a status other than 200. */
export async function timedGet(url: string, signal?: AbortSignal): Promise<{ ms: number; body: string }> {
  const t0 = performance.now();
  const res = await fetch(url, { signal });
  const body = await res.text();
  const ms = performance.now() - t0;
  if (res.status !== 200) throw new Error(`GET ${url}: ${res.status} ${body.slice(0, 200)}`);
  return { ms, body };
}
