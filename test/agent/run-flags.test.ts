import { join } from 'node:path';
import { pino } from 'pino';
import t from 'tap';
import { hasCode, VerdictError } from '../../common/errors.js';
import { AGENT_DEFAULTS } from '../../agent/defaults.js';
import { usageLines } from '../../agent/flag-table.js';
import { parseRunArgs, RUN_FLAGS, startAgent } from '../../agent/run.js';
import { SCAN_FLAGS, SCAN_OPTIONS } from '../../agent/cli.js';
import { NodeRootBuilder } from '../../examples/node-root.js';
import { buildHardenedWorker } from '../../examples/nodes.js';
import { tempDir } from '../fixtures/tmp.js';

const base = ['--aggregator', '127.0.0.1:1', '--host-root', '/host'];

t.test('every default of run comes from AGENT_DEFAULTS, written once', async (t) => {
  const saved = process.env.LOG_LEVEL;
  delete process.env.LOG_LEVEL;
  t.teardown(() => {
    if (saved !== undefined) process.env.LOG_LEVEL = saved;
  });
  const D = AGENT_DEFAULTS.run;
  const c = parseRunArgs(['--aggregator', '127.0.0.1:1']);
  t.equal(c.hostRoot, D.hostRoot);
  t.equal(c.rescanIntervalMs, D.rescanIntervalMs);
  t.equal(c.watchIntervalMs, D.watchIntervalMs);
  t.equal(c.debounceMs, D.debounceMs);
  t.equal(c.flowWindowMs, D.flowWindowMs);
  t.equal(c.maxSpoolBytes, D.maxSpoolBytes);
  t.equal(c.logLevel, D.logLevel);
  t.equal(c.benchmark, AGENT_DEFAULTS.scan.benchmark);
  t.equal(c.kubeletConfigz, false);
  t.same(c.flows, []);
  t.same(c.internalCidrs, []);
  t.equal(c.tls, undefined);
  process.env.LOG_LEVEL = 'debug';
  t.equal(parseRunArgs(base).logLevel, 'debug', 'LOG_LEVEL is read when the arguments are parsed');
});

t.test('the usage text is generated from the same tables', async (t) => {
  const lines = usageLines(RUN_FLAGS).join('\n');
  for (const name of Object.keys(RUN_FLAGS)) t.match(lines, `--${name}`);
  t.match(lines, /--flow-window-ms MS +flow aggregation window \(default 15000\)/);
  t.match(lines, /--max-spool-bytes BYTES .*\(default 67108864\)/);
  t.match(lines, /--flows SOURCE .*\(repeatable\)/);
  t.same(Object.keys(SCAN_OPTIONS), Object.keys(SCAN_FLAGS), 'SCAN_OPTIONS are SCAN_FLAGS as parseArgs options');
  t.same(SCAN_OPTIONS.benchmark, { type: 'string', default: 'auto' });
});

t.test('bad run flags are VerdictErrors coded VERDICT_USAGE', async (t) => {
  for (const [args, detail] of [
    [
      ['--tls-cert', '/c'],
      /mutual TLS needs all of --tls-cert, --tls-key and --tls-ca \(missing --tls-key, --tls-ca\)/,
    ],
    [['--log-level', 'loud'], /--log-level must be one of trace, debug, info, warn, error, fatal, silent, not "loud"/],
    [['--max-spool-bytes', '10'], /--max-spool-bytes must be an integer of at least 1048576/],
    [['--flows', 'calico:'], /--flows takes calico:PATH, hubble:PATH, hubble:unix:\/\/SOCKET or goldmane:HOST:PORT/],
    [['--internal-cidr', 'x/8'], /--internal-cidr: "x\/8" is not a CIDR/],
  ] as const) {
    let caught: unknown;
    try {
      parseRunArgs([...base, ...args]);
    } catch (err) {
      caught = err;
    }
    t.ok(hasCode(caught, 'VERDICT_USAGE'), `${args.join(' ')}: VERDICT_USAGE`);
    t.match((caught as VerdictError).detail, detail);
    t.notMatch((caught as VerdictError).detail, /^VERDICT_/, 'the detail carries no code prefix');
  }
  t.same(parseRunArgs([...base, '--tls-cert', 'c', '--tls-key', 'k', '--tls-ca', 'a']).tls, {
    cert: 'c',
    key: 'k',
    ca: 'a',
  });
});

t.test('startAgent composes start/stop components, started in order and stopped in reverse', async (t) => {
  const b = new NodeRootBuilder(join(tempDir(t), 'node'));
  buildHardenedWorker(b);
  const flows = join(tempDir(t), 'flows.log');
  const config = parseRunArgs([
    '--aggregator',
    '127.0.0.1:1',
    '--host-root',
    b.root,
    '--node-name',
    'compose-1',
    '--flows',
    `calico:${flows}`,
  ]);
  const agent = startAgent(config, pino({ level: 'silent' }));
  t.same(
    agent.components.map((c) => c.name),
    ['cluster', 'stream', 'flows', 'scanner', 'file-watch', 'rescan'],
  );
  const stopped: string[] = [];
  for (const c of agent.components) {
    const stop = c.stop.bind(c);
    (c as { stop(): void }).stop = () => {
      stopped.push(c.name);
      stop();
    };
  }
  await agent.scanNow();
  agent.stop();
  t.same(stopped, ['rescan', 'file-watch', 'scanner', 'flows', 'stream', 'cluster'], 'timers, flows, then streams');
  t.ok(agent.flows, 'the flow capture is exposed');
});
