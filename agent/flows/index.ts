import type { Logger } from 'pino';
import { flowRecordProblem, type FlowRecord } from '../../common/flow.js';
import { flowToWire } from '../../proto/convert.js';
import { AGENT_DEFAULTS } from '../defaults.js';
import { errorDetail } from '../errors.js';
import type { Outbox } from '../transport/outbox.js';
import type { SourcePositions, Spool } from '../transport/spool.js';
import { UNUSABLE_REASONS, type InternalNetworks, type ParseResult, type UnusableReason } from './normalize.js';
import { createFlowSource, type FlowSource, type FlowSourceSpec } from './registry.js';
import type { GoldmaneTlsFiles } from './sources/goldmane.js';
import type { HubbleHold } from './sources/hubble.js';
import { FlowWindow } from './window.js';

export {
  FLOW_SOURCES,
  createFlowSource,
  parseFlowSource,
  type FlowSource,
  type FlowSourceContext,
  type FlowSourceKind,
  type FlowSourceSpec,
} from './registry.js';

export interface FlowCaptureOptions {
  sources: FlowSourceSpec[];
  outbox: Outbox;
  /** Where positions resume from (the outbox spools into it). */
  spool?: Spool;
  internal: InternalNetworks;
  log: Logger;
  /** Aggregation window, ms (AGENT_DEFAULTS.run.flowWindowMs in the agent). */
  windowMs: number;
  /** How often files are read, ms. */
  pollMs: number;
  now: () => number;
  /** TLS for goldmane sources; without it they connect in plaintext. */
  goldmaneTls?: GoldmaneTlsFiles;
  /** How long and how many Hubble connections are held for their verdict (AGENT_DEFAULTS.run when absent). */
  hubbleHold?: HubbleHold;
}

/** One source and what the capture counts of it until the next window is sent. */
interface SourceState {
  source: FlowSource;
  malformed: number;
  lost: number;
  lastLogMs: number;
  unloggedMalformed: number;
  /** Flows the source meant as flows but that cannot say what a policy did, by fixed reason, since the last warning. */
  unloggedUnusable: Partial<Record<UnusableReason, number>>;
  lastUnusableLogMs: number;
}

/** Malformed input is logged at most this often per source (with a count), never per line. */
const MALFORMED_LOG_INTERVAL_MS = AGENT_DEFAULTS.flows.malformedLogIntervalMs;

/**
 * Reads the node's flow sources, normalizes each record, aggregates them in
 * windows and sends one FlowBatch per window. With a spool, each batch is
 * written to disk with the source positions after its lines before it is
 * sent, so a restart resumes exactly where the last batch ended.
 */
export class FlowCapture {
  private readonly window: FlowWindow;
  private readonly sources: SourceState[];
  private pollTimer?: NodeJS.Timeout;
  private flushTimer?: NodeJS.Timeout;
  /** Records read so far, per source (tests and logs). */
  readonly stats = {
    records: 0,
    malformed: 0,
    batches: 0,
    /** Lines or messages skipped on purpose (replies, repeat events, non-policy drops, unusable flows). */
    skipped: 0,
    /** Of those, flows that cannot say what a policy did, by reason (each also warned about). */
    unusable: {} as Partial<Record<UnusableReason, number>>,
  };

  constructor(private readonly o: FlowCaptureOptions) {
    this.window = new FlowWindow(o.now);
    const saved: SourcePositions = o.spool?.positions() ?? {};
    this.sources = o.sources.map((spec) => {
      const state: SourceState = {
        source: createFlowSource(spec, {
          internal: o.internal,
          log: o.log.child({ source: spec.raw }),
          saved: saved[spec.raw],
          startAtEnd: !o.spool,
          goldmaneTls: o.goldmaneTls,
          hubbleHold: o.hubbleHold,
          onResult: (read, where) => this.handle(state, read, where),
        }),
        malformed: 0,
        lost: 0,
        lastLogMs: 0,
        unloggedMalformed: 0,
        unloggedUnusable: {},
        lastUnusableLogMs: -Infinity,
      };
      return state;
    });
  }

  start(): void {
    for (const s of this.sources) s.source.start();
    this.pollTimer = setInterval(() => this.poll(), this.o.pollMs);
    this.pollTimer.unref();
    this.flushTimer = setInterval(() => this.flush(), this.o.windowMs);
    this.flushTimer.unref();
  }

  /** Read every source once. */
  poll(): void {
    for (const s of this.sources) s.source.poll();
  }

