import { spawn } from 'node:child_process';
import { join } from 'node:path';
import t from 'tap';
import { packageRoot } from '../../common/package-root.js';

// A process that dies abruptly (V8 aborting out of heap) must not take its last log lines with it: the report
// crash-loop test lost "queued once more" this way once, with pino's default buffered stdout. The child logs three
// lines and aborts at once, as an out-of-heap abort would; every line must reach the pipe.
t.test('log lines written right before an abort reach stdout', async (t) => {
  const module = join(packageRoot(), 'dist', 'common', 'process-log.js');
  const script = `
    const { processLogger } = await import(${JSON.stringify(module)});
    const log = processLogger('verdict-test', 'info', { node: 'n1' });
    for (let i = 1; i <= 3; i++) log.warn({ i, pad: 'x'.repeat(20000) }, 'line ' + i);
    process.abort();
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'ignore'] });
  let out = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  const exit = await new Promise<string | null>((resolve) => child.once('close', (_code, signal) => resolve(signal)));
  t.equal(exit, 'SIGABRT', 'the child aborted');
  const lines = out
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { msg: string; program: string; node: string; level: number });
  t.same(
    lines.map((l) => [l.msg, l.program, l.node, l.level]),
    [1, 2, 3].map((i) => [`line ${i}`, 'verdict-test', 'n1', 40]),
    'all three lines, in order, as JSON with the base fields',
  );
});
