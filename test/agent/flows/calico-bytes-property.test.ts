import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import t from 'tap';
import { InternalNetworks } from '../../../agent/flows/normalize.js';
import { parseCalicoLine } from '../../../agent/flows/sources/calico.js';
import {
  forgetCommonLineCaches,
  parseCalicoBytes,
  readCommonLine,
} from '../../../agent/flows/sources/calico-common.js';
import { packageRoot } from '../../../common/package-root.js';
import { fuzzParams } from '../../fixtures/fuzz.js';

// The agent reads a Calico line from its bytes (parseCalicoBytes: a one-pass reader for Felix's common shape,
// JSON.parse for anything else); parseCalicoLine, JSON.parse on the decoded line, is the reference. Property: for
// every line, however broken, both give the same result (the same flow, skip or malformed reason, or the same
// exception), with the one-pass reader's caches warm from the lines before. Lines: the bundled samples and two
// published felix lines, edited as text (fields retyped, removed, given twice, escaped, spaced, cut, characters and
// raw bytes put in), and placed in a buffer after and before other bytes, as the follower hands them over.

/** projectcalico/calico felix/collector/flowlog/testdata/flows.log (commit 15c318b), lines 1 and 2. */
const FELIX_LINES = [
  '{"start_time":1577834657,"end_time":1577834965,"source_ip":null,"source_name":"-","source_name_aggr":"intrusion-detection-controller-5bdcdd9c97-*","source_namespace":"tigera-intrusion-detection","source_port":null,"source_type":"wep","source_labels":{"labels":["pod-template-hash=5bdcdd9c97","k8s-app=intrusion-detection-controller"]},"dest_ip":null,"dest_name":"-","dest_name_aggr":"coredns-576cbf47c7-*","dest_namespace":"kube-system","dest_port":53,"dest_type":"wep","dest_labels":{"labels":["pod-template-hash=576cbf47c7","k8s-app=kube-dns"]},"proto":"udp","action":"allow","reporter":"dst","policies":{"all_policies":["0|__PROFILE__|__PROFILE__.kns.kube-system|allow"]},"bytes_in":4288,"bytes_out":7644,"num_flows":41,"num_flows_started":37,"num_flows_completed":39,"packets_in":37,"packets_out":37,"http_requests_allowed_in":0,"http_requests_denied_in":0,"original_source_ips":null,"num_original_source_ips":0}',
  '{"start_time":1577834657,"end_time":1577834957,"source_ip":null,"source_name":"-","source_name_aggr":"compliance-snapshotter-77f4c7776d-*","source_namespace":"tigera-compliance","source_port":null,"source_type":"wep","source_labels":{"labels":["pod-template-hash=77f4c7776d","k8s-app=compliance-snapshotter"]},"dest_ip":null,"dest_name":"-","dest_name_aggr":"coredns-576cbf47c7-*","dest_namespace":"kube-system","dest_port":53,"dest_type":"wep","dest_labels":{"labels":["pod-template-hash=576cbf47c7","k8s-app=kube-dns"]},"proto":"udp","action":"allow","reporter":"dst","policies":{"all_policies":["0|__PROFILE__|__PROFILE__.kns.kube-system|allow"]},"bytes_in":1702,"bytes_out":3029,"num_flows":15,"num_flows_started":15,"num_flows_completed":15,"packets_in":15,"packets_out":15,"http_requests_allowed_in":0,"http_requests_denied_in":0,"original_source_ips":null,"num_original_source_ips":0}',
];
const SAMPLES = [
  ...readFileSync(join(packageRoot(), 'examples', 'flows', 'calico', 'flows.log'), 'utf8')
    .split('\n')
    .filter(Boolean),
  ...FELIX_LINES,
];
const RECORDS = SAMPLES.map((l) => JSON.parse(l) as Record<string, unknown>);
const NAMES = [...new Set(RECORDS.flatMap((r) => Object.keys(r)))];

/** Whatever a parser answers for a line, or the exception it throws, as comparable data. */
function outcome(read: () => unknown): unknown {
  try {
    return { result: read() };
  } catch (err) {
    return { threw: String(err) };
  }
}

