import type { CheckResult, CheckStatus, NodeRole, ScanReport } from '../common/scan-report.js';
import { summarize } from '../common/scan-report.js';
import type { EndpointKind, FlowEndpoint, FlowRecord, PolicyRef } from '../common/flow.js';
import type { WireBenchmarkRun, WireCheckStatus, WireEndpointKind, WireFlowBatch, WireFlowEndpoint, WireFlowRecord, WirePolicyRef, WireRole } from './index.js';

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
  // 8.64e15 ms is the largest time a JavaScript Date holds.
  if (!Number.isFinite(run.startedAtUnixMs) || run.startedAtUnixMs <= 0 || run.startedAtUnixMs > 8.64e15) return 'started_at_unix_ms is not set or out of range';
  const ids = new Set<string>();
  if (run.role === 'NODE_ROLE_UNSPECIFIED') return 'role is unspecified';
  for (const [i, c] of run.checks.entries()) {
    if (!c.id) return `checks[${i}].id is empty`;
    if (ids.has(c.id)) return `checks[${i}].id "${c.id}" appears twice`;
    ids.add(c.id);
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

const KIND_TO_WIRE: Record<EndpointKind, WireEndpointKind> = {
  pod: 'ENDPOINT_KIND_POD',
  host: 'ENDPOINT_KIND_HOST',
  networkset: 'ENDPOINT_KIND_NETWORK_SET',
  network: 'ENDPOINT_KIND_NETWORK',
  apiserver: 'ENDPOINT_KIND_API_SERVER',
};
const KIND_FROM_WIRE = Object.fromEntries(Object.entries(KIND_TO_WIRE).map(([k, v]) => [v, k])) as Record<WireEndpointKind, EndpointKind>;

function endpointToWire(e: FlowEndpoint): WireFlowEndpoint {
  return { kind: KIND_TO_WIRE[e.kind], namespace: e.namespace, name: e.name, labels: e.labels, serviceAccount: e.serviceAccount, internet: e.internet };
}

export function flowToWire(f: FlowRecord): WireFlowRecord {
  return {
    source: endpointToWire(f.source),
    destination: endpointToWire(f.destination),
    protocol: f.protocol,
    destinationPort: f.destinationPort,
    action: f.action === 'allow' ? 'FLOW_ACTION_ALLOW' : 'FLOW_ACTION_DENY',
    reporter: f.reporter === 'src' ? 'FLOW_REPORTER_SOURCE' : 'FLOW_REPORTER_DESTINATION',
    policies: f.policies,
    stagedPolicies: f.stagedPolicies,
    unnamedPolicy: f.unnamedPolicy,
    connections: f.connections,
    packets: f.packets,
    bytes: f.bytes,
    startUnixMs: f.startMs,
    endUnixMs: f.endMs,
    policyDecided: f.policyDecided,
  };
}

/** Why a FlowBatch cannot be stored, or undefined when it can. */
export function invalidFlowBatch(b: WireFlowBatch): string | undefined {
  for (const [i, r] of b.records.entries()) {
    if (!r.source || !r.destination) return `records[${i}] lacks an endpoint`;
    if (r.source.kind === 'ENDPOINT_KIND_UNSPECIFIED' || r.destination.kind === 'ENDPOINT_KIND_UNSPECIFIED') return `records[${i}] has an endpoint of unspecified kind`;
    if (r.action === 'FLOW_ACTION_UNSPECIFIED') return `records[${i}] has no action`;
    if (r.reporter === 'FLOW_REPORTER_UNSPECIFIED') return `records[${i}] has no reporter`;
    if (!(r.startUnixMs > 0) || r.endUnixMs < r.startUnixMs || r.endUnixMs > 8.64e15) return `records[${i}] has no valid time range`;
    // No store keeps a NUL in text (PostgreSQL refuses it): refuse it here, visibly, instead of failing the batch forever.
    if (JSON.stringify(r).includes('\\u0000')) return `records[${i}] holds a NUL character`;
  }
  return undefined;
}

function endpointFromWire(e: WireFlowEndpoint): FlowEndpoint {
  return { kind: KIND_FROM_WIRE[e.kind], namespace: e.namespace, name: e.name, labels: [...e.labels].sort(), serviceAccount: e.serviceAccount, internet: e.internet };
}

const policyFromWire = (p: WirePolicyRef): PolicyRef => ({ tier: p.tier, namespace: p.namespace, name: p.name, action: p.action, kind: p.kind });

export function flowFromWire(r: WireFlowRecord): FlowRecord {
  return {
    source: endpointFromWire(r.source as WireFlowEndpoint),
    destination: endpointFromWire(r.destination as WireFlowEndpoint),
    protocol: r.protocol,
    destinationPort: r.destinationPort,
    action: r.action === 'FLOW_ACTION_ALLOW' ? 'allow' : 'deny',
    reporter: r.reporter === 'FLOW_REPORTER_SOURCE' ? 'src' : 'dst',
    policies: r.policies.map(policyFromWire),
    stagedPolicies: r.stagedPolicies.map(policyFromWire),
    unnamedPolicy: r.unnamedPolicy,
    policyDecided: r.policyDecided,
    connections: r.connections,
    packets: r.packets,
    bytes: r.bytes,
    startMs: r.startUnixMs,
    endMs: r.endUnixMs,
  };
}
