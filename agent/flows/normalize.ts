import { BlockList, isIP } from 'node:net';
import type { FlowEndpoint, PolicyRef } from '../../common/flow.js';
import { configError } from '../errors.js';

/** What a source parser answers for one line or message. */
export type ParseResult<T> =
  | { kind: 'flow'; flow: T }
  | { kind: 'skip'; why: string }
  | { kind: 'lost'; count: number }
  | { kind: 'malformed'; reason: string };

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
      const [addr, bits] = c.split('/');
      const family = isIP(addr ?? '');
      if (!family || bits === undefined || !/^\d+$/.test(bits))
        throw configError(`"${c}" is not a CIDR like 10.0.0.0/8`);
      this.list.addSubnet(addr as string, Number(bits), family === 6 ? 'ipv6' : 'ipv4');
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
  const SAFE = '[bcdfghjklmnpqrstvwxz2456789]';
  let n = name.replace(/-\*$/, '').replace(/\*$/, '');
  const deploy = new RegExp(`^(.+)-${SAFE}{6,10}-${SAFE}{5}$`).exec(n);
  if (deploy) return deploy[1] as string;
  const aggregatedDeploy = new RegExp(`^(.+)-${SAFE}{6,10}$`).exec(n);
  if (aggregatedDeploy && name.endsWith('*')) return aggregatedDeploy[1] as string;
  const suffixed = new RegExp(`^(.+)-${SAFE}{5}$`).exec(n);
  if (suffixed) return suffixed[1] as string;
  const ordinal = /^(.+)-\d+$/.exec(n);
  if (ordinal) return ordinal[1] as string;
  n = n.replace(/-$/, '');
  return n;
}

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
