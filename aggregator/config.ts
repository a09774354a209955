import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

/** The aggregator's whole configuration, validated once at start-up. */
export interface AggregatorConfig {
  /** HOST:PORT for HTTP; ":8080" means every interface. */
  httpAddress: string;
  /** HOST:PORT for the agents' gRPC. */
  grpcAddress: string;
  /** sqlite:FILE or postgres://... */
  db: string;
  /** Directory of GlobalReport YAML files (without a cluster). */
  reportsDir?: string;
  agentTokenFile?: string;
  tls?: { cert: string; key: string; ca: string };
  /** Largest agent message accepted, bytes. */
  maxMessageBytes: number;
  logLevel: string;
  /** Minute flow buckets older than this are rolled up into hour buckets, ms (default 48 h). */
  flowRollupAfterMs: number;
  /** Flow buckets older than this are deleted, ms (default 30 days). */
  flowRetentionMs: number;
  /**
   * Audit events and watched policy versions older than this are deleted, ms (default 400 days: a year of audits and
   * then some).
   */
  auditRetentionMs: number;
  /** Static bearer tokens for HTTP readers with per-report grants (no cluster). */
  httpTokensFile?: string;
  /** Scheduled reports start this long after their interval ends, ms (default 30 min). */
  reportStartDelayMs: number;
  /**
   * With PostgreSQL: a report run another replica has had "running" this long is
   * taken to have died with that replica (killed mid-run) and is run again by the
   * leader, ms (default 30 min; keep it above the longest report run).
   */
  reportTakeoverAfterMs: number;
  /** Changes to policies here raise tamper alerts. */
  protectedNamespaces: string[];
  protectedTiers: string[];
  /** Kubeconfig for the API server; in-cluster configuration when running in a pod. */
  kubeconfig?: string;
  /** The service account agents run as (TokenReview mode). */
  agentServiceAccount: string;
}

/** Every default in one place (the flags' defaults say the same). */
export const AGGREGATOR_DEFAULTS: AggregatorConfig = {
  httpAddress: ':8080',
  grpcAddress: ':9090',
  db: 'sqlite:verdict.db',
  maxMessageBytes: 4 * 1024 * 1024,
  logLevel: 'info',
  flowRollupAfterMs: 48 * 3_600_000,
  flowRetentionMs: 30 * 86_400_000,
  reportStartDelayMs: 30 * 60_000,
  reportTakeoverAfterMs: 30 * 60_000,
  auditRetentionMs: 400 * 86_400_000,
  protectedNamespaces: [],
  protectedTiers: [],
  agentServiceAccount: 'system:serviceaccount:verdict:verdict-agent',
};

/** "90s", "15m", "48h", "30d" → ms. */
function parseDuration(flag: string, v: string): number {
  const m = /^(\d+)(s|m|h|d)$/.exec(v.trim());
  if (!m) throw new ConfigError(`${flag} takes a duration like 48h or 30d, not "${v}"`);
  return Number(m[1]) * { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 's' | 'm' | 'h' | 'd'];
}

export const AGGREGATOR_USAGE = `verdict-aggregator: stores node CIS results and flow verdicts, serves the HTTP API and /metrics

Usage:
  verdict-aggregator [--http :8080] [--grpc :9090] [--db sqlite:FILE | postgres://...]
                     [--reports DIR] [--agent-token-file FILE | --tls-cert F --tls-key F --tls-ca F]
                     [--max-message-bytes N] [--log-level info]
                     [--flow-rollup-after 48h] [--flow-retention 30d] [--audit-retention 400d]
                     [--http-tokens FILE] [--report-start-delay 30m] [--report-takeover-after 30m]
                     [--protected-namespaces a,b] [--protected-tiers security]
                     [--kubeconfig FILE] [--agent-service-account system:serviceaccount:verdict:verdict-agent]

In a cluster (or with --kubeconfig) agents authenticate with projected service-account
tokens (TokenReview) and HTTP readers with Kubernetes RBAC (SubjectAccessReview), unless
--agent-token-file / --tls-* / --http-tokens say otherwise.

With no agent credentials the aggregator accepts agents on loopback only.
`;

class ConfigError extends Error {
  readonly code = 'VERDICT_CONFIG_INVALID';
  constructor(message: string) {
    super(`VERDICT_CONFIG_INVALID: ${message}`);
  }
}

