import type { Logger } from 'pino';
import type { KubeClient } from '../../common/kube-client.js';
import type { Store } from '../store/index.js';
import { ResourceWatch } from './watch.js';

/**
 * Nodes that leave the cluster leave Verdict's node list too (their archived
 * runs stay): without this a deleted node would stay "disconnected" forever and
 * keep its alert firing. Every (re)list also forgets stored nodes the cluster
 * no longer has. Deleting is idempotent, so every replica may do it.
 */
export class NodeLifecycle {
  private readonly watch: ResourceWatch;

  constructor(
    kube: KubeClient,
    private readonly store: Store,
    private readonly log: Logger,
  ) {
    this.watch = new ResourceWatch(
      kube,
      '/api/v1/nodes',
      (items) => void this.reconcile(new Set(items.map((n) => n.metadata.name))),
      log.child({ resource: 'nodes' }),
      300,
      (type, obj) => {
        if (type === 'DELETED') void this.forget(obj.metadata.name);
      },
    );
  }

  start(): void {
    this.watch.start();
  }

  stop(): void {
    this.watch.stop();
  }

  private lastReconcileMs = 0;

  /** Catches deletions missed while the watch was down; at most once a minute (node objects change often). */
  private async reconcile(inCluster: Set<string>): Promise<void> {
    if (Date.now() - this.lastReconcileMs < 60_000) return;
    this.lastReconcileMs = Date.now();
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
