import { appendFileSync, renameSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { FileFollower, type FollowPosition } from '../../../agent/flows/follow.js';
import { tempDir } from '../../fixtures/tmp.js';

const lines = (f: FileFollower) => f.poll().lines.map((l) => l.line);

t.test('only whole lines are read; a partial line waits for its newline', async (t) => {
  const file = join(tempDir(t), 'flows.log');
  writeFileSync(file, 'a\nb\npart');
  const f = new FileFollower(file);
  t.same(lines(f), ['a', 'b']);
  appendFileSync(file, 'ial\nc\n');
  t.same(lines(f), ['partial', 'c']);
  t.same(lines(f), []);
});

t.test('a missing file is not an error; it is read once it appears', async (t) => {
  const file = join(tempDir(t), 'flows.log');
  const f = new FileFollower(file);
  t.same(lines(f), []);
  writeFileSync(file, 'x\n');
  t.same(lines(f), ['x']);
});

t.test('rotation: the rest of the renamed file is read, then the new file from its start', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'flows.log');
  writeFileSync(file, '1\n2\n');
  const f = new FileFollower(file);
  t.same(lines(f), ['1', '2']);
  appendFileSync(file, '3\n'); // written after our last read, before rotation
  renameSync(file, join(dir, 'flows.log.1'));
  writeFileSync(file, '4\n');
  // The old file's rest first; once it is finished, the new file.
  const first = f.poll();
  const second = f.poll();
  t.same(
    [...first.lines, ...second.lines].map((l) => l.line),
    ['3', '4'],
  );
  t.match([...first.events, ...second.events].join('\n'), /rotated: finished .*flows\.log\.1/);
});

t.test('truncation in place: reading starts over at the beginning', async (t) => {
  const file = join(tempDir(t), 'flows.log');
  writeFileSync(file, 'old-1\nold-2\n');
  const f = new FileFollower(file);
  t.same(lines(f), ['old-1', 'old-2']);
  truncateSync(file, 0);
  appendFileSync(file, 'new\n');
  const r = f.poll();
  t.same(
    r.lines.map((l) => l.line),
    ['new'],
  );
  t.match(r.events[0], /truncated/);
});

t.test('a saved position resumes exactly, also across a rotation that happened while stopped', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'flows.log');
  writeFileSync(file, '1\n2\n');
  const first = new FileFollower(file);
  t.same(lines(first), ['1', '2']);
  const saved = first.saved;
  appendFileSync(file, '3\n');
  renameSync(file, join(dir, 'flows.log.1'));
  writeFileSync(file, '4\n5\n');
  const second = new FileFollower(file, saved);
  t.same([...lines(second), ...lines(second)], ['3', '4', '5']);
});

t.test('a line longer than the limit is reported once and skipped, and reading goes on', async (t) => {
  const file = join(tempDir(t), 'flows.log');
  writeFileSync(file, `ok-1\n${'x'.repeat(1024 * 1024 + 10)}\nok-2\n`);
  const f = new FileFollower(file);
  const r = f.poll();
  t.same(
    r.lines.map((l) => l.line),
    ['ok-1', 'ok-2'],
  );
  t.equal(r.tooLong.length, 1);
});

t.test('truncation noticed even when the file is refilled past the old offset before the next read', async (t) => {
  const file = join(tempDir(t), 'flows.log');
  writeFileSync(file, 'a1\na2\n');
  const f = new FileFollower(file);
  t.same(lines(f), ['a1', 'a2']);
  truncateSync(file, 0);
  appendFileSync(file, 'b1-longer-line\nb2-longer-line\nb3\n');
  t.same(lines(f), ['b1-longer-line', 'b2-longer-line', 'b3']);
});

t.test('a rotated file longer than one read is finished over several polls before the new file', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'flows.log');
  writeFileSync(file, '');
  const f = new FileFollower(file);
  f.poll();
  const big = Array.from({ length: 3000 }, (_, i) => `old-${i}-${'x'.repeat(100)}`);
  appendFileSync(file, big.join('\n') + '\n');
  renameSync(file, `${file}.1`);
  writeFileSync(file, 'new-1\n');
  const seen: string[] = [];
  for (let i = 0; i < 20; i++) seen.push(...f.poll(64 * 1024).lines.map((l) => l.line));
  t.equal(seen.length, 3001, 'nothing dropped past the first read');
  t.equal(seen[2999], big[2999]);
  t.equal(seen[3000], 'new-1', 'the new file only after the old one ends');
});

t.test('a flow path that is a link, a FIFO or a directory is refused, never followed or blocked on', async (t) => {
  const { symlinkSync, mkdirSync } = await import('node:fs');
  const { execFileSync } = await import('node:child_process');
  const dir = tempDir(t);
  writeFileSync(join(dir, 'secret'), 'root:x:0:0\n');
  symlinkSync(join(dir, 'secret'), join(dir, 'link.log'));
  t.throws(() => new FileFollower(join(dir, 'link.log')).poll(), /not a regular file/);
  execFileSync('mkfifo', [join(dir, 'fifo.log')]);
  t.throws(() => new FileFollower(join(dir, 'fifo.log')).poll(), /not a regular file/);
  mkdirSync(join(dir, 'dir.log'));
  t.throws(() => new FileFollower(join(dir, 'dir.log')).poll(), /not a regular file/);
});

t.test(
  'with a line reader each line goes to it as read, as the same lines and offsets poll() would return',
  async (t) => {
    const dir = tempDir(t);
    // CRLF, blank lines of ASCII and of Unicode whitespace (left out, as trim() sees them), non-ASCII text, a line
    // longer than one read of the follower's buffer, and a partial last line.
    const long = `{"x":"${'é'.repeat(40_000)}"}`;
    const text = `a\r\n  \t\n\u00a0\u2028\nnaïve\n\n${long}\nb\r\r\nc\npart`;
    writeFileSync(join(dir, 'one.log'), text);
    writeFileSync(join(dir, 'two.log'), text);
    const returned = new FileFollower(join(dir, 'one.log')).poll().lines;
    const read: { line: string; offset: number }[] = [];
    const streamed = new FileFollower(join(dir, 'two.log')).poll(undefined, (line, _file, offset) =>
      read.push({ line, offset }),
    );
    t.same(streamed.lines, [], 'not also returned');
    t.same(
      returned.map((l) => l.line),
      ['a', 'naïve', long, 'b\r', 'c'],
    );
    t.same(
      read,
      returned.map((l) => ({ line: l.line, offset: l.offset })),
    );
    t.equal(read[2]?.offset, Buffer.byteLength('a\r\n  \t\n\u00a0\u2028\nnaïve\n\n'), 'offsets are in bytes');
  },
);

t.test('a restart while a line over the limit is being skipped skips the rest of it, counted once', async (t) => {
  const file = join(tempDir(t), 'flows.log');
  writeFileSync(file, `a\n${'x'.repeat(1200 * 1024)}`); // still being written
  const before = new FileFollower(file);
  const r1 = before.poll();
  t.same(
    r1.lines.map((l) => l.line),
    ['a'],
  );
  t.equal(r1.tooLong.length, 1);
  appendFileSync(file, `${'y'.repeat(100)}\nb\n`);
  const after = new FileFollower(file, JSON.parse(JSON.stringify(before.saved)) as FollowPosition);
  const r2 = after.poll();
  t.same(
    r2.lines.map((l) => l.line),
    ['b'],
    'not the tail of the long line',
  );
  t.same(r2.tooLong, []);
  t.equal(after.saved?.skipping, undefined);
});
