import type { Gauge, Registry } from 'prom-client';
import { buildBody, changedPiece, type KeptPiece } from './kept-bytes.js';

/**
 * Per-node metric families written as exposition text directly (issue 13). With 5,000 nodes the per-node
 * families hold some 55,000 series; prom-client hashes, copies and formats every one of them on every scrape
 * (0.2-0.6 s and a lot of garbage). Here each node's lines are written only when that node's inputs change (a new
 * summary, a connection or last-seen change, a counter increment), and each family is kept as one body of UTF-8
 * bytes, built again from the body before when a node changed: a scrape with nothing changed sends the bytes kept.
 *
 * A family is still registered in the prom-client registry (so it is listed with the rest, and `get()` answers
 * as a Gauge's or Counter's does); `exposition()` writes the registry the way `Registry.metrics()` does, taking
 * these families' text as it is: one HELP and TYPE per family, the families in registration order.
 */

export type Labels = Readonly<Record<string, string>>;
export interface Series {
  labels: Labels;
  value: number;
}

/** A label value as the text format writes it: backslash, double quote and line feed escaped. */
export function escapeLabelValue(v: string): string {
  return /[\\"\n]/.test(v) ? v.replace(/[\\"\n]/g, (c) => (c === '\n' ? '\\n' : `\\${c}`)) : v;
}

