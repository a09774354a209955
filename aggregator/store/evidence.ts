import { runDigest, scanDigest, UnreadableEvidence } from '../evidence/manifest.js';
import type { ArchivedRunRow, ChainLink, ScanAnchor, StoredScanRow } from '../evidence/records.js';
import type { Conn } from './sql.js';

// The evidence chains' SQL (migration 010) and the sealing both stores share: a scan is sealed in the transaction
// that stores it, a run in the one that archives its result, each after its chain's lock (PostgreSQL: an advisory
// lock, locks.ts; SQLite: its single writer), so a chain has one last link at a time.

/** benchmark_runs as evidence reads it. */
export const SCAN_EVIDENCE_SQL = `SELECT id, node, boot_id, seq, benchmark_id, benchmark_version, role, started_at_ms, duration_ms, pass, fail,
  skip, score_percent, received_at_ms, report_json, chain_seq, prev_digest, digest FROM benchmark_runs`;

/** report_runs as evidence reads it. */
export const RUN_EVIDENCE_SQL = `SELECT id, report, report_type, trigger_kind, status, attempts, interval_start_ms, interval_end_ms,
  created_ms, started_ms, finished_ms, error, inputs_json, result_json, chain_seq, prev_digest, digest, scan_chain_seq,
  scan_chain_digest FROM report_runs`;

const SCAN_TIP_SQL =
  'SELECT chain_seq AS seq, digest FROM benchmark_runs WHERE chain_seq IS NOT NULL ORDER BY chain_seq DESC LIMIT 1';
const RUN_TIP_SQL =
  'SELECT chain_seq AS seq, digest FROM report_runs WHERE report = $1 AND chain_seq IS NOT NULL ORDER BY chain_seq DESC LIMIT 1';
const SEAL_SCAN_SQL = 'UPDATE benchmark_runs SET chain_seq = $2, prev_digest = $3, digest = $4 WHERE id = $1';
const MOVE_HEAD_SQL = `INSERT INTO evidence_chain_heads (chain, seq, digest) VALUES ($1, $2, $3)
  ON CONFLICT (chain) DO UPDATE SET seq = excluded.seq, digest = excluded.digest`;
/** Every chain's head (evidence_chain_heads). */
export const CHAIN_HEADS_SQL = 'SELECT chain, seq, digest FROM evidence_chain_heads';
/** The evidence_chain_heads key of a report's chain. */
export const reportChainKey = (report: string) => `report:${report}`;
export const SCAN_CHAIN_KEY = 'scans';
const SEAL_RUN_SQL = `UPDATE report_runs SET chain_seq = $2, prev_digest = $3, digest = $4, scan_chain_seq = $5, scan_chain_digest = $6
  WHERE id = $1`;

export interface ScanEvidenceDbRow {
  id: number;
  node: string;
  boot_id: string;
  seq: number;
  benchmark_id: string;
  benchmark_version: string;
  role: string;
  started_at_ms: number;
  duration_ms: number;
  pass: number;
  fail: number;
  skip: number;
  score_percent: number;
  received_at_ms: number;
  report_json: string;
  chain_seq: number | null;
  prev_digest: string | null;
  digest: string | null;
}

export interface RunEvidenceDbRow {
  id: string;
  report: string;
  report_type: string;
  trigger_kind: string;
  status: string;
  attempts: number;
  interval_start_ms: number;
  interval_end_ms: number;
  created_ms: number;
  started_ms: number | null;
  finished_ms: number | null;
  error: string | null;
  inputs_json: string;
  result_json: string | null;
  chain_seq: number | null;
  prev_digest: string | null;
  digest: string | null;
  scan_chain_seq: number | null;
  scan_chain_digest: string | null;
}

const linkOf = (seq: number | null, prev: string | null, digest: string | null): ChainLink | null =>
  seq === null || digest === null ? null : { seq, prev, digest };

export function toScanRow(r: ScanEvidenceDbRow): StoredScanRow {
  return {
    id: r.id,
    node: r.node,
    bootId: r.boot_id,
    agentSeq: r.seq,
    benchmarkId: r.benchmark_id,
    benchmarkVersion: r.benchmark_version,
    role: r.role,
    startedAtMs: r.started_at_ms,
    durationMs: r.duration_ms,
    pass: r.pass,
    fail: r.fail,
    skip: r.skip,
    scorePercent: r.score_percent,
    receivedAtMs: r.received_at_ms,
    reportJson: r.report_json,
    chain: linkOf(r.chain_seq, r.prev_digest, r.digest),
  };
}

export function toArchivedRunRow(r: RunEvidenceDbRow): ArchivedRunRow {
  return {
    id: r.id,
    report: r.report,
    reportType: r.report_type,
    trigger: r.trigger_kind,
    status: r.status,
    attempts: r.attempts,
    intervalStartMs: r.interval_start_ms,
    intervalEndMs: r.interval_end_ms,
    createdMs: r.created_ms,
    startedMs: r.started_ms,
    finishedMs: r.finished_ms,
    error: r.error,
    inputsJson: r.inputs_json,
    resultJson: r.result_json,
    chain: linkOf(r.chain_seq, r.prev_digest, r.digest),
    scanAnchor:
      r.scan_chain_seq === null || r.scan_chain_digest === null
        ? null
        : { seq: r.scan_chain_seq, digest: r.scan_chain_digest },
  };
}

