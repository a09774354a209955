/**
 * Every number and default of verdict-aggregator, written once (issue 12).
 *
 * `flags` is the command line: aggregator/config.ts builds parseArgs' options,
 * the --help text, the validated AggregatorConfig and its defaults from it, and
 * the start-up log line names the flags marked `log`. The other groups are the
 * program's fixed settings (intervals, limits, timeouts of its components);
 * aggregator/main.ts passes them to the components it builds. Units are in the
 * names (Ms, Seconds, Bytes, Runs, Entries).
 *
 * This file imports nothing, so any module may read it without a cycle.
 */

/** How a flag's text becomes a config value (aggregator/config.ts has one parser per kind). */
export type FlagKind =
  /** HOST:PORT or :PORT. */
  | 'address'
  /** "90s", "15m", "48h", "30d" → ms. */
  | 'duration'
  /** A duration, or "0" for none. */
  | 'duration-or-zero'
  /** An integer of at least `min`. */
  | 'integer'
  /** One of `choices`. */
  | 'choice'
  /** Comma-separated, blanks dropped. */
  | 'list'
  /** Comma-separated CIDRs (IPv4 or IPv6), each checked. */
  | 'cidr-list'
  /** The text as given. */
  | 'text'
  /** --help. */
  | 'boolean';

/** One command-line flag: how parseArgs reads it, its default, what --help says, where it lands in the config. */
export interface FlagSpec {
  readonly kind: FlagKind;
  readonly short?: string;
  /** The default as it would be typed; an absent default leaves the setting unset. */
  readonly default?: string;
  /** An environment variable that, when set, replaces the default. */
  readonly env?: string;
  /** What the value is, for --help (a unit or a placeholder). */
  readonly value?: string;
  /** The AggregatorConfig field it sets. */
  readonly config?: string;
  readonly description: string;
  /** For 'integer': the smallest value accepted. */
  readonly min?: number;
  /** For 'choice': the values accepted. */
  readonly choices?: readonly string[];
  /** Named in the "verdict-aggregator started" log line. */
  readonly log?: boolean;
}

const MINUTE_MS = 60_000;

