import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { packageRoot } from '../../../common/package-root.js';
import { buildExampleNodes } from '../../../examples/nodes.js';
import { tempDir } from '../../fixtures/tmp.js';

// The kernel's own record: strace follows the scan process and every process it
// could start, and logs each execve. A scan that ran no program has exactly one
// execve, the one that started node itself. (.ci/run installs strace.)
const STRACE = ['/usr/bin/strace', '/bin/strace'].find((p) => existsSync(p));
const CLI = join(packageRoot(), 'dist', 'agent', 'cli.js');

t.test('a full control-plane scan starts no child process', async (t) => {
  t.ok(STRACE, 'strace is installed (apt-get install -y strace)');
  if (!STRACE) return;
  const dir = tempDir(t);
  const { roots } = buildExampleNodes(join(dir, 'nodes'));
  const log = join(dir, 'strace.log');
  const r = spawnSync(STRACE, ['-f', '-qq', '-e', 'trace=execve,execveat', '-o', log, process.execPath, CLI, 'scan', '--host-root', roots['control-plane-1'], '--format', 'json'], { encoding: 'utf8' });
  t.equal(r.status, 0, r.stderr);
  const report = JSON.parse(r.stdout) as { checks: unknown[]; nodeRole: string };
  t.equal(report.nodeRole, 'control-plane');
  t.ok(report.checks.length > 100, 'the scan did its work');
  const execs = readFileSync(log, 'utf8').split('\n').filter((l) => /execve(at)?\(/.test(l));
  t.equal(execs.length, 1, `only node itself was executed:\n${execs.join('\n')}`);
  t.match(execs[0], new RegExp(process.execPath.replace(/[/.]/g, '\\$&')));
});

t.test('the strace probe does see a child process when one is started (the test can fail)', async (t) => {
  if (!STRACE) return t.fail('strace is not installed');
  const log = join(tempDir(t), 'strace.log');
  spawnSync(STRACE, ['-f', '-qq', '-e', 'trace=execve,execveat', '-o', log, process.execPath, '-e', 'require("node:child_process").spawnSync("true")']);
  const execs = readFileSync(log, 'utf8').split('\n').filter((l) => /execve(at)?\(/.test(l) && !/ENOENT/.test(l));
  t.equal(execs.length, 2);
});
