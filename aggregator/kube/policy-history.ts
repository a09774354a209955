import type { Logger } from 'pino';
import { boundJson, STORED_EVENT_MAX_DEPTH } from '../reports/json-bounds.js';
import { POLICY_RESOURCES, watchedVersionId } from '../reports/policy-resources.js';
import type { Store, StoredAuditEvent } from '../store/index.js';
import { ResourceWatch, type KubeObject, type KubeStoreComponentOptions, type WatchEventType } from './watch.js';

interface ExistingObject {
  apiGroup: string;
  resource: string;
  namespace: string;
  name: string;
  /** The last version seen, for the deletion recorded when a relist no longer has the object. */
  metadata: KubeObject['metadata'];
}

export interface PolicyHistoryOptions extends KubeStoreComponentOptions {
  /** Called with the versions just stored for the first time (tamper alerts, policy-change counters). */
  onStored?: (fresh: StoredAuditEvent[]) => Promise<void>;
}

/**
 * The aggregator's own policy version history: every network policy is
 * watched, and each version is stored beside the audit webhook's events (in
 * the same table, with IDs "watch:<uid>:<resourceVersion>" so each version is
 * kept once). A (re)list records what exists as "observe" — a baseline for
 * diffs, not a change; later events record create / update / delete. They say
 * what changed and when even without an audit webhook; who changed it comes
 * from audit events where they exist. Resources a cluster does not have (no
 * Calico, no Cilium) are skipped quietly.
 */
export class PolicyHistory {
  private readonly watches: ResourceWatch[];
  private pending: StoredAuditEvent[] = [];
  private flushing?: Promise<void>;
  private readonly store: Store;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly onStored: (fresh: StoredAuditEvent[]) => Promise<void>;
  /** The objects that exist now, by [group, resource, namespace, name] (network access asks which were in force). */
  private readonly existing = new Map<string, ExistingObject>();
  /** Resources whose first list was compared with the stored history; the comparisons under way (stop waits). */
  private readonly comparedWithStore = new Set<string>();
  private readonly pendingStoreChecks: Promise<void>[] = [];

  constructor({ kube, store, log, now = Date.now, onStored = async () => {} }: PolicyHistoryOptions) {
    this.store = store;
    this.log = log;
    this.now = now;
    this.onStored = onStored;
    this.watches = POLICY_RESOURCES.flatMap(({ group, resource, watchVersion }) => {
      if (watchVersion === undefined) return [];
      const path = group === '' ? `/api/${watchVersion}/${resource}` : `/apis/${group}/${watchVersion}/${resource}`;
      return [
        new ResourceWatch({
          kube,
          path,
          log: log.child({ resource: `${resource}.${group}` }),
          onEvent: (type, obj) => this.record(group, resource, type, obj),
          onListed: (items) => this.reconcile(group, resource, items),
        }),
      ];
    });
  }

  start(): void {
    for (const w of this.watches) w.start();
  }

  /** The watched objects that exist now (their versions are in the store). */
  current(): { apiGroup: string; resource: string; namespace: string; name: string }[] {
    return [...this.existing.values()].map(({ apiGroup, resource, namespace, name }) => ({
      apiGroup,
      resource,
      namespace,
      name,
    }));
  }

  /**
   * After a relist (a 410 Gone, a dropped watch): an object seen before that the list no longer has was deleted while
   * not watched. Its deletion is recorded now (the time it was noticed, not when it happened; the event says so), so
   * it is not taken as in force from then on and a tamper alert is raised for it like for a watched deletion.
   */
  private reconcile(group: string, resource: string, items: KubeObject[]): void {
    const listed = new Set(items.map((o) => keyOf(group, resource, o.metadata.namespace ?? '', o.metadata.name)));
    const resourceKey = `${group}/${resource}`;
    if (!this.comparedWithStore.has(resourceKey)) {
      this.comparedWithStore.add(resourceKey);
      this.pendingStoreChecks.push(this.compareWithStore(group, resource, listed, this.now()));
    }
    for (const [key, seen] of [...this.existing]) {
      if (seen.apiGroup !== group || seen.resource !== resource || listed.has(key)) continue;
      this.record(
        group,
        resource,
        'DELETED',
        { metadata: seen.metadata },
        'absent from a relist: deleted while the watch was down',
      );
    }
  }

