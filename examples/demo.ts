import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { packageRoot } from '../common/package-root.js';
import { table } from '../agent/cis/format.js';
import { buildExampleNodes, EXAMPLE_NODES, type ExampleNode } from './nodes.js';

/**
 * `npm start`: the aggregator on embedded SQLite and one real agent per example
 * node, all as separate processes on loopback, until Ctrl-C or SIGTERM, which
 * stop every process the demo started before it exits.
 */
const root = packageRoot();

const DEMO_USAGE = `The Verdict demo: an aggregator and one agent per example node, on loopback.

Usage:
  npm start -- [--http-port 8080] [--grpc-port 9090] [--dir DIR]
  node dist/examples/demo.js [--http-port N] [--grpc-port N] [--dir DIR]

  --http-port N  the HTTP API on 127.0.0.1 (default $VERDICT_DEMO_HTTP_PORT, else 8080; 0 picks a free port)
  --grpc-port N  the agents' gRPC port on 127.0.0.1 (default $VERDICT_DEMO_GRPC_PORT, else 9090; 0 picks a free port)
  --dir DIR      the example nodes, database, spool and logs (default $VERDICT_DEMO_DIR, else .demo in the repository)
`;

/** A failure the user can act on: printed as one line, never with a stack. */
class DemoError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly exitCode = 1,
  ) {
    super(`${code}: ${message}`);
  }
}

interface DemoOptions {
  httpPort: number;
  grpcPort: number;
  dir: string;
}

/** Where each port setting comes from, for the messages that name them. */
const PORTS = {
  http: { flag: '--http-port', env: 'VERDICT_DEMO_HTTP_PORT', fallback: 8080, what: 'the HTTP API' },
  grpc: { flag: '--grpc-port', env: 'VERDICT_DEMO_GRPC_PORT', fallback: 9090, what: "the agents' gRPC port" },
} as const;

function parseDemoArgs(argv: string[], env: NodeJS.ProcessEnv): DemoOptions | 'help' {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        'http-port': { type: 'string' },
        'grpc-port': { type: 'string' },
        dir: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    throw new DemoError('VERDICT_USAGE', `${(err as Error).message}; run with --help`, 2);
  }
  if (values.help) return 'help';
  const port = (which: keyof typeof PORTS, given: string | undefined): number => {
    const p = PORTS[which];
    const raw = given ?? env[p.env] ?? String(p.fallback);
    const n = Number(raw);
    if (!/^\d{1,5}$/.test(raw.trim()) || n > 65535)
      throw new DemoError(
        'VERDICT_USAGE',
        `${given !== undefined ? p.flag : p.env} must be a port number from 0 to 65535, not "${raw}"`,
        2,
      );
    return n;
  };
  const httpPort = port('http', values['http-port']);
  const grpcPort = port('grpc', values['grpc-port']);
  if (httpPort !== 0 && httpPort === grpcPort)
    throw new DemoError('VERDICT_USAGE', `the HTTP and gRPC ports are both ${httpPort}; give them different ports`, 2);
  return { httpPort, grpcPort, dir: resolve(values.dir ?? env.VERDICT_DEMO_DIR ?? join(root, '.demo')) };
}

/**
 * Hold a port on 127.0.0.1 (port 0: a free one) until release(), so the two
 * free ports picked cannot be the same one. A port in use is the demo's most
 * common failure (a second demo, another program on 8080): say which setting
 * moves it.
 */
function reservePort(which: keyof typeof PORTS, port: number): Promise<{ port: number; release: () => Promise<void> }> {
  const p = PORTS[which];
  return new Promise((resolvePort, reject) => {
    const srv: Server = createServer();
    srv.once('error', (err: NodeJS.ErrnoException) => {
      const other = port < 65535 ? port + 1 : 0;
      const move = `choose another with ${p.flag} (npm start -- ${p.flag} ${other}) or ${p.env}=${other}; 0 picks a free port`;
      if (err.code === 'EADDRINUSE')
        reject(
          new DemoError(
            'VERDICT_DEMO_PORT_IN_USE',
            `port ${port} on 127.0.0.1 (${p.what}) is already in use, by another program or a demo still running; ${move}`,
          ),
        );
      else if (err.code === 'EACCES')
        reject(
          new DemoError(
            'VERDICT_DEMO_PORT_DENIED',
            `port ${port} on 127.0.0.1 (${p.what}) needs privileges this user lacks; ${move}`,
          ),
        );
      else
        reject(
          new DemoError(
            'VERDICT_DEMO_PORT_UNUSABLE',
            `cannot listen on 127.0.0.1:${port} (${p.what}): ${err.message}; ${move}`,
          ),
        );
    });
    srv.listen(port, '127.0.0.1', () => {
      const addr = srv.address();
      resolvePort({
        port: typeof addr === 'object' && addr ? addr.port : port,
        release: () => new Promise((r) => srv.close(() => r())),
      });
    });
  });
}

