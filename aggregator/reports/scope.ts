import type { FlowEndpoint } from '../../common/flow.js';
import type { ReportDefinition } from './globalreport.js';
import { rfc3339, type Column } from './report-file.js';

/**
 * Whether an endpoint is in a report's scope (spec.endpoints): the selector
 * over its labels, the namespace by name or selector, the service account by
 * name or selector — every part given must hold. Calico's pseudo labels
 * (projectcalico.org/namespace, projectcalico.org/serviceaccount,
 * projectcalico.org/orchestrator) are there for selectors that use them.
 * Namespaces and service accounts are known here by name only, so their
 * selectors see the labels Kubernetes and Calico always set on them.
 */
export function inScope(
  def: ReportDefinition,
  e: Pick<FlowEndpoint, 'namespace' | 'labels' | 'serviceAccount'>,
): boolean {
  const ep = def.spec.endpoints;
  if (!ep) return true;
  const labels = Object.fromEntries(e.labels.map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
  if (e.namespace) labels['projectcalico.org/namespace'] = e.namespace;
  if (e.serviceAccount) labels['projectcalico.org/serviceaccount'] = e.serviceAccount;
  labels['projectcalico.org/orchestrator'] = 'k8s';
  if (def.selectors.endpoints && !def.selectors.endpoints.matches(labels)) return false;
  if (ep.namespaces?.names && !ep.namespaces.names.includes(e.namespace)) return false;
  if (
    def.selectors.namespaces &&
    !def.selectors.namespaces.matches({
      'kubernetes.io/metadata.name': e.namespace,
      'projectcalico.org/name': e.namespace,
    })
  )
    return false;
  if (ep.serviceAccounts?.names && !ep.serviceAccounts.names.includes(e.serviceAccount)) return false;
  if (
    def.selectors.serviceAccounts &&
    !def.selectors.serviceAccounts.matches({ 'projectcalico.org/name': e.serviceAccount })
  )
    return false;
  return true;
}

/**
 * The report's scope as Calico Enterprise's summary.csv prints it (tigera/operator
 * pkg/render/compliance.go, the inventory, network-access and policy-audit
 * templates): the selectors as written, name lists joined with ";" by the
 * CSV writer, empty where the spec leaves a part out.
 */
export function scopeParameters(def: ReportDefinition): {
  endpointSelector: string;
  namespaceNames: string[];
  namespaceSelector: string;
  serviceAccountNames: string[];
  serviceAccountSelectors: string;
} {
  const ep = def.spec.endpoints;
  return {
    endpointSelector: ep?.selector ?? '',
    namespaceNames: ep?.namespaces?.names ?? [],
    namespaceSelector: ep?.namespaces?.selector ?? '',
    serviceAccountNames: ep?.serviceAccounts?.names ?? [],
    serviceAccountSelectors: ep?.serviceAccounts?.selector ?? '',
  };
}

/**
 * The columns Calico's summary.csv of a scoped report (inventory, policy-audit) opens with: the interval, then the
 * report's scope parameters (scopeParameters).
 */
export function scopeSummaryColumns<S extends { startTime: string; endTime: string }>(
  def: ReportDefinition,
): Column<S>[] {
  const scope = scopeParameters(def);
  return [
    ['startTime', (s) => rfc3339(s.startTime)],
    ['endTime', (s) => rfc3339(s.endTime)],
    ['endpointSelector', () => scope.endpointSelector],
    ['namespaceNames', () => scope.namespaceNames],
    ['namespaceSelector', () => scope.namespaceSelector],
    ['serviceAccountNames', () => scope.serviceAccountNames],
    ['serviceAccountSelectors', () => scope.serviceAccountSelectors],
  ];
}
