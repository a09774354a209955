import {
  flowRecordProblem,
  textProblem,
  type EndpointKind,
  type FlowEndpoint,
  type FlowRecord,
  type PolicyRef,
} from '../common/flow.js';
import type { NodeHello } from '../common/node-hello.js';
import {
  summarize,
  type CheckResult,
  type CheckStatus,
  type NodeRole,
  type ScanReport,
} from '../common/scan-report.js';
import type { TimeSlice } from '../common/time-slice.js';
import { KIND_TO_WIRE } from './convert.js';
import type {
  WireBenchmarkRun,
  WireFlowBatch,
  WireFlowEndpoint,
  WireFlowRecord,
  WireHello,
  WirePolicyRef,
} from './index.js';

/**
 * The one place an agent message becomes a domain message: every field of
 * the decoded protobuf is checked (enums against the values this build
 * knows — protobufjs hands an unknown enum value through as its number —,
 * numbers against their ranges, strings for NUL and length, lists for
 * length) and converted once. What comes out can be stored; what does not
 * is a Reject with the first problem found, never a store error.
 */
export type FromWire<T> = { ok: true; value: T } | { ok: false; problem: string };

const WIRE_LIMITS = {
  /** Checks in one BenchmarkRun (a CIS benchmark has about 130). */
  checksPerRun: 5000,
  /** Characters of a check's texts (title, expected, actual, evidence, remediation). */
  checkText: 16 * 1024,
  /** Node labels in a Hello, and characters of each key and value. */
  nodeLabels: 512,
  labelText: 1024,
  /** Flow source entries in one FlowBatch. */
  sourcesPerBatch: 256,
} as const;

/**
 * Seqs and counts travel as uint64 but are kept as JS numbers: beyond 2^53 they are not exact (and PostgreSQL's bigint
 * ends at 2^63).
 */
const isSeq = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 1;
const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const fail = (problem: string): { ok: false; problem: string } => ({ ok: false, problem });

const ROLES: Record<string, NodeRole> = { NODE_ROLE_WORKER: 'worker', NODE_ROLE_CONTROL_PLANE: 'control-plane' };
const STATUSES: Record<string, CheckStatus> = {
  CHECK_STATUS_PASS: 'PASS',
  CHECK_STATUS_FAIL: 'FAIL',
  CHECK_STATUS_SKIP: 'SKIP',
};
const KINDS: Record<string, EndpointKind> = Object.fromEntries(
  Object.entries(KIND_TO_WIRE).map(([k, v]) => [v, k as EndpointKind]),
);
const ACTIONS: Record<string, 'allow' | 'deny'> = { FLOW_ACTION_ALLOW: 'allow', FLOW_ACTION_DENY: 'deny' };
const REPORTERS: Record<string, 'src' | 'dst'> = { FLOW_REPORTER_SOURCE: 'src', FLOW_REPORTER_DESTINATION: 'dst' };

/** An enum member by name, only when it is one of ours (never an inherited property). */
function member<T>(table: Record<string, T>, v: unknown): T | undefined {
  return typeof v === 'string' && Object.hasOwn(table, v) ? table[v] : undefined;
}

export type HelloMessage = NodeHello;

const NODE_NAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

export function helloFromWire(h: WireHello): FromWire<HelloMessage> {
  if (typeof h.nodeName !== 'string' || !NODE_NAME.test(h.nodeName))
    return fail(`node name ${JSON.stringify(h.nodeName)} is not a Kubernetes node name`);
  const bootProblem = textProblem('boot_id', h.bootId, 128);
  if (bootProblem) return fail(bootProblem);
  if (!h.bootId) return fail('boot_id is empty');
  // An unknown role (a newer agent) is told apart from "unspecified", which older agents never send either.
  const role = h.role === 'NODE_ROLE_UNSPECIFIED' ? 'worker' : member(ROLES, h.role);
  if (!role) return fail(`role ${JSON.stringify(h.role)} is not one this aggregator knows`);
  for (const f of [
    'kubeletVersion',
    'kubernetesVersion',
    'osImage',
    'kernelVersion',
    'architecture',
    'agentVersion',
  ] as const) {
    const p = textProblem(f, h[f], 256);
    if (p) return fail(p);
  }
  const labels: Record<string, string> = Object.create(null) as Record<string, string>;
  const entries = Object.entries(h.nodeLabels ?? {});
  if (entries.length > WIRE_LIMITS.nodeLabels) return fail(`more than ${WIRE_LIMITS.nodeLabels} node labels`);
  for (const [k, v] of entries) {
    const p =
      textProblem(`node label key ${JSON.stringify(k.slice(0, 64))}`, k, WIRE_LIMITS.labelText) ??
      textProblem(`node label ${JSON.stringify(k.slice(0, 64))}`, v, WIRE_LIMITS.labelText);
    if (p) return fail(p);
    labels[k] = v;
  }
  return {
    ok: true,
    value: {
      name: h.nodeName,
      role,
      labels: { ...labels },
      kubeletVersion: h.kubeletVersion,
      kubernetesVersion: h.kubernetesVersion,
      osImage: h.osImage,
      kernelVersion: h.kernelVersion,
      architecture: h.architecture,
      agentVersion: h.agentVersion,
      bootId: h.bootId,
    },
  };
}

