import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { startAggregator } from '../aggregator/main.js';
import { AGGREGATOR_DEFAULTS } from '../aggregator/config.js';
import { parseRunArgs, startAgent } from '../agent/run.js';
import { NodeRootBuilder } from '../examples/node-root.js';
import { buildWeakWorker } from '../examples/nodes.js';
import type { Sink } from './harness.js';
import { figure } from './table.js';

/**
 * bench/rescan: with the agent's default watch settings, how long from a change
 * on the node (a chmod that fixes a check) until the aggregator has stored the
 * new result. Goal: within 2 s. Prints the median and worst of several changes.
 */
export async function runRescanBench(rounds = Number(process.env.BENCH_RESCAN_ROUNDS ?? 5), out?: Sink): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'verdict-bench-rescan-'));
  const silent = pino({ level: 'silent' });
  const agg = await startAggregator(
    {
      ...AGGREGATOR_DEFAULTS,
      httpAddress: '127.0.0.1:0',
      grpcAddress: '127.0.0.1:0',
      db: `sqlite:${join(dir, 'v.db')}`,
      logLevel: 'silent',
    },
    silent,
  );
  const b = new NodeRootBuilder(join(dir, 'node'));
  buildWeakWorker(b);
  const agent = startAgent(
    parseRunArgs(['--aggregator', `127.0.0.1:${agg.grpcPort}`, '--host-root', b.root, '--node-name', 'bench']),
    silent,
  );
  const stored = async () => (await agg.store.nodeReport('bench'))?.checks.find((c) => c.id === '4.1.9')?.status;
  const waitFor = async (status: string) => {
    const end = Date.now() + 15_000;
    while ((await stored()) !== status) {
      if (Date.now() > end) throw new Error(`no ${status} within 15 s`);
      await new Promise((r) => setTimeout(r, 10));
    }
  };
  try {
    await waitFor('FAIL');
    const samples: number[] = [];
    for (let i = 0; i < rounds; i++) {
      const fixed = i % 2 === 0;
      const t0 = Date.now();
      chmodSync(b.path('/var/lib/kubelet/config.yaml'), fixed ? 0o600 : 0o644);
      await waitFor(fixed ? 'PASS' : 'FAIL');
      samples.push(Date.now() - t0);
      await new Promise((r) => setTimeout(r, 300));
    }
    samples.sort((a, c) => a - c);
    const med = samples[Math.floor(samples.length / 2)] as number;
    const worst = samples[samples.length - 1] as number;
    out?.add(
      figure({
        bench: 'rescan',
        name: `change-to-stored, worst of ${rounds} changes (median ${med} ms)`,
        value: worst,
        unit: 'ms',
        goal: { on: 'value', op: '<=', target: 2000 },
      }),
    );
  } finally {
    agent.stop();
    await agg.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
