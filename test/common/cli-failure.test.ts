import { spawnSync } from 'node:child_process';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import t from 'tap';
import { cliFailure } from '../../common/cli-failure.js';
import { packageRoot } from '../../common/package-root.js';
import { tempDir } from '../fixtures/tmp.js';

// Both programs fail with one line a user can act on: bad arguments exit 2,
// a port already taken names the address and the flag; only a bug shows a stack.
const root = packageRoot();
const AGENT = join(root, 'dist', 'agent', 'cli.js');
const AGGREGATOR = join(root, 'dist', 'aggregator', 'cli.js');

t.test('errors become one line and an exit code', async (t) => {
  const parseError = Object.assign(new TypeError("Unknown option '--bogus'"), {
    code: 'ERR_PARSE_ARGS_UNKNOWN_OPTION',
  });
  t.same(cliFailure(parseError, '--x'), {
    line: "VERDICT_USAGE: Unknown option '--bogus'; run with --help for the options",
    exitCode: 2,
  });
  t.same(cliFailure(new Error('VERDICT_CONFIG_INVALID: --flow-retention takes a duration'), '--x'), {
    line: 'VERDICT_CONFIG_INVALID: --flow-retention takes a duration',
    exitCode: 2,
  });
  t.match(
    cliFailure(
      Object.assign(new Error('listen EADDRINUSE: address already in use 127.0.0.1:8080'), { code: 'EADDRINUSE' }),
      '--http',
    ).line,
    /^VERDICT_ADDRESS_IN_USE: 127\.0\.0\.1:8080 is already in use .* --http$/,
  );
  t.match(
    cliFailure(
      new Error(
        'No address added out of total 1 resolved errors: [listen EADDRINUSE: address already in use [::]:9090]',
      ),
      '--grpc',
    ).line,
    /VERDICT_ADDRESS_IN_USE: \[::\]:9090/,
  );
  t.same(cliFailure(new Error('VERDICT_STORE_UNAVAILABLE: no database'), '--x'), {
    line: 'VERDICT_STORE_UNAVAILABLE: no database',
    exitCode: 1,
  });
  const bug = cliFailure(new Error('undefined is not a function'), '--x');
  t.match(bug.line, /^VERDICT_INTERNAL: Error: undefined is not a function\n\s+at /, 'a bug keeps its stack');
});

t.test('real processes: unknown flags exit 2 with one line; a taken port says which and what to do', async (t) => {
  for (const [program, args] of [
    [AGENT, ['run', '--bogus']],
    [AGENT, ['scan', '--level']],
    [AGGREGATOR, ['--bogus']],
    [AGGREGATOR, ['--flow-retention', 'soon']],
  ] as const) {
    const r = spawnSync(process.execPath, [program, ...args], { encoding: 'utf8' });
    t.equal(r.status, 2, `${args.join(' ')}: exit 2`);
    t.equal(r.stderr.trim().split('\n').length, 1, `${args.join(' ')}: one line (${r.stderr.trim()})`);
    t.notMatch(r.stderr, /\n\s+at /, 'no stack trace');
  }
  const taken: Server = await new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => resolve(s));
  });
  t.teardown(() => taken.close());
  const port = (taken.address() as { port: number }).port;
  const r = spawnSync(
    process.execPath,
    [AGGREGATOR, '--db', `sqlite:${join(tempDir(t), 'v.db')}`, '--http', `127.0.0.1:${port}`, '--grpc', '127.0.0.1:0'],
    { encoding: 'utf8', timeout: 20_000 },
  );
  t.equal(r.status, 1);
  t.match(
    r.stderr,
    new RegExp(
      `verdict-aggregator: VERDICT_ADDRESS_IN_USE: 127\\.0\\.0\\.1:${port} is already in use by another process; stop it or choose another with --http or --grpc`,
    ),
  );
  t.notMatch(r.stderr, /\n\s+at /, 'no stack trace');
});
