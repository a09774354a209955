import { spawnSync } from 'node:child_process';
import { isIP } from 'node:net';
import { join } from 'node:path';
import fc from 'fast-check';
import t from 'tap';
import { parseAggregatorArgs, type AggregatorConfig } from '../../aggregator/config.js';
import { cliFailure } from '../../common/cli-failure.js';
import { packageRoot } from '../../common/package-root.js';
import { fuzzParams } from '../fixtures/fuzz.js';
import { tempDir } from '../fixtures/tmp.js';

// Property-based fuzzing of --internal-cidr (the aggregator's cidr-list flag kind). Whatever text is given, the
// aggregator either takes a list in which every comma-separated part is there, in order, each exactly one network
// (an address, at most a decimal prefix length that fits its family), and which reads back the same when joined;
// or it refuses with one line that exits 2 and names a part that is not a CIDR. A bad part among good ones is never
// dropped quietly. Fixed seeds (fuzzParams: FUZZ_RUNS and FUZZ_SEED for longer runs): a failure is reproducible.
const RUNS = fuzzParams(500);
/** Each CLI case starts a process: a few, however many runs are asked for. */
const CLI_RUNS = Math.min(fuzzParams(5).numRuns, 40);

/** The parts a person wrote: split at commas, trimmed, empty ones left out (",," and a trailing comma are fine). */
const partsOf = (text: string) =>
  text
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean);

/** The test's own reading of "one network", written apart from the product's. */
function isOneNetwork(part: string): boolean {
  const m = /^([^/]+)(?:\/(0|[1-9][0-9]*))?$/.exec(part);
  if (!m) return false;
  const [, addr = '', bits] = m;
  const v4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/.test(addr);
  const v6 = !v4 && !addr.includes('%') && isIP(addr) === 6;
  if (!v4 && !v6) return false;
  return bits === undefined || Number(bits) <= (v4 ? 32 : 128);
}

type Outcome = { list: string[] } | { line: string; exitCode: number };

function parse(text: string): Outcome {
  try {
    return { list: (parseAggregatorArgs([`--internal-cidr=${text}`], {}) as AggregatorConfig).internalCidrs };
  } catch (err) {
    return cliFailure(err, '--http or --grpc');
  }
}

/** Holds the property for one text; returns what is wrong, or undefined. */
function judge(text: string): string | undefined {
  const parts = partsOf(text);
  const out = parse(text);
  if ('list' in out) {
    if (JSON.stringify(out.list) !== JSON.stringify(parts)) return `took ${JSON.stringify(out.list)} from the parts`;
    const stray = parts.find((p) => !isOneNetwork(p));
    if (stray !== undefined) return `took ${JSON.stringify(stray)}, which is not one network`;
    const again = parse(out.list.join(','));
    if (!('list' in again) || JSON.stringify(again.list) !== JSON.stringify(out.list)) return 'does not read back';
    return undefined;
  }
  if (out.exitCode !== 2) return `exit code ${out.exitCode}: ${out.line}`;
  if (/[\r\n]/.test(out.line)) return `more than one line: ${JSON.stringify(out.line)}`;
  const named = /^VERDICT_CONFIG_INVALID: --internal-cidr: (".*") is not a CIDR such as 10\.0\.0\.0\/8/.exec(out.line);
  if (!named) return `unclear: ${out.line}`;
  const part = JSON.parse(named[1] as string) as string;
  if (!parts.includes(part)) return `names ${JSON.stringify(part)}, not a part of the text`;
  if (isOneNetwork(part)) return `refuses ${JSON.stringify(part)}, which is one network`;
  if (parts.every(isOneNetwork)) return 'refuses a list of networks';
  return undefined;
}

const prefix = (max: number) => fc.option(fc.integer({ min: 0, max }).map(String), { nil: undefined });
const goodCidr = fc.oneof(
  fc.tuple(fc.ipV4(), prefix(32)).map(([a, b]) => (b === undefined ? a : `${a}/${b}`)),
  fc.tuple(fc.ipV6(), prefix(128)).map(([a, b]) => (b === undefined ? a : `${a}/${b}`)),
);
/** Ways a network is mistyped: each part here is not one network. */
const badCidr = fc.oneof(
  fc.constantFrom('office', '10.0.0.0/', '10.0.0.0/8/9', '10.0.0.0/33', '::/129', '10.0.0.0/08', '10.0.0.0/0x8'),
  fc.constantFrom('10.0.0.0/ 8', '10.0.0.0 /8', '1.2.3.4/+8', '1.2.3.4/8.0', '1.2.3.4/1e1', 'fe80::1%eth0/64'),
  fc.constantFrom('256.0.0.0/8', '010.0.0.0/8', '10.0.0/8', '10.0.0.0.0', '/8', '10.0.0.0/8\nfd00::/8', '1.2.3.4/-1'),
  fc.constantFrom('__proto__', 'constructor', '10.0.0.0\u0085/8', '::ffff:1.2.3.4/129'),
  goodCidr.chain((c) => fc.constantFrom(`${c}/`, `${c}x`, `x${c}`, `${c}/1/2`)),
);
const space = fc.constantFrom('', ' ', '  ', '\t', '\n');
const spaced = (part: fc.Arbitrary<string>) => fc.tuple(space, part, space).map(([a, p, b]) => `${a}${p}${b}`);
/** Text near a list of networks: digits, dots, colons, slashes, commas, hex letters, spaces, signs and a zone. */
const nearCidr = fc.string({
  unit: fc.constantFrom(...'0123456789./:,abcdefABCDEF x%-+\n\t', '25', '255.', '::', '/32', '/128', '10.0.0.0'),
  maxLength: 40,
});