export function benchmarkRunFromWire(
  node: string,
  run: WireBenchmarkRun,
): FromWire<{ seq: number; report: ScanReport }> {
  if (!isSeq(run.seq)) return fail(`seq ${String(run.seq)} is not from 1 to 2^53-1`);
  const head =
    textProblem('benchmark_id', run.benchmarkId, 64) ?? textProblem('benchmark_version', run.benchmarkVersion, 64);
  if (head) return fail(head);
  if (!run.benchmarkId) return fail('benchmark_id is empty');
  if (!Number.isSafeInteger(run.startedAtUnixMs) || run.startedAtUnixMs <= 0 || run.startedAtUnixMs > 8.64e15)
    return fail('started_at_unix_ms is not set or out of range');
  if (!isCount(run.durationMs)) return fail('duration_ms is out of range');
  if (run.role === 'NODE_ROLE_UNSPECIFIED') return fail('role is unspecified');
  const role = member(ROLES, run.role);
  if (!role) return fail(`role ${JSON.stringify(run.role)} is not one this aggregator knows`);
  if (!Array.isArray(run.checks) || run.checks.length > WIRE_LIMITS.checksPerRun)
    return fail(`checks is not a list of at most ${WIRE_LIMITS.checksPerRun}`);
  const notAssessable = run.notAssessable ?? '';
  const why = textProblem('not_assessable', notAssessable, WIRE_LIMITS.checkText);
  if (why) return fail(why);
  // A run that is not a scan of a node has no results: checks beside the reason would read as a node's 0%.
  if (notAssessable && run.checks.length > 0)
    return fail(`not_assessable is set and checks holds ${run.checks.length}; a not-assessable run carries no checks`);
  const ids = new Set<string>();
  const checks: CheckResult[] = [];
  for (const [i, c] of run.checks.entries()) {
    const where = `checks[${i}]${typeof c?.id === 'string' && c.id ? ` (${c.id.slice(0, 32)})` : ''}`;
    const text =
      textProblem(`${where}.id`, c.id, 64) ??
      textProblem(`${where}.section`, c.section, 64) ??
      (['title', 'skipReason', 'expected', 'actual', 'evidence', 'remediation'] as const)
        .map((f) => textProblem(`${where}.${f}`, c[f], WIRE_LIMITS.checkText))
        .find(Boolean);
    if (text) return fail(text);
    if (!c.id) return fail(`${where}.id is empty`);
    if (ids.has(c.id)) return fail(`${where}.id appears twice`);
    ids.add(c.id);
    if (!Number.isInteger(c.level) || c.level < 0 || c.level > 9)
      return fail(`${where}.level ${String(c.level)} is not 0-9`);
    if (c.status === 'CHECK_STATUS_UNSPECIFIED') return fail(`${where} has no status`);
    const status = member(STATUSES, c.status);
    if (!status) return fail(`${where}.status ${JSON.stringify(c.status)} is not one this aggregator knows`);
    if (status === 'SKIP' && !c.skipReason) return fail(`${where} is SKIP without a reason`);
    checks.push({
      id: c.id,
      title: c.title,
      section: c.section,
      level: c.level,
      scored: c.scored === true,
      status,
      ...(status === 'SKIP' ? { skipReason: c.skipReason } : {}),
      expected: c.expected,
      actual: c.actual,
      evidence: c.evidence,
      remediation: c.remediation,
    });
  }
  return {
    ok: true,
    value: {
      seq: run.seq,
      report: {
        node,
        benchmark: { id: run.benchmarkId, version: run.benchmarkVersion },
        nodeRole: role,
        startedAt: new Date(run.startedAtUnixMs).toISOString(),
        durationMs: run.durationMs,
        summary: summarize(checks),
        checks,
        ...(notAssessable ? { notAssessable } : {}),
      },
    },
  };
}

export interface FlowBatchMessage {
  seq: number;
  flows: FlowRecord[];
  sources: { source: string; malformed: number; lost: number }[];
  droppedRecords: number;
}