/** HELP text as the text format writes it: backslash and line feed escaped. */
function escapeHelp(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

/** A sample value as prom-client writes it. */
export function valueText(v: number): string {
  if (Number.isNaN(v)) return 'Nan';
  if (!Number.isFinite(v)) return v < 0 ? '-Inf' : '+Inf';
  return `${v}`;
}

/** One sample line, with its line feed; labels in the order given (as prom-client writes them). */
export function seriesLine(name: string, s: Series): string {
  let labels = '';
  for (const [k, v] of Object.entries(s.labels)) labels += `${labels === '' ? '' : ','}${k}="${escapeLabelValue(v)}"`;
  return `${name}${labels === '' ? '' : `{${labels}}`} ${valueText(s.value)}\n`;
}

/**
 * `s` as one flat string (a slice of a string is taken from its flattened copy). Array join flattens too, except
 * that V8 answers a one-element join with the element itself.
 */
function flat(s: string): string {
  return ` ${s}`.slice(1);
}

/** A node's series, and their lines as a piece of the family's body (written when they change, then kept as bytes). */
interface NodeEntry extends KeptPiece {
  /** What the series were built from; the same key keeps them (and their bytes). */
  key: string | undefined;
  series: Series[];
  /** The refresh that last saw the node (gauges from the store: a node not seen is forgotten). */
  seen: number;
}

/**
 * A family's body is built this long after the last change to it, if no scrape built it first: the first scrape
 * after a burst (5,000 agents connecting) finds it built, and a steady stream of changes (flow counters) costs no
 * build but the scrapes' own.
 */
export const FAMILY_SETTLE_MS = 50;

/**
 * A family of series grouped by node. `refresh` runs before each read (it may update the family, and says
 * whether there is anything to show: a store that does not answer leaves the family's series out of that
 * scrape, as the snapshot gauges always did).
 */
export class NodeFamily {
  readonly aggregator = 'sum' as const;
  protected readonly nodes = new Map<string, NodeEntry>();
  /** HELP and TYPE, with a line feed (each node's lines follow). */
  private readonly head: Buffer;
  /**
   * The family's body as last built (HELP, TYPE and every node's lines, each ending in a line feed), kept until a
   * node's series change; undefined before the first build.
   */
  private body: Buffer | undefined;
  /** A node's series changed, came or went since the body was built. */
  private stale = true;
  /** Builds the body once changes settle (FAMILY_SETTLE_MS after the last). */
  private settle: NodeJS.Timeout | undefined;

  constructor(
    registry: Registry,
    readonly name: string,
    readonly help: string,
    readonly type: 'gauge' | 'counter',
    private readonly refresh: () => Promise<boolean>,
  ) {
    this.head = Buffer.from(`# HELP ${name} ${escapeHelp(help)}\n# TYPE ${name} ${type}\n`);
    // prom-client's registry reads name, help, type, aggregator, get() and reset(): this is such a metric.
    registry.registerMetric(this as unknown as Gauge);
  }

  /**
   * The node's series are what `build` makes of `key`; built again only when the key changes. Their text is written
   * at once: a change costs its own node's lines when it happens, not 5,000 nodes' at the next scrape.
   */
  put(node: string, key: string, seen: number, build: () => Series[]): void {
    const e = this.nodes.get(node);
    if (e === undefined) {
      const series = build();
      this.nodes.set(node, { key: flat(key), series, seen, ...changedPiece(undefined, this.lines(series)) });
      this.changed();
    } else {
      e.seen = seen;
      if (e.key !== key) {
        e.key = flat(key);
        e.series = build();
        changedPiece(e, this.lines(e.series));
        this.changed();
      }
    }
  }

  /**
   * The series' lines as one flat string: V8 keeps a string made with + or a template as a tree of its pieces (some
   * ten per line, 32 bytes each), which at 5,000 nodes held over 20 MiB for 3.5 MB of text.
   */
  protected lines(series: Series[]): string {
    return flat(series.map((s) => seriesLine(this.name, s)).join(''));
  }

  /** The node has no series in this family any more. */
  drop(node: string): void {
    if (this.nodes.delete(node)) this.changed();
  }

  /** Forget the nodes the refresh numbered `seen` did not put. */
  sweep(seen: number): void {
    for (const [node, e] of this.nodes)
      if (e.seen !== seen) {
        this.nodes.delete(node);
        this.changed();
      }
  }

  /**
   * The family in the text format, in UTF-8, as prom-client's registry writes one (no final line feed). Built again
   * only after a node's series changed, from the body before (see buildBody): the same bytes while nothing changed.
   */
  async expositionBytes(): Promise<Buffer> {
    if (!(await this.refresh())) return this.head.subarray(0, -1);
    return this.build().subarray(0, -1);
  }

  /** The body, built again if a node's series changed since. */
  private build(): Buffer {
    if (this.stale || this.body === undefined) {
      this.body = buildBody(this.head, this.nodes, this.body);
      this.stale = false;
    }
    return this.body;
  }

  /** A node's series changed, came or went: the body is built again at the next scrape, or once changes settle. */
  protected changed(): void {
    this.stale = true;
    if (this.settle !== undefined) this.settle.refresh();
    else
      this.settle = setTimeout(() => {
        this.settle = undefined;
        this.build();
      }, FAMILY_SETTLE_MS).unref();
  }

  /** As prom-client's Gauge and Counter answer get(). */
  async get() {
    const ok = await this.refresh();
    return {
      name: this.name,
      help: this.help,
      type: this.type,
      aggregator: this.aggregator,
      values: ok
        ? [...this.nodes.values()].flatMap((e) => e.series.map((s) => ({ labels: s.labels, value: s.value })))
        : [],
    };
  }

  reset(): void {
    this.nodes.clear();
    this.changed();
  }
}

/**
 * A per-node counter (labels: node, and maybe one more): `inc` as prom-client's Counter takes it. Counters are per
 * process: a node's series stay once it has them.
 */
export class NodeCounter<L extends string> extends NodeFamily {
  constructor(registry: Registry, name: string, help: string, collect: () => Promise<void>) {
    super(registry, name, help, 'counter', async () => {
      await collect();
      return true;
    });
  }

  inc(labels: Readonly<Record<L, string>> & { node: string }, value = 1): void {
    if (!Number.isFinite(value) || value < 0) throw new Error(`a counter cannot be increased by ${value}`);
    let e = this.nodes.get(labels.node);
    if (e === undefined)
      this.nodes.set(labels.node, (e = { key: undefined, series: [], seen: 0, ...changedPiece(undefined, '') }));
    const l = labels as Labels;
    const keys = Object.keys(l);
    const s = e.series.find((x) => keys.every((k) => x.labels[k] === l[k]));
    if (s) s.value += value;
    else e.series.push({ labels: { ...l }, value });
    // Its own node's two or three lines now, so a scrape only copies what is written.
    changedPiece(e, this.lines(e.series));
    this.changed();
  }
}

/**
 * exposition() in UTF-8, in pieces, as /metrics sends it: the per-node families' bodies as kept (some 3.5 MB at 5,000
 * nodes), so a scrape neither joins 3.5 MB of text and encodes it again nor copies it into one buffer; only the small
 * prom-client families are new, encoded together between the per-node families.
 */
export async function expositionBytes(registry: Registry): Promise<Buffer[]> {
  const parts = await Promise.all(
    registry.getMetricsAsArray().map((m) => {
      const own: unknown = m;
      return own instanceof NodeFamily ? own.expositionBytes() : registry.getSingleMetricAsString(m.name);
    }),
  );
  // Families are separated by a blank line, and the last ends in a line feed, as registry.metrics() writes them.
  const out: Buffer[] = [];
  let text = '';
  parts.forEach((p, i) => {
    if (i > 0) text += '\n\n';
    if (typeof p === 'string') text += p;
    else {
      if (text !== '') out.push(Buffer.from(text));
      text = '';
      out.push(p);
    }
  });
  out.push(Buffer.from(`${text}\n`));
  return out;
}

/**
 * The registry in the text format, as `registry.metrics()` writes it, with the per-node families' text taken
 * as kept. Every family is collected concurrently, as prom-client does, so they share one store snapshot.
 */
export async function exposition(registry: Registry): Promise<string> {
  return Buffer.concat(await expositionBytes(registry)).toString();
}
