import { spawn } from 'node:child_process';
import { appendFileSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { packageRoot } from '../common/package-root.js';
import { NodeRootBuilder } from '../examples/node-root.js';
import { buildWeakWorker } from '../examples/nodes.js';
import { cpuSeconds, memoryMiB, sleep, startAggregatorChild, track, type BenchOptions, type Sink } from './harness.js';
import { profileArgs } from './ingest.js';
import { InternalNetworks } from '../agent/flows/normalize.js';
import { parseCalicoBytes } from '../agent/flows/sources/calico-common.js';
import { FlowWindow } from '../agent/flows/window.js';
import { flowRecordProblem } from '../common/flow.js';
import { figure, type Figure } from './table.js';

/**
 * bench/agent: a real `verdict-agent run` process (the DaemonSet's settings: its NODE_OPTIONS, MALLOC_ARENA_MAX and
 * a --spool directory; a weak worker's host root, connected to a real aggregator process) following a
 * Calico flow log that this process appends to at 1,000 and then 5,000 lines
 * a second. Figures: the agent's CPU over each window as a share of one core
 * (utime+stime from /proc/<pid>/stat) and its RSS high-water mark (VmHWM from
 * /proc/<pid>/status). Goals: at most 2% of a core at 1k lines/s, 5% at 5k,
 * RSS at most 80 MiB. The lines are the sample log's, with current times and
 * 500 destination ports (so windows hold many keys). Baselines, same process and
 * run: the agent idle (following the empty log) for as long, and its RSS then;
 * and, in this process, the agent's own work per line against JSON.parse of the
 * same lines (a ratio the machine's load moves less than the CPU shares).
 */
/**
 * Each rate's phase, seconds (BENCH_AGENT_SECONDS to change it). 60 s: a phase includes the agent's warm-up at that
 * rate (V8 compiling the hot code on its own threads, ~1% of a core for the first 10-20 s at 1,000 lines/s), which a
 * 20 s phase weighed as a third of the figure, and a 1% figure over 60 s is 60 clock ticks, not 20.
 */
export function agentPhaseSeconds(o: BenchOptions): number {
  return Number(process.env.BENCH_AGENT_SECONDS) || (o.quick ? 6 : 60);
}

export async function runAgentBench(o: BenchOptions, out: Sink, signal: AbortSignal): Promise<void> {
  const seconds = agentPhaseSeconds(o);
  // The idle baseline needs less: nothing warms up.
  const idleSeconds = Math.min(seconds, 30);
  const spooled = process.env.BENCH_AGENT_SPOOL !== '0';
  const how = spooled ? 'with --spool as deployed' : 'no spool';
  const dir = mkdtempSync(join(tmpdir(), 'verdict-bench-agent-'));
  const agg = await startAggregatorChild(['--db', `sqlite:${join(dir, 'v.db')}`], { signal });
  const b = new NodeRootBuilder(join(dir, 'node'));
  buildWeakWorker(b);
  const log = join(dir, 'flows.log');
  writeFileSync(log, '');
  const agent = spawn(
    // The agent on another node than the bench and the aggregator (BENCH_AGENT_NODE, e.g. the image's Node 24: the
    // aggregator's native modules are built for the node that runs the bench).
    process.env.BENCH_AGENT_NODE || process.execPath,
    [
      // The node flags the DaemonSet gives the agent (its NODE_OPTIONS), or others to try (BENCH_AGENT_NODE_FLAGS, e.g.
      // "--max-semi-space-size=1"; empty for none), for the agent only.
      ...(process.env.BENCH_AGENT_NODE_FLAGS ?? daemonSetNodeOptions()).split(' ').filter(Boolean),
      ...profileArgs('agent', 'follow'),
      join(packageRoot(), 'dist', 'agent', 'cli.js'),
      'run',
      '--aggregator',
      `127.0.0.1:${agg.grpcPort}`,
      '--host-root',
      b.root,
      '--node-name',
      'bench-agent',
      '--flows',
      `calico:${log}`,
      '--log-level',
      'warn',
      // With a spool, as the DaemonSet runs it (each window is also written to disk before it is sent);
      // BENCH_AGENT_SPOOL=0 runs it without one.
      ...(spooled ? ['--spool', join(dir, 'spool')] : []),
    ],
    // And the DaemonSet's MALLOC_ARENA_MAX (BENCH_AGENT_MALLOC_ARENA_MAX to try another; empty for glibc's default).
    // BENCH_AGENT_STDOUT=FILE keeps what the agent's node writes there (e.g. with BENCH_AGENT_NODE_FLAGS=--trace-gc).
    {
      stdio: [
        'ignore',
        process.env.BENCH_AGENT_STDOUT ? openSync(process.env.BENCH_AGENT_STDOUT, 'w') : 'ignore',
        'pipe',
      ],
      env: agentEnv(),
    },
  );
  let stderr = '';
  agent.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-1000)));
  track(agent);
  const pid = agent.pid as number;
  const exited = new Promise<void>((resolve) => agent.once('exit', () => resolve()));
  let stopped = false;
  // SIGTERM (so a --cpu-prof profile is written), SIGKILL if it lingers.
  const stop = async () => {
    clearInterval(appender);
    if (stopped || agent.exitCode !== null) return;
    stopped = true;
    agent.kill('SIGTERM');
    // It takes some 17 s to stop here; a --cpu-prof profile is written only if it is let finish.
    const timer = setTimeout(() => agent.kill('SIGKILL'), process.env.BENCH_CPU_PROF ? 30_000 : 5000);
    await exited;
    clearTimeout(timer);
  };
  let appender: NodeJS.Timeout | undefined;
  signal.addEventListener('abort', () => void stop());
  try {
    const templates = readFileSync(join(packageRoot(), 'examples', 'flows', 'calico', 'flows.log'), 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('{'));
    // Wait until the agent has connected and sent its first scan.
    const until = Date.now() + 30_000;
    for (;;) {
      const nodes = (await (await fetch(`http://127.0.0.1:${agg.httpPort}/api/v1/nodes`)).json()) as {
        items?: { name?: string; latest?: unknown }[];
      };
      if (JSON.stringify(nodes).includes('bench-agent') && JSON.stringify(nodes).includes('score')) break;
      if (agent.exitCode !== null) throw new Error(`verdict-agent exited ${agent.exitCode}: ${stderr}`);
      if (Date.now() > until) throw new Error(`verdict-agent did not report within 30 s: ${stderr}`);
      await sleep(200);
    }
    await sleep(1000);
    // Baseline, same process, same run: the agent with its flow source followed but no lines written.
    const idleCpu0 = cpuSeconds(pid);
    const idleT0 = Date.now();
    await sleep(idleSeconds * 1000);
    const idle = {
      name: `the same agent idle, no lines (${idleSeconds} s)`,
      value: ((cpuSeconds(pid) - idleCpu0) / ((Date.now() - idleT0) / 1000)) * 100,
      unit: '% of a core',
    };
    const idleRss = { name: 'the same agent idle, RSS high-water', value: memoryMiB(pid).hwm, unit: 'MiB' };
    let n = 0;
    for (const [rate, goal] of [
      [1000, 2],
      [5000, 5],
    ] as const) {
      const perTick = rate / 10;
      const cpu0 = cpuSeconds(pid);
      const t0 = Date.now();
      await new Promise<void>((resolve) => {
        let ticks = 0;
        appender = setInterval(() => {
          const now = Math.floor(Date.now() / 1000);
          const lines: string[] = [];
          for (let i = 0; i < perTick; i++, n++) {
            const t = templates[n % templates.length] as string;
            lines.push(
              t
                .replace(/"start_time":\d+/, `"start_time":${now - 1}`)
                .replace(/"end_time":\d+/, `"end_time":${now}`)
                .replace(/"dest_port":(\d+|null)/, `"dest_port":${1000 + (n % 500)}`),
            );
          }
          appendFileSync(log, lines.join('\n') + '\n');
          if (++ticks >= seconds * 10) {
            clearInterval(appender);
            resolve();
          }
        }, 100);
      });
      const wall = (Date.now() - t0) / 1000;
      if (agent.exitCode !== null) throw new Error(`verdict-agent exited ${agent.exitCode}: ${stderr}`);
      const cpu = cpuSeconds(pid) - cpu0;
      out.add(
        figure({
          bench: 'agent',
          name: `verdict-agent CPU following a Calico log at ${rate} lines/s (${seconds} s, ${how})`,
          value: (cpu / wall) * 100,
          unit: '% of a core',
          baseline: idle,
          ratio: ((cpu / wall) * 100) / Math.max(idle.value, 0.01),
          goal: { on: 'value', op: '<=', target: goal },
        }),
      );
      out.add(
        figure({
          bench: 'agent',
          name: `verdict-agent RSS high-water after ${rate} lines/s (${how})`,
          value: memoryMiB(pid).hwm,
          unit: 'MiB',
          baseline: idleRss,
          ratio: memoryMiB(pid).hwm / idleRss.value,
          goal: { on: 'value', op: '<=', target: 80 },
        }),
      );
    }
    out.add(perLineFigure(templates));
    // The lines must have reached the aggregator (the agent sends a window's flows when it closes).
    const until2 = Date.now() + (o.quick ? 25_000 : 60_000);
    let stored = 0;
    const from = new Date(Date.now() - 3_600_000).toISOString();
    while (Date.now() < until2) {
      const r = (await (
        await fetch(`http://127.0.0.1:${agg.httpPort}/api/v1/flows?from=${from}&limit=10000`)
      ).json()) as { items?: unknown[] };
      stored = r.items?.length ?? 0;
      if (stored > 0) break;
      await sleep(500);
    }
    out.add(
      figure({
        bench: 'agent',
        name: 'flow-bucket rows the aggregator stored from the followed log (up to 10000 read)',
        value: stored,
        unit: 'rows',
        ...(stored === 0 ? { status: 'error' as const, note: 'no flows reached the aggregator' } : {}),
      }),
    );
  } finally {
    await stop();
    await agg.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The value of `name` in the agent container's env in manifests/base/30-agent.yaml ('' when it sets none). */
function daemonSetEnv(name: string): string {
  const ds = parseYaml(readFileSync(join(packageRoot(), 'manifests', 'base', '30-agent.yaml'), 'utf8')) as {
    spec?: { template?: { spec?: { containers?: { name?: string; env?: { name?: string; value?: string }[] }[] } } };
  };
  const agent = ds.spec?.template?.spec?.containers?.find((c) => c.name === 'agent');
  return agent?.env?.find((e) => e.name === name)?.value ?? '';
}

/** NODE_OPTIONS of the agent container ('' when it sets none). */
function daemonSetNodeOptions(): string {
  return daemonSetEnv('NODE_OPTIONS');
}

/** This process's environment with the agent container's MALLOC_ARENA_MAX (or BENCH_AGENT_MALLOC_ARENA_MAX). */
function agentEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  const arenas = process.env.BENCH_AGENT_MALLOC_ARENA_MAX ?? daemonSetEnv('MALLOC_ARENA_MAX');
  delete env.MALLOC_ARENA_MAX;
  if (arenas) env.MALLOC_ARENA_MAX = arenas;
  return env;
}

