import { policyName, type FlowEndpoint, type FlowRecord } from '../../common/flow.js';

/** One endpoint's network access over an interval (Calico's network-access report, for any CNI). */
export interface NetworkAccessRow {
  /** "namespace/name", or the name alone for endpoints outside namespaces (host endpoints). */
  endpoint: string;
  namespace: string;
  name: string;
  kind: string;
  /** Labels ("key=value") and service account as the latest flow of the interval showed them (report scope). */
  labels: string[];
  serviceAccount: string;
  /**
   * Every ingress observation in the interval was decided by a real policy
   * (never a namespace profile, never a staged policy): Calico's "always
   * protected". null when no ingress observation could tell (none at all, or
   * only records that cannot tell: policyUnknown, counted in unknownAllowedIn).
   */
  ingressProtected: boolean | null;
  egressProtected: boolean | null;
  /** Allowed traffic from / to the public internet. */
  ingressFromInternet: boolean;
  egressToInternet: boolean;
  /** Allowed traffic from / to endpoints in other namespaces. */
  ingressFromOtherNamespaces: boolean;
  egressToOtherNamespaces: boolean;
  /** Connections. */
  allowedIn: number;
  deniedIn: number;
  allowedOut: number;
  deniedOut: number;
  /** Policies that applied to its traffic, "namespace/tier.name" or "tier.name". */
  policies: string[];
  /** Staged policies seen on its traffic: intent, not protection. */
  stagedPolicies: string[];
  /**
   * Peers that sent it traffic (allowed or denied), as flow records name them: Calico's
   * endpointsGeneratingTrafficToThisEndpoint.
   */
  generating: string[];
  /** Peers it sent traffic to: Calico's endpointsReceivingTrafficFromThisEndpoint. */
  receiving: string[];
  /** Other namespaces it was seen to accept / send allowed traffic from / to. */
  ingressNamespaces: string[];
  egressNamespaces: string[];
  /** Allowed connections from / to the internet. */
  internetAllowedIn: number;
  internetAllowedOut: number;
  /**
   * Allowed connections no policy decided (a namespace profile, Cilium with no policy selecting the endpoint), not
   * counting what Cilium lets the endpoint's own node send without policy (reserved:host: kubelet probes) nor records
   * that could not tell (policyUnknown: unknownAllowedIn/Out).
   */
  unprotectedAllowedIn: number;
  unprotectedAllowedOut: number;
  /**
   * Allowed connections of which no event could say whether a policy decided them (policyUnknown: Hubble connections
   * seen only through trace events): no evidence of protection or of its absence, so in neither the protected flags
   * nor unprotectedAllowedIn/Out, and counted here so that nothing is hidden.
   */
  unknownAllowedIn: number;
  unknownAllowedOut: number;
}

export interface NamespaceAccessRow {
  namespace: string;
  endpoints: number;
  ingressProtected: number;
  egressProtected: number;
  allowedIn: number;
  deniedIn: number;
  allowedOut: number;
  deniedOut: number;
  /** allowed / (allowed + denied) connections, in and out, percent with one decimal; null without traffic. */
  allowedPercent: number | null;
}

export interface NetworkAccessSummary {
  endpoints: NetworkAccessRow[];
  namespaces: NamespaceAccessRow[];
}

/** Endpoints that are ours to report on: workloads and host endpoints. Networks and the API server are peers only. */
const REPORTED_KINDS = new Set(['pod', 'host']);

/**
 * Cilium's reserved identities other than world (host, remote-node, health, kube-apiserver, ...) are peers of the
 * cluster's endpoints, never endpoints themselves; a world identity that names a namespace and pod (GKE Dataplane V2)
 * is that pod.
 */
const isReservedPeer = (e: FlowEndpoint) => e.reserved !== undefined && !e.reserved.startsWith('world');

/** The internet: a public address, never an endpoint that has a namespace (a world-labelled in-cluster pod). */
const isInternet = (e: FlowEndpoint) => e.internet && !e.namespace;

/** Cilium allows its own node's traffic to local endpoints without policy (allow-localhost=auto: kubelet probes). */
const isLocalHost = (e: FlowEndpoint) => e.reserved === 'host';

/** How a peer is listed: namespace/name for pods, the name alone for the rest (pub, pvt, reserved:world, a host). */
const peerName = (e: FlowEndpoint) => idOf(e);

