import { appendFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import t from 'tap';
import { parseRunArgs, startAgent } from '../../../agent/run.js';
import { NodeRootBuilder } from '../../../examples/node-root.js';
import { buildHardenedWorker } from '../../../examples/nodes.js';
import { startTestAggregator } from '../../fixtures/aggregator.js';
import { tempDir } from '../../fixtures/tmp.js';
import { until } from '../../fixtures/wait.js';

// SIGTERM's path (RunningAgent.shutdown): the open flow window is not lost. The window here is an hour long, so the
// only way its flows reach the aggregator is the flush on stop. The line is line 2 of projectcalico/calico
// felix/collector/flowlog/testdata/flows.log (commit 15c318b), its times moved to now.
const FELIX_LINE_2 = (startS: number) =>
  `{"start_time":${startS},"end_time":${startS + 300},"source_ip":null,"source_name":"-","source_name_aggr":"compliance-snapshotter-77f4c7776d-*","source_namespace":"tigera-compliance","source_port":null,"source_type":"wep","source_labels":{"labels":["pod-template-hash=77f4c7776d","k8s-app=compliance-snapshotter"]},"dest_ip":null,"dest_name":"-","dest_name_aggr":"coredns-576cbf47c7-*","dest_namespace":"kube-system","dest_port":53,"dest_type":"wep","dest_labels":{"labels":["pod-template-hash=576cbf47c7","k8s-app=kube-dns"]},"proto":"udp","action":"allow","reporter":"dst","policies":{"all_policies":["0|__PROFILE__|__PROFILE__.kns.kube-system|allow"]},"bytes_in":1702,"bytes_out":3029,"num_flows":15,"num_flows_started":15,"num_flows_completed":15,"packets_in":15,"packets_out":15,"http_requests_allowed_in":0,"http_requests_denied_in":0,"original_source_ips":null,"num_original_source_ips":0}`;

t.test('on shutdown the last flow window is flushed and delivered before the stream closes', async (t) => {
  const agg = await startTestAggregator(t);
  const dir = tempDir(t);
  const b = new NodeRootBuilder(join(dir, 'node'));
  buildHardenedWorker(b);
  const log = join(dir, 'flows.log');
  writeFileSync(log, '');
  const config = parseRunArgs([
    '--aggregator',
    `127.0.0.1:${agg.grpcPort}`,
    '--host-root',
    b.root,
    '--node-name',
    'flush-1',
    '--flows',
    `calico:${log}`,
    '--flow-window-ms',
    '3600000',
  ]);
  const agent = startAgent(config, pino({ level: 'silent' }));
  let stopped = false;
  t.teardown(() => {
    if (!stopped) agent.stop();
  });
  await until(async () => (await agg.store.nodeReport('flush-1')) !== undefined, 'first run stored', 10_000);
  // Without a spool a file is followed from its end: take that position while the file is empty.
  agent.flows?.poll();
  const startS = Math.floor(Date.now() / 1000) - 300;
  appendFileSync(log, FELIX_LINE_2(startS) + '\n' + FELIX_LINE_2(startS) + '\n');

  const t0 = Date.now();
  await agent.shutdown(5000);
  stopped = true;
  t.ok(Date.now() - t0 < 5000, 'bounded: delivered before the bound');
  const rows = await agg.store.flowRows({ fromMs: (startS - 3600) * 1000, toMs: Date.now() + 3_600_000 });
  t.equal(
    rows.reduce((n, r) => n + r.flow.connections, 0),
    30,
    'both records of the open window were stored (15 connections each)',
  );
});

t.test('shutdown is bounded when the aggregator never answers', async (t) => {
  const dir = tempDir(t);
  const b = new NodeRootBuilder(join(dir, 'node'));
  buildHardenedWorker(b);
  const log = join(dir, 'flows.log');
  writeFileSync(log, '');
  // Port 9 (discard) on loopback: nothing listens, nothing is ever acknowledged.
  const agent = startAgent(
    parseRunArgs([
      '--aggregator',
      '127.0.0.1:9',
      '--host-root',
      b.root,
      '--node-name',
      'flush-2',
      '--flows',
      `calico:${log}`,
      '--flow-window-ms',
      '3600000',
    ]),
    pino({ level: 'silent' }),
  );
  agent.flows?.poll();
  appendFileSync(log, FELIX_LINE_2(Math.floor(Date.now() / 1000) - 300) + '\n');
  const t0 = Date.now();
  await agent.shutdown(300);
  const took = Date.now() - t0;
  t.ok(took >= 250 && took < 3000, `gave up after the bound (${took} ms)`);
  t.equal(agent.flows?.stats.records, 1, 'the line was read into the last window all the same');
});
