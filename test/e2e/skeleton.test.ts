import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import t, { type Test } from 'tap';
import { packageRoot } from '../../common/package-root.js';
import type { ScanReport } from '../../common/scan-report.js';
import { buildExampleNodes } from '../../examples/nodes.js';
import { tempDir } from '../fixtures/tmp.js';
import { until } from '../fixtures/wait.js';

// End to end with real processes: the built aggregator on ephemeral loopback
// ports with a temporary SQLite file, and the built agent in run mode against
// a node root with real modes and owners.
const root = packageRoot();
const AGENT = join(root, 'dist', 'agent', 'cli.js');
const AGGREGATOR = join(root, 'dist', 'aggregator', 'cli.js');

function startProcess(t: Test, args: string[]): ChildProcess {
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => {
    child.kill('SIGKILL');
  });
  return child;
}

/** Start the aggregator and read its bound ports from its start-up log line. */
async function startAggregatorProcess(t: Test): Promise<{ http: number; grpc: number; child: ChildProcess }> {
  const child = startProcess(t, [
    AGGREGATOR,
    '--http',
    '127.0.0.1:0',
    '--grpc',
    '127.0.0.1:0',
    '--db',
    `sqlite:${join(tempDir(t), 'verdict.db')}`,
  ]);
  const lines = createInterface({ input: child.stdout! });
  for await (const line of lines) {
    const rec = JSON.parse(line) as { msg?: string; http?: string; grpc?: string };
    if (rec.msg === 'verdict-aggregator started') {
      return { http: Number(rec.http!.split(':').pop()), grpc: Number(rec.grpc!.split(':').pop()), child };
    }
  }
  throw new Error('the aggregator exited before it started');
}

type NodeItem = {
  name: string;
  pass: number;
  fail: number;
  skip: number;
  scorePercent: number;
  connected: boolean;
  benchmark: string;
};

t.test(
  'an agent on a node root reports through gRPC; HTTP and /metrics show its exact counts, and a fix on the node shows up',
  async (t) => {
    const { roots } = buildExampleNodes(tempDir(t));
    const nodeRoot = roots['worker-weak'];
    // What the same engine says when run once from the CLI.
    const scan = JSON.parse(
      spawnSync(
        process.execPath,
        [AGENT, 'scan', '--host-root', nodeRoot, '--node-name', 'e2e-weak', '--format', 'json'],
        { encoding: 'utf8' },
      ).stdout,
    ) as ScanReport;
    t.ok(scan.summary.fail > 0);

    const agg = await startAggregatorProcess(t);
    const agent = startProcess(t, [
      AGENT,
      'run',
      '--aggregator',
      `127.0.0.1:${agg.grpc}`,
      '--host-root',
      nodeRoot,
      '--node-name',
      'e2e-weak',
      '--watch-interval-ms',
      '200',
    ]);
    const base = `http://127.0.0.1:${agg.http}`;
    const nodeItem = async () =>
      ((await (await fetch(`${base}/api/v1/nodes`)).json()) as { items: NodeItem[] }).items.find(
        (i) => i.name === 'e2e-weak' && i.benchmark,
      );

    const item = await until(nodeItem, 'the node in /api/v1/nodes', 20_000);
    t.match(item, {
      pass: scan.summary.pass,
      fail: scan.summary.fail,
      skip: scan.summary.skip,
      scorePercent: scan.summary.scorePercent,
      connected: true,
      benchmark: 'cis-1.12',
    });

    const report = (await (await fetch(`${base}/api/v1/nodes/e2e-weak/cis`)).json()) as ScanReport;
    t.same(report.checks, scan.checks, 'the stored report is the scan, check for check');

    const metrics = await (await fetch(`${base}/metrics`)).text();
    const ratio = scan.summary.pass / (scan.summary.pass + scan.summary.fail);
    const line = metrics.split('\n').find((l) => l.startsWith('verdict_cis_node_score_ratio{node="e2e-weak"'));
    t.ok(line, 'score ratio series for the node');
    t.ok(Math.abs(Number(line?.split(' ').pop()) - ratio) < 1e-9, `ratio ${line} = ${ratio}`);
    t.match(
      metrics,
      new RegExp(
        `verdict_cis_node_checks\\{node="e2e-weak",benchmark="cis-1.12",status="fail"\\} ${scan.summary.fail}\\n`,
      ),
    );
    t.match(metrics, /verdict_agent_connected\{node="e2e-weak"\} 1/);

    // Continuous mode: fixing the kubelet config's mode on the node raises the score within seconds.
    t.equal(scan.checks.find((c) => c.id === '4.1.9')?.status, 'FAIL');
    chmodSync(join(nodeRoot, 'var/lib/kubelet/config.yaml'), 0o600);
    const fixed = await until(
      async () => {
        const i = await nodeItem();
        return i && i.pass === scan.summary.pass + 1 ? i : undefined;
      },
      'the re-scan after chmod',
      10_000,
    );
    t.equal(fixed.fail, scan.summary.fail - 1);

    agent.kill('SIGTERM');
    const gone = await until(
      async () => {
        const i = await nodeItem();
        return i && !i.connected ? i : undefined;
      },
      'the node marked disconnected',
      20_000,
    );
    t.equal(gone.connected, false);
  },
);
