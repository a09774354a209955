import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { errorCode, errorDetail } from '../common/errors.js';
import { mutualTlsFlags, type MutualTlsFiles } from '../common/mutual-tls.js';
import { AGGREGATOR_DEFAULTS_TABLE, AGGREGATOR_FLAGS, type FlagSpec } from './defaults.js';
import { isCidr } from './network-access/cidr.js';
import { AGGREGATOR_ERRORS, aggregatorError, configError } from './errors.js';

/** The aggregator's whole configuration, validated once at start-up (defaults and units: aggregator/defaults.ts). */
export interface AggregatorConfig {
  /** HOST:PORT for HTTP; ":8080" means every interface. */
  httpAddress: string;
  /** Open HTTP connections at most (readers, scrapers, the audit webhook); past it new ones are closed and counted. */
  httpMaxConnections: number;
  /** HOST:PORT for the agents' gRPC. */
  grpcAddress: string;
  /** sqlite:FILE or postgres://... */
  db: string;
  /** Directory of GlobalReport YAML files (without a cluster). */
  reportsDir?: string;
  /** --cluster-snapshot: Kubernetes YAML of pods, namespaces and policies, for network access without a cluster. */
  clusterSnapshotDir?: string;
  agentTokenFile?: string;
  tls?: MutualTlsFiles;
  /** Largest agent message accepted, bytes. */
  maxMessageBytes: number;
  logLevel: string;
  /** Minute flow buckets older than this are rolled up into hour buckets, ms. */
  flowRollupAfterMs: number;
  /** Flow buckets older than this are deleted, ms. */
  flowRetentionMs: number;
  /** Audit events and watched policy versions older than this are deleted, ms. */
  auditRetentionMs: number;
  /** Static bearer tokens for HTTP readers with per-report grants (no cluster). */
  httpTokensFile?: string;
  /** --signing-key: the Ed25519 key that signs evidence downloads. */
  signingKeyFile?: string;
  /** Scheduled reports start this long after their interval ends, ms. */
  reportStartDelayMs: number;
  /**
   * With PostgreSQL: a report run another replica has had "running" this long is taken to have died with that
   * replica (killed mid-run) and is run again by the leader, ms (keep it above the longest report run).
   */
  reportTakeoverAfterMs: number;
  /** --internal-cidr: networks that are not "the internet" in configured network access, beside the private ranges. */
  internalCidrs: string[];
  /** Changes to policies here raise tamper alerts. */
  protectedNamespaces: string[];
  protectedTiers: string[];
  /** Kubeconfig for the API server; in-cluster configuration when running in a pod. */
  kubeconfig?: string;
  /** The service account agents run as (TokenReview mode). */
  agentServiceAccount: string;
}

type FlagName = keyof typeof AGGREGATOR_FLAGS;

/** The config fields the flag table names: each is a field of AggregatorConfig, and each field but `tls` has a flag. */
type TableFields = {
  [F in FlagName]: (typeof AGGREGATOR_DEFAULTS_TABLE.flags)[F] extends { config: infer C extends string } ? C : never;
}[FlagName];
const TABLE_MATCHES_CONFIG: [
  Exclude<TableFields, keyof AggregatorConfig>,
  Exclude<keyof AggregatorConfig, TableFields | 'tls'>,
] extends [never, never]
  ? true
  : never = true;
void TABLE_MATCHES_CONFIG;
type FlagValues = Partial<Record<FlagName, string | boolean>>;
const FLAG_ENTRIES = Object.entries(AGGREGATOR_FLAGS) as [FlagName, FlagSpec][];

const DURATION_UNITS_MS = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** "90s", "15m", "48h", "30d" → ms. */
function parseDuration(flag: string, v: string): number {
  const m = /^(\d+)(s|m|h|d)$/.exec(v.trim());
  if (!m) throw configError(`${flag} takes a duration like 48h or 30d, not "${v}"`);
  return Number(m[1]) * DURATION_UNITS_MS[m[2] as keyof typeof DURATION_UNITS_MS];
}

/** One parser per kind of flag (aggregator/defaults.ts says which flag is which). */
const PARSERS: Record<FlagSpec['kind'], (flag: string, v: string, spec: FlagSpec) => unknown> = {
  address: (flag, v) => checkAddress(flag, v),
  duration: (flag, v) => parseDuration(flag, v),
  'duration-or-zero': (flag, v) => (v === '0' ? 0 : parseDuration(flag, v)),
  integer: (flag, v, spec) => {
    const n = Number(v);
    const min = spec.min ?? Number.MIN_SAFE_INTEGER;
    if (!Number.isInteger(n) || n < min) throw configError(`${flag} must be an integer of at least ${min}, not "${v}"`);
    return n;
  },
  choice: (flag, v, spec) => {
    const choices = spec.choices ?? [];
    if (!choices.includes(v)) throw configError(`${flag} must be one of ${choices.join(', ')}`);
    return v;
  },
  list: (_flag, v) =>
    v
      .split(',')
      .map((x) => x.trim())
      .filter(Boolean),
  'cidr-list': (flag, v) => {
    const cidrs = v
      .split(',')
      .map((x) => x.trim())
      .filter(Boolean);
    // isCidr reads the prefix length as Number() does ("10.0.0.0/" as /0, "/0x8", "/ 8") and ignores what follows a
    // second "/"; a flag names each network exactly: an address without a zone, then at most a decimal prefix length.
    const bad = cidrs.find((c) => !/^[\dA-Fa-f:.]+(\/(0|[1-9]\d{0,2}))?$/.test(c) || !isCidr(c));
    // JSON quoting keeps a line break in the text from splitting the one-line error.
    if (bad !== undefined)
      throw configError(`${flag}: ${JSON.stringify(bad)} is not a CIDR such as 10.0.0.0/8 or fd00::/8`);
    return cidrs;
  },
  text: (_flag, v) => v,
  boolean: (_flag, v) => v,
};

