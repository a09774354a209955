import { flowKey, type FlowRecord } from '../../common/flow.js';
import { AGENT_DEFAULTS } from '../defaults.js';

/**
 * Sums flows that share a key (endpoints, port, action, reporter, policies)
 * while a window is open; `close()` hands back the window's records and opens
 * the next. Counts add up, the time range widens. Bounded: past maxKeys
 * distinct keys in one window, new keys are dropped and counted.
 */
export class FlowWindow {
  private records = new Map<string, FlowRecord>();
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

  add(f: FlowRecord): void {
    const key = flowKey(f);
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
    this.dropped = 0;
    this.openedAtMs = end;
    return out;
  }
}
