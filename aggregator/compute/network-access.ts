import { policyName, type FlowEndpoint, type FlowRecord } from '../../common/flow.js';

/** One endpoint's network access over an interval (Calico's network-access report, for any CNI). */
export interface NetworkAccessRow {
  /** "namespace/name", or the name alone for endpoints outside namespaces (host endpoints). */
  endpoint: string;
  namespace: string;
  name: string;
  kind: string;
  /**
   * Every ingress observation in the interval was decided by a real policy
   * (never a namespace profile, never a staged policy): Calico's "always
   * protected". null when no ingress was observed at all.
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

const idOf = (e: FlowEndpoint) => (e.namespace ? `${e.namespace}/${e.name}` : e.name);

interface Acc {
  row: NetworkAccessRow;
  /** Observations per direction, and whether every one of them was policy-decided. */
  ingressSeen: number;
  ingressAllDecided: boolean;
  egressSeen: number;
  egressAllDecided: boolean;
  policies: Set<string>;
  staged: Set<string>;
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
    if (!REPORTED_KINDS.has(e.kind)) return undefined;
    const id = `${e.kind}:${idOf(e)}`;
    let a = this.acc.get(id);
    if (!a) {
      a = {
        row: {
          endpoint: idOf(e),
          namespace: e.namespace,
          name: e.name,
          kind: e.kind,
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
        },
        ingressSeen: 0,
        ingressAllDecided: true,
        egressSeen: 0,
        egressAllDecided: true,
        policies: new Set(),
        staged: new Set(),
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
    const allowed = f.action === 'allow';
    if (ingress) {
      if (allowed) a.row.allowedIn += f.connections;
      else a.row.deniedIn += f.connections;
      a.ingressSeen++;
      a.ingressAllDecided &&= f.policyDecided;
    } else {
      if (allowed) a.row.allowedOut += f.connections;
      else a.row.deniedOut += f.connections;
      a.egressSeen++;
      a.egressAllDecided &&= f.policyDecided;
    }
    if (allowed && peer.internet) {
      if (ingress) a.row.ingressFromInternet = true;
      else a.row.egressToInternet = true;
    }
    // Only a real namespace counts ("-" parses to ''); a host endpoint has none, so both flags stay false for it.
    if (allowed && self.namespace && peer.namespace && peer.namespace !== self.namespace) {
      if (ingress) a.row.ingressFromOtherNamespaces = true;
      else a.row.egressToOtherNamespaces = true;
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
    }))
    .sort((x, y) => x.endpoint.localeCompare(y.endpoint));

  const byNs = new Map<string, NamespaceAccessRow>();
  for (const e of endpoints) {
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
  const namespaces = [...byNs.values()]
    .map((n) => {
      const allowed = n.allowedIn + n.allowedOut;
      const total = allowed + n.deniedIn + n.deniedOut;
      return { ...n, allowedPercent: total === 0 ? null : Math.round((allowed / total) * 1000) / 10 };
    })
    .sort((a, b) => a.namespace.localeCompare(b.namespace));
  return { endpoints, namespaces };
}
