import type { FlowRecord } from '../../common/flow.js';
import type { NodeHello } from '../../common/node-hello.js';
import type { ScanReport, NodeRole } from '../../common/scan-report.js';
import type { ClusterScan, StoredClusterScan } from '../cluster-cis/scan.js';
import type { NamespaceVersion } from './namespace-versions.js';
import type { PodLifetime } from './pod-lifetimes.js';
import type { ArchivedRunRow, ScanAnchor, StoredScanRow } from '../evidence/records.js';

// The store's vocabulary: the Store interface and the records and constants it
// speaks in. It lives apart from index.ts (which opens a store) because the
// SQLite and PostgreSQL implementations need these and index.ts loads them;
// index.ts re-exports all of it, so `store/index.js` stays the one import path
// for everyone outside store/.

export type { PodLabelVersion, PodLifetime } from './pod-lifetimes.js';
export type { NamespaceVersion } from './namespace-versions.js';
export type { NodeHello } from '../../common/node-hello.js';

/**
 * A node's connection as /metrics exports it, the Hello fields `/api/v1/nodes` shows, and which run is its latest
 * (null before the first).
 */
export type NodeLiveness = Pick<
  NodeRecord,
  'name' | 'connected' | 'lastSeenMs' | 'role' | 'kubeletVersion' | 'agentVersion'
> & {
  /** The node's latest run (undefined when the store does not say): a summary is read again only when it moves. */
  latestRunId?: number | null;
};

/**
 * A change to what nodes the store lists, their connection or their latest run, told after it committed
 * (Store.watchNodes): `node` to read that node again, `all` to read every node again (a notification may have been
 * missed), `cluster` when the cluster scan changed; `lastSeenOnly` when only the node's last contact moved (a
 * heartbeat: other replicas are not told; they read last contact on their next resync).
 */
export type NodeChange =
  | { node: string; lastSeenOnly?: boolean }
  | { all: true; reason: 'missed' | 'link-lost' | 'link-up' | 'all-disconnected' }
  | { cluster: true };

/** A node with its latest benchmark run's counts (undefined before the first run). */

export interface NodeRecord extends NodeHello {
  connected: boolean;
  firstSeenMs: number;
  lastSeenMs: number;
  latest?: {
    benchmarkId: string;
    benchmarkVersion: string;
    role: NodeRole;
    startedAtMs: number;
    pass: number;
    fail: number;
    skip: number;
    scorePercent: number;
    /** Set when the agent found no Kubernetes node to scan (the reason): the counts and score mean nothing. */
    notAssessable?: string;
  };
}

/**
 * The compact summary of one node's latest benchmark run (node_cis_summaries, migration 009): what the cluster
 * summary and /metrics read instead of check rows, kept up to date in the transaction that stores the run.
 */
export interface NodeCisSummary {
  node: string;
  runId: number;
  benchmarkId: string;
  role: NodeRole;
  pass: number;
  fail: number;
  skip: number;
  scorePercent: number;
  /** Ids of the scored checks the run fails. */
  failedChecks: string[];
  /** Set when the node could not be assessed (no kubelet found), with the agent's reason. */
  notAssessable?: string;
}

/** One check of one node's latest run. */
export interface LatestCheckStatus {
  node: string;
  benchmarkId: string;
  checkId: string;
  title: string;
  status: 'PASS' | 'FAIL' | 'SKIP';
  scored: boolean;
}

/** A stored flow bucket row: the flow with its summed counts, where and when. */
export interface FlowBucketRow {
  node: string;
  bucketStartMs: number;
  bucketMs: number;
  flow: FlowRecord;
}

/** Which flows to read; times are [fromMs, toMs) over bucket starts. */
export interface FlowQuery {
  fromMs: number;
  toMs: number;
  /** Flows with this namespace at either end. */
  namespace?: string;
  /** Flows with this endpoint ("namespace/name" or a bare name) at either end. */
  endpoint?: string;
  action?: 'allow' | 'deny';
  /** At most this many rows (newest first); undefined for all. */
  limit?: number;
}

