import { randomUUID } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { FLOW_SOURCES, type FlowRecord } from '../../common/flow.js';
import type { ScanReport } from '../../common/scan-report.js';
import { VERDICT_VERSION } from '../../common/version.js';
import {
  agentServiceDefinition,
  type WireAgentMessage,
  type WireAggregatorMessage,
  type WireHello,
} from '../../proto/index.js';
import { TimeSlice } from '../../common/time-slice.js';
import { benchmarkRunFromWire, flowBatchFromWireInSlices, helloFromWire } from '../../proto/from-wire.js';
import { AGGREGATOR_DEFAULTS } from '../config.js';
import { AGGREGATOR_DEFAULTS_TABLE } from '../defaults.js';
import type { AggregatorMetrics } from '../metrics.js';
import type { NodeHello, Store } from '../store/index.js';
import type { FlowBatchMessage } from '../../proto/from-wire.js';
import type { AgentAuthenticator, AgentIdentity } from './auth.js';
import type { IngestRejectReason } from './reasons.js';
import { flowBatchFromBytes, flowBatchFromBytesInSlices } from '../../proto/flow-batch-decode.js';
import { decodeInSlices, SLICED_DECODE_MIN_BYTES } from './sliced-decode.js';

export interface IngestOptions {
  /** Largest agent message accepted, bytes; larger ones are rejected and counted. */
  maxMessageBytes: number;
  /** Messages read ahead of the store before the stream is paused. */
  maxInFlight: number;
  now: () => number;
  /** Store failures of one message (while the store answers a ping) before it is rejected as unstorable. */
  maxStoreAttempts: number;
  /** How long an answer may wait for a client that stopped reading before its stream is ended, ms. */
  drainTimeoutMs: number;
  /** A benchmark run started further than this past now() is refused as invalid, ms. */
  maxClockAheadMs: number;
}

/** The ingest settings of aggregator/defaults.ts (maxMessageBytes: --max-message-bytes's default). */
export const DEFAULT_INGEST_OPTIONS: IngestOptions = {
  maxMessageBytes: AGGREGATOR_DEFAULTS.maxMessageBytes,
  maxInFlight: AGGREGATOR_DEFAULTS_TABLE.ingest.maxInFlightMessages,
  now: Date.now,
  maxStoreAttempts: AGGREGATOR_DEFAULTS_TABLE.ingest.maxStoreAttempts,
  drainTimeoutMs: AGGREGATOR_DEFAULTS_TABLE.ingest.drainTimeoutMs,
  maxClockAheadMs: AGGREGATOR_DEFAULTS_TABLE.ingest.maxClockAheadMs,
};

/** Failed store attempts per (node, boot id, seq), kept across streams: a resend arrives on a new one. Bounded. */
const MAX_TRACKED_FAILURES = 10_000;

type Undecodable = {
  kind: 'undecodable';
  reason: Extract<IngestRejectReason, 'malformed' | 'oversized'>;
  detail: string;
  bytes: number;
};

/** A flow batch read from its bytes straight into checked records (proto/flow-batch-decode.ts). */
type CheckedFlowBatch = { kind: 'checkedFlowBatch'; batch: FlowBatchMessage };

/**
 * What the wrapped deserializer hands the handler instead of throwing; a large
 * message still `encoded`, for its session to decode in time slices. A flow
 * batch the fast decoder takes never becomes a protobufjs message; anything
 * else (another kind, a batch it leaves to the reference path) is decoded by
 * protobufjs and checked by proto/from-wire.ts.
 */
type Decoded = WireAgentMessage | Undecodable | CheckedFlowBatch | { kind: 'encoded'; buf: Buffer };

const malformed = (err: unknown, buf: Buffer): Undecodable => ({
  kind: 'undecodable',
  reason: 'malformed',
  detail: (err as Error).message,
  bytes: buf.length,
});

/**
 * The gRPC adapter over the store: authenticates a stream, binds it to one
 * node, stores each message and acks it only after the store committed it.
 * Bad input (undecodable frames, oversized or invalid messages) is answered
 * with Reject, counted and logged; the stream and the process keep going.
 */
