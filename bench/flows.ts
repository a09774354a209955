import type { FlowEndpoint, FlowRecord } from '../common/flow.js';

/**
 * Synthetic flows shaped like a real cluster's: 40 namespaces of 25 workloads
 * with three labels and a service account each, one enforced policy per
 * allowed flow, one in ten denied, one in twenty from the internet, one in
 * eight across namespaces. `i` picks the endpoints and port, so flows with
 * different `i` are (mostly) different keys.
 */
export const NAMESPACES = 40;
export const WORKLOADS = 25;

export function workload(ns: number, w: number): FlowEndpoint {
  const name = `app-${w}`;
  return {
    kind: 'pod',
    namespace: `ns-${ns}`,
    name,
    labels: [`app=${name}`, `pod-template-hash=7d9f8b6c${w}`, `team=team-${ns % 7}`],
    serviceAccount: name,
    internet: false,
  };
}

const INTERNET: FlowEndpoint = {
  kind: 'network',
  namespace: '',
  name: 'pub',
  labels: [],
  serviceAccount: '',
  internet: true,
};

export function syntheticFlow(i: number, startMs: number): FlowRecord {
  const ns = i % NAMESPACES;
  const w = Math.floor(i / NAMESPACES) % WORKLOADS;
  const dst = workload(ns, (w + 1 + (i % 3)) % WORKLOADS);
  const source = i % 20 === 0 ? INTERNET : i % 8 === 0 ? workload((ns + 1) % NAMESPACES, w) : workload(ns, w);
  const deny = i % 10 === 0;
  return {
    source,
    destination: dst,
    protocol: i % 17 === 0 ? 'udp' : 'tcp',
    destinationPort: 1024 + (Math.floor(i / (NAMESPACES * WORKLOADS)) % 4000),
    action: deny ? 'deny' : 'allow',
    reporter: i % 2 === 0 ? 'src' : 'dst',
    policies: [
      {
        tier: 'default',
        namespace: dst.namespace,
        name: deny ? 'default-deny' : `allow-${dst.name}`,
        action: deny ? 'deny' : 'allow',
        kind: 'NetworkPolicy',
      },
    ],
    stagedPolicies: [],
    unnamedPolicy: false,
    policyDecided: true,
    connections: 1 + (i % 5),
    packets: 10 + (i % 100),
    bytes: 1000 + (i % 10_000),
    startMs: startMs + (i % 30) * 1000,
    endMs: startMs + (i % 30) * 1000 + 500,
  };
}
