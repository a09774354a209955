import t, { type Test } from 'tap';
import {
  MAX_LABEL_LENGTH,
  MAX_NESTING_DEPTH,
  parseSelector,
  SelectorError,
  type Labels,
} from '../../aggregator/reports/selector.js';

/**
 * A pattern for t.throws that names neither message, name nor code: tap matches the thrown error against any
 * object pattern (t.match), but its typing wants one of those keys.
 */
const errorWith = (pattern: Record<string, unknown>) =>
  pattern as Exclude<Parameters<Test['throws']>[1], string | undefined>;

// Expectations follow Calico's selector parser (libcalico-go/lib/selector):
// which selectors it accepts, what they match and how it prints them.

interface MatchCase {
  sel: string;
  match: Labels[];
  noMatch: Labels[];
}

const matchCases: MatchCase[] = [
  // equality and inequality
  {
    sel: `a == "b"`,
    match: [{ a: 'b' }, { a: 'b', c: 'd' }],
    noMatch: [{}, { a: 'c' }, { c: 'd' }, { a: 'B' }, { a: 'b ' }],
  },
  { sel: `a == 'b'`, match: [{ a: 'b' }], noMatch: [{}, { a: 'bb' }] },
  { sel: `a != 'b'`, match: [{}, { a: 'c' }, { c: 'b' }, { a: '' }], noMatch: [{ a: 'b' }] },
  { sel: `a == ''`, match: [{ a: '' }], noMatch: [{}, { a: 'x' }] },
  { sel: `a != ''`, match: [{}, { a: 'x' }], noMatch: [{ a: '' }] },
  // has / !has
  { sel: `has(a)`, match: [{ a: '' }, { a: 'x' }], noMatch: [{}, { b: 'a' }] },
  { sel: `!has(a)`, match: [{}, { b: 'a' }], noMatch: [{ a: '' }, { a: 'x' }] },
  { sel: `has( a )`, match: [{ a: 'x' }], noMatch: [{}] },
  // in / not in
  { sel: `a in {'x', 'y'}`, match: [{ a: 'x' }, { a: 'y' }], noMatch: [{}, { a: 'z' }, { a: '' }, { b: 'x' }] },
  { sel: `a not in {'x', 'y'}`, match: [{}, { a: 'z' }, { b: 'x' }], noMatch: [{ a: 'x' }, { a: 'y' }] },
  { sel: `a in {"'", '"', "c"}`, match: [{ a: 'c' }, { a: '"' }, { a: "'" }], noMatch: [{}, { a: 'e' }] },
  { sel: `a not in {"'", '"', "c"}`, match: [{}, { a: 'e' }], noMatch: [{ a: 'c' }, { a: '"' }, { a: "'" }] },
  { sel: `a in {}`, match: [], noMatch: [{}, { a: '' }, { a: 'x' }] },
  { sel: `a not in {}`, match: [{}, { a: '' }, { a: 'x' }], noMatch: [] },
  { sel: `a in {'x',}`, match: [{ a: 'x' }], noMatch: [{ a: '' }] },
  { sel: `a notin {'x'}`, match: [{ a: 'y' }, {}], noMatch: [{ a: 'x' }] },
  { sel: `a not  in {'x'}`, match: [{ a: 'y' }], noMatch: [{ a: 'x' }] },
  { sel: `a in{'x'}`, match: [{ a: 'x' }], noMatch: [{ a: 'y' }] },
  { sel: `!a in {"a"}`, match: [{ a: 'b' }, {}], noMatch: [{ a: 'a' }] },
  // contains / starts with / ends with
  {
    sel: `a contains "a"`,
    match: [{ a: 'a' }, { a: 'bab' }, { a: 'aaa', b: 'c' }],
    noMatch: [{}, { a: 'b' }, { b: 'aaa' }],
  },
  {
    sel: `a starts with "a"`,
    match: [{ a: 'a' }, { a: 'abb' }],
    noMatch: [{}, { a: 'b' }, { a: 'baa' }, { b: 'aaa' }],
  },
  { sel: `a ends with "a"`, match: [{ a: 'a' }, { a: 'bba' }], noMatch: [{}, { a: 'b' }, { a: 'aab' }, { b: 'aaa' }] },
  { sel: `a startswith 'pro'`, match: [{ a: 'prod' }], noMatch: [{ a: 'dev' }] },
  { sel: `a endswith 'od'`, match: [{ a: 'prod' }], noMatch: [{ a: 'dev' }] },
  { sel: `a starts  with 'p'`, match: [{ a: 'prod' }], noMatch: [{ a: 'dev' }] },
  { sel: `a contains ''`, match: [{ a: '' }, { a: 'x' }], noMatch: [{}] },
  // all() / global() / empty
  { sel: ``, match: [{}, { a: 'b' }], noMatch: [] },
  { sel: ` \t `, match: [{}, { a: 'b' }], noMatch: [] },
  { sel: `all()`, match: [{}, { a: 'b' }], noMatch: [] },
  { sel: ` all( ) `, match: [{}], noMatch: [] },
  { sel: `!all()`, match: [], noMatch: [{}, { a: 'b' }] },
  { sel: `global()`, match: [{}, { a: 'b' }], noMatch: [] },
  // negation runs collapse by parity
  { sel: `!!has(b)`, match: [{ b: 'x' }], noMatch: [{ a: 'b' }] },
  { sel: `! has(a)`, match: [{}], noMatch: [{ a: 'b' }] },
  { sel: `!!! has(a)`, match: [{}], noMatch: [{ a: 'b' }] },
  { sel: `!! ! has(a)`, match: [{}], noMatch: [{ a: 'b' }] },
  { sel: `!(!has(a))`, match: [{ a: '1' }], noMatch: [{}] },
  // boolean combinations
  {
    sel: `a == 'a1' && b == 'b1'`,
    match: [{ a: 'a1', b: 'b1' }],
    noMatch: [{ a: 'a1' }, { b: 'b1' }, { a: 'a1', b: 'b2' }],
  },
  {
    sel: `a == 'a1' || b == 'b1'`,
    match: [{ a: 'a1' }, { b: 'b1' }, { a: 'a1', b: 'b1' }],
    noMatch: [{}, { a: 'x', b: 'y' }],
  },
  { sel: `a != 'a1' && !b == 'b1'`, match: [{}, { a: 'x', b: 'y' }], noMatch: [{ a: 'a1', b: 'b1' }, { b: 'b1' }] },
  { sel: `! a == 'a1' || ! b == 'b1'`, match: [{}, { a: 'a1' }], noMatch: [{ a: 'a1', b: 'b1' }] },
  { sel: `has(a) && !has(b)`, match: [{ a: 'a' }], noMatch: [{ a: 'a', b: 'b' }, {}] },
  { sel: `!(!has(a) || has(b))`, match: [{ a: 'a' }], noMatch: [{ a: 'a', b: 'b' }, {}, { b: 'b' }] },
  // precedence: ! over && over ||
  {
    sel: `a == 'x' || b == 'y' && c == 'z'`,
    match: [{ a: 'x' }, { b: 'y', c: 'z' }],
    noMatch: [{ b: 'y' }, { c: 'z' }, {}],
  },
  {
    sel: `(a == 'x' || b == 'y') && c == 'z'`,
    match: [
      { a: 'x', c: 'z' },
      { b: 'y', c: 'z' },
    ],
    noMatch: [{ a: 'x' }, { c: 'z' }],
  },
  {
    sel: `a == 'x' && b == 'y' || c == 'z'`,
    match: [{ a: 'x', b: 'y' }, { c: 'z' }],
    noMatch: [{ a: 'x' }, { b: 'y' }],
  },
  { sel: `!has(a) && has(b)`, match: [{ b: '1' }], noMatch: [{ a: '1', b: '1' }, {}] },
  { sel: `!(has(a) && has(b))`, match: [{ b: '1' }, { a: '1' }, {}], noMatch: [{ a: '1', b: '1' }] },
  { sel: `!has(a) || has(b)`, match: [{}, { a: '1', b: '1' }, { b: '1' }], noMatch: [{ a: '1' }] },
  {
    // the docs' worked example: ((!has(my-label)) || ((my-label starts with 'prod') && (role in {...})))
    sel: `! has(my-label) || my-label starts with 'prod' && role in {'frontend','business'}`,
    match: [
      {},
      { role: 'x' },
      { 'my-label': 'production', role: 'frontend' },
      { 'my-label': 'prod', role: 'business' },
    ],
    noMatch: [
      { 'my-label': 'production' },
      { 'my-label': 'dev', role: 'frontend' },
      { 'my-label': 'prod', role: 'db' },
    ],
  },
  { sel: `((((a == 'x'))))`, match: [{ a: 'x' }], noMatch: [{}] },
  // whitespace: none needed between tokens, spaces and tabs allowed
  { sel: `a=="b"&&c!='d'||has(e)`, match: [{ a: 'b' }, { e: '' }], noMatch: [{ a: 'b', c: 'd' }, {}] },
  { sel: `\ta\t==\t'b'\t`, match: [{ a: 'b' }], noMatch: [{}] },
  // quoting: either quote, the other may appear inside, no escapes
  { sel: `a == "it's"`, match: [{ a: "it's" }], noMatch: [{ a: 'its' }] },
  { sel: `a == 'say "hi"'`, match: [{ a: 'say "hi"' }], noMatch: [{ a: 'say hi' }] },
  { sel: `a == 'x && y || !has(z)'`, match: [{ a: 'x && y || !has(z)' }], noMatch: [{ a: 'x' }] },
  { sel: `a == '\\n'`, match: [{ a: '\\n' }], noMatch: [{ a: '\n' }] },
  { sel: `a == 'héllo wörld'`, match: [{ a: 'héllo wörld' }], noMatch: [{ a: 'hello world' }] },
  // label keys: letters, digits, _ . / -
  {
    sel: `projectcalico.org/namespace == 'kube-system'`,
    match: [{ 'projectcalico.org/namespace': 'kube-system' }],
    noMatch: [{ namespace: 'kube-system' }],
  },
  {
    sel: `has(calico/k8s_NS-.1/role)`,
    match: [{ 'calico/k8s_NS-.1/role': '' }],
    noMatch: [{ 'calico/k8s_ns-.1/role': '' }],
  },
  {
    sel: `app.kubernetes.io/name in {'api','web'} && k8s-app != 'dns'`,
    match: [{ 'app.kubernetes.io/name': 'api' }],
    noMatch: [{ 'app.kubernetes.io/name': 'api', 'k8s-app': 'dns' }],
  },
  { sel: `-a_/. == 'x'`, match: [{ '-a_/.': 'x' }], noMatch: [] },
  { sel: `0 == '1'`, match: [{ '0': '1' }], noMatch: [{ '0': '0' }] },
  // operator words and function names are plain labels where a label is expected
  { sel: `in in {'in'}`, match: [{ in: 'in' }], noMatch: [{ in: 'out' }] },
  { sel: `not not in {'x'}`, match: [{ not: 'y' }, {}], noMatch: [{ not: 'x' }] },
  { sel: `contains contains 'contains'`, match: [{ contains: 'xcontainsx' }], noMatch: [{ contains: 'x' }] },
  { sel: `has == 'x' && has(has)`, match: [{ has: 'x' }], noMatch: [{ has: 'y' }] },
  { sel: `all == 'x' || global == 'y'`, match: [{ all: 'x' }, { global: 'y' }], noMatch: [{}] },
  { sel: `startswith starts with 'v'`, match: [{ startswith: 'value' }], noMatch: [{ startswith: 'x' }] },
  // labels that are also Object.prototype members are only present when own properties
  {
    sel: `has(constructor) || has(toString) || has(__proto__)`,
    match: [{ constructor: '' }, JSON.parse('{"__proto__":"x"}') as Labels],
    noMatch: [{}],
  },
  { sel: `constructor != 'x' && toString not in {'y'}`, match: [{}], noMatch: [{ constructor: 'x' }] },
];

