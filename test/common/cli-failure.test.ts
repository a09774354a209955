import { spawnSync } from 'node:child_process';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import t from 'tap';
import { cliFailure, listenFailure } from '../../common/cli-failure.js';
import { VerdictError } from '../../common/errors.js';
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
  t.same(cliFailure(new VerdictError('VERDICT_CONFIG_INVALID', '--flow-retention takes a duration'), '--x'), {
    line: 'VERDICT_CONFIG_INVALID: --flow-retention takes a duration',
    exitCode: 2,
  });
  t.same(cliFailure(new VerdictError('VERDICT_USAGE', 'missing argument'), '--x'), {
    line: 'VERDICT_USAGE: missing argument',
    exitCode: 2,
  });
  // Every thrower uses VerdictError: the code is never read from a message, so an uncoded error is a bug.
  t.match(
    cliFailure(new Error('VERDICT_CONFIG_INVALID: --http-tokens x: unreadable'), '--x').line,
    /^VERDICT_INTERNAL: Error: VERDICT_CONFIG_INVALID: --http-tokens x: unreadable\n\s+at /,
  );
  t.same(
    cliFailure(Object.assign(new Error("ENOENT: no such file or directory, open 'x'"), { code: 'ENOENT' }), '--x'),
    { line: "ENOENT: no such file or directory, open 'x'", exitCode: 1 },
    'a system error that names itself is one line',
  );
  t.match(
    cliFailure(
      Object.assign(new Error('listen EADDRINUSE: address already in use 127.0.0.1:8080'), {
        code: 'EADDRINUSE',
        address: '127.0.0.1',
        port: 8080,
      }),
      '--http',
    ).line,
    /^VERDICT_ADDRESS_IN_USE: 127\.0\.0\.1:8080 is already in use .* --http$/,
  );
  t.match(
    cliFailure(
      listenFailure(
        new Error(
          'No address added out of total 1 resolved errors: [listen EADDRINUSE: address already in use [::]:9090]',
        ),
        '[::]:9090',
      ),
      '--grpc',
    ).line,
    /VERDICT_ADDRESS_IN_USE: \[::\]:9090 is already in use by another process; stop it or choose another with --grpc/,
    "grpc-js's uncoded wrapping of a listen error",
  );
  t.same(
    cliFailure(listenFailure(Object.assign(new Error('listen EACCES'), { code: 'EACCES' }), '0.0.0.0:80'), '--http'),
    {
      line: 'VERDICT_ADDRESS_DENIED: may not listen on 0.0.0.0:80 (ports below 1024 need privileges); choose another with --http',
      exitCode: 1,
    },
  );
  const other = new Error('something else');
  t.equal(listenFailure(other, ':1'), other, 'other listen failures pass through');
  t.same(cliFailure(new VerdictError('VERDICT_STORE_UNAVAILABLE', 'no database'), '--x'), {
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