/**
 * The agent's own work per flow-log line, in this process (parse, check, add to the window), against JSON.parse of the
 * same lines, timed in the same run. A ratio, so it holds on a busy machine where the CPU shares above move with the
 * load. The agent reads each line as its follower hands it over: as bytes in one buffer, decoding only what it needs.
 */
function perLineFigure(templates: string[]): Figure {
  const lines = Array.from({ length: 20_000 }, (_, i) =>
    (templates[i % templates.length] as string).replace(/"dest_port":(\d+|null)/, `"dest_port":${1000 + (i % 500)}`),
  );
  const bytes = Buffer.from(lines.join('\n') + '\n');
  const starts: number[] = [];
  for (let at = 0; at < bytes.length; at = bytes.indexOf(0x0a, at) + 1) starts.push(at);
  starts.push(bytes.length);
  const internal = new InternalNetworks();
  const time = (f: () => void) => {
    const t0 = process.hrtime.bigint();
    f();
    return Number(process.hrtime.bigint() - t0) / 1000 / lines.length;
  };
  const jsonParse = () => {
    for (const l of lines) JSON.parse(l);
  };
  const capture = () => {
    const w = new FlowWindow(Date.now);
    for (let i = 0; i < lines.length; i++) {
      const r = parseCalicoBytes(bytes, starts[i] as number, (starts[i + 1] as number) - 1, internal);
      if (r.kind === 'flow' && !flowRecordProblem(r.flow)) w.add(r.flow);
    }
  };
  // Alternated, a warm-up round dropped, medians of 5: the machine's load moves both alike.
  const parses: number[] = [];
  const agents: number[] = [];
  for (let round = 0; round < 6; round++) {
    const p = time(jsonParse);
    const a = time(capture);
    if (round > 0) {
      parses.push(p);
      agents.push(a);
    }
  }
  const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)] as number;
  const parse = median(parses);
  const agent = median(agents);
  return figure({
    bench: 'agent',
    name: 'agent work per Calico line (parse, check, window), in-process',
    value: agent,
    unit: 'µs',
    baseline: { name: 'JSON.parse of the same lines', value: parse, unit: 'µs' },
    ratio: agent / parse,
  });
}
