import type { ReportType } from './globalreport.js';

/** A CSV file of a run: its columns and rows. */
export interface ReportFile {
  header: string[];
  rows: unknown[][];
}

/** Which control frameworks a report is evidence for, and how. */
export interface EvidenceAnnex {
  soc2: { criterion: string; how: string }[];
  pciDss: { requirement: string; how: string }[];
}

/** What a run produces; archived as is and never changed. */
export interface ReportResult {
  report: string;
  reportType: ReportType;
  startTime: string;
  endTime: string;
  generatedAt: string;
  /** The headline numbers (also summary.csv / total-summary.csv). */
  summary: Record<string, unknown>;
  /** The detail, per report type. */
  data: unknown;
  /** Downloadable CSV files by name; the first is the default. */
  files: Record<string, ReportFile>;
  evidence: EvidenceAnnex;
}

/**
 * The SOC 2 common criteria and PCI DSS v4.0 requirements each report type
 * supports, so an auditor sees why it is in the evidence binder.
 */
export const EVIDENCE: Record<ReportType, EvidenceAnnex> = {
  'cis-benchmark': {
    soc2: [
      {
        criterion: 'CC6.1',
        how: 'node configuration hardened against the CIS Kubernetes Benchmark (logical access security)',
      },
      { criterion: 'CC7.2', how: 'continuous monitoring of node configuration for deviations' },
      { criterion: 'CC8.1', how: 'configuration changes on nodes are detected and scored' },
    ],
    pciDss: [
      { requirement: '2.2.1', how: 'configuration standards (CIS) applied to system components' },
      { requirement: '2.2.6', how: 'system security parameters configured to prevent misuse' },
      { requirement: '11.5.2', how: 'changes to critical configuration files are detected' },
    ],
  },
  'network-access': {
    soc2: [
      { criterion: 'CC6.1', how: 'network access to workloads restricted by policy' },
      { criterion: 'CC6.6', how: 'traffic from outside the system boundary (internet) identified and controlled' },
      { criterion: 'CC7.2', how: 'allowed and denied connections monitored per endpoint' },
    ],
    pciDss: [
      { requirement: '1.2.1', how: 'network security control rules in force, per endpoint' },
      { requirement: '1.3.1', how: 'inbound traffic to the cardholder data environment restricted' },
      { requirement: '1.4.1', how: 'connections between trusted and untrusted networks controlled' },
    ],
  },
  inventory: {
    soc2: [
      { criterion: 'CC6.1', how: 'inventory of workloads and the policies that select them' },
      { criterion: 'CC6.6', how: 'boundary protection coverage per namespace' },
    ],
    pciDss: [
      { requirement: '1.2.4', how: 'an accurate inventory of system components and their network controls' },
      { requirement: '12.5.1', how: 'inventory of system components in scope' },
    ],
  },
  'policy-audit': {
    soc2: [
      { criterion: 'CC8.1', how: 'every change to network policy, who made it and the diff' },
      { criterion: 'CC7.2', how: 'changes to protected policy raise tamper alerts' },
    ],
    pciDss: [
      { requirement: '1.2.2', how: 'changes to network security controls are tracked' },
      { requirement: '10.2.1', how: 'audit logs capture changes to security controls' },
      { requirement: '11.5.2', how: 'unauthorized changes to critical configuration are detected' },
    ],
  },
};
