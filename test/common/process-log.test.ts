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

// ...and a reader that lags does not stop the process: 5,000 lines (1.3 MB, twenty times a pipe's 64 KiB) are logged
// while nobody reads the pipe; the child carries on to its next statement, and every line arrives once read.
// (sonic-boom's synchronous mode sleeps 100 ms at a time until the reader has read: the child never gets there.)
t.test('a full pipe does not block the logging process; every line arrives, in order', async (t) => {
  const module = join(packageRoot(), 'dist', 'common', 'process-log.js');
  const script = `
    const { processLogger } = await import(${JSON.stringify(module)});
    const log = processLogger('verdict-test', 'info');
    for (let i = 0; i < 5000; i++) log.info({ i, pad: 'x'.repeat(200) }, 'agent disconnected');
    process.stderr.write('logged\\n');
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.pause();
  const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
  const logged = await new Promise<boolean>((resolve) => {
    const bound = setTimeout(() => resolve(false), 30_000);
    child.stderr.on('data', (b: Buffer) => {
      if (b.toString().includes('logged')) {
        clearTimeout(bound);
        resolve(true);
      }
    });
  });
  t.ok(logged, 'the child logged everything while its stdout was not read');
  let out = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  child.stdout.resume();
  await closed;
  const seq = out
    .split('\n')
    .filter(Boolean)
    .map((l) => (JSON.parse(l) as { i: number }).i);
  t.equal(seq.length, 5000, 'every line');
  t.ok(
    seq.every((v, k) => v === k),
    'in order, none twice',
  );
});

t.test('the reader of stdout gone: logging goes on, the process does not die of EPIPE', async (t) => {
  const module = join(packageRoot(), 'dist', 'common', 'process-log.js');
  const script = `
    const { processLogger } = await import(${JSON.stringify(module)});
    const log = processLogger('verdict-test', 'info');
    log.info('first');
    await new Promise((r) => setTimeout(r, 300));
    for (let i = 0; i < 2000; i++) log.info({ i, pad: 'x'.repeat(200) }, 'after the reader left');
    await new Promise((r) => setTimeout(r, 100));
    process.stderr.write('still here\\n');
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr.on('data', (b: Buffer) => (err += b.toString()));
  // The first line read, the reading end is closed.
  await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
  child.stdout.destroy();
  const code = await new Promise<number | null>((resolve) => child.once('close', (c) => resolve(c)));
  t.equal(code, 0, 'exit 0');
  t.match(err, /^still here\n$/, 'it went on, and nothing on stderr');
});
