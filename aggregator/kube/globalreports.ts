import type { Logger } from 'pino';
import type { KubeClient } from '../../common/kube-client.js';
import { AGGREGATOR_DEFAULTS_TABLE } from '../defaults.js';
import { CALICO_API_VERSION, toDefinition, VERDICT_API_VERSION } from '../reports/globalreport.js';
import { CLUSTER_ORIGINS, type ReportRegistry } from '../reports/registry.js';
import { reportStatus } from '../reports/scheduler.js';
import type { Store } from '../store/index.js';
import { ResourceWatch, type KubeStoreComponentOptions } from './watch.js';

export interface ClusterReportsOptions extends KubeStoreComponentOptions {
  /** Where watched GlobalReports go (source "cluster"). */
  registry: ReportRegistry;
  /** Runs read per report for its status. */
  recentRuns?: number;
  /** PEM of --signing-key's public key: published in every report's status, so an auditor reads it from the cluster. */
  signingPublicKey?: string;
}

const GLOBALREPORTS_PATH = '/apis/compliance.verdict.dev/v1/globalreports';
/** Calico Enterprise's GlobalReports (its API server's group); a 404 until that API is installed. */
export const CALICO_GLOBALREPORTS_PATH = '/apis/projectcalico.org/v3/globalreports';

/**
 * GlobalReports from the cluster: Verdict's own and, where Calico Enterprise's
 * API is installed, its projectcalico.org/v3 ones (unchanged, as the README
 * promises), each watched into the registry under its own origin (an invalid
 * one is kept with its reason; the others run). Calico's resource is found by
 * listing it: ResourceWatch takes a 404 as "not installed", says so once and
 * tries again slowly, so a Calico installed later is picked up. Status —
 * lastScheduledReportJob, activeReportJobs, the last 3 failed and last 2
 * successful jobs — is written to Verdict's resources whenever it changed (by
 * the leader only); Calico's own controller owns the status of its resources,
 * so theirs is served by the HTTP API only.
 */
export class ClusterReports {
  private readonly watch: ResourceWatch;
  private readonly calicoWatch: ResourceWatch;
  private readonly written = new Map<string, string>();
  private readonly kube: KubeClient;
  private readonly registry: ReportRegistry;
  private readonly store: Store;
  private readonly log: Logger;
  private readonly recentRuns: number;
  private readonly signingPublicKey: string | undefined;

  constructor({
    kube,
    registry,
    store,
    log,
    recentRuns = AGGREGATOR_DEFAULTS_TABLE.scheduler.recentRunsPerReport,
    signingPublicKey,
  }: ClusterReportsOptions) {
    this.signingPublicKey = signingPublicKey;
    this.kube = kube;
    this.registry = registry;
    this.store = store;
    this.log = log;
    this.recentRuns = recentRuns;
    const watchInto = (path: string, apiVersion: string, origin: string, resource: string) =>
      new ResourceWatch({
        kube,
        path,
        log: log.child({ resource }),
        // A list's items may leave out apiVersion and kind; the path says what they are.
        onChange: (items) =>
          registry.setSource(
            origin,
            items.map((o) => toDefinition({ apiVersion, kind: 'GlobalReport', ...o }, origin)),
          ),
      });
    this.watch = watchInto(GLOBALREPORTS_PATH, VERDICT_API_VERSION, CLUSTER_ORIGINS.verdict, 'globalreports');
    this.calicoWatch = watchInto(
      CALICO_GLOBALREPORTS_PATH,
      CALICO_API_VERSION,
      CLUSTER_ORIGINS.calico,
      'globalreports.projectcalico.org',
    );
    // With the API server at hand, reports that read the cluster (inventory) can run.
    registry.allowClusterReads('the cluster');
  }

  start(): void {
    this.watch.start();
    this.calicoWatch.start();
  }

  stop(): void {
    this.watch.stop();
    this.calicoWatch.stop();
  }

  /** Write changed statuses (call on the leader after scheduling rounds). */
  async syncStatus(): Promise<void> {
    try {
      await this.sync();
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'cannot compute GlobalReport status; will retry');
    }
  }

  private async sync(): Promise<void> {
    const wanted: [string, Record<string, unknown>][] = [];
    for (const def of this.registry.all()) {
      if (def.origin !== CLUSTER_ORIGINS.verdict) continue;
      const status = reportStatus(await this.store.reportRuns(def.name, this.recentRuns));
      const key = this.signingPublicKey ? { signingPublicKey: this.signingPublicKey } : {};
      wanted.push([def.name, { ...status, ...key, error: null }]);
    }
    // An invalid GlobalReport gets the reason in its status (kubectl get shows why it does not run).
    for (const bad of this.registry.errors())
      if (bad.origin === CLUSTER_ORIGINS.verdict) wanted.push([bad.name, { error: bad.error }]);
    for (const [name, status] of wanted) {
      const def = { name };
      const body = JSON.stringify(status);
      if (this.written.get(def.name) === body) continue;
      try {
        await this.kube.call(
          'PATCH',
          `${GLOBALREPORTS_PATH}/${encodeURIComponent(def.name)}/status`,
          { apiVersion: VERDICT_API_VERSION, kind: 'GlobalReport', status },
          'application/merge-patch+json',
        );
        this.written.set(def.name, body);
      } catch (err) {
        this.log.warn({ report: def.name, err: (err as Error).message }, 'cannot write GlobalReport status');
      }
    }
  }
}
