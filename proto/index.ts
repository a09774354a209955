import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { packageRoot } from '../common/package-root.js';

/**
 * Loads proto/verdict/v1/agent.proto at start-up (protobufjs reflection through
 * @grpc/proto-loader): the one contract both programs compile from. Options:
 * camelCase fields, 64-bit integers as JS numbers (sequence numbers and Unix
 * milliseconds stay far below 2^53), enums as their names, defaults filled in,
 * and the name of the set oneof member in `kind`.
 */
const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: false,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
};

function protoFile(): string {
  return join(packageRoot(), 'proto', 'verdict', 'v1', 'agent.proto');
}

let cached: grpc.ServiceDefinition | undefined;

/** The AgentService definition, with its (de)serializers. */
export function agentServiceDefinition(): grpc.ServiceDefinition {
  if (!cached) {
    const pkg = protoLoader.loadSync(protoFile(), LOADER_OPTIONS);
    cached = pkg['verdict.v1.AgentService'] as grpc.ServiceDefinition;
  }
  return cached;
}

export type WireRole = 'NODE_ROLE_UNSPECIFIED' | 'NODE_ROLE_WORKER' | 'NODE_ROLE_CONTROL_PLANE';
export type WireCheckStatus =
  'CHECK_STATUS_UNSPECIFIED' | 'CHECK_STATUS_PASS' | 'CHECK_STATUS_FAIL' | 'CHECK_STATUS_SKIP';

export interface WireHello {
  nodeName: string;
  nodeLabels: Record<string, string>;
  role: WireRole;
  kubeletVersion: string;
  kubernetesVersion: string;
  osImage: string;
  kernelVersion: string;
  architecture: string;
  agentVersion: string;
  bootId: string;
  protocolVersion: number;
}

export interface WireCheckResult {
  id: string;
  title: string;
  section: string;
  level: number;
  scored: boolean;
  status: WireCheckStatus;
  skipReason: string;
  expected: string;
  actual: string;
  evidence: string;
  remediation: string;
}

export interface WireBenchmarkRun {
  seq: number;
  benchmarkId: string;
  benchmarkVersion: string;
  role: WireRole;
  startedAtUnixMs: number;
  durationMs: number;
  checks: WireCheckResult[];
  /** Field 8: why the root is not a Kubernetes node; '' (the default) for a real scan. Optional for older encoders. */
  notAssessable?: string;
}

export type WireEndpointKind =
  | 'ENDPOINT_KIND_UNSPECIFIED'
  | 'ENDPOINT_KIND_POD'
  | 'ENDPOINT_KIND_HOST'
  | 'ENDPOINT_KIND_NETWORK_SET'
  | 'ENDPOINT_KIND_NETWORK'
  | 'ENDPOINT_KIND_API_SERVER';

export interface WireFlowEndpoint {
  kind: WireEndpointKind;
  namespace: string;
  name: string;
  labels: string[];
  serviceAccount: string;
  internet: boolean;
  /** Field 7; '' (the default) when none. Optional here so older encoders' objects still type. */
  reserved?: string;
}

export interface WirePolicyRef {
  tier: string;
  namespace: string;
  name: string;
  action: string;
  kind: string;
}

export interface WireFlowRecord {
  source: WireFlowEndpoint | null;
  destination: WireFlowEndpoint | null;
  protocol: string;
  destinationPort: number;
  action: 'FLOW_ACTION_UNSPECIFIED' | 'FLOW_ACTION_ALLOW' | 'FLOW_ACTION_DENY';
  reporter: 'FLOW_REPORTER_UNSPECIFIED' | 'FLOW_REPORTER_SOURCE' | 'FLOW_REPORTER_DESTINATION';
  policies: WirePolicyRef[];
  stagedPolicies: WirePolicyRef[];
  unnamedPolicy: boolean;
  connections: number;
  packets: number;
  bytes: number;
  startUnixMs: number;
  endUnixMs: number;
  policyDecided: boolean;
  /** Field 16; false (the default) from older agents. */
  policyUnknown?: boolean;
}

export interface WireFlowSourceCounts {
  source: string;
  malformed: number;
  lost: number;
}

export interface WireFlowBatch {
  seq: number;
  windowStartUnixMs: number;
  windowEndUnixMs: number;
  records: WireFlowRecord[];
  sources: WireFlowSourceCounts[];
  droppedRecords: number;
}

export type WireAgentMessage =
  | { kind: 'hello'; hello: WireHello }
  | { kind: 'benchmarkRun'; benchmarkRun: WireBenchmarkRun }
  | { kind: 'flowBatch'; flowBatch: WireFlowBatch }
  | { kind: 'heartbeat'; heartbeat: { sentUnixMs: number } };

export interface WireWelcome {
  lastStoredSeq: number;
  aggregatorVersion: string;
  /** 0 when the aggregator did not say (older versions). */
  maxMessageBytes: number;
}
export interface WireAck {
  seq: number;
  duplicate: boolean;
}
export interface WireReject {
  seq: number;
  code: string;
  message: string;
}

export type WireAggregatorMessage =
  { kind: 'welcome'; welcome: WireWelcome } | { kind: 'ack'; ack: WireAck } | { kind: 'reject'; reject: WireReject };

/** The highest protocol version this build speaks. */
export const PROTOCOL_VERSION = 1;