export const AGGREGATOR_DEFAULTS_TABLE = {
  flags: {
    http: {
      kind: 'address',
      default: ':8080',
      value: 'HOST:PORT',
      config: 'httpAddress',
      description: 'HTTP API and /metrics (":PORT" is every interface; port 0 picks a free one)',
    },
    'http-max-connections': {
      kind: 'integer',
      default: '1000',
      min: 1,
      value: 'COUNT',
      config: 'httpMaxConnections',
      description: 'open HTTP connections at most; past it a new connection is closed at once and counted',
      log: true,
    },
    grpc: {
      kind: 'address',
      default: ':9090',
      value: 'HOST:PORT',
      config: 'grpcAddress',
      description: "the agents' gRPC stream",
    },
    db: {
      kind: 'text',
      default: 'sqlite:verdict.db',
      value: 'sqlite:FILE | postgres://...',
      config: 'db',
      description: 'the store: a SQLite file (one replica) or PostgreSQL (several replicas)',
    },
    reports: {
      kind: 'text',
      value: 'DIR',
      config: 'reportsDir',
      description: 'a directory of GlobalReport YAML files (without a cluster), reloaded while running',
    },
    'cluster-snapshot': {
      kind: 'text',
      value: 'DIR',
      config: 'clusterSnapshotDir',
      description:
        'a directory of Kubernetes YAML (kubectl get pods,namespaces,serviceaccounts,services,networkpolicies,... -A -o yaml): the pods and policies network access is configured from without a cluster; read once at start, every document must be usable',
      log: true,
    },
    'internal-cidr': {
      kind: 'cidr-list',
      default: '',
      value: 'CIDR,...',
      config: 'internalCidrs',
      description:
        'networks inside yours beside the private ranges (RFC 1918, 100.64.0.0/10, IPv6 ULA): a policy net wholly inside them is not "the internet" in configured network access (as the agent\'s --internal-cidr for flows)',
      log: true,
    },
    'agent-token-file': {
      kind: 'text',
      value: 'FILE',
      config: 'agentTokenFile',
      description: 'a shared bearer token agents must send (not with --tls-*)',
    },
    'tls-cert': {
      kind: 'text',
      value: 'FILE',
      description: 'mutual TLS for agents: the server certificate (with --tls-key and --tls-ca)',
    },
    'tls-key': { kind: 'text', value: 'FILE', description: "mutual TLS for agents: the server certificate's key" },
    'tls-ca': {
      kind: 'text',
      value: 'FILE',
      description: "mutual TLS for agents: the CA that signs agents' certificates",
    },
    'max-message-bytes': {
      kind: 'integer',
      default: String(4 * 1024 * 1024),
      min: 1024,
      value: 'BYTES',
      config: 'maxMessageBytes',
      description: 'the largest agent message accepted',
      log: true,
    },
    'log-level': {
      kind: 'choice',
      default: 'info',
      env: 'LOG_LEVEL',
      choices: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'],
      value: 'LEVEL',
      config: 'logLevel',
      description: 'pino log level',
    },
    'flow-rollup-after': {
      kind: 'duration',
      default: '48h',
      value: 'DURATION',
      config: 'flowRollupAfterMs',
      description: 'minute flow buckets older than this are rolled up into hours',
      log: true,
    },
    'flow-retention': {
      kind: 'duration',
      default: '30d',
      value: 'DURATION',
      config: 'flowRetentionMs',
      description: 'flow buckets older than this are deleted (not shorter than --flow-rollup-after)',
      log: true,
    },
    'audit-retention': {
      kind: 'duration',
      default: '400d',
      value: 'DURATION',
      config: 'auditRetentionMs',
      description: 'audit events and watched policy versions older than this are deleted',
      log: true,
    },
    'signing-key': {
      kind: 'text',
      value: 'FILE',
      config: 'signingKeyFile',
      description: 'Ed25519 private key (PEM PKCS#8) that signs every evidence download (none: unsigned)',
    },
    'http-tokens': {
      kind: 'text',
      value: 'FILE',
      config: 'httpTokensFile',
      description: 'static bearer tokens for HTTP readers, with per-report grants (no cluster)',
    },
    'report-start-delay': {
      kind: 'duration-or-zero',
      default: '30m',
      value: 'DURATION',
      config: 'reportStartDelayMs',
      description: 'scheduled reports start this long after their interval ends (0: at once)',
      log: true,
    },
    'report-takeover-after': {
      kind: 'duration',
      default: '30m',
      value: 'DURATION',
      config: 'reportTakeoverAfterMs',
      description:
        'with PostgreSQL: a run another replica has had running this long is run again (keep it above the longest run)',
      log: true,
    },
    'protected-namespaces': {
      kind: 'list',
      default: '',
      value: 'a,b',
      config: 'protectedNamespaces',
      description: 'changes to policies in these namespaces raise tamper alerts',
      log: true,
    },
    'protected-tiers': {
      kind: 'list',
      default: '',
      value: 'a,b',
      config: 'protectedTiers',
      description: 'changes to Calico policies in these tiers raise tamper alerts',
      log: true,
    },
    kubeconfig: {
      kind: 'text',
      value: 'FILE',
      config: 'kubeconfig',
      description: 'the API server to use (default: in-cluster configuration when running in a pod)',
    },
    'agent-service-account': {
      kind: 'text',
      default: 'system:serviceaccount:verdict:verdict-agent',
      value: 'USER',
      config: 'agentServiceAccount',
      description: 'the service account agents run as (TokenReview mode)',
    },
    help: { kind: 'boolean', short: 'h', description: 'print this help' },
  },

  /** Periodic work of the composition root. */
  timers: {
    /** --reports DIR is read again this often. */
    reportsDirReloadIntervalMs: 5000,
    /** The leader writes GlobalReport statuses this often (and after each run). */
    reportStatusSyncIntervalMs: 15_000,
    /** Flow roll-up and flow/audit retention run this often (and once at start). */
    retentionIntervalMs: 10 * MINUTE_MS,
    /** With cluster access, the leader evaluates CIS section 5 against the API this often. */
    clusterCisIntervalMs: 5 * MINUTE_MS,
    /** Whether a section 5 evaluation is due (this replica leads, the interval passed) is asked this often. */
    clusterCisCheckIntervalMs: 15_000,
  },

  /** The agents' gRPC ingest (IngestOptions; maxMessageBytes comes from --max-message-bytes). */
  ingest: {
    /** Messages read ahead of the store before a stream is paused. */
    maxInFlightMessages: 16,
    /** Store failures of one message (while the store answers) before it is rejected as unstorable. */
    maxStoreAttempts: 3,
    /** How long an answer may wait for an agent that stopped reading before its stream is ended. */
    drainTimeoutMs: 60_000,
    /** On shutdown, open streams are given this long to end before the server is forced down. */
    closeGraceMs: 2000,
    /**
     * A benchmark run started further than this past the aggregator's clock is refused (invalid): the store keeps
     * a node's latest run by start time, so one run dated in the future would hide every later scan of its node.
     */
    maxClockAheadMs: 10 * MINUTE_MS,
  },

  /** The report scheduler (SchedulerOptions; start delay and takeover come from their flags). */
  scheduler: {
    /** Scheduling rounds (create due runs, start queued ones) run this often. */
    tickIntervalMs: 10_000,
    maxConcurrentRuns: 5,
    /** Retries of a failed run, waiting retryBaseDelayMs doubling per attempt up to retryMaxDelayMs. */
    maxRetries: 6,
    retryBaseDelayMs: MINUTE_MS,
    retryMaxDelayMs: 30 * MINUTE_MS,
    /** Missed scheduled intervals created at most, per report, when a leader resumes. */
    maxCatchUpRuns: 100,
    /** On-demand runs of one report queued or running at once; POST .../runs answers 429 past it. */
    maxWaitingOnDemandRuns: 10,
    /** Runs read per report for its last success (metrics) and its GlobalReport status. */
    recentRunsPerReport: 100,
  },

  /**
   * CIS score bands (compute/cis.ts): a node scoring at least highThreshold percent is rated high, at least
   * medThreshold medium, else low. Calico's defaults; a GlobalReport's spec.cis and the HTTP API's query override them.
   */
  cis: {
    highThreshold: 100,
    medThreshold: 50,
  },

  /** Kubernetes: watches, the scheduler Lease, TokenReview. */
  kube: {
    /** A WATCH request is ended by the API server after this and re-opened. */
    watchTimeoutSeconds: 300,
    /** A watch silent past its timeout plus this is a dead connection: it is watched again (list if needed). */
    watchIdleGraceMs: MINUTE_MS,
    /** Failed list/watch retries back off from the first to the second, doubling. */
    watchRetryInitialMs: 1000,
    watchRetryMaxMs: 30_000,
    /** A resource type the cluster lacks (CRD not installed) is looked for again this often. */
    missingResourceRetryMs: 30_000,
    /** Stored nodes the cluster no longer lists are forgotten at most this often. */
    nodeReconcileIntervalMs: MINUTE_MS,
    /** Positive TokenReview answers are reused this long, for at most this many tokens. */
    tokenReviewCacheMs: MINUTE_MS,
    tokenReviewCacheMaxEntries: 10_000,
    /** The Lease that elects the one replica scheduling reports. */
    leaseName: 'verdict-report-scheduler',
    /** Its namespace when neither $POD_NAMESPACE nor the service-account mount says. */
    leaseNamespaceFallback: 'verdict',
    leaseDurationSeconds: 15,
    /** The holder renews at most this often. */
    leaseRenewIntervalMs: 5000,
    /** Where the pod's namespace is read from (service-account mount). */
    namespaceFile: '/var/run/secrets/kubernetes.io/serviceaccount/namespace',
  },
} as const satisfies {
  flags: Record<string, FlagSpec>;
  timers: Record<string, number>;
  ingest: Record<string, number>;
  scheduler: Record<string, number>;
  cis: Record<string, number>;
  kube: Record<string, number | string>;
};

/** The command line, flag name → spec. */
export const AGGREGATOR_FLAGS: Readonly<Record<keyof typeof AGGREGATOR_DEFAULTS_TABLE.flags, FlagSpec>> =
  AGGREGATOR_DEFAULTS_TABLE.flags;
