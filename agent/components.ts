import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { inClusterConnection, KubeClient, kubeconfigConnection } from '../common/kube-client.js';
import type { ScanReport } from '../common/scan-report.js';
import { VERDICT_VERSION } from '../common/version.js';
import { reportToWire, roleToWire } from '../proto/convert.js';
import { PROTOCOL_VERSION, type WireHello } from '../proto/index.js';
import { HostView } from './cis/host.js';
import { scanNode } from './cis/index.js';
import type { LiveKubeletConfig } from './cis/kubelet.js';
import { ChangeWatch } from './cis/watch.js';
import { AGENT_DEFAULTS } from './defaults.js';
import { errorDetail } from './errors.js';
import { FlowCapture, parseFlowSource } from './flows/index.js';
import { InternalNetworks } from './flows/normalize.js';
import { readNodeInfo } from './node-info.js';
import type { ScanFlags } from './scan-flags.js';
import { Outbox } from './transport/outbox.js';
import { Spool } from './transport/spool.js';
import { AgentStream, DEFAULT_STREAM_OPTIONS } from './transport/stream.js';

/**
 * The parts verdict-agent's `run` is composed of (agent/run.ts startAgent): each is built, then started in order and
 * stopped in reverse.
 */
export interface Component {
  /** What logs and tests call it. */
  readonly name: string;
  start(): void;
  stop(): void;
}

/** What `run` is configured with (agent/run.ts parseRunArgs). */
export interface RunConfig extends ScanFlags {
  aggregator: string;
  flows: string[];
  spool?: string;
  tokenFile?: string;
  tls?: { cert: string; key: string; ca: string };
  /** Safety re-scan even when no watched file changed, ms. */
  rescanIntervalMs: number;
  /** How often watched files are checked for changes, ms. */
  watchIntervalMs: number;
  /** Quiet time after a change before re-scanning, ms. */
  debounceMs: number;
  /** Read the kubelet's live configz through the API server (needs get nodes/proxy). */
  kubeletConfigz: boolean;
  /** Kubeconfig for the API server; in-cluster configuration when absent. */
  kubeconfig?: string;
  /** CIDRs inside the operator's network: never "internet". */
  internalCidrs: string[];
  /** Flow aggregation window, ms. */
  flowWindowMs: number;
  /** Hubble: how long a trace-first connection waits for its policy verdict (event time), ms. */
  hubbleHoldMs: number;
  /** Hubble: connections held for their verdict at most; past it the oldest is sent without it, counted. */
  hubbleHoldMaxConnections: number;
  /** Largest on-disk spool, bytes. */
  maxSpoolBytes: number;
  /** pino level: trace, debug, info, warn, error, fatal or silent. */
  logLevel: string;
  /** mTLS to Goldmane (its CA, and a client certificate where Goldmane requires one). */
  goldmaneTls?: { caFile: string; certFile?: string; keyFile?: string; serverName?: string };
}

/**
 * The spool, or none when it cannot be opened (a full or read-only disk at
 * start): the agent keeps scanning and sending from memory, and says so.
 * A DaemonSet that crash-loops on a full disk reports nothing at all.
 */
export function openSpool(dir: string, log: Logger): Spool | undefined {
  try {
    return Spool.open(dir);
  } catch (err) {
    log.error(
      { err: errorDetail(err), spool: dir },
      'cannot open the spool; running without one (flow batches are kept in memory only until acknowledged, and file sources start at their end)',
    );
    return undefined;
  }
}

/** One flag bounds both: the encoded bytes of unacked messages in memory, and the spool directory's size on disk. */
export function agentOutbox(config: RunConfig, spool: Spool | undefined, log: Logger): Outbox {
  return new Outbox({
    log: log.child({ component: 'outbox' }),
    spool,
    maxBytes: config.maxSpoolBytes,
    maxMessages: AGENT_DEFAULTS.run.outboxMaxMessagesCount,
    maxInFlightBytes: AGENT_DEFAULTS.outbox.maxInFlightBytes,
  });
}