/** Minute buckets for fresh data. */
export const MINUTE_BUCKET_MS = 60_000;
/** Hour buckets for older data. */
export const HOUR_BUCKET_MS = 3_600_000;

export type ReportRunStatus = 'queued' | 'running' | 'succeeded' | 'failed';

/** One run of a report: what it covers, where it stands, and once finished its archived result. */
export interface ReportRunRecord {
  id: string;
  report: string;
  reportType: string;
  trigger: 'scheduled' | 'on-demand';
  status: ReportRunStatus;
  attempts: number;
  intervalStartMs: number;
  intervalEndMs: number;
  /** Not to start before (the schedule's start delay, a retry's backoff). */
  notBeforeMs: number;
  createdMs: number;
  startedMs?: number;
  finishedMs?: number;
  error?: string;
  /** The report definition and parameters the run was made from. */
  inputs: unknown;
  result?: unknown;
}

/** A Kubernetes audit event (audit.k8s.io/v1 Event) with the fields reports filter on. */
export interface StoredAuditEvent {
  auditId: string;
  stageMs: number;
  verb: string;
  resource: string;
  apiGroup: string;
  namespace: string;
  name: string;
  username: string;
  event: unknown;
}

/** A pod as the cluster showed it, and when it was there. */
export interface PodSighting {
  uid: string;
  namespace: string;
  name: string;
  labels: Record<string, string>;
  serviceAccount: string;
  hostNetwork: boolean;
}

/**
 * Everything the aggregator keeps. SQLite and PostgreSQL implement this one
 * interface; compute/ and http/ see nothing else.
 */
