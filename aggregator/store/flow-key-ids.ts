import type { FlowEndpoint, FlowRecord, PolicyRef } from '../../common/flow.js';

// A flow's key as a short string of ids, and the key ids the store has seen, kept in memory: a batch's flows find their
// flow_keys ids here without building dictionary JSON or asking the database, and only new keys go to the
// dictionary tables (flow-buckets.ts resolveKeyIds).

/**
 * Ids of the endpoints and policy lists flows name, by their content: the same content has the same id (while it is
 * remembered), and an id never stands for two contents (ids are not reused). A flow's key is then a few numbers (the
 * ids, the port, and ids of its short texts), not the ~250 characters of its endpoints' and policies' text: merged by
 * it and looked up by it in a batch's few thousand rows and in the ids kept, hashed per flow (joining, hashing and
 * comparing that text were 12% of ingest's CPU, profiled, and each a ~270-byte string for the collector).
 *
 * The content is the text of the parts joined by NUL: no stored text holds one (common/flow.ts textProblem refuses
 * it, and PostgreSQL text cannot), so fields cannot run into each other; lists carry their length. Two endpoints (or
 * policy lists) have the same text exactly when they have the same JSON in the dictionaries (reserved included, an
 * empty one as none).
 */
class ContentIds {
  private readonly byText = new Map<string, number>();
  /** Ids of one kind come from one counter: an id names one content of its kind for the life of the process. */
  private next: number;

  constructor(
    private readonly max: number,
    first = 0,
  ) {
    this.next = first;
  }

  /** Forget every content (its next id will be new). */
  clear(): void {
    this.byText.clear();
  }

  id(text: string): number {
    let id = this.byText.get(text);
    if (id === undefined) {
      // Past the bound the texts start again: a content seen again gets a new id (a new key for a known flow key,
      // which costs a dictionary lookup, and merges with its twin after it; never a wrong one).
      if (this.byText.size >= this.max) this.byText.clear();
      this.byText.set(text, (id = this.next++));
    }
    return id;
  }
}

/** Distinct contents remembered per kind: some 100 bytes each. */
const CONTENTS_KEPT = 200_000;

const endpointIds = new ContentIds(CONTENTS_KEPT);
/** From 1: 0 is the empty list's. */
const policyListIds = new ContentIds(CONTENTS_KEPT, 1);
const protocolIds = new ContentIds(CONTENTS_KEPT);
const actionIds = new ContentIds(CONTENTS_KEPT);
const reporterIds = new ContentIds(CONTENTS_KEPT);

/**
 * The ids of endpoints and policy lists that cannot change: frozen ones, as proto/flow-batch-decode.ts hands out (one
 * object for every record naming the same endpoint, in this batch and the next). Each is read once, not once per flow.
 */
const frozenIds = new WeakMap<object, number>();

