import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { packageRoot } from '../../common/package-root.js';
import { startTestAggregator } from '../fixtures/aggregator.js';
import { tempDir } from '../fixtures/tmp.js';
import { until } from '../fixtures/wait.js';

// Issue 14, item 2 in run mode: a root with no kubelet (a missing host mount) is not assessable. The agent says so
// at warn and sends no BenchmarkRun, so the aggregator never stores a 0% run for it.
const CLI = join(packageRoot(), 'dist', 'agent', 'cli.js');

t.test('run on a root with no kubelet warns and sends no run', async (t) => {
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
  t.equal(
    line.msg,
    `no kubelet found under ${root} (no kubelet, k3s or rke2 process, no kubelet.service unit, no kubelet config or kubeconfig); node not assessable, no run sent`,
  );
  // The agent connects after its first scan (its Hello registers the node); no run follows.
  await until(async () => (await agg.store.listNodes()).some((n) => n.name === 'na-1'), 'the node said hello', 20_000);
  await new Promise((r) => setTimeout(r, 500));
  t.equal(await agg.store.nodeReport('na-1'), undefined, 'no BenchmarkRun, so no 0% report');
});
