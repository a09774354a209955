import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { packageRoot } from '../common/package-root.js';

/**
 * `node dist/bench/profile-summary.js FILE.cpuprofile [N]`: the top N frames of
 * a V8 CPU profile by self time (what `BENCH_CPU_PROF=DIR npm run bench` writes
 * for each aggregator process it starts), with their share of the samples.
 */
interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}

export function topFrames(file: string, n = 5): { frame: string; selfMs: number; percent: number }[] {
  const p = JSON.parse(readFileSync(file, 'utf8')) as {
    nodes: ProfileNode[];
    samples: number[];
    timeDeltas: number[];
    startTime: number;
    endTime: number;
  };
  const byId = new Map(p.nodes.map((node) => [node.id, node]));
  const self = new Map<string, number>();
  let total = 0;
  p.samples.forEach((id, i) => {
    const node = byId.get(id);
    const dt = p.timeDeltas[i] ?? 0;
    if (!node) return;
    const cf = node.callFrame;
    const where = cf.url ? relative(packageRoot(), cf.url.replace(/^file:\/\//, '')) : '';
    const key = `${cf.functionName || '(anonymous)'} ${where ? `${where}:${cf.lineNumber + 1}` : ''}`.trim();
    if (key === '(idle)') return;
    self.set(key, (self.get(key) ?? 0) + dt);
    total += dt;
  });
  return [...self.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([frame, us]) => ({ frame, selfMs: us / 1000, percent: (us / total) * 100 }));
}

if (process.argv[1]?.endsWith('profile-summary.js')) {
  const [file, n] = process.argv.slice(2);
  if (!file) {
    console.error('usage: node dist/bench/profile-summary.js FILE.cpuprofile [N]');
    process.exit(2);
  }
  for (const f of topFrames(file, Number(n ?? 5)))
    console.log(`${f.percent.toFixed(1).padStart(5)}%  ${f.selfMs.toFixed(0).padStart(7)} ms  ${f.frame}`);
}