const idOf = (e: FlowEndpoint) => (e.namespace ? `${e.namespace}/${e.name}` : e.name);

interface Acc {
  row: NetworkAccessRow;
  /** End of the flow the labels were taken from. */
  labelsAtMs: number;
  /** Observations per direction, and whether every one of them was policy-decided. */
  ingressSeen: number;
  ingressAllDecided: boolean;
  egressSeen: number;
  egressAllDecided: boolean;
  policies: Set<string>;
  staged: Set<string>;
  generating: Set<string>;
  receiving: Set<string>;
  ingressNamespaces: Set<string>;
  egressNamespaces: Set<string>;
}

/**
 * Network access per endpoint and per namespace, from stored flow rows.
 *
 * An endpoint's ingress is what its own side observed (reporter dst), its
 * egress what its own side observed (reporter src): a connection seen at both
 * ends adds once to the source's egress and once to the destination's ingress,
 * never twice to one direction, and a side nobody observed adds nothing (no
 * guessing from the other end). Replies never reach here (agents drop them).
 *
 * The answer depends on the flows as a multiset only (not their order), and
 * flows with the same key may be given one at a time or summed into one
 * (connections added): so a store may hand over one record per distinct flow
 * key of the interval (Store.flowTotals) instead of every bucket row, and the
 * memory held is one accumulator per endpoint, whatever the number of rows.
 */
export function networkAccess(flows: Iterable<FlowRecord>): NetworkAccessSummary {
  const acc = new NetworkAccess();
  for (const f of flows) acc.add(f);
  return acc.summary();
}

/** networkAccess, one flow at a time: add() each flow, then summary(). */
export class NetworkAccess {
  private readonly acc = new Map<string, Acc>();

  private get(e: FlowEndpoint): Acc | undefined {
    if (!REPORTED_KINDS.has(e.kind) || isReservedPeer(e)) return undefined;
    const id = `${e.kind}:${idOf(e)}`;
    let a = this.acc.get(id);
    if (!a) {
      a = {
        row: {
          endpoint: idOf(e),
          namespace: e.namespace,
          name: e.name,
          kind: e.kind,
          labels: e.labels,
          serviceAccount: e.serviceAccount,
          ingressProtected: null,
          egressProtected: null,
          ingressFromInternet: false,
          egressToInternet: false,
          ingressFromOtherNamespaces: false,
          egressToOtherNamespaces: false,
          allowedIn: 0,
          deniedIn: 0,
          allowedOut: 0,
          deniedOut: 0,
          policies: [],
          stagedPolicies: [],
          generating: [],
          receiving: [],
          ingressNamespaces: [],
          egressNamespaces: [],
          internetAllowedIn: 0,
          internetAllowedOut: 0,
          unprotectedAllowedIn: 0,
          unprotectedAllowedOut: 0,
          unknownAllowedIn: 0,
          unknownAllowedOut: 0,
        },
        labelsAtMs: -Infinity,
        ingressSeen: 0,
        ingressAllDecided: true,
        egressSeen: 0,
        egressAllDecided: true,
        policies: new Set(),
        staged: new Set(),
        generating: new Set(),
        receiving: new Set(),
        ingressNamespaces: new Set(),
        egressNamespaces: new Set(),
      };
      this.acc.set(id, a);
    }
    return a;
  }

