import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { packageRoot } from '../../common/package-root.js';
import { buildExampleNodes } from '../../examples/nodes.js';
import { tempDir } from '../fixtures/tmp.js';

t.test('verdict-agent run loads no HTTP client package: its API server calls go through node:https', async (t) => {
  // A module hook in the agent's own process records every module it imports; the built CLI is run as the DaemonSet
  // runs it (an aggregator that is not there is fine: everything `run` imports is in by its first log line).
  const dir = tempDir(t);
  const { roots } = buildExampleNodes(dir);
  const log = join(dir, 'imports.log');
  const flows = join(dir, 'flows.log');
  writeFileSync(flows, '');
  const hooks = `
    import { appendFileSync } from 'node:fs';
    export async function resolve(specifier, context, next) {
      const r = await next(specifier, context);
      appendFileSync(${JSON.stringify(log)}, r.url + '\\n');
      return r;
    }`;
  const register = `import { register } from 'node:module'; register('data:text/javascript,' + encodeURIComponent(${JSON.stringify(hooks)}));`;
  const agent = spawn(
    process.execPath,
    [
      '--import',
      `data:text/javascript,${encodeURIComponent(register)}`,
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
  const urls = readFileSync(log, 'utf8').split('\n').filter(Boolean);
  t.ok(
    urls.some((u) => u.endsWith('/common/kube-client.js')),
    'the API server client is loaded (the hook saw the whole graph)',
  );
  const packages = new Set(urls.map((u) => /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(u)?.[1]).filter(Boolean));
  t.notOk(packages.has('undici'), `undici is not loaded (packages: ${[...packages].sort().join(', ')})`);
});