// ---------------------------------------------------------------- child processes

const children: ChildProcess[] = [];
let shuttingDown = false;
const alive = () => children.filter((c) => c.exitCode === null && c.signalCode === null);

function start(args: string[], logFile: string): ChildProcess {
  if (shuttingDown) throw new DemoError('VERDICT_DEMO_STOPPING', 'the demo is stopping');
  const child = spawn(process.execPath, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, LOG_LEVEL: process.env.LOG_LEVEL ?? 'info' },
  });
  const out = createWriteStream(logFile);
  child.stdout?.pipe(out);
  child.stderr?.pipe(out);
  children.push(child);
  return child;
}

/** Say when a child exits that should not have (not while the demo stops), and what follows. */
function watchExit(child: ChildProcess, name: string, logFile: string, then?: () => void): void {
  const report = (code: number | null, signal: NodeJS.Signals | null) => {
    if (shuttingDown) return;
    process.stderr.write(`demo: ${name} exited (${signal ?? code}); see ${logFile}\n`);
    then?.();
  };
  if (child.exitCode !== null || child.signalCode !== null) report(child.exitCode, child.signalCode);
  else child.once('exit', report);
}

/**
 * Stop every process the demo started, then exit: SIGTERM (the agents and the
 * aggregator shut down cleanly on it), SIGKILL for any still running after 5 s.
 * A second Ctrl-C does not wait.
 */
function shutdown(code: number): void {
  if (shuttingDown) {
    for (const c of alive()) c.kill('SIGKILL');
    process.exit(code);
  }
  shuttingDown = true;
  const running = alive();
  const exited = running.map((c) => new Promise((r) => c.once('exit', r)));
  for (const c of running) c.kill('SIGTERM');
  setTimeout(() => {
    for (const c of alive()) c.kill('SIGKILL');
  }, 5000).unref();
  // Exit even if a killed child is never reaped (it cannot block the exit).
  setTimeout(() => process.exit(code), 7000).unref();
  void Promise.all(exited).then(() => process.exit(code));
}

/** The line the aggregator printed when it gave up, if any (its error code and message). */
function aggregatorFailure(logFile: string): string | undefined {
  const text = existsSync(logFile) ? readFileSync(logFile, 'utf8') : '';
  return text.split('\n').find((l) => l.startsWith('verdict-aggregator: '));
}

async function waitFor(
  probe: () => Promise<boolean>,
  timeoutMs: number,
  what: string,
  failed?: () => DemoError | undefined,
): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const failure = failed?.();
    if (failure) throw failure;
    try {
      if (await probe()) return;
    } catch {
      // not up yet
    }
    if (Date.now() > until) throw new DemoError('VERDICT_DEMO_TIMEOUT', what);
    await new Promise((r) => setTimeout(r, 250));
  }
}

// ---------------------------------------------------------------- the demo

/** Empty what a previous demo left in `dir` (only the demo's own files: --dir may name any directory). */
function prepareDir(dir: string): { logs: string; nodes: string; flowsFile: string } {
  for (const entry of ['nodes', 'logs', 'flows', 'spool', 'verdict.db', 'verdict.db-wal', 'verdict.db-shm'])
    rmSync(join(dir, entry), { recursive: true, force: true });
  const logs = join(dir, 'logs');
  mkdirSync(logs, { recursive: true });
  // The recorded Calico flow log, moved in time so it ends a minute ago: the
  // network-access summary of the last hour then shows it.
  const sample = readFileSync(join(root, 'examples', 'flows', 'calico', 'flows.log'), 'utf8')
    .split('\n')
    .filter(Boolean);
  const lastEnd = Math.max(...sample.map((l) => (JSON.parse(l) as { end_time: number }).end_time));
  const shift = Math.floor(Date.now() / 1000) - 60 - lastEnd;
  const flowsFile = join(dir, 'flows', 'calico', 'flows.log');
  mkdirSync(join(dir, 'flows', 'calico'), { recursive: true });
  writeFileSync(
    flowsFile,
    sample
      .map((l) => {
        const r = JSON.parse(l) as { start_time: number; end_time: number };
        return JSON.stringify({ ...r, start_time: r.start_time + shift, end_time: r.end_time + shift });
      })
      .join('\n') + '\n',
  );
  return { logs, nodes: join(dir, 'nodes'), flowsFile };
}