for (const c of matchCases) {
  t.test(`matches: ${c.sel}`, async (t) => {
    const s = parseSelector(c.sel);
    for (const l of c.match) t.equal(s.matches(l), true, `matches ${JSON.stringify(l)}`);
    for (const l of c.noMatch) t.equal(s.matches(l), false, `does not match ${JSON.stringify(l)}`);
    // The normalized form parses again and means the same thing.
    const again = parseSelector(s.toString());
    for (const l of [...c.match, ...c.noMatch])
      t.equal(again.matches(l), s.matches(l), `normalized form agrees on ${JSON.stringify(l)}`);
  });
}

// Normalized forms, as Calico's Selector.String() prints them.
const normalized: [input: string, expected: string][] = [
  ['', 'all()'],
  ['   ', 'all()'],
  [' all() ', 'all()'],
  [' (all() )', 'all()'],
  ['global( )', 'global()'],
  ['!all()', '!all()'],
  [`! (has( b)||! has(a ))`, '!(has(b) || !has(a))'],
  [`! (a == "b"&&! c != "d")`, '!(a == "b" && !c != "d")'],
  [`a == 'x'`, 'a == "x"'],
  [`a == "'"`, `a == "'"`],
  [`a == '"'`, `a == '"'`],
  [`a contains '"'`, `a contains '"'`],
  [`a startswith '"'`, `a starts with '"'`],
  [`a endswith "'"`, `a ends with "'"`],
  [`a!='"'`, `a != '"'`],
  [`a notin {}`, 'a not in {}'],
  [`a in {"d", "a", "b"}`, 'a in {"a", "b", "d"}'],
  [`a in {"z", "z", "x", "y", "x", "a"}`, 'a in {"a", "x", "y", "z"}'],
  [`a in {'x',}`, 'a in {"x"}'],
  [`a in {"'", '"'}`, `a in {'"', "'"}`],
  [`a in {'😀', 'z', 'ｚ', 'é', 'e', 'Z'}`, 'a in {"Z", "e", "z", "é", "ｚ", "😀"}'], // code point (UTF-8 byte) order, as Go sorts
  [`a in {'😀b', '😀a', '😀', '😀a'}`, 'a in {"😀", "😀a", "😀b"}'],
  [`a=="b"||c=="d"&&e=="f"`, '(a == "b" || (c == "d" && e == "f"))'],
  [`a=="b"&&c=="d"||e=="f"`, '((a == "b" && c == "d") || e == "f")'],
  [`a == 'x' && b == 'y' && c == 'z'`, '(a == "x" && b == "y" && c == "z")'],
  [`(a == 'x' && b == 'y') && c == 'z'`, '((a == "x" && b == "y") && c == "z")'], // groups are kept, not flattened
  [`(a == 'x') && (b == 'y')`, '(a == "x" && b == "y")'],
  [`!(k == 'v')`, '!k == "v"'],
  [`!!has(a)`, 'has(a)'],
  [`! ! ! has(a)`, '!has(a)'],
  [`!(!has(a))`, '!!has(a)'],
  [`!(!(k == 'v' && has(t) || all()) && (a in {'b', 'c'}))`, '!(!((k == "v" && has(t)) || all()) && a in {"b", "c"})'],
];