t.test('any text: a list of every part, each one network, that reads back; or one line that exits 2', async (t) => {
  fc.assert(
    fc.property(
      fc.oneof(nearCidr, fc.string({ maxLength: 40 }), fc.string({ unit: 'binary', maxLength: 20 })),
      (text) => {
        const wrong = judge(text);
        if (wrong) throw new Error(`${JSON.stringify(text)}: ${wrong}`);
      },
    ),
    RUNS,
  );
  t.pass(`${RUNS.numRuns} texts`);
});

t.test('a list of networks is taken whole, in order, whatever the spaces and empty parts around them', async (t) => {
  fc.assert(
    fc.property(fc.array(fc.oneof(spaced(goodCidr), space), { minLength: 1, maxLength: 8 }), (pieces) => {
      const text = pieces.join(',');
      const out = parse(text);
      if (!('list' in out)) throw new Error(`${JSON.stringify(text)} refused: ${out.line}`);
      const wrong = judge(text);
      if (wrong) throw new Error(`${JSON.stringify(text)}: ${wrong}`);
    }),
    RUNS,
  );
  t.pass(`${RUNS.numRuns} lists`);
});

t.test('one bad part among good networks refuses the list and names the first bad part', async (t) => {
  fc.assert(
    fc.property(
      fc.array(spaced(goodCidr), { maxLength: 6 }),
      fc.array(badCidr, { minLength: 1, maxLength: 2 }),
      fc.nat(),
      (good, bad, at) => {
        const parts = [...good];
        for (const b of bad) parts.splice((at + parts.length) % (parts.length + 1), 0, b);
        const text = parts.join(',');
        const out = parse(text);
        if ('list' in out) throw new Error(`${JSON.stringify(text)} taken as ${JSON.stringify(out.list)}`);
        const firstBad = partsOf(text).find((p) => !isOneNetwork(p));
        if (!out.line.includes(`--internal-cidr: ${JSON.stringify(firstBad)} is not a CIDR`))
          throw new Error(`${JSON.stringify(text)}: ${out.line} does not name ${JSON.stringify(firstBad)}`);
        const wrong = judge(text);
        if (wrong) throw new Error(`${JSON.stringify(text)}: ${wrong}`);
      },
    ),
    RUNS,
  );
  t.pass(`${RUNS.numRuns} lists`);
});

t.test('through the real CLI, a refused list exits 2 with one line on stderr and nothing on stdout', async (t) => {
  const cli = join(packageRoot(), 'dist', 'aggregator', 'cli.js');
  const dir = tempDir(t);
  // Ports and a database of its own, should a list wrongly be taken and the aggregator start.
  const rest = ['--http', '127.0.0.1:0', '--grpc', '127.0.0.1:0', '--db', `sqlite:${join(dir, 'v.db')}`];
  const texts = fc.sample(
    fc
      .tuple(fc.array(goodCidr, { maxLength: 3 }), badCidr)
      .map(([good, bad]) => [...good, bad].join(','))
      .filter((s) => !s.includes('\0')),
    { seed: RUNS.seed, numRuns: CLI_RUNS },
  );
  for (const text of ['10.0.0.0/8,office', '10.0.0.0/', '10.0.0.0/8\nfd00::/8', ...texts]) {
    const r = spawnSync(process.execPath, [cli, `--internal-cidr=${text}`, ...rest], {
      encoding: 'utf8',
      timeout: 20_000,
    });
    const lines = r.stderr.trimEnd().split('\n');
    t.equal(r.status, 2, `${JSON.stringify(text)} exits 2`);
    t.equal(r.stdout, '', 'nothing on stdout');
    t.equal(lines.length, 1, `one line: ${r.stderr.trimEnd()}`);
    t.match(lines[0], /^verdict-aggregator: VERDICT_CONFIG_INVALID: --internal-cidr: ".*" is not a CIDR/);
  }
});
