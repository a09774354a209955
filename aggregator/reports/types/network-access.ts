import type { FlowEndpoint, FlowRecord } from '../../../common/flow.js';
import { networkAccess } from '../../compute/network-access.js';
import type { ReportDefinition } from '../globalreport.js';
import type { ReportFile } from '../result.js';
import { inScope } from '../scope.js';

/**
 * The network-access report, as Calico Enterprise's: for the endpoints in
 * scope over the interval, from the stored flow buckets, the protection and
 * traffic flags and counts (see compute/network-access.ts for the rules).
 */
export function networkAccessReport(
  def: ReportDefinition,
  flows: FlowRecord[],
  interval: { start: string; end: string },
) {
  const meta = new Map<string, FlowEndpoint>();
  for (const f of flows)
    for (const e of [f.source, f.destination]) meta.set(e.namespace ? `${e.namespace}/${e.name}` : e.name, e);
  const all = networkAccess(flows);
  const endpoints = all.endpoints.filter((e) => {
    const m = meta.get(e.endpoint);
    return m !== undefined && inScope(def, m);
  });
  const count = (f: (e: (typeof endpoints)[number]) => boolean) => endpoints.filter(f).length;
  const ep = def.spec.endpoints;
  const summary = {
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
  const namespaces = new Set(endpoints.map((e) => e.namespace));
  const files: Record<string, ReportFile> = {
    'summary.csv': { header: Object.keys(summary), rows: [Object.values(summary)] },
    'endpoints.csv': {
      header: [
        'endpoint',
        'namespace',
        'kind',
        'ingressProtected',
        'egressProtected',
        'ingressFromInternet',
        'egressToInternet',
        'ingressFromOtherNamespace',
        'egressToOtherNamespace',
        'allowedIn',
        'deniedIn',
        'allowedOut',
        'deniedOut',
        'appliedPolicies',
        'stagedPolicies',
      ],
      rows: endpoints.map((e) => [
        e.endpoint,
        e.namespace,
        e.kind,
        e.ingressProtected ?? 'unobserved',
        e.egressProtected ?? 'unobserved',
        e.ingressFromInternet,
        e.egressToInternet,
        e.ingressFromOtherNamespaces,
        e.egressToOtherNamespaces,
        e.allowedIn,
        e.deniedIn,
        e.allowedOut,
        e.deniedOut,
        e.policies,
        e.stagedPolicies,
      ]),
    },
    'namespaces.csv': {
      header: [
        'namespace',
        'endpoints',
        'ingressProtected',
        'egressProtected',
        'allowedIn',
        'deniedIn',
        'allowedOut',
        'deniedOut',
        'allowedPercent',
      ],
      rows: all.namespaces
        .filter((n) => namespaces.has(n.namespace))
        .map((n) => [
          n.namespace,
          n.endpoints,
          n.ingressProtected,
          n.egressProtected,
          n.allowedIn,
          n.deniedIn,
          n.allowedOut,
          n.deniedOut,
          n.allowedPercent ?? '',
        ]),
    },
  };
  return { summary, data: { endpoints, namespaces: all.namespaces.filter((n) => namespaces.has(n.namespace)) }, files };
}
