import t from 'tap';
import { canonicalJson, sha256Hex } from '../../../aggregator/evidence/canonical.js';

t.test('canonical JSON is RFC 8785: sorted keys, no whitespace, ECMAScript numbers and strings', async (t) => {
  const cases: [string, unknown, string][] = [
    [
      'keys sorted at every depth',
      { b: 1, a: [1, 'x', { d: null, c: true }] },
      '{"a":[1,"x",{"c":true,"d":null}],"b":1}',
    ],
    ['numbers as ECMAScript prints them', [1e21, 1e-7, 0.1, -0, 100, 4.5], '[1e+21,1e-7,0.1,0,100,4.5]'],
    ['strings escaped as JSON.stringify does', ['"\\\n\u0001', '\u2028é'], '["\\"\\\\\\n\\u0001","\u2028é"]'],
    // RFC 8785 3.2.3: keys compare as UTF-16 code units, so U+20AC sorts before a surrogate pair.
    [
      'keys by UTF-16 code units',
      { '\u{1F600}': 1, '\u20ac': 2, '\r': 3, '1': 4, a: 5 },
      '{"\\r":3,"1":4,"a":5,"€":2,"😀":1}',
    ],
    ['undefined members dropped as JSON.stringify does', { a: undefined, b: [undefined] }, '{"b":[null]}'],
  ];
  for (const [name, value, expected] of cases) t.equal(canonicalJson(value), expected, name);
});

t.test('the same value stored with other key order or spacing has the same digest', async (t) => {
  const stored = [
    '{"b": {"y": 2, "x": 1}, "a": [3]}',
    '{"a":[3],"b":{"x":1,"y":2}}',
    '{\n "a" : [ 3 ] ,"b":{"y":2,"x":1}}',
  ];
  const digests = new Set(stored.map((text) => sha256Hex(canonicalJson(JSON.parse(text)))));
  t.equal(digests.size, 1);
  t.equal(
    sha256Hex(''),
    'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
    'SHA-256 as sha256sum prints it',
  );
  t.not(sha256Hex(canonicalJson({ a: [3], b: { x: 1, y: 3 } })), [...digests][0], 'another value, another digest');
});
