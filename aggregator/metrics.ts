import { Cron } from 'croner';
import { Counter, Gauge, Registry, type LabelValues } from 'prom-client';
import { FLOW_ACTIONS, FLOW_SOURCES } from '../common/flow.js';
import { CisView, type NodeView } from './cis-view.js';
import { connectedUntilMs, isConnected } from './compute/cis.js';
import { INGEST_REJECT_REASONS } from './ingest/reasons.js';
import { POLICY_KINDS } from './reports/policy-resources.js';
import type { Store } from './store/index.js';
import { exposition, expositionBytes, NodeCounter, NodeFamily, type Series } from './metrics-text.js';
import { processMetrics } from './process-metrics.js';

/** Exact pass/(pass+fail); the JSON API rounds percentages, metrics do not. */
function ratio(pass: number, fail: number): number {
  return pass + fail === 0 ? 0 : pass / (pass + fail);
}

/** Start `counter` at 0 for each of `values` of its one label, so the series exist before the first event. */
function zeroFor<L extends string>(counter: Counter<L>, label: L, values: readonly string[]): void {
  for (const v of values) counter.inc({ [label]: v } as LabelValues<L>, 0);
}

/**
 * Every metric the aggregator exports (names are a public contract: docs/DESIGN.md, "Metrics").
 * Labels stay bounded: node, benchmark, role, status, check id, reason, action.
 * CIS gauges are written from the nodes and summaries kept in memory in step with the store (cis-view.ts), so
 * every replica sharing a store answers the same within the view's bound.
 *
 * Every counter is exported from the first scrape, at 0 for each label value
 * the aggregator knows (reasons, sources, kinds, actions, reports, the nodes in
 * the store): a dashboard shows 0 rather than "No data", and an alert sees the
 * first event as an increase from 0 (increase() cannot see a series being born).
 */
export class AggregatorMetrics {
  readonly registry = new Registry();
  readonly ingestRejected: Counter<'reason'>;
  readonly ingestDuplicates: Counter;
  readonly ingestStoreFailures: Counter;
  readonly flowsReceived: NodeCounter<'node' | 'action'>;
  readonly flowsMalformed: Counter<'source'>;
  readonly benchmarkRunsStored: NodeCounter<'node'>;
  readonly clusterScans: Counter<'result'>;
  readonly flowsLost: Counter<'source'>;
  readonly agentFlowsDropped: NodeCounter<'node'>;
  readonly flowsCompacted: Counter<'what'>;
  readonly reportRuns: Counter<'report' | 'result'>;
  readonly reportLastSuccess: Gauge<'report'>;
  readonly policyChanges: Counter<'kind'>;
  readonly tamperAlerts: Counter<'kind'>;
  readonly auditEventsIgnored: Counter;
  readonly auditEventsRefused: Counter;
  readonly auditEventsTruncated: Counter;
  readonly httpConnectionsDropped: Counter;
  /** The nodes, their summaries and the cluster scan as the CIS gauges and the CIS summary answer them. */
  readonly cis: CisView;
  private readonly knownNodes = new Set<string>();

  /**
   * Every metric in the text format, as `registry.metrics()` writes it; the per-node families (some 55,000 series
   * at 5,000 nodes) from the text kept per node (metrics-text.ts), the rest from prom-client.
   */
  exposition(): Promise<string> {
    return exposition(this.registry);
  }

  /** exposition() in UTF-8 pieces, as /metrics sends it: the per-node families' bytes are kept, not encoded again. */
  expositionBytes(): Promise<Buffer[]> {
    return expositionBytes(this.registry);
  }

  /** A node's per-node counters start at 0: on its agent's Hello, and for every node the store lists at a scrape. */
  nodeSeen(node: string): void {
    if (this.knownNodes.has(node)) return;
    this.knownNodes.add(node);
    for (const action of FLOW_ACTIONS) this.flowsReceived.inc({ node, action }, 0);
    this.agentFlowsDropped.inc({ node }, 0);
    this.benchmarkRunsStored.inc({ node }, 0);
  }

