import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { packageRoot } from '../../common/package-root.js';
import { startTestAggregator } from '../fixtures/aggregator.js';
import { tempDir } from '../fixtures/tmp.js';
import { until } from '../fixtures/wait.js';

// Issue 14, item 2 in run mode: a root with no kubelet (a missing host mount) is not assessable. The agent says so
// at warn and sends a BenchmarkRun marked not assessable with no checks, so the aggregator stores the reason and never
// a 0% run for it.
const CLI = join(packageRoot(), 'dist', 'agent', 'cli.js');

t.test('run on a root with no kubelet warns and sends the node as not assessable, with no score', async (t) => {
  const agg = await startTestAggregator(t);
  const root = join(tempDir(t), 'empty');
  mkdirSync(root);
  const child = spawn(
    process.execPath,
    [CLI, 'run', '--aggregator', `127.0.0.1:${agg.grpcPort}`, '--host-root', root, '--node-name', 'na-1'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  t.teardown(() => child.kill('SIGKILL'));
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const warning = await until(
    () => out.split('\n').find((l) => l.includes('node not assessable')),
    'the not-assessable warning',
    20_000,
  );
  const line = JSON.parse(warning) as { level: number; msg: string; hostRoot: string };
  t.equal(line.level, 40, 'logged at warn');
  const why = `no kubelet found under ${root} (no kubelet, k3s or rke2 process, no kubelet.service unit, no kubelet config or kubeconfig)`;
  t.equal(line.msg, `${why}; node not assessable, sending no score`);
  // The agent connects after its first scan (its Hello registers the node); its run says why and carries no check.
  const report = await until(async () => agg.store.nodeReport('na-1'), 'the not-assessable run stored', 20_000);
  t.equal(report.notAssessable, why, 'the stored run says why');
  t.same(report.checks, [], 'no check results, so no 0% score');
  // What a reader sees: the node with the reason and no score or rating, so no "node critical" alert can fire.
  const nodes = (await (await fetch(`http://127.0.0.1:${agg.httpPort}/api/v1/nodes`)).json()) as {
    items: { name: string; scorePercent: number | null; rating: string | null; notAssessable?: string }[];
  };
  t.match(
    nodes.items.find((n) => n.name === 'na-1'),
    { scorePercent: null, rating: null, notAssessable: why },
  );
});
