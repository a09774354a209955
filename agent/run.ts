import { readFileSync, statSync, type Stats } from 'node:fs';
import { parseArgs } from 'node:util';
import type { Logger } from 'pino';
import { processLogger } from '../common/process-log.js';
import { checkTlsMaterial, mutualTlsFlags } from '../common/mutual-tls.js';
import { VERDICT_VERSION } from '../common/version.js';
import {
  agentOutbox,
  aggregatorStream,
  clusterFacts,
  fileWatch,
  flowCapture,
  openSpool,
  safetyRescan,
  Scanner,
  type Component,
  type RunConfig,
} from './components.js';
import { AGENT_DEFAULTS } from './defaults.js';
import { configError, errorDetail, usageError } from './errors.js';
import { flag, flagLogFields, parseArgsOptions, parseFlagValues, type FlagTable } from './flag-table.js';
import { parseFlowSource, type FlowCapture } from './flows/index.js';
import { InternalNetworks } from './flows/normalize.js';
import { SCAN_FLAGS, SCAN_OPTIONS, scanFlags } from './scan-flags.js';
import type { AgentStream } from './transport/stream.js';

export type { Component, RunConfig } from './components.js';

const D = AGENT_DEFAULTS.run;
const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;

function aggregatorOf(v: string | undefined): string {
  if (!v)
    throw usageError(
      "--aggregator HOST:PORT is required (the aggregator's gRPC address, e.g. verdict-aggregator.verdict:9090)",
    );
  const port = /^.+:(\d{1,5})$/.exec(v)?.[1];
  if (port === undefined) throw usageError(`--aggregator must be HOST:PORT, not "${v}"`);
  if (Number(port) < 1 || Number(port) > 65535)
    throw usageError(`--aggregator "${v}": port ${port} is not a port from 1 to 65535`);
  return v;
}

function flowsOf(v: string[] | undefined): string[] {
  for (const f of v ?? []) {
    try {
      parseFlowSource(f);
    } catch (err) {
      throw usageError(errorDetail(err), { cause: err });
    }
  }
  return v ?? [];
}

function internalCidrsOf(v: string[] | undefined): string[] {
  const cidrs = flag.commaList(v);
  try {
    new InternalNetworks(cidrs);
  } catch (err) {
    throw usageError(`--internal-cidr: ${errorDetail(err)}`, { cause: err });
  }
  return cidrs;
}

/**
 * The `run` subcommand's own flags, one line each: type, default (from AGENT_DEFAULTS), usage text and parse. The
 * parseArgs options, the usage text (agent/cli.ts) and the startup log line are generated from it; the flags that
 * choose what to scan are SCAN_FLAGS (agent/scan-flags.ts).
 */
