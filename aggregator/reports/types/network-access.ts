import type { FlowEndpoint, FlowRecord } from '../../../common/flow.js';
import { networkAccess, type NamespaceAccessRow, type NetworkAccessRow } from '../../compute/network-access.js';
import type { ReportDefinition } from '../globalreport.js';
import { csvFile, summaryFile, type ReportFile } from '../report-file.js';
import type { ReportKind, ReportOutput } from '../report-type.js';
import { inScope } from '../scope.js';

export interface NetworkAccessReportSummary {
  startTime: string;
  endTime: string;
  endpointSelector: string;
  namespaceNames: string[];
  namespaceSelector: string;
  serviceAccountNames: string[];
  serviceAccountSelectors: string;
  endpointsNumInScope: number;
  endpointsNumIngressProtected: number;
  endpointsNumEgressProtected: number;
  endpointsNumIngressUnprotected: number;
  endpointsNumEgressUnprotected: number;
  endpointsNumIngressFromInternet: number;
  endpointsNumEgressToInternet: number;
  endpointsNumIngressFromOtherNamespace: number;
  endpointsNumEgressToOtherNamespace: number;
}

export interface NetworkAccessReportData {
  /** The endpoints in scope. */
  endpoints: NetworkAccessRow[];
  /** The namespaces with an endpoint in scope, counted over all their endpoints. */
  namespaces: NamespaceAccessRow[];
}

function networkAccessSummary(
  def: ReportDefinition,
  endpoints: NetworkAccessRow[],
  interval: { start: string; end: string },
): NetworkAccessReportSummary {
  const count = (f: (e: NetworkAccessRow) => boolean) => endpoints.filter(f).length;
  const ep = def.spec.endpoints;
  return {
    startTime: interval.start,
    endTime: interval.end,
    endpointSelector: ep?.selector ?? '',
    namespaceNames: ep?.namespaces?.names ?? [],
    namespaceSelector: ep?.namespaces?.selector ?? '',
    serviceAccountNames: ep?.serviceAccounts?.names ?? [],
    serviceAccountSelectors: ep?.serviceAccounts?.selector ?? '',
    endpointsNumInScope: endpoints.length,
    endpointsNumIngressProtected: count((e) => e.ingressProtected === true),
    endpointsNumEgressProtected: count((e) => e.egressProtected === true),
    endpointsNumIngressUnprotected: count((e) => e.ingressProtected === false),
    endpointsNumEgressUnprotected: count((e) => e.egressProtected === false),
    endpointsNumIngressFromInternet: count((e) => e.ingressFromInternet),
    endpointsNumEgressToInternet: count((e) => e.egressToInternet),
    endpointsNumIngressFromOtherNamespace: count((e) => e.ingressFromOtherNamespaces),
    endpointsNumEgressToOtherNamespace: count((e) => e.egressToOtherNamespaces),
  };
}

/** summary.csv, endpoints.csv (protection "unobserved" where no traffic was seen) and namespaces.csv. */
function networkAccessFiles(
  summary: NetworkAccessReportSummary,
  data: NetworkAccessReportData,
): Record<string, ReportFile> {
  return {
    'summary.csv': summaryFile(summary),
    'endpoints.csv': csvFile(data.endpoints, [
      ['endpoint', (e) => e.endpoint],
      ['namespace', (e) => e.namespace],
      ['kind', (e) => e.kind],
      ['ingressProtected', (e) => e.ingressProtected ?? 'unobserved'],
      ['egressProtected', (e) => e.egressProtected ?? 'unobserved'],
      ['ingressFromInternet', (e) => e.ingressFromInternet],
      ['egressToInternet', (e) => e.egressToInternet],
      ['ingressFromOtherNamespace', (e) => e.ingressFromOtherNamespaces],
      ['egressToOtherNamespace', (e) => e.egressToOtherNamespaces],
      ['allowedIn', (e) => e.allowedIn],
      ['deniedIn', (e) => e.deniedIn],
      ['allowedOut', (e) => e.allowedOut],
      ['deniedOut', (e) => e.deniedOut],
      ['appliedPolicies', (e) => e.policies],
      ['stagedPolicies', (e) => e.stagedPolicies],
    ]),
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
  };
}

/**
 * The network-access report, as Calico Enterprise's: for the endpoints in
 * scope over the interval, from the stored flow buckets, the protection and
 * traffic flags and counts (see compute/network-access.ts for the rules).
 */
export function networkAccessReport(
  def: ReportDefinition,
  flows: FlowRecord[],
  interval: { start: string; end: string },
): ReportOutput<NetworkAccessReportSummary, NetworkAccessReportData> {
  // Scope is judged on the endpoint as last seen in the interval (its labels may have changed): the flow seen last.
  const meta = new Map<string, { e: FlowEndpoint; atMs: number }>();
  for (const f of flows)
    for (const e of [f.source, f.destination]) {
      const id = e.namespace ? `${e.namespace}/${e.name}` : e.name;
      const seen = meta.get(id);
      if (seen === undefined || f.endMs > seen.atMs) meta.set(id, { e, atMs: f.endMs });
    }
  const all = networkAccess(flows);
  const endpoints = all.endpoints.filter((e) => {
    const m = meta.get(e.endpoint);
    return m !== undefined && inScope(def, m.e);
  });
  const namespaces = new Set(endpoints.map((e) => e.namespace));
  const summary = networkAccessSummary(def, endpoints, interval);
  const data = { endpoints, namespaces: all.namespaces.filter((n) => namespaces.has(n.namespace)) };
  return { summary, data, files: networkAccessFiles(summary, data) };
}

export const networkAccessType: ReportKind<
  'network-access',
  FlowRecord[],
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
  // One record per distinct flow, summed in the store: as networkAccess over every row, at a fraction of the memory.
  load: async ({ store }, interval) =>
    store.flowTotals({ fromMs: interval.startMs, toMs: interval.endMs }, { connectionsOnly: true }),
  generate: (def, flows, interval) => networkAccessReport(def, flows, interval),
};
