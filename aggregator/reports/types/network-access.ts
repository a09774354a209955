import type { NamespaceAccessRow } from '../../compute/network-access.js';
import {
  networkAccessOver,
  type NetworkAccessEndpoint,
  type NetworkAccessEvidence,
  type NetworkAccessFinding,
} from '../../network-access/index.js';
import { namespaceRows } from '../../network-access/evidence.js';
import type { ReportDefinition } from '../globalreport.js';
import { csvFile, summaryFile, type Column, type ReportFile } from '../report-file.js';
import type { ReportKind, ReportOutput } from '../report-type.js';
import { inScope, scopeParameters } from '../scope.js';

/**
 * summary.csv: Calico Enterprise's columns first, in its order (tigera/operator pkg/render/compliance.go, the
 * network-access GlobalReportType template; tigera/docs compliance-reports/network-access), then Verdict's.
 */
export interface NetworkAccessReportSummary {
  startTime: string;
  endTime: string;
  endpointSelector: string;
  namespaceNames: string[];
  namespaceSelector: string;
  serviceAccountNames: string[];
  serviceAccountSelectors: string;
  /** Endpoints ingress (egress) protected throughout the interval. */
  endpointsNumIngressProtected: number;
  endpointsNumEgressProtected: number;
  /** Endpoints not protected at some point: in scope minus protected, as Calico's template computes it. */
  endpointsNumIngressUnprotected: number;
  endpointsNumEgressUnprotected: number;
  /** Endpoints whose policies allowed ingress from (egress to) the internet / another namespace at some point. */
  endpointsNumIngressFromInternet: number;
  endpointsNumEgressToInternet: number;
  endpointsNumIngressFromOtherNamespace: number;
  endpointsNumEgressToOtherNamespace: number;
  endpointsNumEnvoyEnabled: number;
  // Verdict's columns.
  endpointsNumInScope: number;
  /** Where configured evidence came from: "cluster", "snapshot DIR", or "none" (the flags are then the flows'). */
  configurationSource: string;
  /** Policy documents that could not be read (they count as absent). */
  configurationProblems: number;
  /** Configuration and traffic disagreeing (findings.csv). */
  findings: number;
}

export interface NetworkAccessReportData {
  /** The endpoints in scope. */
  endpoints: NetworkAccessEndpoint[];
  /** The namespaces with an endpoint in scope, over their in-scope endpoints. */
  namespaces: NamespaceAccessRow[];
  /** The in-scope endpoints' findings. */
  findings: NetworkAccessFinding[];
  configuration: { source: string; problems: string[] };
}

function networkAccessSummary(
  def: ReportDefinition,
  data: NetworkAccessReportData,
  interval: { start: string; end: string },
): NetworkAccessReportSummary {
  const endpoints = data.endpoints;
  const count = (f: (e: NetworkAccessEndpoint) => boolean) => endpoints.filter(f).length;
  const ingressProtected = count((e) => e.ingressProtected);
  const egressProtected = count((e) => e.egressProtected);
  return {
    startTime: interval.start,
    endTime: interval.end,
    ...scopeParameters(def),
    endpointsNumIngressProtected: ingressProtected,
    endpointsNumEgressProtected: egressProtected,
    endpointsNumIngressUnprotected: endpoints.length - ingressProtected,
    endpointsNumEgressUnprotected: endpoints.length - egressProtected,
    endpointsNumIngressFromInternet: count((e) => e.ingressFromInternet),
    endpointsNumEgressToInternet: count((e) => e.egressToInternet),
    endpointsNumIngressFromOtherNamespace: count((e) => e.ingressFromOtherNamespaces),
    endpointsNumEgressToOtherNamespace: count((e) => e.egressToOtherNamespaces),
    endpointsNumEnvoyEnabled: count((e) => e.envoyEnabled),
    endpointsNumInScope: endpoints.length,
    configurationSource: data.configuration.source,
    configurationProblems: data.configuration.problems.length,
    findings: data.findings.length,
  };
}

/**
 * endpoints.csv: Calico's columns in its template's order (services from its docs' table follows them), then
 * Verdict's: the evidence behind the flags, the observed evidence beside the configured, the traffic counts.
 */
