import type { StoredClusterScan } from './cluster-cis/scan.js';
import { CisTotals, type CheckFailures } from './compute/cis-totals.js';
import type { NodeRowSource, Thresholds } from './compute/cis.js';
import type { NodeChange, NodeCisSummary, NodeLiveness, Store } from './store/index.js';

/** A node as the CIS summary, /metrics and `/api/v1/nodes` see it. */
export interface NodeView {
  name: string;
  connected: boolean;
  lastSeenMs: number;
  /** As its agent's latest Hello says. */
  role: NodeLiveness['role'];
  kubeletVersion: string;
  agentVersion: string;
  /** Its latest run's summary; undefined before the first run. */
  summary: NodeCisSummary | undefined;
}

/** Told of a node that changed (undefined: the store no longer lists it). */
export type NodeViewListener = (name: string, node: NodeView | undefined) => void;

interface Entry extends NodeView {
  /** The node's latest run id as last read (undefined: the store does not say). */
  latestRunId: number | null | undefined;
  /** The latest run id the summary was read for ('unread' before the first read). */
  summaryOf: number | null | undefined | 'unread';
}

/** How often every node's connection, last contact and latest run id are read again (the staleness bound). */
export const CIS_VIEW_RESYNC_MS = 5_000;
/** PostgreSQL: the cluster scan is read again at least this often (another replica's leader may have stored one). */
const CLUSTER_REREAD_MS = 60_000;
/** Changes heard within this long are read together. */
const GATHER_MS = 10;
/**
 * Past this many nodes, or this long since the first, what is gathered is read without waiting for the timer: under
 * a burst (5,000 agents at once) one turn of the event loop handles seconds of streams' messages before timers run,
 * and every change of the burst would otherwise be read at once by the first request after it.
 */
const GATHER_MAX_NODES = 200;
const GATHER_MAX_MS = 50;
/** Serialized summaries kept (one per threshold and benchmark asked for). */
const ANSWERS_KEPT = 32;

const titleKey = (f: Pick<CheckFailures, 'benchmark' | 'id'>): string => `${f.benchmark}\u0000${f.id}`;

/**
 * The nodes, their latest-run summaries and the cluster scan, kept in memory and in step with the store (issue 13):
 * the CIS summary and /metrics answer from here instead of reading every node at each request.
 *
 * The store tells each change as it commits (Store.watchNodes: a Hello, a disconnect, a new latest run, a forgotten
 * node, a heartbeat; on PostgreSQL also the other replicas' changes, by LISTEN/NOTIFY) and only the nodes named are
 * read again, gathered into one read. Every CIS_VIEW_RESYNC_MS every node's connection, last contact and latest run
 * id are read (a few columns; a summary only where the latest run moved), which catches last contact moved by flow
 * batches and any notice lost; so other replicas' changes show within that bound, usually within milliseconds. A
 * read after a change this replica made waits for it (a run acked here is in the next summary). While PostgreSQL's
 * notices cannot be heard (the listening connection is down) or the last read failed, each request reads every node
 * again, as before, so an outage answers 503 and a missed notice is never served. A store that tells nothing (a test's
 * stand-in) is read again at every request.
 */
export class CisView {
  readonly totals = new CisTotals();
  private readonly nodes = new Map<string, Entry>();
  private cluster: StoredClusterScan | undefined;
  private clusterVersion = 0;
  private clusterReadMs = 0;
  private readonly listeners: NodeViewListener[] = [];
  /** The nodes by name in UTF-8 byte order, as the store lists them (undefined: a node came or went since). */
  private ordered: Entry[] | undefined;
  /** Titles of failing checks by benchmark and id (a check's title is the benchmark's, whichever run names it). */
  private readonly titles = new Map<string, string>();
  private readonly answers = new Map<string, { version: string; body: string }>();
  private started = false;
  private watched = false;
  private dirtyNodes = new Set<string>();
  private dirtyAll = true;
  private dirtyCluster = true;
  /** The periodic read (every node, and on PostgreSQL the cluster scan now and then) is due. */
  private resyncDue = false;
  private resyncClusterDue = false;
  /** The drain under way is only the periodic read: nothing a reader waits for. */
  private periodicOnly = false;
  private linkDown = false;
  private failure: unknown;
  private draining: Promise<void> | undefined;
  private gathering: NodeJS.Timeout | undefined;
  private gatheringSince = 0;
  private resync: NodeJS.Timeout | undefined;
  private unwatch: (() => void) | undefined;
  private changes = 0;

  constructor(
    private readonly store: Store,
    private readonly resyncMs = CIS_VIEW_RESYNC_MS,
  ) {}

  /** `listener` hears of every node that changes (after the change is applied). */
  onNode(listener: NodeViewListener): void {
    this.listeners.push(listener);
  }

  /** Counts the changes told to listeners: the same number, the same nodes (what a kept answer is built from). */
  get version(): number {
    return this.changes;
  }