export class IngestServer {
  private readonly server = new grpc.Server({
    // Hard cap well above the application limit, so oversized messages reach
    // our deserializer (and get a Reject) instead of killing the stream.
    'grpc.max_receive_message_length': 64 * 1024 * 1024,
    'grpc.keepalive_time_ms': 60_000,
    'grpc.keepalive_timeout_ms': 20_000,
    'grpc.http2.min_ping_interval_without_data_ms': 10_000,
    'grpc.keepalive_permit_without_calls': 1,
  });
  /** The stream currently bound to each node; a newer stream replaces an older one. */
  private readonly streams = new Map<string, grpc.ServerDuplexStream<Decoded, WireAggregatorMessage>>();
  private readonly storeFailures = new Map<string, number>();
  /** The one-step protobuf decoder of agent messages. */
  private readonly decode: (buf: Buffer) => WireAgentMessage;

  constructor(
    private readonly store: Store,
    private readonly metrics: AggregatorMetrics,
    private readonly auth: AgentAuthenticator,
    private readonly log: Logger,
    private readonly options: IngestOptions = DEFAULT_INGEST_OPTIONS,
  ) {
    const def = agentServiceDefinition();
    const connect = def.Connect as grpc.MethodDefinition<WireAgentMessage, WireAggregatorMessage>;
    const max = options.maxMessageBytes;
    this.decode = (buf) => connect.requestDeserialize(buf);
    const wrapped: grpc.ServiceDefinition = {
      Connect: {
        ...connect,
        requestDeserialize: (buf: Buffer): Decoded => {
          if (buf.length > max)
            return {
              kind: 'undecodable',
              reason: 'oversized',
              detail: `${buf.length} bytes is over the ${max}-byte limit`,
              bytes: buf.length,
            };
          if (buf.length >= SLICED_DECODE_MIN_BYTES) return { kind: 'encoded', buf };
          const batch = flowBatchFromBytes(buf);
          if (batch) return { kind: 'checkedFlowBatch', batch };
          try {
            return connect.requestDeserialize(buf);
          } catch (err) {
            return malformed(err, buf);
          }
        },
      },
    };
    this.server.addService(wrapped, {
      Connect: (call: grpc.ServerDuplexStream<Decoded, WireAggregatorMessage>) => void this.handle(call),
    });
  }

  /** Bind to HOST:PORT (port 0 picks one); answers the bound port. */
  listen(address: string, credentials = grpc.ServerCredentials.createInsecure()): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.bindAsync(address, credentials, (err, port) => (err ? reject(err) : resolve(port)));
    });
  }

  /** Stop accepting, end open streams, wait briefly for them to finish. */
  async close(): Promise<void> {
    for (const call of this.streams.values()) call.end();
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        this.server.forceShutdown();
        resolve();
      }, AGGREGATOR_DEFAULTS_TABLE.ingest.closeGraceMs);
      t.unref();
      this.server.tryShutdown(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  private async handle(call: grpc.ServerDuplexStream<Decoded, WireAggregatorMessage>): Promise<void> {
    const peer = call.getPeer();
    const auth = await this.auth.authenticate(call.metadata, peer, call.getAuthContext());
    if (!auth.ok) {
      this.metrics.ingestRejected.inc({ reason: 'unauthenticated' });
      this.log.warn({ peer, reason: auth.reason }, 'agent stream refused');
      call.emit('error', {
        code: grpc.status.UNAUTHENTICATED,
        details: `VERDICT_AGENT_UNAUTHENTICATED: ${auth.reason}`,
      });
      return;
    }
    const session = new AgentSession(call, auth.identity, peer, this);
    call.on('data', (msg: Decoded) => session.receive(msg));
    // The agent half-closed (it is stopping): answer what is in flight, then end our side, so its channel can close
    // at once instead of waiting for keepalive to give up on a call the server never finished (about 20 s).
    call.on('end', () => {
      void session.close('agent ended the stream').finally(() => {
        if (!call.cancelled && call.writable) call.end();
      });
    });
    call.on('error', (err: Error) => void session.close(`stream error: ${err.message}`));
    call.on('cancelled', () => void session.close('stream cancelled'));
  }

  /** @internal used by AgentSession */
  get deps() {
    return {
      store: this.store,
      metrics: this.metrics,
      log: this.log,
      options: this.options,
      streams: this.streams,
      decode: this.decode,
    };
  }

  /**
   * A store call for one message failed: is it the message or the store? When
   * the store answers a ping, count the failure against the message; after
   * maxStoreAttempts it is unstorable (answer Reject, so the node's stream
   * moves on). Otherwise the store is out (end the stream; the agent resends).
   * @internal used by AgentSession
   */
  async judgeStoreFailure(key: string, err: unknown): Promise<'retry' | 'unstorable'> {
    // A full disk, a lost connection, a database shutting down: the store is out, whatever the message.
    if (this.store.unavailableReason(err) !== undefined) return 'retry';
    const healthy = await this.store.ping().then(
      () => true,
      () => false,
    );
    if (!healthy) return 'retry';
    const attempts = (this.storeFailures.get(key) ?? 0) + 1;
    if (attempts >= this.options.maxStoreAttempts) {
      this.storeFailures.delete(key);
      return 'unstorable';
    }
    if (this.storeFailures.size >= MAX_TRACKED_FAILURES)
      this.storeFailures.delete(this.storeFailures.keys().next().value as string);
    this.storeFailures.set(key, attempts);
    return 'retry';
  }

  /** @internal a message was stored: forget its failures. */
  stored(key: string): void {
    if (this.storeFailures.size > 0) this.storeFailures.delete(key);
  }
}