  /** Stop watching and store what was recorded (a shutdown keeps every version seen). */
  async stop(): Promise<void> {
    for (const w of this.watches) w.stop();
    await Promise.all(this.pendingStoreChecks);
    await this.flush();
  }

  /**
   * The first list after start: an object the stored history holds as existing that the list lacks was deleted while
   * no aggregator watched (this one was down, or not yet deployed with this store). Only history older than the list
   * counts, and objects a watch event brought back meanwhile are left alone.
   */
  private async compareWithStore(group: string, resource: string, listed: Set<string>, listedAt: number) {
    try {
      const stored = (await this.store.auditObjectsExisting?.(group, resource, listedAt)) ?? [];
      for (const e of stored) {
        const key = keyOf(group, resource, e.namespace, e.name);
        if (listed.has(key) || this.existing.has(key)) continue;
        const meta = (e.event as { responseObject?: { metadata?: { uid?: unknown; resourceVersion?: unknown } } })
          ?.responseObject?.metadata;
        const text = (v: unknown) => (typeof v === 'string' ? v : undefined);
        const metadata = {
          name: e.name,
          namespace: e.namespace || undefined,
          uid: text(meta?.uid),
          resourceVersion: text(meta?.resourceVersion),
        };
        this.record(
          group,
          resource,
          'DELETED',
          { metadata },
          'absent from the first list after start: deleted while not watched',
        );
      }
    } catch (err) {
      this.log.warn(
        { err: (err as Error).message, resource: `${resource}.${group}` },
        'cannot compare the first list with the stored policy history; deletions while not watched are not recorded',
      );
    }
  }

  private record(group: string, resource: string, type: WatchEventType, obj: KubeObject, noticed?: string): void {
    const m = obj.metadata;
    const verb = type === 'SYNC' ? 'observe' : type === 'ADDED' ? 'create' : type === 'MODIFIED' ? 'update' : 'delete';
    const ref = { apiGroup: group, resource, namespace: m.namespace ?? '', name: m.name };
    const key = keyOf(group, resource, ref.namespace, m.name);
    if (verb === 'delete') this.existing.delete(key);
    else
      this.existing.set(key, {
        ...ref,
        metadata: { name: m.name, namespace: m.namespace, uid: m.uid, resourceVersion: m.resourceVersion },
      });
    // Bounded like webhook events (a CRD with preserve-unknown-fields can nest deeply), one level
    // down because the object sits inside the event; the stored event says what was cut.
    const bounded = boundJson(obj, STORED_EVENT_MAX_DEPTH - 1);
    const notes = [
      ...(bounded.truncated > 0
        ? [
            `${bounded.truncated} part(s) nested deeper than ${STORED_EVENT_MAX_DEPTH} levels replaced by a marker, the first at responseObject.${bounded.firstTruncatedAt}`,
          ]
        : []),
      ...(bounded.protoKeysRemoved > 0 ? [`${bounded.protoKeysRemoved} key(s) named __proto__ removed`] : []),
    ];
    const cut = notes.length > 0 ? { verdictTruncated: notes } : {};
    this.pending.push({
      auditId: watchedVersionId(m, verb === 'delete'),
      stageMs: this.now(),
      verb,
      resource,
      apiGroup: group,
      namespace: m.namespace ?? '',
      name: m.name,
      username: '',
      event: {
        source: 'watch',
        objectRef: { apiGroup: group, resource, namespace: m.namespace, name: m.name },
        ...(verb === 'delete' ? {} : { responseObject: bounded.value, ...cut }),
        ...(noticed ? { verdictNoticed: noticed } : {}),
      },
    });
    void this.flush();
  }

  /** Store what has been recorded; one write at a time, in order. */
  async flush(): Promise<void> {
    if (this.flushing) return this.flushing;
    this.flushing = (async () => {
      while (this.pending.length > 0) {
        const batch = this.pending.splice(0);
        try {
          const ids = new Set(await this.store.recordAuditEvents(batch));
          await this.onStored(batch.filter((e) => ids.has(e.auditId)));
        } catch (err) {
          this.log.error({ err: (err as Error).message, lost: batch.length }, 'cannot store policy versions');
        }
      }
    })().finally(() => {
      this.flushing = undefined;
    });
    return this.flushing;
  }
}

function keyOf(group: string, resource: string, namespace: string, name: string): string {
  return JSON.stringify([group, resource, namespace, name]);
}