  /** Every node held, in the order first read. */
  all(): IterableIterator<NodeView> {
    return this.nodes.values();
  }

  /**
   * Every node as `GET /api/v1/nodes` lists it, by name in UTF-8 byte order (the store's order), after a read():
   * the list is answered from memory, not by joining nodes, runs and summaries at each request (issue 13).
   */
  async nodeList(): Promise<NodeRowSource[]> {
    await this.read();
    this.ordered ??= byteOrder([...this.nodes.values()]);
    return this.ordered.map((e) => ({
      name: e.name,
      role: e.role,
      kubeletVersion: e.kubeletVersion,
      agentVersion: e.agentVersion,
      connected: e.connected,
      lastSeenMs: e.lastSeenMs,
      latest: e.summary,
    }));
  }

  clusterScan(): StoredClusterScan | undefined {
    return this.cluster;
  }

  /**
   * Bring the view up to what the store holds as far as this replica knows (its own changes, the notices heard);
   * throws what the store threw when it cannot answer.
   */
  async read(): Promise<void> {
    this.start();
    if (!this.watched || this.linkDown || this.failure !== undefined) this.dirtyAll = this.dirtyCluster = true;
    // A periodic read under way holds nothing a reader waits for (changes made here or heard are marked, and read
    // after it): answer from what is held rather than wait for 5,000 nodes to be read again (issue 13).
    if (this.draining !== undefined && this.periodicOnly && !this.dirty()) return;
    await this.drain();
  }

  /** Something a reader waits for is marked to be read. */
  private dirty(): boolean {
    return this.dirtyAll || this.dirtyNodes.size > 0 || this.dirtyCluster;
  }

  /** The CIS summary (`GET /api/v1/cis/summary`) as JSON text, kept until the summaries or the cluster scan change. */
  async summaryJson(options: Thresholds & { benchmark?: string }): Promise<string> {
    await this.read();
    const key = `${options.highThreshold} ${options.medThreshold} ${options.benchmark ?? ''}`;
    for (let attempt = 0; ; attempt++) {
      const version = `${this.totals.version} ${this.clusterVersion}`;
      const kept = this.answers.get(key);
      if (kept?.version === version) return kept.body;
      const missing = this.totals.mostFailed(options).filter((f) => !this.titles.has(titleKey(f)));
      // A title read may let changes in meanwhile: then look again (a check no run fails any more has no title).
      if (missing.length > 0 && attempt < 3) {
        await this.readTitles(missing);
        continue;
      }
      const body = JSON.stringify(
        this.totals.summary((f) => this.titles.get(titleKey(f)) ?? '', options, this.cluster),
      );
      if (this.answers.size >= ANSWERS_KEPT) this.answers.clear();
      this.answers.set(key, { version, body });
      return body;
    }
  }

  /**
   * Follow the store from now on (when it tells its changes): read it once, then every change as it commits, so the
   * first request finds the view built rather than building it.
   */
  follow(): void {
    this.start();
    if (this.watched) void this.drain().catch(() => undefined);
  }

  /** Stop hearing the store and reading it again. */
  stop(): void {
    this.unwatch?.();
    clearTimeout(this.gathering);
    clearInterval(this.resync);
  }

  private start(): void {
    if (this.started) return;
    this.started = true;
    if (typeof this.store?.watchNodes !== 'function') return;
    this.watched = true;
    this.unwatch = this.store.watchNodes((c) => this.heard(c));
    this.resync = setInterval(() => {
      this.resyncDue = true;
      if (this.store.kind === 'postgres' && Date.now() - this.clusterReadMs >= CLUSTER_REREAD_MS)
        this.resyncClusterDue = true;
      void this.drain().catch(() => undefined);
    }, this.resyncMs).unref();
  }

  private heard(c: NodeChange): void {
    if ('node' in c) this.dirtyNodes.add(c.node);
    else if ('cluster' in c) this.dirtyCluster = true;
    else {
      this.dirtyAll = true;
      if (c.reason === 'link-lost') this.linkDown = true;
      if (c.reason === 'link-up') this.linkDown = false;
      if (c.reason !== 'all-disconnected') this.dirtyCluster = true;
    }
    if (this.gathering === undefined) {
      this.gatheringSince = Date.now();
      this.gathering = setTimeout(() => {
        this.gathering = undefined;
        void this.drain().catch(() => undefined);
      }, GATHER_MS).unref();
    } else if (this.dirtyNodes.size >= GATHER_MAX_NODES || Date.now() - this.gatheringSince >= GATHER_MAX_MS) {
      clearTimeout(this.gathering);
      this.gathering = undefined;
      queueMicrotask(() => void this.drain().catch(() => undefined));
    }
  }

  /** Read what is marked to be read, until nothing is; one drain at a time, which every reader waits for. */
  private drain(): Promise<void> {
    this.draining ??= this.drainNow().finally(() => (this.draining = undefined));
    return this.draining;
  }

