import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { packageRoot } from '../../common/package-root.js';
import { buildExampleNodes } from '../../examples/nodes.js';
import { tempDir } from '../fixtures/tmp.js';
import { importedModules, importLoggingFlags } from '../fixtures/import-log.js';

t.test('verdict-agent run loads no HTTP client package: its API server calls go through node:https', async (t) => {
  // A module hook in the agent's own process records every module it imports; the built CLI is run as the DaemonSet
  // runs it (an aggregator that is not there is fine: everything `run` imports is in by its first log line).
  const dir = tempDir(t);
  const { roots } = buildExampleNodes(dir);
  const log = join(dir, 'imports.log');
  const flows = join(dir, 'flows.log');
  writeFileSync(flows, '');
  const agent = spawn(
    process.execPath,
    [
      ...importLoggingFlags(log),
      join(packageRoot(), 'dist', 'agent', 'cli.js'),
      'run',
      '--aggregator',
      '127.0.0.1:1',
      '--host-root',
      roots['worker-hardened'],
      '--node-name',
      'imports-test',
      '--flows',
      `calico:${flows}`,
      '--log-level',
      'info',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const exited = new Promise<void>((resolve) => agent.once('close', () => resolve()));
  let out = '';
  await new Promise<void>((resolve, reject) => {
    agent.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('verdict-agent starting')) resolve();
    });
    agent.once('exit', (code) => reject(new Error(`verdict-agent exited ${code} before starting: ${out}`)));
  });
  agent.kill('SIGKILL');
  await exited;
  const { urls, packages } = importedModules(log);
  t.ok(
    urls.some((u) => u.endsWith('/common/kube-client.js')),
    'the API server client is loaded (the hook saw the whole graph)',
  );
  t.notOk(packages.has('undici'), `undici is not loaded (packages: ${[...packages].sort().join(', ')})`);
});
