import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { pino, type Logger } from 'pino';
import { VERDICT_VERSION } from '../common/version.js';
import type { ScanReport } from '../common/scan-report.js';
import { PROTOCOL_VERSION, type WireHello } from '../proto/index.js';
import { reportToWire, roleToWire } from '../proto/convert.js';
import { loadBenchmarks } from './cis/benchmarks.js';
import { HostView } from './cis/host.js';
import { scanNode } from './cis/index.js';
import { ChangeWatch } from './cis/watch.js';
import { SCAN_OPTIONS, scanFlags, type ScanFlags } from './scan-flags.js';
import { usageError } from './errors.js';
import { readNodeInfo } from './node-info.js';
import { AgentStream, DEFAULT_STREAM_OPTIONS } from './transport/stream.js';
import { Outbox } from './transport/outbox.js';
import { Spool } from './transport/spool.js';
import { FlowCapture, parseFlowSource } from './flows/index.js';
import { InternalNetworks } from './flows/normalize.js';
import { inClusterConnection, KubeClient, kubeconfigConnection } from '../common/kube-client.js';
import type { LiveKubeletConfig } from './cis/kubelet.js';

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
  /** Largest on-disk spool, bytes. */
  maxSpoolBytes: number;
  /** pino level: trace, debug, info, warn, error, fatal or silent. */
  logLevel: string;
  /** mTLS to Goldmane (its CA, and a client certificate where Goldmane requires one). */
  goldmaneTls?: { caFile: string; certFile?: string; keyFile?: string; serverName?: string };
}

export function parseRunArgs(args: string[]): RunConfig {
  const { values } = parseArgs({
    args,
    options: {
      ...SCAN_OPTIONS,
      aggregator: { type: 'string' },
      flows: { type: 'string', multiple: true },
      spool: { type: 'string' },
      'token-file': { type: 'string' },
      'tls-cert': { type: 'string' },
      'tls-key': { type: 'string' },
      'tls-ca': { type: 'string' },
      'rescan-interval-ms': { type: 'string', default: String(5 * 60_000) },
      'watch-interval-ms': { type: 'string', default: '1000' },
      'log-level': { type: 'string', default: process.env.LOG_LEVEL ?? 'info' },
      'kubelet-configz': { type: 'boolean', default: false },
      kubeconfig: { type: 'string' },
      'internal-cidr': { type: 'string', multiple: true },
      'flow-window-ms': { type: 'string', default: '15000' },
      'max-spool-bytes': { type: 'string', default: String(64 * 1024 * 1024) },
      'goldmane-ca': { type: 'string' },
      'goldmane-cert': { type: 'string' },
      'goldmane-key': { type: 'string' },
      'goldmane-server-name': { type: 'string' },
    },
    strict: true,
  });
  if (!values.aggregator)
    throw usageError(
      "--aggregator HOST:PORT is required (the aggregator's gRPC address, e.g. verdict-aggregator.verdict:9090)",
    );
  if (!/^.+:\d{1,5}$/.test(values.aggregator))
    throw usageError(`--aggregator must be HOST:PORT, not "${values.aggregator}"`);
  const tlsParts = [values['tls-cert'], values['tls-key'], values['tls-ca']];
  if (tlsParts.some(Boolean) && !tlsParts.every(Boolean))
    throw usageError('mutual TLS needs all of --tls-cert, --tls-key and --tls-ca');
  const ms = (flag: string, min: number) => {
    const n = Number(values[flag as keyof typeof values]);
    if (!Number.isInteger(n) || n < min) throw usageError(`--${flag} must be an integer of at least ${min}`);
    return n;
  };
  for (const f of values.flows ?? []) {
    try {
      parseFlowSource(f);
    } catch (err) {
      throw usageError((err as Error).message.replace(/^VERDICT_USAGE: /, ''));
    }
  }
  const internalCidrs = (values['internal-cidr'] ?? [])
    .flatMap((c) => c.split(','))
    .map((c) => c.trim())
    .filter(Boolean);
  try {
    new InternalNetworks(internalCidrs);
  } catch (err) {
    throw usageError(`--internal-cidr: ${(err as Error).message.replace(/^VERDICT_CONFIG_INVALID: /, '')}`);
  }
  return {
    ...scanFlags(values, '/host'),
    aggregator: values.aggregator,
    flows: values.flows ?? [],
    spool: values.spool,
    tokenFile: values['token-file'],
    tls: tlsParts.every(Boolean)
      ? { cert: values['tls-cert'] as string, key: values['tls-key'] as string, ca: values['tls-ca'] as string }
      : undefined,
    rescanIntervalMs: ms('rescan-interval-ms', 1000),
    watchIntervalMs: ms('watch-interval-ms', 100),
    debounceMs: 500,
    kubeletConfigz: values['kubelet-configz'] as boolean,
    kubeconfig: values.kubeconfig,
    internalCidrs,
    flowWindowMs: ms('flow-window-ms', 100),
    maxSpoolBytes: ms('max-spool-bytes', 1024 * 1024),
    logLevel: logLevelOf(values['log-level'] as string),
    goldmaneTls: goldmaneTlsOf(values),
  };
}

