import type { FlowAction, FlowEndpoint, FlowRecord, PolicyRef } from '../../common/flow.js';
import { AGENT_DEFAULTS } from '../defaults.js';

/**
 * The JSON of an endpoint or a policy list, worked out once per object: parsers share these objects between the
 * records that name them (they are never changed once built), so a window keys a record without serializing it.
 */
const jsonOf = new WeakMap<object, string>();

function json(o: object): string {
  let j = jsonOf.get(o);
  if (j === undefined) {
    j = JSON.stringify(o);
    jsonOf.set(o, j);
  }
  return j;
}

/** Slots a window's columns start with; they double as keys come. */
const FIRST_SLOTS = 1024;

/** Bits of a slot's `flags` column. */
const UNNAMED = 1;
const DECIDED = 2;
const UNKNOWN = 4;
const DENY = 8;
const REPORTER_DST = 16;

/**
 * A window's records, one slot per distinct key, stored as columns (issue 13): the endpoints, policy lists and
 * protocol as the window's number for them, the rest as numbers in typed arrays. A window of tens of thousands of
 * keys lives for its whole 15 s, so whatever it keeps outlives young-generation collections and is copied into the
 * old generation: one small Map entry and a few numbers per key cost far less there (and in the garbage a full
 * collection must find after the close) than a copied FlowRecord per key did.
 */
class Slots {
  count = 0;
  /** Window numbers (Parts) of source, destination, policies, staged policies, protocol. */
  source = new Int32Array(FIRST_SLOTS);
  destination = new Int32Array(FIRST_SLOTS);
  policies = new Int32Array(FIRST_SLOTS);
  staged = new Int32Array(FIRST_SLOTS);
  protocol = new Int32Array(FIRST_SLOTS);
  port = new Float64Array(FIRST_SLOTS);
  flags = new Uint8Array(FIRST_SLOTS);
  connections = new Float64Array(FIRST_SLOTS);
  packets = new Float64Array(FIRST_SLOTS);
  bytes = new Float64Array(FIRST_SLOTS);
  startMs = new Float64Array(FIRST_SLOTS);
  endMs = new Float64Array(FIRST_SLOTS);

  /** A new slot; the columns double when full. */
  take(): number {
    if (this.count === this.flags.length) {
      const n = this.count * 2;
      this.source = grow(this.source, new Int32Array(n));
      this.destination = grow(this.destination, new Int32Array(n));
      this.policies = grow(this.policies, new Int32Array(n));
      this.staged = grow(this.staged, new Int32Array(n));
      this.protocol = grow(this.protocol, new Int32Array(n));
      this.port = grow(this.port, new Float64Array(n));
      this.flags = grow(this.flags, new Uint8Array(n));
      this.connections = grow(this.connections, new Float64Array(n));
      this.packets = grow(this.packets, new Float64Array(n));
      this.bytes = grow(this.bytes, new Float64Array(n));
      this.startMs = grow(this.startMs, new Float64Array(n));
      this.endMs = grow(this.endMs, new Float64Array(n));
    }
    return this.count++;
  }
}

function grow<A extends Int32Array | Float64Array | Uint8Array>(from: A, to: A): A {
  to.set(from);
  return to;
}

/**
 * The endpoints, policy lists and protocols one window met, numbered by their JSON: a slot names them by number, and
 * the first object met for a number stands for all (equal JSON, equal object).
 */
class Parts {
  private readonly ids = new Map<string, number>();
  readonly objects: unknown[] = [];

  id(o: object): number {
    return this.idOf(json(o), o);
  }

  idOf(key: string, o: unknown): number {
    let id = this.ids.get(key);
    if (id === undefined) {
      id = this.objects.length;
      this.ids.set(key, id);
      this.objects.push(o);
    }
    return id;
  }
}

/**
 * A closed window: its time range, its drops, and its records, built one at a time from the columns (record(i)) so a
 * window is never held as thousands of record objects at once.
 */
export class ClosedFlowWindow {
  constructor(
    readonly startMs: number,
    readonly endMs: number,
    readonly dropped: number,
    private readonly slots: Slots,
    private readonly parts: Parts,
  ) {}

  /** Records in the window. */
  get size(): number {
    return this.slots.count;
  }

