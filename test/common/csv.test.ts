import t from 'tap';
import { csvCell, toCsv } from '../../common/csv.js';

// OWASP CSV injection: a spreadsheet runs a cell as a formula when it starts with
// = + - @ (or the full-width forms), also after leading whitespace, and a reader
// may split a cell again on ; or , (the list separator in many locales) or on
// tab/CR/LF. Every such piece gets a leading quote; plain numbers stay numbers.

const defused: [string, unknown, string][] = [
  ['a formula', '=1+1', "'=1+1"],
  ['a formula after a space', ' =1+1', "' =1+1"],
  ['a formula after spaces and a no-break space', '  \u00a0=1+1', "'  \u00a0=1+1"],
  ['a formula after a tab', '\t=cmd', "'\t'=cmd"],
  ['a formula after a semicolon', 'a;=cmd', "a;'=cmd"],
  ['a formula after a semicolon and a space', 'a; @SUM(A1)', "a;' @SUM(A1)"],
  ['a formula as a list item (lists are joined with ;)', ['a', '=cmd'], "a;'=cmd"],
  ['a formula after a comma', 'a,=cmd', `"a,'=cmd"`],
  ['a formula after CR', '\r=1', `"'\r'=1"`],
  ['a formula on a new line', 'a\n+1', `"a\n'+1"`],
  ['a plus', '+', "'+"],
  ['a signed number with a plus', '+1', "'+1"],
  ['a minus alone', '-', "'-"],
  ['an expression starting with a minus', '-2+3', "'-2+3"],
  ['an at sign', '@', "'@"],
  ['an at function', '@SUM(1,2)', `"'@SUM(1,2)"`],
  ['a full-width equals sign', '\uFF1D1+1', "'\uFF1D1+1"],
  ['a pipe command', '-cmd|x', "'-cmd|x"],
  ['a flag (as the cell always was)', '--anonymous-auth=false', "'--anonymous-auth=false"],
  ['a HYPERLINK with quotes', '=HYPERLINK("http://evil","x")', `"'=HYPERLINK(""http://evil"",""x"")"`],
  ['a leading tab alone', '\tx', "'\tx"],
];

const kept: [string, unknown, string][] = [
  ['a negative integer', '-5', '-5'],
  ['a negative decimal', '-1.5', '-1.5'],
  ['a negative number value', -7, '-7'],
  ['negative numbers in a list', ['-5', '-6.25'], '-5;-6.25'],
  ['a negative number after a semicolon', 'a;-5', 'a;-5'],
  ['an equals sign inside', 'a=b', 'a=b'],
  ['spaced words around an equals sign', 'x = y', 'x = y'],
  ['a value already quoted', "'=already", "'=already"],
  ['plain text', 'frontend', 'frontend'],
  ['a list', ['a', 'b'], 'a;b'],
  ['empty', '', ''],
  ['null', null, ''],
  ['quotes (RFC 4180)', 'say "hi"', '"say ""hi"""'],
];

t.test('cells that a spreadsheet would run as a formula are defused', async (t) => {
  for (const [name, input, want] of defused) t.equal(csvCell(input), want, `${name}: ${JSON.stringify(input)}`);
});

t.test('values that are not formulas, negative numbers included, are written as they are', async (t) => {
  for (const [name, input, want] of kept) t.equal(csvCell(input), want, `${name}: ${JSON.stringify(input)}`);
});

t.test('toCsv writes the header and rows with CRLF line ends, every cell defused', async (t) => {
  t.equal(
    toCsv(['name', 'labels', 'delta'], [['web', ['app=web', '=cmd'], -3]]),
    "name,labels,delta\r\nweb,app=web;'=cmd,-3\r\n",
  );
});