/** The next link after `tip` for a row whose digest `digestAt` computes. */
function nextLink(tip: ScanAnchor | undefined, digestAt: (l: { seq: number; prev: string | null }) => string) {
  const link = { seq: (tip?.seq ?? 0) + 1, prev: tip?.digest ?? null };
  return { ...link, digest: digestAt(link) };
}

/**
 * One statement of a sealing step: a query whose rows the step reads next, or a write. Sealing is written once as
 * steps (generators) so it runs on PostgreSQL's and SQLite's async Conn and inside SQLite's synchronous migration
 * transaction alike.
 */
export type SealStatement = { sql: string; values?: unknown[]; rows: boolean };
type Steps = Generator<SealStatement, void, unknown[]>;

/** Run sealing steps on a Conn (in a transaction holding the chain's lock). */
export async function runSteps(c: Conn, steps: Steps): Promise<void> {
  for (let s = steps.next([]); !s.done;) {
    const { sql, values, rows } = s.value;
    s = steps.next(rows ? await c.all(sql, values) : (await c.run(sql, values), []));
  }
}

/** Run sealing steps with a synchronous executor (SQLite's migration transaction). */
export function runStepsSync(exec: (s: SealStatement) => unknown[], steps: Steps): void {
  for (let s = steps.next([]); !s.done;) s = steps.next(exec(s.value));
}

/**
 * The link `make` computes, or undefined for a row whose JSON does not parse (only an old row can be one: the store
 * writes JSON.stringify's text). Such a row stays out of the chain, and verify reports it as unchained.
 */
function sealable<T>(make: () => T): T | undefined {
  try {
    return make();
  } catch (err) {
    if (err instanceof UnreadableEvidence) return undefined;
    throw err;
  }
}

/** Append scan `id` to the scan chain (in the transaction that stored it, after the chain's lock). */
export function* sealScan(id: number): Steps {
  const [row] = (yield { sql: `${SCAN_EVIDENCE_SQL} WHERE id = $1`, values: [id], rows: true }) as ScanEvidenceDbRow[];
  if (!row || row.chain_seq !== null) return;
  const [tip] = (yield { sql: SCAN_TIP_SQL, rows: true }) as ScanAnchor[];
  const scan = toScanRow(row);
  const l = sealable(() => nextLink(tip, (link) => scanDigest(scan, link)));
  if (!l) return;
  yield { sql: SEAL_SCAN_SQL, values: [id, l.seq, l.prev, l.digest], rows: false };
  yield { sql: MOVE_HEAD_SQL, values: [SCAN_CHAIN_KEY, l.seq, l.digest], rows: false };
}

/** Append archived run `id` to its report's chain, anchored to the scan chain's last link. */
export function* sealRun(id: string): Steps {
  const [row] = (yield { sql: `${RUN_EVIDENCE_SQL} WHERE id = $1`, values: [id], rows: true }) as RunEvidenceDbRow[];
  if (!row || row.chain_seq !== null || row.result_json === null) return;
  const [tip] = (yield { sql: RUN_TIP_SQL, values: [row.report], rows: true }) as ScanAnchor[];
  const [anchor] = (yield { sql: SCAN_TIP_SQL, rows: true }) as ScanAnchor[];
  const run = toArchivedRunRow(row);
  const l = sealable(() => nextLink(tip, (link) => runDigest(run, link, anchor ?? null)));
  if (!l) return;
  yield {
    sql: SEAL_RUN_SQL,
    values: [id, l.seq, l.prev, l.digest, anchor?.seq ?? null, anchor?.digest ?? null],
    rows: false,
  };
  yield { sql: MOVE_HEAD_SQL, values: [reportChainKey(row.report), l.seq, l.digest], rows: false };
}

/**
 * Migration 010's data: the rows stored before it, chained in its transaction: scans in id order, then each
 * report's archived runs (succeeded, with a result) in the order they finished.
 */
export function* sealBacklog(): Steps {
  const scans = (yield {
    sql: 'SELECT id FROM benchmark_runs WHERE chain_seq IS NULL ORDER BY id',
    rows: true,
  }) as { id: number }[];
  for (const { id } of scans) yield* sealScan(id);
  const runs = (yield {
    sql: `SELECT id FROM report_runs WHERE chain_seq IS NULL AND status = 'succeeded' AND result_json IS NOT NULL
          ORDER BY finished_ms, created_ms, id`,
    rows: true,
  }) as { id: string }[];
  for (const { id } of runs) yield* sealRun(id);
}

/** The migration whose data sealBacklog writes. */
export const EVIDENCE_MIGRATION = 10;