/** Values a field may be given: the expected words and numbers, and what breaks them. */
const valueText = fc.oneof(
  fc.constantFrom(
    'null',
    'true',
    'false',
    '0',
    '-0',
    '1',
    '00',
    '1.0',
    '1e3',
    '1E+2',
    '-5',
    '65535',
    '65536',
    '999999999999999',
    '9007199254740993',
    '""',
    '"-"',
    '"allow"',
    '"deny"',
    '"src"',
    '"dst"',
    '"fwd"',
    '"wep"',
    '"hep"',
    '"ns"',
    '"net"',
    '"pub"',
    '"pvt"',
    '"TCP"',
    '"default"',
    '"kubernetes"',
    '"10.1.2.3"',
    '"203.0.113.9"',
    '"\\u0061llow"',
    '"al\\u006cow"',
    '"d\\u0065fault"',
    '"w\\u0065p"',
    '"caf\u00e9"',
    '"\ud800"',
    '[]',
    '{}',
    '[1,[2,{"a":null}]]',
    '{"labels":[]}',
    '{"labels":null}',
    '{"labels":["app=x","a=b"]}',
    '{"labels":["b=1","a=2"],"labels":["c=3"]}',
    '{"labels":[1]}',
    '{"all_policies":["0|default|shop/knp.default.x|allow|0"]}',
    '{"enforced_policies":["0|t|t.p|deny"],"pending_policies":["0|t|t.staged:q|allow"]}',
    '{"enforced_policies":["bad"]}',
    '{"all_policies":null}',
  ),
  fc.json(),
);

/** One edit of a line's text. */
const edit = fc.oneof(
  // A field given another value, or given twice (JSON.parse keeps the last).
  fc.tuple(fc.constant('set'), fc.nat(), valueText),
  fc.tuple(fc.constant('twice'), fc.nat(), valueText),
  fc.tuple(fc.constant('remove'), fc.nat(), fc.constant('')),
  // A field name written with an escape, or a space around the punctuation.
  fc.tuple(fc.constant('escapeName'), fc.nat(), fc.constant('')),
  fc.tuple(fc.constant('space'), fc.nat(), fc.constantFrom(' ', '\t', '\r', '\n', '\u00a0', '\u2028')),
  // Characters put in anywhere, a piece cut out, the line cut short.
  fc.tuple(
    fc.constant('insert'),
    fc.nat(),
    fc.oneof(
      fc.constantFrom('"', '\\', '\\"', '{', '}', '[', ']', ',', ':', '0', '-', '.', 'e', 'n', '\u0000', '\u001f'),
      fc.constantFrom('\u007f', '\u00e9', '\u20ac', '\ud83d\ude00', '\ud800', '\ufeff'),
      fc.string({ maxLength: 3 }),
    ),
  ),
  fc.tuple(fc.constant('cut'), fc.nat(), fc.nat(40).map(String)),
  fc.tuple(fc.constant('truncate'), fc.nat(), fc.constant('')),
);

type Edit = [string, number, string];

function applyEdit(line: string, [kind, n, text]: Edit): string {
  const name = NAMES[n % NAMES.length] as string;
  const at = n % (line.length + 1);
  switch (kind) {
    case 'set':
    case 'remove':
    case 'escapeName': {
      const rec = JSON.parse(line) as Record<string, unknown>;
      if (!(name in rec)) return line;
      const value = JSON.stringify(rec[name]);
      const field = `"${name}":${value}`;
      const i = line.indexOf(field);
      if (i < 0) return line;
      const replacement =
        kind === 'set'
          ? `"${name}":${text}`
          : kind === 'escapeName'
            ? `"\\u${name.charCodeAt(0).toString(16).padStart(4, '0')}${name.slice(1)}":${value}`
            : '';
      let out = line.slice(0, i) + replacement + line.slice(i + field.length);
      if (kind === 'remove') out = out.replace(',,', ',').replace('{,', '{').replace(',}', '}');
      return out;
    }
    case 'twice': {
      const i = line.indexOf(',', at);
      return i < 0 ? line : `${line.slice(0, i)},"${name}":${text}${line.slice(i)}`;
    }
    case 'space': {
      const i = line.slice(at).search(/[,:{}[\]]/);
      return i < 0 ? line : line.slice(0, at + i + 1) + text + line.slice(at + i + 1);
    }
    case 'insert':
      return line.slice(0, at) + text + line.slice(at);
    case 'cut':
      return line.slice(0, at) + line.slice(at + Number(text));
    default:
      return line.slice(0, at);
  }
}

/** A line as bytes: a sample with edits, now and then a raw byte put in (not valid UTF-8 on its own). */
const lineBytes = fc
  .tuple(
    fc.nat(SAMPLES.length - 1),
    fc.oneof(fc.constant([]), fc.array(edit, { minLength: 1, maxLength: 3 })),
    fc.option(fc.tuple(fc.nat(), fc.integer({ min: 0x80, max: 0xff })), { freq: 5 }),
  )
  .map(([i, edits, raw]) => {
    let line = SAMPLES[i] as string;
    for (const e of edits) {
      try {
        line = applyEdit(line, e as Edit);
      } catch {
        // An edit that needs the line to be JSON, on a line an earlier edit broke: the line as it is.
      }
    }
    const b = Buffer.from(line.replace(/\n/g, ' '), 'utf8');
    if (!raw) return b;
    const at = raw[0] % (b.length + 1);
    return Buffer.concat([b.subarray(0, at), Buffer.from([raw[1]]), b.subarray(at)]);
  });

