import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { packageRoot } from '../common/package-root.js';
import { buildExampleNodes } from '../examples/nodes.js';
import type { BenchOptions, Sink } from './harness.js';
import { figure } from './table.js';

/**
 * bench/scan: the wall time of a whole `verdict-agent scan` process (start-up,
 * benchmark loading, the scan, printing JSON) of a full worker node, against
 * `node -e 0` measured in the same run: what a node process costs at all.
 * Medians of alternating runs. Goal: at most 3x.
 */
export async function runScanBench(opts: BenchOptions, out: Sink): Promise<void> {
  const runs = opts.quick ? 5 : 10;
  const dir = mkdtempSync(join(tmpdir(), 'verdict-bench-scan-'));
  try {
    const { roots } = buildExampleNodes(dir);
    const cli = join(packageRoot(), 'dist', 'agent', 'cli.js');
    const time = (args: string[]) => {
      const t0 = performance.now();
      const r = spawnSync(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
      const ms = performance.now() - t0;
      if (r.status !== 0 && args[0] !== '-e') {
        // `scan` exits 0 unless --exit-code; anything else is a broken bench.
        throw new Error(`verdict-agent scan exited ${r.status}: ${r.stderr.toString().slice(0, 300)}`);
      }
      return ms;
    };
    const scanArgs = [cli, 'scan', '--host-root', roots['worker-hardened'], '--node-name', 'bench', '--format', 'json'];
    time(scanArgs); // page cache warm
    time(['-e', '0']);
    const scan: number[] = [];
    const bare: number[] = [];
    for (let i = 0; i < runs; i++) {
      scan.push(time(scanArgs));
      bare.push(time(['-e', '0']));
    }
    const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
    const s = med(scan);
    const b = med(bare);
    out.add(
      figure({
        bench: 'scan',
        name: `verdict-agent scan, full worker (median of ${runs})`,
        value: s,
        unit: 'ms',
        baseline: { name: 'node -e 0', value: b, unit: 'ms' },
        ratio: s / b,
        goal: { on: 'ratio', op: '<=', target: 3 },
      }),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