const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];

function logLevelOf(v: string): string {
  if (!LOG_LEVELS.includes(v)) throw usageError(`--log-level must be one of ${LOG_LEVELS.join(', ')}, not "${v}"`);
  return v;
}

function goldmaneTlsOf(values: Record<string, unknown>): RunConfig['goldmaneTls'] {
  const ca = values['goldmane-ca'] as string | undefined;
  const cert = values['goldmane-cert'] as string | undefined;
  const key = values['goldmane-key'] as string | undefined;
  if (!ca && (cert || key || values['goldmane-server-name']))
    throw usageError('--goldmane-cert, --goldmane-key and --goldmane-server-name need --goldmane-ca');
  if (Boolean(cert) !== Boolean(key)) throw usageError('--goldmane-cert and --goldmane-key go together');
  return ca
    ? { caFile: ca, certFile: cert, keyFile: key, serverName: values['goldmane-server-name'] as string | undefined }
    : undefined;
}

export async function runCommand(args: string[]): Promise<number> {
  const config = parseRunArgs(args);
  const log = pino({ level: config.logLevel, base: { program: 'verdict-agent', node: config.nodeName } });
  const agent = startAgent(config, log);
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      log.info({ signal }, 'shutting down');
      agent.stop();
      resolve();
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
  return 0;
}

export interface RunningAgent {
  stream: AgentStream;
  /** Scans run so far (the first, change-triggered and periodic ones). */
  readonly scans: number;
  /** Scan now (after any scan in progress); sends a BenchmarkRun when a result changed. Answers whether it sent. */
  scanNow(): Promise<boolean>;
  /** Flow capture, when --flows was given. */
  flows?: FlowCapture;
  stop(): void;
}

/** What makes two scans "the same result": everything but timing. */
function fingerprint(r: ScanReport): string {
  return JSON.stringify([r.benchmark, r.nodeRole, r.checks]);
}

