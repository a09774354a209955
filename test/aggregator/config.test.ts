import t from 'tap';
import { errorCode } from '../../common/errors.js';
import { AGGREGATOR_DEFAULTS, AGGREGATOR_USAGE, loggedSettings, parseAggregatorArgs } from '../../aggregator/config.js';
import { AGGREGATOR_DEFAULTS_TABLE, AGGREGATOR_FLAGS } from '../../aggregator/defaults.js';

// The flag table in aggregator/defaults.ts is the one place a default is written: the parser, --help and the
// start-up log line come from it, and the defaults are the documented ones.

t.test('no flags: the documented defaults', async (t) => {
  const config = parseAggregatorArgs([], {});
  t.same(config, { ...AGGREGATOR_DEFAULTS, tls: undefined });
  t.match(AGGREGATOR_DEFAULTS, {
    httpAddress: ':8080',
    grpcAddress: ':9090',
    db: 'sqlite:verdict.db',
    maxMessageBytes: 4 * 1024 * 1024,
    logLevel: 'info',
    flowRollupAfterMs: 48 * 3_600_000,
    flowRetentionMs: 30 * 86_400_000,
    auditRetentionMs: 400 * 86_400_000,
    reportStartDelayMs: 30 * 60_000,
    reportTakeoverAfterMs: 30 * 60_000,
    protectedNamespaces: [],
    protectedTiers: [],
    agentServiceAccount: 'system:serviceaccount:verdict:verdict-agent',
  });
  t.equal(AGGREGATOR_DEFAULTS.reportsDir, undefined);
  const fromEnv = parseAggregatorArgs([], { LOG_LEVEL: 'debug' });
  t.equal(fromEnv !== 'help' && fromEnv.logLevel, 'debug', '$LOG_LEVEL replaces the default');
});

t.test('flags are parsed by kind', async (t) => {
  const config = parseAggregatorArgs(
    [
      '--http',
      '127.0.0.1:0',
      '--flow-rollup-after',
      '90s',
      '--flow-retention',
      '2d',
      '--report-start-delay',
      '0',
      '--protected-namespaces',
      ' a, ,b ',
      '--max-message-bytes',
      '2048',
      '--log-level',
      'warn',
      '--tls-cert',
      'c',
      '--tls-key',
      'k',
      '--tls-ca',
      'ca',
    ],
    {},
  );
  t.match(config, {
    httpAddress: '127.0.0.1:0',
    flowRollupAfterMs: 90_000,
    flowRetentionMs: 2 * 86_400_000,
    reportStartDelayMs: 0,
    protectedNamespaces: ['a', 'b'],
    maxMessageBytes: 2048,
    logLevel: 'warn',
    tls: { cert: 'c', key: 'k', ca: 'ca' },
  });
  t.equal(parseAggregatorArgs(['-h'], {}), 'help');
  t.equal(parseAggregatorArgs(['--help'], {}), 'help');
});

t.test('bad values are VerdictErrors with a code, naming the flag', async (t) => {
  const cases: [string[], string, RegExp][] = [
    [['--bogus'], 'VERDICT_USAGE', /Unknown option '--bogus'; run with --help/],
    [
      ['--flow-retention', 'soon'],
      'VERDICT_CONFIG_INVALID',
      /--flow-retention takes a duration like 48h or 30d, not "soon"/,
    ],
    [['--report-takeover-after', '0'], 'VERDICT_CONFIG_INVALID', /--report-takeover-after takes a duration/],
    [
      ['--max-message-bytes', '1023'],
      'VERDICT_CONFIG_INVALID',
      /--max-message-bytes must be an integer of at least 1024/,
    ],
    [['--log-level', 'loud'], 'VERDICT_CONFIG_INVALID', /--log-level must be one of fatal, error, warn, info, debug/],
    [['--http', 'nope'], 'VERDICT_CONFIG_INVALID', /--http: "nope" is not HOST:PORT or :PORT/],
    [['--grpc', ':99999'], 'VERDICT_CONFIG_INVALID', /--grpc: port 99999/],
    [
      ['--flow-retention', '1d'],
      'VERDICT_CONFIG_INVALID',
      /--flow-retention must not be shorter than --flow-rollup-after/,
    ],
    [['--tls-cert', 'c'], 'VERDICT_CONFIG_INVALID', /mutual TLS needs all of --tls-cert, --tls-key and --tls-ca/],
    [
      ['--tls-cert', 'c', '--tls-key', 'k', '--tls-ca', 'ca', '--agent-token-file', 't'],
      'VERDICT_CONFIG_INVALID',
      /either mutual TLS \(--tls-\*\) or --agent-token-file/,
    ],
  ];
  for (const [argv, code, message] of cases) {
    let caught: unknown;
    try {
      parseAggregatorArgs(argv, {});
    } catch (err) {
      caught = err;
    }
    t.equal(errorCode(caught), code, `${argv.join(' ')}: ${code}`);
    t.match((caught as Error).message, message);
    t.ok((caught as Error).message.startsWith(`${code}: `), 'the message starts with the code');
  }
});

t.test('--help lists every flag with its default, from the table', async (t) => {
  for (const [name, spec] of Object.entries(AGGREGATOR_FLAGS)) {
    t.match(AGGREGATOR_USAGE, `--${name}`, `--${name} in --help`);
    if (spec.default) t.match(AGGREGATOR_USAGE, `(default ${spec.default}`, `--${name}'s default in --help`);
  }
  t.match(AGGREGATOR_USAGE, '(default info, or $LOG_LEVEL)');
});

t.test('the start-up log line names the settings marked in the table', async (t) => {
  const logged = loggedSettings(AGGREGATOR_DEFAULTS);
  t.match(logged, { flowRollupAfterMs: 48 * 3_600_000, flowRetentionMs: 30 * 86_400_000, maxMessageBytes: 4194304 });
  t.notOk('db' in logged, 'the database URL (it may hold a password) is not logged');
  t.ok(AGGREGATOR_DEFAULTS_TABLE.timers.retentionIntervalMs > 0);
});
