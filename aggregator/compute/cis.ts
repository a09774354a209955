import { scorePercent } from '../../common/scan-report.js';
import type { LatestCheckStatus, NodeRecord } from '../store/index.js';
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

/** The `/api/v1/nodes` rows: a node without a run yet has null score and rating. */
export function nodeRows(nodes: NodeRecord[], t: Thresholds = DEFAULT_THRESHOLDS, nowMs = Date.now()): NodeRow[] {
  return nodes.map((n) => ({
    name: n.name,
    role: n.latest?.role ?? n.role,
    kubeletVersion: n.kubeletVersion,
    agentVersion: n.agentVersion,
    connected: isConnected(n, nowMs),
    lastSeen: new Date(n.lastSeenMs).toISOString(),
    benchmark: n.latest?.benchmarkId ?? null,
    scorePercent: n.latest ? n.latest.scorePercent : null,
    pass: n.latest?.pass ?? 0,
    fail: n.latest?.fail ?? 0,
    skip: n.latest?.skip ?? 0,
    rating: n.latest ? rate(n.latest.scorePercent, t) : null,
  }));
}

export interface ClusterSummary {
  nodes: number;
  pass: number;
  fail: number;
  skip: number;
  scorePercent: number;
  bands: { high: number; medium: number; low: number };
  mostFailed: { id: string; title: string; failedNodes: number }[];
}

/**
 * Cluster totals over each node's latest run: pass/(pass+fail) of all scored
 * checks, nodes per band, and the checks failing on the most nodes.
 */
export function clusterSummary(
  nodes: NodeRecord[],
  checks: LatestCheckStatus[],
  options: Thresholds & { benchmark?: string; mostFailedLimit?: number } = DEFAULT_THRESHOLDS,
): ClusterSummary {
  const scanned = nodes.filter((n) => n.latest && (!options.benchmark || n.latest.benchmarkId === options.benchmark));
  const sum = { pass: 0, fail: 0, skip: 0 };
  const bands = { high: 0, medium: 0, low: 0 };
  for (const n of scanned) {
    const l = n.latest as NonNullable<NodeRecord['latest']>;
    sum.pass += l.pass;
    sum.fail += l.fail;
    sum.skip += l.skip;
    bands[rate(l.scorePercent, options)]++;
  }
  const names = new Set(scanned.map((n) => n.name));
  return {
    nodes: scanned.length,
    ...sum,
    scorePercent: scorePercent(sum.pass, sum.fail),
    bands,
    mostFailed: failingNodesPerCheck(checks.filter((c) => names.has(c.node))).slice(0, options.mostFailedLimit ?? 10),
  };
}

/** Scored checks by how many nodes fail them, most first (ties by id). */
export function failingNodesPerCheck(
  checks: LatestCheckStatus[],
): { id: string; title: string; benchmark: string; failedNodes: number }[] {
  const byCheck = new Map<string, { id: string; title: string; benchmark: string; failedNodes: number }>();
  for (const c of checks) {
    if (c.status !== 'FAIL' || !c.scored) continue;
    const key = `${c.benchmarkId}\u0000${c.checkId}`;
    const hit = byCheck.get(key) ?? { id: c.checkId, title: c.title, benchmark: c.benchmarkId, failedNodes: 0 };
    hit.failedNodes++;
    byCheck.set(key, hit);
  }
  return [...byCheck.values()].sort(
    (a, b) => b.failedNodes - a.failedNodes || a.id.localeCompare(b.id, 'en', { numeric: true }),
  );
}
