import { scorePercent } from '../../common/scan-report.js';
import type { StoredClusterScan } from '../cluster-cis/scan.js';
import type { NodeCisSummary, NodeRecord } from '../store/index.js';
import { AGGREGATOR_DEFAULTS_TABLE } from '../defaults.js';

/** Calico Enterprise's CIS report bands: HIGH at or above highThreshold, MED at or above medThreshold. */
export interface Thresholds {
  /** Percent; default 100. */
  highThreshold: number;
  /** Percent; default 50. */
  medThreshold: number;
}

/** Calico's score bands (aggregator/defaults.ts). */
export const DEFAULT_THRESHOLDS: Thresholds = { ...AGGREGATOR_DEFAULTS_TABLE.cis };

export type Rating = 'high' | 'medium' | 'low';

export function rate(scorePercentValue: number, t: Thresholds): Rating {
  if (scorePercentValue >= t.highThreshold) return 'high';
  if (scorePercentValue >= t.medThreshold) return 'medium';
  return 'low';
}

export interface NodeRow {
  name: string;
  role: string;
  kubeletVersion: string;
  agentVersion: string;
  connected: boolean;
  lastSeen: string;
  benchmark: string | null;
  scorePercent: number | null;
  pass: number;
  fail: number;
  skip: number;
  rating: Rating | null;
  /** Why the node could not be assessed (no kubelet found under the agent's host root); then no score or rating. */
  notAssessable?: string;
}

/**
 * Agents send a heartbeat every minute on an otherwise quiet stream; a node
 * not heard from for this long is not connected, whatever the store says (its
 * stream may have died with an aggregator replica).
 */
const CONNECTED_WITHIN_MS = 3 * 60_000;

export function isConnected(n: Pick<NodeRecord, 'connected' | 'lastSeenMs'>, nowMs: number): boolean {
  return n.connected && nowMs - n.lastSeenMs <= CONNECTED_WITHIN_MS;
}

/** The last moment a node with a stream open still counts as connected, unless heard from again. */
export function connectedUntilMs(n: Pick<NodeRecord, 'lastSeenMs'>): number {
  return n.lastSeenMs + CONNECTED_WITHIN_MS;
}

/** What a `/api/v1/nodes` row is made of: a NodeRecord, or a node as the CIS view holds it (its latest summary). */
export type NodeRowSource = Pick<
  NodeRecord,
  'name' | 'role' | 'kubeletVersion' | 'agentVersion' | 'connected' | 'lastSeenMs'
> & {
  latest?: Pick<
    NonNullable<NodeRecord['latest']>,
    'benchmarkId' | 'role' | 'pass' | 'fail' | 'skip' | 'scorePercent' | 'notAssessable'
  >;
};

/**
 * The `/api/v1/nodes` rows: a node without a run yet has null score and rating; so has a node that is not
 * assessable, which carries the agent's reason instead.
 */
export function nodeRows(nodes: NodeRowSource[], t: Thresholds = DEFAULT_THRESHOLDS, nowMs = Date.now()): NodeRow[] {
  return nodes.map((n) => {
    const scored = n.latest && n.latest.notAssessable === undefined ? n.latest : undefined;
    const row: NodeRow = {
      name: n.name,
      role: n.latest?.role ?? n.role,
      kubeletVersion: n.kubeletVersion,
      agentVersion: n.agentVersion,
      connected: isConnected(n, nowMs),
      lastSeen: new Date(n.lastSeenMs).toISOString(),
      benchmark: scored?.benchmarkId ?? null,
      scorePercent: scored ? scored.scorePercent : null,
      pass: scored?.pass ?? 0,
      fail: scored?.fail ?? 0,
      skip: scored?.skip ?? 0,
      rating: scored ? rate(scored.scorePercent, t) : null,
    };
    if (n.latest?.notAssessable !== undefined) row.notAssessable = n.latest.notAssessable;
    return row;
  });
}

export interface ClusterSummary {
  /** Nodes whose latest run is counted (not-assessable nodes are not). */
  nodes: number;
  pass: number;
  fail: number;
  skip: number;
  scorePercent: number;
  bands: { high: number; medium: number; low: number };
  mostFailed: { id: string; title: string; failedNodes: number }[];
  /** Nodes whose agent found no Kubernetes node to scan: left out of every figure above. */
  notAssessable: number;
  /** The cluster section (5.x) evaluated from the API: its own row next to the nodes; null before the first. */
  cluster: ClusterScanSummary | null;
}

export interface ClusterScanSummary {
  benchmark: string;
  checkedAt: string;
  pass: number;
  fail: number;
  skip: number;
  manual: number;
  scorePercent: number;
}

