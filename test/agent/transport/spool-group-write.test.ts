import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { Spool, type SpooledMessage } from '../../../agent/transport/spool.js';
import { smallDisk } from '../../fixtures/full-disk.js';
import { tempDir } from '../../fixtures/tmp.js';

// A window's group file (agent/transport/spool.ts) is written a message at a time, each message's base64 made only
// while it is written, instead of the whole window's JSON built in memory first (several MB of base64 at each window's
// close, issue 13). The file is the same JSON, exactly as long as Spool.groupBytes says (what the outbox bounds the
// spool by), a restart reads the same messages back, and a disk that fills part-way leaves nothing behind.

const pos = { 'calico:/x': { dev: 1, ino: 2, offset: 300 } };
/** `n` messages of `size` bytes each, every byte value in them. */
const messages = (n: number, size: number, from = 1): SpooledMessage[] =>
  Array.from({ length: n }, (_, i) => ({
    seq: from + i,
    kind: 'flowBatch' as const,
    records: 10 + i,
    bytes: Buffer.from(Array.from({ length: size + i }, (_, k) => (k * 7 + i) % 256)),
    dropped: i === 0 ? 3 : 0,
  }));

t.test('a group file: the group as JSON, exactly groupBytes long, read back the same after a restart', async (t) => {
  const dir = tempDir(t);
  const spool = Spool.open(dir);
  for (const [msgs, positions] of [
    [messages(3, 100_000), pos],
    [messages(1, 0, 10), undefined],
  ] as const) {
    spool.write([...msgs], positions);
    const file = join(dir, 'batches', `${msgs[0]?.seq}.json`);
    t.equal(
      statSync(file).size,
      Spool.groupBytes(
        msgs.map((m) => ({ ...m, size: m.bytes.length })),
        positions,
      ),
      'as long as groupBytes says',
    );
    t.same(
      JSON.parse(readFileSync(file, 'utf8')),
      {
        v: 2,
        ...(positions ? { positions } : {}),
        messages: msgs.map((m) => ({
          seq: m.seq,
          kind: m.kind,
          records: m.records,
          b64: m.bytes.toString('base64'),
          dropped: m.dropped,
        })),
      },
      'the group as JSON',
    );
  }
  const reopened = Spool.open(dir);
  const again = reopened.pending();
  t.ok(
    again.every((m) => m.ref && !m.bytes),
    'found where they lie in their files, not read into memory',
  );
  t.same(
    again.map((m) => [m.seq, m.records, m.dropped, (m.bytes ?? reopened.read(m.ref)).toString('hex')]),
    [...messages(3, 100_000), ...messages(1, 0, 10)].map((m) => [m.seq, m.records, m.dropped, m.bytes.toString('hex')]),
    'every message back, byte for byte',
  );
  t.same(Spool.open(dir).positions(), pos, 'and the positions after the window');
});

t.test('a disk that fills part-way through a group file: the write throws and leaves no file behind', async (t) => {
  const small = smallDisk(t, tempDir(t), '1m');
  if ('skip' in small) {
    t.skip(small.skip, () => {});
    return;
  }
  // The state slots take half of the 1 MiB: room for part of a 3 MB group file, not all of it.
  const spool = Spool.open(join(small.disk, 'spool'));
  t.throws(() => spool.write(messages(4, 600_000), pos), /ENOSPC|no space/i);
  t.same(readdirSync(join(small.disk, 'spool', 'batches')), [], 'neither the group nor its temporary file');
  t.equal(spool.diskBytes, Spool.fixedBytes, 'nothing counted as on disk');
});
