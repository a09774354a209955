import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { dirname } from 'node:path';
import { packageRoot } from '../common/package-root.js';
import { agentPhaseSeconds, runAgentBench } from './agent.js';
import { runAuditWebhookBench } from './audit-webhook.js';
import { runCisBench } from './cis.js';
import { runFlowBatchBench } from './flow-batch.js';
import { BENCH_USAGE, bounded, parseBenchArgs, sink, type BenchOptions, type Sink } from './harness.js';
import { runIngestBench } from './ingest.js';
import { runNetworkAccessBench } from './network-access.js';
import { stopPostgres } from './postgres.js';
import { runRescanBench } from './rescan.js';
import { runScaleBench } from './scale.js';
import { runScanBench } from './scan.js';
import { failed, formatTable, markdownTable, tally, timedOut, type Figure } from './table.js';

/**
 * `npm run bench`: every benchmark, each with its baseline measured in the same
 * run, in one table of figures, ratios and goals (printed, and written to
 * bench/results.json). Each bench runs under a time bound: past it, its
 * remaining figures are "> bound" and the suite goes on.
 */
interface Bench {
  name: string;
  /** Its bound in ms, by the options (sizes). */
  boundMs(o: BenchOptions): number;
  run(o: BenchOptions, out: Sink, signal: AbortSignal): Promise<void>;
}

const BENCH_LIST: Bench[] = [
  { name: 'cis', boundMs: () => 120_000, run: async (o, out) => void runCisBench(out, o.quick ? 30 : 200) },
  { name: 'rescan', boundMs: () => 60_000, run: (o, out) => runRescanBench(o.quick ? 3 : 5, out) },
  {
    name: 'flow-batch',
    boundMs: () => 60_000,
    run: async (o, out) => void (await runFlowBatchBench(o.quick ? 30_000 : 90_000, out)),
  },
  {
    name: 'audit-webhook',
    boundMs: () => 90_000,
    run: (o, out) => runAuditWebhookBench(out, o.quick ? 20_000 : 90_000),
  },
  { name: 'scan', boundMs: () => 120_000, run: (o, out) => runScanBench(o, out) },
  { name: 'ingest', boundMs: (o) => (o.quick ? 120_000 : 240_000), run: runIngestBench },
  // Three phases (idle, 1k, 5k lines/s) and the start and stop around them.
  { name: 'agent', boundMs: (o) => 90_000 + 3_000 * agentPhaseSeconds(o), run: runAgentBench },
  { name: 'scale', boundMs: (o) => (o.quick ? 120_000 : 360_000), run: runScaleBench },
  {
    name: 'network-access',
    boundMs: (o) => 60_000 + o.rows.reduce((a, r) => a + r, 0) * 0.15,
    run: runNetworkAccessBench,
  },
];

export async function runSuite(o: BenchOptions, log: (s: string) => void = console.error): Promise<Figure[]> {
  const figures: Figure[] = [];
  for (const b of BENCH_LIST) {
    if (o.only && !o.only.includes(b.name)) continue;
    const out = sink();
    const bound = Math.round(b.boundMs(o));
    const t0 = Date.now();
    log(`bench: ${b.name} (bound ${Math.round(bound / 1000)} s)...`);
    const r = await bounded(bound, (signal) => b.run(o, out, signal));
    figures.push(...out.figures);
    if (!r.ok)
      figures.push(
        r.error === undefined
          ? timedOut(b.name, out.figures.length ? 'the rest of the bench' : 'the whole bench', bound, 's')
          : failed(b.name, 'bench', r.error instanceof Error ? (r.error.stack ?? r.error.message) : String(r.error)),
      );
    log(`bench: ${b.name} done in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  }
  return figures;
}

/** The commit measured, and the files changed on top of it (figures of a dirty tree are that tree's). */
function checkoutState(): { commit: string; changedFiles: string[] } | undefined {
  const git = (args: string[]) => spawnSync('git', args, { cwd: packageRoot(), encoding: 'utf8' });
  const head = git(['rev-parse', 'HEAD']);
  if (head.status !== 0) return undefined;
  const status = git(['status', '--porcelain', '--untracked-files=no']);
  return {
    commit: head.stdout.trim(),
    changedFiles: status.stdout
      .split('\n')
      .map((l) => l.slice(3))
      .filter(Boolean),
  };
}

async function main(): Promise<void> {
  let o: BenchOptions;
  try {
    if (process.argv.includes('--help')) {
      console.log(BENCH_USAGE);
      return;
    }
    o = parseBenchArgs(process.argv.slice(2));
  } catch (err) {
    console.error((err as Error).message);
    process.exitCode = 2;
    return;
  }
  const started = new Date();
  let figures: Figure[] = [];
  try {
    figures = await runSuite(o);
  } finally {
    await stopPostgres().catch(() => undefined);
  }
  const durationMs = Date.now() - started.getTime();
  const t = tally(figures);
  console.log(formatTable(figures));
  console.log(
    `\n${figures.length} figures in ${(durationMs / 1000).toFixed(0)} s: ${t.met} met, ${t.missed} missed, ${t.timeout} timed out, ${t.error} failed, ${t.info} without a goal`,
  );
  mkdirSync(dirname(o.out), { recursive: true });
  writeFileSync(
    o.out,
    JSON.stringify(
      {
        startedAt: started.toISOString(),
        durationMs,
        options: o,
        machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model, memoryMiB: Math.round(totalmem() / 2 ** 20) },
        node: process.version,
        checkout: checkoutState(),
        tally: t,
        figures,
        markdown: markdownTable(figures),
      },
      null,
      2,
    ) + '\n',
  );
  console.log(`figures written to ${o.out}`);
  // Leftovers of a bench cut off by its bound (sockets, timers) must not keep the suite alive.
  process.exit(t.timeout + t.error > 0 ? 1 : 0);
}

if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) await main();
