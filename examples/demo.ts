import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { packageRoot } from '../common/package-root.js';
import { table } from '../agent/cis/format.js';
import { buildExampleNodes, EXAMPLE_NODES } from './nodes.js';

/**
 * `npm start`: the aggregator on embedded SQLite and one real agent per example
 * node, all as separate processes on loopback, until Ctrl-C.
 */
const root = packageRoot();
const demoDir = join(root, '.demo');
const children: ChildProcess[] = [];

async function freePort(preferred: number): Promise<number> {
  const tryPort = (port: number) =>
    new Promise<number>((resolve, reject) => {
      const srv = createServer();
      srv.once('error', reject);
      srv.listen(port, '127.0.0.1', () => {
        const addr = srv.address();
        srv.close(() => resolve(typeof addr === 'object' && addr ? addr.port : port));
      });
    });
  return tryPort(preferred).catch(() => tryPort(0));
}

function start(name: string, args: string[], logFile: string): ChildProcess {
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LOG_LEVEL: process.env.LOG_LEVEL ?? 'info' } });
  const out = createWriteStream(logFile);
  child.stdout?.pipe(out);
  child.stderr?.pipe(out);
  child.on('exit', (code, signal) => {
    if (!shuttingDown) process.stderr.write(`demo: ${name} exited (${signal ?? code}); see ${logFile}\n`);
  });
  children.push(child);
  return child;
}

let shuttingDown = false;
function shutdown(code: number): void {
  shuttingDown = true;
  for (const c of children) c.kill('SIGTERM');
  setTimeout(() => process.exit(code), 500).unref();
}

