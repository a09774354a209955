import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { cliFailure } from '../common/cli-failure.js';
import { VerdictError } from '../common/errors.js';
import { packageRoot } from '../common/package-root.js';
import { table } from '../agent/cis/format.js';
import { buildExampleNodes, EXAMPLE_NODES, type ExampleNode } from './nodes.js';

/**
 * `npm start`: the aggregator on embedded SQLite and one real agent per example
 * node, all as separate processes on loopback, until Ctrl-C or SIGTERM, which
 * stop every process the demo started before it exits.
 */
const root = packageRoot();

/**
 * Every number and default of the demo, written once: its flags (with the environment variables that replace
 * their defaults; --help is generated from them), the address everything runs on, how long it waits for each step,
 * and the settings it gives the aggregator and the agents.
 */
const DEMO_DEFAULTS = {
  flags: {
    'http-port': {
      value: 'N',
      env: 'VERDICT_DEMO_HTTP_PORT',
      default: '8080',
      description: 'the HTTP API on 127.0.0.1 (0 picks a free port)',
    },
    'grpc-port': {
      value: 'N',
      env: 'VERDICT_DEMO_GRPC_PORT',
      default: '9090',
      description: "the agents' gRPC port on 127.0.0.1 (0 picks a free port)",
    },
    dir: {
      value: 'DIR',
      env: 'VERDICT_DEMO_DIR',
      default: '.demo in the repository',
      description: 'the example nodes, database, spool and logs',
    },
  },
  host: '127.0.0.1',
  /** The demo's directory under the repository, when neither --dir nor $VERDICT_DEMO_DIR says. */
  dirName: '.demo',
  /** On stop: children still running this long after SIGTERM get SIGKILL; the demo exits by the deadline. */
  killAfterMs: 5000,
  exitDeadlineMs: 7000,
  /** Readiness probes are repeated this often, each step for at most its timeout. */
  pollIntervalMs: 250,
  aggregatorReadyTimeoutMs: 20_000,
  agentsReportTimeoutMs: 45_000,
  flowSampleTimeoutMs: 20_000,
  reportRunTimeoutMs: 20_000,
  /** The recorded Calico flow log is moved in time to end this long ago. */
  flowSampleAgeSeconds: 60,
  /** The on-demand report run covers this much time up to now. */
  reportLookbackMs: 3_600_000,
  aggregator: { protectedNamespaces: 'payments', protectedTiers: 'security' },
  agent: { watchIntervalMs: 500, flowWindowMs: 2000 },
} as const;

const HOST = DEMO_DEFAULTS.host;
const FLAGS = DEMO_DEFAULTS.flags;

const DEMO_USAGE = `The Verdict demo: an aggregator and one agent per example node, on loopback.

Usage:
  npm start -- [--http-port ${FLAGS['http-port'].default}] [--grpc-port ${FLAGS['grpc-port'].default}] [--dir DIR]
  node dist/examples/demo.js [--http-port N] [--grpc-port N] [--dir DIR]

${Object.entries(FLAGS)
  .map(([name, f]) => `  --${`${name} ${f.value}`.padEnd(12)} ${f.description} (default $${f.env}, else ${f.default})`)
  .join('\n')}
`;

/** A failure the user can act on: printed as one line, never with a stack (VERDICT_USAGE exits 2, others 1). */
const demoError = (code: string, detail: string) => new VerdictError(code, detail);

interface DemoOptions {
  httpPort: number;
  grpcPort: number;
  dir: string;
}

