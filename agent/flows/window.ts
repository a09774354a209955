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
 * Not part of the key: the first record of the slot said `policyUnknown: false` rather than leaving it out (flowKey()
 * takes both alike), so record(i) gives the field back as the first record had it, as a copy of it did.
 */
const UNKNOWN_FALSE = 32;

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
 * the first object met for a number stands for all (equal JSON, equal object). Parsers hand the same object again for
 * the same endpoint or list, so an object seen before is found by identity, without its JSON.
 */
class Parts {
  private readonly ids = new Map<string, number>();
  private readonly byObject = new Map<object, number>();
  private readonly protocols = new Map<string, number>();
  readonly objects: unknown[] = [];

  id(o: object): number {
    let id = this.byObject.get(o);
    if (id === undefined) {
      const key = json(o);
      id = this.ids.get(key);
      if (id === undefined) {
        id = this.objects.push(o) - 1;
        this.ids.set(key, id);
      }
      this.byObject.set(o, id);
    }
    return id;
  }

  protocol(p: string): number {
    let id = this.protocols.get(p);
    if (id === undefined) {
      id = this.objects.push(p) - 1;
      this.protocols.set(p, id);
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
    else if (flags & UNKNOWN_FALSE) f.policyUnknown = false;
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
  private slots = new Slots();
  private parts = new Parts();
  /**
   * The slots by key, an open-addressing hash table over the slots' own columns (each cell a slot + 1, 0 empty; at
   * most half full): a flow's key is its numbers, hashed and compared where they are kept, so no key string is built
   * per flow and none is kept per key.
   */
  private table = new Int32Array(2 * FIRST_SLOTS);
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
    return this.slots.count;
  }

  add(f: FlowRecord): void {
    const s = this.slots;
    // The aggregation key: everything but the counts and times (what common/flow.ts flowKey() keys on), as the
    // window's numbers for the endpoints, policy lists and protocol, and the scalar fields.
    const source = this.parts.id(f.source);
    const destination = this.parts.id(f.destination);
    const policies = this.parts.id(f.policies);
    const staged = this.parts.id(f.stagedPolicies);
    const protocol = this.parts.protocol(f.protocol);
    const port = f.destinationPort;
    const flags =
      (f.unnamedPolicy ? UNNAMED : 0) |
      (f.policyDecided ? DECIDED : 0) |
      (f.policyUnknown ? UNKNOWN : 0) |
      (f.action === 'deny' ? DENY : 0) |
      (f.reporter === 'dst' ? REPORTER_DST : 0);
    const table = this.table;
    const mask = table.length - 1;
    let at = hashKey(source, destination, policies, staged, protocol, flags, port) & mask;
    for (let cell = table[at] as number; cell !== 0; at = (at + 1) & mask, cell = table[at] as number) {
      const i = cell - 1;
      if (
        s.source[i] === source &&
        s.destination[i] === destination &&
        s.policies[i] === policies &&
        s.staged[i] === staged &&
        s.protocol[i] === protocol &&
        ((s.flags[i] as number) & ~UNKNOWN_FALSE) === flags &&
        Object.is(s.port[i], port)
      ) {
        s.connections[i] += f.connections;
        s.packets[i] += f.packets;
        s.bytes[i] += f.bytes;
        if (f.startMs < (s.startMs[i] as number)) s.startMs[i] = f.startMs;
        if (f.endMs > (s.endMs[i] as number)) s.endMs[i] = f.endMs;
        return;
      }
    }
    if (s.count >= this.maxKeys) {
      this.dropped++;
      return;
    }
    const i = s.take();
    table[at] = i + 1;
    s.source[i] = source;
    s.destination[i] = destination;
    s.policies[i] = policies;
    s.staged[i] = staged;
    s.protocol[i] = protocol;
    s.port[i] = port;
    s.flags[i] = flags | (f.policyUnknown === false ? UNKNOWN_FALSE : 0);
    s.connections[i] = f.connections;
    s.packets[i] = f.packets;
    s.bytes[i] = f.bytes;
    s.startMs[i] = f.startMs;
    s.endMs[i] = f.endMs;
    if (2 * s.count > table.length) this.rehash();
  }

  /** The table at twice its size, every slot placed again. */
  private rehash(): void {
    const s = this.slots;
    const table = new Int32Array(this.table.length * 2);
    const mask = table.length - 1;
    for (let i = 0; i < s.count; i++) {
      let at =
        hashKey(
          s.source[i] as number,
          s.destination[i] as number,
          s.policies[i] as number,
          s.staged[i] as number,
          s.protocol[i] as number,
          (s.flags[i] as number) & ~UNKNOWN_FALSE,
          s.port[i] as number,
        ) & mask;
      while (table[at] !== 0) at = (at + 1) & mask;
      table[at] = i + 1;
    }
    this.table = table;
  }

  close(): ClosedFlowWindow {
    const end = this.now();
    const out = new ClosedFlowWindow(this.openedAtMs, end, this.dropped, this.slots, this.parts);
    this.slots = new Slots();
    this.parts = new Parts();
    this.table = new Int32Array(2 * FIRST_SLOTS);
    this.dropped = 0;
    this.openedAtMs = end;
    return out;
  }
}

/** A key's hash: its numbers mixed (MurmurHash3's multiply-xorshift steps); a port not an integer hashes as 0. */
function hashKey(
  source: number,
  destination: number,
  policies: number,
  staged: number,
  protocol: number,
  flags: number,
  port: number,
): number {
  let h = mix(mix(mix(mix(0x9747b28c, source), destination), policies), staged);
  h = mix(mix(mix(h, protocol), flags), port | 0);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  return h >>> 0;
}

function mix(h: number, k: number): number {
  h = Math.imul(h ^ k, 0xcc9e2d51);
  h = (h << 15) | (h >>> 17);
  return Math.imul(h, 0x1b873593);
}
