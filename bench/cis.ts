import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parse as parseYaml } from 'yaml';
import { loadBenchmarks } from '../agent/cis/benchmarks.js';
import { scanNode } from '../agent/cis/index.js';
import { packageRoot } from '../common/package-root.js';
import { buildExampleNodes } from '../examples/nodes.js';
import type { Sink } from './harness.js';
import { figure } from './table.js';

/**
 * bench/cis: how much a full scan costs over the I/O it cannot avoid.
 *
 * For a full worker and a full control-plane node, times scanNode() (benchmarks
 * pre-loaded, as the agent does) against a raw baseline that only stats and
 * reads the same files the scan read and parses the same YAML files. Prints
 * the medians and their ratio (goal: at most 3x), and the number of child
 * processes a scan starts (goal: 0), counted by strace from the kernel's side.
 */
let ITERATIONS = Number(process.env.BENCH_ITERATIONS ?? 200);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}

function timeIt(fn: () => void): number {
  for (let i = 0; i < 20; i++) fn(); // warm up the JIT and the page cache
  const samples: number[] = [];
  for (let i = 0; i < ITERATIONS; i++) {
    const t0 = performance.now();
    fn();
    samples.push(performance.now() - t0);
  }
  return median(samples);
}

function countChildProcesses(hostRoot: string): number | string {
  const strace = ['/usr/bin/strace', '/bin/strace'].find((p) => existsSync(p));
  if (!strace) return 'not measured (install strace)';
  const dir = mkdtempSync(join(tmpdir(), 'verdict-bench-'));
  try {
    const log = join(dir, 'strace.log');
    const r = spawnSync(
      strace,
      [
        '-f',
        '-qq',
        '-e',
        'trace=execve,execveat',
        '-o',
        log,
        process.execPath,
        join(packageRoot(), 'dist/agent/cli.js'),
        'scan',
        '--host-root',
        hostRoot,
        '--format',
        'json',
      ],
      { encoding: 'utf8' },
    );
    if (r.status !== 0) return `scan failed: ${r.stderr.slice(0, 200)}`;
    return (
      readFileSync(log, 'utf8')
        .split('\n')
        .filter((l) => /execve(at)?\(/.test(l)).length - 1
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function runCisBench(out?: Sink, iterations?: number): { name: string; ratio: number }[] {
  if (iterations !== undefined) ITERATIONS = iterations;
  const dir = mkdtempSync(join(tmpdir(), 'verdict-bench-nodes-'));
  const results: { name: string; ratio: number }[] = [];
  try {
    const { roots } = buildExampleNodes(dir);
    const benchmarks = loadBenchmarks();
    for (const [label, node, role] of [
      ['worker', 'worker-hardened', 'worker'],
      ['control-plane', 'control-plane-1', 'control-plane'],
    ] as const) {
      const hostRoot = roots[node];
      const options = {
        hostRoot,
        nodeName: node,
        benchmark: 'cis-1.12',
        role,
        level: 2 as const,
        exclude: [],
        benchmarks,
      };
      const first = scanNode(options);
      const files = first.touched.map((p) => join(hostRoot, p));
      const yamlFiles = files.filter((f) => /\.(ya?ml|conf)$/.test(f) && !f.includes('systemd'));
      const scanMs = timeIt(() => scanNode(options));
      const rawMs = timeIt(() => {
        for (const f of files) {
          try {
            if (statSync(f).isFile()) readFileSync(f);
          } catch {
            // absent files cost a failed stat in both
          }
        }
        for (const f of yamlFiles) {
          try {
            parseYaml(readFileSync(f, 'utf8'));
          } catch {
            // not every .conf is YAML
          }
        }
      });
      const ratio = scanMs / rawMs;
      results.push({ name: label, ratio });
      const children = countChildProcesses(hostRoot);
      out?.add(
        figure({
          bench: 'cis',
          name: `scanNode ${label} (${first.report.checks.length} checks, ${files.length} paths, median)`,
          value: scanMs,
          unit: 'ms',
          baseline: { name: 'raw I/O+YAML', value: rawMs, unit: 'ms' },
          ratio,
          goal: { on: 'ratio', op: '<=', target: 3 },
        }),
      );
      out?.add(
        typeof children === 'number'
          ? figure({
              bench: 'cis',
              name: `child processes of a ${label} scan (strace)`,
              value: children,
              unit: '',
              goal: { on: 'value', op: '==', target: 0 },
            })
          : figure({ bench: 'cis', name: `child processes of a ${label} scan`, unit: '', note: children }),
      );
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return results;
}
