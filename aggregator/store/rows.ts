import type { FlowEndpoint, FlowRecord, PolicyRef } from '../../common/flow.js';
import type { NodeRole, ScanReport } from '../../common/scan-report.js';
import type {
  FlowBucketRow,
  LatestCheckStatus,
  NodeCisSummary,
  NodeRecord,
  PodSighting,
  ReportRunRecord,
  ReportRunStatus,
  StoredAuditEvent,
} from './types.js';

// The rows both stores read, and the records they become: one mapper per table.
// Column names and types are the same in both dialects (the migrations see to
// it) but for booleans, which SQLite hands back as 0 and 1; JSON is TEXT in both
// and parsed here, so it reads back exactly as written.

/** A column SQLite stores as 0/1 and PostgreSQL as BOOLEAN. */
export type SqlBool = boolean | number;

export const bool = (v: SqlBool): boolean => v === true || v === 1;

/** A node with the counts of its latest run (the LEFT JOIN's columns null before the first run). */
export interface NodeRow {
  name: string;
  role: string;
  labels_json: string;
  kubelet_version: string;
  kubernetes_version: string;
  os_image: string;
  kernel_version: string;
  architecture: string;
  agent_version: string;
  boot_id: string;
  connected: SqlBool;
  first_seen_ms: number;
  last_seen_ms: number;
  benchmark_id: string | null;
  benchmark_version: string | null;
  run_role: string | null;
  started_at_ms: number | null;
  pass: number | null;
  fail: number | null;
  skip: number | null;
  score_percent: number | null;
  not_assessable: string | null;
}

export function toNodeRecord(r: NodeRow): NodeRecord {
  return {
    name: r.name,
    role: r.role as NodeRole,
    labels: JSON.parse(r.labels_json) as Record<string, string>,
    kubeletVersion: r.kubelet_version,
    kubernetesVersion: r.kubernetes_version,
    osImage: r.os_image,
    kernelVersion: r.kernel_version,
    architecture: r.architecture,
    agentVersion: r.agent_version,
    bootId: r.boot_id,
    connected: bool(r.connected),
    firstSeenMs: r.first_seen_ms,
    lastSeenMs: r.last_seen_ms,
    latest:
      r.benchmark_id === null
        ? undefined
        : {
            benchmarkId: r.benchmark_id,
            benchmarkVersion: r.benchmark_version ?? '',
            role: (r.run_role ?? r.role) as NodeRole,
            startedAtMs: r.started_at_ms ?? 0,
            pass: r.pass ?? 0,
            fail: r.fail ?? 0,
            skip: r.skip ?? 0,
            scorePercent: r.score_percent ?? 0,
            ...(r.not_assessable !== null && r.not_assessable !== undefined ? { notAssessable: r.not_assessable } : {}),
          },
  };
}

/** A node_cis_summaries row (migration 009). */
export interface NodeCisSummaryRow {
  node: string;
  run_id: number | string;
  benchmark_id: string;
  role: string;
  pass: number;
  fail: number;
  skip: number;
  score_percent: number;
  failed_checks_json: string;
  not_assessable: string | null;
}

export function toNodeCisSummary(r: NodeCisSummaryRow): NodeCisSummary {
  return {
    node: r.node,
    runId: Number(r.run_id),
    benchmarkId: r.benchmark_id,
    role: r.role as NodeRole,
    pass: r.pass,
    fail: r.fail,
    skip: r.skip,
    scorePercent: r.score_percent,
    failedChecks: JSON.parse(r.failed_checks_json) as string[],
    ...(r.not_assessable !== null ? { notAssessable: r.not_assessable } : {}),
  };
}

/** NODE_CIS_SUMMARY_UPSERT's values for `report`, stored as run `runId` of `node`. */
export function nodeCisSummaryValues(node: string, runId: number, report: ScanReport): unknown[] {
  const s = report.summary;
  const failed = report.checks.filter((c) => c.scored && c.status === 'FAIL').map((c) => c.id);
  return [
    node,
    runId,
    report.benchmark.id,
    report.nodeRole,
    s.pass,
    s.fail,
    s.skip,
    s.scorePercent,
    JSON.stringify(failed),
    report.notAssessable ?? null,
  ];
}

export interface CheckStatusRow {
  node: string;
  benchmark_id: string;
  check_id: string;
  title: string;
  status: LatestCheckStatus['status'];
  scored: SqlBool;
}

export function toCheckStatus(r: CheckStatusRow): LatestCheckStatus {
  return {
    node: r.node,
    benchmarkId: r.benchmark_id,
    checkId: r.check_id,
    title: r.title,
    status: r.status,
    scored: bool(r.scored),
  };
}

/** A flow read: a bucket row (or a sum of them) joined with its key's dictionary entries (FLOW_KEY_COLUMNS). */
export interface FlowRow {
  node: string;
  bucket_start_ms: number;
  bucket_ms: number;
  connections: number;
  packets: number;
  bytes: number;
  first_ms: number;
  last_ms: number;
  src_id: number;
  src_json: string;
  dst_id: number;
  dst_json: string;
  protocol: string;
  destination_port: number;
  action: FlowRecord['action'];
  reporter: FlowRecord['reporter'];
  policies_id: number;
  policies_json: string;
  staged_id: number;
  staged_json: string;
  unnamed_policy: boolean | number;
  policy_decided: boolean | number;
  /** Migration 013. */
  policy_unknown: boolean | number;
}

