import type { Logger } from 'pino';
import { Backoff } from '../../common/backoff.js';
import { KubeApiError, type KubeClient } from '../../common/kube-client.js';
import { AGGREGATOR_DEFAULTS_TABLE } from '../defaults.js';
import type { Store } from '../store/index.js';

const KUBE = AGGREGATOR_DEFAULTS_TABLE.kube;

/**
 * What every Kubernetes component of the aggregator is built from (one shape: aggregator/main.ts passes the same
 * client, logger and clock to each): the API client, a logger, and `now()`, the clock seam tests drive.
 */
export interface KubeComponentOptions {
  kube: KubeClient;
  log: Logger;
  /** The clock, ms since the epoch (default Date.now). */
  now?: () => number;
}

/** A Kubernetes component that writes to the store (policy history, pod history, node lifecycle, report status). */
export interface KubeStoreComponentOptions extends KubeComponentOptions {
  store: Store;
}

/** A change of one watched object: SYNC for every object of a (re)list, then ADDED / MODIFIED / DELETED. */
export type WatchEventType = 'SYNC' | 'ADDED' | 'MODIFIED' | 'DELETED';

export interface ResourceWatchOptions {
  kube: KubeClient;
  log: Logger;
  /** e.g. /apis/compliance.verdict.dev/v1/globalreports */
  path: string;
  /** All objects, after every change. */
  onChange?: (items: KubeObject[]) => void;
  /** Each change as it comes. */
  onEvent?: (type: WatchEventType, obj: KubeObject) => void;
  /** All objects after each (re)list: what exists then (deletions missed while not watching show as absences). */
  onListed?: (items: KubeObject[]) => void;
  /** The API server ends each WATCH after this, and it is opened again. */
  watchTimeoutSeconds?: number;
  /**
   * A watch silent for its timeoutSeconds plus this long is taken for a dead connection and watched again (the
   * server ends a healthy one at timeoutSeconds; bookmarks come more often). Default kube.watchIdleGraceMs.
   */
  watchIdleGraceMs?: number;
}

export interface KubeObject {
  metadata: { name: string; namespace?: string; uid?: string; resourceVersion?: string };
  [k: string]: unknown;
}

interface WatchEvent {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: KubeObject & { code?: number; reason?: string };
}

/**
 * Keeps a local copy of one resource list: LIST, then WATCH from the list's
 * resourceVersion with bookmarks; every event updates the copy and calls
 * `onChange` with all objects. A 410 Gone (the version is too old) relists; a
 * dropped connection re-watches from the last version seen; errors back off
 * (doubling, aggregator/defaults.ts's kube.watchRetry*). A missing resource type
 * (404: CRD not installed) is retried slowly and logged once.
 */
export class ResourceWatch {
  private readonly items = new Map<string, KubeObject>();
  private resourceVersion = '';
  private readonly abort = new AbortController();
  private readonly backoff = new Backoff({ initialMs: KUBE.watchRetryInitialMs, maxMs: KUBE.watchRetryMaxMs });
  private stopped = false;
  private loggedMissing = false;
  private readonly kube: KubeClient;
  private readonly listPath: string;
  private readonly onChange: (items: KubeObject[]) => void;
  private readonly onEvent?: (type: WatchEventType, obj: KubeObject) => void;
  private readonly onListed?: (items: KubeObject[]) => void;
  private readonly log: Logger;
  private readonly watchTimeoutSeconds: number;
  private readonly watchIdleGraceMs: number;

  constructor(options: ResourceWatchOptions) {
    this.kube = options.kube;
    this.listPath = options.path;
    this.onChange = options.onChange ?? (() => {});
    this.onEvent = options.onEvent;
    this.onListed = options.onListed;
    this.log = options.log;
    this.watchTimeoutSeconds = options.watchTimeoutSeconds ?? KUBE.watchTimeoutSeconds;
    this.watchIdleGraceMs = options.watchIdleGraceMs ?? KUBE.watchIdleGraceMs;
  }

  start(): void {
    void this.loop();
  }

  stop(): void {
    this.stopped = true;
    this.abort.abort();
  }

  snapshot(): KubeObject[] {
    return [...this.items.values()];
  }

  private key(o: KubeObject): string {
    return `${o.metadata.namespace ?? ''}/${o.metadata.name}`;
  }

  private async list(): Promise<void> {
    const res = await this.kube.get<{ metadata?: { resourceVersion?: string }; items?: KubeObject[] }>(this.listPath);
    this.items.clear();
    for (const o of res.items ?? []) {
      this.items.set(this.key(o), o);
      this.onEvent?.('SYNC', o);
    }
    this.resourceVersion = res.metadata?.resourceVersion ?? '';
    this.onListed?.(this.snapshot());
    this.onChange(this.snapshot());
  }

  private async loop(): Promise<void> {
    let needList = true;
    while (!this.stopped) {
      try {
        if (needList) {
          await this.list();
          needList = false;
        }
        const sep = this.listPath.includes('?') ? '&' : '?';
        const path = `${this.listPath}${sep}watch=1&allowWatchBookmarks=true&timeoutSeconds=${this.watchTimeoutSeconds}&resourceVersion=${encodeURIComponent(this.resourceVersion)}`;
        const idleMs = this.watchTimeoutSeconds * 1000 + this.watchIdleGraceMs;
        for await (const line of this.kube.watchLines(path, this.abort.signal, idleMs)) {
          const ev = JSON.parse(line) as WatchEvent;
          if (ev.type === 'ERROR') {
            if (ev.object.code === 410) {
              this.log.info({ path: this.listPath }, 'watch version expired (410 Gone); listing again');
              needList = true;
              break;
            }
            throw new KubeApiError(
              ev.object.code ?? 0,
              ev.object.reason ?? 'WatchError',
              `watch of ${this.listPath} failed: ${ev.object.reason ?? JSON.stringify(ev.object)}`,
            );
          }
          if (ev.object.metadata?.resourceVersion) this.resourceVersion = ev.object.metadata.resourceVersion;
          if (ev.type === 'BOOKMARK') continue;
          if (ev.type === 'DELETED') this.items.delete(this.key(ev.object));
          else this.items.set(this.key(ev.object), ev.object);
          this.onEvent?.(ev.type, ev.object);
          this.onChange(this.snapshot());
        }
        this.backoff.reset();
      } catch (err) {
        if (this.stopped) return;
        const missing = err instanceof KubeApiError && err.status === 404;
        const delay = this.backoff.next();
        if (missing && !this.loggedMissing) {
          this.log.warn(
            { path: this.listPath },
            'resource type not found in the cluster (CRD not installed?); will look again',
          );
          this.loggedMissing = true;
        } else if (!missing) {
          this.log.warn(
            { path: this.listPath, err: (err as Error).message, retryInMs: delay },
            'list/watch failed; retrying',
          );
        }
        if (err instanceof KubeApiError && err.status === 410) needList = true;
        await new Promise((r) => setTimeout(r, missing ? KUBE.missingResourceRetryMs : delay).unref());
        if (!missing) needList = needList || this.resourceVersion === '';
      }
    }
  }
}
