import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import t from 'tap';
import { Spool, type SpooledMessage } from '../../../agent/transport/spool.js';
import { smallDisk } from '../../fixtures/full-disk.js';
import { fuzzParams } from '../../fixtures/fuzz.js';
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

// A restart finds each unacked message where it lies in its group file (Spool.pending gives a ref, read back when it
// is sent) by searching the file's bytes after JSON.parse read it. Over group files damaged every way (bytes
// overwritten, cut short, bytes inserted): opening the spool and listing what is pending never throws, and whatever a
// ref reads back is exactly the message JSON.parse found in the file, or the read refuses (the outbox then sends the
// batch as its count of dropped records, outbox-in-flight.test.ts). An undamaged file gives every message back.
t.test('property: pending refs over damaged group files read back what JSON.parse finds, or refuse', async (t) => {
  const damage = fc.oneof(
    fc.record({
      kind: fc.constant('overwrite' as const),
      at: fc.nat(),
      bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }),
    }),
    fc.record({ kind: fc.constant('cut' as const), at: fc.nat() }),
    fc.record({
      kind: fc.constant('insert' as const),
      at: fc.nat(),
      bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }),
    }),
    fc.constant({ kind: 'none' as const }),
  );
  let located = 0;
  await fc.assert(
    fc.asyncProperty(fc.array(fc.nat(400), { minLength: 1, maxLength: 4 }), damage, async (sizes, d) => {
      const dir = tempDir(t);
      const msgs = sizes.map((n, i) => ({ ...(messages(1, n, 1 + i)[0] as SpooledMessage), seq: 1 + i }));
      Spool.open(dir).write(msgs, pos);
      const file = join(dir, 'batches', readdirSync(join(dir, 'batches'))[0] as string);
      let raw = readFileSync(file);
      if (d.kind === 'overwrite') Buffer.from(d.bytes).copy(raw, d.at % raw.length);
      if (d.kind === 'cut') raw = raw.subarray(0, d.at % raw.length);
      if (d.kind === 'insert') {
        const at = d.at % raw.length;
        raw = Buffer.concat([raw.subarray(0, at), Buffer.from(d.bytes), raw.subarray(at)]);
      }
      writeFileSync(file, raw);
      let parsed: { messages?: { seq: number; b64: string }[] } = {};
      try {
        parsed = JSON.parse(raw.toString('utf8')) as typeof parsed;
      } catch {
        // unreadable: the spool drops the file
      }
      const spool = Spool.open(dir);
      const pending = spool.pending();
      for (const m of pending) {
        const want = Buffer.from(parsed.messages?.find((x) => x.seq === m.seq)?.b64 ?? '', 'base64');
        if (m.bytes) {
          if (!m.bytes.equals(want)) throw new Error(`seq ${m.seq}: kept bytes differ`);
          continue;
        }
        located++;
        let got: Buffer | undefined;
        try {
          got = spool.read(m.ref);
        } catch {
          continue; // refused
        }
        if (!got.equals(want)) throw new Error(`seq ${m.seq}: read back other bytes than the file holds`);
      }
      if (d.kind === 'none') {
        if (pending.length !== msgs.length) throw new Error(`${pending.length} pending of ${msgs.length}`);
        for (const [i, m] of pending.entries()) {
          const bytes = m.bytes ?? spool.read(m.ref);
          if (!bytes.equals((msgs[i] as SpooledMessage).bytes)) throw new Error(`seq ${m.seq}: not the bytes written`);
        }
      }
    }),
    fuzzParams(150),
  );
  t.ok(located > 0, `${located} messages found by their place in the file`);
});