t.test('normalized form', async (t) => {
  for (const [input, expected] of normalized) {
    const s = parseSelector(input);
    t.equal(s.toString(), expected, JSON.stringify(input));
    t.equal(`${s}`, expected);
    t.equal(JSON.stringify({ s }), JSON.stringify({ s: expected }));
    // Idempotent, except that Calico prints a negated group of a negation as "!!", which then collapses.
    if (!expected.includes('!!')) t.equal(parseSelector(expected).toString(), expected, `${expected} is a fixed point`);
  }
});

// Invalid selectors: the column (0-based) and what was expected there.
const OPS = '==, !=, in, not in, contains, starts with or ends with';
const invalid: [sel: string, position: number, reason: string][] = [
  [`app == 'x' &&`, 13, 'expected a label expression after &&'],
  [`app == 'x' ||`, 13, 'expected a label expression after ||'],
  [`app == 'x' && )`, 14, 'expected a label expression after &&, found ")"'],
  [`has(foo) &&`, 11, 'expected a label expression after &&'],
  [`!`, 1, 'expected a label expression after !'],
  [`!!`, 2, 'expected a label expression after !'],
  [`(`, 1, 'expected a label expression after ('],
  [`()`, 1, 'expected a label expression after (, found ")"'],
  [`)`, 0, 'expected a label expression, found ")"'],
  [`%`, 0, 'expected a label expression, found "%"'],
  [`a == "b" && %`, 12, 'expected a label expression after &&, found "%"'],
  [`a == "b" || %`, 12, 'expected a label expression after ||, found "%"'],
  [`'b1' == b`, 0, `expected a label expression, found string 'b1'`],
  [`!= 'x'`, 0, 'expected a label expression, found "!="'],
  [`b`, 1, `expected an operator (${OPS}) after label "b"`],
  [`a `, 2, `expected an operator (${OPS}) after label "a"`],
  [`a b`, 2, `expected an operator (${OPS}) after label "a", found "b"`],
  [`a = 'b'`, 2, `expected an operator (${OPS}) after label "a", found "="`],
  [`a 'b'`, 2, `expected an operator (${OPS}) after label "a", found string 'b'`],
  [`a !has(b)`, 2, `expected an operator (${OPS}) after label "a", found "!"`],
  [`label inf {'x'}`, 6, `expected an operator (${OPS}) after label "label", found "inf"`],
  [`has (a)`, 4, `expected an operator (${OPS}) after label "has", found "("`],
  [`all ()`, 4, `expected an operator (${OPS}) after label "all", found "("`],
  [`b == b`, 5, 'expected a quoted string after ==, found unquoted "b" (values must be in \' or ")'],
  [`b != b`, 5, 'expected a quoted string after !=, found unquoted "b" (values must be in \' or ")'],
  [`b contains b`, 11, 'expected a quoted string after contains, found unquoted "b" (values must be in \' or ")'],
  [`b starts with b`, 14, 'expected a quoted string after starts with, found unquoted "b" (values must be in \' or ")'],
  [`b ends with`, 11, 'expected a quoted string after ends with'],
  [`a === 'b'`, 4, 'expected a quoted string after ==, found "="'],
  [`label starts foo "value"`, 13, 'expected "with" after starts, found "foo"'],
  [`label ends withs "value"`, 11, 'expected "with" after ends, found "withs"'],
  [`a not {'x'}`, 6, 'expected "in" after not, found "{"'],
  [`foo in ""`, 7, `expected { to start a set of quoted strings after in, found string ""`],
  [`foo not in 'x'`, 11, `expected { to start a set of quoted strings after not in, found string 'x'`],
  [`a in`, 4, 'expected { to start a set of quoted strings after in'],
  [`a in {`, 6, 'expected a quoted string or } after { in the set at column 5'],
  [`a in {,}`, 6, 'expected a quoted string or } after { in the set at column 5, found ","'],
  [
    `a in {x}`,
    6,
    'expected a quoted string or } after { in the set at column 5, found unquoted "x" (values must be in \' or ")',
  ],
  [`foo in {"", ||`, 12, 'expected a quoted string or } after , in the set at column 7, found "||"'],
  [`a in {'x',,}`, 10, 'expected a quoted string or } after , in the set at column 5, found ","'],
  [`a in {'x' 'y'}`, 10, `expected , or } after a value in the set at column 5, found string 'y'`],
  [`a in {'x'`, 9, 'expected , or } after a value in the set at column 5'],
  [`has(`, 4, 'expected a label name inside has('],
  [`has()`, 4, 'expected a label name inside has(, found ")"'],
  [`has('a')`, 4, `expected a label name inside has(, found string 'a'`],
  [`has(foo`, 7, 'expected ) to close has( at column 0'],
  [`has( foo `, 9, 'expected ) to close has( at column 0'],
  [`has(a b)`, 6, 'expected ) to close has( at column 0, found "b"'],
  [`all(`, 4, 'expected ) after all('],
  [`global(x)`, 7, 'expected ) after global(, found "x"'],
  [`(a == "foo"`, 11, 'expected &&, || or ) to close the ( at column 0'],
  [`x == 'y' && ((a == "foo") || b == 'c'`, 37, 'expected &&, || or ) to close the ( at column 12'],
  [`a == "b")`, 8, 'expected &&, || or the end of the selector, found ")"'],
  [`has(a) has(b)`, 7, 'expected &&, || or the end of the selector, found "has"'],
  [`all()all()`, 5, 'expected &&, || or the end of the selector, found "all"'],
  [`a == "b" ==`, 9, 'expected &&, || or the end of the selector, found "=="'],
  [`foo == "bar" &`, 13, 'expected &&, || or the end of the selector, found "&"'],
  [`foo == "bar" | x == 'y'`, 13, 'expected &&, || or the end of the selector, found "|"'],
  [`a == "b" and c == "d"`, 9, 'expected &&, || or the end of the selector, found "and"'],
  // unterminated strings are reported at their opening quote
  [`"FOO`, 0, 'unterminated string: the " here has no closing "'],
  [`"FOO'`, 0, 'unterminated string: the " here has no closing "'],
  [`label == 'value`, 9, "unterminated string: the ' here has no closing '"],
  [`a in {'x', "y}`, 11, 'unterminated string: the " here has no closing "'],
  // only spaces and tabs separate tokens
  [
    `a == 'b'\n`,
    8,
    'expected &&, || or the end of the selector, found "\\n" (U+000A); only spaces and tabs may separate tokens',
  ],
  [
    `a ==\r\n'b'`,
    4,
    'expected a quoted string after ==, found "\\r" (U+000D); only spaces and tabs may separate tokens',
  ],
  [
    '\u00a0a == "b"',
    0,
    'expected a label expression, found "\u00a0" (U+00A0); only spaces and tabs may separate tokens',
  ],
  // characters outside the label charset
  [`app:name == 'x'`, 3, `expected an operator (${OPS}) after label "app", found ":"`],
  [`é == 'x'`, 0, 'expected a label expression, found "é" (U+00E9)'],
  [`a == 'x' && 😀`, 12, 'expected a label expression after &&, found "😀" (U+1F600)'],
];

