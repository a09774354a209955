import type { ReportType as ReportTypeName } from './globalreport.js';
import type { ReportKind } from './report-type.js';
import { cisBenchmarkType } from './types/cis-benchmark.js';
import { inventoryType } from './types/inventory.js';
import { networkAccessType } from './types/network-access.js';
import { policyAuditType } from './types/policy-audit.js';

const KINDS = {
  'cis-benchmark': cisBenchmarkType,
  'network-access': networkAccessType,
  inventory: inventoryType,
  'policy-audit': policyAuditType,
} as const satisfies { [K in ReportTypeName]: { name: K } };
type Kinds = typeof KINDS;

/** Each report type's input, summary and data types. */
export type ReportTypeIO = {
  [K in ReportTypeName]: Kinds[K] extends ReportKind<K, infer Input, infer Summary, infer Data>
    ? { input: Input; summary: Summary; data: Data }
    : never;
};

/** A report type's ReportKind, with its own input, summary and data. */
export type ReportKindOf<K extends ReportTypeName> = ReportKind<
  K,
  ReportTypeIO[K]['input'],
  ReportTypeIO[K]['summary'],
  ReportTypeIO[K]['data']
>;

/**
 * Every report type, by its spec.reportType: the one table the runner
 * dispatches through. Each entry is a ReportKind (report-type.ts): where its
 * inputs come from, whether it needs the cluster, its evidence annex, and the
 * pure generator of its typed summary, data and CSV files.
 */
export const REPORT_TYPES: { [K in ReportTypeName]: ReportKindOf<K> } = KINDS;