  /**
   * Report metrics for the reports in force: their run counters start at 0 for
   * every result, and verdict_report_next_run_timestamp_seconds says when the
   * next scheduled run is due to start (its cron time plus the start delay).
   */
  trackReports(reports: () => { name: string; schedule?: string; suspend: boolean }[], startDelayMs: number): void {
    const runs = this.reportRuns;
    const known = new Set<string>();
    const zero = (name: string) => {
      if (known.has(name)) return;
      known.add(name);
      for (const result of ['succeeded', 'failed', 'retry', 'abandoned']) runs.inc({ report: name, result }, 0);
    };
    for (const r of reports()) zero(r.name);
    new Gauge({
      name: 'verdict_report_next_run_timestamp_seconds',
      help: "When the report's next scheduled run is due to start (cron time plus the start delay), Unix seconds; absent for unscheduled or suspended reports.",
      labelNames: ['report'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const r of reports()) {
          zero(r.name);
          if (!r.schedule || r.suspend) continue;
          const next = new Cron(r.schedule, { paused: true, timezone: 'UTC' }).nextRun()?.getTime();
          if (next !== undefined) this.set({ report: r.name }, (next + startDelayMs) / 1000);
        }
      },
    });
  }

  constructor(store: Store) {
    processMetrics(this.registry);
    const registers = [this.registry];
    const view = (this.cis = new CisView(store));
    // Nodes another replica saw, or seen before this process started, get their zeros too.
    view.onNode((name, n) => {
      if (n) this.nodeSeen(name);
    });
    const perNode = new NodeGauges(view);
    // Every CIS gauge and per-node counter reads the view, brought up to date once per scrape (prom-client
    // collects all metrics concurrently, so the first collect starts the read and the rest join it).
    let inflight: Promise<boolean> | undefined;
    const snapshot: Snapshot = () => {
      inflight ??= view
        .read()
        .then(() => (perNode.connectedNow(), true))
        // A store that cannot answer fails the gauges' part of a scrape, never the counters' zeros.
        .catch(() => false)
        .finally(() => (inflight = undefined));
      return inflight;
    };
    perNode.refresh = snapshot;
    const nodesFromStore = async () => void (await snapshot());
    const ingest = ingestCounters(registers);
    this.ingestRejected = ingest.ingestRejected;
    this.ingestDuplicates = ingest.ingestDuplicates;
    this.ingestStoreFailures = ingest.ingestStoreFailures;
    const flows = flowCounters(this.registry, nodesFromStore);
    this.flowsReceived = flows.flowsReceived;
    this.flowsMalformed = flows.flowsMalformed;
    this.flowsLost = flows.flowsLost;
    this.agentFlowsDropped = flows.agentFlowsDropped;
    this.flowsCompacted = flows.flowsCompacted;
    const reports = reportMetrics(registers);
    this.reportRuns = reports.reportRuns;
    this.reportLastSuccess = reports.reportLastSuccess;
    const audit = auditCounters(registers);
    this.policyChanges = audit.policyChanges;
    this.tamperAlerts = audit.tamperAlerts;
    this.auditEventsIgnored = audit.auditEventsIgnored;
    this.auditEventsRefused = audit.auditEventsRefused;
    this.auditEventsTruncated = audit.auditEventsTruncated;
    this.httpConnectionsDropped = new Counter({
      name: 'verdict_http_connections_dropped_total',
      help: 'HTTP connections closed as soon as they were accepted because --http-max-connections were already open.',
      registers,
    });
    this.benchmarkRunsStored = new NodeCounter(
      this.registry,
      'verdict_benchmark_runs_stored_total',
      'Benchmark runs stored, by node.',
      nodesFromStore,
    );
    this.clusterScans = new Counter({
      name: 'verdict_cis_cluster_scans_total',
      help: 'Evaluations of the cluster section (CIS 5.x) by this replica: stored (results changed), unchanged, failed (the API could not be read; retried).',
      labelNames: ['result'],
      registers,
    });
    zeroFor(this.clusterScans, 'result', ['stored', 'unchanged', 'failed']);
    cisGauges(this.registry, view, snapshot, perNode);
    clusterScanGauges(registers, view, snapshot);
    agentGauges(this.registry, perNode);
    // Built as agents arrive, not at the first scrape or summary (5,000 nodes' series at once).
    view.follow();
  }
}

