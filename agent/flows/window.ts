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

export class FlowWindow {
  private records = new Map<string, FlowRecord>();
  /** A small number per distinct endpoint or policy list in this window, so keys stay short. */
  private parts = new Map<string, number>();
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
    return this.records.size;
  }

  /**
   * The aggregation key: everything but the counts and times (what common/flow.ts flowKey() keys on), as the window's
   * numbers for the endpoints and policy lists and the scalar fields.
   */
  private key(f: FlowRecord): string {
    const flags = (f.unnamedPolicy ? 1 : 0) | (f.policyDecided ? 2 : 0) | (f.policyUnknown ? 4 : 0);
    return `${this.part(f.source)} ${this.part(f.destination)} ${this.part(f.policies)} ${this.part(f.stagedPolicies)} ${flags} ${f.action} ${f.reporter} ${f.destinationPort} ${f.protocol}`;
  }

  private part(o: object): number {
    const j = json(o);
    let id = this.parts.get(j);
    if (id === undefined) {
      id = this.parts.size;
      this.parts.set(j, id);
    }
    return id;
  }

  add(f: FlowRecord): void {
    const key = this.key(f);
    const hit = this.records.get(key);
    if (hit) {
      hit.connections += f.connections;
      hit.packets += f.packets;
      hit.bytes += f.bytes;
      hit.startMs = Math.min(hit.startMs, f.startMs);
      hit.endMs = Math.max(hit.endMs, f.endMs);
      return;
    }
    if (this.records.size >= this.maxKeys) {
      this.dropped++;
      return;
    }
    this.records.set(key, { ...f });
  }

  close(): { startMs: number; endMs: number; records: FlowRecord[]; dropped: number } {
    const end = this.now();
    const out = { startMs: this.openedAtMs, endMs: end, records: [...this.records.values()], dropped: this.dropped };
    this.records = new Map();
    this.parts = new Map();
    this.dropped = 0;
    this.openedAtMs = end;
    return out;
  }
}
