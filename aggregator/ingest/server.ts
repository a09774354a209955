import { randomUUID } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { VERDICT_VERSION } from '../../common/version.js';
import { agentServiceDefinition, type WireAgentMessage, type WireAggregatorMessage, type WireHello } from '../../proto/index.js';
import { flowFromWire, invalidFlowBatch, invalidRun, reportFromWire, roleFromWire } from '../../proto/convert.js';
import type { AggregatorMetrics } from '../metrics.js';
import type { NodeHello, Store } from '../store/index.js';
import type { AgentAuthenticator, AgentIdentity } from './auth.js';

export interface IngestOptions {
  /** Largest agent message accepted, bytes; larger ones are rejected and counted. */
  maxMessageBytes: number;
  /** Messages read ahead of the store before the stream is paused. */
  maxInFlight: number;
  now: () => number;
}

export const DEFAULT_INGEST_OPTIONS: IngestOptions = { maxMessageBytes: 4 * 1024 * 1024, maxInFlight: 16, now: Date.now };

/** What the wrapped deserializer hands the handler instead of throwing. */
type Decoded = WireAgentMessage | { kind: 'undecodable'; reason: 'malformed' | 'oversized'; detail: string; bytes: number };

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
    const wrapped: grpc.ServiceDefinition = {
      Connect: {
        ...connect,
        requestDeserialize: (buf: Buffer): Decoded => {
          if (buf.length > max) return { kind: 'undecodable', reason: 'oversized', detail: `${buf.length} bytes is over the ${max}-byte limit`, bytes: buf.length };
          try {
            return connect.requestDeserialize(buf);
          } catch (err) {
            return { kind: 'undecodable', reason: 'malformed', detail: (err as Error).message, bytes: buf.length };
          }
        },
      },
    };
    this.server.addService(wrapped, { Connect: (call: grpc.ServerDuplexStream<Decoded, WireAggregatorMessage>) => void this.handle(call) });
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
      }, 2000);
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
      call.emit('error', { code: grpc.status.UNAUTHENTICATED, details: `VERDICT_AGENT_UNAUTHENTICATED: ${auth.reason}` });
      return;
    }
    const session = new AgentSession(call, auth.identity, peer, this);
    call.on('data', (msg: Decoded) => session.receive(msg));
    call.on('end', () => void session.close('agent ended the stream'));
    call.on('error', (err: Error) => void session.close(`stream error: ${err.message}`));
    call.on('cancelled', () => void session.close('stream cancelled'));
  }

  /** @internal used by AgentSession */
  get deps() {
    return { store: this.store, metrics: this.metrics, log: this.log, options: this.options, streams: this.streams };
  }
}

