import t from 'tap';
import { csvCell, toCsv } from '../../common/csv.js';

// RFC 4180 quoting and how values become cell text, each expectation written
// out by hand: a cell is quoted when it holds a comma, a double quote, CR or LF,
// and a double quote inside is doubled; null and undefined are empty; a list is
// joined with ';'. (Formula defusing has its own cases in csv.test.ts; here it
// only shows up where it meets quoting.)

const cells: [string, unknown, string][] = [
  ['plain text', 'frontend', 'frontend'],
  ['a comma', 'a,b', '"a,b"'],
  ['a double quote', 'say "hi"', '"say ""hi"""'],
  ['only a double quote', '"', '""""'],
  ['a line feed', 'line1\nline2', '"line1\nline2"'],
  ['CR LF', 'line1\r\nline2', '"line1\r\nline2"'],
  ['a semicolon (no quoting needed)', 'a;b', 'a;b'],
  ['a tab inside (no quoting needed)', 'a\tb', 'a\tb'],
  ['leading and trailing spaces are kept, unquoted', '  a b  ', '  a b  '],
  ['an apostrophe', "it's", "it's"],
  ['the empty string', '', ''],
  ['null', null, ''],
  ['undefined', undefined, ''],
  ['zero', 0, '0'],
  ['a decimal', 57.1, '57.1'],
  ['a negative number', -3, '-3'],
  ['true', true, 'true'],
  ['false', false, 'false'],
  ['an empty list', [], ''],
  ['a list', ['a', 'b'], 'a;b'],
  ['a list of numbers', [1, 2.5], '1;2.5'],
  ['a list with an item holding a comma: the whole cell is quoted', ['a', 'b,c'], '"a;b,c"'],
  ['a list with empty items (null joins as empty)', ['x', null, 'y'], 'x;;y'],
  ['a list item with a quote', ['say "hi"', 'x'], '"say ""hi"";x"'],
  ['a formula before a comma: defused, then quoted', '=1,2', `"'=1,2"`],
  ['negative numbers around a comma: kept, quoted', '-1,-2', '"-1,-2"'],
  ['a quote and a formula after a comma', 'a"b,=c', `"a""b,'=c"`],
  ['a formula on the second line', 'ok\n@cmd', `"ok\n'@cmd"`],
];

t.test('csvCell: quoting, empty values and lists', async (t) => {
  for (const [name, input, want] of cells) t.equal(csvCell(input), want, `${name}: ${JSON.stringify(input)}`);
});

t.test('toCsv: header first, CRLF after every row, the last one included', async (t) => {
  t.equal(toCsv(['a', 'b'], []), 'a,b\r\n', 'no rows: the header alone');
  t.equal(toCsv(['h'], [[''], [null]]), 'h\r\n\r\n\r\n', 'a row of one empty cell is an empty line');
  t.equal(
    toCsv(
      ['x', 'y'],
      [
        ['1,2', 'q"'],
        [3, ['p', 'q']],
      ],
    ),
    'x,y\r\n"1,2","q"""\r\n3,p;q\r\n',
  );
  t.equal(toCsv(['a,b', 'c'], [[1, 2]]), '"a,b",c\r\n1,2\r\n', 'header cells are quoted like any other');
  t.equal(toCsv(['n'], [['two\nlines']]), 'n\r\n"two\nlines"\r\n', 'a line break inside a cell stays inside quotes');
});
