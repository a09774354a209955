import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { packageRoot } from '../../common/package-root.js';
import { tempDir } from '../fixtures/tmp.js';
import { until } from '../fixtures/wait.js';

// The demo as people run it: `npm start`, stopped by a signal to npm, must
// leave none of the processes it started behind; a port in use is one plain
// line that names the setting to change.
const root = packageRoot();
const DEMO = join(root, 'dist', 'examples', 'demo.js');

/** Processes whose command line mentions `text`, with their parent pid. */
function processesMentioning(text: string): { pid: number; ppid: number; cmdline: string }[] {
  const out: { pid: number; ppid: number; cmdline: string }[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').join(' ').trim();
      if (!cmdline.includes(text)) continue;
      // stat: "pid (comm) state ppid ..."; comm may hold spaces, so read after the last ')'.
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      out.push({ pid: Number(entry), ppid, cmdline });
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** A port on 127.0.0.1 held by this test until it ends. */
async function busyPort(t: Test): Promise<number> {
  const srv: Server = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => srv.close(() => r())));
  const addr = srv.address();
  return typeof addr === 'object' && addr ? addr.port : 0;
}

t.test(
  'SIGTERM to `npm start` stops the demo, its aggregator and every agent',
  { skip: process.platform !== 'linux' ? 'reads /proc' : false },
  async (t) => {
    const dir = tempDir(t, 'verdict-demo-');
    const realNpm = spawnSync('sh', ['-c', 'command -v npm'], { encoding: 'utf8' }).stdout.trim();
    t.ok(realNpm, 'npm is installed');
    // The real `npm start` script runs, but its `npm run build` step is skipped: `npm test` built dist/ already,
    // and rebuilding it here would rewrite files that other test files are running from.
    const stubs = join(dir, 'bin');
    mkdirSync(stubs);
    writeFileSync(
      join(stubs, 'npm'),
      `#!/bin/sh\nif [ "$1 $2" = "run build" ]; then : > "${dir}/build-skipped"; exit 0; fi\nexec "${realNpm}" "$@"\n`,
    );
    chmodSync(join(stubs, 'npm'), 0o755);
    const script = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: { start: string } })
      .scripts.start;
    t.match(script, /^npm run build --silent && /, 'npm start builds, then runs the demo');

    const npm = spawn(realNpm, ['start', '--silent', '--', '--http-port', '0', '--grpc-port', '0', '--dir', dir], {
      cwd: root,
      env: { ...process.env, PATH: `${stubs}:${process.env.PATH ?? ''}` },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    npm.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    npm.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    const npmExited = new Promise<number | null>((r) => npm.once('exit', (code) => r(code)));
    t.teardown(() => {
      // Only if the test failed half-way: kill what is left of what it started, by pid.
      for (const p of processesMentioning(dir)) process.kill(p.pid, 'SIGKILL');
      npm.kill('SIGKILL');
    });

    await until(
      () => stdout.includes('Verdict is running') || npm.exitCode !== null,
      'the demo to start',
      120_000,
      200,
    );
    t.equal(npm.exitCode, null, `the demo is running (stderr: ${stderr})`);
    const base = /nodes {6}(http:\/\/127\.0\.0\.1:\d+)\/api\/v1\/nodes/.exec(stdout)?.[1];
    t.ok(existsSync(join(dir, 'build-skipped')), "the start script's build step ran (as the stub)");
    t.ok(base, 'it prints its URLs');
    const nodes = (await (await fetch(`${base}/api/v1/nodes`)).json()) as { items: { name: string }[] };
    t.equal(nodes.items.length, 3, 'it serves the three example nodes');
    // Network access from its cluster snapshot and the Calico sample: configured evidence and at least one finding.
    t.match(stdout, /kube-system\/coredns\s+configured/, 'network access shows configured evidence');
    t.match(
      stdout,
      /FINDING kube-system\/coredns ingress protected-but-unprotected-traffic/,
      'and the finding where configuration and traffic disagree',
    );

    const before = processesMentioning(dir);
    const demo = before.filter((p) => p.cmdline.includes('dist/examples/demo.js'));
    t.equal(demo.length, 1, 'one demo process');
    t.equal(
      demo[0]?.ppid,
      npm.pid,
      "npm's child is the demo itself (exec), not a shell that would not pass the signal on",
    );
    t.equal(
      before.filter((p) => p.cmdline.includes('dist/aggregator/cli.js') && p.ppid === demo[0]?.pid).length,
      1,
      'the demo started an aggregator',
    );
    t.equal(
      before.filter((p) => p.cmdline.includes('dist/agent/cli.js') && p.ppid === demo[0]?.pid).length,
      3,
      'and three agents',
    );

    npm.kill('SIGTERM');
    const code = await Promise.race([npmExited, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 15_000))]);
    t.not(code, 'timeout', 'npm exits');
    t.equal(code, 0, 'with status 0: a stop on request is not a failure');
    await until(() => processesMentioning(dir).length === 0, 'every demo process to exit', 10_000, 100).catch(
      () => undefined,
    );
    t.same(
      processesMentioning(dir).map((p) => p.cmdline),
      [],
      'no demo, aggregator or agent process is left',
    );
  },
);