  /** Record `i` (0 ≤ i < size), in the order its key first appeared, as a new object. */
  record(i: number): FlowRecord {
    const s = this.slots;
    const p = this.parts.objects;
    const flags = s.flags[i] as number;
    const f: FlowRecord = {
      source: p[s.source[i] as number] as FlowEndpoint,
      destination: p[s.destination[i] as number] as FlowEndpoint,
      protocol: p[s.protocol[i] as number] as string,
      destinationPort: s.port[i] as number,
      action: (flags & DENY ? 'deny' : 'allow') as FlowAction,
      reporter: flags & REPORTER_DST ? 'dst' : 'src',
      policies: p[s.policies[i] as number] as PolicyRef[],
      stagedPolicies: p[s.staged[i] as number] as PolicyRef[],
      unnamedPolicy: (flags & UNNAMED) !== 0,
      policyDecided: (flags & DECIDED) !== 0,
      connections: s.connections[i] as number,
      packets: s.packets[i] as number,
      bytes: s.bytes[i] as number,
      startMs: s.startMs[i] as number,
      endMs: s.endMs[i] as number,
    };
    // Set only when true, as the parsers set it (common/flow.ts).
    if (flags & UNKNOWN) f.policyUnknown = true;
    return f;
  }

  /** Every record, as new objects (tests; the agent sends them one at a time with record()). */
  get records(): FlowRecord[] {
    return Array.from({ length: this.size }, (_, i) => this.record(i));
  }
}

/**
 * Sums flows that share a key (endpoints, port, action, reporter, policies)
 * while a window is open; `close()` hands back the window's records and opens
 * the next. Counts add up, the time range widens. Bounded: past maxKeys
 * distinct keys in one window, new keys are dropped and counted.
 */
export class FlowWindow {
  /** Each key's slot. */
  private keys = new Map<string, number>();
  private slots = new Slots();
  private parts = new Parts();
  private openedAtMs: number;
  /** Flows not aggregated because the window was full, since the last close(). */
  dropped = 0;

  constructor(
    private readonly now: () => number,
    private readonly maxKeys: number = AGENT_DEFAULTS.flows.windowMaxKeysCount,
  ) {
    this.openedAtMs = now();
  }

  get size(): number {
    return this.keys.size;
  }

  add(f: FlowRecord): void {
    const s = this.slots;
    const source = this.parts.id(f.source);
    const destination = this.parts.id(f.destination);
    const policies = this.parts.id(f.policies);
    const staged = this.parts.id(f.stagedPolicies);
    const flags =
      (f.unnamedPolicy ? UNNAMED : 0) |
      (f.policyDecided ? DECIDED : 0) |
      (f.policyUnknown ? UNKNOWN : 0) |
      (f.action === 'deny' ? DENY : 0) |
      (f.reporter === 'dst' ? REPORTER_DST : 0);
    // The aggregation key: everything but the counts and times (what common/flow.ts flowKey() keys on), as the
    // window's numbers for the endpoints and policy lists and the scalar fields.
    const key = `${source} ${destination} ${policies} ${staged} ${flags} ${f.destinationPort} ${f.protocol}`;
    const hit = this.keys.get(key);
    if (hit !== undefined) {
      s.connections[hit] += f.connections;
      s.packets[hit] += f.packets;
      s.bytes[hit] += f.bytes;
      if (f.startMs < (s.startMs[hit] as number)) s.startMs[hit] = f.startMs;
      if (f.endMs > (s.endMs[hit] as number)) s.endMs[hit] = f.endMs;
      return;
    }
    if (this.keys.size >= this.maxKeys) {
      this.dropped++;
      return;
    }
    const i = s.take();
    this.keys.set(key, i);
    s.source[i] = source;
    s.destination[i] = destination;
    s.policies[i] = policies;
    s.staged[i] = staged;
    s.protocol[i] = this.parts.idOf(`"${f.protocol}`, f.protocol);
    s.port[i] = f.destinationPort;
    s.flags[i] = flags;
    s.connections[i] = f.connections;
    s.packets[i] = f.packets;
    s.bytes[i] = f.bytes;
    s.startMs[i] = f.startMs;
    s.endMs[i] = f.endMs;
  }

  close(): ClosedFlowWindow {
    const end = this.now();
    const out = new ClosedFlowWindow(this.openedAtMs, end, this.dropped, this.slots, this.parts);
    this.keys = new Map();
    this.slots = new Slots();
    this.parts = new Parts();
    this.dropped = 0;
    this.openedAtMs = end;
    return out;
  }
}