t.test('invalid selectors name the column and what was expected', async (t) => {
  for (const [sel, position, reason] of invalid) {
    let err: unknown;
    try {
      parseSelector(sel);
    } catch (e) {
      err = e;
    }
    if (!(err instanceof SelectorError)) {
      t.fail(`${JSON.stringify(sel)} should throw a SelectorError, got ${String(err)}`);
      continue;
    }
    t.equal(err.code, 'VERDICT_SELECTOR_INVALID');
    t.equal(err.name, 'SelectorError');
    t.equal(err.selector, sel);
    t.equal(err.reason, reason, JSON.stringify(sel));
    t.equal(err.position, position, `${JSON.stringify(sel)} column`);
    t.equal(err.message, `VERDICT_SELECTOR_INVALID: at column ${position} of ${JSON.stringify(sel)}: ${reason}`);
  }
});

t.test('the example message from the spec', async (t) => {
  t.throws(() => parseSelector(`app == 'x' &&`), {
    code: 'VERDICT_SELECTOR_INVALID',
    position: 13,
    message: `VERDICT_SELECTOR_INVALID: at column 13 of "app == 'x' &&": expected a label expression after &&`,
  });
});

t.test('label names are limited to 512 characters, as in Calico', async (t) => {
  const ok = 'a'.repeat(MAX_LABEL_LENGTH);
  const long = 'a'.repeat(MAX_LABEL_LENGTH + 1);
  t.equal(parseSelector(`${ok} == 'x'`).matches({ [ok]: 'x' }), true);
  t.equal(parseSelector(`has(${ok})`).matches({ [ok]: '' }), true);
  t.throws(
    () => parseSelector(`${long} == 'x'`),
    errorWith({
      position: 0,
      reason: 'label name is 513 characters long; at most 512 are allowed',
    }),
  );
  t.throws(
    () => parseSelector(`x == 'y' || has(${long})`),
    errorWith({
      position: 16,
      reason: 'label name is 513 characters long; at most 512 are allowed',
    }),
  );
  // Values have no length limit.
  const v = 'v'.repeat(10_000);
  t.equal(parseSelector(`a == '${v}'`).matches({ a: v }), true);
});

