import type { Logger } from 'pino';
import { AGGREGATOR_DEFAULTS_TABLE } from '../defaults.js';
import type { Store } from '../store/index.js';
import { ResourceWatch, type KubeStoreComponentOptions } from './watch.js';

export interface NodeLifecycleOptions extends KubeStoreComponentOptions {
  /** Stored nodes the cluster no longer lists are forgotten at most this often, ms. */
  reconcileIntervalMs?: number;
}

/**
 * Nodes that leave the cluster leave Verdict's node list too (their archived
 * runs stay): without this a deleted node would stay "disconnected" forever and
 * keep its alert firing. Every (re)list also forgets stored nodes the cluster
 * no longer has. Deleting is idempotent, so every replica may do it.
 */
export class NodeLifecycle {
  private readonly watch: ResourceWatch;
  private readonly store: Store;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly reconcileIntervalMs: number;

  constructor({
    kube,
    store,
    log,
    now = Date.now,
    reconcileIntervalMs = AGGREGATOR_DEFAULTS_TABLE.kube.nodeReconcileIntervalMs,
  }: NodeLifecycleOptions) {
    this.store = store;
    this.log = log;
    this.now = now;
    this.reconcileIntervalMs = reconcileIntervalMs;
    this.watch = new ResourceWatch({
      kube,
      path: '/api/v1/nodes',
      log: log.child({ resource: 'nodes' }),
      onChange: (items) => void this.reconcile(new Set(items.map((n) => n.metadata.name))),
      onEvent: (type, obj) => {
        if (type === 'DELETED') void this.forget(obj.metadata.name);
      },
    });
  }

  start(): void {
    this.watch.start();
  }

  stop(): void {
    this.watch.stop();
  }

  private lastReconcileMs = 0;

  /** Catches deletions missed while the watch was down; at most once per interval (node objects change often). */
  private async reconcile(inCluster: Set<string>): Promise<void> {
    const now = this.now();
    if (now - this.lastReconcileMs < this.reconcileIntervalMs) return;
    this.lastReconcileMs = now;
    try {
      for (const n of await this.store.listNodes()) if (!inCluster.has(n.name)) await this.forget(n.name);
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'cannot reconcile nodes with the cluster');
    }
  }

  private async forget(name: string): Promise<void> {
    try {
      await this.store.forgetNode(name);
      this.log.info({ node: name }, 'node left the cluster; no longer listed');
    } catch (err) {
      this.log.warn({ node: name, err: (err as Error).message }, 'cannot forget a deleted node');
    }
  }
}
