import { appendFileSync, copyFileSync, renameSync, rmSync, truncateSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import t from 'tap';
import { FileFollower, type FollowPosition } from '../../../agent/flows/follow.js';
import { RotatingLog, type RotationNaming } from '../../fixtures/rotating-log.js';
import { tempDir } from '../../fixtures/tmp.js';

/** Poll until nothing new comes three times running; every line and event delivered meanwhile. */
function drain(f: FileFollower, maxBytes?: number): { lines: string[]; events: string[] } {
  const lines: string[] = [];
  const events: string[] = [];
  for (let quiet = 0, i = 0; quiet < 3 && i < 10_000; i++) {
    const r = f.poll(maxBytes);
    lines.push(...r.lines.map((l) => l.line));
    events.push(...r.events);
    quiet = r.lines.length === 0 && r.events.length === 0 ? quiet + 1 : 0;
  }
  return { lines, events };
}

/** A position as the spool stores it: JSON, read back by the next run. */
const restart = (f: FileFollower) => new FileFollower(f.path, JSON.parse(JSON.stringify(f.saved)) as FollowPosition);

const namings: RotationNaming[] = ['logrotate', 'lumberjack'];

for (const naming of namings) {
  t.test(`${naming}: two rotations while the agent is stopped — the middle file is read too`, async (t) => {
    const log = new RotatingLog(tempDir(t), naming);
    log.append(3);
    const before = new FileFollower(log.path);
    t.same(drain(before).lines, log.written);
    const seen = log.written.length;
    log.append(2); // not yet read when the agent stops
    log.rotate();
    log.append(4); // the middle file, rotated again before the agent is back
    log.rotate();
    log.append(3);
    t.equal(log.rotatedFiles().length, 2);
    const after = drain(restart(before));
    t.same(
      after.lines,
      log.written.slice(seen),
      'the rest of the first file, all of the middle one, then the new one; each line once',
    );
  });

  t.test(`${naming}: five rotations between two polls — every line once, in order`, async (t) => {
    for (const [how, maxBytes] of [
      ['one read', undefined],
      ['100-byte reads', 100],
    ] as const) {
      for (const viaRestart of [false, true]) {
        const log = new RotatingLog(tempDir(t), naming);
        const f = new FileFollower(log.path);
        log.append(1);
        t.same(drain(f).lines, log.written);
        const seen = log.written.length;
        for (let i = 0; i < 5; i++) {
          log.append(4);
          log.rotate();
        }
        log.append(4);
        const after = drain(viaRestart ? restart(f) : f, maxBytes);
        t.equal(
          after.lines.length,
          24,
          `${how}${viaRestart ? ', after a restart' : ''}: 20 lines from five rotated files and 4 from the new one`,
        );
        t.same(after.lines, log.written.slice(seen));
      }
    }
  });

  t.test(`${naming}: rotated files with the same mtime are ordered by their names`, async (t) => {
    // File timestamps are coarse (a clock tick of a few ms on most kernels): a burst of rotations can leave them equal.
    const log = new RotatingLog(tempDir(t), naming);
    const f = new FileFollower(log.path);
    log.append(1);
    drain(f);
    const seen = log.written.length;
    for (let i = 0; i < 4; i++) {
      log.append(2);
      log.rotate();
    }
    log.append(1);
    for (const file of [...log.rotatedFiles(), log.path]) utimesSync(file, 1_700_000_000, 1_700_000_000);
    t.same(drain(f).lines, log.written.slice(seen));
  });
}

t.test(
  'copytruncate refilled past the old offset, ending in the same 64 bytes: noticed by the first bytes',
  async (t) => {
    for (const viaRestart of [false, true]) {
      const dir = tempDir(t);
      const file = join(dir, 'flows.log');
      const common = `{"note":"${'='.repeat(52)}"}\n`; // 64 bytes, the same in both generations
      t.equal(common.length, 64);
      const old = Array.from({ length: 10 }, (_, i) => `{"gen":"old","n":${i}}`);
      const refill = Array.from({ length: 10 }, (_, i) => `{"gen":"new","n":${i}}`); // same lengths: `common` lands at the same offset
      writeFileSync(file, `${old.join('\n')}\n${common}`);
      const f = new FileFollower(file);
      t.same(drain(f).lines, [...old, common.trimEnd()]);
      appendFileSync(file, 'late-1\nlate-2\n'); // written after the last read, before the copy
      copyFileSync(file, `${file}.1`);
      truncateSync(file, 0);
      appendFileSync(file, `${refill.join('\n')}\n${common}more-1\nmore-2\nmore-3\n`);
      const after = drain(viaRestart ? restart(f) : f);
      t.same(
        after.lines,
        ['late-1', 'late-2', ...refill, common.trimEnd(), 'more-1', 'more-2', 'more-3'],
        `${viaRestart ? 'after a restart: ' : ''}the rest from the copy, then the whole refill, each once`,
      );
      t.match(after.events.join('\n'), /truncated: .*flows\.log\.1/);
    }
  },
);

t.test(
  'a file that got smaller than at the last poll was emptied, even when still longer than the offset',
  async (t) => {
    const file = join(tempDir(t), 'flows.log');
    writeFileSync(file, 'a\nb\npartial-line-still-being-written');
    const f = new FileFollower(file);
    t.same(drain(f).lines, ['a', 'b']);
    // Emptied and rewritten with the same first lines, shorter than before but past the offset: the head and the
    // bytes before the offset match, only the size tells.
    truncateSync(file, 0);
    appendFileSync(file, 'a\nb\nc\n');
    const r = drain(f);
    t.same(r.lines, ['a', 'b', 'c']);
    t.match(r.events.join('\n'), /truncated/);
  },
);

t.test(
  'a file that is only appended to is never read again from its start, even when all its lines are the same',
  async (t) => {
    const file = join(tempDir(t), 'flows.log');
    const same = `{"same":"${'s'.repeat(300)}"}`; // every head, tail and line identical
    writeFileSync(file, '');
    const f = new FileFollower(file);
    let delivered = 0;
    let written = 0;
    for (let i = 0; i < 60; i++) {
      if (i % 7 === 0) {
        appendFileSync(file, same.slice(0, 100)); // a partial line, polled before it is finished
      } else if (i % 7 === 1) {
        appendFileSync(file, `${same.slice(100)}\n`);
        written++;
      } else {
        appendFileSync(file, `${same}\n`.repeat(i % 3));
        written += i % 3;
      }
      const r = f.poll(i % 2 === 0 ? 700 : undefined);
      t.same(r.events, []);
      delivered += r.lines.length;
    }
    delivered += drain(f).lines.length;
    t.equal(delivered, written, 'each appended line exactly once');
  },
);

t.test(
  'a rotated file removed before it was read to its end: the loss is an event, the newer files are read once',
  async (t) => {
    const log = new RotatingLog(tempDir(t), 'logrotate');
    log.append(2);
    const f = new FileFollower(log.path);
    drain(f);
    const lost = log.append(3); // in the followed file, never read
    log.rotate();
    const middle = log.append(2);
    log.rotate();
    const current = log.append(2);
    rmSync(`${log.path}.2`); // the followed file, e.g. logrotate's `rotate 1`
    const r = drain(f);
    t.same(r.lines, [...middle, ...current]);
    t.equal(r.events.filter((e) => /^lost: /.test(e)).length, 1, 'the loss is told once');
    t.match(r.events.join('\n'), /lost: .*inode/);
    t.notOk(r.lines.some((l) => lost.includes(l)));
  },
);

t.test('compressed rotated files are never read as lines, by name or by content', async (t) => {
  const log = new RotatingLog(tempDir(t), 'logrotate');
  log.append(2);
  const f = new FileFollower(log.path);
  drain(f);
  const lost = log.append(2);
  log.rotate();
  const middle = log.append(2);
  log.rotate();
  // logrotate's compress with delaycompress: the older file becomes .2.gz, .1 stays plain a while longer.
  writeFileSync(`${log.path}.2.gz`, gzipSync(`${lost.join('\n')}\n`));
  rmSync(`${log.path}.2`);
  // A compressed file under a name without a compression suffix (a custom compressext) is told by its magic bytes.
  writeFileSync(`${log.path}.9`, gzipSync('{"never":"read"}\n'));
  utimesSync(`${log.path}.9`, Date.now() / 1000 + 60, Date.now() / 1000 + 60);
  const current = log.append(1);
  const r = drain(f);
  t.same(r.lines, [...middle, ...current]);
  t.match(r.events.join('\n'), /lost: /);
});

t.test(
  'the path missing after a rotation (nocreate): the rotated file is finished, the new one read once it appears',
  async (t) => {
    const log = new RotatingLog(tempDir(t), 'logrotate');
    log.append(2);
    const f = new FileFollower(log.path);
    drain(f);
    const seen = log.written.length;
    log.append(2);
    log.rotate({ create: false });
    t.same(drain(f).lines, log.written.slice(seen), 'the rest of the rotated file while the path is missing');
    log.append(2);
    t.same(drain(f).lines, log.written.slice(seen + 2));
  },
);

t.test('a rotated file is not left while the new one is empty: the writer may still be writing to it', async (t) => {
  // logrotate renames first and signals the writer after (postrotate); until the writer reopens, lines go to the
  // renamed file.
  const dir = tempDir(t);
  const file = join(dir, 'flows.log');
  writeFileSync(file, 'a\n');
  const f = new FileFollower(file);
  t.same(drain(f).lines, ['a']);
  renameSync(file, `${file}.1`);
  writeFileSync(file, '');
  appendFileSync(`${file}.1`, 'b\n');
  t.same(drain(f).lines, ['b']);
  appendFileSync(`${file}.1`, 'c\n');
  t.same(drain(f).lines, ['c']);
  appendFileSync(file, 'd\n');
  const r = drain(f);
  t.same(r.lines, ['d']);
  t.match(r.events.join('\n'), /rotated: finished .*flows\.log\.1/);
});

t.test("a rotated file's unterminated last line is delivered once the writer has moved on", async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'flows.log');
  writeFileSync(file, 'a\n');
  const f = new FileFollower(file);
  drain(f);
  appendFileSync(file, 'b\ntorn');
  renameSync(file, `${file}.1`);
  writeFileSync(file, 'c\n');
  t.same(drain(f).lines, ['b', 'torn', 'c'], 'the torn line goes on to the parser, which counts it if it is malformed');
});