/** Where each port setting comes from, for the messages that name them. */
const PORTS = {
  http: {
    flag: '--http-port',
    env: FLAGS['http-port'].env,
    fallback: Number(FLAGS['http-port'].default),
    what: 'the HTTP API',
  },
  grpc: {
    flag: '--grpc-port',
    env: FLAGS['grpc-port'].env,
    fallback: Number(FLAGS['grpc-port'].default),
    what: "the agents' gRPC port",
  },
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
    throw demoError('VERDICT_USAGE', `${(err as Error).message}; run with --help`);
  }
  if (values.help) return 'help';
  const port = (which: keyof typeof PORTS, given: string | undefined): number => {
    const p = PORTS[which];
    const raw = given ?? env[p.env] ?? String(p.fallback);
    const n = Number(raw);
    if (!/^\d{1,5}$/.test(raw.trim()) || n > 65535)
      throw demoError(
        'VERDICT_USAGE',
        `${given !== undefined ? p.flag : p.env} must be a port number from 0 to 65535, not "${raw}"`,
      );
    return n;
  };
  const httpPort = port('http', values['http-port']);
  const grpcPort = port('grpc', values['grpc-port']);
  if (httpPort !== 0 && httpPort === grpcPort)
    throw demoError('VERDICT_USAGE', `the HTTP and gRPC ports are both ${httpPort}; give them different ports`);
  return {
    httpPort,
    grpcPort,
    dir: resolve(values.dir ?? env[FLAGS.dir.env] ?? join(root, DEMO_DEFAULTS.dirName)),
  };
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
          demoError(
            'VERDICT_DEMO_PORT_IN_USE',
            `port ${port} on ${HOST} (${p.what}) is already in use, by another program or a demo still running; ${move}`,
          ),
        );
      else if (err.code === 'EACCES')
        reject(
          demoError(
            'VERDICT_DEMO_PORT_DENIED',
            `port ${port} on ${HOST} (${p.what}) needs privileges this user lacks; ${move}`,
          ),
        );
      else
        reject(
          demoError(
            'VERDICT_DEMO_PORT_UNUSABLE',
            `cannot listen on ${HOST}:${port} (${p.what}): ${err.message}; ${move}`,
          ),
        );
    });
    srv.listen(port, HOST, () => {
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
  if (shuttingDown) throw demoError('VERDICT_DEMO_STOPPING', 'the demo is stopping');
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
  }, DEMO_DEFAULTS.killAfterMs).unref();
  // Exit even if a killed child is never reaped (it cannot block the exit).
  setTimeout(() => process.exit(code), DEMO_DEFAULTS.exitDeadlineMs).unref();
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
  failed?: () => VerdictError | undefined,
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
    if (Date.now() > until) throw demoError('VERDICT_DEMO_TIMEOUT', what);
    await new Promise((r) => setTimeout(r, DEMO_DEFAULTS.pollIntervalMs));
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
  const shift = Math.floor(Date.now() / 1000) - DEMO_DEFAULTS.flowSampleAgeSeconds - lastEnd;
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
      `${HOST}:${httpPort}`,
      '--grpc',
      `${HOST}:${grpcPort}`,
      '--db',
      `sqlite:${join(o.dir, 'verdict.db')}`,
      '--reports',
      join(root, 'examples', 'reports'),
      // The cluster the Calico sample's flows came from (pods, namespaces, policies): configured evidence beside them.
      '--cluster-snapshot',
      join(root, 'examples', 'flows', 'cluster'),
      '--protected-namespaces',
      DEMO_DEFAULTS.aggregator.protectedNamespaces,
      '--protected-tiers',
      DEMO_DEFAULTS.aggregator.protectedTiers,
    ],
    logFile,
  );
  const base = `http://${HOST}:${httpPort}`;
  // 'close' comes after its output has been read, so the log holds its last words.
  let closed = false;
  aggregator.once('close', () => (closed = true));
  await waitFor(
    async () => (await fetch(`${base}/readyz`)).ok,
    DEMO_DEFAULTS.aggregatorReadyTimeoutMs,
    `the aggregator did not become ready; see ${logFile}`,
    () => {
      if (!closed) return undefined;
      const said = aggregatorFailure(logFile);
      // Another program took a port between the demo's check and the aggregator's listen.
      const [, code, detail] = /^verdict-aggregator: ([A-Z_]+): (.*)$/.exec(said ?? '') ?? [];
      if (code === 'VERDICT_ADDRESS_IN_USE')
        return demoError(
          'VERDICT_DEMO_PORT_IN_USE',
          `${code}: ${detail}; choose other ports with --http-port / --grpc-port`,
        );
      return demoError(
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
        ? [
            '--flows',
            `calico:${flowsFile}`,
            '--spool',
            join(dir, 'spool', name),
            '--flow-window-ms',
            String(DEMO_DEFAULTS.agent.flowWindowMs),
          ]
        : [];
    const logFile = join(logs, `agent-${name}.log`);
    watchExit(
      start(
        [
          join(root, 'dist/agent/cli.js'),
          'run',
          '--aggregator',
          `${HOST}:${grpcPort}`,
          '--host-root',
          roots[name],
          '--node-name',
          name,
          '--watch-interval-ms',
          String(DEMO_DEFAULTS.agent.watchIntervalMs),
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
    DEMO_DEFAULTS.agentsReportTimeoutMs,
    `not every agent reported; see ${logs}`,
  );
  const summary = (await (await fetch(`${base}/api/v1/cis/summary`)).json()) as {
    scorePercent: number;
    mostFailed: { id: string; title: string; failedNodes: number }[];
  };
  type Access = {
    endpoint: string;
    evidence: string;
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
      // The snapshot's endpoints are there from the start; the sample has arrived when CoreDNS has its traffic.
      return access.some((a) => a.endpoint === 'kube-system/coredns' && a.allowedIn > 0);
    },
    DEMO_DEFAULTS.flowSampleTimeoutMs,
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
  console.log(
    '\nNetwork access, last hour (configured: examples/flows/cluster; observed: the bundled Calico flow log):',
  );
  console.log(
    table(
      [
        'ENDPOINT',
        'EVIDENCE',
        'INGRESS PROTECTED',
        'EGRESS PROTECTED',
        'FROM INTERNET',
        'TO INTERNET',
        'IN allow/deny',
        'OUT allow/deny',
      ],
      access.map((a) => [
        a.endpoint,
        a.evidence,
        yes(a.ingressProtected),
        yes(a.egressProtected),
        a.ingressFromInternet ? 'yes' : '',
        a.egressToInternet ? 'yes' : '',
        `${a.allowedIn}/${a.deniedIn}`,
        `${a.allowedOut}/${a.deniedOut}`,
      ]),
    ).join('\n'),
  );
  // Where configuration and dataplane disagree over the same hour.
  const findings = (
    (await (await fetch(`${base}/api/v1/network-access/findings`)).json()) as {
      items: { endpoint: string; direction: string; kind: string; detail: string }[];
    }
  ).items;
  console.log(`\nNetwork-access findings, last hour: ${findings.length}`);
  for (const f of findings) console.log(`  FINDING ${f.endpoint} ${f.direction} ${f.kind}: ${f.detail}`);
  // An on-demand run of the network-access report over the last hour, to download.
  const hourAgo = new Date(Date.now() - DEMO_DEFAULTS.reportLookbackMs).toISOString();
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
    DEMO_DEFAULTS.reportRunTimeoutMs,
    'the report run did not finish',
  );
  console.log(`\nReport daily-network-access, last hour: ${runStatus}`);
  console.log(`  ${base}/api/v1/reports/daily-network-access/runs/${created.id}`);
  console.log(`  ${base}/api/v1/reports/daily-network-access/runs/${created.id}?format=csv&file=endpoints.csv`);

  console.log(`
Verdict is running:
  dashboard  ${base}/ui/
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
  const { line, exitCode } = cliFailure(err, '--http-port or --grpc-port');
  process.stderr.write(`demo: ${line}\n`);
  shutdown(exitCode);
});
