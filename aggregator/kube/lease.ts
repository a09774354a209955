import type { Logger } from 'pino';
import { KubeApiError, type KubeClient } from '../../common/kube-client.js';
import { AGGREGATOR_DEFAULTS_TABLE } from '../defaults.js';
import type { KubeComponentOptions } from './watch.js';

export interface KubeLeaseOptions extends KubeComponentOptions {
  namespace: string;
  /** The Lease's name (default aggregator/defaults.ts's kube.leaseName). */
  name?: string;
  /** This replica (its pod name). */
  identity: string;
  durationSeconds?: number;
  /** The holder renews at most this often, ms. */
  renewIntervalMs?: number;
}

interface Lease {
  metadata: { name: string; namespace: string; resourceVersion?: string };
  spec: {
    holderIdentity?: string;
    leaseDurationSeconds?: number;
    acquireTime?: string;
    renewTime?: string;
    leaseTransitions?: number;
  };
}

/** MicroTime: RFC 3339 with microseconds, as coordination.k8s.io/v1 writes it. */
function microTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

/**
 * Leader election with a coordination.k8s.io/v1 Lease, kube-controller-manager
 * style: a 15 s lease, renewed at most every 5 s by its holder (aggregator/defaults.ts),
 * taken over once the holder has not renewed for the lease duration. Writes carry the
 * resourceVersion read, so a 409 Conflict means another replica won.
 */
export class KubeLease {
  private leader = false;
  private lastRenewMs = 0;
  private readonly kube: KubeClient;
  private readonly namespace: string;
  private readonly name: string;
  private readonly identity: string;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly durationSeconds: number;
  private readonly renewIntervalMs: number;

  constructor(options: KubeLeaseOptions) {
    const defaults = AGGREGATOR_DEFAULTS_TABLE.kube;
    this.kube = options.kube;
    this.namespace = options.namespace;
    this.name = options.name ?? defaults.leaseName;
    this.identity = options.identity;
    this.log = options.log;
    this.now = options.now ?? Date.now;
    this.durationSeconds = options.durationSeconds ?? defaults.leaseDurationSeconds;
    this.renewIntervalMs = options.renewIntervalMs ?? defaults.leaseRenewIntervalMs;
  }

  private get path(): string {
    return `/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(this.namespace)}/leases/${encodeURIComponent(this.name)}`;
  }

  async isLeader(): Promise<boolean> {
    const now = this.now();
    if (this.leader && now - this.lastRenewMs < this.renewIntervalMs) return true;
    try {
      let lease: Lease | undefined;
      try {
        lease = await this.kube.get<Lease>(this.path);
      } catch (err) {
        if (!(err instanceof KubeApiError && err.status === 404)) throw err;
      }
      if (!lease) {
        await this.kube.create(`/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(this.namespace)}/leases`, {
          apiVersion: 'coordination.k8s.io/v1',
          kind: 'Lease',
          metadata: { name: this.name, namespace: this.namespace },
          spec: {
            holderIdentity: this.identity,
            leaseDurationSeconds: this.durationSeconds,
            acquireTime: microTime(now),
            renewTime: microTime(now),
            leaseTransitions: 0,
          },
        });
        return this.set(true, now);
      }
      const s = lease.spec;
      const renewed = s.renewTime ? Date.parse(s.renewTime) : 0;
      const expired = renewed + (s.leaseDurationSeconds ?? this.durationSeconds) * 1000 < now;
      const mine = s.holderIdentity === this.identity;
      if (!mine && !expired) return this.set(false, now);
      const spec = mine
        ? { ...s, renewTime: microTime(now) }
        : {
            holderIdentity: this.identity,
            leaseDurationSeconds: this.durationSeconds,
            acquireTime: microTime(now),
            renewTime: microTime(now),
            leaseTransitions: (s.leaseTransitions ?? 0) + 1,
          };
      await this.kube.replace(this.path, {
        apiVersion: 'coordination.k8s.io/v1',
        kind: 'Lease',
        metadata: lease.metadata,
        spec,
      });
      return this.set(true, now);
    } catch (err) {
      if (err instanceof KubeApiError && err.status === 409) return this.set(false, now);
      this.log.warn({ err: (err as Error).message }, 'cannot read or renew the scheduler Lease; not leading');
      return this.set(false, now);
    }
  }

  private set(v: boolean, now: number): boolean {
    if (v !== this.leader)
      this.log.info(
        { leader: v, lease: `${this.namespace}/${this.name}`, identity: this.identity },
        v ? 'this replica now schedules reports' : 'another replica schedules reports',
      );
    this.leader = v;
    if (v) this.lastRenewMs = now;
    return v;
  }
}