/** One agent stream: a strict in-order pipeline of messages into the store. */
class AgentSession {
  private node?: string;
  private bootId = '';
  private chain: Promise<void> = Promise.resolve();
  private pending = 0;
  private closed = false;
  private refused = false;
  private failed = false;
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
    this.chain = this.chain
      .then(() => this.process(msg))
      .catch((err: unknown) => {
        // A store failure: store nothing more from this stream (a later seq would move the dedup
        // high-water mark past the failed one) and end it, so the agent resends after reconnecting.
        this.failed = true;
        this.server.deps.log.error({ node: this.node, err }, 'storing an agent message failed; ending the stream');
        this.call.emit('error', { code: grpc.status.UNAVAILABLE, details: `VERDICT_STORE_UNAVAILABLE: ${(err as Error).message}` });
      })
      .finally(() => {
        if (--this.pending < options.maxInFlight) this.call.resume();
      });
  }

  private async process(msg: Decoded): Promise<void> {
    if (this.refused || this.failed) return;
    if (!msg || !['hello', 'benchmarkRun', 'flowBatch', 'heartbeat', 'undecodable'].includes((msg as { kind?: string }).kind ?? '')) {
      return this.refuse('protocol', grpc.status.INVALID_ARGUMENT, 'a message with no known content (an empty or newer AgentMessage)');
    }
    const { store, metrics, log, options } = this.server.deps;
    if (msg.kind === 'undecodable') {
      metrics.ingestRejected.inc({ reason: msg.reason });
      log.warn({ node: this.node, peer: this.peer, bytes: msg.bytes, detail: msg.detail }, `agent message ${msg.reason}`);
      // The seq is unknown: Reject(0) tells the agent its in-flight head was refused.
      await this.send({ kind: 'reject', reject: { seq: 0, code: msg.reason === 'oversized' ? 'VERDICT_INGEST_OVERSIZED' : 'VERDICT_INGEST_MALFORMED', message: msg.detail } });
      return;
    }
    if (!this.node) {
      if (msg.kind !== 'hello') return this.refuse('protocol', grpc.status.INVALID_ARGUMENT, 'the first message must be Hello');
      return this.hello(msg.hello);
    }
    if (msg.kind === 'hello') return this.refuse('protocol', grpc.status.INVALID_ARGUMENT, 'Hello sent twice on one stream');
    const now = options.now();
    if (msg.kind === 'heartbeat') {
      await store.touchNode(this.node, now);
      return;
    }
    if (msg.kind === 'benchmarkRun') {
      const run = msg.benchmarkRun;
      const problem = run.seq > 0 ? invalidRun(run) : 'seq must be 1 or more';
      if (problem) {
        metrics.ingestRejected.inc({ reason: 'invalid' });
        log.warn({ node: this.node, seq: run.seq, problem }, 'benchmark run rejected');
        await this.send({ kind: 'reject', reject: { seq: run.seq, code: 'VERDICT_INGEST_INVALID', message: problem } });
        return;
      }
      const { duplicate } = await store.recordBenchmarkRun(this.node, this.bootId, run.seq, reportFromWire(this.node, run), now);
      if (duplicate) metrics.ingestDuplicates.inc();
      else metrics.benchmarkRunsStored.inc({ node: this.node });
      await this.send({ kind: 'ack', ack: { seq: run.seq, duplicate } });
      return;
    }
    const batch = msg.flowBatch;
    const problem = batch.seq > 0 ? invalidFlowBatch(batch) : 'seq must be 1 or more';
    if (problem) {
      metrics.ingestRejected.inc({ reason: 'invalid' });
      log.warn({ node: this.node, seq: batch.seq, problem }, 'flow batch rejected');
      await this.send({ kind: 'reject', reject: { seq: batch.seq, code: 'VERDICT_INGEST_INVALID', message: problem } });
      return;
    }
    const flows = batch.records.map(flowFromWire);
    const { duplicate } = await store.recordFlowBatch(this.node, this.bootId, batch.seq, flows, now);
    if (duplicate) {
      metrics.ingestDuplicates.inc();
    } else {
      for (const f of flows) metrics.flowsReceived.inc({ node: this.node, action: f.action }, f.connections);
      for (const src of batch.sources) {
        const source = src.source.split(':')[0] ?? 'unknown';
        if (src.malformed > 0) metrics.flowsMalformed.inc({ source }, src.malformed);
        if (src.lost > 0) metrics.flowsLost.inc({ source }, src.lost);
      }
      if (batch.droppedRecords > 0) {
        metrics.agentFlowsDropped.inc({ node: this.node }, batch.droppedRecords);
        log.warn({ node: this.node, dropped: batch.droppedRecords }, 'the agent dropped flow records (its spool was full)');
      }
    }
    await this.send({ kind: 'ack', ack: { seq: batch.seq, duplicate } });
  }

  private async hello(h: WireHello): Promise<void> {
    const { store, log, options, streams } = this.server.deps;
    if (!h.nodeName || !/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/.test(h.nodeName)) {
      return this.refuse('invalid', grpc.status.INVALID_ARGUMENT, `node name ${JSON.stringify(h.nodeName)} is not a Kubernetes node name`);
    }
    if (!h.bootId) return this.refuse('invalid', grpc.status.INVALID_ARGUMENT, 'boot_id is empty');
    if (this.identity.node !== undefined && this.identity.node !== h.nodeName) {
      return this.refuse('node_mismatch', grpc.status.PERMISSION_DENIED, `credentials for node ${this.identity.node} cannot report as ${h.nodeName}`);
    }
    const record: NodeHello = {
      name: h.nodeName,
      role: roleFromWire(h.role),
      labels: h.nodeLabels ?? {},
      kubeletVersion: h.kubeletVersion,
      kubernetesVersion: h.kubernetesVersion,
      osImage: h.osImage,
      kernelVersion: h.kernelVersion,
      architecture: h.architecture,
      agentVersion: h.agentVersion,
      bootId: h.bootId,
    };
    const { lastStoredSeq } = await store.recordHello(record, options.now(), this.connectionId);
    this.node = h.nodeName;
    this.bootId = h.bootId;
    const previous = streams.get(h.nodeName);
    streams.set(h.nodeName, this.call);
    if (previous && previous !== this.call) previous.end();
    log.info({ node: this.node, bootId: this.bootId, lastStoredSeq, peer: this.peer, auth: this.identity.method, agentVersion: h.agentVersion }, 'agent connected');
    await this.send({ kind: 'welcome', welcome: { lastStoredSeq, aggregatorVersion: VERDICT_VERSION } });
  }

  private refuse(reason: string, code: grpc.status, details: string): void {
    const { metrics, log } = this.server.deps;
    metrics.ingestRejected.inc({ reason });
    log.warn({ node: this.node, peer: this.peer, reason, details }, 'agent stream refused');
    this.refused = true;
    this.call.emit('error', { code, details: `VERDICT_INGEST_REFUSED: ${details}` });
  }

  /** Write with back-pressure: wait for 'drain' when the stream's buffer is full. */
  private send(msg: WireAggregatorMessage): Promise<void> {
    if (this.refused) return Promise.resolve();
    const payload = { [msg.kind]: (msg as Record<string, unknown>)[msg.kind] } as unknown as WireAggregatorMessage;
    if (this.call.write(payload)) return Promise.resolve();
    return new Promise((resolve) => this.call.once('drain', () => resolve()));
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
    await store.markDisconnected(node, options.now(), this.connectionId).catch((err: unknown) => log.error({ node, err }, 'marking the node disconnected failed'));
  }
}
