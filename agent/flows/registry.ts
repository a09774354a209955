import type { Logger } from 'pino';
import type { FlowRecord } from '../../common/flow.js';
import { errorDetail, usageError } from '../errors.js';
import { FileFollower, type FollowPosition } from './follow.js';
import type { InternalNetworks, ParseResult } from './normalize.js';
import { parseCalicoBytes } from './sources/calico-common.js';
import { GoldmaneSource, type GoldmaneTlsFiles } from './sources/goldmane.js';
import { HubbleObserverSource } from './sources/hubble-grpc.js';
import { HubbleParser, type HubbleHold } from './sources/hubble.js';
import { AGENT_DEFAULTS } from '../defaults.js';

/** The kinds of flow source the agent reads: the keys of FLOW_SOURCES. */
export type FlowSourceKind = 'calico' | 'hubble-file' | 'hubble-grpc' | 'goldmane';

/** One --flows argument. */
export interface FlowSourceSpec {
  /** As given, e.g. "calico:/var/log/calico/flowlogs/flows.log"; also the key of its saved position. */
  raw: string;
  kind: FlowSourceKind;
  target: string;
}

/**
 * One result a source read: a record, a skip, a loss notice or the reason its input is malformed. The source hands over
 * `read`, not its result, so that whatever throws while reading one record (a shape nobody foresaw) makes that record
 * malformed and nothing more; `where` names it in the malformed log. Call `read` before returning: a file source's
 * may read the follower's buffer, which the next line is read into.
 */
export type FlowResultHandler = (read: () => ParseResult<FlowRecord>, where: () => string) => void;

/** What a source is built with. */
export interface FlowSourceContext {
  internal: InternalNetworks;
  /** The capture's log, with this source's `source` binding. */
  log: Logger;
  /** Where a file source resumes (the spool's saved position); undefined on a first start. */
  saved?: FollowPosition;
  /** Start a file without a saved position at its end, not its beginning (no spool: nothing to resume from). */
  startAtEnd: boolean;
  /** TLS for goldmane sources; without it they connect in plaintext. */
  goldmaneTls?: GoldmaneTlsFiles;
  /** How long and how many Hubble connections are held for their verdict (AGENT_DEFAULTS.run when absent). */
  hubbleHold?: HubbleHold;
  /** The one callback for every record, malformed input and loss notice the source reads. */
  onResult: FlowResultHandler;
}

/**
 * A flow source, whatever its kind: started and stopped by the capture, read by poll() (file sources read there;
 * stream sources hand over each message as it arrives and read nothing there), every result handed to
 * FlowSourceContext.onResult.
 */
export interface FlowSource {
  readonly spec: FlowSourceSpec;
  start(): void;
  /** Read whatever is waiting. */
  poll(): void;
  /**
   * Hand over whatever the source holds back for a later event (a Hubble connection waiting for its policy verdict):
   * the window is closing.
   */
  drain(): void;
  stop(): void;
  /** Where a restart resumes after everything handed over so far; undefined for a source that cannot resume so. */
  position(): FollowPosition | undefined;
  /** The source's own counters (lines read, connects, duplicates dropped ...), for tests and logs. */
  readonly stats: Readonly<Record<string, number>>;
}

/** One kind of flow source: how its --flows argument reads, and how it is built. */
export interface FlowSourceKindDefinition {
  /** The --flows form, for the usage message: "calico:PATH". */
  form: string;
  /** Whether "prefix:target" of a --flows argument is this kind. */
  matches(prefix: string, target: string): boolean;
  create(spec: FlowSourceSpec, ctx: FlowSourceContext): FlowSource;
}

/** Records a parser holds back until a later event (HubbleParser): some once they are due, all on flush. */
interface HeldRecords {
  release(): FlowRecord[];
  flush(): FlowRecord[];
  readonly stats?: Readonly<Record<string, number>>;
}

/** Hand held records to the capture, each as a flow. */
function handOver(ctx: FlowSourceContext, records: FlowRecord[], where: string): void {
  for (const f of records)
    ctx.onResult(
      () => ({ kind: 'flow', flow: f }),
      () => where,
    );
}

/**
 * A Hubble parser's held connections, handed over with a warning, at most once per malformedLogIntervalMs, when the
 * hold's cap pushed some out before their verdict (each is still sent, policy-unknown, and counted in
 * stats.heldEvicted; never dropped).
 */
