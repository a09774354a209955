import { appendFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import t from 'tap';
import { FileFollower } from '../../../agent/flows/follow.js';
import { AGENT_DEFAULTS } from '../../../agent/defaults.js';
import { fuzzParams } from '../../fixtures/fuzz.js';
import { tempDir } from '../../fixtures/tmp.js';

const MAX_LINE = AGENT_DEFAULTS.follow.maxLineBytes;

/** One line of the file: its text (no newline) and its ending. */
interface Line {
  text: string;
  crlf: boolean;
}

const text = fc.oneof(
  { weight: 6, arbitrary: fc.string({ unit: fc.constantFrom('a', '{', '"', ' ', 'é', '€', '😀'), maxLength: 40 }) },
  { weight: 1, arbitrary: fc.constantFrom('', ' ', '\t \u00a0') },
  // Longer than the 64 KiB read buffer, within the limit; and past the limit (counted as malformed).
  { weight: 1, arbitrary: fc.integer({ min: 64 * 1024 - 2, max: 200 * 1024 }).map((n) => 'é'.repeat(n / 2) + '€') },
  {
    weight: 1,
    arbitrary: fc.constantFrom(MAX_LINE - 1, MAX_LINE + 1, MAX_LINE + 70_000, 3 * MAX_LINE).map((n) => 'x'.repeat(n)),
  },
);
const lines = fc
  .array(fc.record({ text, crlf: fc.boolean() }), { maxLength: 12 })
  .filter((ls) => ls.filter((l) => l.text.length > MAX_LINE / 2).length <= 3);

/** What the follower must give for the whole file: each non-blank line once, CR removed, and the count too long. */
function expected(ls: Line[]): { lines: { line: string; offset: number }[]; tooLong: number[] } {
  const out: { line: string; offset: number }[] = [];
  const tooLong: number[] = [];
  let offset = 0;
  for (const l of ls) {
    const bytes = Buffer.byteLength(l.text) + (l.crlf ? 1 : 0);
    if (bytes > MAX_LINE) tooLong.push(offset);
    else if (l.text.trim() !== '') out.push({ line: l.text, offset });
    offset += bytes + 1;
  }
  return { lines: out, tooLong };
}

t.test('any chunking of a file by its writer and any read budgets give exactly the lines of the whole', async (t) => {
  const dir = tempDir(t);
  let run = 0;
  fc.assert(
    fc.property(
      lines,
      fc.array(fc.nat(), { maxLength: 8 }),
      fc.array(fc.constantFrom(1, 7, 4096, 70_000, 2 * MAX_LINE, undefined), { minLength: 8, maxLength: 8 }),
      fc.boolean(),
      (ls, cuts, budgets, lineReader) => {
        const whole = Buffer.from(ls.map((l) => `${l.text}${l.crlf ? '\r' : ''}\n`).join(''), 'utf8');
        // Cut points anywhere: inside a character's bytes, between CR and LF, in a line past the read buffer.
        const at = [...new Set(cuts.map((c) => (whole.length === 0 ? 0 : c % whole.length)))].sort((a, b) => a - b);
        const file = join(dir, `flows-${run++}.log`);
        writeFileSync(file, '');
        const follower = new FileFollower(file);
        const got: { line: string; offset: number }[] = [];
        const tooLong: number[] = [];
        const poll = (maxBytes: number | undefined) => {
          const r = follower.poll(maxBytes, lineReader ? (line, _f, offset) => got.push({ line, offset }) : undefined);
          got.push(...r.lines.map((l) => ({ line: l.line, offset: l.offset })));
          tooLong.push(...r.tooLong.map((l) => l.offset));
        };
        let from = 0;
        [...at, whole.length].forEach((to, i) => {
          appendFileSync(file, whole.subarray(from, to));
          from = to;
          poll(budgets[i % budgets.length]);
        });
        for (let i = 0; i < 4; i++) poll(undefined);
        const want = expected(ls);
        return (
          JSON.stringify(got) === JSON.stringify(want.lines) &&
          JSON.stringify(tooLong) === JSON.stringify(want.tooLong) &&
          follower.saved?.offset === whole.length
        );
      },
    ),
    fuzzParams(60, 20261204),
  );
});
