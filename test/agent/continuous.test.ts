import { utimesSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import t from 'tap';
import { parseRunArgs, startAgent } from '../../agent/run.js';
import { NodeRootBuilder } from '../../examples/node-root.js';
import { buildHardenedWorker } from '../../examples/nodes.js';
import { startTestAggregator } from '../fixtures/aggregator.js';
import { tempDir } from '../fixtures/tmp.js';
import { until } from '../fixtures/wait.js';

t.test('run mode re-scans on a change, and sends a run only when a result changed', async (t) => {
  const agg = await startTestAggregator(t);
  const b = new NodeRootBuilder(join(tempDir(t), 'node'));
  buildHardenedWorker(b);
  const config = {
    ...parseRunArgs([
      '--aggregator',
      `127.0.0.1:${agg.grpcPort}`,
      '--host-root',
      b.root,
      '--node-name',
      'cont-1',
      '--watch-interval-ms',
      '100',
    ]),
    debounceMs: 100,
  };
  const agent = startAgent(config, pino({ level: 'silent' }));
  t.teardown(() => agent.stop());
  await until(async () => (await agg.store.nodeReport('cont-1')) !== undefined, 'first run stored', 5000);
  t.equal(agent.stream.stats.sent, 1);

  // Touching a file without changing what the checks see: a re-scan, no new run.
  const scansBefore = agent.scans;
  const config_yaml = b.path('/var/lib/kubelet/config.yaml');
  utimesSync(config_yaml, new Date(), new Date(Date.now() + 5000));
  await until(() => agent.scans > scansBefore, 're-scan after touch', 5000);
  t.equal(agent.stream.stats.sent, 1, 'an unchanged result is not sent again');

  // The kubelet restarts with a flag that reopens the read-only port: a new run.
  // (How fast that happens is measured in bench/rescan, not asserted here.)
  b.process(812, [
    '/usr/bin/kubelet',
    '--config=/var/lib/kubelet/config.yaml',
    '--config-dir=/etc/kubernetes/kubelet.conf.d',
    '--kubeconfig=/etc/kubernetes/kubelet.conf',
    '--read-only-port=10255',
  ]);
  await until(
    async () => (await agg.store.nodeReport('cont-1'))?.checks.find((c) => c.id === '4.2.4')?.status === 'FAIL',
    'new run after the kubelet command line changed',
    10_000,
  );
  t.equal(agent.stream.stats.sent, 2);
});
