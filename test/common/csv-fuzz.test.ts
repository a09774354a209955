import fc from 'fast-check';
import t from 'tap';
import { toCsv } from '../../common/csv.js';
import { fuzzParams } from '../fixtures/fuzz.js';

// Property: whatever the cell values, toCsv's text parses back (by the strict
// RFC 4180 reader below, written for this test) to one record per row with one
// field per cell, each field the value's text with nothing changed but
// apostrophes added in front of formula starts; no field then has a piece that
// a spreadsheet would run as a formula; and a value with no formula character
// comes back exactly.

/** RFC 4180, strictly: fields split by commas, records ended by CRLF, "..." with "" for a quote. */
function parseCsv(text: string): string[][] {
  if (!text.endsWith('\r\n')) throw new Error('the text does not end with CRLF');
  const records: string[][] = [];
  let i = 0;
  while (i < text.length) {
    const record: string[] = [];
    for (;;) {
      let field = '';
      if (text[i] === '"') {
        i++;
        for (;;) {
          if (i >= text.length) throw new Error('a quoted field is not closed');
          if (text[i] === '"' && text[i + 1] === '"') {
            field += '"';
            i += 2;
          } else if (text[i] === '"') {
            i++;
            break;
          } else field += text[i++];
        }
      } else {
        while (i < text.length && text[i] !== ',' && text[i] !== '\r' && text[i] !== '\n') {
          if (text[i] === '"') throw new Error(`a double quote in an unquoted field at ${i}`);
          field += text[i++];
        }
      }
      record.push(field);
      if (text[i] === ',') {
        i++;
      } else if (text.startsWith('\r\n', i)) {
        i += 2;
        break;
      } else throw new Error(`expected a comma or CRLF at ${i}, found ${JSON.stringify(text[i])}`);
    }
    records.push(record);
  }
  return records;
}

/** The text a value stands for in a cell: empty for null/undefined, a list joined with ';'. */
function textOf(v: unknown): string {
  if (v === null || v === undefined) return '';
  if (Array.isArray(v)) return v.map((x) => (x === null || x === undefined ? '' : String(x))).join(';');
  return String(v);
}

/** Whether `written` is `want` with apostrophes inserted and nothing else changed. */
function onlyApostrophesAdded(written: string, want: string): boolean {
  let j = 0;
  for (const ch of written) {
    if (j < want.length && want.startsWith(ch, j)) j += ch.length;
    else if (ch !== "'") return false;
  }
  return j === want.length;
}

const FORMULA_CHARS = /[=+\-@\uFF1D\uFF0B\uFF0D\uFF20]/;
const FORMULA_START = /^\s*[=+\-@\uFF1D\uFF0B\uFF0D\uFF20]/;
const PLAIN_NUMBER = /^\s*-?\d+(\.\d+)?\s*$/;

/** Characters that matter to CSV and to spreadsheets, and some that do not. */
const tricky = fc.string({
  unit: fc.constantFrom(
    'a',
    'Z',
    '1',
    '.',
    ' ',
    '\u00a0',
    ',',
    ';',
    '"',
    "'",
    '\r',
    '\n',
    '\t',
    '=',
    '+',
    '-',
    '@',
    '\uFF1D',
    '\uFF0D',
    'é',
    '😀',
  ),
  maxLength: 12,
});
const cell = fc.oneof(
  tricky,
  fc.string({ unit: 'binary', maxLength: 8 }),
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.constant(undefined),
  fc.array(fc.oneof(tricky, fc.integer()), { maxLength: 4 }),
);
const table = fc.record({
  header: fc.array(tricky, { minLength: 1, maxLength: 5 }),
  rows: fc.array(fc.array(cell, { minLength: 1, maxLength: 6 }), { maxLength: 8 }),
});

t.test('any cells round-trip through an RFC 4180 reader, one record per row, formulas defused', async (t) => {
  fc.assert(
    fc.property(table, ({ header, rows }) => {
      const input: unknown[][] = [header, ...rows];
      const parsed = parseCsv(toCsv(header, rows));
      if (parsed.length !== input.length) throw new Error(`${parsed.length} records for ${input.length} rows`);
      input.forEach((row, r) => {
        const fields = parsed[r] as string[];
        if (fields.length !== row.length) throw new Error(`row ${r}: ${fields.length} fields for ${row.length} cells`);
        row.forEach((value, c) => {
          const got = fields[c] as string;
          const want = textOf(value);
          const where = `row ${r} cell ${c}: ${JSON.stringify(value)} came back as ${JSON.stringify(got)}`;
          if (!onlyApostrophesAdded(got, want)) throw new Error(`${where}: more than apostrophes changed`);
          if (!FORMULA_CHARS.test(want) && !/^[\t\r]/.test(want) && got !== want)
            throw new Error(`${where}: a value without formula characters changed`);
          if (/^[\t\r]/.test(got)) throw new Error(`${where}: starts with tab or CR`);
          for (const piece of got.split(/[,;\t\r\n]/))
            if (FORMULA_START.test(piece) && !PLAIN_NUMBER.test(piece))
              throw new Error(`${where}: the piece ${JSON.stringify(piece)} starts a formula`);
        });
      });
    }),
    fuzzParams(500),
  );
  t.pass('generated tables round-trip');
});

t.test('the reader is strict: it refuses what RFC 4180 does not allow', async (t) => {
  t.same(parseCsv('a,"b,""c"""\r\n\r\n'), [['a', 'b,"c"'], ['']]);
  t.throws(() => parseCsv('a,b'), /CRLF/);
  t.throws(() => parseCsv('a"b\r\n'), /double quote in an unquoted field/);
  t.throws(() => parseCsv('"a\r\n'), /not closed/);
  t.throws(() => parseCsv('a\nb\r\n'), /comma or CRLF/);
  t.ok(onlyApostrophesAdded("'=a;'@b", '=a;@b'));
  t.notOk(onlyApostrophesAdded('=a;b', '=a;@b'));
  t.notOk(onlyApostrophesAdded("x'", 'y'));
});