/** What the Hello says about this node and agent beyond its config; read per connection. */
export interface NodeFacts {
  nodeLabels(): Record<string, string>;
  kubeletVersion(): string;
  role(): ScanReport['nodeRole'];
}

/**
 * The stream to the aggregator, as a component: it connects once `ready` settles (the first scan, so the Hello
 * carries the detected role) and unless stopped before.
 */
export function aggregatorStream(
  config: RunConfig,
  outbox: Outbox,
  spool: Spool | undefined,
  facts: NodeFacts,
  ready: Promise<unknown>,
  log: Logger,
): Component & { stream: AgentStream } {
  // With a spool the boot id and seqs survive restarts, so resent batches dedup exactly.
  const bootId = spool?.bootId ?? randomUUID();
  const info = readNodeInfo(new HostView(config.hostRoot));
  const credentials = config.tls
    ? grpc.credentials.createSsl(
        readFileSync(config.tls.ca),
        readFileSync(config.tls.key),
        readFileSync(config.tls.cert),
      )
    : grpc.credentials.createInsecure();
  const stream = new AgentStream({
    ...DEFAULT_STREAM_OPTIONS,
    outbox,
    address: config.aggregator,
    credentials,
    log: log.child({ component: 'transport' }),
    metadata: () => {
      const md = new grpc.Metadata();
      // Re-read per connection: projected service-account tokens rotate. One that cannot be read now (the kubelet
      // swapping it) is sent as none: the aggregator refuses the stream and it is retried, the process stays up.
      if (config.tokenFile) {
        try {
          md.set('authorization', `Bearer ${readFileSync(config.tokenFile, 'utf8').trim()}`);
        } catch (err) {
          log.warn(
            { tokenFile: config.tokenFile, err: errorDetail(err) },
            'cannot read --token-file; connecting without a token',
          );
        }
      }
      return md;
    },
    hello: (): WireHello => ({
      nodeName: config.nodeName,
      nodeLabels: facts.nodeLabels(),
      role: roleToWire(facts.role()),
      kubeletVersion: facts.kubeletVersion(),
      kubernetesVersion: '',
      osImage: info.osImage,
      kernelVersion: info.kernelVersion,
      architecture: info.architecture,
      agentVersion: VERDICT_VERSION,
      bootId,
      protocolVersion: PROTOCOL_VERSION,
    }),
  });
  let stopped = false;
  return {
    name: 'stream',
    stream,
    start() {
      void ready.then(() => {
        if (!stopped) stream.start();
      });
    },
    stop() {
      stopped = true;
      stream.stop();
    },
  };
}

/** Flow capture (--flows), as a component; undefined without flow sources. */
export function flowCapture(
  config: RunConfig,
  outbox: Outbox,
  spool: Spool | undefined,
  log: Logger,
): (Component & { capture: FlowCapture }) | undefined {
  if (config.flows.length === 0) return undefined;
  const capture = new FlowCapture({
    sources: config.flows.map(parseFlowSource),
    outbox,
    spool,
    internal: new InternalNetworks(config.internalCidrs),
    goldmaneTls: config.goldmaneTls,
    hubbleHold: { ms: config.hubbleHoldMs, maxConnections: config.hubbleHoldMaxConnections },
    log: log.child({ component: 'flows' }),
    windowMs: config.flowWindowMs,
    pollMs: Math.min(AGENT_DEFAULTS.flows.filePollMaxMs, config.flowWindowMs),
    now: Date.now,
  });
  return { name: 'flows', capture, start: () => capture.start(), stop: () => capture.stop() };
}

/** What makes two scans "the same result": everything but timing. */
function fingerprint(r: ScanReport): string {
  return JSON.stringify([r.benchmark, r.nodeRole, r.checks]);
}