// prettier-ignore
export const RUN_FLAGS = {
  aggregator: { type: 'string', arg: 'HOST:PORT', help: "the aggregator's gRPC address, e.g. verdict-aggregator.verdict:9090 (required)", parse: aggregatorOf },
  flows: { type: 'string', multiple: true, arg: 'SOURCE', help: 'a flow source: calico:PATH, hubble:PATH, hubble:unix://SOCKET or goldmane:HOST:PORT', parse: flowsOf },
  spool: { type: 'string', arg: 'DIR', help: 'keep unacknowledged messages and flow-source positions on disk across restarts' },
  'token-file': { type: 'string', arg: 'FILE', help: 'bearer token for the aggregator, re-read per connection' },
  'tls-cert': { type: 'string', arg: 'FILE', help: 'mutual TLS to the aggregator: this client certificate (with --tls-key and --tls-ca)' },
  'tls-key': { type: 'string', arg: 'FILE', help: "mutual TLS: the client certificate's key" },
  'tls-ca': { type: 'string', arg: 'FILE', help: "mutual TLS: the CA that signed the aggregator's certificate" },
  'rescan-interval-ms': { type: 'string', default: String(D.rescanIntervalMs), arg: 'MS', help: 'safety re-scan even when no watched file changed', parse: flag.msAtLeast(D.rescanIntervalMinMs) },
  'watch-interval-ms': { type: 'string', default: String(D.watchIntervalMs), arg: 'MS', help: 'how often watched files are checked for changes', parse: flag.msAtLeast(D.watchIntervalMinMs) },
  'log-level': { type: 'string', default: () => process.env.LOG_LEVEL ?? D.logLevel, arg: 'LEVEL', help: `${LOG_LEVELS.join(', ')}; $LOG_LEVEL when not given`, parse: flag.oneOf(LOG_LEVELS) },
  'kubelet-configz': { type: 'boolean', default: false, help: "read the kubelet's live configz through the API server (needs get nodes/proxy)" },
  kubeconfig: { type: 'string', arg: 'FILE', help: 'kubeconfig for the API server (default: in-cluster)' },
  'internal-cidr': { type: 'string', multiple: true, arg: 'CIDR', help: 'addresses inside your network, never "internet", e.g. 10.0.0.0/8', parse: internalCidrsOf },
  'flow-window-ms': { type: 'string', default: String(D.flowWindowMs), arg: 'MS', help: 'flow aggregation window', parse: flag.msAtLeast(D.flowWindowMinMs) },
  'hubble-hold-ms': { type: 'string', default: String(D.hubbleHoldMs), arg: 'MS', help: "Hubble: how long (event time) a connection first seen in a trace event waits for its policy-verdict event", parse: flag.msAtLeast(D.hubbleHoldMinMs) },
  'hubble-hold-max-connections': { type: 'string', default: String(D.hubbleHoldMaxCount), arg: 'N', help: 'Hubble: connections held for their verdict at most; past it the oldest is sent without it (counted, warned)', parse: flag.intAtLeast(D.hubbleHoldMinCount) },
  'max-spool-bytes': { type: 'string', default: String(D.maxSpoolBytes), arg: 'BYTES', help: 'bound on unacknowledged messages: their encoded bytes in memory, and the spool directory on disk (state slots included)', parse: flag.intAtLeast(D.maxSpoolMinBytes) },
  'goldmane-ca': { type: 'string', arg: 'FILE', help: "mTLS to Goldmane: the CA that signed Goldmane's certificate" },
  'goldmane-cert': { type: 'string', arg: 'FILE', help: 'mTLS to Goldmane: a client certificate (with --goldmane-key)' },
  'goldmane-key': { type: 'string', arg: 'FILE', help: "mTLS to Goldmane: the client certificate's key" },
  'goldmane-server-name': { type: 'string', arg: 'NAME', help: "the name in Goldmane's certificate when it is not the address's host" },
} as const satisfies FlagTable;

export function parseRunArgs(args: string[]): RunConfig {
  return readRunArgs(args).config;
}

/** The config, and every flag's value as given or defaulted (for the startup log line). */
function readRunArgs(args: string[]): { config: RunConfig; values: Record<string, unknown> } {
  const { values } = parseArgs({ args, options: { ...SCAN_OPTIONS, ...parseArgsOptions(RUN_FLAGS) }, strict: true });
  const v = parseFlagValues(RUN_FLAGS, values);
  const tls = mutualTlsFlags(v);
  const config: RunConfig = {
    ...scanFlags(values, D.hostRoot),
    aggregator: v.aggregator,
    flows: v.flows,
    spool: v.spool,
    tokenFile: v['token-file'],
    tls,
    rescanIntervalMs: v['rescan-interval-ms'],
    watchIntervalMs: v['watch-interval-ms'],
    debounceMs: D.debounceMs,
    kubeletConfigz: v['kubelet-configz'],
    kubeconfig: v.kubeconfig,
    internalCidrs: v['internal-cidr'],
    flowWindowMs: v['flow-window-ms'],
    hubbleHoldMs: v['hubble-hold-ms'],
    hubbleHoldMaxConnections: v['hubble-hold-max-connections'],
    maxSpoolBytes: v['max-spool-bytes'],
    logLevel: v['log-level'],
    goldmaneTls: goldmaneTlsOf(v),
  };
  return { config, values };
}

function goldmaneTlsOf(v: {
  'goldmane-ca'?: string;
  'goldmane-cert'?: string;
  'goldmane-key'?: string;
  'goldmane-server-name'?: string;
}): RunConfig['goldmaneTls'] {
  const { 'goldmane-ca': ca, 'goldmane-cert': cert, 'goldmane-key': key, 'goldmane-server-name': serverName } = v;
  if (!ca && (cert || key || serverName))
    throw usageError('--goldmane-cert, --goldmane-key and --goldmane-server-name need --goldmane-ca');
  if (Boolean(cert) !== Boolean(key)) throw usageError('--goldmane-cert and --goldmane-key go together');
  return ca ? { caFile: ca, certFile: cert, keyFile: key, serverName } : undefined;
}