  add(f: FlowRecord): void {
    const ingress = f.reporter === 'dst';
    const self = ingress ? f.destination : f.source;
    const peer = ingress ? f.source : f.destination;
    const a = this.get(self);
    if (!a) return;
    if (f.endMs > a.labelsAtMs) {
      a.labelsAtMs = f.endMs;
      a.row.labels = self.labels;
      a.row.serviceAccount = self.serviceAccount;
    }
    const allowed = f.action === 'allow';
    // What Cilium lets the local host send without policy says nothing about protection. A record that cannot tell
    // (policyUnknown: trace events only) is unknown, not "decided by no policy": it counts as traffic, but neither
    // for nor against "every observation policy-decided", nor as unprotected traffic for a finding; its allowed
    // connections are counted apart (unknownAllowedIn/Out).
    const unknown = f.policyUnknown === true;
    const evidence = !unknown && !(ingress && isLocalHost(peer));
    const unprotected = allowed && evidence && !f.policyDecided ? f.connections : 0;
    const unknownAllowed = allowed && unknown ? f.connections : 0;
    if (ingress) {
      if (allowed) a.row.allowedIn += f.connections;
      else a.row.deniedIn += f.connections;
      if (evidence) {
        a.ingressSeen++;
        a.ingressAllDecided &&= f.policyDecided;
      }
      a.row.unprotectedAllowedIn += unprotected;
      a.row.unknownAllowedIn += unknownAllowed;
      a.generating.add(peerName(peer));
    } else {
      if (allowed) a.row.allowedOut += f.connections;
      else a.row.deniedOut += f.connections;
      if (evidence) {
        a.egressSeen++;
        a.egressAllDecided &&= f.policyDecided;
      }
      a.row.unprotectedAllowedOut += unprotected;
      a.row.unknownAllowedOut += unknownAllowed;
      a.receiving.add(peerName(peer));
    }
    if (allowed && isInternet(peer)) {
      if (ingress) {
        a.row.ingressFromInternet = true;
        a.row.internetAllowedIn += f.connections;
      } else {
        a.row.egressToInternet = true;
        a.row.internetAllowedOut += f.connections;
      }
    }
    // Only a real namespace counts ("-" parses to ''); a host endpoint has none, so both flags stay false for it.
    if (allowed && self.namespace && peer.namespace && peer.namespace !== self.namespace) {
      if (ingress) {
        a.row.ingressFromOtherNamespaces = true;
        a.ingressNamespaces.add(peer.namespace);
      } else {
        a.row.egressToOtherNamespaces = true;
        a.egressNamespaces.add(peer.namespace);
      }
    }
    for (const p of f.policies) a.policies.add(policyName(p));
    for (const p of f.stagedPolicies) a.staged.add(policyName(p));
  }

  summary(): NetworkAccessSummary {
    return summarize(this.acc);
  }
}

function summarize(acc: Map<string, Acc>): NetworkAccessSummary {
  const endpoints = [...acc.values()]
    .map((a) => ({
      ...a.row,
      ingressProtected: a.ingressSeen === 0 ? null : a.ingressAllDecided,
      egressProtected: a.egressSeen === 0 ? null : a.egressAllDecided,
      policies: [...a.policies].sort(),
      stagedPolicies: [...a.staged].sort(),
      generating: [...a.generating].sort(),
      receiving: [...a.receiving].sort(),
      ingressNamespaces: [...a.ingressNamespaces].sort(),
      egressNamespaces: [...a.egressNamespaces].sort(),
    }))
    .sort((x, y) => x.endpoint.localeCompare(y.endpoint));

  return { endpoints, namespaces: namespaceRows(endpoints) };
}

/** What a namespace row is summed from: one endpoint's protection flags and connection counts. */
interface EndpointCounts {
  namespace: string;
  ingressProtected: boolean | null;
  egressProtected: boolean | null;
  allowedIn: number;
  deniedIn: number;
  allowedOut: number;
  deniedOut: number;
}

/** Per namespace, over its endpoints (counts of protected endpoints; allowed share of connections). */
export function namespaceRows(rows: readonly EndpointCounts[]): NamespaceAccessRow[] {
  const byNs = new Map<string, NamespaceAccessRow>();
  for (const e of rows) {
    if (!e.namespace) continue;
    const n = byNs.get(e.namespace) ?? {
      namespace: e.namespace,
      endpoints: 0,
      ingressProtected: 0,
      egressProtected: 0,
      allowedIn: 0,
      deniedIn: 0,
      allowedOut: 0,
      deniedOut: 0,
      allowedPercent: null,
    };
    n.endpoints++;
    if (e.ingressProtected === true) n.ingressProtected++;
    if (e.egressProtected === true) n.egressProtected++;
    n.allowedIn += e.allowedIn;
    n.deniedIn += e.deniedIn;
    n.allowedOut += e.allowedOut;
    n.deniedOut += e.deniedOut;
    byNs.set(e.namespace, n);
  }
  return [...byNs.values()]
    .map((n) => {
      const allowed = n.allowedIn + n.allowedOut;
      const total = allowed + n.deniedIn + n.deniedOut;
      return { ...n, allowedPercent: total === 0 ? null : Math.round((allowed / total) * 1000) / 10 };
    })
    .sort((a, b) => a.namespace.localeCompare(b.namespace));
}