/** Agent messages refused, resent and not stored. */
function ingestCounters(registers: Registry[]) {
  const ingestRejected = new Counter({
    name: 'verdict_ingest_rejected_total',
    help: 'Agent messages or streams refused, by reason.',
    labelNames: ['reason'],
    registers,
  });
  zeroFor(ingestRejected, 'reason', INGEST_REJECT_REASONS);
  const ingestDuplicates = new Counter({
    name: 'verdict_ingest_duplicates_total',
    help: 'Agent messages received again after being stored (resends), acked and discarded.',
    registers,
  });
  const ingestStoreFailures = new Counter({
    name: 'verdict_ingest_store_failures_total',
    help: 'Agent messages the store failed to take; the stream is ended and the agent resends (a message that keeps failing while the store answers is rejected as unstorable).',
    registers,
  });
  return { ingestRejected, ingestDuplicates, ingestStoreFailures };
}

/** Flow records received, malformed, lost, dropped and compacted. */
function flowCounters(registry: Registry, nodesFromStore: () => Promise<void>) {
  const registers = [registry];
  const flowsReceived = new NodeCounter<'node' | 'action'>(
    registry,
    'verdict_flows_received_total',
    'Connections in flow records received from agents, by node and action.',
    nodesFromStore,
  );
  const flowsMalformed = new Counter({
    name: 'verdict_flows_malformed_total',
    help: 'Malformed flow records reported by agents, by source.',
    labelNames: ['source'],
    registers,
  });
  zeroFor(flowsMalformed, 'source', FLOW_SOURCES);
  const flowsLost = new Counter({
    name: 'verdict_flows_lost_total',
    help: 'Flow records a source itself reported lost (Hubble lost events), by source.',
    labelNames: ['source'],
    registers,
  });
  zeroFor(flowsLost, 'source', FLOW_SOURCES);
  const agentFlowsDropped = new NodeCounter<'node'>(
    registry,
    'verdict_agent_flows_dropped_total',
    'Flow records agents dropped before sending them (full spool or outbox, a record too large to send, a batch the aggregator could not take), by node.',
    nodesFromStore,
  );
  const flowsCompacted = new Counter({
    name: 'verdict_flow_buckets_compacted_total',
    help: 'Flow bucket rows rolled up into hours or deleted by retention.',
    labelNames: ['what'],
    registers,
  });
  zeroFor(flowsCompacted, 'what', ['rolled_up', 'deleted']);
  return { flowsReceived, flowsMalformed, flowsLost, agentFlowsDropped, flowsCompacted };
}

/** Report runs by result, and each report's last success. */
function reportMetrics(registers: Registry[]) {
  const reportRuns = new Counter({
    name: 'verdict_report_runs_total',
    help: 'Report run attempts ended, by report and result: succeeded, failed (for good), retry (failed, queued again), abandoned (the process running it died during the run; queued once more, failed if lost again).',
    labelNames: ['report', 'result'],
    registers,
  });
  const reportLastSuccess = new Gauge({
    name: 'verdict_report_last_success_timestamp_seconds',
    help: 'When the report last ran successfully, Unix seconds.',
    labelNames: ['report'],
    registers,
  });
  return { reportRuns, reportLastSuccess };
}

/** Network policy changes, tamper alerts, and audit events ignored, refused or cut. */
function auditCounters(registers: Registry[]) {
  const policyChanges = new Counter({
    name: 'verdict_policy_changes_total',
    help: 'Network policy changes received on the audit webhook, by resource kind.',
    labelNames: ['kind'],
    registers,
  });
  zeroFor(policyChanges, 'kind', POLICY_KINDS);
  const tamperAlerts = new Counter({
    name: 'verdict_policy_tamper_alerts_total',
    help: 'Changes to network policies in protected namespaces or tiers, by resource kind.',
    labelNames: ['kind'],
    registers,
  });
  zeroFor(tamperAlerts, 'kind', POLICY_KINDS);
  const auditEventsIgnored = new Counter({
    name: 'verdict_audit_events_ignored_total',
    help: 'Audit events received that are not completed, successful network-policy changes.',
    registers,
  });
  const auditEventsRefused = new Counter({
    name: 'verdict_audit_events_refused_total',
    help: 'Audit webhook items refused as unreadable (not an audit.k8s.io/v1 Event, a field of the wrong type, too large); the rest of their EventList is kept.',
    registers,
  });
  const auditEventsTruncated = new Counter({
    name: 'verdict_audit_events_truncated_total',
    help: 'Audit events stored with part cut off (nested deeper than 64 levels, __proto__ keys, over 4 MiB), marked in the stored event.',
    registers,
  });
  return { policyChanges, tamperAlerts, auditEventsIgnored, auditEventsRefused, auditEventsTruncated };
}