t.test('a port in use: one line naming the port and the setting that moves it, exit 1, nothing started', async (t) => {
  const cases = [
    {
      which: 'HTTP',
      args: (p: number) => ['--http-port', String(p), '--grpc-port', '0'],
      env: {},
      flag: '--http-port',
      variable: 'VERDICT_DEMO_HTTP_PORT',
    },
    {
      which: 'gRPC',
      args: () => ['--http-port', '0'],
      env: (p: number) => ({ VERDICT_DEMO_GRPC_PORT: String(p) }),
      flag: '--grpc-port',
      variable: 'VERDICT_DEMO_GRPC_PORT',
    },
  ];
  for (const c of cases) {
    const port = await busyPort(t);
    const dir = tempDir(t, 'verdict-demo-');
    const env = typeof c.env === 'function' ? c.env(port) : c.env;
    const r = spawnSync(process.execPath, [DEMO, ...c.args(port), '--dir', dir], {
      cwd: root,
      encoding: 'utf8',
      timeout: 30_000,
      env: { ...process.env, ...env },
    });
    t.equal(r.status, 1, `${c.which}: exit status 1`);
    t.match(
      r.stderr,
      new RegExp(`^demo: VERDICT_DEMO_PORT_IN_USE: port ${port} on 127\\.0\\.0\\.1 .* is already in use`),
      `${c.which}: says the port is in use`,
    );
    t.match(r.stderr, c.flag, `${c.which}: names ${c.flag}`);
    t.match(r.stderr, c.variable, `${c.which}: names ${c.variable}`);
    t.equal(r.stderr.trim().split('\n').length, 1, `${c.which}: one line, no stack trace`);
    t.notOk(existsSync(join(dir, 'nodes')), `${c.which}: nothing was built or started`);
    t.same(processesMentioning(dir), [], `${c.which}: no process left`);
  }
});

t.test('bad flags: exit 2 with the reason', async (t) => {
  for (const [args, said] of [
    [['--http-port', 'eighty'], '--http-port must be a port number'],
    [['--http-port', '9999', '--grpc-port', '9999'], 'both 9999'],
    [['--no-such-flag'], "Unknown option '--no-such-flag'"],
  ] as const) {
    const r = spawnSync(process.execPath, [DEMO, ...args], { cwd: root, encoding: 'utf8', timeout: 30_000 });
    t.equal(r.status, 2, `${args.join(' ')}: exit 2`);
    t.match(r.stderr, `demo: VERDICT_USAGE: `, `${args.join(' ')}: a usage error`);
    t.match(r.stderr, said);
  }
  const help = spawnSync(process.execPath, [DEMO, '--help'], { cwd: root, encoding: 'utf8' });
  t.equal(help.status, 0);
  for (const f of [
    '--http-port',
    '--grpc-port',
    '--dir',
    'VERDICT_DEMO_HTTP_PORT',
    'VERDICT_DEMO_GRPC_PORT',
    'VERDICT_DEMO_DIR',
  ])
    t.match(help.stdout, f, `--help documents ${f}`);
});
