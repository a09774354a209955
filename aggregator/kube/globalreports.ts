import type { Logger } from 'pino';
import type { KubeClient } from '../../common/kube-client.js';
import { toDefinition, VERDICT_API_VERSION } from '../reports/globalreport.js';
import type { ReportRegistry } from '../reports/registry.js';
import { reportStatus } from '../reports/scheduler.js';
import type { Store } from '../store/index.js';
import { ResourceWatch } from './watch.js';

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

  constructor(
    private readonly kube: KubeClient,
    private readonly registry: ReportRegistry,
    private readonly store: Store,
    private readonly log: Logger,
  ) {
    this.watch = new ResourceWatch(
      kube,
      GLOBALREPORTS_PATH,
      (items) =>
        registry.setSource(
          'cluster',
          items.map((o) => toDefinition(o, 'cluster')),
        ),
      log.child({ resource: 'globalreports' }),
    );
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
      wanted.push([def.name, { ...reportStatus(await this.store.reportRuns(def.name, 100)), error: null }]);
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