t.test('deep nesting is bounded; long chains are not', async (t) => {
  const nest = (n: number) => `${'('.repeat(n)}a == 'x'${')'.repeat(n)}`;
  t.equal(parseSelector(nest(MAX_NESTING_DEPTH)).matches({ a: 'x' }), true);
  t.throws(
    () => parseSelector(nest(MAX_NESTING_DEPTH + 1)),
    errorWith({
      position: MAX_NESTING_DEPTH,
      reason: `parentheses are nested more than ${MAX_NESTING_DEPTH} deep`,
    }),
  );
  const negNest = (n: number) => `${'!('.repeat(n)}has(a)${')'.repeat(n)}`;
  const deep = parseSelector(negNest(MAX_NESTING_DEPTH));
  t.equal(deep.matches({ a: '' }), true); // an even number of negations
  t.equal(deep.toString(), `${'!'.repeat(MAX_NESTING_DEPTH)}has(a)`);
  const chain = Array.from({ length: 20_000 }, (_, i) => `k${i} != 'x'`).join(' && ');
  t.equal(parseSelector(chain).matches({}), true);
  t.equal(parseSelector(`${'!'.repeat(100_001)}all()`).matches({}), false);
});

t.test('usesGlobal reports global() anywhere in the selector', async (t) => {
  t.equal(parseSelector('global()').usesGlobal, true);
  t.equal(parseSelector(`has(a) || !(b == 'c' && global())`).usesGlobal, true);
  t.equal(parseSelector(`global == 'x' && has(global)`).usesGlobal, false);
  t.equal(parseSelector('').usesGlobal, false);
});

t.test('the parsed tree and source are exposed', async (t) => {
  const s = parseSelector(`a in {'y', 'x', 'y'} && !has(b)`);
  t.equal(s.source, `a in {'y', 'x', 'y'} && !has(b)`);
  t.same(s.root, {
    kind: 'and',
    operands: [
      { kind: 'in', label: 'a', values: ['x', 'y'] },
      { kind: 'not', operand: { kind: 'has', label: 'b' } },
    ],
  });
  t.same(parseSelector('  ').root, { kind: 'all' });
});

t.test('a non-string selector is rejected with the same error type', async (t) => {
  t.throws(() => parseSelector(undefined as unknown as string), {
    code: 'VERDICT_SELECTOR_INVALID',
    position: 0,
    reason: 'expected the selector to be a string, got undefined',
  });
  t.throws(
    () => parseSelector(null as unknown as string),
    errorWith({
      reason: 'expected the selector to be a string, got null',
    }),
  );
});
