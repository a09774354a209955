import type { CisView } from '../cis-view.js';
import { connectedUntilMs, isConnected, nodeRows, type NodeRowSource } from '../compute/cis.js';

/** A node's row as JSON, as the view was at `madeAt` (its version). */
interface KeptRow {
  json: string;
  /** Written connected (a row moves with the clock only there). */
  connected: boolean;
  madeAt: number;
  /** The view's version at the node's last change. */
  changedAt: number;
}

/**
 * The body of `GET /api/v1/nodes` without a query (every node, in store order: what scripts and the dashboard's first
 * load ask for), kept as JSON bytes until a node changes (issue 13). At 5,000 nodes the answer is 1.1 MB; making its
 * rows and serializing them at every request took 15-20 ms and more on a loaded machine. Every reader allowed to list
 * nodes sees every node (the route is authorized as a whole, before this runs), so one body serves them all.
 *
 * The body is built again when the view tells of a change (its version moves) and when the first node counted as
 * connected passes its 3 minutes without contact (the one part of a row that moves with the clock); only the rows of
 * the nodes that changed are serialized again. The JSON is what fastify writes for the route's schema: the rows'
 * fields in the schema's order (a test compares the two byte for byte).
 */
export class NodeListBody {
  private body: Buffer | undefined;
  /** The view's version the body was built at. */
  private builtAt = -1;
  /** The body is good until then: the first moment a node written connected would count as disconnected. */
  private goodUntilMs = 0;
  private readonly rows = new Map<string, KeptRow>();

  constructor(
    private readonly view: CisView,
    private readonly now: () => number = Date.now,
  ) {
    view.onNode((name, n) => {
      const row = this.rows.get(name);
      if (n === undefined) this.rows.delete(name);
      else if (row !== undefined) row.changedAt = view.version;
      // A node new to the list: marked, in case a build under way read it before this change.
      else this.rows.set(name, { json: '', connected: false, madeAt: -1, changedAt: view.version });
    });
  }

  /** The body, as of the view brought up to date now (throws what the view's read throws). */
  async bytes(): Promise<Buffer> {
    await this.view.read();
    const now = this.now();
    if (this.body !== undefined && this.builtAt === this.view.version && now <= this.goodUntilMs) return this.body;
    // Taken before the rows are read: whatever changed up to it is in them; a change told meanwhile has a later number,
    // so its row is written again at the next build and this body is not taken for the newer version.
    const version = this.view.version;
    const nodes = await this.view.nodeList();
    const { body, goodUntilMs } = this.build(nodes, version, now);
    // Of two builds under way, the later version stays.
    if (version >= this.builtAt) {
      this.body = body;
      this.builtAt = version;
      this.goodUntilMs = goodUntilMs;
    }
    return body;
  }

  private build(nodes: NodeRowSource[], version: number, now: number): { body: Buffer; goodUntilMs: number } {
    const json: string[] = [];
    let goodUntil = Infinity;
    for (const n of nodes) {
      const connected = isConnected(n, now);
      if (connected) goodUntil = Math.min(goodUntil, connectedUntilMs(n));
      let row = this.rows.get(n.name);
      if (row === undefined || row.connected !== connected || row.changedAt > row.madeAt) {
        const json = JSON.stringify(nodeRows([n], undefined, now)[0]);
        row = { json, connected, madeAt: version, changedAt: row?.changedAt ?? -1 };
        this.rows.set(n.name, row);
      }
      json.push(row.json);
    }
    return { body: Buffer.from(`{"items":[${json.join(',')}],"total":${nodes.length}}`), goodUntilMs: goodUntil };
  }
}
