import type { FlowEndpoint, FlowRecord, PolicyRef } from '../../common/flow.js';

// A flow's key as one string, and the key ids the store has seen, kept in memory: a batch's flows find their
// flow_keys ids here without building dictionary JSON or asking the database, and only new keys go to the
// dictionary tables (flow-buckets.ts resolveKeyIds).

/**
 * Text fields are joined by NUL: no stored text holds one (common/flow.ts textProblem refuses it, and PostgreSQL
 * text cannot), so fields cannot run into each other; lists carry their length. Two flows have the same text exactly
 * when they have the same key (the same endpoint and policy-list JSON, protocol, port, action, reporter and flags,
 * policyUnknown and each endpoint's reserved identity included).
 * The parts go into one reused array and are joined once: one flat string per flow, where concatenating them made a
 * tree of partial strings that hashing then had to flatten (several times slower, profiled).
 */
const parts: (string | number)[] = [];

/**
 * The text of endpoints and policy lists that cannot change: frozen ones, as proto/flow-batch-decode.ts hands out
 * (one object for every record naming the same endpoint, in this batch and the next). Each is joined once, not once
 * per flow (the key text was 14% of ingest's CPU, profiled). The parts joined by NUL are the parts of the whole key,
 * so the key text is the same either way.
 */
const frozenText = new WeakMap<object, string>();

function endpointText(e: FlowEndpoint): string {
  if (!Object.isFrozen(e)) return endpointTextOnce(e);
  let text = frozenText.get(e);
  if (text === undefined) frozenText.set(e, (text = endpointTextOnce(e)));
  return text;
}

function endpointTextOnce(e: FlowEndpoint): string {
  // reserved: '' when absent (an empty reserved identity is no identity: the same endpoint, the same JSON).
  const p: (string | number)[] = [
    e.kind,
    e.namespace,
    e.name,
    e.serviceAccount,
    e.internet ? 1 : 0,
    e.reserved ?? '',
    e.labels.length,
  ];
  for (const l of e.labels) p.push(l);
  return p.join('\u0000');
}

function policiesText(ps: PolicyRef[]): string {
  if (ps.length === 0) return '0';
  if (!Object.isFrozen(ps)) return policiesTextOnce(ps);
  let text = frozenText.get(ps);
  if (text === undefined) frozenText.set(ps, (text = policiesTextOnce(ps)));
  return text;
}

function policiesTextOnce(ps: PolicyRef[]): string {
  const p: (string | number)[] = [ps.length];
  for (const x of ps) p.push(x.tier, x.namespace, x.name, x.action, x.kind);
  return p.join('\u0000');
}

/** The flow's key (what flow_keys holds, endpoints and policy lists included) as one string. */
export function flowKeyText(f: FlowRecord): string {
  parts.length = 0;
  parts.push(
    endpointText(f.source),
    endpointText(f.destination),
    f.protocol,
    f.destinationPort,
    f.action,
    f.reporter,
    policiesText(f.policies),
    policiesText(f.stagedPolicies),
    f.unnamedPolicy ? 1 : 0,
    f.policyDecided ? 1 : 0,
    f.policyUnknown ? 1 : 0,
  );
  return parts.join('\u0000');
}

/** A flow's key parts: a flow record without its counts and times. */
export type FlowKeyParts = Omit<FlowRecord, 'connections' | 'packets' | 'bytes' | 'startMs' | 'endMs'>;

/**
 * The key parts back from flowKeyText: a new key's dictionary entries are made from these, so a row waiting for its
 * transaction holds its key text only, not the flow record it came from (nor, through it, the decoded batch).
 */