/** What a flow batch's metrics need once it is stored: connections summed per action (not one update per record). */
interface FlowBatchSummary {
  connections: Map<string, number>;
  sources: FlowBatchMessage['sources'];
  droppedRecords: number;
}

function flowBatchSummary(batch: FlowBatchMessage): FlowBatchSummary {
  const connections = new Map<string, number>();
  for (const f of batch.flows) connections.set(f.action, (connections.get(f.action) ?? 0) + f.connections);
  return { connections, sources: batch.sources, droppedRecords: batch.droppedRecords };
}

/** A checked message to store: a benchmark run, or a batch's records (`held` until the store takes them). */
type StoreJob = { node: string; seq: number; now: number } & (
  { kind: 'run'; report: ScanReport } | { kind: 'flows'; held: { flows?: FlowRecord[] }; summary: FlowBatchSummary }
);

/** One agent stream: a strict in-order pipeline of messages into the store. */
class AgentSession {
  private node?: string;
  private bootId = '';
  private chain: Promise<void> = Promise.resolve();
  private pending = 0;
  private closed = false;
  private refused = false;
  private failed = false;
  /** The highest seq settled on this stream (Welcome's, then each message's): a correct agent only goes up. */
  private lastSeq = 0;
  /** Names this stream in the store, so only its own end marks the node disconnected. */
  private readonly connectionId = randomUUID();

  constructor(
    private readonly call: grpc.ServerDuplexStream<Decoded, WireAggregatorMessage>,
    private readonly identity: AgentIdentity,
    private readonly peer: string,
    private readonly server: IngestServer,
  ) {}

  receive(msg: Decoded): void {
    const { options } = this.server.deps;
    if (++this.pending >= options.maxInFlight) this.call.pause();
    const held: { msg?: Decoded } = { msg };
    this.chain = this.chain
      .then(() => this.process(held))
      .catch((err: unknown) => {
        // Not a store failure (those are judged in store()): a bug. End the stream rather than lose order.
        this.failed = true;
        this.server.deps.log.error({ node: this.node, err }, 'processing an agent message failed; ending the stream');
        this.call.emit('error', { code: grpc.status.INTERNAL, details: `VERDICT_INTERNAL: ${(err as Error).message}` });
      })
      .finally(() => {
        if (--this.pending < options.maxInFlight) this.call.resume();
      });
  }

  /**
   * One message: decoded and checked (prepare), then stored and answered (commit). A batch waits for its group's
   * commit (store/group-commit.ts) for up to a few hundred ms under load: by then only its store-ready form is held,
   * not the wire message or the decoded records (fewer live objects for the garbage collector to go over).
   */
  private async process(held: { msg?: Decoded }): Promise<void> {
    const job = await this.prepare(held);
    if (job) await this.commit(job);
  }