  private async drainNow(): Promise<void> {
    while (this.dirty() || this.resyncDue || this.resyncClusterDue) {
      this.periodicOnly = !this.dirty();
      const all = this.dirtyAll || this.resyncDue;
      const cluster = this.dirtyCluster || this.resyncClusterDue;
      const names = all ? [] : [...this.dirtyNodes];
      this.dirtyAll = this.dirtyCluster = this.resyncDue = this.resyncClusterDue = false;
      this.dirtyNodes = new Set();
      try {
        if (all) await this.readAll();
        else if (names.length > 0) await this.readNodes(names);
        if (cluster) await this.readCluster();
        this.failure = undefined;
      } catch (err) {
        // Read it all again next time: what failed may have been any part.
        this.failure = err;
        this.dirtyAll = true;
        this.dirtyCluster ||= cluster;
        throw err;
      } finally {
        this.periodicOnly = false;
      }
    }
  }

  private async readAll(): Promise<void> {
    const rows = await this.store.nodeLiveness();
    const listed = new Set<string>();
    const want: string[] = [];
    for (const r of rows) {
      listed.add(r.name);
      if (this.applyLiveness(r)) want.push(r.name);
    }
    for (const name of [...this.nodes.keys()]) if (!listed.has(name)) this.drop(name);
    await this.readSummaries(want);
  }

  private async readNodes(names: string[]): Promise<void> {
    const rows = await this.store.nodeLiveness(names);
    const listed = new Set<string>();
    const want: string[] = [];
    for (const r of rows) {
      listed.add(r.name);
      if (this.applyLiveness(r)) want.push(r.name);
    }
    for (const name of names) if (!listed.has(name)) this.drop(name);
    await this.readSummaries(want);
  }

  /** Take a node's connection as read; answers whether its summary must be read (its latest run moved). */
  private applyLiveness(r: NodeLiveness): boolean {
    let e = this.nodes.get(r.name);
    if (e === undefined) {
      e = {
        name: r.name,
        connected: r.connected,
        lastSeenMs: r.lastSeenMs,
        role: r.role,
        kubeletVersion: r.kubeletVersion,
        agentVersion: r.agentVersion,
        summary: undefined,
        latestRunId: r.latestRunId,
        summaryOf: 'unread',
      };
      this.nodes.set(r.name, e);
      this.ordered = undefined;
      this.tell(e);
    } else if (
      e.connected !== r.connected ||
      e.lastSeenMs !== r.lastSeenMs ||
      e.role !== r.role ||
      e.kubeletVersion !== r.kubeletVersion ||
      e.agentVersion !== r.agentVersion
    ) {
      e.connected = r.connected;
      e.lastSeenMs = r.lastSeenMs;
      e.role = r.role;
      e.kubeletVersion = r.kubeletVersion;
      e.agentVersion = r.agentVersion;
      this.tell(e);
    }
    e.latestRunId = r.latestRunId;
    return r.latestRunId === undefined || e.summaryOf !== r.latestRunId;
  }

  private async readSummaries(names: string[]): Promise<void> {
    if (names.length === 0) return;
    const read = new Map((await this.store.cisSummaries(names)).map((s) => [s.node, s]));
    for (const name of names) {
      const e = this.nodes.get(name);
      if (e === undefined) continue;
      const s = read.get(name);
      // The run read may be newer than the latest run id read just before: it is the latest now.
      e.summaryOf = s?.runId ?? e.latestRunId;
      if (s === undefined && e.summary === undefined) continue;
      e.summary = s;
      this.totals.set(name, s);
      this.tell(e);
    }
  }

  private async readCluster(): Promise<void> {
    this.clusterReadMs = Date.now();
    this.cluster = await this.store.latestClusterScan();
    this.clusterVersion++;
  }

  private async readTitles(checks: CheckFailures[]): Promise<void> {
    const asked = checks.flatMap((f) => {
      const runId = this.totals.sampleRun(f);
      return runId === undefined ? [] : [{ f, runId }];
    });
    if (asked.length === 0) return;
    const got = await this.store.checkTitles(asked.map((a) => ({ runId: a.runId, checkId: a.f.id })));
    for (const a of asked) {
      const title = got.get(`${a.runId} ${a.f.id}`);
      if (title !== undefined) this.titles.set(titleKey(a.f), title);
    }
  }

  private drop(name: string): void {
    if (!this.nodes.delete(name)) return;
    this.ordered = undefined;
    this.totals.set(name, undefined);
    this.changes++;
    for (const l of this.listeners) l(name, undefined);
  }

  private tell(e: Entry): void {
    this.changes++;
    for (const l of this.listeners) l(e.name, e);
  }
}

/** The nodes by name in UTF-8 byte order (code point order; JavaScript's < compares UTF-16 code units). */
function byteOrder(nodes: Entry[]): Entry[] {
  const keyed = nodes.map((e) => ({ e, key: Buffer.from(e.name) }));
  keyed.sort((a, b) => Buffer.compare(a.key, b.key));
  return keyed.map((k) => k.e);
}
