import * as grpc from '@grpc/grpc-js';
import { pino, type Logger } from 'pino';
import { VERDICT_VERSION } from '../common/version.js';
import { readSecretFile, splitAddress, type AggregatorConfig } from './config.js';
import { buildHttpApp, type App } from './http/app.js';
import { LoopbackOnly, MutualTls, SharedToken, type AgentAuthenticator } from './ingest/auth.js';
import { DEFAULT_INGEST_OPTIONS, IngestServer } from './ingest/server.js';
import { AggregatorMetrics } from './metrics.js';
import { openStore, type Store } from './store/index.js';
import { LoopbackReaders, StaticTokenReaders, type HttpAuthorizer } from './http/access.js';
import { ReportRegistry } from './reports/registry.js';
import { DEFAULT_SCHEDULER_OPTIONS, ReportScheduler } from './reports/scheduler.js';
import { reportRunner } from './reports/runner.js';
import { PostgresLeader } from './reports/leader.js';
import { inClusterConnection, KubeClient, kubeconfigConnection } from '../common/kube-client.js';
import { RbacReaders, ServiceAccountAgents } from './kube/auth.js';
import { TokenReviewer } from './kube/reviews.js';
import { KubeLease } from './kube/lease.js';
import { ClusterReports } from './kube/globalreports.js';
import { kubeInventory } from './kube/inventory.js';
import { PolicyHistory } from './kube/policy-history.js';
import { NodeLifecycle } from './kube/nodes.js';
import { PodHistory } from './kube/pods.js';
import { noteNewPolicyEvents } from './reports/policy-events.js';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';

export interface RunningAggregator {
  httpPort: number;
  grpcPort: number;
  store: Store;
  app: App;
  scheduler: ReportScheduler;
  registry: ReportRegistry;
  /** Shut down in order: HTTP and gRPC stop accepting, streams end, the store closes. */
  close(): Promise<void>;
}