/**
 * The CIS scan loop: scans on request (never two at once: a request during a scan runs once after it), sends a
 * BenchmarkRun when the result changed, and keeps what the Hello says about the node. start() runs the first scan;
 * `firstScan` settles when it is done.
 */
export class Scanner implements Component, NodeFacts {
  readonly name = 'scanner';
  readonly watch: ChangeWatch;
  /** Scans run so far (the first, change-triggered and periodic ones). */
  scans = 0;
  readonly firstScan: Promise<void>;
  private markFirstScan!: () => void;
  private lastScan?: ScanReport;
  private labels: Record<string, string> = {};
  private kubelet = '';
  private running: Promise<boolean> = Promise.resolve(false);

  constructor(
    private readonly config: RunConfig,
    private readonly cluster: ClusterFacts,
    /** Where BenchmarkRuns go (the stream sends what the outbox holds). */
    private readonly outbox: Outbox,
    private readonly log: Logger,
  ) {
    this.watch = new ChangeWatch(config.hostRoot);
    this.firstScan = new Promise((resolve) => (this.markFirstScan = resolve));
  }

  nodeLabels(): Record<string, string> {
    return this.labels;
  }

  kubeletVersion(): string {
    return this.kubelet;
  }

  role(): ScanReport['nodeRole'] {
    return this.lastScan?.nodeRole ?? 'worker';
  }

  start(): void {
    // The first scan runs before connecting, so the Hello carries the detected role.
    void this.scanNow().then(() => this.markFirstScan());
  }

  stop(): void {}

  /** Scan now (after any scan in progress); sends a BenchmarkRun when a result changed. Answers whether it sent. */
  scanNow(): Promise<boolean> {
    const once = () => this.scanOnce();
    this.running = this.running.then(once, once).catch((err: unknown) => {
      this.log.error({ err }, 'scan failed');
      return false;
    });
    return this.running;
  }

  private async scanOnce(): Promise<boolean> {
    this.scans++;
    const { live, node } = await this.cluster.read();
    if (node?.labels) this.labels = node.labels;
    const result = scanNode({
      ...this.config,
      liveKubeletConfig: live,
      kubernetesVersion: this.config.kubernetesVersion ?? node?.kubeletVersion,
    });
    this.watch.track(result.touched);
    for (const w of result.warnings) if (this.scans === 1) this.log.warn(w);
    if (!result.kubelet.found) {
      // Not a Kubernetes node (a missing host mount, the wrong root): no score, and above all no 0% run. The run sent
      // says so (BenchmarkRun.not_assessable, no checks), once per reason, so the aggregator shows why.
      const reason = result.kubelet.why;
      if (this.lastScan?.notAssessable === reason) return false;
      this.lastScan = { ...result.report, checks: [], notAssessable: reason };
      const report = this.lastScan;
      const seq = this.outbox.add((s) => ({ kind: 'benchmarkRun', benchmarkRun: reportToWire(report, s) }));
      this.log.warn({ hostRoot: this.config.hostRoot, seq }, `${reason}; node not assessable, sending no score`);
      return true;
    }
    this.kubelet =
      node?.kubeletVersion ?? (result.kubernetesVersion ? `v${result.kubernetesVersion.replace(/^v/, '')}` : '');
    const changed = this.lastScan === undefined || fingerprint(this.lastScan) !== fingerprint(result.report);
    if (changed) {
      this.lastScan = result.report;
      const report = result.report;
      const seq = this.outbox.add((s) => ({ kind: 'benchmarkRun', benchmarkRun: reportToWire(report, s) }));
      this.log.info(
        { seq, benchmark: result.report.benchmark.id, role: result.report.nodeRole, ...result.report.summary },
        'benchmark result changed; sending',
      );
    } else {
      this.log.debug('benchmark result unchanged');
    }
    return changed;
  }
}