t.test(
  'copytruncate twice between polls: the rest from the older copy, all of the newer one, then the file',
  async (t) => {
    for (const viaRestart of [false, true]) {
      let now = 1_700_000_000_000;
      const log = new RotatingLog(tempDir(t), 'logrotate', 'flows.log', () => (now += 1000));
      log.append(2);
      const f = new FileFollower(log.path);
      t.same(drain(f).lines, log.written);
      const seen = log.written.length;
      log.append(2);
      log.copytruncate();
      log.append(3);
      log.copytruncate();
      log.append(1);
      const after = drain(viaRestart ? restart(f) : f);
      t.same(after.lines, log.written.slice(seen), `${viaRestart ? 'after a restart: ' : ''}each line once`);
    }
  },
);

t.test('copytruncate of a file last seen empty: the copies written since that look are read first', async (t) => {
  for (const viaRestart of [false, true]) {
    let now = 1_700_000_000_000;
    const log = new RotatingLog(tempDir(t), 'logrotate', 'flows.log', () => (now += 1000));
    log.create();
    const f = new FileFollower(log.path);
    t.same(drain(f).lines, []);
    // Seen empty, the file has no first bytes to recognise a copy by; only that the copies are newer than that look.
    log.append(3);
    log.copytruncate();
    log.append(2);
    log.copytruncate();
    log.append(1);
    const after = drain(viaRestart ? restart(f) : f);
    t.same(
      after.lines,
      log.written,
      `${viaRestart ? 'after a restart: ' : ''}both copies, then the file, each line once`,
    );
  }
});

t.test('a file copied without truncation (logrotate copy) is not read again from the copy', async (t) => {
  let now = 1_700_000_000_000;
  const log = new RotatingLog(tempDir(t), 'logrotate', 'flows.log', () => (now += 1000));
  log.create();
  const f = new FileFollower(log.path);
  drain(f); // seen empty
  log.append(3);
  copyFileSync(log.path, `${log.path}.1`);
  utimesSync(`${log.path}.1`, (now += 1000) / 1000, now / 1000);
  log.append(1);
  t.same(drain(f).lines, log.written);
});

t.test(
  'a position saved by an earlier version (no head, size or mtime) still resumes, through two rotations',
  async (t) => {
    const log = new RotatingLog(tempDir(t), 'logrotate');
    log.append(3);
    const before = new FileFollower(log.path);
    drain(before);
    const { dev, ino, offset, tail } = before.saved!;
    const seen = log.written.length;
    log.append(1);
    log.rotate();
    log.append(2);
    log.rotate();
    log.append(1);
    t.same(drain(new FileFollower(log.path, { dev, ino, offset, tail })).lines, log.written.slice(seen));
  },
);