  /** Decode and check a message, and answer those that are not stored; a message to store becomes a StoreJob. */
  private async prepare(held: { msg?: Decoded }): Promise<StoreJob | undefined> {
    const received = held.msg;
    held.msg = undefined;
    if (this.refused || this.failed || this.closed) return;
    // Decoding, checking and storing a large message (a 4 MiB flow batch holds 90,000 records) takes seconds:
    // each step gives the event loop a turn every few ms, so probes and other agents' streams go on meanwhile.
    const slice = new TimeSlice();
    const msg = received?.kind === 'encoded' ? await this.decodeLarge(received.buf, slice) : received;
    if (
      !msg ||
      !['hello', 'benchmarkRun', 'flowBatch', 'checkedFlowBatch', 'heartbeat', 'undecodable'].includes(
        (msg as { kind?: string }).kind ?? '',
      )
    ) {
      this.refuse(
        'protocol',
        grpc.status.INVALID_ARGUMENT,
        'a message with no known content (an empty or newer AgentMessage)',
      );
      return;
    }
    const { store, metrics, log, options } = this.server.deps;
    if (msg.kind === 'undecodable') {
      metrics.ingestRejected.inc({ reason: msg.reason });
      log.warn(
        { node: this.node, peer: this.peer, bytes: msg.bytes, detail: msg.detail },
        `agent message ${msg.reason}`,
      );
      // The seq is unknown: Reject(0) tells the agent its in-flight head was refused.
      await this.send({
        kind: 'reject',
        reject: {
          seq: 0,
          code: msg.reason === 'oversized' ? 'VERDICT_INGEST_OVERSIZED' : 'VERDICT_INGEST_MALFORMED',
          message: msg.detail,
        },
      });
      return;
    }
    if (!this.node) {
      if (msg.kind !== 'hello')
        this.refuse('protocol', grpc.status.INVALID_ARGUMENT, 'the first message must be Hello');
      else await this.hello(msg.hello);
      return;
    }
    if (msg.kind === 'hello') {
      this.refuse('protocol', grpc.status.INVALID_ARGUMENT, 'Hello sent twice on one stream');
      return;
    }
    const node = this.node;
    const now = options.now();
    if (msg.kind === 'heartbeat') {
      await this.store(0, () => store.touchNode(node, now));
      return;
    }
    const rawSeq =
      msg.kind === 'benchmarkRun'
        ? msg.benchmarkRun?.seq
        : msg.kind === 'flowBatch'
          ? msg.flowBatch?.seq
          : msg.batch.seq;
    const checked =
      msg.kind === 'benchmarkRun'
        ? benchmarkRunFromWire(node, msg.benchmarkRun)
        : msg.kind === 'flowBatch'
          ? await flowBatchFromWireInSlices(msg.flowBatch, slice)
          : ({ ok: true, value: msg.batch } as const);
    const what = msg.kind === 'benchmarkRun' ? 'benchmark run' : 'flow batch';
    const seqForReject = typeof rawSeq === 'number' && Number.isSafeInteger(rawSeq) && rawSeq > 0 ? rawSeq : 0;
    if (!checked.ok) {
      await this.reject(seqForReject, 'invalid', 'VERDICT_INGEST_INVALID', `${what}: ${checked.problem}`);
      return;
    }
    if ('report' in checked.value) {
      const ahead = Date.parse(checked.value.report.startedAt) - now;
      if (ahead > options.maxClockAheadMs) {
        await this.reject(
          checked.value.seq,
          'invalid',
          'VERDICT_INGEST_INVALID',
          `${what}: started_at is ${Math.round(ahead / 1000)} s ahead of the aggregator's clock ` +
            `(at most ${options.maxClockAheadMs / 1000} s allowed); the node's clock needs fixing (NTP)`,
        );
        return;
      }
    }
    const seq = checked.value.seq;
    if (seq <= this.lastSeq) {
      // At or below Welcome's seq, or a seq this stream stored: a resend, stored before. A seq this stream skipped
      // (it stored a higher one first) or refused was never stored: the dedup high-water mark must not swallow it.
      if (seq > this.welcomedSeq && this.skipped(seq)) {
        await this.reject(
          seq,
          'out_of_order',
          'VERDICT_INGEST_OUT_OF_ORDER',
          `${what} seq ${seq} arrived after seq ${this.lastSeq} on this stream and was never stored; seqs must rise`,
        );
        return;
      }
      metrics.ingestDuplicates.inc();
      await this.send({ kind: 'ack', ack: { seq, duplicate: true } });
      return;
    }
    if ('report' in checked.value) return { kind: 'run', node, seq, now, report: checked.value.report };
    const batch = checked.value;
    return { kind: 'flows', node, seq, now, held: { flows: batch.flows }, summary: flowBatchSummary(batch) };
  }