/** Re-scans after watched files changed (checked every watchIntervalMs, then quiet for debounceMs). */
export function fileWatch(config: RunConfig, scanner: Scanner, log: Logger): Component {
  let poll: NodeJS.Timeout | undefined;
  let debounce: NodeJS.Timeout | undefined;
  return {
    name: 'file-watch',
    start() {
      poll = setInterval(() => {
        const what = scanner.watch.changed();
        if (what.length === 0) return;
        log.debug({ changed: what.slice(0, 5) }, 'watched files changed');
        clearTimeout(debounce);
        debounce = setTimeout(() => void scanner.scanNow(), config.debounceMs);
      }, config.watchIntervalMs);
      poll.unref();
    },
    stop() {
      clearInterval(poll);
      clearTimeout(debounce);
    },
  };
}

/** The safety re-scan every rescanIntervalMs. Its timer also keeps the process alive: it is the agent's main loop. */
export function safetyRescan(config: RunConfig, scanner: Scanner): Component {
  let safety: NodeJS.Timeout | undefined;
  return {
    name: 'rescan',
    start() {
      safety = setInterval(() => void scanner.scanNow(), config.rescanIntervalMs);
    },
    stop() {
      clearInterval(safety);
    },
  };
}

interface NodeObject {
  metadata?: { labels?: Record<string, string> };
  status?: { nodeInfo?: { kubeletVersion?: string } };
}

type ClusterRead = {
  live?: LiveKubeletConfig;
  node?: { labels: Record<string, string>; kubeletVersion?: string };
};

/** What the API server can add to a scan; stop() closes its client. */
export interface ClusterFacts extends Component {
  read(): Promise<ClusterRead>;
}

/**
 * What the API server can add to a scan: the node's labels and kubelet version
 * (needs `get nodes`), and with --kubelet-configz the kubelet's live config
 * (needs `get nodes/proxy`, which grants the whole kubelet API: opt-in only).
 * Outside a cluster, with no --kubeconfig, there is nothing to ask. Failures are
 * logged and the files on the node stay the source.
 */
export function clusterFacts(config: RunConfig, log: Logger): ClusterFacts {
  let client: KubeClient | undefined;
  try {
    const conn = config.kubeconfig ? kubeconfigConnection(config.kubeconfig) : inClusterConnection();
    if (conn) client = new KubeClient(conn);
  } catch (err) {
    log.warn({ err: errorDetail(err) }, 'cannot use the Kubernetes API; scanning from node files only');
  }
  if (config.kubeletConfigz && !client)
    log.warn('--kubelet-configz needs the Kubernetes API (run in a cluster or pass --kubeconfig); using node files');
  const warned = new Set<string>();
  const warnOnce = (key: string, err: unknown, msg: string) => {
    if (warned.has(key)) return;
    warned.add(key);
    log.warn({ err: errorDetail(err) }, msg);
  };
  const node = encodeURIComponent(config.nodeName);
  return {
    name: 'cluster',
    start() {},
    stop() {
      void client?.close();
    },
    async read(): Promise<ClusterRead> {
      if (!client) return {};
      const out: ClusterRead = {};
      try {
        const n = await client.get<NodeObject>(`/api/v1/nodes/${node}`);
        out.node = { labels: n.metadata?.labels ?? {}, kubeletVersion: n.status?.nodeInfo?.kubeletVersion };
      } catch (err) {
        warnOnce(
          'node',
          err,
          'cannot read this node from the API server (RBAC get nodes?); labels and kubelet version unknown',
        );
      }
      if (config.kubeletConfigz) {
        try {
          const z = await client.get<{ kubeletconfig?: Record<string, unknown> }>(
            `/api/v1/nodes/${node}/proxy/configz`,
          );
          if (z.kubeletconfig)
            out.live = {
              config: z.kubeletconfig,
              source: `kubelet configz via the API server (${client.connection.describe})`,
            };
          warned.delete('configz');
        } catch (err) {
          warnOnce('configz', err, 'cannot read the kubelet configz; falling back to node files');
        }
      }
      return out;
    },
  };
}