/**
 * Builds flow records from FlowRows, parsing each dictionary entry once: the
 * records it makes share their endpoint and policy objects (read them, do not
 * change them).
 */
export class FlowRowReader {
  private readonly endpoints = new Map<number, FlowEndpoint>();
  private readonly lists = new Map<number, PolicyRef[]>();

  private endpoint(id: number, json: string): FlowEndpoint {
    let e = this.endpoints.get(id);
    if (e === undefined) this.endpoints.set(id, (e = JSON.parse(json) as FlowEndpoint));
    return e;
  }

  private list(id: number, json: string): PolicyRef[] {
    let l = this.lists.get(id);
    if (l === undefined) this.lists.set(id, (l = JSON.parse(json) as PolicyRef[]));
    return l;
  }

  /** The stored flow with the bucket's (or the sum's) counts and times. */
  flow(r: FlowRow): FlowRecord {
    return {
      source: this.endpoint(r.src_id, r.src_json),
      destination: this.endpoint(r.dst_id, r.dst_json),
      protocol: r.protocol,
      destinationPort: r.destination_port,
      action: r.action,
      reporter: r.reporter,
      policies: this.list(r.policies_id, r.policies_json),
      stagedPolicies: this.list(r.staged_id, r.staged_json),
      unnamedPolicy: bool(r.unnamed_policy),
      policyDecided: bool(r.policy_decided),
      // Only when set, as the agent sends it (common/flow.ts): a record without it reads back as it was written.
      ...(bool(r.policy_unknown) ? { policyUnknown: true } : {}),
      connections: r.connections,
      packets: r.packets,
      bytes: r.bytes,
      startMs: r.first_ms,
      endMs: r.last_ms,
    };
  }

  bucketRow(r: FlowRow): FlowBucketRow {
    return { node: r.node, bucketStartMs: r.bucket_start_ms, bucketMs: r.bucket_ms, flow: this.flow(r) };
  }
}

export interface AuditEventRow {
  audit_id: string;
  stage_ms: number;
  verb: string;
  resource: string;
  api_group: string;
  namespace: string;
  name: string;
  username: string;
  event_json: string;
}

export function toAuditEvent(r: AuditEventRow): StoredAuditEvent {
  return {
    auditId: r.audit_id,
    stageMs: r.stage_ms,
    verb: r.verb,
    resource: r.resource,
    apiGroup: r.api_group,
    namespace: r.namespace,
    name: r.name,
    username: r.username,
    event: JSON.parse(r.event_json) as unknown,
  };
}

/** An audit event as the values of AUDIT_EVENTS' columns. */
export function auditEventValues(e: StoredAuditEvent): unknown[] {
  return [
    e.auditId,
    e.stageMs,
    e.verb,
    e.resource,
    e.apiGroup,
    e.namespace,
    e.name,
    e.username,
    JSON.stringify(e.event),
  ];
}

export interface PodRow {
  uid: string;
  namespace: string;
  name: string;
  labels_json: string;
  service_account: string;
  host_network: SqlBool;
}

export function toPodSighting(r: PodRow): PodSighting {
  return {
    uid: r.uid,
    namespace: r.namespace,
    name: r.name,
    labels: JSON.parse(r.labels_json) as Record<string, string>,
    serviceAccount: r.service_account,
    hostNetwork: bool(r.host_network),
  };
}

/** A report_runs row (RUN_COLUMNS, and result_json, null when not asked for). */
export interface ReportRunRow {
  id: string;
  report: string;
  report_type: string;
  trigger_kind: string;
  status: string;
  attempts: number;
  interval_start_ms: number;
  interval_end_ms: number;
  not_before_ms: number;
  created_ms: number;
  started_ms: number | null;
  finished_ms: number | null;
  error: string | null;
  inputs_json: string;
  result_json: string | null;
}

/** The record of a row; the result only when asked for (run lists leave it out). */
export function toRunRecord(r: ReportRunRow, withResult: boolean): ReportRunRecord {
  return {
    id: r.id,
    report: r.report,
    reportType: r.report_type,
    trigger: r.trigger_kind as ReportRunRecord['trigger'],
    status: r.status as ReportRunStatus,
    attempts: r.attempts,
    intervalStartMs: r.interval_start_ms,
    intervalEndMs: r.interval_end_ms,
    notBeforeMs: r.not_before_ms,
    createdMs: r.created_ms,
    ...(r.started_ms !== null ? { startedMs: r.started_ms } : {}),
    ...(r.finished_ms !== null ? { finishedMs: r.finished_ms } : {}),
    ...(r.error !== null ? { error: r.error } : {}),
    inputs: JSON.parse(r.inputs_json) as unknown,
    ...(withResult && r.result_json !== null ? { result: JSON.parse(r.result_json) as unknown } : {}),
  };
}