  private async commit(job: StoreJob): Promise<void> {
    const { store, metrics } = this.server.deps;
    const { node, seq, now } = job;
    let duplicate: boolean | undefined;
    if (job.kind === 'run') {
      duplicate = await this.store(
        seq,
        async () => (await store.recordBenchmarkRun(node, this.bootId, seq, job.report, now)).duplicate,
      );
      if (duplicate === undefined) return;
      if (!duplicate) metrics.benchmarkRunsStored.inc({ node });
    } else {
      // Not an async function: no frame of ours keeps the records while the batch waits for its group's commit.
      const write = (): Promise<boolean> => {
        const flows = job.held.flows ?? [];
        job.held.flows = undefined;
        return store.recordFlowBatch(node, this.bootId, seq, flows, now).then((r) => r.duplicate);
      };
      duplicate = await this.store(seq, write);
      if (duplicate === undefined) return;
      if (!duplicate) this.countBatch(node, job.summary);
    }
    if (duplicate) metrics.ingestDuplicates.inc();
    this.advance(seq);
    await this.send({ kind: 'ack', ack: { seq, duplicate } });
  }

  private async decodeLarge(buf: Buffer, slice: TimeSlice): Promise<WireAgentMessage | CheckedFlowBatch | Undecodable> {
    try {
      const batch = await flowBatchFromBytesInSlices(buf, slice);
      if (batch) return { kind: 'checkedFlowBatch', batch };
      return await decodeInSlices(buf, this.server.deps.decode, slice);
    } catch (err) {
      return malformed(err, buf);
    }
  }

  /** The Welcome's lastStoredSeq for this stream. */
  private welcomedSeq = 0;
  /** Seq ranges above welcomedSeq this stream passed over or refused: never stored here. Bounded; rare in practice. */
  private readonly gaps: [number, number][] = [];

  /** Settle `seq` as the stream's newest; the seqs it jumped over become a gap. */
  private advance(seq: number, refused = false): void {
    if (seq > this.lastSeq + 1) this.gaps.push([this.lastSeq + 1, seq - 1]);
    if (refused) this.gaps.push([seq, seq]);
    if (this.gaps.length > 1000) this.gaps.shift();
    this.lastSeq = Math.max(this.lastSeq, seq);
  }

  private skipped(seq: number): boolean {
    return this.gaps.some(([a, b]) => seq >= a && seq <= b);
  }

  private countBatch(node: string, batch: FlowBatchSummary): void {
    const { metrics, log } = this.server.deps;
    for (const [action, n] of batch.connections) metrics.flowsReceived.inc({ node, action }, n);
    for (const src of batch.sources) {
      // The label is what the agent says: keep it to the known kinds, so no agent can grow the series without bound.
      const kind = src.source.split(':')[0] ?? '';
      const source = (FLOW_SOURCES as readonly string[]).includes(kind) ? kind : 'other';
      if (src.malformed > 0) metrics.flowsMalformed.inc({ source }, src.malformed);
      if (src.lost > 0) metrics.flowsLost.inc({ source }, src.lost);
    }
    if (batch.droppedRecords > 0) {
      metrics.agentFlowsDropped.inc({ node }, batch.droppedRecords);
      log.warn({ node, dropped: batch.droppedRecords }, 'the agent dropped flow records before sending them');
    }
  }

  /**
   * Run one store call for message `seq` (0: not a sequenced message). A failure
   * either ends the stream (the store is out: the agent resends after
   * reconnecting, and nothing later on this stream is stored, so the dedup
   * high-water mark never passes the failed seq) or, when the same message keeps
   * failing while the store answers, rejects it. Answers undefined on failure.
   */
  private async store<T>(seq: number, fn: () => Promise<T>): Promise<T | undefined> {
    const key = `${this.node}|${this.bootId}|${seq}`;
    try {
      const out = await fn();
      if (seq > 0) this.server.stored(key);
      return out;
    } catch (err) {
      const { log, metrics } = this.server.deps;
      const verdict = seq > 0 ? await this.server.judgeStoreFailure(key, err) : 'retry';
      if (verdict === 'unstorable') {
        log.error(
          { node: this.node, seq, err },
          'the store keeps refusing this agent message while it answers otherwise; rejecting it',
        );
        await this.reject(
          seq,
          'unstorable',
          'VERDICT_INGEST_UNSTORABLE',
          `the store refused it ${this.server.deps.options.maxStoreAttempts} times: ${(err as Error).message}`,
        );
        return undefined;
      }
      this.failed = true;
      metrics.ingestStoreFailures.inc();
      log.error(
        { node: this.node, seq, err },
        'storing an agent message failed; ending the stream so the agent resends',
      );
      this.call.emit('error', {
        code: grpc.status.UNAVAILABLE,
        details: `VERDICT_STORE_UNAVAILABLE: ${(err as Error).message}`,
      });
      return undefined;
    }
  }

