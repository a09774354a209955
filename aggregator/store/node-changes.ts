import { randomUUID } from 'node:crypto';
import pg from 'pg';
import type { NodeChange } from './types.js';

/** The channel PostgreSQL replicas tell each other their node changes on (LISTEN/NOTIFY). */
export const NODE_CHANGES_CHANNEL = 'verdict_node_changes';
/** PostgreSQL refuses a NOTIFY payload of 8,000 bytes or more. */
const MAX_PAYLOAD_CHARS = 7_000;
/** Changes made within this long go out in one notice (5,000 Hellos at once are a few notices, not 5,000). */
const GATHER_MS = 20;
/** A lost listening connection is opened again after this long. */
const RELISTEN_AFTER_MS = 1_000;
const CONNECT_TIMEOUT_MS = 10_000;
/**
 * A read on the listening connection that takes longer fails, and the connection is given up (opened again): readers
 * wait for the view's reads, so a connection gone silent (no reset, no keepalive answer) must not hold them for good.
 */
const READ_TIMEOUT_MS = 10_000;

interface Notice {
  /** The replica that sent it (a replica ignores its own). */
  r: string;
  n?: string[];
  all?: true;
  cluster?: true;
}

/**
 * Node changes between PostgreSQL replicas (issue 13). Each replica keeps the CIS summary and /metrics in memory,
 * so it must hear of what the others store: after a change commits here, its node's name goes out in a NOTIFY
 * (gathered for GATHER_MS, several names a notice); one dedicated connection LISTENs and tells the store's watchers
 * what the other replicas changed. NOTIFY is delivered only after the sender commits and in commit order, but a
 * notice can be lost (the sender dies before sending; this listening connection drops): a dropped connection is told
 * as `link-lost` and, once listening again, `link-up`, and a reader then reads every node again. Last contact
 * alone (heartbeats, flow batches) is never sent: readers pick it up on their periodic read.
 */
export class NodeChangeNotices {
  private readonly replica = randomUUID();
  private readonly nodes = new Set<string>();
  private all = false;
  private cluster = false;
  private gathering: NodeJS.Timeout | undefined;
  private client: pg.Client | undefined;
  /** Gives the current connection up (as if it had dropped). */
  private loseClient: (() => void) | undefined;
  private relisten: NodeJS.Timeout | undefined;
  private listening = false;
  private closed = false;

  constructor(
    private readonly config: pg.ClientConfig,
    /** Sends one NOTIFY payload on the store's pool. */
    private readonly send: (channel: string, payload: string) => Promise<void>,
    /** Tells the store's watchers what another replica changed (or that notices may have been missed). */
    private readonly tell: (change: NodeChange) => void,
  ) {}

  /** A change committed here: the other replicas hear of it shortly. */
  queue(change: NodeChange): void {
    if (this.closed) return;
    if ('node' in change) {
      if (change.lastSeenOnly) return;
      this.nodes.add(change.node);
    } else if ('cluster' in change) this.cluster = true;
    else if (change.reason === 'all-disconnected') this.all = true;
    else return;
    this.gathering ??= setTimeout(() => void this.flush(), GATHER_MS).unref();
  }

  /** What is gathered goes out now. A notice that cannot be sent is dropped: the others read it on their resync. */
  async flush(): Promise<void> {
    clearTimeout(this.gathering);
    this.gathering = undefined;
    if (this.nodes.size === 0 && !this.all && !this.cluster) return;
    const payloads: string[] = [];
    const head = { r: this.replica, ...(this.all ? { all: true } : {}), ...(this.cluster ? { cluster: true } : {}) };
    let names: string[] = [];
    let size = 0;
    const cut = () => {
      payloads.push(JSON.stringify({ ...(payloads.length === 0 ? head : { r: this.replica }), n: names } as Notice));
      names = [];
      size = 0;
    };
    for (const n of this.nodes) {
      const chars = JSON.stringify(n).length + 1;
      if (size + chars > MAX_PAYLOAD_CHARS - 100 && names.length > 0) cut();
      names.push(n);
      size += chars;
    }
    if (names.length > 0 || payloads.length === 0) cut();
    this.nodes.clear();
    this.all = this.cluster = false;
    for (const p of payloads) await this.send(NODE_CHANGES_CHANNEL, p).catch(() => undefined);
  }

  /** Start listening to the other replicas (once). Until the connection listens, the link counts as lost. */
  listen(): void {
    if (this.listening || this.closed) return;
    this.listening = true;
    this.tell({ all: true, reason: 'link-lost' });
    void this.connect();
  }

  private async connect(): Promise<void> {
    this.relisten = undefined;
    if (this.closed) return;
    const client = new pg.Client({
      ...this.config,
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
      query_timeout: READ_TIMEOUT_MS,
      keepAlive: true,
      application_name: 'verdict-aggregator-listen',
    });
    let gone = false;
    const lost = () => {
      if (gone) return;
      gone = true;
      client.end().catch(() => undefined);
      if (this.client === client) {
        this.client = this.loseClient = undefined;
        this.tell({ all: true, reason: 'link-lost' });
      }
      if (!this.closed) this.relisten ??= setTimeout(() => void this.connect(), RELISTEN_AFTER_MS).unref();
    };
    client.on('error', lost);
    client.on('end', lost);
    client.on('notification', (m) => {
      if (m.channel === NODE_CHANGES_CHANNEL && m.payload) this.received(m.payload);
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${NODE_CHANGES_CHANNEL}`);
    } catch {
      lost();
      return;
    }
    if (gone || this.closed) {
      client.end().catch(() => undefined);
      return;
    }
    this.client = client;
    this.loseClient = lost;
    this.tell({ all: true, reason: 'link-up' });
  }

  /**
   * The listening connection while it listens: readers of what the notices name read on it, so their reads never
   * queue behind a burst of writes in the pool (5,000 agents' runs), where a read could wait for seconds.
   */
  connection(): pg.Client | undefined {
    return this.client;
  }

  /** A read on `client` failed: give the connection up (the link counts as lost until it listens again). */
  giveUp(client: pg.Client): void {
    if (this.client === client) this.loseClient?.();
  }

  private received(payload: string): void {
    let notice: Notice;
    try {
      notice = JSON.parse(payload) as Notice;
    } catch {
      return;
    }
    if (notice.r === this.replica) return;
    if (notice.all) this.tell({ all: true, reason: 'missed' });
    if (notice.cluster) this.tell({ cluster: true });
    for (const node of notice.n ?? []) if (typeof node === 'string') this.tell({ node });
  }

  /** Send what is gathered, stop listening. */
  async close(): Promise<void> {
    if (this.closed) return;
    await this.flush();
    this.closed = true;
    clearTimeout(this.relisten);
    const c = this.client;
    this.client = undefined;
    await c?.end().catch(() => undefined);
  }
}