/**
 * What the follower's buffer holds around a line: anything, including what would continue a cut value (its newline,
 * or a \r before it, is left out of the line, and an unterminated last line ends its buffer; bytes right after the
 * line's end are tried too).
 */
const around = fc.oneof(
  fc.uint8Array({ maxLength: 7 }).map((a) => Buffer.from(a)),
  fc.constantFrom('', '}', '"}', 'll}', '0}', ',"x":1}', '\n{"start_time":1}').map((s) => Buffer.from(s)),
);

const NETWORKS = [new InternalNetworks(), new InternalNetworks(['10.0.0.0/8', '203.0.113.0/24'])];

t.test('a line read from its bytes gives what JSON.parse of its text gives, for any line', async (t) => {
  let common = 0;
  let lines = 0;
  await fc.assert(
    fc.property(fc.array(fc.tuple(around, lineBytes, around), { minLength: 1, maxLength: 20 }), fc.nat(3), (xs, n) => {
      const internal = NETWORKS[n % 2] as InternalNetworks;
      const separator = Buffer.from(['\n', '\r\n', '', ''][n] as string);
      forgetCommonLineCaches();
      // In order, caches warm from the lines before: a cached endpoint or policy list must be the one this line names.
      for (const [before, line, after] of xs) {
        const buf = Buffer.concat([before, line, separator, after]);
        const start = before.length;
        const end = start + line.length;
        const got = outcome(() => parseCalicoBytes(buf, start, end, internal));
        const want = outcome(() => parseCalicoLine(buf.toString('utf8', start, end), internal));
        if (!isDeepStrictEqual(got, want) || JSON.stringify(got) !== JSON.stringify(want))
          throw new Error(
            `${buf.toString('utf8', start, end)}\n  bytes: ${JSON.stringify(got)}\n  text:  ${JSON.stringify(want)}`,
          );
        lines++;
        if (readCommonLine(buf, start, end, internal)) common++;
      }
    }),
    fuzzParams(300, 20261201),
  );
  // The property says nothing of the one-pass reader if it never answers: most lines here keep the common shape.
  t.ok(common > lines / 5, `${common} of ${lines} lines read in one pass`);
});

t.test('every sample line, and a fwd one, is read in one pass to what JSON.parse gives', async (t) => {
  const internal = new InternalNetworks();
  forgetCommonLineCaches();
  const fwd = (SAMPLES[0] as string).replace('"reporter":"dst"', '"reporter":"fwd"');
  for (const line of [...SAMPLES, fwd]) {
    // At an odd offset in a larger buffer, as in the follower's.
    const buf = Buffer.from(`xyz${line}\n{"a":`);
    const got = readCommonLine(buf, 3, buf.length - 6, internal);
    t.ok(got, 'read in one pass');
    t.same(got, parseCalicoLine(line, internal));
  }
  t.same(readCommonLine(Buffer.from(fwd), 0, Buffer.byteLength(fwd), internal), {
    kind: 'skip',
    why: 'reporter fwd',
  });
});

t.test('lines JSON.parse would read differently are left to it', async (t) => {
  const internal = new InternalNetworks();
  const line = SAMPLES[0] as string;
  for (const [what, text] of [
    ['an escaped value', line.replace('"action":"allow"', '"action":"\\u0061llow"')],
    ['an escaped name', line.replace('"action":"allow"', '"\\u0061ction":"allow"')],
    ['a field given twice', line.replace('"action":"allow"', '"action":"deny","action":"allow"')],
    ['a space after a colon', line.replace('"action":"allow"', '"action": "allow"')],
    ['a count with an exponent', line.replace(/"num_flows":\d+/, '"num_flows":1e3')],
    ['a label that is not ASCII', line.replace('app=frontend', 'app=caf\u00e9')],
    ['a control character in an unread string', line.replace('"process_name":"-"', '"process_name":"\u0001"')],
  ]) {
    t.equal(readCommonLine(Buffer.from(text), 0, Buffer.byteLength(text), internal), undefined, what);
    t.same(parseCalicoBytes(Buffer.from(text), 0, Buffer.byteLength(text), internal), parseCalicoLine(text, internal));
  }
  t.match(
    parseCalicoBytes(Buffer.from(line.slice(0, -1)), 0, line.length - 1, internal),
    { kind: 'malformed', reason: /not JSON/ },
    'a cut line is malformed, as JSON.parse says',
  );
});