export interface Store {
  readonly kind: 'sqlite' | 'postgres';
  /** Throws when the store cannot answer or cannot write (readiness). */
  ping(): Promise<void>;
  /**
   * Why the store cannot serve right now, when `err` (thrown by one of its
   * calls) says so: the server is down or the connection lost, the database is
   * shutting down, the disk is full. Undefined for anything else (a bug, bad
   * data), which stays an internal error.
   */
  unavailableReason(err: unknown): string | undefined;
  close(): Promise<void>;
  /** Upsert the node from its Hello, mark it connected; answer the highest stored seq for its boot id. */
  recordHello(hello: NodeHello, atMs: number, connectionId?: string): Promise<{ lastStoredSeq: number }>;
  /**
   * The node's stream ended. With `connectionId`, only if that stream is still
   * the node's latest (an agent may already be connected to another replica).
   */
  markDisconnected(node: string, atMs: number, connectionId?: string): Promise<void>;
  /** The node left the cluster: it is no longer listed (its archived runs stay, readable with ?at). */
  forgetNode(node: string): Promise<void>;
  /** The node's agent is alive (a heartbeat): last seen moves forward. */
  touchNode(node: string, atMs: number): Promise<void>;
  /** Mark every node disconnected (on start of a single-replica aggregator). */
  markAllDisconnected(): Promise<void>;
  /**
   * Store a run exactly once per (node, bootId, seq), in one transaction with
   * the dedup ledger. `duplicate` is true when it was stored before.
   */
  recordBenchmarkRun(
    node: string,
    bootId: string,
    seq: number,
    report: ScanReport,
    atMs: number,
  ): Promise<{ duplicate: boolean }>;
  listNodes(): Promise<NodeRecord[]>;
  /**
   * Each node's name, connection and latest run id only, by name (no join with the runs); with `names`, those of
   * them the store lists.
   */
  nodeLiveness(names?: string[]): Promise<NodeLiveness[]>;
  /**
   * Tell `listener` of every change to the nodes as it commits: this replica's own at once, other replicas'
   * (PostgreSQL: LISTEN/NOTIFY) as they arrive. Answers the way to stop. Absent: a store that tells nothing (then
   * readers read again each time).
   */
  watchNodes?(listener: (change: NodeChange) => void): () => void;
  /** The node's latest run, or the latest that started at or before `atMs`. */
  nodeReport(node: string, atMs?: number): Promise<ScanReport | undefined>;
  latestCheckStatuses(): Promise<LatestCheckStatus[]>;
  /** Every listed node's latest-run summary (one compact row per node; no check rows read); with `names`, theirs. */
  cisSummaries(names?: string[]): Promise<NodeCisSummary[]>;
  /**
   * Store a cluster-level CIS scan (section 5, evaluated by the aggregator from the API) unless its `fingerprint`
   * equals the latest stored one's, in which case only that row's checked time moves on. Answers whether a row was
   * added.
   */
  recordClusterScan(scan: ClusterScan, fingerprint: string, atMs: number): Promise<{ stored: boolean }>;
  /**
   * The latest cluster-level CIS scan, with when it was last checked, or the latest that started at or before
   * `atMs`; undefined when none.
   */
  latestClusterScan(atMs?: number): Promise<StoredClusterScan | undefined>;
  /** The titles of the given checks of the given runs, keyed `${runId} ${checkId}` (missing ones left out). */
  checkTitles(checks: { runId: number; checkId: string }[]): Promise<Map<string, string>>;
  /**
   * Add a batch's flows to their minute buckets, exactly once per (node,
   * bootId, seq) — the same ledger as benchmark runs — in one transaction.
   * A batch may hold 90,000 records: the work gives the event loop a turn
   * every few ms, and no read sees part of a batch.
   */
  recordFlowBatch(
    node: string,
    bootId: string,
    seq: number,
    flows: FlowRecord[],
    atMs: number,
  ): Promise<{ duplicate: boolean }>;
  flowRows(query: FlowQuery): Promise<FlowBucketRow[]>;
  /**
   * The flows of `query` summed per distinct flow (over nodes and buckets):
   * one record per flow key, counts added, startMs/endMs the first and last
   * seen; in no particular order. What whole-interval computations
   * (network access) read: the work is in the database, and what comes back is
   * bounded by the distinct flows, not by the rows. With `connectionsOnly`, only connections are summed and the last
   * seen taken (packets and bytes 0, startMs = endMs): what network access reads, in about half the time.
   */
  flowTotals(query: Omit<FlowQuery, 'limit'>, opts?: { connectionsOnly?: boolean }): Promise<FlowRecord[]>;
  /**
   * Retention: merge minute buckets that start before `rollupBeforeMs` into
   * hour buckets, and delete every bucket that starts before `deleteBeforeMs`.
   * Answers how many rows were rolled up and deleted.
   */
  compactFlows(rollupBeforeMs: number, deleteBeforeMs: number): Promise<{ rolledUp: number; deleted: number }>;
  /** Add a run; a second scheduled run for the same report and interval is refused (answers false). */
  createReportRun(run: ReportRunRecord): Promise<boolean>;
  /**
   * Move a run on: only from `from` status (so two workers cannot both take
   * it); a result is written with the final status and never replaced.
   * With `expect.attempts`, only if the run is still at that attempt (not
   * requeued and claimed again meanwhile). Answers whether the run was in
   * `from` status and is now updated.
   */
  transitionReportRun(
    id: string,
    from: ReportRunStatus,
    patch: Partial<
      Pick<ReportRunRecord, 'status' | 'attempts' | 'notBeforeMs' | 'startedMs' | 'finishedMs' | 'error' | 'result'>
    >,
    expect?: { attempts?: number },
  ): Promise<boolean>;
  reportRun(id: string): Promise<ReportRunRecord | undefined>;
  /**
   * Report runs as archived, with their evidence chain links (aggregator/evidence/): a report's runs, or every
   * report's, or with `id` that one run; by report, then chain seq.
   */
  archivedRuns(report?: string, id?: string): Promise<ArchivedRunRow[]>;
  /**
   * Every stored scan with its link in the scan chain, in chain order. With `links: true` the reports are left out
   * (reportJson empty): enough to follow the chain, not to rehash it.
   */
  storedScans(opts?: { links?: boolean }): Promise<StoredScanRow[]>;
  /** Each evidence chain's last link as recorded when it was sealed ('scans', 'report:<name>'). */
  chainHeads(): Promise<Map<string, ScanAnchor>>;
  /** A report's runs, newest first, without results. */
  reportRuns(report: string, limit: number): Promise<ReportRunRecord[]>;
  /** Queued runs whose notBefore has come, oldest first. */
  dueReportRuns(nowMs: number, limit: number): Promise<ReportRunRecord[]>;
  /**
   * Runs "running" that started before `startedBeforeMs`, but those in `exceptIds`, oldest first, without results:
   * what a process taking over finds left by one that died.
   */
  runningReportRuns(startedBeforeMs: number, exceptIds?: string[]): Promise<ReportRunRecord[]>;
  /**
   * Runs left "running" by a process that died (started before `startedBeforeMs`; default all), but those in
   * `exceptIds`: back to queued.
   */
  requeueRunningReportRuns(startedBeforeMs?: number, exceptIds?: string[]): Promise<number>;
  /** The latest interval end of a report's scheduled runs (where a new leader resumes). */
  lastScheduledIntervalEnd(report: string): Promise<number | undefined>;
  /** Store audit events once each (by auditID); answers the IDs that were new. */
  recordAuditEvents(events: StoredAuditEvent[]): Promise<string[]>;
  auditEvents(fromMs: number, toMs: number): Promise<StoredAuditEvent[]>;
  /** Pods seen now (added or changed: last seen moves on, first seen stays) or deleted (at `atMs`). */
  recordPods(pods: PodSighting[], atMs: number, deleted: boolean): Promise<void>;
  /** Pods that existed at any time in [fromMs, toMs); undefined when no pod history reaches back to fromMs. */
  podsDuring(fromMs: number, toMs: number): Promise<PodSighting[] | undefined>;
  /** Namespaces seen now (labels) or deleted (null): a version is kept when one is new or changed. */
  recordNamespaces(seen: { name: string; labels: Record<string, string> | null }[], atMs: number): Promise<void>;
  /** Each namespace's versions over [fromMs, toMs), from the one in force at fromMs; undefined when none reach back. */
  namespaceVersions(fromMs: number, toMs: number): Promise<NamespaceVersion[] | undefined>;
  /**
   * Pods recorded as existing, absent from a full list (`uids`) and not seen since `notSeenSinceMs` (another replica
   * may have recorded one created after this list): deleted while not watched, gone from `atMs`.
   */
  recordPodsGoneExcept(uids: string[], atMs: number, notSeenSinceMs: number): Promise<number>;
  /**
   * A page of the pods that existed in [fromMs, toMs), by uid after `afterUid` (byte order), each with when it was
   * first seen and deleted and its label versions from the one in force at fromMs; undefined when no pod history
   * reaches back to fromMs.
   */
  podLifetimes(
    fromMs: number,
    toMs: number,
    page: { afterUid?: string; limit: number },
  ): Promise<PodLifetime[] | undefined>;
  /**
   * Retention of pod and namespace history: pods deleted before `beforeMs` with their label versions, and label
   * versions replaced at or before it; the versions in force then stay (optional for stand-in stores of tests).
   */
  deletePodHistoryBefore?(beforeMs: number): Promise<number>;
  /**
   * Retention: delete audit events (and watched policy versions) older than `beforeMs`, but for each object its
   * latest watched version before then unless that is a deletion (the version still in force); answers how many.
   */
  deleteAuditEventsBefore(beforeMs: number): Promise<number>;
  /**
   * For each object, its latest event before `beforeMs` (the version a diff starts from); objects without one are left
   * out.
   */
  latestAuditEvents(
    objects: { apiGroup: string; resource: string; namespace: string; name: string }[],
    beforeMs: number,
    /** Only the aggregator's own watched versions (ids "watch:..."), not audit webhook events. */
    onlyWatched?: boolean,
  ): Promise<StoredAuditEvent[]>;
  /**
   * The objects of one resource whose latest event is older than `beforeMs` and not a deletion (optional: stand-in
   * stores of tests may leave it out).
   */
  auditObjectsExisting?(apiGroup: string, resource: string, beforeMs: number): Promise<StoredAuditEvent[]>;
}