export function parseAggregatorArgs(argv: string[]): AggregatorConfig | 'help' {
  const { values } = parseArgs({
    args: argv,
    options: {
      http: { type: 'string', default: ':8080' },
      grpc: { type: 'string', default: ':9090' },
      db: { type: 'string', default: 'sqlite:verdict.db' },
      reports: { type: 'string' },
      'agent-token-file': { type: 'string' },
      'tls-cert': { type: 'string' },
      'tls-key': { type: 'string' },
      'tls-ca': { type: 'string' },
      'max-message-bytes': { type: 'string', default: String(4 * 1024 * 1024) },
      'log-level': { type: 'string', default: process.env.LOG_LEVEL ?? 'info' },
      'flow-rollup-after': { type: 'string', default: '48h' },
      'flow-retention': { type: 'string', default: '30d' },
      'audit-retention': { type: 'string', default: '400d' },
      'http-tokens': { type: 'string' },
      'report-start-delay': { type: 'string', default: '30m' },
      'report-takeover-after': { type: 'string', default: '30m' },
      'protected-namespaces': { type: 'string', default: '' },
      'protected-tiers': { type: 'string', default: '' },
      kubeconfig: { type: 'string' },
      'agent-service-account': { type: 'string', default: 'system:serviceaccount:verdict:verdict-agent' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) return 'help';
  const tlsParts = [values['tls-cert'], values['tls-key'], values['tls-ca']];
  if (tlsParts.some(Boolean) && !tlsParts.every(Boolean))
    throw new ConfigError('mutual TLS needs all of --tls-cert, --tls-key and --tls-ca');
  // A shared token would let any holder report as any node, undoing the per-node binding of client certificates.
  if (tlsParts.every(Boolean) && values['agent-token-file'])
    throw new ConfigError('use either mutual TLS (--tls-*) or --agent-token-file for agents, not both');
  const maxMessageBytes = Number(values['max-message-bytes']);
  if (!Number.isInteger(maxMessageBytes) || maxMessageBytes < 1024)
    throw new ConfigError(
      `--max-message-bytes must be an integer of at least 1024, not "${values['max-message-bytes']}"`,
    );
  if (!['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].includes(values['log-level'] as string))
    throw new ConfigError(`--log-level must be one of fatal, error, warn, info, debug, trace, silent`);
  const flowRollupAfterMs = parseDuration('--flow-rollup-after', values['flow-rollup-after'] as string);
  const flowRetentionMs = parseDuration('--flow-retention', values['flow-retention'] as string);
  if (flowRetentionMs < flowRollupAfterMs)
    throw new ConfigError('--flow-retention must not be shorter than --flow-rollup-after');
  const list = (v: unknown) =>
    String(v ?? '')
      .split(',')
      .map((x) => x.trim())
      .filter(Boolean);
  return {
    auditRetentionMs: parseDuration('--audit-retention', values['audit-retention'] as string),
    httpTokensFile: values['http-tokens'],
    kubeconfig: values.kubeconfig,
    agentServiceAccount: values['agent-service-account'] as string,
    reportStartDelayMs:
      values['report-start-delay'] === '0'
        ? 0
        : parseDuration('--report-start-delay', values['report-start-delay'] as string),
    reportTakeoverAfterMs: parseDuration('--report-takeover-after', values['report-takeover-after'] as string),
    protectedNamespaces: list(values['protected-namespaces']),
    protectedTiers: list(values['protected-tiers']),
    flowRollupAfterMs,
    flowRetentionMs,
    httpAddress: checkAddress('--http', values.http as string),
    grpcAddress: checkAddress('--grpc', values.grpc as string),
    db: values.db as string,
    reportsDir: values.reports,
    agentTokenFile: values['agent-token-file'],
    tls: tlsParts.every(Boolean)
      ? { cert: values['tls-cert'] as string, key: values['tls-key'] as string, ca: values['tls-ca'] as string }
      : undefined,
    maxMessageBytes,
    logLevel: values['log-level'] as string,
  };
}

/** "HOST:PORT" or ":PORT"; port 0 picks a free one. */
export function splitAddress(address: string): { host: string; port: number } {
  const m = /^(\[[^\]]+\]|[^:]*):(\d{1,5})$/.exec(address);
  if (!m) throw new ConfigError(`"${address}" is not HOST:PORT or :PORT`);
  const port = Number(m[2]);
  if (port > 65535) throw new ConfigError(`port ${port} in "${address}" is out of range`);
  return { host: (m[1] as string).replace(/^\[|\]$/g, '') || '0.0.0.0', port };
}

function checkAddress(flag: string, value: string): string {
  try {
    splitAddress(value);
  } catch (err) {
    throw new ConfigError(`${flag}: ${(err as Error).message.replace(/^VERDICT_CONFIG_INVALID: /, '')}`);
  }
  return value;
}

export function readSecretFile(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch (err) {
    throw new ConfigError(`cannot read ${what} ${path}: ${(err as Error).message}`);
  }
}
