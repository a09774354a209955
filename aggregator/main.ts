import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { processLogger } from '../common/process-log.js';
import { listenFailure } from '../common/cli-failure.js';
import { checkTlsMaterial } from '../common/mutual-tls.js';
import { inClusterConnection, KubeClient, kubeconfigConnection } from '../common/kube-client.js';
import { VERDICT_VERSION } from '../common/version.js';
import { loggedSettings, readSecretFile, splitAddress, type AggregatorConfig } from './config.js';
import { AGGREGATOR_DEFAULTS_TABLE } from './defaults.js';
import { LoopbackReaders, StaticTokenReaders, type HttpAuthorizer } from './http/access.js';
import { buildHttpApp, type App } from './http/app.js';
import { LoopbackOnly, MutualTls, SharedToken, type AgentAuthenticator } from './ingest/auth.js';
import { DEFAULT_INGEST_OPTIONS, IngestServer } from './ingest/server.js';
import { RbacReaders, ServiceAccountAgents } from './kube/auth.js';
import { ClusterReports } from './kube/globalreports.js';
import { kubeInventory } from './kube/inventory.js';
import { KubeLease } from './kube/lease.js';
import { NodeLifecycle } from './kube/nodes.js';
import { PodHistory } from './kube/pods.js';
import { PolicyHistory } from './kube/policy-history.js';
import {
  clusterConfigurationSource,
  networkAccessFindingsGauge,
  snapshotConfigurationSource,
  type NetworkAccessConfig,
} from './network-access/index.js';
import { loadClusterSnapshot, type ClusterSnapshot } from './snapshot/index.js';
import { snapshotClusterSource } from './reports/snapshot-inventory.js';
import { TokenReviewer } from './kube/reviews.js';
import { ClusterCisScanner } from './cluster-cis/scanner.js';
import { AggregatorMetrics } from './metrics.js';
import { PostgresLeader } from './reports/leader.js';
import { noteNewPolicyEvents } from './reports/policy-events.js';
import { ReportRegistry } from './reports/registry.js';
import { loadSigningKey } from './evidence/signing.js';
import { reportRunner } from './reports/runner.js';
import { DEFAULT_SCHEDULER_OPTIONS, ReportScheduler } from './reports/scheduler.js';
import { openStore, type Store } from './store/index.js';

const SETTINGS = AGGREGATOR_DEFAULTS_TABLE;

export interface RunningAggregator {
  httpPort: number;
  grpcPort: number;
  store: Store;
  app: App;
  scheduler: ReportScheduler;
  registry: ReportRegistry;
  /** What network access reads beside the store (the routes and the report share it). */
  networkAccess: NetworkAccessConfig;
  /** Stop every component in the reverse of the order they started (timers, watchers, HTTP, ..., the store last). */
  close(): Promise<void>;
}

/** A part of the running aggregator with a life: started in order by startAggregator, stopped in reverse. */
export interface Component {
  start?(): void | Promise<void>;
  stop?(): void | Promise<void>;
}

/**
 * The started components, in order. `add` starts one and remembers it; `stop` stops them all, last started
 * first, each even when an earlier one failed to stop (the first failure is thrown at the end).
 */
export class Lifecycle {
  private readonly started: [string, Component][] = [];

  constructor(private readonly log: Logger) {}

  async add<C extends Component>(name: string, component: C): Promise<C> {
    await component.start?.();
    this.started.push([name, component]);
    return component;
  }

  async stop(): Promise<void> {
    let failure: unknown;
    for (const [name, component] of this.started.splice(0).reverse()) {
      try {
        await component.stop?.();
      } catch (err) {
        this.log.error({ err, component: name }, 'component failed to stop');
        failure ??= err;
      }
    }
    if (failure !== undefined) throw failure;
  }
}

/** A timer as a component: `run` every `everyMs` (and once at start when `atStart`), cleared on stop. */
function every(everyMs: number, run: () => void, atStart = false): Component {
  let timer: NodeJS.Timeout | undefined;
  return {
    start() {
      timer = setInterval(run, everyMs);
      timer.unref();
      if (atStart) run();
    },
    stop() {
      clearInterval(timer);
    },
  };
}