async function startAggregator(o: DemoOptions, httpPort: number, grpcPort: number, logs: string): Promise<string> {
  const logFile = join(logs, 'aggregator.log');
  const aggregator = start(
    [
      join(root, 'dist/aggregator/cli.js'),
      '--http',
      `127.0.0.1:${httpPort}`,
      '--grpc',
      `127.0.0.1:${grpcPort}`,
      '--db',
      `sqlite:${join(o.dir, 'verdict.db')}`,
      '--reports',
      join(root, 'examples', 'reports'),
      '--protected-namespaces',
      'payments',
      '--protected-tiers',
      'security',
    ],
    logFile,
  );
  const base = `http://127.0.0.1:${httpPort}`;
  // 'close' comes after its output has been read, so the log holds its last words.
  let closed = false;
  aggregator.once('close', () => (closed = true));
  await waitFor(
    async () => (await fetch(`${base}/readyz`)).ok,
    20_000,
    `the aggregator did not become ready; see ${logFile}`,
    () => {
      if (!closed) return undefined;
      const said = aggregatorFailure(logFile);
      // Another program took a port between the demo's check and the aggregator's listen.
      if (said?.includes('EADDRINUSE'))
        return new DemoError(
          'VERDICT_DEMO_PORT_IN_USE',
          `${said.replace(/^verdict-aggregator: /, '')}; choose other ports with --http-port / --grpc-port`,
        );
      return new DemoError(
        'VERDICT_DEMO_AGGREGATOR_FAILED',
        `the aggregator exited (${aggregator.signalCode ?? aggregator.exitCode}) before it was ready${said ? `: ${said}` : ''}; see ${logFile}`,
      );
    },
  );
  // Without the aggregator the agents have nowhere to report: stop everything.
  watchExit(aggregator, 'the aggregator', logFile, () => shutdown(1));
  return base;
}

function startAgents(
  grpcPort: number,
  roots: Record<ExampleNode, string>,
  dir: string,
  logs: string,
  flowsFile: string,
): void {
  for (const name of EXAMPLE_NODES) {
    const flows =
      name === 'worker-hardened'
        ? ['--flows', `calico:${flowsFile}`, '--spool', join(dir, 'spool', name), '--flow-window-ms', '2000']
        : [];
    const logFile = join(logs, `agent-${name}.log`);
    watchExit(
      start(
        [
          join(root, 'dist/agent/cli.js'),
          'run',
          '--aggregator',
          `127.0.0.1:${grpcPort}`,
          '--host-root',
          roots[name],
          '--node-name',
          name,
          '--watch-interval-ms',
          '500',
          ...flows,
        ],
        logFile,
      ),
      `agent ${name}`,
      logFile,
    );
  }
}

async function main(argv: string[]): Promise<void> {
  const o = parseDemoArgs(argv, process.env);
  if (o === 'help') {
    process.stdout.write(DEMO_USAGE);
    return;
  }
  // Ports first: a port in use is told before anything is built.
  const http = await reservePort('http', o.httpPort);
  const grpc = await reservePort('grpc', o.grpcPort).catch(async (err: unknown) => {
    await http.release();
    throw err;
  });
  await Promise.all([http.release(), grpc.release()]);

  const { logs, nodes, flowsFile } = prepareDir(o.dir);
  const { roots, ownersFaked } = buildExampleNodes(nodes);
  console.log(`Built ${EXAMPLE_NODES.length} example node roots under ${nodes}`);
  if (ownersFaked)
    console.log(
      '  (not running as root: files keep your own uid/gid, so ownership checks see that instead of root:root)',
    );

  const base = await startAggregator(o, http.port, grpc.port, logs);
  startAgents(grpc.port, roots, o.dir, logs, flowsFile);
  await showResults(base, roots, logs);
}

