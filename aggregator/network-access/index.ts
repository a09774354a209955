import { Gauge, type Registry } from 'prom-client';
import { networkAccess } from '../compute/network-access.js';
import type { Store } from '../store/index.js';
import { configuredEvidence } from './configured.js';
import { FINDING_KINDS, networkAccessEvidence, type NetworkAccessEvidence } from './evidence.js';
import { configurationSourceFor } from './source.js';

export { configuredEvidence, workloadOf, type ClusterConfiguration, type ConfiguredEndpoint } from './configured.js';
export {
  FINDING_KINDS,
  networkAccessEvidence,
  type FindingKind,
  type NetworkAccessEndpoint,
  type NetworkAccessEvidence,
  type NetworkAccessFinding,
} from './evidence.js';
export {
  clusterConfigurationSource,
  configurationSourceFor,
  snapshotConfigurationSource,
  useConfigurationSource,
  type ConfigurationSource,
} from './source.js';

const gauges = new WeakMap<Store, Gauge<'kind'>>();
const internalCidrsOf = new WeakMap<Store, readonly string[]>();

/** --internal-cidr: networks beside the private ranges that a policy net may name without reaching the internet. */
export function useInternalCidrs(store: Store, cidrs: readonly string[]): void {
  internalCidrsOf.set(store, cidrs);
}

/**
 * verdict_aggregator_network_access_findings{kind}: the findings of the latest network-access evidence computed (an
 * API answer or a report run), by kind. Bounded labels: the three kinds.
 */
export function useNetworkAccessMetrics(store: Store, registry: Registry): void {
  const g = new Gauge({
    name: 'verdict_aggregator_network_access_findings',
    help: 'Findings (configuration and observed traffic disagree) in the latest network-access evidence computed, by kind',
    labelNames: ['kind'],
    registers: [registry],
  });
  for (const kind of Object.values(FINDING_KINDS)) g.set({ kind }, 0);
  gauges.set(store, g);
}

/**
 * Network access over [fromMs, toMs): observed evidence summed in the store (one record per distinct flow, never a
 * row per bucket: Store.flowTotals), configured evidence from the configuration source registered for this store
 * (a cluster's history or a snapshot), and their cross-check.
 */
export async function networkAccessOver(
  store: Store,
  interval: { fromMs: number; toMs: number; namespace?: string },
): Promise<NetworkAccessEvidence> {
  const observed = networkAccess(await store.flowTotals(interval, { connectionsOnly: true }));
  const source = configurationSourceFor(store);
  const cfg = source ? await source.configuration(interval.fromMs, interval.toMs) : undefined;
  const evidence = networkAccessEvidence(
    observed,
    cfg
      ? configuredEvidence(cfg, interval.fromMs, interval.toMs, { internalCidrs: internalCidrsOf.get(store) ?? [] })
      : undefined,
  );
  const g = gauges.get(store);
  if (g && interval.namespace === undefined)
    for (const kind of Object.values(FINDING_KINDS))
      g.set({ kind }, evidence.findings.filter((f) => f.kind === kind).length);
  return evidence;
}
