import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { packageRoot } from '../../common/package-root.js';
import { tempDir } from '../fixtures/tmp.js';

// Bad arguments to `verdict-agent run` and `verdict-aggregator` exit 2 with one line and no stack trace (README,
// Agent and Aggregator). Through the built programs, as users run them. Each case here used to do something else:
// run for ever (a port past 65535, a timer past setTimeout's range, which Node turns into 1 ms: a re-scan loop),
// crash with a stack trace (an unreadable token file, TLS files that are not PEM, a file that is not a SQLite
// database), print three lines (a negative number, which parseArgs takes for a flag), or exit 1 with an errno
// message (a host root that does not exist).

const AGENT = join(packageRoot(), 'dist', 'agent', 'cli.js');
const AGGREGATOR = join(packageRoot(), 'dist', 'aggregator', 'cli.js');
const oneLine = (s: string) => s.trimEnd().split('\n').length === 1 && !/\n\s+at /.test(s);

function exec(cli: string, args: string[]) {
  return spawnSync(process.execPath, [cli, ...args], {
    encoding: 'utf8',
    timeout: 20_000,
    env: { ...process.env, NODE_NAME: 'cli-test', LOG_LEVEL: 'silent' },
  });
}

t.test('verdict-agent run: bad arguments exit 2 with one line', async (t) => {
  const dir = tempDir(t);
  const root = join(dir, 'root');
  mkdirSync(root);
  writeFileSync(join(dir, 'not-pem'), 'hello\n');
  writeFileSync(join(dir, 'empty-token'), '\n');
  const base = ['run', '--aggregator', '127.0.0.1:9', '--host-root', root];
  const cases: [string[], RegExp][] = [
    [['run', '--aggregator', '127.0.0.1:99999', '--host-root', root], /--aggregator .*port/],
    [['run', '--aggregator', '127.0.0.1:0', '--host-root', root], /--aggregator .*port/],
    [[...base, '--watch-interval-ms', '99999999999999999999'], /--watch-interval-ms must be an integer/],
    [[...base, '--rescan-interval-ms', '1e300'], /--rescan-interval-ms must be an integer/],
    [[...base, '--flow-window-ms', '4294967296'], /--flow-window-ms must be an integer/],
    [[...base, '--max-spool-bytes', '1e300'], /--max-spool-bytes must be an integer/],
    [[...base, '--max-spool-bytes', '-5'], /--max-spool-bytes/],
    [[...base, '--token-file', join(dir, 'missing')], /--token-file .*missing/],
    [[...base, '--token-file', join(dir, 'empty-token')], /--token-file .*empty/],
    [
      [
        ...base,
        '--tls-cert',
        join(dir, 'not-pem'),
        '--tls-key',
        join(dir, 'not-pem'),
        '--tls-ca',
        join(dir, 'not-pem'),
      ],
      /--tls-cert, --tls-key and --tls-ca/,
    ],
    [
      [
        ...base,
        '--tls-cert',
        join(dir, 'missing'),
        '--tls-key',
        join(dir, 'not-pem'),
        '--tls-ca',
        join(dir, 'not-pem'),
      ],
      /--tls-cert .*missing/,
    ],
    [['run', '--aggregator', '127.0.0.1:9', '--host-root', join(dir, 'nowhere')], /--host-root .*does not exist/],
    [['run', '--aggregator', '127.0.0.1:9', '--host-root', join(dir, 'not-pem')], /--host-root .*not a directory/],
  ];
  for (const [args, message] of cases) {
    const r = exec(AGENT, args);
    const what = args.slice(1).join(' ').replace(dir, 'DIR');
    t.equal(
      r.status,
      2,
      `${what}: exit 2 (got ${r.status}${r.signal ? `, killed by ${r.signal}: it kept running` : ''})`,
    );
    t.match(r.stderr, message, `${what}: ${r.stderr.trimEnd()}`);
    t.ok(oneLine(r.stderr), `${what}: one line, no stack`);
    t.match(r.stderr, /^verdict-agent: VERDICT_(USAGE|CONFIG_INVALID): /, `${what}: a usage or config code`);
  }
});

t.test('verdict-aggregator: bad arguments exit 2 with one line', async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'not-pem'), 'hello\n');
  writeFileSync(join(dir, 'not-a-db'), 'root:x:0:0:root:/root:/bin/bash\n'.repeat(100));
  const base = ['--http', '127.0.0.1:0', '--grpc', '127.0.0.1:0', '--db', `sqlite:${join(dir, 'verdict.db')}`];
  const cases: [string[], RegExp][] = [
    [[...base, '--max-message-bytes', '-5'], /--max-message-bytes/],
    [[...base, '--report-start-delay', '-1m'], /--report-start-delay/],
    [
      [
        ...base,
        '--tls-cert',
        join(dir, 'not-pem'),
        '--tls-key',
        join(dir, 'not-pem'),
        '--tls-ca',
        join(dir, 'not-pem'),
      ],
      /--tls-cert, --tls-key and --tls-ca/,
    ],
    [['--http', '127.0.0.1:0', '--grpc', '127.0.0.1:0', '--db', `sqlite:${join(dir, 'not-a-db')}`], /--db .*not-a-db/],
    [['verify', '--db', `sqlite:${join(dir, 'not-a-db')}`], /--db .*not-a-db/],
  ];
  for (const [args, message] of cases) {
    const r = exec(AGGREGATOR, args);
    const what = args.join(' ').replaceAll(dir, 'DIR');
    t.equal(
      r.status,
      2,
      `${what}: exit 2 (got ${r.status}${r.signal ? `, killed by ${r.signal}: it kept running` : ''})`,
    );
    t.match(r.stderr, message, `${what}: ${r.stderr.trimEnd()}`);
    t.ok(oneLine(r.stderr), `${what}: one line, no stack`);
  }
});
