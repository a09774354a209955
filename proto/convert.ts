import type { CheckResult, CheckStatus, NodeRole, ScanReport } from '../common/scan-report.js';
import { summarize } from '../common/scan-report.js';
import type { WireBenchmarkRun, WireCheckStatus, WireRole } from './index.js';

/** Scan report ↔ BenchmarkRun. The summary is not sent: the receiver recomputes it. */
export function reportToWire(report: ScanReport, seq: number): WireBenchmarkRun {
  return {
    seq,
    benchmarkId: report.benchmark.id,
    benchmarkVersion: report.benchmark.version,
    role: roleToWire(report.nodeRole),
    startedAtUnixMs: Date.parse(report.startedAt),
    durationMs: report.durationMs,
    checks: report.checks.map((c) => ({
      id: c.id,
      title: c.title,
      section: c.section,
      level: c.level,
      scored: c.scored,
      status: `CHECK_STATUS_${c.status}` as WireCheckStatus,
      skipReason: c.skipReason ?? '',
      expected: c.expected,
      actual: c.actual,
      evidence: c.evidence,
      remediation: c.remediation,
    })),
  };
}

/** Why a BenchmarkRun cannot be stored, or undefined when it can. */
export function invalidRun(run: WireBenchmarkRun): string | undefined {
  if (!run.benchmarkId) return 'benchmark_id is empty';
  if (!Number.isFinite(run.startedAtUnixMs) || run.startedAtUnixMs <= 0) return 'started_at_unix_ms is not set';
  if (run.role === 'NODE_ROLE_UNSPECIFIED') return 'role is unspecified';
  for (const [i, c] of run.checks.entries()) {
    if (!c.id) return `checks[${i}].id is empty`;
    if (c.status === 'CHECK_STATUS_UNSPECIFIED') return `checks[${i}] (${c.id}) has no status`;
    if (c.status === 'CHECK_STATUS_SKIP' && !c.skipReason) return `checks[${i}] (${c.id}) is SKIP without a reason`;
  }
  return undefined;
}

export function reportFromWire(node: string, run: WireBenchmarkRun): ScanReport {
  const checks: CheckResult[] = run.checks.map((c) => {
    const status = c.status.replace('CHECK_STATUS_', '') as CheckStatus;
    return {
      id: c.id,
      title: c.title,
      section: c.section,
      level: c.level,
      scored: c.scored,
      status,
      ...(status === 'SKIP' ? { skipReason: c.skipReason } : {}),
      expected: c.expected,
      actual: c.actual,
      evidence: c.evidence,
      remediation: c.remediation,
    };
  });
  return {
    node,
    benchmark: { id: run.benchmarkId, version: run.benchmarkVersion },
    nodeRole: roleFromWire(run.role),
    startedAt: new Date(run.startedAtUnixMs).toISOString(),
    durationMs: run.durationMs,
    summary: summarize(checks),
    checks,
  };
}

export function roleToWire(role: NodeRole): WireRole {
  return role === 'control-plane' ? 'NODE_ROLE_CONTROL_PLANE' : 'NODE_ROLE_WORKER';
}

export function roleFromWire(role: WireRole): NodeRole {
  return role === 'NODE_ROLE_CONTROL_PLANE' ? 'control-plane' : 'worker';
}