class HeldHubble implements HeldRecords {
  readonly parser: HubbleParser;
  private told = 0;
  private toldAtMs = -Infinity;

  constructor(private readonly ctx: FlowSourceContext) {
    this.parser = new HubbleParser(ctx.internal, ctx.hubbleHold);
  }

  get stats(): Readonly<Record<string, number>> {
    return this.parser.stats;
  }

  release(): FlowRecord[] {
    this.warn();
    return this.parser.release();
  }

  flush(): FlowRecord[] {
    this.warn();
    return this.parser.flush();
  }

  private warn(): void {
    const n = this.parser.stats.heldEvicted;
    if (n === this.told || Date.now() - this.toldAtMs < AGENT_DEFAULTS.flows.malformedLogIntervalMs) return;
    this.ctx.log.warn(
      {
        heldEvicted: n,
        sinceLastLog: n - this.told,
        maxConnections: this.ctx.hubbleHold?.maxConnections ?? AGENT_DEFAULTS.run.hubbleHoldMaxCount,
      },
      'Hubble connections sent without waiting for their policy verdict: the hold is full (--hubble-hold-max-connections)',
    );
    this.told = n;
    this.toldAtMs = Date.now();
  }
}

/**
 * How a file source reads a line: from its text, or from its bytes (a parser that decodes only what it needs; it reads
 * them within the `read` the capture calls at once, before the follower reads over them).
 */
type LineParser =
  | { text: (line: string) => ParseResult<FlowRecord> }
  | { bytes: (b: Buffer, start: number, end: number) => ParseResult<FlowRecord> };

/** A file the source's CNI writes flow lines to, followed across rotation; each line parsed by `parse`. */
class FileFlowSource implements FlowSource {
  private readonly counts = { lines: 0, tooLong: 0, readFailures: 0 };

  get stats(): Readonly<Record<string, number>> {
    return this.held?.stats ? { ...this.counts, ...this.held.stats } : this.counts;
  }

  private readonly follower: FileFollower;

  constructor(
    readonly spec: FlowSourceSpec,
    private readonly ctx: FlowSourceContext,
    private readonly parse: LineParser,
    private readonly held?: HeldRecords,
  ) {
    this.follower = new FileFollower(spec.target, ctx.saved, ctx.startAtEnd);
  }

  drain(): void {
    if (this.held) handOver(this.ctx, this.held.flush(), `${this.spec.target} (held connection)`);
  }

  start(): void {}

  stop(): void {}

  poll(): void {
    let read: ReturnType<FileFollower['poll']>;
    let lines = 0;
    try {
      // Each line parsed as it is read: a poll's lines are not all held until it ends.
      const p = this.parse;
      read =
        'bytes' in p
          ? this.follower.poll(undefined, undefined, (b, start, end, file, offset) => {
              lines++;
              this.counts.lines++;
              this.ctx.onResult(
                () => p.bytes(b, start, end),
                () => `${file} at byte ${offset}`,
              );
            })
          : this.follower.poll(undefined, (line, file, offset) => {
              lines++;
              this.counts.lines++;
              this.ctx.onResult(
                () => p.text(line),
                () => `${file} at byte ${offset}`,
              );
            });
    } catch (err) {
      // An unreadable source (EIO, a directory, permissions) must not stop the agent: count it, say it, go on.
      this.counts.readFailures++;
      const reason = `cannot read: ${errorDetail(err)}`;
      this.ctx.onResult(
        () => ({ kind: 'malformed', reason }),
        () => this.spec.target,
      );
      return;
    }
    const { tooLong, events } = read;
    // A rotated file deleted before it was read to its end: lines lost, say it loudly (the follower cannot count them).
    for (const e of events) this.ctx.log[e.startsWith('lost:') ? 'warn' : 'info'](e);
    for (const t of tooLong) {
      this.counts.tooLong++;
      this.ctx.onResult(
        () => ({ kind: 'malformed', reason: 'line longer than 1 MiB' }),
        () => `${t.file} at byte ${t.offset}`,
      );
    }
    if (this.held && lines > 0) handOver(this.ctx, this.held.release(), `${this.spec.target} (held connection)`);
  }

  position(): FollowPosition | undefined {
    return this.follower.saved;
  }
}