  private async reject(seq: number, reason: IngestRejectReason, code: string, message: string): Promise<void> {
    const { metrics, log } = this.server.deps;
    metrics.ingestRejected.inc({ reason });
    log.warn({ node: this.node, seq, code, problem: message }, 'agent message rejected');
    // A refused seq is settled (the agent drops it) but never stored: a gap, so a resend of it is refused again.
    if (seq > this.lastSeq) this.advance(seq, true);
    await this.send({ kind: 'reject', reject: { seq, code, message } });
  }

  private async hello(wire: WireHello): Promise<void> {
    const { store, metrics, log, options, streams } = this.server.deps;
    const checked = helloFromWire(wire);
    if (!checked.ok) return this.refuse('invalid', grpc.status.INVALID_ARGUMENT, checked.problem);
    const h = checked.value;
    if (this.identity.node !== undefined && this.identity.node !== h.name) {
      return this.refuse(
        'node_mismatch',
        grpc.status.PERMISSION_DENIED,
        `credentials for node ${this.identity.node} cannot report as ${h.name}`,
      );
    }
    const record: NodeHello = h;
    const stored = await this.store(0, () => store.recordHello(record, options.now(), this.connectionId));
    if (!stored) return;
    const { lastStoredSeq } = stored;
    metrics.nodeSeen(h.name);
    this.node = h.name;
    this.bootId = h.bootId;
    this.lastSeq = lastStoredSeq;
    this.welcomedSeq = lastStoredSeq;
    const previous = streams.get(h.name);
    streams.set(h.name, this.call);
    if (previous && previous !== this.call) previous.end();
    log.info(
      {
        node: this.node,
        bootId: this.bootId,
        lastStoredSeq,
        peer: this.peer,
        auth: this.identity.method,
        agentVersion: h.agentVersion,
      },
      'agent connected',
    );
    await this.send({
      kind: 'welcome',
      welcome: { lastStoredSeq, aggregatorVersion: VERDICT_VERSION, maxMessageBytes: options.maxMessageBytes },
    });
  }

  private refuse(reason: IngestRejectReason, code: grpc.status, details: string): void {
    const { metrics, log } = this.server.deps;
    metrics.ingestRejected.inc({ reason });
    log.warn({ node: this.node, peer: this.peer, reason, details }, 'agent stream refused');
    this.refused = true;
    this.call.emit('error', { code, details: `VERDICT_INGEST_REFUSED: ${details}` });
  }

  /**
   * Write with back-pressure: wait for 'drain' when the stream's buffer is full.
   * A client that stops reading does not hold the session (and its node's
   * "connected") forever: after drainTimeoutMs the stream is cancelled.
   */
  private send(msg: WireAggregatorMessage): Promise<void> {
    if (this.refused || this.closed) return Promise.resolve();
    const payload = { [msg.kind]: (msg as Record<string, unknown>)[msg.kind] } as unknown as WireAggregatorMessage;
    if (this.call.write(payload)) return Promise.resolve();
    const { options, log } = this.server.deps;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.call.off('drain', onDrain);
        this.failed = true;
        log.warn({ node: this.node, peer: this.peer }, 'the agent stopped reading its answers; ending its stream');
        this.call.emit('error', {
          code: grpc.status.DEADLINE_EXCEEDED,
          details: 'VERDICT_INGEST_STALLED: the agent did not read its acks',
        });
        void this.close('agent stopped reading');
        resolve();
      }, options.drainTimeoutMs);
      timer.unref();
      const onDrain = () => {
        clearTimeout(timer);
        resolve();
      };
      this.call.once('drain', onDrain);
    });
  }

  async close(why: string): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const { store, log, options, streams } = this.server.deps;
    await this.chain; // a Hello still being stored must finish before we unbind
    const node = this.node;
    if (!node || streams.get(node) !== this.call) return;
    streams.delete(node);
    log.info({ node, why }, 'agent disconnected');
    await store
      .markDisconnected(node, options.now(), this.connectionId)
      .catch((err: unknown) => log.error({ node, err }, 'marking the node disconnected failed'));
  }
}
