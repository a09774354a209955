import { BlockList, isIP } from 'node:net';

/**
 * Address ranges that are never "the internet": RFC 1918, RFC 6598 (carrier-grade NAT, common for pod networks),
 * loopback, link-local, IPv6 unique-local, link-local and loopback. Calico's flow logs call addresses in RFC 1918
 * ranges `pvt` and the rest `pub` (the reference's flow-formats §1); a policy net is judged the same way, plus any
 * internal CIDRs the caller gives.
 */
const PRIVATE_RANGES = [
  '10.0.0.0/8',
  '172.16.0.0/12',
  '192.168.0.0/16',
  '100.64.0.0/10',
  '127.0.0.0/8',
  '169.254.0.0/16',
  'fc00::/7',
  'fe80::/10',
  '::1/128',
];

interface Range {
  list: BlockList;
  bits: number;
  family: 'ipv4' | 'ipv6';
}

function parseCidr(cidr: string): { addr: string; bits: number; family: 'ipv4' | 'ipv6' } | undefined {
  const [addr = '', bitsText, extra] = cidr.trim().split('/');
  const family = isIP(addr);
  // A zone (fe80::1%eth0) names an interface, not a range; a second '/' or a prefix that is not plain decimal
  // digits ('', '0x8', '+8', '1e1', '08') is not a CIDR: Number() would read '' as /0, every address.
  if (family === 0 || extra !== undefined || addr.includes('%')) return undefined;
  const max = family === 6 ? 128 : 32;
  if (bitsText !== undefined && !/^(0|[1-9][0-9]{0,2})$/.test(bitsText)) return undefined;
  const bits = bitsText === undefined ? max : Number(bitsText);
  if (bits > max) return undefined;
  return { addr, bits, family: family === 6 ? 'ipv6' : 'ipv4' };
}

/** Whether text is a CIDR (an address, optionally with a prefix length that fits its family). */
export function isCidr(text: string): boolean {
  return parseCidr(text) !== undefined;
}

/** Which policy nets reach outside the cluster's own networks. */
export class InternalRanges {
  private readonly ranges: Range[];

  constructor(internalCidrs: readonly string[] = []) {
    this.ranges = [...PRIVATE_RANGES, ...internalCidrs].flatMap((c) => {
      const p = parseCidr(c);
      if (!p) return [];
      const list = new BlockList();
      list.addSubnet(p.addr, p.bits, p.family);
      return [{ list, bits: p.bits, family: p.family }];
    });
  }

  /**
   * Whether a net holds any internet address: it is not wholly inside one internal range. 0.0.0.0/0 does; 10.1.0.0/16
   * does not. A net that is not a CIDR is taken to reach the internet (the cautious answer for "allows the internet").
   */
  reachesInternet(cidr: string): boolean {
    const p = parseCidr(cidr);
    if (!p) return true;
    return !this.ranges.some((r) => r.family === p.family && p.bits >= r.bits && r.list.check(p.addr, p.family));
  }
}