/** The summary's line for the cluster scan. */
export function clusterScanSummary(scan: StoredClusterScan | undefined): ClusterScanSummary | null {
  if (!scan) return null;
  const { pass, fail, skip, manual, scorePercent } = scan.summary;
  return { benchmark: scan.benchmark.id, checkedAt: scan.checkedAt, pass, fail, skip, manual, scorePercent };
}

/** A check failing on some nodes, with one run that fails it (where its title is read). */
export interface FailingCheck {
  id: string;
  benchmark: string;
  failedNodes: number;
  sampleRunId: number;
}

/** The summaries a score is made of: assessable nodes, of one benchmark when given. */
function scoredSummaries(summaries: NodeCisSummary[], benchmark?: string): NodeCisSummary[] {
  return summaries.filter((s) => s.notAssessable === undefined && (!benchmark || s.benchmarkId === benchmark));
}

/**
 * Cluster totals over each node's latest run (its compact summary): pass/(pass+fail) of all scored checks, nodes per
 * band, and the checks failing on the most nodes (`titles` names them, from the runs that fail them).
 */
export function clusterSummary(
  summaries: NodeCisSummary[],
  titles: ReadonlyMap<string, string>,
  options: Thresholds & { benchmark?: string; mostFailedLimit?: number } = DEFAULT_THRESHOLDS,
  cluster?: StoredClusterScan,
): ClusterSummary {
  const scanned = scoredSummaries(summaries, options.benchmark);
  const sum = { pass: 0, fail: 0, skip: 0 };
  const bands = { high: 0, medium: 0, low: 0 };
  for (const l of scanned) {
    sum.pass += l.pass;
    sum.fail += l.fail;
    sum.skip += l.skip;
    bands[rate(l.scorePercent, options)]++;
  }
  return {
    nodes: scanned.length,
    ...sum,
    scorePercent: scorePercent(sum.pass, sum.fail),
    bands,
    mostFailed: mostFailedChecks(summaries, options).map((f) => ({
      id: f.id,
      title: titles.get(titleKey(f)) ?? '',
      failedNodes: f.failedNodes,
    })),
    notAssessable: summaries.filter((s) => s.notAssessable !== undefined).length,
    cluster: clusterScanSummary(cluster),
  };
}

/** The checks clusterSummary lists as most failed (read their titles with checkTitles before calling it). */
export function mostFailedChecks(
  summaries: NodeCisSummary[],
  options: { benchmark?: string; mostFailedLimit?: number } = {},
): FailingCheck[] {
  return failingNodesPerCheck(scoredSummaries(summaries, options.benchmark)).slice(0, options.mostFailedLimit ?? 10);
}

/** The key of a failing check's title in checkTitles' answer. */
export const titleKey = (f: Pick<FailingCheck, 'sampleRunId' | 'id'>): string => `${f.sampleRunId} ${f.id}`;

/** Scored checks by how many assessable nodes fail them, most first (ties by id). */
export function failingNodesPerCheck(summaries: NodeCisSummary[]): FailingCheck[] {
  const byCheck = new Map<string, FailingCheck>();
  for (const s of summaries) {
    if (s.notAssessable !== undefined) continue;
    for (const id of s.failedChecks) {
      const key = `${s.benchmarkId}\u0000${id}`;
      const hit = byCheck.get(key);
      if (hit) hit.failedNodes++;
      else byCheck.set(key, { id, benchmark: s.benchmarkId, failedNodes: 1, sampleRunId: s.runId });
    }
  }
  return [...byCheck.values()].sort(byFailedNodes);
}

const byBytes = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/**
 * Most failed first; ties by check id in numeric order (1.2.10 after 1.2.9), then as bytes, then by benchmark, so
 * the order never depends on which node was read first (the summary kept in memory must equal one read afresh).
 */
export function byFailedNodes(a: Omit<FailingCheck, 'sampleRunId'>, b: Omit<FailingCheck, 'sampleRunId'>): number {
  return (
    b.failedNodes - a.failedNodes ||
    a.id.localeCompare(b.id, 'en', { numeric: true }) ||
    byBytes(a.id, b.id) ||
    byBytes(a.benchmark, b.benchmark)
  );
}

/** Exact pass/(pass+fail) of the assessable nodes of `benchmark`; metrics do not round. */
export function clusterScoreRatio(summaries: NodeCisSummary[], benchmark: string): number {
  let pass = 0;
  let fail = 0;
  for (const s of scoredSummaries(summaries, benchmark)) {
    pass += s.pass;
    fail += s.fail;
  }
  return pass + fail === 0 ? 0 : pass / (pass + fail);
}
