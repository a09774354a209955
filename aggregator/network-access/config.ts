import { Gauge, type Registry } from 'prom-client';
import { FINDING_KINDS } from './evidence.js';
import type { ConfigurationSource } from './source.js';

/**
 * What network access needs beside the store, handed explicitly to the routes (HttpDeps.networkAccess) and the
 * report (ReportSources.networkAccess): main.ts makes one at start-up.
 */
export interface NetworkAccessConfig {
  /** Where configured evidence reads endpoints and policies (a cluster's history or a snapshot); absent: none. */
  source?: ConfigurationSource;
  /** --internal-cidr: networks beside the private ranges that a policy net may name without reaching the internet. */
  internalCidrs: readonly string[];
  /** verdict_aggregator_network_access_findings, set by each cluster-wide computation; absent: not exported. */
  findings?: Gauge<'kind'>;
}

/**
 * verdict_aggregator_network_access_findings{kind}: the findings of the latest network-access evidence computed (an
 * API answer or a report run), by kind. Bounded labels: the three kinds.
 */
export function networkAccessFindingsGauge(registry: Registry): Gauge<'kind'> {
  const g = new Gauge({
    name: 'verdict_aggregator_network_access_findings',
    help: 'Findings (configuration and observed traffic disagree) in the latest network-access evidence computed, by kind',
    labelNames: ['kind'],
    registers: [registry],
  });
  for (const kind of Object.values(FINDING_KINDS)) g.set({ kind }, 0);
  return g;
}