/** Brings the view up to date for this scrape; false when the store cannot answer. */
type Snapshot = () => Promise<boolean>;

/** A gauge filled from the view at each scrape. */
function snapshotGauge(registers: Registry[], view: CisView, snapshot: Snapshot) {
  return <L extends string>(name: string, help: string, labelNames: L[], fill: (g: Gauge<L>, v: CisView) => void) =>
    new Gauge<L>({
      name,
      help,
      labelNames,
      registers,
      async collect() {
        this.reset();
        // A store that does not answer leaves these series out of this scrape instead of failing it: the
        // ingest counters (verdict_ingest_store_failures_total among them) must stay visible during an outage.
        if (await snapshot()) fill(this, view);
      },
    });
}

/**
 * The per-node gauges, written as text (metrics-text.ts) from the view: a node's series are put again when the view
 * tells that it changed (under a key of what they are made of, so only a real change formats them again), and a node
 * the store no longer lists is dropped. Only connection depends on the clock (heard from within 3 minutes): it is
 * checked for every node at each scrape.
 */
class NodeGauges {
  score!: NodeFamily;
  checks!: NodeFamily;
  assessable!: NodeFamily;
  connected!: NodeFamily;
  lastSeen!: NodeFamily;
  /** Every family reads the scrape's one view update (set by AggregatorMetrics). */
  refresh!: Snapshot;
  /** Each node's verdict_agent_connected as last put. */
  private readonly up = new Map<string, number>();
  /**
   * No node put connected counts as disconnected before then (the earliest 3 minutes past a connected node's last
   * contact; earlier than needed once a node is heard from again): until then a scrape checks no node.
   */
  private firstLapseMs = -Infinity;

  constructor(private readonly view: CisView) {
    view.onNode((name, n) => this.node(name, n));
  }

  /** Connection is the one per-node gauge that moves with the clock (heard from within 3 minutes): once a scrape. */
  connectedNow(): void {
    const now = Date.now();
    if (now <= this.firstLapseMs) return;
    this.firstLapseMs = Infinity;
    for (const n of this.view.all()) this.putConnected(n, now);
  }

  private putConnected(n: NodeView, now: number): void {
    const node = n.name;
    const up = isConnected(n, now) ? 1 : 0;
    if (up === 1) this.firstLapseMs = Math.min(this.firstLapseMs, connectedUntilMs(n));
    if (this.up.get(node) === up) return;
    this.up.set(node, up);
    this.connected.put(node, `${up}`, 0, () => [{ labels: { node }, value: up }]);
  }

  private node(node: string, n: NodeView | undefined): void {
    if (n === undefined) {
      for (const f of [this.score, this.checks, this.assessable, this.connected, this.lastSeen]) f.drop(node);
      this.up.delete(node);
      return;
    }
    this.putConnected(n, Date.now());
    const lastSeenMs = n.lastSeenMs;
    this.lastSeen.put(node, `${lastSeenMs}`, 0, () => [{ labels: { node }, value: lastSeenMs / 1000 }]);
    const s = n.summary;
    if (s === undefined) {
      for (const f of [this.score, this.checks, this.assessable]) f.drop(node);
      return;
    }
    // A node that is not assessable (no kubelet under the agent's root) has no score series at all, so no
    // "node critical" alert fires for it: verdict_cis_node_assessable says it is there and unassessed.
    const scored = s.notAssessable === undefined;
    const key = `${s.benchmarkId}\0${s.role}\0${s.pass}\0${s.fail}\0${s.skip}\0${scored}`;
    this.score.put(node, key, 0, (): Series[] =>
      scored ? [{ labels: { node, benchmark: s.benchmarkId, role: s.role }, value: ratio(s.pass, s.fail) }] : [],
    );
    this.checks.put(node, key, 0, (): Series[] =>
      scored
        ? [
            { labels: { node, benchmark: s.benchmarkId, status: 'pass' }, value: s.pass },
            { labels: { node, benchmark: s.benchmarkId, status: 'fail' }, value: s.fail },
            { labels: { node, benchmark: s.benchmarkId, status: 'skip' }, value: s.skip },
          ]
        : [],
    );
    this.assessable.put(node, key, 0, () => [{ labels: { node }, value: scored ? 1 : 0 }]);
  }
}

