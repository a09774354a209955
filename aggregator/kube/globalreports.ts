import type { Logger } from 'pino';
import type { KubeClient } from '../../common/kube-client.js';
import { AGGREGATOR_DEFAULTS_TABLE } from '../defaults.js';
import { toDefinition, VERDICT_API_VERSION } from '../reports/globalreport.js';
import type { ReportRegistry } from '../reports/registry.js';
import { reportStatus } from '../reports/scheduler.js';
import type { Store } from '../store/index.js';
import { ResourceWatch, type KubeStoreComponentOptions } from './watch.js';

export interface ClusterReportsOptions extends KubeStoreComponentOptions {
  /** Where watched GlobalReports go (source "cluster"). */
  registry: ReportRegistry;
  /** Runs read per report for its status. */
  recentRuns?: number;
}

const GLOBALREPORTS_PATH = '/apis/compliance.verdict.dev/v1/globalreports';

/**
 * GlobalReports from the cluster: watched into the registry (an invalid one is
 * kept with its reason; the others run), and their status written to the
 * status subresource — lastScheduledReportJob, activeReportJobs, the last 3
 * failed and last 2 successful jobs — whenever it changed (by the leader only).
 */
export class ClusterReports {
  private readonly watch: ResourceWatch;
  private readonly written = new Map<string, string>();
  private readonly kube: KubeClient;
  private readonly registry: ReportRegistry;
  private readonly store: Store;
  private readonly log: Logger;
  private readonly recentRuns: number;

  constructor({
    kube,
    registry,
    store,
    log,
    recentRuns = AGGREGATOR_DEFAULTS_TABLE.scheduler.recentRunsPerReport,
  }: ClusterReportsOptions) {
    this.kube = kube;
    this.registry = registry;
    this.store = store;
    this.log = log;
    this.recentRuns = recentRuns;
    this.watch = new ResourceWatch({
      kube,
      path: GLOBALREPORTS_PATH,
      log: log.child({ resource: 'globalreports' }),
      onChange: (items) =>
        registry.setSource(
          'cluster',
          items.map((o) => toDefinition(o, 'cluster')),
        ),
    });
  }

  start(): void {
    this.watch.start();
  }

  stop(): void {
    this.watch.stop();
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
      if (def.origin !== 'cluster') continue;
      wanted.push([def.name, { ...reportStatus(await this.store.reportRuns(def.name, this.recentRuns)), error: null }]);
    }
    // An invalid GlobalReport gets the reason in its status (kubectl get shows why it does not run).
    for (const bad of this.registry.errors())
      if (bad.origin === 'cluster') wanted.push([bad.name, { error: bad.error }]);
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