export function flowKeyParts(key: string): FlowKeyParts {
  const p = key.split('\u0000');
  let i = 0;
  const next = (): string => p[i++]!;
  const endpoint = (): FlowEndpoint => {
    const [kind, namespace, name, serviceAccount, internet, reserved] = [
      next(),
      next(),
      next(),
      next(),
      next(),
      next(),
    ];
    const labels = p.slice(i + 1, i + 1 + Number(p[i]));
    i += 1 + labels.length;
    const e: FlowEndpoint = {
      kind: kind as FlowEndpoint['kind'],
      namespace,
      name,
      labels,
      serviceAccount,
      internet: internet === '1',
    };
    if (reserved) e.reserved = reserved;
    return e;
  };
  const policies = (): PolicyRef[] =>
    Array.from({ length: Number(next()) }, () => ({
      tier: next(),
      namespace: next(),
      name: next(),
      action: next(),
      kind: next(),
    }));
  const source = endpoint();
  const destination = endpoint();
  const [protocol, port, action, reporter] = [next(), next(), next(), next()];
  const policyList = policies();
  const staged = policies();
  const [unnamed, decided, unknown] = [next(), next(), next()];
  return {
    source,
    destination,
    protocol,
    destinationPort: Number(port),
    action: action as FlowRecord['action'],
    reporter: reporter as FlowRecord['reporter'],
    policies: policyList,
    stagedPolicies: staged,
    unnamedPolicy: unnamed === '1',
    policyDecided: decided === '1',
    // Only when set, as the agent sends it (common/flow.ts).
    ...(unknown === '1' ? { policyUnknown: true } : {}),
  };
}

/** Flow key ids kept in memory: some 300 bytes each with their key text, so about 30 MiB at most. */
export const FLOW_KEY_IDS_KEPT = 100_000;

/**
 * Key ids kept in memory: flowKeyText → flow_keys.id. Bounded (the oldest entry goes first; a key that went is
 * looked up in the database again, at the cost of a query). An id is added only once the transaction that found or
 * made it has committed (`staged`), so a rolled-back insert never leaves an id that does not exist. Pruning the
 * dictionaries starts a new epoch (SQLite: in the store's write queue; PostgreSQL: flow_dictionary_epoch, which any
 * replica may raise), read at the start of every transaction that writes flow buckets: `useEpoch` forgets every id
 * kept, and ids learned under an older epoch are not kept.
 */
export class FlowKeyIds {
  private readonly ids = new Map<string, number>();
  private epoch = 0;

  constructor(private readonly max: number) {}

  get size(): number {
    return this.ids.size;
  }

  get(key: string): number | undefined {
    return this.ids.get(key);
  }

  /** The dictionaries were pruned (here, or by another replica: a new epoch): forget every id. */
  useEpoch(epoch: number): void {
    if (epoch === this.epoch) return;
    this.epoch = epoch;
    this.ids.clear();
  }

  /** A transaction's view: the ids kept, and those it learns, kept once it commits (at the epoch it read). */
  staged(): StagedKeyIds {
    return new StagedKeyIds(this, this.epoch);
  }

  /** @internal StagedKeyIds.commit */
  keep(learned: Map<string, number>, epoch: number): void {
    // Learned under an epoch that has since ended: a prune may have removed them.
    if (epoch !== this.epoch) return;
    for (const [k, id] of learned) {
      if (this.ids.size >= this.max) this.ids.delete(this.ids.keys().next().value as string);
      this.ids.set(k, id);
    }
  }
}

export class StagedKeyIds {
  private readonly learned = new Map<string, number>();

  constructor(
    private readonly kept: FlowKeyIds,
    private epoch: number,
  ) {}

  get(key: string): number | undefined {
    return this.kept.get(key) ?? this.learned.get(key);
  }

  set(key: string, id: number): void {
    this.learned.set(key, id);
  }

  /** The transaction read prune epoch `epoch` (PostgreSQL): what it learns belongs to that epoch. */
  atEpoch(epoch: number): void {
    this.kept.useEpoch(epoch);
    this.epoch = epoch;
  }

  /** The transaction committed: keep what it learned. */
  commit(): void {
    this.kept.keep(this.learned, this.epoch);
  }
}