  /**
   * One record, from a file line, a Hubble message or a Goldmane flow; `where`
   * names it in the malformed log. Whatever goes wrong with one record —
   * a parser exception on a shape nobody foresaw, a value no store can keep —
   * makes that record malformed (counted, logged) and nothing more: the
   * record's position is passed like any other, so a restart never meets it again.
   */
  private handle(s: SourceState, parse: () => ParseResult<FlowRecord>, where: () => string): void {
    let r: ParseResult<FlowRecord>;
    try {
      r = parse();
      if (r.kind === 'flow') {
        const problem = flowRecordProblem(r.flow);
        if (problem) r = { kind: 'malformed', reason: problem };
      }
    } catch (err) {
      r = { kind: 'malformed', reason: `cannot be read: ${errorDetail(err)}` };
    }
    if (r.kind === 'flow') {
      this.stats.records++;
      this.window.add(r.flow);
    } else if (r.kind === 'malformed') {
      this.malformed(s, `${where()}: ${r.reason}`);
    } else if (r.kind === 'lost') {
      s.lost += r.count;
    } else {
      this.stats.skipped++;
      if (r.unusable) this.unusable(s, r.unusable);
    }
  }

  /**
   * A flow that cannot say what a policy did (no verdict, no traffic direction): counted by reason and warned about,
   * at most once per MALFORMED_LOG_INTERVAL_MS per source, with the counts since the last warning.
   */
  private unusable(s: SourceState, reason: UnusableReason): void {
    this.stats.unusable[reason] = (this.stats.unusable[reason] ?? 0) + 1;
    s.unloggedUnusable[reason] = (s.unloggedUnusable[reason] ?? 0) + 1;
    const now = this.o.now();
    if (now - s.lastUnusableLogMs < MALFORMED_LOG_INTERVAL_MS) return;
    const counts = Object.fromEntries(
      Object.entries(s.unloggedUnusable).map(([k, n]) => [UNUSABLE_REASONS[k as UnusableReason], n]),
    );
    this.o.log.warn(
      { source: s.source.spec.raw, skippedSinceLastLog: counts },
      'flows that cannot say what a policy did were skipped',
    );
    s.lastUnusableLogMs = now;
    s.unloggedUnusable = {};
  }

  /**
   * Close the window and hand it to the outbox, which cuts it into batches under
   * the aggregator's message limit and spools them with the source positions
   * after the window's lines (also when empty but there are counts to tell).
   */
  flush(): number[] | undefined {
    this.poll();
    for (const s of this.sources) s.source.drain();
    const w = this.window.close();
    const sources = this.sources.map((s) => ({ source: s.source.spec.raw, malformed: s.malformed, lost: s.lost }));
    if (w.size === 0 && w.dropped === 0 && sources.every((s) => s.malformed === 0 && s.lost === 0)) {
      // Nothing to send. Lines read but skipped (replies, traces) are not saved as read; after a restart they are read
      // and skipped again.
      return undefined;
    }
    for (const s of this.sources) {
      s.malformed = 0;
      s.lost = 0;
    }
    const seqs = this.o.outbox.addFlowWindow(
      {
        windowStartUnixMs: w.startMs,
        windowEndUnixMs: w.endMs,
        // Made one at a time from the window's columns, as each is sized or encoded.
        records: { size: w.size, wire: (i) => flowToWire(w.record(i)) },
        sources,
        droppedRecords: w.dropped,
      },
      this.positions(),
    );
    this.stats.batches += seqs.length;
    this.o.log.debug({ seqs, records: w.size }, 'flow window queued');
    return seqs;
  }

  /**
   * Stop reading. The open window is flushed first (read to the end of the files, held connections handed over, the
   * window queued in the outbox and spooled), so stopping loses none of it; the caller decides how long to wait for
   * the outbox to deliver it (RunningAgent.shutdown).
   */
  stop(): void {
    clearInterval(this.pollTimer);
    clearInterval(this.flushTimer);
    try {
      this.flush();
    } catch (err) {
      this.o.log.warn({ err: errorDetail(err) }, 'the last flow window could not be queued');
    }
    for (const s of this.sources) s.source.stop();
  }

  private positions(): SourcePositions {
    const out: SourcePositions = {};
    for (const s of this.sources) {
      const p = s.source.position();
      if (p) out[s.source.spec.raw] = p;
    }
    return out;
  }

  private malformed(s: SourceState, where: string): void {
    s.malformed++;
    this.stats.malformed++;
    s.unloggedMalformed++;
    const now = this.o.now();
    if (now - s.lastLogMs >= MALFORMED_LOG_INTERVAL_MS) {
      this.o.log.warn(
        { source: s.source.spec.raw, where, skippedSinceLastLog: s.unloggedMalformed },
        'malformed flow record skipped',
      );
      s.lastLogMs = now;
      s.unloggedMalformed = 0;
    }
  }
}