/** CIS scores and failing checks, from the per-node summaries kept in the view. */
function cisGauges(registry: Registry, view: CisView, snapshot: Snapshot, perNode: NodeGauges): void {
  const gauge = snapshotGauge([registry], view, snapshot);
  perNode.score = new NodeFamily(
    registry,
    'verdict_cis_node_score_ratio',
    "pass/(pass+fail) of the scored checks of the node's latest run, 0..1; absent for a node that is not assessable.",
    'gauge',
    perNode.refresh,
  );
  perNode.checks = new NodeFamily(
    registry,
    'verdict_cis_node_checks',
    "Scored checks of the node's latest run, by status.",
    'gauge',
    perNode.refresh,
  );
  perNode.assessable = new NodeFamily(
    registry,
    'verdict_cis_node_assessable',
    "1 when the node's latest run is a scan of a Kubernetes node, 0 when its agent found no kubelet to assess.",
    'gauge',
    perNode.refresh,
  );
  gauge(
    'verdict_cis_cluster_score_ratio',
    'pass/(pass+fail) over the latest runs of every assessable node, 0..1.',
    ['benchmark'],
    (g, v) => {
      for (const b of v.totals.benchmarkIds()) g.set({ benchmark: b }, v.totals.scoreRatio(b));
    },
  );
  gauge(
    'verdict_cis_check_failing_nodes',
    'Nodes whose latest run fails this scored check.',
    ['benchmark', 'check'],
    (g, v) => {
      for (const f of v.totals.failingChecks()) g.set({ benchmark: f.benchmark, check: f.id }, f.failedNodes);
    },
  );
}

/** The cluster section (5.x) of the latest cluster scan, as the view holds it. */
function clusterScanGauges(registers: Registry[], view: CisView, snapshot: Snapshot): void {
  const gauge = snapshotGauge(registers, view, snapshot);
  gauge(
    'verdict_cis_cluster_scan_checks',
    "Checks of the cluster section's latest evaluation (CIS 5.x, from the API), by status: pass, fail, skip (not readable), manual (no API object decides).",
    ['benchmark', 'status'],
    (g, v) => {
      const c = v.clusterScan();
      if (!c) return;
      for (const [status, v] of [
        ['pass', c.summary.pass],
        ['fail', c.summary.fail],
        ['skip', c.summary.skip],
        ['manual', c.summary.manual],
      ] as const)
        g.set({ benchmark: c.benchmark.id, status }, v);
    },
  );
  gauge(
    'verdict_cis_cluster_scan_score_ratio',
    "pass/(pass+fail) of the cluster section's checks decided from the API, 0..1.",
    ['benchmark'],
    (g, v) => {
      const c = v.clusterScan();
      if (c) g.set({ benchmark: c.benchmark.id }, ratio(c.summary.pass, c.summary.fail));
    },
  );
  gauge(
    'verdict_cis_cluster_scan_failing_objects',
    'Objects failing a check of the cluster section (RoleBindings, Namespaces, Pods...), for each failing check.',
    ['benchmark', 'check'],
    (g, v) => {
      const scan = v.clusterScan();
      for (const c of scan?.checks ?? [])
        if (c.status === 'FAIL') g.set({ benchmark: scan!.benchmark.id, check: c.id }, c.failingTotal);
    },
  );
  gauge(
    'verdict_cis_cluster_scan_checked_timestamp_seconds',
    'When the cluster section was last evaluated, Unix seconds.',
    [],
    (g, v) => {
      const c = v.clusterScan();
      if (c) g.set(Date.parse(c.checkedAt) / 1000);
    },
  );
}

/** Agents' connection and last contact, as the view holds them. */
function agentGauges(registry: Registry, perNode: NodeGauges): void {
  perNode.connected = new NodeFamily(
    registry,
    'verdict_agent_connected',
    "1 while the node's agent has a stream open, else 0.",
    'gauge',
    perNode.refresh,
  );
  perNode.lastSeen = new NodeFamily(
    registry,
    'verdict_agent_last_seen_timestamp_seconds',
    "When the node's agent was last heard from, Unix seconds.",
    'gauge',
    perNode.refresh,
  );
}