/** The default a flag takes here: its environment variable's value when set, else the table's. */
function defaultOf(spec: FlagSpec, env: NodeJS.ProcessEnv): string | undefined {
  return (spec.env ? env[spec.env] : undefined) ?? spec.default;
}

/** Flag values (given or default) → the config fields the table maps them to. */
function configFields(values: FlagValues, env: NodeJS.ProcessEnv): Record<string, unknown> {
  const fields: Record<string, unknown> = {};
  for (const [name, spec] of FLAG_ENTRIES) {
    if (!spec.config) continue;
    const given = values[name];
    const text = typeof given === 'string' ? given : defaultOf(spec, env);
    fields[spec.config] = text === undefined ? undefined : PARSERS[spec.kind](`--${name}`, text, spec);
  }
  return fields;
}

/** The configuration with no flags given: every default of aggregator/defaults.ts, parsed. */
export const AGGREGATOR_DEFAULTS = configFields({}, {}) as unknown as AggregatorConfig;

function usageLines(): string[] {
  const left = (name: FlagName, spec: FlagSpec) =>
    `${spec.short ? `-${spec.short}, ` : ''}--${name}${spec.value ? ` ${spec.value}` : ''}`;
  const width = Math.max(...FLAG_ENTRIES.map(([n, s]) => left(n, s).length)) + 2;
  return FLAG_ENTRIES.map(([name, spec]) => {
    const dflt = spec.default ? ` (default ${spec.default}${spec.env ? `, or $${spec.env}` : ''})` : '';
    return `  ${left(name, spec).padEnd(width)}${spec.description}${dflt}`;
  });
}

/** --help, generated from the flag table. */
export const AGGREGATOR_USAGE = `verdict-aggregator: stores node CIS results and flow verdicts, serves the HTTP API and /metrics

Usage: verdict-aggregator [flags]

${usageLines().join('\n')}

In a cluster (or with --kubeconfig) agents authenticate with projected service-account
tokens (TokenReview) and HTTP readers with Kubernetes RBAC (SubjectAccessReview), unless
--agent-token-file / --tls-* / --http-tokens say otherwise.

With no agent credentials the aggregator accepts agents on loopback only.
`;

/** parseArgs' options, from the flag table (defaults are applied afterwards, so $LOG_LEVEL is read per call). */
const PARSE_OPTIONS = Object.fromEntries(
  FLAG_ENTRIES.map(([name, spec]) => [
    name,
    { type: spec.kind === 'boolean' ? 'boolean' : 'string', ...(spec.short ? { short: spec.short } : {}) },
  ]),
) as Record<FlagName, { type: 'string' | 'boolean'; short?: string }>;

export function parseAggregatorArgs(argv: string[], env: NodeJS.ProcessEnv = process.env): AggregatorConfig | 'help' {
  let values: FlagValues;
  try {
    values = parseArgs({ args: argv, options: PARSE_OPTIONS, strict: true }).values as FlagValues;
  } catch (err) {
    if (!errorCode(err).startsWith('ERR_PARSE_ARGS_')) throw err;
    throw aggregatorError(AGGREGATOR_ERRORS.usage, `${(err as Error).message}; run with --help for the options`, {
      cause: err,
    });
  }
  if (values.help) return 'help';
  const text = (v: string | boolean | undefined) => (typeof v === 'string' ? v : undefined);
  const tls = mutualTlsFlags(
    { 'tls-cert': text(values['tls-cert']), 'tls-key': text(values['tls-key']), 'tls-ca': text(values['tls-ca']) },
    AGGREGATOR_ERRORS.configInvalid,
  );
  // A shared token would let any holder report as any node, undoing the per-node binding of client certificates.
  if (tls && values['agent-token-file'])
    throw configError('use either mutual TLS (--tls-*) or --agent-token-file for agents, not both');
  const config = { ...configFields(values, env), tls } as unknown as AggregatorConfig;
  if (config.flowRetentionMs < config.flowRollupAfterMs)
    throw configError('--flow-retention must not be shorter than --flow-rollup-after');
  return config;
}

/** The settings the start-up log line names (flags marked `log` in aggregator/defaults.ts), by config field. */
export function loggedSettings(config: AggregatorConfig): Record<string, unknown> {
  const fields: Record<string, unknown> = {};
  for (const [, spec] of FLAG_ENTRIES)
    if (spec.log && spec.config) fields[spec.config] = (config as unknown as Record<string, unknown>)[spec.config];
  return fields;
}

/** "HOST:PORT" or ":PORT"; port 0 picks a free one. */
export function splitAddress(address: string): { host: string; port: number } {
  const m = /^(\[[^\]]+\]|[^:]*):(\d{1,5})$/.exec(address);
  if (!m) throw configError(`"${address}" is not HOST:PORT or :PORT`);
  const port = Number(m[2]);
  if (port > 65535) throw configError(`port ${port} in "${address}" is out of range`);
  return { host: (m[1] as string).replace(/^\[|\]$/g, '') || '0.0.0.0', port };
}

function checkAddress(flag: string, value: string): string {
  try {
    splitAddress(value);
  } catch (err) {
    throw configError(`${flag}: ${errorDetail(err)}`, { cause: err });
  }
  return value;
}

export function readSecretFile(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch (err) {
    throw configError(`cannot read ${what} ${path}: ${(err as Error).message}`, { cause: err });
  }
}
