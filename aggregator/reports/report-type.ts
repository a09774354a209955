import type { NetworkAccessConfig } from '../network-access/config.js';
import type { Store } from '../store/index.js';
import type { ReportDefinition, ReportType as ReportTypeName } from './globalreport.js';
import type { InventorySnapshot } from './inventory-snapshot.js';
import type { ReportFile } from './report-file.js';
import { AGGREGATOR_ERRORS, aggregatorError } from '../errors.js';

/** The interval a run covers, as ISO-8601 times (what reports print) and epoch milliseconds (what the store reads). */
export interface ReportInterval {
  start: string;
  end: string;
  startMs: number;
  endMs: number;
}

/** What the cluster can tell a report; there only when the aggregator runs in a cluster or has a kubeconfig. */
export interface ClusterSource {
  inventory(fromMs: number, toMs: number): Promise<InventorySnapshot>;
}

/** Where a report type reads its inputs. */
export interface ReportSources {
  store: Store;
  cluster?: ClusterSource;
  /** Network access's configuration source, --internal-cidr and findings gauge (absent: observed evidence only). */
  networkAccess?: NetworkAccessConfig;
}

/** Which control frameworks a report is evidence for, and how. */
export interface EvidenceAnnex {
  soc2: { criterion: string; how: string }[];
  pciDss: { requirement: string; how: string }[];
}

/** What a report type makes of its inputs: the headline numbers, the typed detail, and the CSV files. */
export interface ReportOutput<Summary, Data> {
  /** The headline numbers (also summary.csv / total-summary.csv). */
  summary: Summary;
  /** The detail. */
  data: Data;
  /** Downloadable CSV files by name; the first is the default. */
  files: Record<string, ReportFile>;
  /**
   * Files that are one JSON document each, by base name: `events` downloads as events.json and events.yaml (Calico's
   * policy-audit files). Kept apart from the CSV files, so every entry of `files` stays a table.
   */
  documents?: Record<string, unknown>;
}

/**
 * One report type (GlobalReport spec.reportType): where its inputs come from
 * and the pure function that turns them into its output. The runner knows
 * nothing else about a type; adding one is adding one of these to
 * report-types.ts.
 */
export interface ReportKind<Name extends ReportTypeName, Input, Summary, Data> {
  name: Name;
  /** It reads the cluster (sources.cluster), so it cannot run from the store alone. */
  needsCluster: boolean;
  /** What it reads in the cluster, for the error a run without cluster access fails with. */
  clusterReads?: string;
  /** The SOC 2 criteria and PCI DSS requirements it is evidence for, so an auditor sees why it is in the binder. */
  evidence: EvidenceAnnex;
  /** Read the inputs for one run's interval. */
  load(sources: ReportSources, interval: ReportInterval): Promise<Input>;
  /** The report from its inputs: pure, the same inputs give the same output. */
  generate(def: ReportDefinition, input: Input, interval: ReportInterval): ReportOutput<Summary, Data>;
}

/** The cluster source, or the error a report type that needs one fails with when the aggregator has none. */
export function requireCluster(kind: { name: string; clusterReads?: string }, sources: ReportSources): ClusterSource {
  if (sources.cluster) return sources.cluster;
  throw aggregatorError(
    AGGREGATOR_ERRORS.reportUnsupported,
    `${kind.name} reports read ${kind.clusterReads ?? 'the cluster'}; run the aggregator in a cluster, give it --kubeconfig, or --cluster-snapshot DIR for an offline copy`,
  );
}