/** Start the aggregator from a validated config. */
export async function startAggregator(
  config: AggregatorConfig,
  log: Logger = pino({ level: config.logLevel, base: { program: 'verdict-aggregator' } }),
): Promise<RunningAggregator> {
  const store = await openStore(config.db);
  // One replica owns the SQLite file: no agent stream survives a restart.
  if (store.kind === 'sqlite') await store.markAllDisconnected();
  const metrics = new AggregatorMetrics(store);

  let auth: AgentAuthenticator = new LoopbackOnly();
  let credentials = grpc.ServerCredentials.createInsecure();
  if (config.tls) {
    const ca = Buffer.from(readSecretFile(config.tls.ca, 'the TLS CA'));
    credentials = grpc.ServerCredentials.createSsl(
      ca,
      [
        {
          cert_chain: Buffer.from(readSecretFile(config.tls.cert, 'the TLS certificate')),
          private_key: Buffer.from(readSecretFile(config.tls.key, 'the TLS key')),
        },
      ],
      true,
    );
    auth = new MutualTls();
  }
  if (config.agentTokenFile) auth = new SharedToken(readSecretFile(config.agentTokenFile, 'the agent token file'));
  // In a cluster: agents by TokenReview (bound to their node), readers by SubjectAccessReview.
  const kubeConn = config.kubeconfig ? kubeconfigConnection(config.kubeconfig) : inClusterConnection();
  const kube = kubeConn ? new KubeClient(kubeConn) : undefined;
  const reviewer = kube ? new TokenReviewer(kube) : undefined;
  if (kube && reviewer && !config.agentTokenFile && !config.tls)
    auth = new ServiceAccountAgents(kube, reviewer, config.agentServiceAccount);

  const ingest = new IngestServer(store, metrics, auth, log.child({ component: 'ingest' }), {
    ...DEFAULT_INGEST_OPTIONS,
    maxMessageBytes: config.maxMessageBytes,
  });
  const g = splitAddress(config.grpcAddress);
  const grpcPort = await ingest.listen(`${g.host.includes(':') ? `[${g.host}]` : g.host}:${g.port}`, credentials);

  const authorizer: HttpAuthorizer = config.httpTokensFile
    ? new StaticTokenReaders(config.httpTokensFile)
    : kube && reviewer
      ? new RbacReaders(kube, reviewer)
      : new LoopbackReaders();
  const registry = new ReportRegistry(log.child({ component: 'reports' }));
  if (config.reportsDir) registry.loadDir(config.reportsDir);
  const clusterReports = kube
    ? new ClusterReports(kube, registry, store, log.child({ component: 'globalreports' }))
    : undefined;
  clusterReports?.start();
  const tamper = { namespaces: config.protectedNamespaces, tiers: config.protectedTiers };
  const policyHistory = kube
    ? new PolicyHistory(kube, store, log.child({ component: 'policy-history' }), Date.now, (fresh) =>
        noteNewPolicyEvents(store, metrics, tamper, log.child({ component: 'policy-history' }), fresh),
      )
    : undefined;
  policyHistory?.start();
  const nodeLifecycle = kube ? new NodeLifecycle(kube, store, log.child({ component: 'nodes' })) : undefined;
  nodeLifecycle?.start();
  const podHistory = kube ? new PodHistory(kube, store, log.child({ component: 'pod-history' })) : undefined;
  podHistory?.start();

  // One scheduler among replicas: a Lease in a cluster, an advisory lock on a shared PostgreSQL without one.
  const pgLeader =
    !kube && store.kind === 'postgres' ? new PostgresLeader(config.db, log.child({ component: 'leader' })) : undefined;
  const lease = kube
    ? new KubeLease(
        kube,
        process.env.POD_NAMESPACE ?? readNamespace() ?? 'verdict',
        'verdict-report-scheduler',
        process.env.POD_NAME ?? hostname(),
        log.child({ component: 'leader' }),
      )
    : undefined;
  const leader = lease ?? pgLeader;
  const scheduler = new ReportScheduler(
    store,
    registry,
    reportRunner(store, Date.now, kube ? kubeInventory(kube, store) : undefined),
    leader ? () => leader.isLeader() : async () => true,
    {
      runFinished(report, result, atMs) {
        metrics.reportRuns.inc({ report, result });
        if (result === 'succeeded') metrics.reportLastSuccess.set({ report }, atMs / 1000);
        // Only the leader runs jobs, so it may write the status right away.
        void clusterReports?.syncStatus();
      },
    },
    log.child({ component: 'scheduler' }),
    {
      ...DEFAULT_SCHEDULER_OPTIONS,
      now: Date.now,
      startDelayMs: config.reportStartDelayMs,
      staleRunMs: store.kind === 'postgres' ? config.reportTakeoverAfterMs : 0,
    },
  );
  scheduler.start();
  // Report series exist from the start (a first failure shows as an increase from 0), and
  // the next scheduled run is exported so an alert can say "overdue" exactly.
  metrics.trackReports(() => registry.all(), config.reportStartDelayMs);
  // The last success of each report survives restarts: read it from the archive.
  for (const def of registry.all()) {
    const last = (await store.reportRuns(def.name, 100))
      .filter((r) => r.status === 'succeeded' && r.finishedMs)
      .sort((a, b) => (b.finishedMs ?? 0) - (a.finishedMs ?? 0))[0];
    if (last?.finishedMs) metrics.reportLastSuccess.set({ report: def.name }, last.finishedMs / 1000);
  }
  const reloadTimer = config.reportsDir
    ? setInterval(() => registry.loadDir(config.reportsDir as string), 5000)
    : undefined;
  reloadTimer?.unref();
  const statusTimer = clusterReports
    ? setInterval(() => {
        void (async () => {
          if (await (leader?.isLeader() ?? Promise.resolve(true))) await clusterReports.syncStatus();
        })().catch((err: unknown) => log.warn({ err }, 'status sync round failed'));
      }, 15_000)
    : undefined;
  statusTimer?.unref();

  const app = await buildHttpApp({
    store,
    metrics,
    log: log.child({ component: 'http' }),
    authorizer,
    reports: { registry, scheduler },
    tamper,
  });
  const h = splitAddress(config.httpAddress);
  await app.listen({ host: h.host, port: h.port });
  const address = app.server.address();
  const httpPort = typeof address === 'object' && address ? address.port : h.port;

  // Retention runs through the store like every other write; runs never overlap.
  let compacting = false;
  const compact = async () => {
    if (compacting) return;
    compacting = true;
    try {
      const now = Date.now();
      const r = await store.compactFlows(now - config.flowRollupAfterMs, now - config.flowRetentionMs);
      const audits = await store.deleteAuditEventsBefore(now - config.auditRetentionMs);
      if (audits > 0) log.info({ deleted: audits }, 'audit events past retention deleted');
      if (r.rolledUp > 0) metrics.flowsCompacted.inc({ what: 'rolled_up' }, r.rolledUp);
      if (r.deleted > 0) metrics.flowsCompacted.inc({ what: 'deleted' }, r.deleted);
      if (r.rolledUp + r.deleted > 0) log.info(r, 'flow buckets compacted');
    } catch (err) {
      log.error({ err }, 'flow retention failed; will retry');
    } finally {
      compacting = false;
    }
  };
  const retentionTimer = setInterval(() => void compact(), 10 * 60_000);
  retentionTimer.unref();
  void compact();

  log.info(
    {
      version: VERDICT_VERSION,
      kubernetes: kube?.connection.describe ?? 'none',
      readers: authorizer.description,
      flowRollupAfterMs: config.flowRollupAfterMs,
      flowRetentionMs: config.flowRetentionMs,
      http: `${h.host}:${httpPort}`,
      grpc: `${g.host}:${grpcPort}`,
      store: store.kind,
      agentAuth: auth.description,
      maxMessageBytes: config.maxMessageBytes,
    },
    'verdict-aggregator started',
  );
  if (auth instanceof LoopbackOnly) log.warn(auth.description);
  if (authorizer instanceof LoopbackReaders) log.warn(authorizer.description);

  return {
    httpPort,
    grpcPort,
    store,
    app,
    scheduler,
    registry,
    async close() {
      clearInterval(retentionTimer);
      clearInterval(reloadTimer);
      clearInterval(statusTimer);
      clusterReports?.stop();
      policyHistory?.stop();
      nodeLifecycle?.stop();
      podHistory?.stop();
      await policyHistory?.flush();
      await app.close();
      await scheduler.stop();
      await pgLeader?.close();
      await kube?.close();
      await ingest.close();
      await store.close();
    },
  };
}

/** The namespace this pod runs in, from its service-account mount. */
function readNamespace(): string | undefined {
  try {
    return readFileSync('/var/run/secrets/kubernetes.io/serviceaccount/namespace', 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}
