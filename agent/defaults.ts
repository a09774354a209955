/**
 * Every number and default of verdict-agent, in one place, with its unit in
 * its name (Ms: milliseconds, Bytes, Count). The `run` flags' defaults
 * (agent/run.ts RUN_FLAGS) and the usage text come from here; so do the
 * intervals, bounds and limits of the flow capture, the file follower, the
 * flow-source streams, the outbox, the spool and the aggregator stream.
 * Nothing here is read from the environment except where a flag says so.
 */
export const AGENT_DEFAULTS = {
  /** What to scan (`scan` and `run`). */
  scan: {
    benchmark: 'auto',
    role: 'auto',
    level: '2',
    /** `scan --format`. */
    format: 'table',
    /** `benchmarks --format`. */
    benchmarksFormat: 'table',
  },
  run: {
    /** Where the node's / is mounted in the agent's container (`--host-root`). */
    hostRoot: '/host',
    /** Safety re-scan even when no watched file changed (`--rescan-interval-ms`). */
    rescanIntervalMs: 5 * 60_000,
    rescanIntervalMinMs: 1000,
    /** How often watched files are checked for changes (`--watch-interval-ms`). */
    watchIntervalMs: 1000,
    watchIntervalMinMs: 100,
    /** Quiet time after a watched file changed before re-scanning. */
    debounceMs: 500,
    /** pino level when neither `--log-level` nor LOG_LEVEL says. */
    logLevel: 'info',
    /** Flow aggregation window (`--flow-window-ms`). */
    flowWindowMs: 15_000,
    flowWindowMinMs: 100,
    /**
     * Largest in-memory outbox (encoded bytes) and on-disk spool (the directory's files: batch files as written and
     * the two state slots) (`--max-spool-bytes`).
     */
    maxSpoolBytes: 64 * 1024 * 1024,
    maxSpoolMinBytes: 1024 * 1024,
    /** Unacknowledged messages the agent's outbox keeps; past it the oldest goes, counted. */
    outboxMaxMessagesCount: 100_000,
    /**
     * Hubble: how long (event time) a connection first seen in an event without policy evidence (a trace) is held for
     * its policy-verdict event (`--hubble-hold-ms`). Cilium writes a connection's trace and verdict events for its
     * first packet within microseconds of each other, in either order.
     */
    hubbleHoldMs: 2000,
    hubbleHoldMinMs: 0,
    /**
     * Hubble: connections held at most (`--hubble-hold-max-connections`); past it the oldest is sent without its
     * verdict (policy unknown), counted and warned about.
     */
    hubbleHoldMaxCount: 10_000,
    hubbleHoldMinCount: 1,
  },
  flows: {
    /** Longest time between two reads of the flow files; a shorter window reads as often as it closes. */
    filePollMaxMs: 500,
    /** Distinct flow keys in one window; past it new keys are dropped and counted. */
    windowMaxKeysCount: 50_000,
    /** Malformed input is logged at most this often per source (with a count), never per line. */
    malformedLogIntervalMs: 10_000,
    /** Hubble: how long a connection's 5-tuple is remembered to fold its repeated events into one. */
    hubbleDedupMs: 120_000,
    /** Hubble: 5-tuples remembered at most. */
    hubbleDedupMaxCount: 200_000,
  },
  follow: {
    /** Bytes remembered before the offset: enough to tell one line's end from another's. */
    tailBytes: 64,
    /** Bytes remembered from the start of a file: two generations of a log differ here. */
    headBytes: 256,
    /** Lines longer than this are cut off and reported as malformed. */
    maxLineBytes: 1024 * 1024,
    /** Bytes read per poll, about. */
    pollMaxBytes: 8 * 1024 * 1024,
  },
  /** Hubble Observer and Goldmane streams (agent/flows/sources/following-stream.ts). */
  sourceStream: {
    /** First reconnect delay, doubled per failure up to maxBackoffMs, ±20% jitter. */
    minBackoffMs: 500,
    maxBackoffMs: 30_000,
    backoffJitterRatio: 0.2,
    /** How long a call must survive its channel turning READY to count as connected. */
    readySettleMs: 250,
    /** How long to wait for the channel to turn READY before leaving it to the call's own error. */
    waitForReadyMs: 10_000,
    /** Log an unreadable message the first time and then every this many. */
    unreadableLogEveryCount: 1000,
    /** Hubble: keys of messages at the resume point remembered to drop their repeats after a reconnect. */
    hubbleBoundaryMaxCount: 10_000,
    /** Goldmane: keys of flows at the resume point remembered to drop their repeats after a reconnect. */
    goldmaneBoundaryMaxCount: 100_000,
  },
  /** The stream to the aggregator (agent/transport/stream.ts). */
  stream: {
    /** Unacked messages and bytes kept by a stream's default outbox (tests; the agent passes its own). */
    maxUnackedCount: 1000,
    maxUnackedBytes: 64 * 1024 * 1024,
    minBackoffMs: 500,
    maxBackoffMs: 30_000,
    backoffJitterRatio: 0.2,
    /** Send a heartbeat when nothing was written for this long. */
    heartbeatMs: 60_000,
    /** The heartbeat check runs every heartbeatMs / 2, but not more often than this. */
    heartbeatCheckMinMs: 1000,
    keepaliveTimeMs: 30_000,
    keepaliveTimeoutMs: 10_000,
  },
  outbox: {
    /** What an aggregator that does not say its limit (older versions) accepts. */
    defaultMaxMessageBytes: 4 * 1024 * 1024,
    /** Kept free in every FlowBatch for its header fields and source counts. */
    batchHeadroomBytes: 16 * 1024,
    /**
     * A flow window is cut into FlowBatches of about this size even when the aggregator takes larger ones (a record
     * larger than this still goes, alone, up to the aggregator's limit): gRPC copies each message once more to frame
     * it, and that copy waits in the stream while the aggregator is busy, so smaller batches keep the agent's peak
     * lower at each window's close (issue 13). 256 KiB with maxInFlightBytes: the fewer bytes in flight, the fewer
     * outlive the young generation and wait in the old one for a full collection after they are acked.
     */
    flowBatchTargetBytes: 256 * 1024,
    /**
     * Without a spool, a flow window's next batch is encoded only while the unacked bytes in memory are below this:
     * two or three batches of flowBatchTargetBytes in flight keep the aggregator busy, and the rest of the window waits
     * as its compact columns (agent/flows/window.ts) instead of as encoded bytes plus gRPC's framed copy of each
     * (issue 13).
     */
    maxInFlightBytes: 512 * 1024,
  },
  spool: {
    /** Seqs reserved per state write: a restart skips at most this many. */
    seqBlockCount: 1000,
    /** Size of each of the two state slots. */
    stateSlotBytes: 256 * 1024,
    /** Messages kept unspooled (in memory only) while the disk refuses writes. */
    unspooledMaxCount: 64,
  },
} as const;