function endpointFromWire(e: WireFlowEndpoint | null | undefined): FlowEndpoint | string {
  if (!e) return 'missing';
  if (e.kind === 'ENDPOINT_KIND_UNSPECIFIED') return 'unspecified kind';
  const kind = member(KINDS, e.kind);
  if (!kind) return `kind ${JSON.stringify(e.kind)} is not one this aggregator knows`;
  const labels = Array.isArray(e.labels) ? [...e.labels].sort() : e.labels;
  const out: FlowEndpoint = {
    kind,
    namespace: e.namespace,
    name: e.name,
    labels,
    serviceAccount: e.serviceAccount,
    internet: e.internet === true,
  };
  // Only when set, so an endpoint without one keeps the identity it had before the field existed.
  if (e.reserved) out.reserved = e.reserved;
  return out;
}

const policyFromWire = (p: WirePolicyRef): PolicyRef => ({
  tier: p?.tier,
  namespace: p?.namespace,
  name: p?.name,
  action: p?.action,
  kind: p?.kind,
});

/** One record, converted and checked; a string says why it cannot be. */
export function flowFromWire(r: WireFlowRecord): FlowRecord | string {
  const source = endpointFromWire(r.source);
  if (typeof source === 'string') return `source endpoint: ${source}`;
  const destination = endpointFromWire(r.destination);
  if (typeof destination === 'string') return `destination endpoint: ${destination}`;
  if (r.action === 'FLOW_ACTION_UNSPECIFIED') return 'no action';
  const action = member(ACTIONS, r.action);
  if (!action) return `action ${JSON.stringify(r.action)} is not one this aggregator knows`;
  if (r.reporter === 'FLOW_REPORTER_UNSPECIFIED') return 'no reporter';
  const reporter = member(REPORTERS, r.reporter);
  if (!reporter) return `reporter ${JSON.stringify(r.reporter)} is not one this aggregator knows`;
  const flow: FlowRecord = {
    source,
    destination,
    protocol: r.protocol,
    destinationPort: r.destinationPort,
    action,
    reporter,
    policies: Array.isArray(r.policies) ? r.policies.map(policyFromWire) : r.policies,
    stagedPolicies: Array.isArray(r.stagedPolicies) ? r.stagedPolicies.map(policyFromWire) : r.stagedPolicies,
    unnamedPolicy: r.unnamedPolicy === true,
    policyDecided: r.policyDecided === true,
    connections: r.connections,
    packets: r.packets,
    bytes: r.bytes,
    startMs: r.startUnixMs,
    endMs: r.endUnixMs,
  };
  if (r.policyUnknown === true) flow.policyUnknown = true;
  return flowRecordProblem(flow) ?? flow;
}

/**
 * A FlowBatch checked and converted, giving the event loop a turn whenever
 * `slice` is up (checking 90,000 records takes a few hundred ms); where it
 * pauses never changes the answer.
 */
export async function flowBatchFromWireInSlices(
  b: WireFlowBatch,
  slice: TimeSlice,
): Promise<FromWire<FlowBatchMessage>> {
  const head = flowBatchHeadFromWire(b);
  if (!head.ok) return head;
  for (let i = 0; i < b.records.length; i++) {
    if (slice.isUp()) await slice.next();
    const f = batchRecordFromWire(b.records, i);
    if (typeof f === 'string') return fail(f);
    head.value.flows.push(f);
  }
  return head;
}

/** A batch's fields but its records, checked; `flows` is left empty for the records. */
function flowBatchHeadFromWire(b: WireFlowBatch): FromWire<FlowBatchMessage> {
  if (!isSeq(b.seq)) return fail(`seq ${String(b.seq)} is not from 1 to 2^53-1`);
  if (!isCount(b.droppedRecords)) return fail('dropped_records is out of range');
  if (!Array.isArray(b.sources) || b.sources.length > WIRE_LIMITS.sourcesPerBatch)
    return fail(`sources is not a list of at most ${WIRE_LIMITS.sourcesPerBatch}`);
  const sources: FlowBatchMessage['sources'] = [];
  for (const [i, s] of b.sources.entries()) {
    const p = textProblem(`sources[${i}].source`, s.source, 4096);
    if (p) return fail(p);
    if (!isCount(s.malformed) || !isCount(s.lost)) return fail(`sources[${i}] has a count out of range`);
    sources.push({ source: s.source, malformed: s.malformed, lost: s.lost });
  }
  if (!Array.isArray(b.records)) return fail('records is not a list');
  return { ok: true, value: { seq: b.seq, flows: [], sources, droppedRecords: b.droppedRecords } };
}

/** Record `i` of a batch as a flow, or the batch's problem with it. */
function batchRecordFromWire(records: WireFlowRecord[], i: number): FlowRecord | string {
  const f = flowFromWire(records[i] as WireFlowRecord);
  return typeof f === 'string' ? `records[${i}]: ${f}` : f;
}