/**
 * What `run` reads once at start, checked before anything starts: a bad path is a usage or config error (exit 2, one
 * line), not an errno or an OpenSSL stack from inside a component.
 */
export function checkRunFiles(config: RunConfig): void {
  let root: Stats | undefined;
  try {
    root = statSync(config.hostRoot);
  } catch {
    root = undefined;
  }
  if (!root?.isDirectory())
    throw usageError(`--host-root ${config.hostRoot} ${root ? 'is not a directory' : 'does not exist'}`);
  const read = (flagName: string, file: string): Buffer => {
    try {
      return readFileSync(file);
    } catch (err) {
      throw configError(`cannot read --${flagName} ${file}: ${errorDetail(err)}`, { cause: err });
    }
  };
  if (config.tokenFile && read('token-file', config.tokenFile).toString('utf8').trim() === '')
    throw configError(`--token-file ${config.tokenFile} is empty; it holds the bearer token for the aggregator`);
  if (config.tls)
    checkTlsMaterial({
      cert: read('tls-cert', config.tls.cert),
      key: read('tls-key', config.tls.key),
      ca: read('tls-ca', config.tls.ca),
    });
}

export async function runCommand(args: string[]): Promise<number> {
  const { config, values } = readRunArgs(args);
  checkRunFiles(config);
  const log = processLogger('verdict-agent', config.logLevel, { node: config.nodeName });
  log.info(
    {
      version: VERDICT_VERSION,
      flags: flagLogFields({ ...SCAN_FLAGS, ...RUN_FLAGS }, { ...values, 'host-root': config.hostRoot }),
    },
    'verdict-agent starting',
  );
  const agent = startAgent(config, log);
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      log.info({ signal }, 'shutting down');
      void agent.shutdown(SHUTDOWN_DELIVERY_MS).then(resolve);
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
  /** The components in start order (stop runs them in reverse). */
  readonly components: readonly Component[];
  /** Stop everything at once: what is not delivered stays in the spool (if any). */
  stop(): void;
  /**
   * Stop as on SIGTERM: everything above the aggregator stream first (flow capture queues its last window), then wait
   * at most `boundMs` for the outbox to be acknowledged, then the stream and the rest.
   */
  shutdown(boundMs: number): Promise<void>;
}

/**
 * How long SIGTERM waits for the last flow window (and anything else queued) to be acknowledged: well inside
 * Kubernetes' default 30 s grace period. With a spool, what is not acknowledged by then is sent after the restart.
 */
const SHUTDOWN_DELIVERY_MS = 5000;

/**
 * The composition root of `run`: builds the components, starts them in order and stops them in reverse. Start order:
 * the API-server client, the aggregator stream (it connects after the first scan), flow capture, the scanner (the first
 * scan), the file watch and the safety re-scan; so stop clears the scan timers first, then flow capture's timers and
 * source streams, then the aggregator stream, then the API-server client.
 */
export function startAgent(config: RunConfig, log: Logger): RunningAgent {
  const spool = config.spool ? openSpool(config.spool, log) : undefined;
  const outbox = agentOutbox(config, spool, log);
  const cluster = clusterFacts(config, log);
  const scanner = new Scanner(config, cluster, outbox, log);
  const stream = aggregatorStream(config, outbox, spool, scanner, scanner.firstScan, log);
  const flows = flowCapture(config, outbox, spool, log);
  const components: Component[] = [
    cluster,
    stream,
    ...(flows ? [flows] : []),
    scanner,
    fileWatch(config, scanner, log),
    safetyRescan(config, scanner),
  ];
  for (const c of components) c.start();
  return {
    stream: stream.stream,
    get scans() {
      return scanner.scans;
    },
    scanNow: () => scanner.scanNow(),
    flows: flows?.capture,
    components,
    stop() {
      for (const c of [...components].reverse()) c.stop();
    },
    async shutdown(boundMs: number) {
      const reversed = [...components].reverse();
      const at = reversed.indexOf(stream);
      for (const c of reversed.slice(0, at)) c.stop();
      let timer: NodeJS.Timeout | undefined;
      const delivered = await Promise.race([
        outbox.flushed().then(() => true),
        new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), boundMs))),
      ]);
      clearTimeout(timer);
      if (!delivered)
        log.warn(
          { unacknowledged: outbox.size, boundMs },
          'stopping with messages not yet acknowledged by the aggregator',
        );
      for (const c of reversed.slice(at)) c.stop();
    },
  };
}