async function showResults(base: string, roots: Record<ExampleNode, string>, logs: string): Promise<void> {
  type Item = {
    name: string;
    role: string;
    benchmark: string | null;
    scorePercent: number | null;
    pass: number;
    fail: number;
    skip: number;
    rating: string | null;
    connected: boolean;
  };
  let items: Item[] = [];
  await waitFor(
    async () => {
      items = ((await (await fetch(`${base}/api/v1/nodes`)).json()) as { items: Item[] }).items;
      return EXAMPLE_NODES.every((n) => items.some((i) => i.name === n && i.benchmark));
    },
    45_000,
    `not every agent reported; see ${logs}`,
  );
  const summary = (await (await fetch(`${base}/api/v1/cis/summary`)).json()) as {
    scorePercent: number;
    mostFailed: { id: string; title: string; failedNodes: number }[];
  };
  type Access = {
    endpoint: string;
    ingressProtected: boolean | null;
    egressProtected: boolean | null;
    ingressFromInternet: boolean;
    egressToInternet: boolean;
    allowedIn: number;
    deniedIn: number;
    allowedOut: number;
    deniedOut: number;
  };
  let access: Access[] = [];
  await waitFor(
    async () => {
      access = ((await (await fetch(`${base}/api/v1/network-access`)).json()) as { endpoints: Access[] }).endpoints;
      return access.length > 0;
    },
    20_000,
    `the flow sample did not arrive; see ${join(logs, 'agent-worker-hardened.log')}`,
  );

  console.log('');
  console.log(
    table(
      ['NODE', 'ROLE', 'BENCHMARK', 'SCORE', 'PASS', 'FAIL', 'SKIP', 'RATING'],
      items.map((i) => [
        i.name,
        i.role,
        i.benchmark ?? '-',
        `${i.scorePercent ?? '-'}%`,
        String(i.pass),
        String(i.fail),
        String(i.skip),
        i.rating ?? '-',
      ]),
    ).join('\n'),
  );
  console.log(
    `\nCluster score ${summary.scorePercent}%. Most failed: ${
      summary.mostFailed
        .slice(0, 3)
        .map((m) => `${m.id} (${m.failedNodes} nodes)`)
        .join(', ') || 'none'
    }`,
  );
  const yes = (b: boolean | null) => (b === null ? '-' : b ? 'yes' : 'NO');
  console.log('\nNetwork access, last hour (from the bundled Calico flow log):');
  console.log(
    table(
      [
        'ENDPOINT',
        'INGRESS PROTECTED',
        'EGRESS PROTECTED',
        'FROM INTERNET',
        'TO INTERNET',
        'IN allow/deny',
        'OUT allow/deny',
      ],
      access.map((a) => [
        a.endpoint,
        yes(a.ingressProtected),
        yes(a.egressProtected),
        a.ingressFromInternet ? 'yes' : '',
        a.egressToInternet ? 'yes' : '',
        `${a.allowedIn}/${a.deniedIn}`,
        `${a.allowedOut}/${a.deniedOut}`,
      ]),
    ).join('\n'),
  );
  // An on-demand run of the network-access report over the last hour, to download.
  const hourAgo = new Date(Date.now() - 3600_000).toISOString();
  const created = (await (
    await fetch(`${base}/api/v1/reports/daily-network-access/runs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ start: hourAgo, end: new Date().toISOString() }),
    })
  ).json()) as { id: string };
  let runStatus = '';
  await waitFor(
    async () => {
      runStatus = (
        (await (await fetch(`${base}/api/v1/reports/daily-network-access/runs/${created.id}`)).json()) as {
          status: string;
        }
      ).status;
      return runStatus === 'succeeded' || runStatus === 'failed';
    },
    20_000,
    'the report run did not finish',
  );
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
  logs       ${logs}

Agents re-check when node files change. Try fixing the weak worker:
  chmod 600 ${join(roots['worker-weak'], 'var/lib/kubelet/config.yaml')}
and watch its score rise in ${base}/api/v1/nodes within seconds.

Ctrl-C (or SIGTERM) stops the demo and every process it started.`);
}

process.on('SIGINT', () => {
  if (!shuttingDown) console.log('\nstopping the demo');
  shutdown(0);
});
process.on('SIGTERM', () => shutdown(0));
main(process.argv.slice(2)).catch((err: unknown) => {
  if (shuttingDown) return; // stopped by a signal while starting: not a failure
  const known = err instanceof DemoError;
  process.stderr.write(
    `demo: ${known ? err.message : `VERDICT_INTERNAL: ${(err as Error)?.message ?? String(err)}`}\n`,
  );
  shutdown(known ? err.exitCode : 1);
});
