import { BlockList, isIP } from 'node:net';
import type { FlowEndpoint, PolicyRef } from '../../common/flow.js';
import { configError } from '../errors.js';

/**
 * What a source parser answers for one line or message. A skip with `unusable` is input the source meant as a flow but
 * that cannot say what a policy did (a Hubble flow with no verdict, an export whose field mask left out
 * traffic_direction): the capture counts it by that fixed reason and warns, where an ordinary skip (a reply, a repeat
 * event) is only counted.
 */
export type ParseResult<T> =
  | { kind: 'flow'; flow: T }
  | { kind: 'skip'; why: string; unusable?: UnusableReason }
  | { kind: 'lost'; count: number }
  | { kind: 'malformed'; reason: string };

/** The fixed reasons a flow the source meant as one is unusable: bounded, so they can key counters. */
export const UNUSABLE_REASONS = {
  noVerdict: 'Hubble flow without a verdict',
  noDirection:
    'Hubble flow without traffic_direction (an export field mask that leaves it out? add traffic_direction to fieldMask)',
} as const;
export type UnusableReason = keyof typeof UNUSABLE_REASONS;

/**
 * One line of a JSON-lines file parsed, or why it is malformed. A line that is a piece of pretty-printed JSON (an
 * object written over several lines, as `jq .` or `hubble observe -o json | jq` print it) is told as such, with what
 * to do, rather than as a syntax error at some column.
 */
export function parseJsonLine(line: string): { ok: true; value: unknown } | { ok: false; reason: string } {
  try {
    return { ok: true, value: JSON.parse(line) as unknown };
  } catch (err) {
    const t = line.trim();
    if (/^[[{]$|^[\]}],?$|^"[^"]*"\s*:/.test(t))
      return {
        ok: false,
        reason:
          'a piece of pretty-printed (multi-line) JSON: the file must hold one compact JSON object per line (write it ' +
          'with `jq -c` or the exporter itself, not an indenting formatter)',
      };
    return { ok: false, reason: `not JSON: ${(err as Error).message}` };
  }
}

/**
 * A counted field (packets, bytes, connections, times): a whole number from 0 to 2^53-1, or a string saying why not.
 * Strict on purpose: a count that is a string, a fraction or negative is not zero, it is a record nobody can trust.
 */
export function countField(rec: Record<string, unknown>, field: string, required = false): number | string {
  const v = rec[field];
  if (v === undefined || v === null) return required ? `${field} is missing` : 0;
  if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) return v;
  return `${field} is ${describe(v)}, not a whole number from 0 to 2^53-1`;
}

/** A value as an error message names it: its JSON (cut short) or its type. */
export function describe(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
  if (Array.isArray(v)) return 'a list';
  if (v === null) return 'null';
  if (typeof v === 'object') return 'an object';
  return String(v);
}

/**
 * Addresses the operator says are inside their network, so a peer there is
 * never "internet" even when the CNI classifies it as public (a company range
 * routed over public space, a cloud VPC with public IPs).
 */
export class InternalNetworks {
  private readonly list = new BlockList();
  readonly size: number;

  constructor(cidrs: readonly string[] = []) {
    for (const c of cidrs) {
      // One '/', an address without a zone (fe80::1%eth0 names an interface), a plain decimal prefix that fits.
      const [addr = '', bits, extra] = c.split('/');
      const family = isIP(addr);
      const max = family === 6 ? 128 : 32;
      if (
        !family ||
        addr.includes('%') ||
        extra !== undefined ||
        bits === undefined ||
        !/^(0|[1-9][0-9]{0,2})$/.test(bits) ||
        Number(bits) > max
      )
        throw configError(`${JSON.stringify(c)} is not a CIDR like 10.0.0.0/8`);
      this.list.addSubnet(addr, Number(bits), family === 6 ? 'ipv6' : 'ipv4');
    }
    this.size = cidrs.length;
  }

  contains(ip: unknown): boolean {
    if (typeof ip !== 'string' || !ip || this.size === 0) return false;
    const family = isIP(ip);
    return family !== 0 && this.list.check(ip, family === 6 ? 'ipv6' : 'ipv4');
  }
}

/**
 * The workload a pod belongs to, from its name when nothing better is known:
 * "checkout-7d9f8b6c5d-x2k8p" → "checkout" (Deployment: ReplicaSet hash and pod
 * suffix), "fluentd-8xk2m" → "fluentd" (DaemonSet), "web-0" → "web"
 * (StatefulSet). Calico's aggregated names ("checkout-7d9f8b6c5d-*") map the
 * same way. Kubernetes draws these suffixes from an alphabet without vowels.
 */
export function workloadFromPodName(name: string): string {
  let n = name.replace(TRAILING_STAR, '');
  const deploy = DEPLOYMENT_POD.exec(n);
  if (deploy) return deploy[1] as string;
  const aggregatedDeploy = REPLICASET_PREFIX.exec(n);
  if (aggregatedDeploy && name.endsWith('*')) return aggregatedDeploy[1] as string;
  const suffixed = SUFFIXED_POD.exec(n);
  if (suffixed) return suffixed[1] as string;
  const ordinal = ORDINAL_POD.exec(n);
  if (ordinal) return ordinal[1] as string;
  n = n.replace(/-$/, '');
  return n;
}

/** Kubernetes' alphabet for generated name suffixes (no vowels, no 0, 1, 3). Compiled once: this runs per record. */
const SAFE = '[bcdfghjklmnpqrstvwxz2456789]';
const TRAILING_STAR = /-?\*$/;
const DEPLOYMENT_POD = new RegExp(`^(.+)-${SAFE}{6,10}-${SAFE}{5}$`);
const REPLICASET_PREFIX = new RegExp(`^(.+)-${SAFE}{6,10}$`);
const SUFFIXED_POD = new RegExp(`^(.+)-${SAFE}{5}$`);
const ORDINAL_POD = /^(.+)-\d+$/;

/**
 * Calico's special case of the API server, for its flow-log records and Goldmane's flows alike: the API server is
 * reached through the "kubernetes" Service of "default", and whatever address it has, it is not the internet. Turns the
 * destination into the API server when the record names that Service; answers whether it did.
 */
export function markApiServerDestination(
  destination: FlowEndpoint,
  serviceNamespace: unknown,
  serviceName: unknown,
): boolean {
  if (serviceNamespace !== 'default' || serviceName !== 'kubernetes') return false;
  destination.kind = 'apiserver';
  destination.internet = false;
  destination.name = 'kube-apiserver';
  return true;
}

export function endpoint(partial: Partial<FlowEndpoint> & Pick<FlowEndpoint, 'kind' | 'name'>): FlowEndpoint {
  return { namespace: '', labels: [], serviceAccount: '', internet: false, ...partial };
}

/** Policies in a stable order, duplicates removed. */
export function uniquePolicies(policies: PolicyRef[]): PolicyRef[] {
  const seen = new Set<string>();
  return policies.filter((p) => {
    const k = `${p.tier}|${p.namespace}|${p.name}|${p.action}|${p.kind}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

export function asNumber(v: unknown): number {
  return typeof v === 'number' && Number.isFinite(v) && v >= 0
    ? v
    : typeof v === 'string' && /^\d+$/.test(v)
      ? Number(v)
      : 0;
}
