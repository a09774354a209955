import fc from 'fast-check';
import t from 'tap';
import { InternalRanges, isCidr } from '../../aggregator/network-access/cidr.js';

// A policy net (Calico nets, Cilium fromCIDR) is judged "the internet" unless wholly inside a private or
// --internal-cidr range; text that is not a CIDR is the cautious answer, the internet. Hand-derived cases, then
// properties.
const runs = Number(process.env.FUZZ_RUNS ?? 200);

t.test('hand-derived nets', async (t) => {
  const r = new InternalRanges(['203.0.113.0/24']);
  t.equal(r.reachesInternet('0.0.0.0/0'), true, 'every address');
  t.equal(r.reachesInternet('10.1.0.0/16'), false, 'inside RFC 1918 10/8');
  t.equal(r.reachesInternet('10.0.0.0/7'), true, 'wider than 10/8: holds 11/8, public');
  t.equal(r.reachesInternet('203.0.113.7'), false, 'a bare address inside --internal-cidr');
  t.equal(r.reachesInternet('203.0.112.0/23'), true, 'wider than the internal /24');
  t.equal(r.reachesInternet('fd00::/8'), false, 'IPv6 unique-local');
  t.equal(r.reachesInternet('2001:db8::/32'), true, 'IPv6 outside every internal range');
  for (const bad of [
    '10.0.0.0/',
    '10.0.0.0/0x8',
    '10.0.0.0/+8',
    '10.0.0.0/1e1',
    '10.0.0.0/08',
    '10.0.0.0/8/9',
    'fe80::1%eth0',
    '10.0.0.0/33',
  ])
    t.equal(isCidr(bad), false, `${JSON.stringify(bad)} is not a CIDR`);
  // '10.0.0.0/' read as /0 would have made every address internal when given as an internal range.
  t.equal(new InternalRanges(['10.0.0.0/']).reachesInternet('8.8.8.8/32'), true, 'a bad internal range adds nothing');
});

t.test('every IPv4 prefix is judged like the reference arithmetic', async () => {
  const ipv4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255));
  const toInt = (o: number[]) => ((o[0] << 24) | (o[1] << 16) | (o[2] << 8) | o[3]) >>> 0;
  const ranges = [
    [toInt([10, 0, 0, 0]), 8],
    [toInt([172, 16, 0, 0]), 12],
    [toInt([192, 168, 0, 0]), 16],
    [toInt([100, 64, 0, 0]), 10],
    [toInt([127, 0, 0, 0]), 8],
    [toInt([169, 254, 0, 0]), 16],
  ] as const;
  const mask = (bits: number) => (bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0);
  const r = new InternalRanges();
  fc.assert(
    fc.property(ipv4, fc.integer({ min: 0, max: 32 }), (o, bits) => {
      const text = `${o.join('.')}/${bits}`;
      const addr = toInt(o);
      const inside = ranges.some(([base, b]) => bits >= b && (addr & mask(b)) >>> 0 === base);
      return isCidr(text) && r.reachesInternet(text) === !inside;
    }),
    { numRuns: runs },
  );
});

t.test('arbitrary text never throws and is a CIDR only in canonical prefix form', async () => {
  const r = new InternalRanges();
  fc.assert(
    fc.property(fc.string({ maxLength: 60 }), (text) => {
      const ok = isCidr(text);
      const reaches = r.reachesInternet(text);
      if (!ok) return reaches === true;
      const prefix = text.trim().split('/')[1];
      return prefix === undefined || /^(0|[1-9][0-9]*)$/.test(prefix);
    }),
    { numRuns: runs },
  );
});
