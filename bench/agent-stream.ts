import * as grpc from '@grpc/grpc-js';
import { agentServiceDefinition, type WireAggregatorMessage } from '../proto/index.js';

/**
 * A simulated agent on the real proto: one gRPC channel and one Connect stream,
 * messages written as already-encoded AgentMessage bytes, answers decoded by
 * the real deserializer. `welcome()` and `ack(seq)` resolve when the answer
 * comes; a Reject or a stream error rejects them.
 */
export interface SimAgent {
  send(encoded: Buffer): void;
  welcome(): Promise<void>;
  ack(seq: number): Promise<void>;
  close(): void;
}

type Waiter = { resolve: () => void; reject: (e: Error) => void };

export function connectAgent(port: number, client?: grpc.Client): SimAgent {
  const def = agentServiceDefinition().Connect as grpc.MethodDefinition<unknown, WireAggregatorMessage>;
  const own = client === undefined;
  const c =
    client ??
    new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), {
      'grpc.max_send_message_length': 8 * 1024 * 1024,
      'grpc.max_receive_message_length': 8 * 1024 * 1024,
      // Its own TCP connection, as a real agent has: grpc-js would share one between clients of the same target.
      'grpc.use_local_subchannel_pool': 1,
    });
  const call = c.makeBidiStreamRequest(
    '/verdict.v1.AgentService/Connect',
    (b: Buffer) => b,
    (b: Buffer) => def.responseDeserialize(b),
    new grpc.Metadata(),
  );
  let welcomed = false;
  let failure: Error | undefined;
  const welcomeWaiters: Waiter[] = [];
  const acked = new Set<number>();
  const ackWaiters = new Map<number, Waiter>();
  const fail = (e: Error) => {
    failure ??= e;
    for (const w of welcomeWaiters.splice(0)) w.reject(e);
    for (const w of ackWaiters.values()) w.reject(e);
    ackWaiters.clear();
  };
  call.on('data', (m: WireAggregatorMessage) => {
    if (m.kind === 'welcome') {
      welcomed = true;
      for (const w of welcomeWaiters.splice(0)) w.resolve();
    } else if (m.kind === 'ack') {
      acked.add(m.ack.seq);
      ackWaiters.get(m.ack.seq)?.resolve();
      ackWaiters.delete(m.ack.seq);
    } else if (m.kind === 'reject') {
      fail(new Error(`rejected seq ${m.reject.seq}: ${m.reject.code} ${m.reject.message}`));
    }
  });
  call.on('error', (e: Error) => fail(e));
  call.on('end', () => fail(new Error('stream ended')));
  return {
    send: (b) => void call.write(b),
    welcome: () =>
      welcomed
        ? Promise.resolve()
        : failure
          ? Promise.reject(failure)
          : new Promise((resolve, reject) => welcomeWaiters.push({ resolve, reject })),
    ack: (seq) =>
      acked.has(seq)
        ? Promise.resolve()
        : failure
          ? Promise.reject(failure)
          : new Promise((resolve, reject) => ackWaiters.set(seq, { resolve, reject })),
    close: () => {
      call.removeAllListeners('error');
      call.on('error', () => undefined);
      call.end();
      if (own) c.close();
    },
  };
}

const encoder = () => agentServiceDefinition().Connect as grpc.MethodDefinition<unknown, unknown>;

/** An AgentMessage (as the camelCase object proto-loader takes), encoded. */
export function encodeAgentMessage(m: Record<string, unknown>): Buffer {
  return encoder().requestSerialize(m);
}

/** Decode an AgentMessage with the aggregator's own deserializer. */
export function decodeAgentMessage(b: Buffer): unknown {
  return encoder().requestDeserialize(b);
}

export function helloMessage(node: string, bootId = 'bench-boot'): Buffer {
  return encodeAgentMessage({
    hello: {
      nodeName: node,
      nodeLabels: { 'kubernetes.io/hostname': node },
      role: 'NODE_ROLE_WORKER',
      kubeletVersion: 'v1.32.4',
      kubernetesVersion: 'v1.32.4',
      osImage: 'Ubuntu 24.04',
      kernelVersion: '6.8.0',
      architecture: 'amd64',
      agentVersion: '0.1.0-bench',
      bootId,
      protocolVersion: 1,
    },
  });
}
