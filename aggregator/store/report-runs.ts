import type { ReportRunRecord, ReportRunStatus } from './types.js';

/** A report_runs row as both stores read it: times as numbers, inputs and result as the JSON text written. */
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
