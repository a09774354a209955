import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { loadBenchmarks } from '../agent/cis/benchmarks.js';
import { scanNode } from '../agent/cis/index.js';
import { buildExampleNodes } from '../examples/nodes.js';
import { reportToWire } from '../proto/convert.js';
import { connectAgent, encodeAgentMessage, helloMessage, type SimAgent } from './agent-stream.js';
import { profileArgs } from './ingest.js';
import {
  measureFigure,
  memoryMiB,
  sleep,
  percentile,
  startAggregatorChild,
  timedGet,
  type BenchOptions,
  type Sink,
} from './harness.js';
import { freshPostgresUrl } from './postgres.js';
import { figure } from './table.js';

/**
 * bench/scale: N simulated agents (each its own gRPC channel on loopback, the
 * real proto: Hello, then a full worker's BenchmarkRun) against a real
 * aggregator process. Figures: the time until every run is acked, the
 * aggregator's RSS high-water mark (VmHWM), and with every agent still
 * connected the p99 of GET /api/v1/cis/summary, /metrics and /api/v1/nodes.
 * Goals: RSS at most 1 GiB, summary and /metrics at most 200 ms p99.
 */
export async function runScaleBench(o: BenchOptions, out: Sink, signal: AbortSignal): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'verdict-bench-scale-'));
  let run: Buffer;
  try {
    const { roots } = buildExampleNodes(dir);
    const { report } = scanNode({
      hostRoot: roots['worker-hardened'],
      nodeName: 'bench',
      benchmark: 'cis-1.12',
      role: 'worker',
      level: 2,
      exclude: [],
      benchmarks: loadBenchmarks(),
    });
    run = encodeAgentMessage({ benchmarkRun: reportToWire(report, 1) });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  for (const db of o.dbs) {
    // Figures go to `out` as they are measured: past the bound, what was measured stays.
    const figs = await measureFigure(
      'scale',
      `the rest of ${o.agents} agents, ${db}`,
      // Under a loaded machine 5,000 agents take over 200 s to be acked; the reads come after.
      o.quick ? 60_000 : 300_000,
      's',
      (s) => scaleOnce(db, o.agents, run, o.quick ? 40 : 30, out, s),
    );
    figs.forEach(out.add);
    if (signal.aborted) return;
  }
}

async function scaleOnce(
  db: 'sqlite' | 'postgres',
  n: number,
  run: Buffer,
  requests: number,
  out: Sink,
  signal: AbortSignal,
) {
  const dir = mkdtempSync(join(tmpdir(), 'verdict-bench-scale-'));
  const url = db === 'sqlite' ? `sqlite:${join(dir, 'v.db')}` : await freshPostgresUrl();
  const agg = await startAggregatorChild(['--db', url], {
    signal,
    nodeArgs: profileArgs('scale', db),
  });
  const agents: SimAgent[] = [];
  try {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) agents.push(connectAgent(agg.grpcPort));
    // An agent whose stream fails (the store unavailable under the rush) reconnects after a
    // backoff of 1-3 s, as verdict-agent does; the retries are counted.
    let retries = 0;
    let lastFailure = '';
    await Promise.all(
      agents.map(async (first, i) => {
        let a = first;
        for (;;) {
          try {
            a.send(helloMessage(`node-${i}`));
            a.send(run);
            await a.ack(1);
            return;
          } catch (err) {
            if (signal.aborted) throw err;
            retries++;
            lastFailure = (err as Error).message;
            a.close();
            await sleep(1000 + Math.random() * 2000);
            a = agents[i] = connectAgent(agg.grpcPort);
          }
        }
      }),
    );
    const ackAllS = (performance.now() - t0) / 1000;
    out.add(
      figure({
        bench: 'scale',
        name: `time until all ${n} agents' runs are acked, ${db}`,
        value: ackAllS,
        unit: 's',
        ...(retries ? { note: `${retries} reconnects after: ${lastFailure}` } : {}),
      }),
    );
    out.add(
      figure({
        bench: 'scale',
        name: `aggregator RSS high-water once all ${n} are acked, ${db}`,
        value: memoryMiB(agg.pid).hwm,
        unit: 'MiB',
        goal: { on: 'value', op: '<=', target: 1024 },
      }),
    );
    const base = `http://127.0.0.1:${agg.httpPort}`;
    for (const [path, goal] of [
      ['/api/v1/cis/summary', 200],
      ['/metrics', 200],
      ['/api/v1/nodes', undefined],
    ] as const) {
      const ms: number[] = [];
      let bytes = 0;
      const hwmBefore = memoryMiB(agg.pid).hwm;
      for (let i = 0; i < requests; i++) {
        const r = await timedGet(base + path, signal);
        ms.push(r.ms);
        bytes = r.body.length;
      }
      out.add(
        figure({
          bench: 'scale',
          // The first request comes right after the last ack: what the burst leaves (collection, writes) lands on it.
          name: `GET ${path} p99 of ${requests} (p50 ${percentile(ms, 50).toFixed(0)} ms, first ${ms[0]!.toFixed(0)} ms, slowest after it ${Math.max(...ms.slice(1)).toFixed(0)} ms, ${(bytes / 1024).toFixed(0)} KiB), ${n} agents, ${db}`,
          value: percentile(ms, 99),
          unit: 'ms',
          ...(goal ? { goal: { on: 'value' as const, op: '<=' as const, target: goal } } : {}),
          // Which reads raise the high-water mark (the RSS figure after the GETs is the highest of them all).
          note: `RSS high-water ${hwmBefore.toFixed(0)} -> ${memoryMiB(agg.pid).hwm.toFixed(0)} MiB`,
        }),
      );
    }
    out.add(
      figure({
        bench: 'scale',
        name: `aggregator RSS high-water after the GETs, ${n} agents, ${db}`,
        value: memoryMiB(agg.pid).hwm,
        unit: 'MiB',
        goal: { on: 'value', op: '<=', target: 1024 },
      }),
    );
    return [];
  } finally {
    agents.forEach((a) => a.close());
    await agg.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
