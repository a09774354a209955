import type { CheckResult, NodeRole } from '../../common/scan-report.js';
import { evaluateAudit, type AuditOutcome, type NodeFacts } from './audits.js';
import type { BenchmarkSpec, CheckSpec } from './schema.js';

export interface EngineOptions {
  role: NodeRole;
  /** 1 runs Level 1 checks only; 2 (the default) runs Level 1 and 2. */
  level: 1 | 2;
  /** Check ids (or section prefixes like "4.2") reported as SKIP "excluded". */
  exclude: readonly string[];
}

/**
 * Evaluate a benchmark against one node. Pure over `facts`: everything the
 * checks read comes through its HostView and the settings resolved from it.
 * A control-plane node also runs a kubelet, so it gets the worker checks too.
 */
export function evaluateBenchmark(benchmark: BenchmarkSpec, facts: NodeFacts, options: EngineOptions): CheckResult[] {
  return benchmark.checks
    .filter((c) => c.role === 'worker' || options.role === 'control-plane')
    .filter((c) => c.level <= options.level)
    .map((c) => evaluateCheck(c, facts, options));
}

function evaluateCheck(check: CheckSpec, facts: NodeFacts, options: Pick<EngineOptions, 'exclude'>): CheckResult {
  const base = {
    id: check.id,
    title: check.title,
    section: check.section,
    level: check.level,
    scored: check.automated,
    remediation: check.remediation,
  };
  if (options.exclude.some((x) => check.id === x || check.id.startsWith(`${x}.`))) {
    return { ...base, status: 'SKIP', skipReason: 'excluded', expected: '', actual: '', evidence: '--exclude' };
  }
  const audit = check.audit ?? { type: 'manual' as const };
  if (audit.type === 'manual') {
    return {
      ...base,
      status: 'SKIP',
      skipReason: `manual: ${audit.reason ?? 'no audit a machine can do'}`,
      expected: '',
      actual: '',
      evidence: '',
    };
  }
  const outcome: AuditOutcome = evaluateAudit(audit, facts);
  if (outcome.status === 'NA') {
    return {
      ...base,
      status: 'SKIP',
      skipReason: `not applicable: ${outcome.reason}`,
      expected: outcome.expected,
      actual: outcome.actual,
      evidence: outcome.evidence,
    };
  }
  return {
    ...base,
    status: outcome.status,
    expected: outcome.expected,
    actual: outcome.actual,
    evidence: outcome.evidence,
  };
}