function endpointId(e: FlowEndpoint): number {
  const known = frozenIds.get(e);
  if (known !== undefined) return known;
  const id = endpointIds.id(endpointTextOnce(e));
  if (Object.isFrozen(e) && Object.isFrozen(e.labels)) frozenIds.set(e, id);
  return id;
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

/** The empty policy list's id (no content to remember; the others count from 1). */
const NO_POLICIES_ID = 0;

function policiesId(ps: PolicyRef[]): number {
  if (ps.length === 0) return NO_POLICIES_ID;
  const known = frozenIds.get(ps);
  if (known !== undefined) return known;
  const id = policyListIds.id(policiesTextOnce(ps));
  if (Object.isFrozen(ps) && ps.every((p) => Object.isFrozen(p))) frozenIds.set(ps, id);
  return id;
}

function policiesTextOnce(ps: PolicyRef[]): string {
  const p: (string | number)[] = [ps.length];
  for (const x of ps) p.push(x.tier, x.namespace, x.name, x.action, x.kind);
  return p.join('\u0000');
}

/** The last two protocols looked up, and their ids: most flows are TCP or UDP. */
let protocolA = 'tcp';
let protocolAId = protocolIds.id(protocolA);
let protocolB = 'udp';
let protocolBId = protocolIds.id(protocolB);

function protocolId(p: string): number {
  if (p === protocolA) return protocolAId;
  if (p === protocolB) return protocolBId;
  const id = protocolIds.id(p);
  protocolB = protocolA;
  protocolBId = protocolAId;
  protocolA = p;
  protocolAId = id;
  return id;
}

/** Ids below this take three characters of a compact key text, a byte each. */
const THREE_BYTES = 2 ** 24;

/**
 * A flow's key (what flow_keys holds, endpoints and policy lists included) as one short string, the same while its
 * parts' ids are remembered and never the same for two keys. Compact: the flags (0-7), then the ids and the port a
 * byte to a character, 20 in all, made flat in one call (a string of joined numbers is a tree of pieces that hashing
 * flattens again; a character past 255 makes String.fromCharCode build the string twice, profiled). Should an id or
 * the port not fit, the numbers joined by commas after a '#' instead, which no compact text starts with.
 */
export function flowKeyText(f: FlowRecord): string {
  const src = endpointId(f.source);
  const dst = endpointId(f.destination);
  const pol = policiesId(f.policies);
  const staged = policiesId(f.stagedPolicies);
  const port = f.destinationPort;
  const protocol = protocolId(f.protocol);
  // The two values each takes (from-wire.ts), without a lookup; anything else (a legacy row's) after them.
  const action = f.action === 'allow' ? 0 : f.action === 'deny' ? 1 : 2 + actionIds.id(f.action);
  const reporter = f.reporter === 'src' ? 0 : f.reporter === 'dst' ? 1 : 2 + reporterIds.id(f.reporter);
  const flags = (f.unnamedPolicy ? 1 : 0) | (f.policyDecided ? 2 : 0) | (f.policyUnknown === true ? 4 : 0);
  if (
    src < THREE_BYTES &&
    dst < THREE_BYTES &&
    pol < THREE_BYTES &&
    staged < THREE_BYTES &&
    protocol < THREE_BYTES &&
    action < 0x100 &&
    reporter < 0x100 &&
    Number.isInteger(port) &&
    port >= 0 &&
    port < 0x10000
  )
    return String.fromCharCode(
      flags,
      action,
      reporter,
      port & 0xff,
      port >>> 8,
      src & 0xff,
      (src >>> 8) & 0xff,
      src >>> 16,
      dst & 0xff,
      (dst >>> 8) & 0xff,
      dst >>> 16,
      pol & 0xff,
      (pol >>> 8) & 0xff,
      pol >>> 16,
      staged & 0xff,
      (staged >>> 8) & 0xff,
      staged >>> 16,
      protocol & 0xff,
      (protocol >>> 8) & 0xff,
      protocol >>> 16,
    );
  return `#${[src, dst, pol, staged, protocol, port, action, reporter, flags].join(',')}`;
}

/** A flow's key parts: a flow record without its counts and times. */
export type FlowKeyParts = Omit<FlowRecord, 'connections' | 'packets' | 'bytes' | 'startMs' | 'endMs'>;

/** `e` when it cannot change (the decoder's), else a frozen copy: a key's parts stay what its text says. */
function fixedEndpoint(e: FlowEndpoint): FlowEndpoint {
  if (Object.isFrozen(e) && Object.isFrozen(e.labels)) return e;
  const copy: FlowEndpoint = {
    kind: e.kind,
    namespace: e.namespace,
    name: e.name,
    labels: Object.freeze([...e.labels]) as string[],
    serviceAccount: e.serviceAccount,
    internet: e.internet,
  };
  if (e.reserved) copy.reserved = e.reserved;
  return Object.freeze(copy);
}

function fixedPolicies(ps: PolicyRef[]): PolicyRef[] {
  if (Object.isFrozen(ps) && ps.every((p) => Object.isFrozen(p))) return ps;
  return Object.freeze(
    ps.map((p) =>
      Object.freeze({ tier: p.tier, namespace: p.namespace, name: p.name, action: p.action, kind: p.kind }),
    ),
  ) as PolicyRef[];
}

/** Key parts by key text: rows of one key, in one batch and from every node, share one object. */
const partsByKey = new Map<string, FlowKeyParts>();

/** Key parts remembered: some 150 bytes each (their endpoints and lists are shared). */
const PARTS_KEPT = 100_000;

/**
 * The key parts of `f`, whose key text is `key`: a new key's dictionary entries are made from these, so a row waiting
 * for its transaction holds these (shared by every row of its key), not the flow record it came from (nor, through
 * it, the decoded batch).
 */
export function flowKeyParts(key: string, f: FlowKeyParts): FlowKeyParts {
  let parts = partsByKey.get(key);
  if (parts === undefined) {
    if (partsByKey.size >= PARTS_KEPT) partsByKey.clear();
    parts = {
      source: fixedEndpoint(f.source),
      destination: fixedEndpoint(f.destination),
      protocol: f.protocol,
      destinationPort: f.destinationPort,
      action: f.action,
      reporter: f.reporter,
      policies: fixedPolicies(f.policies),
      stagedPolicies: fixedPolicies(f.stagedPolicies),
      unnamedPolicy: f.unnamedPolicy,
      policyDecided: f.policyDecided,
      // Only when set, as the agent sends it (common/flow.ts).
      ...(f.policyUnknown === true ? { policyUnknown: true } : {}),
    };
    partsByKey.set(key, parts);
  }
  return parts;
}

/**
 * @internal Tests: what reaching the bounds does, at once. The ids of every content seen so far are forgotten (except
 * those of frozen objects already read), and so are the key parts: a key seen again gets another text.
 */
export function forgetKeyTextIds(): void {
  for (const ids of [endpointIds, policyListIds, protocolIds, actionIds, reporterIds]) ids.clear();
  partsByKey.clear();
}

/** Flow key ids kept in memory: some 100 bytes each with their key text, so about 10 MiB at most. */
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
