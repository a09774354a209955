/**
 * The scan report: what `verdict-agent scan --format json` prints, what a
 * BenchmarkRun carries, and what `GET /api/v1/nodes/:name/cis` answers. Both
 * programs share this one definition.
 */
export type CheckStatus = 'PASS' | 'FAIL' | 'SKIP';
export type NodeRole = 'worker' | 'control-plane';

export interface CheckResult {
  id: string;
  title: string;
  section: string;
  level: number;
  /** Automated checks are scored; manual ones are reported but not scored. */
  scored: boolean;
  status: CheckStatus;
  /** Set on every SKIP: "not applicable: ...", "excluded", "manual: ...". */
  skipReason?: string;
  expected: string;
  actual: string;
  evidence: string;
  remediation: string;
}

export interface ScanSummary {
  pass: number;
  fail: number;
  skip: number;
  total: number;
  /** pass / (pass + fail) of the scored checks, in percent with one decimal; 0 when none. */
  scorePercent: number;
}

export interface ScanReport {
  node: string;
  benchmark: { id: string; version: string };
  nodeRole: NodeRole;
  startedAt: string;
  durationMs: number;
  summary: ScanSummary;
  checks: CheckResult[];
  /** How the benchmark, node role and node name were chosen (what `scan` prints as "note:" lines); agent-side only. */
  notes?: string[];
  /**
   * Set when the scanned root is not a Kubernetes node ("no kubelet found under /host ..."): the checks say nothing
   * about a node and the score is not a score. `verdict-agent run` sends it as a BenchmarkRun with no checks
   * (not_assessable, wire field 8); the aggregator shows the node with this reason and no score.
   */
  notAssessable?: string;
}

/** Counts of the scored checks; unscored ones stay in `checks` with their status. */
export function summarize(checks: readonly CheckResult[], includeUnscored = false): ScanSummary {
  let pass = 0;
  let fail = 0;
  let skip = 0;
  for (const c of checks) {
    if (!c.scored && !includeUnscored) continue;
    if (c.status === 'PASS') pass++;
    else if (c.status === 'FAIL') fail++;
    else skip++;
  }
  return { pass, fail, skip, total: pass + fail + skip, scorePercent: scorePercent(pass, fail) };
}

/** pass / (pass + fail) in percent, one decimal. */
export function scorePercent(pass: number, fail: number): number {
  return pass + fail === 0 ? 0 : Math.round((pass / (pass + fail)) * 1000) / 10;
}
