import { networkAccess } from '../compute/network-access.js';
import type { Store } from '../store/index.js';
import { configuredEvidenceOf } from './configured.js';
import type { NetworkAccessConfig } from './config.js';
import { FINDING_KINDS, networkAccessEvidence, type NetworkAccessEvidence } from './evidence.js';

export { networkAccessFindingsGauge, type NetworkAccessConfig } from './config.js';
export {
  configuredEvidence,
  configuredEvidenceOf,
  workloadOf,
  type ClusterConfiguration,
  type ClusterPod,
  type ConfiguredEndpoint,
  type PodVersion,
} from './configured.js';
export {
  FINDING_KINDS,
  networkAccessEvidence,
  type FindingKind,
  type NetworkAccessEndpoint,
  type NetworkAccessEvidence,
  type NetworkAccessFinding,
} from './evidence.js';
export { clusterConfigurationSource, snapshotConfigurationSource, type ConfigurationSource } from './source.js';

/**
 * Network access over [fromMs, toMs): observed evidence summed in the store (one record per distinct flow, never a
 * row per bucket: Store.flowTotals), configured evidence from the configuration's source (a cluster's history or a
 * snapshot; none without one), and their cross-check.
 */
export async function networkAccessOver(
  store: Store,
  config: NetworkAccessConfig | undefined,
  interval: { fromMs: number; toMs: number; namespace?: string },
): Promise<NetworkAccessEvidence> {
  const observed = networkAccess(await store.flowTotals(interval, { connectionsOnly: true }));
  const source = config?.source;
  const cfg = source ? await source.configuration(interval.fromMs, interval.toMs) : undefined;
  const configured = cfg
    ? await configuredEvidenceOf(cfg, interval.fromMs, interval.toMs, { internalCidrs: config?.internalCidrs ?? [] })
    : undefined;
  const evidence = networkAccessEvidence(observed, configured);
  const g = config?.findings;
  if (g && interval.namespace === undefined)
    for (const kind of Object.values(FINDING_KINDS))
      g.set({ kind }, evidence.findings.filter((f) => f.kind === kind).length);
  return evidence;
}