async function main(): Promise<void> {
  rmSync(demoDir, { recursive: true, force: true });
  mkdirSync(join(demoDir, 'logs'), { recursive: true });
  const { roots, ownersFaked } = buildExampleNodes(join(demoDir, 'nodes'));
  console.log(`Built ${EXAMPLE_NODES.length} example node roots under ${join(demoDir, 'nodes')}`);
  if (ownersFaked) console.log('  (not running as root: files keep your own uid/gid, so ownership checks see that instead of root:root)');

  // The recorded Calico flow log, moved in time so it ends a minute ago: the
  // network-access summary of the last hour then shows it.
  const sample = readFileSync(join(root, 'examples', 'flows', 'calico', 'flows.log'), 'utf8').split('\n').filter(Boolean);
  const lastEnd = Math.max(...sample.map((l) => (JSON.parse(l) as { end_time: number }).end_time));
  const shift = Math.floor(Date.now() / 1000) - 60 - lastEnd;
  const flowsFile = join(demoDir, 'flows', 'calico', 'flows.log');
  mkdirSync(join(demoDir, 'flows', 'calico'), { recursive: true });
  writeFileSync(flowsFile, sample.map((l) => {
    const r = JSON.parse(l) as { start_time: number; end_time: number };
    return JSON.stringify({ ...r, start_time: r.start_time + shift, end_time: r.end_time + shift });
  }).join('\n') + '\n');

  const httpPort = await freePort(Number(process.env.VERDICT_DEMO_HTTP_PORT ?? 8080));
  const grpcPort = await freePort(Number(process.env.VERDICT_DEMO_GRPC_PORT ?? 9090));
  start('aggregator', [join(root, 'dist/aggregator/cli.js'), '--http', `127.0.0.1:${httpPort}`, '--grpc', `127.0.0.1:${grpcPort}`, '--db', `sqlite:${join(demoDir, 'verdict.db')}`, '--reports', join(root, 'examples', 'reports'), '--protected-namespaces', 'payments', '--protected-tiers', 'security'], join(demoDir, 'logs', 'aggregator.log'));
  const base = `http://127.0.0.1:${httpPort}`;
  await waitFor(async () => (await fetch(`${base}/readyz`)).ok, 20_000, 'the aggregator did not become ready; see .demo/logs/aggregator.log');

  for (const name of EXAMPLE_NODES) {
    const flows = name === 'worker-hardened' ? ['--flows', `calico:${flowsFile}`, '--spool', join(demoDir, 'spool', name), '--flow-window-ms', '2000'] : [];
    start(`agent ${name}`, [join(root, 'dist/agent/cli.js'), 'run', '--aggregator', `127.0.0.1:${grpcPort}`, '--host-root', roots[name], '--node-name', name, '--watch-interval-ms', '500', ...flows], join(demoDir, 'logs', `agent-${name}.log`));
  }
  type Item = { name: string; role: string; benchmark: string | null; scorePercent: number | null; pass: number; fail: number; skip: number; rating: string | null; connected: boolean };
  let items: Item[] = [];
  await waitFor(
    async () => {
      items = ((await (await fetch(`${base}/api/v1/nodes`)).json()) as { items: Item[] }).items;
      return EXAMPLE_NODES.every((n) => items.some((i) => i.name === n && i.benchmark));
    },
    45_000,
    'not every agent reported; see .demo/logs/',
  );
  const summary = (await (await fetch(`${base}/api/v1/cis/summary`)).json()) as { scorePercent: number; mostFailed: { id: string; title: string; failedNodes: number }[] };
  type Access = { endpoint: string; ingressProtected: boolean | null; egressProtected: boolean | null; ingressFromInternet: boolean; egressToInternet: boolean; allowedIn: number; deniedIn: number; allowedOut: number; deniedOut: number };
  let access: Access[] = [];
  await waitFor(
    async () => {
      access = ((await (await fetch(`${base}/api/v1/network-access`)).json()) as { endpoints: Access[] }).endpoints;
      return access.length > 0;
    },
    20_000,
    'the flow sample did not arrive; see .demo/logs/agent-worker-hardened.log',
  );

  console.log('');
  console.log(table(['NODE', 'ROLE', 'BENCHMARK', 'SCORE', 'PASS', 'FAIL', 'SKIP', 'RATING'], items.map((i) => [i.name, i.role, i.benchmark ?? '-', `${i.scorePercent ?? '-'}%`, String(i.pass), String(i.fail), String(i.skip), i.rating ?? '-'])).join('\n'));
  console.log(`\nCluster score ${summary.scorePercent}%. Most failed: ${summary.mostFailed.slice(0, 3).map((m) => `${m.id} (${m.failedNodes} nodes)`).join(', ') || 'none'}`);
  const yes = (b: boolean | null) => (b === null ? '-' : b ? 'yes' : 'NO');
  console.log('\nNetwork access, last hour (from the bundled Calico flow log):');
  console.log(table(['ENDPOINT', 'INGRESS PROTECTED', 'EGRESS PROTECTED', 'FROM INTERNET', 'TO INTERNET', 'IN allow/deny', 'OUT allow/deny'], access.map((a) => [a.endpoint, yes(a.ingressProtected), yes(a.egressProtected), a.ingressFromInternet ? 'yes' : '', a.egressToInternet ? 'yes' : '', `${a.allowedIn}/${a.deniedIn}`, `${a.allowedOut}/${a.deniedOut}`])).join('\n'));
  // An on-demand run of the network-access report over the last hour, to download.
  const hourAgo = new Date(Date.now() - 3600_000).toISOString();
  const created = (await (await fetch(`${base}/api/v1/reports/daily-network-access/runs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ start: hourAgo, end: new Date().toISOString() }) })).json()) as { id: string };
  let runStatus = '';
  await waitFor(async () => {
    runStatus = ((await (await fetch(`${base}/api/v1/reports/daily-network-access/runs/${created.id}`)).json()) as { status: string }).status;
    return runStatus === 'succeeded' || runStatus === 'failed';
  }, 20_000, 'the report run did not finish');
  console.log(`\nReport daily-network-access, last hour: ${runStatus}`);
  console.log(`  ${base}/api/v1/reports/daily-network-access/runs/${created.id}`);
  console.log(`  ${base}/api/v1/reports/daily-network-access/runs/${created.id}?format=csv&file=endpoints.csv`);

  console.log(`
Verdict is running:
  nodes      ${base}/api/v1/nodes
  one node   ${base}/api/v1/nodes/worker-weak/cis
  summary    ${base}/api/v1/cis/summary
  network    ${base}/api/v1/network-access
  reports    ${base}/api/v1/reports
  flows      ${base}/api/v1/flows?namespace=shop
  metrics    ${base}/metrics
  API docs   ${base}/docs
  logs       ${join(demoDir, 'logs')}

Agents re-check when node files change. Try fixing the weak worker:
  chmod 600 ${join(roots['worker-weak'], 'var/lib/kubelet/config.yaml')}
and watch its score rise in ${base}/api/v1/nodes within seconds.

Ctrl-C stops everything.`);
}

async function waitFor(probe: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await probe()) return;
    } catch {
      // not up yet
    }
    if (Date.now() > until) throw new Error(what);
    await new Promise((r) => setTimeout(r, 250));
  }
}

process.on('SIGINT', () => {
  console.log('\nstopping the demo');
  shutdown(0);
});
process.on('SIGTERM', () => shutdown(0));
main().catch((err: unknown) => {
  process.stderr.write(`demo: ${(err as Error).message}\n`);
  shutdown(1);
});