/** HOST:PORT as gRPC binds it (an IPv6 host in brackets). */
function grpcBindAddress(address: string): string {
  const { host, port } = splitAddress(address);
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/** The namespace this pod runs in, from its service-account mount. */
function readNamespace(): string | undefined {
  try {
    return readFileSync(SETTINGS.kube.namespaceFile, 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

/** The Kubernetes API client (with --kubeconfig, or in a pod), and TokenReview over it; none without a cluster. */
function kubeConnection(config: AggregatorConfig): { kube?: KubeClient; reviewer?: TokenReviewer } {
  const conn = config.kubeconfig ? kubeconfigConnection(config.kubeconfig) : inClusterConnection();
  if (!conn) return {};
  const kube = new KubeClient(conn);
  return { kube, reviewer: new TokenReviewer({ kube }) };
}

/**
 * Who may stream as an agent, and the gRPC credentials: mutual TLS, a shared token, in a cluster TokenReview
 * (bound to the agent's node), else loopback only.
 */
function agentAccess(
  config: AggregatorConfig,
  kube?: KubeClient,
  reviewer?: TokenReviewer,
): { auth: AgentAuthenticator; credentials: grpc.ServerCredentials } {
  let auth: AgentAuthenticator = new LoopbackOnly();
  let credentials = grpc.ServerCredentials.createInsecure();
  if (config.tls) {
    const ca = Buffer.from(readSecretFile(config.tls.ca, 'the TLS CA'));
    const keyPair = {
      cert_chain: Buffer.from(readSecretFile(config.tls.cert, 'the TLS certificate')),
      private_key: Buffer.from(readSecretFile(config.tls.key, 'the TLS key')),
    };
    checkTlsMaterial({ ca, cert: keyPair.cert_chain, key: keyPair.private_key });
    credentials = grpc.ServerCredentials.createSsl(ca, [keyPair], true);
    auth = new MutualTls();
  }
  if (config.agentTokenFile) auth = new SharedToken(readSecretFile(config.agentTokenFile, 'the agent token file'));
  if (kube && reviewer && !config.agentTokenFile && !config.tls)
    auth = new ServiceAccountAgents({ kube, reviewer, serviceAccount: config.agentServiceAccount });
  return { auth, credentials };
}

/** Who may read over HTTP: static tokens, in a cluster RBAC (SubjectAccessReview), else loopback only. */
function httpReaders(config: AggregatorConfig, kube?: KubeClient, reviewer?: TokenReviewer): HttpAuthorizer {
  if (config.httpTokensFile) return new StaticTokenReaders(config.httpTokensFile);
  if (kube && reviewer) return new RbacReaders({ kube, reviewer });
  return new LoopbackReaders();
}

/** The store as a component: agents' streams marked ended at start (SQLite: one replica), closed last. */
function storeComponent(store: Store): Component {
  return {
    // One replica owns the SQLite file: no agent stream survives a restart.
    start: async () => {
      if (store.kind === 'sqlite') await store.markAllDisconnected();
    },
    stop: () => store.close(),
  };
}

/** The agents' gRPC server as a component: listens at start (reporting the bound port), ends streams at stop. */
function ingestComponent(ingest: IngestServer, address: string, credentials: grpc.ServerCredentials) {
  const bind = grpcBindAddress(address);
  const component = {
    port: 0,
    async start() {
      component.port = await ingest.listen(bind, credentials).catch((err: unknown) => {
        throw listenFailure(err, bind);
      });
    },
    stop: () => ingest.close(),
  };
  return component;
}

/** The HTTP API as a component: listens at start (reporting the bound port), closes at stop. */
function httpComponent(app: App, address: string) {
  const { host, port } = splitAddress(address);
  const component = {
    port,
    async start() {
      await app.listen({ host, port }).catch((err: unknown) => {
        throw listenFailure(err, `${host}:${port}`);
      });
      const bound = app.server.address();
      component.port = typeof bound === 'object' && bound ? bound.port : port;
    },
    stop: () => app.close(),
  };
  return component;
}

/**
 * At most `max` open HTTP connections. Each idle connection holds a socket and its buffers until Node's headers
 * timeout (60 s), so a client opening them in a loop could take the process's memory or file descriptors from the
 * agents' streams and the store. Past the limit Node closes a new connection as soon as it is accepted (no HTTP answer
 * is possible); each is counted, and logged at most every 10 s with the count since.
 */
function limitConnections(app: App, max: number, metrics: AggregatorMetrics, log: Logger): void {
  app.server.maxConnections = max;
  let unlogged = 0;
  let loggedAt = 0;
  app.server.on('drop', (data?: { remoteAddress?: string }) => {
    metrics.httpConnectionsDropped.inc();
    unlogged++;
    const now = Date.now();
    if (now - loggedAt < 10_000) return;
    log.warn(
      { dropped: unlogged, max, lastFrom: data?.remoteAddress },
      'HTTP connections closed: --http-max-connections are open (raise it, or find the client holding them)',
    );
    unlogged = 0;
    loggedAt = now;
  });
}

/** What runs the cluster side: watched GlobalReports, policy and pod history, node lifecycle. */
interface ClusterComponents {
  clusterReports?: ClusterReports;
  /** The watched policies (network access reads which exist now). */
  policyHistory?: PolicyHistory;
  watchers: [string, Component][];
}

function clusterComponents(
  kube: KubeClient | undefined,
  deps: { store: Store; metrics: AggregatorMetrics; registry: ReportRegistry; log: Logger },
  tamper: { namespaces: string[]; tiers: string[] },
  signingPublicKey?: string,
): ClusterComponents {
  if (!kube) return { watchers: [] };
  const { store, metrics, registry, log } = deps;
  const common = { kube, store, now: Date.now };
  const clusterReports = new ClusterReports({
    ...common,
    registry,
    log: log.child({ component: 'globalreports' }),
    ...(signingPublicKey ? { signingPublicKey } : {}),
  });
  const policyLog = log.child({ component: 'policy-history' });
  const policyHistory = new PolicyHistory({
    ...common,
    log: policyLog,
    onStored: (fresh) => noteNewPolicyEvents(store, metrics, tamper, policyLog, fresh),
  });
  return {
    clusterReports,
    policyHistory,
    watchers: [
      ['globalreports', clusterReports],
      // Its stop stores the versions recorded but not yet written.
      ['policy-history', policyHistory],
      ['nodes', new NodeLifecycle({ ...common, log: log.child({ component: 'nodes' }) })],
      ['pod-history', new PodHistory({ ...common, log: log.child({ component: 'pod-history' }) })],
    ],
  };
}

/** One scheduler among replicas: a Lease in a cluster, an advisory lock on a shared PostgreSQL without one. */
function reportLeader(config: AggregatorConfig, store: Store, kube: KubeClient | undefined, log: Logger) {
  const leaderLog = log.child({ component: 'leader' });
  if (kube)
    return {
      lease: new KubeLease({
        kube,
        log: leaderLog,
        namespace: process.env.POD_NAMESPACE ?? readNamespace() ?? SETTINGS.kube.leaseNamespaceFallback,
        identity: process.env.POD_NAME ?? hostname(),
      }),
    };
  return store.kind === 'postgres' ? { pgLeader: new PostgresLeader(config.db, leaderLog) } : {};
}

/** The report scheduler, its leader election and its metrics. */
function schedulerComponent(
  config: AggregatorConfig,
  deps: {
    store: Store;
    metrics: AggregatorMetrics;
    registry: ReportRegistry;
    log: Logger;
    networkAccess: NetworkAccessConfig;
  },
  kube: KubeClient | undefined,
  clusterReports: ClusterReports | undefined,
  snapshot?: ClusterSnapshot,
) {
  const { store, metrics, registry, log, networkAccess } = deps;
  // Cluster facts for inventory reports: the API server, else the offline snapshot (which then makes them valid).
  const inventory = kube
    ? kubeInventory({ kube, store })
    : snapshot
      ? snapshotClusterSource(snapshot).inventory
      : undefined;
  if (!kube && snapshot) registry.allowClusterReads(`--cluster-snapshot ${snapshot.dir}`);
  const { lease, pgLeader } = reportLeader(config, store, kube, log);
  const leader = lease ?? pgLeader;
  const s = SETTINGS.scheduler;
  const scheduler = new ReportScheduler(
    store,
    registry,
    reportRunner(store, Date.now, inventory, networkAccess),
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
  const component: Component = {
    async start() {
      scheduler.start(s.tickIntervalMs);
      // Report series exist from the start (a first failure shows as an increase from 0), and
      // the next scheduled run is exported so an alert can say "overdue" exactly.
      metrics.trackReports(() => registry.all(), config.reportStartDelayMs);
      // The last success of each report survives restarts: read it from the archive.
      for (const def of registry.all()) {
        const last = (await store.reportRuns(def.name, s.recentRunsPerReport))
          .filter((r) => r.status === 'succeeded' && r.finishedMs)
          .sort((a, b) => (b.finishedMs ?? 0) - (a.finishedMs ?? 0))[0];
        if (last?.finishedMs) metrics.reportLastSuccess.set({ report: def.name }, last.finishedMs / 1000);
      }
    },
    stop: () => scheduler.stop(),
  };
  return { scheduler, leader, pgLeader, component };
}

/** Retention runs through the store like every other write; runs never overlap. */
function retention(config: AggregatorConfig, store: Store, metrics: AggregatorMetrics, log: Logger): () => void {
  let compacting = false;
  const compact = async () => {
    if (compacting) return;
    compacting = true;
    try {
      const now = Date.now();
      const r = await store.compactFlows(now - config.flowRollupAfterMs, now - config.flowRetentionMs);
      const audits = await store.deleteAuditEventsBefore(now - config.auditRetentionMs);
      if (audits > 0) log.info({ deleted: audits }, 'audit events past retention deleted');
      const history = (await store.deletePodHistoryBefore?.(now - config.auditRetentionMs)) ?? 0;
      if (history > 0) log.info({ deleted: history }, 'pod and namespace history past retention deleted');
      if (r.rolledUp > 0) metrics.flowsCompacted.inc({ what: 'rolled_up' }, r.rolledUp);
      if (r.deleted > 0) metrics.flowsCompacted.inc({ what: 'deleted' }, r.deleted);
      if (r.rolledUp + r.deleted > 0) log.info(r, 'flow buckets compacted');
    } catch (err) {
      log.error({ err }, 'flow retention failed; will retry');
    } finally {
      compacting = false;
    }
  };
  return () => void compact();
}

/** The periodic work: --reports DIR reloaded, GlobalReport statuses written by the leader, retention. */
function timers(
  config: AggregatorConfig,
  deps: { store: Store; metrics: AggregatorMetrics; registry: ReportRegistry; log: Logger },
  clusterReports: ClusterReports | undefined,
  leader: { isLeader(): Promise<boolean> } | undefined,
): [string, Component][] {
  const { store, metrics, registry, log } = deps;
  const t = SETTINGS.timers;
  const list: [string, Component][] = [];
  const dir = config.reportsDir;
  if (dir) list.push(['reports-dir-reload', every(t.reportsDirReloadIntervalMs, () => registry.loadDir(dir))]);
  if (clusterReports) {
    const sync = async () => {
      if (await (leader?.isLeader() ?? Promise.resolve(true))) await clusterReports.syncStatus();
    };
    const round = () => void sync().catch((err: unknown) => log.warn({ err }, 'status sync round failed'));
    list.push(['report-status-sync', every(t.reportStatusSyncIntervalMs, round)]);
  }
  list.push(['retention', every(t.retentionIntervalMs, retention(config, store, metrics, log), true)]);
  return list;
}

/** CIS section 5 evaluated against the cluster by the leader (the scheduler's Lease), stored as the cluster scan. */
function clusterCisComponent(
  kube: KubeClient,
  deps: { store: Store; metrics: AggregatorMetrics; log: Logger },
  leader: { isLeader(): Promise<boolean> } | undefined,
): Component {
  const scanner = new ClusterCisScanner({
    kube,
    store: deps.store,
    log: deps.log.child({ component: 'cluster-cis' }),
    isLeader: leader ? () => leader.isLeader() : async () => true,
    intervalMs: SETTINGS.timers.clusterCisIntervalMs,
    checkIntervalMs: SETTINGS.timers.clusterCisCheckIntervalMs,
    onOutcome: (result) => deps.metrics.clusterScans.inc({ result }),
  });
  return { start: () => scanner.start(), stop: () => scanner.stop() };
}

/**
 * Start the aggregator from a validated config: the composition root. It builds the components and starts them in
 * order — store, agents' gRPC, Kubernetes client, report leader and scheduler, HTTP, cluster watchers, timers —
 * and `close` stops them in reverse: timers, watchers (policy versions flushed), HTTP, scheduler, leader, the
 * Kubernetes client, agents' streams, the store. A component that fails to start stops those already started.
 */
export async function startAggregator(
  config: AggregatorConfig,
  log: Logger = processLogger('verdict-aggregator', config.logLevel),
): Promise<RunningAggregator> {
  // Settings and credentials first: a bad file fails before anything is opened.
  const { kube, reviewer } = kubeConnection(config);
  const { auth, credentials } = agentAccess(config, kube, reviewer);
  const snapshot = config.clusterSnapshotDir ? loadClusterSnapshot(config.clusterSnapshotDir) : undefined;
  const authorizer = httpReaders(config, kube, reviewer);
  const signer = config.signingKeyFile ? loadSigningKey(config.signingKeyFile) : undefined;
  const life = new Lifecycle(log);
  try {
    const store = await openStore(config.db);
    await life.add('store', storeComponent(store));
    const metrics = new AggregatorMetrics(store);
    const ingest = new IngestServer(store, metrics, auth, log.child({ component: 'ingest' }), {
      ...DEFAULT_INGEST_OPTIONS,
      maxMessageBytes: config.maxMessageBytes,
    });
    const grpcServer = await life.add('ingest', ingestComponent(ingest, config.grpcAddress, credentials));
    if (kube) await life.add('kube-client', { stop: () => kube.close() });

    const registry = new ReportRegistry(log.child({ component: 'reports' }));
    if (config.reportsDir) registry.loadDir(config.reportsDir);
    const deps = { store, metrics, registry, log };
    const tamper = { namespaces: config.protectedNamespaces, tiers: config.protectedTiers };
    const cluster = clusterComponents(kube, deps, tamper, signer?.publicKeyPem);
    // Network access's configured evidence: the snapshot when given (offline audits, the demo), else the cluster.
    const networkAccess: NetworkAccessConfig = {
      internalCidrs: config.internalCidrs,
      findings: networkAccessFindingsGauge(metrics.registry),
    };
    if (snapshot) {
      networkAccess.source = snapshotConfigurationSource(snapshot);
      log.info(
        {
          snapshot: snapshot.dir,
          files: snapshot.files,
          pods: snapshot.pods.length,
          namespaces: snapshot.namespaces.length,
          policies: snapshot.policies.length,
          ignored: snapshot.ignored,
        },
        'cluster snapshot read',
      );
    } else if (kube && cluster.policyHistory)
      networkAccess.source = clusterConfigurationSource({ kube, store, policies: cluster.policyHistory });
    const reports = schedulerComponent(config, { ...deps, networkAccess }, kube, cluster.clusterReports, snapshot);
    if (reports.pgLeader) await life.add('leader', { stop: () => reports.pgLeader?.close() });
    await life.add('scheduler', reports.component);

    const app = await buildHttpApp({
      store,
      metrics,
      log: log.child({ component: 'http' }),
      authorizer,
      reports: { registry, scheduler: reports.scheduler },
      tamper,
      ...(signer ? { signer } : {}),
      networkAccess,
    });
    limitConnections(app, config.httpMaxConnections, metrics, log.child({ component: 'http' }));
    const http = await life.add('http', httpComponent(app, config.httpAddress));
    for (const [name, watcher] of cluster.watchers) await life.add(name, watcher);
    for (const [name, timer] of timers(config, deps, cluster.clusterReports, reports.leader))
      await life.add(name, timer);
    if (kube) await life.add('cluster-cis', clusterCisComponent(kube, deps, reports.leader));

    log.info(
      {
        version: VERDICT_VERSION,
        kubernetes: kube?.connection.describe ?? 'none',
        readers: authorizer.description,
        http: `${splitAddress(config.httpAddress).host}:${http.port}`,
        grpc: `${splitAddress(config.grpcAddress).host}:${grpcServer.port}`,
        store: store.kind,
        agentAuth: auth.description,
        ...loggedSettings(config),
      },
      'verdict-aggregator started',
    );
    if (auth instanceof LoopbackOnly) log.warn(auth.description);
    if (authorizer instanceof LoopbackReaders) log.warn(authorizer.description);
    return {
      httpPort: http.port,
      grpcPort: grpcServer.port,
      store,
      app,
      scheduler: reports.scheduler,
      registry,
      networkAccess,
      close: () => life.stop(),
    };
  } catch (err) {
    await life.stop().catch(() => {});
    await kube?.close().catch(() => {});
    throw err;
  }
}
