// The archived rows evidence is computed from, as the store hands them over: the columns as stored, JSON as the
// stored text, so that verification sees exactly what is in the database. No imports: the store and the evidence
// code both use these.

/** A row's place in its chain: its number (from 1), the digest of the row before it (null for the first), its own. */
export interface ChainLink {
  seq: number;
  prev: string | null;
  digest: string;
}

/** A chain's last link: the scan chain's when a run was sealed (the scans it may be built from), or a head. */
export interface ScanAnchor {
  seq: number;
  digest: string;
}

/** A report run as archived (report_runs), with its link in the report's chain when it has one. */
export interface ArchivedRunRow {
  id: string;
  report: string;
  reportType: string;
  trigger: string;
  status: string;
  attempts: number;
  intervalStartMs: number;
  intervalEndMs: number;
  createdMs: number;
  startedMs: number | null;
  finishedMs: number | null;
  error: string | null;
  inputsJson: string;
  resultJson: string | null;
  chain: ChainLink | null;
  scanAnchor: ScanAnchor | null;
}

/** A stored scan (benchmark_runs), with its link in the scan chain when it has one. */
export interface StoredScanRow {
  id: number;
  node: string;
  bootId: string;
  agentSeq: number;
  benchmarkId: string;
  benchmarkVersion: string;
  role: string;
  startedAtMs: number;
  durationMs: number;
  pass: number;
  fail: number;
  skip: number;
  scorePercent: number;
  receivedAtMs: number;
  reportJson: string;
  chain: ChainLink | null;
}
