import type { Logger } from 'pino';
import type { PodSighting, Store } from '../store/index.js';
import { ResourceWatch, type KubeObject, type KubeStoreComponentOptions, type WatchEventType } from './watch.js';

/** How long before a relist a pod recorded by anyone is still taken to exist though the list lacks it. */
const LIST_RACE_MS = 60_000;

/**
 * Pod history for inventory reports and network access: every pod the cluster
 * lists, when it appeared and when it was deleted, and each version of its
 * labels. Status-only updates (most pod events) are not written; a change of
 * labels or service account is. Namespaces' labels are kept beside (their
 * versions, for namespace selectors).
 */
export class PodHistory {
  private readonly watch: ResourceWatch;
  private readonly namespaceWatch: ResourceWatch;
  private readonly seen = new Map<string, string>();
  private readonly store: Store;
  private readonly log: Logger;
  private readonly now: () => number;

  constructor({ kube, store, log, now = Date.now }: KubeStoreComponentOptions) {
    this.store = store;
    this.log = log;
    this.now = now;
    this.watch = new ResourceWatch({
      kube,
      path: '/api/v1/pods',
      log: log.child({ resource: 'pods' }),
      onEvent: (type, obj) => void this.record(type, obj),
      onListed: (items) => void this.reconcile(items),
    });
    this.namespaceWatch = new ResourceWatch({
      kube,
      path: '/api/v1/namespaces',
      log: log.child({ resource: 'namespaces' }),
      onEvent: (type, obj) => void this.recordNamespace(type, obj),
    });
  }

  start(): void {
    this.watch.start();
    this.namespaceWatch.start();
  }

  stop(): void {
    this.watch.stop();
    this.namespaceWatch.stop();
  }

  /** A namespace's labels (null when deleted); the store keeps a version only when they changed. */
  private async recordNamespace(type: WatchEventType, obj: KubeObject): Promise<void> {
    const labels = (obj as KubeObject & { metadata: { labels?: Record<string, string> } }).metadata.labels ?? {};
    try {
      await this.store.recordNamespaces(
        [{ name: obj.metadata.name, labels: type === 'DELETED' ? null : labels }],
        this.now(),
      );
    } catch (err) {
      this.log.warn({ namespace: obj.metadata.name, err: (err as Error).message }, 'cannot record namespace history');
    }
  }

  /**
   * After a (re)list: a pod the store has as existing that the list lacks was deleted while nothing watched (the
   * aggregator down, a watch gap); it is taken to be gone from now, so its lifetime ends instead of running on.
   */
  private async reconcile(items: KubeObject[]): Promise<void> {
    const listed = items.map((p) => p.metadata.uid ?? `${p.metadata.namespace}/${p.metadata.name}`);
    const present = new Set(listed);
    for (const uid of this.seen.keys()) if (!present.has(uid)) this.seen.delete(uid);
    try {
      const now = this.now();
      // A pod seen within the last minute is left alone: it may have been created after this list was answered and
      // recorded by another replica sharing the store.
      const gone = await this.store.recordPodsGoneExcept(listed, now, now - LIST_RACE_MS);
      if (gone > 0) this.log.info({ pods: gone }, 'pods deleted while not watched: recorded as gone now');
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'cannot reconcile pod history with the cluster');
    }
  }

  private async record(type: WatchEventType, obj: KubeObject): Promise<void> {
    const pod = obj as KubeObject & {
      metadata: { labels?: Record<string, string> };
      spec?: { serviceAccountName?: string; hostNetwork?: boolean };
    };
    const s: PodSighting = {
      uid: pod.metadata.uid ?? `${pod.metadata.namespace}/${pod.metadata.name}`,
      namespace: pod.metadata.namespace ?? '',
      name: pod.metadata.name,
      labels: pod.metadata.labels ?? {},
      serviceAccount: pod.spec?.serviceAccountName ?? 'default',
      hostNetwork: pod.spec?.hostNetwork === true,
    };
    const fingerprint = JSON.stringify([s.labels, s.serviceAccount, s.hostNetwork]);
    if (type !== 'DELETED' && this.seen.get(s.uid) === fingerprint && type !== 'SYNC') return;
    if (type === 'DELETED') this.seen.delete(s.uid);
    else this.seen.set(s.uid, fingerprint);
    try {
      await this.store.recordPods([s], this.now(), type === 'DELETED');
    } catch (err) {
      this.log.warn({ pod: `${s.namespace}/${s.name}`, err: (err as Error).message }, 'cannot record pod history');
    }
  }
}