/** A gRPC stream (Hubble Observer, Goldmane) wrapped as a FlowSource: it delivers as messages arrive. */
class StreamFlowSource implements FlowSource {
  constructor(
    readonly spec: FlowSourceSpec,
    private readonly stream: HubbleObserverSource | GoldmaneSource,
    private readonly onDrain: () => void = () => {},
    private readonly held?: HeldRecords,
  ) {}

  drain(): void {
    this.onDrain();
  }

  get stats(): Readonly<Record<string, number>> {
    return this.held?.stats ? { ...this.stream.stats, ...this.held.stats } : this.stream.stats;
  }

  start(): void {
    this.stream.start();
  }

  poll(): void {}

  stop(): void {
    this.stream.stop();
  }

  position(): undefined {
    return undefined;
  }
}

/**
 * Every kind of flow source, keyed by kind, in the order a --flows argument is matched (and the usage message lists
 * them). parseFlowSource reads --flows with it; FlowCapture builds its sources with it.
 */
export const FLOW_SOURCES: Record<FlowSourceKind, FlowSourceKindDefinition> = {
  calico: {
    form: 'calico:PATH',
    matches: (prefix, target) => prefix === 'calico' && target !== '',
    create: (spec, ctx) =>
      new FileFlowSource(spec, ctx, { bytes: (b, start, end) => parseCalicoBytes(b, start, end, ctx.internal) }),
  },
  'hubble-file': {
    form: 'hubble:PATH',
    matches: (prefix, target) => prefix === 'hubble' && target !== '' && !target.startsWith('unix://'),
    create: (spec, ctx) => {
      const held = new HeldHubble(ctx);
      return new FileFlowSource(spec, ctx, { text: (line) => held.parser.line(line) }, held);
    },
  },
  'hubble-grpc': {
    form: 'hubble:unix://SOCKET',
    matches: (prefix, target) => prefix === 'hubble' && target.startsWith('unix://'),
    create: (spec, ctx) => {
      const held = new HeldHubble(ctx);
      const parser = held.parser;
      let n = 0;
      const stream = new HubbleObserverSource({
        address: spec.target,
        log: ctx.log,
        // Parsing and adding to the window is synchronous, so the stream never needs pausing here.
        onMessage: (msg) => {
          const i = ++n;
          ctx.onResult(
            () => parser.response(msg),
            () => `${spec.target} response ${i}`,
          );
          handOver(ctx, held.release(), `${spec.target} (held connection)`);
        },
      });
      return new StreamFlowSource(
        spec,
        stream,
        () => handOver(ctx, held.flush(), `${spec.target} (held connection)`),
        held,
      );
    },
  },
  goldmane: {
    form: 'goldmane:HOST:PORT',
    matches: (prefix, target) => prefix === 'goldmane' && /^.+:\d+$/.test(target),
    create: (spec, ctx) => {
      // Goldmane's flows carry no IP addresses, so internal CIDRs cannot reclassify its "pub" peers.
      if (ctx.internal.size > 0)
        ctx.log.info('internal CIDRs do not apply to Goldmane flows (they carry no IP addresses)');
      const stream = new GoldmaneSource({
        address: spec.target,
        log: ctx.log,
        tls: ctx.goldmaneTls,
        // Converting and adding to the window is synchronous, so the stream never needs pausing here.
        onResult: (r, where) =>
          ctx.onResult(
            () => r,
            () => where,
          ),
      });
      return new StreamFlowSource(spec, stream);
    },
  },
};

const KINDS = Object.keys(FLOW_SOURCES) as FlowSourceKind[];

/** One --flows argument, by the registry; VERDICT_USAGE naming every form when no kind takes it. */
export function parseFlowSource(raw: string): FlowSourceSpec {
  const [prefix = '', ...rest] = raw.split(':');
  const target = rest.join(':');
  const kind = KINDS.find((k) => FLOW_SOURCES[k].matches(prefix, target));
  if (kind) return { raw, kind, target };
  const forms = KINDS.map((k) => FLOW_SOURCES[k].form);
  throw usageError(`--flows takes ${forms.slice(0, -1).join(', ')} or ${forms.at(-1)}, not "${raw}"`);
}

/** The source a spec names, built by its kind's registry entry. */
export function createFlowSource(spec: FlowSourceSpec, ctx: FlowSourceContext): FlowSource {
  return FLOW_SOURCES[spec.kind].create(spec, ctx);
}
