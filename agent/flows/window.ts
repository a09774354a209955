import type { FlowRecord } from '../../common/flow.js';
import { AGENT_DEFAULTS } from '../defaults.js';

/**
 * Sums flows that share a key (endpoints, port, action, reporter, policies)
 * while a window is open; `close()` hands back the window's records and opens
 * the next. Counts add up, the time range widens. Bounded: past maxKeys
 * distinct keys in one window, new keys are dropped and counted.
 */
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

/** A record of the window and its key, as the window's numbers for its parts and its scalar fields. */
interface Keyed {
  record: FlowRecord;
  source: number;
  destination: number;
  policies: number;
  staged: number;
  flags: number;
  port: number;
  action: string;
  reporter: string;
  protocol: string;
}

export class FlowWindow {
  /** The window's records by a hash of their key, each compared in full; `records` keeps them in order of arrival. */
  private keyed = new Map<number, Keyed[]>();
  private records: FlowRecord[] = [];
  /** A small number per distinct endpoint or policy list in this window, so keys are numbers. */
  private parts = new Map<string, number>();
  /** The number of each object seen in this window: a shared endpoint costs one lookup, not its JSON's. */
  private partOf = new WeakMap<object, number>();
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
    return this.records.length;
  }

  private part(o: object): number {
    let id = this.partOf.get(o);
    if (id === undefined) {
      const j = json(o);
      id = this.parts.get(j);
      if (id === undefined) {
        id = this.parts.size;
        this.parts.set(j, id);
      }
      this.partOf.set(o, id);
    }
    return id;
  }

  /**
   * Adds a flow to the record of its key: everything but the counts and times (what common/flow.ts flowKey() keys
   * on), compared as the window's numbers for the endpoints and policy lists and the scalar fields themselves.
   */
  add(f: FlowRecord): void {
    const source = this.part(f.source);
    const destination = this.part(f.destination);
    const policies = this.part(f.policies);
    const staged = this.part(f.stagedPolicies);
    const flags = (f.unnamedPolicy ? 1 : 0) | (f.policyDecided ? 2 : 0) | (f.policyUnknown ? 4 : 0);
    let h = Math.imul(source, 0x9e3779b1) ^ destination;
    h = Math.imul(h, 0x85ebca6b) ^ policies;
    h = Math.imul(h, 0xc2b2ae35) ^ staged;
    h = Math.imul(h, 0x27d4eb2f) ^ (f.destinationPort * 8 + flags);
    h = Math.imul(h ^ (h >>> 15), 0x165667b1) ^ f.protocol.length;
    const bucket = this.keyed.get(h);
    if (bucket)
      for (const k of bucket)
        if (
          k.source === source &&
          k.destination === destination &&
          k.policies === policies &&
          k.staged === staged &&
          k.flags === flags &&
          k.port === f.destinationPort &&
          k.action === f.action &&
          k.reporter === f.reporter &&
          k.protocol === f.protocol
        ) {
          const hit = k.record;
          hit.connections += f.connections;
          hit.packets += f.packets;
          hit.bytes += f.bytes;
          hit.startMs = Math.min(hit.startMs, f.startMs);
          hit.endMs = Math.max(hit.endMs, f.endMs);
          return;
        }
    if (this.records.length >= this.maxKeys) {
      this.dropped++;
      return;
    }
    const record = { ...f };
    this.records.push(record);
    const k: Keyed = {
      record,
      source,
      destination,
      policies,
      staged,
      flags,
      port: f.destinationPort,
      action: f.action,
      reporter: f.reporter,
      protocol: f.protocol,
    };
    if (bucket) bucket.push(k);
    else this.keyed.set(h, [k]);
  }

  close(): { startMs: number; endMs: number; records: FlowRecord[]; dropped: number } {
    const end = this.now();
    const out = { startMs: this.openedAtMs, endMs: end, records: this.records, dropped: this.dropped };
    this.records = [];
    this.keyed = new Map();
    this.parts = new Map();
    this.partOf = new WeakMap();
    this.dropped = 0;
    this.openedAtMs = end;
    return out;
  }
}
