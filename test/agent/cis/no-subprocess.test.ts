import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import t from 'tap';
import { packageRoot } from '../../../common/package-root.js';
import { buildExampleNodes } from '../../../examples/nodes.js';
import { tempDir } from '../../fixtures/tmp.js';

// Two proofs. The kernel's own record, where strace is installed: it follows the
// scan process and every process it could start, and logs each execve; a scan
// that ran no program has exactly one execve, the one that started node itself.
// And one that needs nothing but node: Node's permission model without
// --allow-child-process, under which every way to start a process throws
// ERR_ACCESS_DENIED (checked in the process binding, below every JS API).
// strace counts as installed when it is on PATH, so a run with PATH cut down
// to node's own directory shows what a machine without it does.
const STRACE = (process.env.PATH ?? '')
  .split(delimiter)
  .map((dir) => join(dir, 'strace'))
  .find((p) => p.startsWith('/') && existsSync(p));
const NO_STRACE =
  !STRACE && 'needs strace: apt-get install strace (without it, the permission-model test below is the proof)';
const CLI = join(packageRoot(), 'dist', 'agent', 'cli.js');

t.test('a full control-plane scan starts no child process (strace)', { skip: NO_STRACE }, async (t) => {
  if (!STRACE) return;
  const dir = tempDir(t);
  const { roots } = buildExampleNodes(join(dir, 'nodes'));
  const log = join(dir, 'strace.log');
  const r = spawnSync(
    STRACE,
    [
      '-f',
      '-qq',
      '-e',
      'trace=execve,execveat',
      '-o',
      log,
      process.execPath,
      CLI,
      'scan',
      '--host-root',
      roots['control-plane-1'],
      '--format',
      'json',
    ],
    { encoding: 'utf8' },
  );
  t.equal(r.status, 0, r.stderr);
  const report = JSON.parse(r.stdout) as { checks: unknown[]; nodeRole: string };
  t.equal(report.nodeRole, 'control-plane');
  t.ok(report.checks.length > 100, 'the scan did its work');
  const execs = readFileSync(log, 'utf8')
    .split('\n')
    .filter((l) => /execve(at)?\(/.test(l));
  t.equal(execs.length, 1, `only node itself was executed:\n${execs.join('\n')}`);
  t.match(execs[0], new RegExp(process.execPath.replace(/[/.]/g, '\\$&')));
});

t.test(
  'the strace probe does see a child process when one is started (the test can fail)',
  { skip: NO_STRACE },
  async (t) => {
    if (!STRACE) return;
    const log = join(tempDir(t), 'strace.log');
    spawnSync(STRACE, [
      '-f',
      '-qq',
      '-e',
      'trace=execve,execveat',
      '-o',
      log,
      process.execPath,
      '-e',
      'require("node:child_process").spawnSync("true")',
    ]);
    const execs = readFileSync(log, 'utf8')
      .split('\n')
      .filter((l) => /execve(at)?\(/.test(l) && !/ENOENT/.test(l));
    t.equal(execs.length, 2);
  },
);

// Node 20 spells the switch --experimental-permission; later releases --permission.
const PERMISSION_FLAG = process.allowedNodeEnvironmentFlags.has('--permission')
  ? '--permission'
  : '--experimental-permission';
const ATTEMPT = 'VERDICT_TEST_CHILD_PROCESS_ATTEMPT';

/**
 * node's flags for a process that may read every file and start no other
 * process. A preload also writes a line to stderr for every call into
 * child_process, so an attempt whose ERR_ACCESS_DENIED was caught and swallowed
 * (a scan that "falls back" when a tool is missing) is still seen.
 */
function withoutChildProcesses(dir: string): string[] {
  const recorder = join(dir, 'record-child-process.mjs');
  writeFileSync(
    recorder,
    `import childProcess from 'node:child_process';
import { writeSync } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
for (const name of ['spawn', 'spawnSync', 'exec', 'execSync', 'execFile', 'execFileSync', 'fork']) {
  const original = childProcess[name];
  childProcess[name] = function (...args) {
    writeSync(2, '${ATTEMPT} ' + name + ' ' + JSON.stringify(String(args[0])) + '\\n');
    return original.apply(this, args);
  };
}
syncBuiltinESMExports();
`,
  );
  return [PERMISSION_FLAG, '--allow-fs-read=*', '--import', pathToFileURL(recorder).href];
}

// The test runner instruments every child process it can: at spawn time it adds
// its own --import to the child's NODE_OPTIONS, and that module calls
// process.binding, which the permission model refuses. So these children start
// through /bin/sh, which drops NODE_OPTIONS and execs node as a user would run it.
const run = (args: string[]) =>
  spawnSync('/bin/sh', ['-c', 'unset NODE_OPTIONS; exec "$@"', 'sh', process.execPath, ...args], { encoding: 'utf8' });

const attempts = (stderr: string) => stderr.split('\n').filter((l) => l.startsWith(ATTEMPT));

t.test(
  'a full control-plane scan runs, with the same result, where starting a process is not allowed (permission model)',
  async (t) => {
    const dir = tempDir(t);
    const { roots } = buildExampleNodes(join(dir, 'nodes'));
    const scan = ['scan', '--host-root', roots['control-plane-1'], '--format', 'json'];
    const guarded = run([...withoutChildProcesses(dir), CLI, ...scan]);
    t.equal(guarded.status, 0, guarded.status === 0 ? 'the guarded scan exits 0' : guarded.stderr);
    t.same(attempts(guarded.stderr), [], 'no call into child_process, not even one whose error was swallowed');
    const report = JSON.parse(guarded.stdout) as { checks: unknown[]; nodeRole: string };
    t.equal(report.nodeRole, 'control-plane');
    t.ok(report.checks.length > 100, 'the scan did its work');
    const free = run([CLI, ...scan]);
    t.equal(free.status, 0, free.status === 0 ? 'so does the same scan unguarded' : free.stderr);
    t.same(
      report.checks,
      (JSON.parse(free.stdout) as { checks: unknown[] }).checks,
      'every check came out as it does without the guard',
    );
  },
);

t.test('the permission-model probe does stop and see a process being started (the test can fail)', async (t) => {
  const dir = tempDir(t);
  // Starts node again (the one program surely there), swallows any error, says what happened.
  const script = `try { const r = require('node:child_process').spawnSync(process.execPath, ['-e', '']); console.log(r.error ? r.error.code : 'exit ' + r.status); } catch (err) { console.log(err.code); }`;
  const free = run(['-e', script]);
  t.equal(free.stdout.trim(), 'exit 0', 'without the guard the child runs');
  const guarded = run([...withoutChildProcesses(dir), '-e', script]);
  t.equal(guarded.status, 0, guarded.status === 0 ? 'the script caught the error' : guarded.stderr);
  t.equal(guarded.stdout.trim(), 'ERR_ACCESS_DENIED', 'with it the spawn throws');
  t.same(
    attempts(guarded.stderr),
    [`${ATTEMPT} spawnSync ${JSON.stringify(process.execPath)}`],
    'and the swallowed attempt is recorded',
  );
  const uncaught = run([
    ...withoutChildProcesses(dir),
    '-e',
    `require('node:child_process').execFileSync(process.execPath, ['-e', ''])`,
  ]);
  t.not(uncaught.status, 0, 'an attempt nobody catches ends the process');
  t.match(uncaught.stderr, /ERR_ACCESS_DENIED/, 'with ERR_ACCESS_DENIED');
});
