import type { NodeRole, ScanReport } from '../common/scan-report.js';
import type { EndpointKind, FlowEndpoint, FlowRecord } from '../common/flow.js';
import type {
  WireBenchmarkRun,
  WireCheckStatus,
  WireEndpointKind,
  WireFlowEndpoint,
  WireFlowRecord,
  WireRole,
} from './index.js';

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
    // A root that is no node sends its reason and no checks (the checks of nothing are no results).
    ...(report.notAssessable ? { notAssessable: report.notAssessable, checks: [] } : {}),
  };
}

export function roleToWire(role: NodeRole): WireRole {
  return role === 'control-plane' ? 'NODE_ROLE_CONTROL_PLANE' : 'NODE_ROLE_WORKER';
}

export const KIND_TO_WIRE: Record<EndpointKind, WireEndpointKind> = {
  pod: 'ENDPOINT_KIND_POD',
  host: 'ENDPOINT_KIND_HOST',
  networkset: 'ENDPOINT_KIND_NETWORK_SET',
  network: 'ENDPOINT_KIND_NETWORK',
  apiserver: 'ENDPOINT_KIND_API_SERVER',
};

/**
 * Wire endpoints already built: the agent's parsers share one endpoint object between the records naming it (never
 * changed once built), so a window of records converts each endpoint once.
 */
const wireEndpoints = new WeakMap<FlowEndpoint, WireFlowEndpoint>();

function endpointToWire(e: FlowEndpoint): WireFlowEndpoint {
  let w = wireEndpoints.get(e);
  if (!w) {
    w = endpointToWireOnce(e);
    wireEndpoints.set(e, w);
  }
  return w;
}

function endpointToWireOnce(e: FlowEndpoint): WireFlowEndpoint {
  return {
    kind: KIND_TO_WIRE[e.kind],
    namespace: e.namespace,
    name: e.name,
    labels: e.labels,
    serviceAccount: e.serviceAccount,
    internet: e.internet,
    reserved: e.reserved ?? '',
  };
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
    policyUnknown: f.policyUnknown === true,
  };
}
