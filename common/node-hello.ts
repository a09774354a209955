import type { NodeRole } from './scan-report.js';

/** A node as its agent introduced itself (Hello): what the wire boundary hands the store. */
export interface NodeHello {
  name: string;
  role: NodeRole;
  labels: Record<string, string>;
  kubeletVersion: string;
  kubernetesVersion: string;
  osImage: string;
  kernelVersion: string;
  architecture: string;
  agentVersion: string;
  bootId: string;
}