export const ENDPOINT_COLUMNS: readonly Column<NetworkAccessEndpoint>[] = [
  ['endpoint', (e) => e.endpoint],
  ['ingressProtected', (e) => e.ingressProtected],
  ['egressProtected', (e) => e.egressProtected],
  ['ingressFromInternet', (e) => e.ingressFromInternet],
  ['egressToInternet', (e) => e.egressToInternet],
  ['ingressFromOtherNamespace', (e) => e.ingressFromOtherNamespaces],
  ['egressToOtherNamespace', (e) => e.egressToOtherNamespaces],
  ['envoyEnabled', (e) => e.envoyEnabled],
  ['appliedPolicies', (e) => e.appliedPolicies],
  ['trafficAggregationPrefix', (e) => e.trafficAggregationPrefix],
  ['endpointsGeneratingTrafficToThisEndpoint', (e) => e.endpointsGeneratingTrafficToThisEndpoint],
  ['endpointsReceivingTrafficFromThisEndpoint', (e) => e.endpointsReceivingTrafficFromThisEndpoint],
  ['services', (e) => e.services],
  // Verdict's columns.
  ['namespace', (e) => e.namespace],
  ['kind', (e) => e.kind],
  ['evidence', (e) => e.evidence],
  ['observedIngressProtected', (e) => e.observed?.ingressProtected ?? 'unobserved'],
  ['observedEgressProtected', (e) => e.observed?.egressProtected ?? 'unobserved'],
  ['observedIngressFromInternet', (e) => e.observed?.ingressFromInternet ?? false],
  ['observedEgressToInternet', (e) => e.observed?.egressToInternet ?? false],
  ['observedIngressNamespaces', (e) => e.observed?.ingressNamespaces ?? []],
  ['observedEgressNamespaces', (e) => e.observed?.egressNamespaces ?? []],
  ['allowedIn', (e) => e.allowedIn],
  ['deniedIn', (e) => e.deniedIn],
  ['allowedOut', (e) => e.allowedOut],
  ['deniedOut', (e) => e.deniedOut],
  // Allowed connections no event could say a policy decided or not (trace-only Hubble, policyUnknown): unknown,
  // neither protected nor unprotected traffic; 0 when unobserved.
  ['unknownAllowedIn', (e) => e.observed?.unknownAllowedIn ?? 0],
  ['unknownAllowedOut', (e) => e.observed?.unknownAllowedOut ?? 0],
  ['observedPolicies', (e) => e.policies],
  ['stagedPolicies', (e) => e.stagedPolicies],
  ['findings', (e) => e.findings.length],
];

function networkAccessFiles(
  summary: NetworkAccessReportSummary,
  data: NetworkAccessReportData,
): Record<string, ReportFile> {
  return {
    'summary.csv': summaryFile(summary),
    'endpoints.csv': csvFile(data.endpoints, ENDPOINT_COLUMNS),
    'namespaces.csv': csvFile(data.namespaces, [
      ['namespace', (n) => n.namespace],
      ['endpoints', (n) => n.endpoints],
      ['ingressProtected', (n) => n.ingressProtected],
      ['egressProtected', (n) => n.egressProtected],
      ['allowedIn', (n) => n.allowedIn],
      ['deniedIn', (n) => n.deniedIn],
      ['allowedOut', (n) => n.allowedOut],
      ['deniedOut', (n) => n.deniedOut],
      ['allowedPercent', (n) => n.allowedPercent ?? ''],
    ]),
    'findings.csv': csvFile(data.findings, [
      ['endpoint', (f) => f.endpoint],
      ['namespace', (f) => f.namespace],
      ['direction', (f) => f.direction],
      ['finding', (f) => f.kind],
      ['connections', (f) => f.connections],
      ['detail', (f) => f.detail],
    ]),
  };
}

/**
 * The network-access report, as Calico Enterprise's: for the endpoints in scope over the interval, the configured
 * protection and the internet / other-namespace flags (aggregator/network-access/), the traffic columns from flows,
 * and where the two disagree, findings.csv.
 */
export function networkAccessReport(
  def: ReportDefinition,
  evidence: NetworkAccessEvidence,
  interval: { start: string; end: string },
): ReportOutput<NetworkAccessReportSummary, NetworkAccessReportData> {
  const endpoints = evidence.endpoints.filter((e) => inScope(def, e));
  const data: NetworkAccessReportData = {
    endpoints,
    namespaces: namespaceRows(endpoints),
    findings: endpoints.flatMap((e) => e.findings),
    configuration: evidence.configuration,
  };
  const summary = networkAccessSummary(def, data, interval);
  return { summary, data, files: networkAccessFiles(summary, data) };
}

export const networkAccessType: ReportKind<
  'network-access',
  NetworkAccessEvidence,
  NetworkAccessReportSummary,
  NetworkAccessReportData
> = {
  name: 'network-access',
  needsCluster: false,
  evidence: {
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
  // Flows summed per distinct flow in the store (never a row per bucket in the heap), configuration from the
  // aggregator's source (a cluster's history or --cluster-snapshot).
  load: async ({ store, networkAccess }, interval) =>
    networkAccessOver(store, networkAccess, { fromMs: interval.startMs, toMs: interval.endMs }),
  generate: (def, evidence, interval) => networkAccessReport(def, evidence, interval),
};