export function startAgent(config: RunConfig, log: Logger): RunningAgent {
  const benchmarks = loadBenchmarks();
  // With a spool the boot id and seqs survive restarts, so resent batches dedup exactly.
  const spool = config.spool ? openSpool(config.spool, log) : undefined;
  const bootId = spool?.bootId ?? randomUUID();
  const info = readNodeInfo(new HostView(config.hostRoot));
  let lastScan: ScanReport | undefined;
  let kubeletVersion = '';
  let nodeLabels: Record<string, string> = {};

  const credentials = config.tls
    ? grpc.credentials.createSsl(
        readFileSync(config.tls.ca),
        readFileSync(config.tls.key),
        readFileSync(config.tls.cert),
      )
    : grpc.credentials.createInsecure();
  // One bound for memory and spool alike: the encoded bytes of unacked messages.
  const outbox = new Outbox({
    log: log.child({ component: 'outbox' }),
    spool,
    maxBytes: config.maxSpoolBytes,
    maxMessages: 100_000,
  });
  const stream = new AgentStream({
    ...DEFAULT_STREAM_OPTIONS,
    outbox,
    address: config.aggregator,
    credentials,
    log: log.child({ component: 'transport' }),
    metadata: () => {
      const md = new grpc.Metadata();
      // Re-read per connection: projected service-account tokens rotate.
      if (config.tokenFile) md.set('authorization', `Bearer ${readFileSync(config.tokenFile, 'utf8').trim()}`);
      return md;
    },
    hello: (): WireHello => ({
      nodeName: config.nodeName,
      nodeLabels,
      role: roleToWire(lastScan?.nodeRole ?? 'worker'),
      kubeletVersion,
      kubernetesVersion: '',
      osImage: info.osImage,
      kernelVersion: info.kernelVersion,
      architecture: info.architecture,
      agentVersion: VERDICT_VERSION,
      bootId,
      protocolVersion: PROTOCOL_VERSION,
    }),
  });

  const watch = new ChangeWatch(config.hostRoot);
  const cluster = clusterFacts(config, log);
  let scans = 0;
  const scanOnce = async (): Promise<boolean> => {
    scans++;
    const { live, node } = await cluster.read();
    if (node?.labels) nodeLabels = node.labels;
    const result = scanNode({
      ...config,
      benchmarks,
      liveKubeletConfig: live,
      kubernetesVersion: config.kubernetesVersion ?? node?.kubeletVersion,
    });
    watch.track(result.touched);
    kubeletVersion =
      node?.kubeletVersion ?? (result.kubernetesVersion ? `v${result.kubernetesVersion.replace(/^v/, '')}` : '');
    const changed = lastScan === undefined || fingerprint(lastScan) !== fingerprint(result.report);
    if (changed) {
      lastScan = result.report;
      const seq = stream.send((s) => ({ kind: 'benchmarkRun', benchmarkRun: reportToWire(result.report, s) }));
      log.info(
        { seq, benchmark: result.report.benchmark.id, role: result.report.nodeRole, ...result.report.summary },
        'benchmark result changed; sending',
      );
    } else {
      log.debug('benchmark result unchanged');
    }
    return changed;
  };
  // Scans never overlap: a request during a scan runs once after it.
  let running: Promise<boolean> = Promise.resolve(false);
  const scanNow = (): Promise<boolean> => {
    running = running.then(scanOnce, scanOnce).catch((err: unknown) => {
      log.error({ err }, 'scan failed');
      return false;
    });
    return running;
  };

  const flows =
    config.flows.length > 0
      ? new FlowCapture({
          sources: config.flows.map(parseFlowSource),
          outbox,
          spool,
          internal: new InternalNetworks(config.internalCidrs),
          goldmaneTls: config.goldmaneTls,
          log: log.child({ component: 'flows' }),
          windowMs: config.flowWindowMs,
          pollMs: Math.min(500, config.flowWindowMs),
          now: Date.now,
        })
      : undefined;
  flows?.start();

  // The first scan runs before connecting, so the Hello carries the detected role.
  void scanNow().then(() => stream.start());
  let debounce: NodeJS.Timeout | undefined;
  const poll = setInterval(() => {
    const what = watch.changed();
    if (what.length === 0) return;
    log.debug({ changed: what.slice(0, 5) }, 'watched files changed');
    clearTimeout(debounce);
    debounce = setTimeout(() => void scanNow(), config.debounceMs);
  }, config.watchIntervalMs);
  poll.unref();
  // The safety re-scan also keeps the process alive: it is the agent's main loop.
  const safety = setInterval(() => void scanNow(), config.rescanIntervalMs);

  return {
    stream,
    get scans() {
      return scans;
    },
    scanNow,
    flows,
    stop() {
      flows?.stop();
      clearInterval(poll);
      clearInterval(safety);
      clearTimeout(debounce);
      stream.stop();
      void cluster.close();
    },
  };
}

/**
 * The spool, or none when it cannot be opened (a full or read-only disk at
 * start): the agent keeps scanning and sending from memory, and says so.
 * A DaemonSet that crash-loops on a full disk reports nothing at all.
 */
function openSpool(dir: string, log: Logger): Spool | undefined {
  try {
    return Spool.open(dir);
  } catch (err) {
    log.error(
      { err: (err as Error).message, spool: dir },
      'cannot open the spool; running without one (flow batches are kept in memory only until acknowledged, and file sources start at their end)',
    );
    return undefined;
  }
}

interface NodeObject {
  metadata?: { labels?: Record<string, string> };
  status?: { nodeInfo?: { kubeletVersion?: string } };
}

/**
 * What the API server can add to a scan: the node's labels and kubelet version
 * (needs `get nodes`), and with --kubelet-configz the kubelet's live config
 * (needs `get nodes/proxy`, which grants the whole kubelet API: opt-in only).
 * Outside a cluster, with no --kubeconfig, there is nothing to ask. Failures are
 * logged and the files on the node stay the source.
 */
function clusterFacts(config: RunConfig, log: Logger) {
  let client: KubeClient | undefined;
  try {
    const conn = config.kubeconfig ? kubeconfigConnection(config.kubeconfig) : inClusterConnection();
    if (conn) client = new KubeClient(conn);
  } catch (err) {
    log.warn({ err: (err as Error).message }, 'cannot use the Kubernetes API; scanning from node files only');
  }
  if (config.kubeletConfigz && !client)
    log.warn('--kubelet-configz needs the Kubernetes API (run in a cluster or pass --kubeconfig); using node files');
  const warned = new Set<string>();
  const warnOnce = (key: string, err: unknown, msg: string) => {
    if (warned.has(key)) return;
    warned.add(key);
    log.warn({ err: (err as Error).message }, msg);
  };
  const node = encodeURIComponent(config.nodeName);
  return {
    async read(): Promise<{
      live?: LiveKubeletConfig;
      node?: { labels: Record<string, string>; kubeletVersion?: string };
    }> {
      if (!client) return {};
      const out: { live?: LiveKubeletConfig; node?: { labels: Record<string, string>; kubeletVersion?: string } } = {};
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
    async close() {
      await client?.close();
    },
  };
}
