import pg from 'pg';
import type { FlowRecord } from '../../common/flow.js';
import { sortInSlices, TimeSlice } from '../../common/time-slice.js';
import { SqlStore } from './core.js';
import {
  KEY_TUPLE_COLUMNS,
  KEY_TUPLE_COLUMNS_BEFORE_013,
  LegacyConversion,
  lockOrder,
  mergeBucketRows,
  mergeSameKeyIds,
  resolveKeyIds,
  type BucketRow,
  type FlowDictionary,
  type KeyTuple,
  type LegacyFlowRow,
} from './flow-buckets.js';
import { FLOW_KEY_IDS_KEPT, FlowKeyIds } from './flow-key-ids.js';
import { FLOW_GROUP_MAX_ROWS, GroupCommit, type FlowBatchWrite } from './group-commit.js';
import { NodeChangeNotices } from './node-changes.js';
import { PoolGate } from './pool-gate.js';
import { EVIDENCE_MIGRATION, runSteps, sealBacklog } from './evidence.js';
import { FLOW_COMPACTION_LOCK_KEY, MIGRATION_LOCK_KEY, RUN_CHAIN_LOCK_KEY, SCAN_CHAIN_LOCK_KEY } from './locks.js';
import { migrationFiles, type Migration } from './migrations.js';
import { toAuditEvent, type AuditEventRow } from './rows.js';
import {
  columnList,
  FLOW_BUCKET_KEY,
  FLOW_COLUMNS,
  FLOW_ROLLUP_COLUMNS,
  flowMergeSet,
  POSTGRES,
  type Conn,
  type Table,
} from './sql.js';
import { HOUR_BUCKET_MS, MINUTE_BUCKET_MS, type NodeChange, type StoredAuditEvent } from './types.js';
import { AGGREGATOR_ERRORS, aggregatorError } from '../errors.js';

/** How long opening a connection may take before a query (and so /readyz) fails, instead of hanging. */
const CONNECT_TIMEOUT_MS = 10_000;

/** Connections per aggregator (node-postgres's default, now said): PoolGate queues what is beyond. */
const POOL_SIZE = 10;

/** Flow-batch groups in their transactions at once: one being written while the next forms, and a spare. */
const FLOW_GROUPS_AT_ONCE = 2;

/**
 * pg hands BIGINT (int8) back as a string, since it may exceed 2^53. Our BIGINTs
 * are ids, sequence numbers and Unix milliseconds, all far below that: turn them
 * into numbers here, for this pool only, and refuse one that would lose digits.
 */
const INT8_AS_NUMBER: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') => {
    if (oid === pg.types.builtins.INT8 && format !== 'binary') return parseSafeInteger;
    return pg.types.getTypeParser(oid, format);
  }) as typeof pg.types.getTypeParser,
};

function parseSafeInteger(text: string): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n))
    throw aggregatorError(AGGREGATOR_ERRORS.storeCorrupt, `integer ${text} is beyond 2^53 and cannot be read exactly`);
  return n;
}

/** Socket errors on the way to the server: it is down, restarting or unreachable. */
const NETWORK_ERROR_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
]);

/**
 * SQLSTATEs (PostgreSQL "Errors and Messages" appendix) for an unavailable
 * server: class 08 connection exception, class 53 insufficient resources
 * (disk full, out of memory, too many connections), 57P01-57P03 admin or
 * crash shutdown and "cannot connect now" (starting up or shutting down).
 */
const UNAVAILABLE_SQLSTATE = /^(08...|53...|57P0[123])$/;

/** node-postgres's own connection errors, which carry no code. */
const PG_CONNECTION_MESSAGES =
  /^(Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|Cannot use a pool after calling end)/;

/** Bucket rows per INSERT: their array literals take about a ms to build on the event loop. */
const FLOW_ROWS_PER_INSERT = 5000;

/** Legacy flow rows converted per step of migration 008. */
const LEGACY_ROWS_PER_STEP = 5000;

/** The migration that makes flow buckets ids and counts (008_flow_dictionary.sql); its rows are converted here. */
const FLOW_DICTIONARY_MIGRATION = 8;

const connOf = (q: pg.Pool | pg.PoolClient, gate?: PoolGate): Conn => {
  const query = (sql: string, values?: unknown[]) =>
    gate ? gate.run(() => q.query(sql, values)) : q.query(sql, values);
  return {
    all: async <R>(sql: string, values?: unknown[]) => (await query(sql, values)).rows as R[],
    run: async (sql, values) => (await query(sql, values)).rowCount ?? 0,
  };
};

/**
 * The shared store for several stateless aggregator replicas: one PostgreSQL
 * database, READ COMMITTED, with row locks where SQLite relies on having a
 * single writer. Behaviour matches SqliteStore case for case
 * (test/aggregator/store-contract.test.ts runs the same cases on both).
 */
export class PostgresStore extends SqlStore {
  readonly kind = 'postgres' as const;
  protected readonly d = POSTGRES;
  /** A range is read in one query: nothing here holds the event loop while the server works. */
  protected readonly rowsPerPage = Number.MAX_SAFE_INTEGER;
  protected readonly reader: Conn;
  protected readonly writer: Conn;
  private closed = false;
  /** Every use of the pool takes a turn here first (see PoolGate). */
  private readonly gate = new PoolGate(POOL_SIZE);
  /** Flow key ids kept in memory, cleared when any replica prunes the dictionaries (flow_dictionary_epoch). */
  private readonly keyIds = new FlowKeyIds(FLOW_KEY_IDS_KEPT);
  private readonly flowGroups = new GroupCommit((batches) => this.writeFlowGroup(batches), {
    maxRows: FLOW_GROUP_MAX_ROWS,
    concurrency: FLOW_GROUPS_AT_ONCE,
    isOutage: (err) => this.unavailableReason(err) !== undefined,
  });

  /** Node changes told to and heard from the other replicas (node-changes.ts). */
  private readonly notices: NodeChangeNotices;

  private constructor(
    private readonly pool: pg.Pool,
    url: string,
  ) {
    super();
    this.reader = this.writer = connOf(pool, this.gate);
    this.notices = new NodeChangeNotices(
      { connectionString: url, types: INT8_AS_NUMBER },
      async (channel, payload) => void (await this.writer.all('SELECT pg_notify($1, $2)', [channel, payload])),
      (change) => super.nodesChanged(change),
    );
  }

  protected override nodesChanged(change: NodeChange): void {
    super.nodesChanged(change);
    this.notices.queue(change);
  }

  /** On the listening connection while it listens (node-changes.ts), else on the pool. */
  protected override get nodeReader(): Conn {
    const c = this.notices.connection();
    if (!c) return this.reader;
    const conn = connOf(c as unknown as pg.PoolClient);
    const failed = (err: unknown): never => {
      this.notices.giveUp(c);
      throw err;
    };
    return {
      all: <R>(sql: string, values?: unknown[]) => conn.all<R>(sql, values).catch(failed),
      run: (sql, values) => conn.run(sql, values).catch(failed),
    };
  }

  override watchNodes(listener: (change: NodeChange) => void): () => void {
    const stop = super.watchNodes(listener);
    this.notices.listen();
    return stop;
  }

  static async open(url: string): Promise<PostgresStore> {
    const pool = new pg.Pool({
      connectionString: url,
      types: INT8_AS_NUMBER,
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
      max: POOL_SIZE,
      application_name: 'verdict-aggregator',
    });
    // An idle connection that breaks (server restart, network) is dropped by the
    // pool; the next query opens a new one or fails, and /readyz says so. Without
    // a listener the 'error' event would end the process.
    pool.on('error', () => {});
    const store = new PostgresStore(pool, url);
    try {
      await store.ping();
    } catch (err) {
      await pool.end();
      throw aggregatorError(
        AGGREGATOR_ERRORS.storeUnavailable,
        `cannot connect to PostgreSQL at ${redactedUrl(url)}: ${(err as Error).message}; check --db and that the server accepts connections`,
        { cause: err },
      );
    }
    try {
      for (const m of migrationFiles('postgres')) await store.migrate(m);
    } catch (err) {
      await pool.end();
      throw err;
    }
    return store;
  }

  /**
   * Apply one migration unless it is recorded as applied. The transaction-scoped
   * advisory lock makes replicas that start together take turns, and the check
   * runs after the lock is held, so a migration is applied exactly once; the
   * lock goes with the transaction, so a crashed replica cannot leave it held.
   */
  private async migrate(m: Migration): Promise<void> {
    await this.transaction(async (c) => {
      await c.query(`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK_KEY})`);
      await c.query(
        'CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at_ms BIGINT NOT NULL)',
      );
      const applied = await c.query('SELECT 1 FROM schema_migrations WHERE version = $1', [m.version]);
      if (applied.rowCount) return;
      try {
        await c.query(m.sql);
        if (m.version === FLOW_DICTIONARY_MIGRATION) await convertLegacyFlows(c);
        if (m.version === EVIDENCE_MIGRATION) await runSteps(connOf(c), sealBacklog());
      } catch (err) {
        throw aggregatorError(
          AGGREGATOR_ERRORS.storeMigrationFailed,
          `migrations/postgres/${m.name}: ${(err as Error).message}`,
          {
            cause: err,
          },
        );
      }
      await c.query('INSERT INTO schema_migrations (version, name, applied_at_ms) VALUES ($1, $2, $3)', [
        m.version,
        m.name,
        Date.now(),
      ]);
    });
  }

  /** Replicas append to an evidence chain one at a time: a transaction-scoped advisory lock per chain. */
  protected override async lockChain(c: Conn, chain: 'scans' | 'runs'): Promise<void> {
    await c.run(`SELECT pg_advisory_xact_lock(${chain === 'scans' ? SCAN_CHAIN_LOCK_KEY : RUN_CHAIN_LOCK_KEY})`);
  }

  /** Run `fn` in one transaction on one pooled connection; roll back if it throws. */
  private transaction<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    return this.gate.run(() => this.transactionNow(fn));
  }

  private async transactionNow<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    const c = await this.pool.connect();
    let broken: Error | undefined;
    // A checked-out connection that the server resets between two statements emits 'error' with no query to take it
    // (pg hands such errors to the pool only while the connection is idle): without a listener that is an uncaught
    // exception. Keep it: the connection is discarded on release, and the next statement fails as an outage.
    const onError = (err: Error) => (broken ??= err);
    c.on('error', onError);
    try {
      await c.query('BEGIN');
      const result = await fn(c);
      await c.query('COMMIT');
      return result;
    } catch (err) {
      // A connection that cannot even roll back is discarded, not reused.
      await c.query('ROLLBACK').catch((e: Error) => (broken = e));
      throw err;
    } finally {
      c.removeListener('error', onError);
      c.release(broken);
    }
  }

  protected tx<T>(fn: (c: Conn) => Promise<T>): Promise<T> {
    return this.transaction((c) => fn(connOf(c)));
  }

  /** One statement for all the rows: each column goes in as one array, unnested in the rows' order. */
  protected async insertRows<R>(table: Table, rows: unknown[][], tail: string, c = this.writer): Promise<R[]> {
    if (rows.length === 0) return [];
    const arrays = table.columns.map(([, type], i) => `$${i + 1}::${type}[]`).join(', ');
    return c.all<R>(
      `INSERT INTO ${table.name} (${columnList(table)}) SELECT ${columnList(table, 'u.')}
       FROM unnest(${arrays}) WITH ORDINALITY AS u(${columnList(table)}, ord) ORDER BY u.ord ${tail}`,
      table.columns.map((_, i) => rows.map((r) => r[i])),
    );
  }

  async ping(): Promise<void> {
    await this.gate.run(() => this.pool.query('SELECT 1'));
  }

  unavailableReason(err: unknown): string | undefined {
    for (let e: unknown = err; e instanceof Error; e = e.cause) {
      const code = (e as { code?: unknown }).code;
      if (typeof code === 'string' && (NETWORK_ERROR_CODES.has(code) || UNAVAILABLE_SQLSTATE.test(code)))
        return `${code}: ${e.message}`;
      if (PG_CONNECTION_MESSAGES.test(e.message)) return e.message;
      // Node reports a failed connect to a name with several addresses as one AggregateError.
      if (e instanceof AggregateError) {
        const inner = (e.errors as unknown[]).map((x) => this.unavailableReason(x)).find((r) => r !== undefined);
        if (inner !== undefined) return inner;
      }
    }
    return undefined;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.notices.close();
    await this.pool.end();
  }

  /**
   * Merged per bucket and key first, outside any transaction; then the batch
   * joins a group (group-commit.ts) written in one transaction and answered
   * once that committed. writeFlowGroup has the locks.
   */
  async recordFlowBatch(
    node: string,
    bootId: string,
    seq: number,
    flows: FlowRecord[],
    atMs: number,
  ): Promise<{ duplicate: boolean }> {
    const rows = await mergeBucketRows(flows, MINUTE_BUCKET_MS, new TimeSlice());
    return this.flowGroups.submit({ node, bootId, seq, rows, atMs });
  }

  /**
   * One group of batches (one per node) in one transaction. Locks in one order
   * for every writer: the prune epoch (shared: pruning waits for writers, and
   * a writer after a prune forgets the ids it kept), the nodes' rows (sorted;
   * the order recordBenchmarkRun takes them: node, then ledger), the ledger
   * rows, then the bucket rows by node and then (bucket start, key), each
   * batch's merged per key first (one upsert may not touch a row twice). A run
   * has UNIQUE (node, boot_id, seq) to fall back on when there is no row to
   * lock yet; flows have none, so the ledger row is claimed with an upsert
   * rather than read FOR UPDATE: with no row, a second replica's insert of the
   * same (node, boot_id) waits for the first to commit and then finds its seq
   * taken. A batch whose seq is not claimed is a duplicate, stored before.
   *
   * Sorting and resolving keys give the event loop a turn every few ms, and the
   * rows go in statements of FLOW_ROWS_PER_INSERT, still in one transaction and
   * in lock order, so the group stays all or nothing.
   */
  private async writeFlowGroup(group: FlowBatchWrite[]): Promise<{ duplicate: boolean }[]> {
    const slice = new TimeSlice();
    const known = this.keyIds.staged();
    const batches = [...group].sort((a, b) => byText(a.node, b.node) || byText(a.bootId, b.bootId));
    const claimed = await this.transaction(async (c) => {
      const { rows: epoch } = await c.query<{ epoch: number }>(
        'SELECT epoch FROM flow_dictionary_epoch WHERE id = 1 FOR SHARE',
      );
      known.atEpoch(epoch[0]?.epoch ?? 0);
      const nodes = batches.map((b) => b.node);
      await c.query('SELECT 1 FROM nodes WHERE name = ANY($1::text[]) ORDER BY name FOR NO KEY UPDATE', [nodes]);
      await c.query(
        `UPDATE nodes n SET last_seen_ms = GREATEST(n.last_seen_ms, u.at)
         FROM unnest($1::text[], $2::bigint[]) AS u(name, at) WHERE n.name = u.name`,
        [nodes, batches.map((b) => b.atMs)],
      );
      const { rows: won } = await c.query<{ node: string }>(
        `INSERT INTO agent_sequences (node, boot_id, last_seq, updated_ms)
         SELECT u.node, u.boot_id, u.seq, u.at
         FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[]) WITH ORDINALITY AS u(node, boot_id, seq, at, ord)
         ORDER BY u.ord
         ON CONFLICT (node, boot_id) DO UPDATE SET last_seq = excluded.last_seq, updated_ms = excluded.updated_ms
         WHERE agent_sequences.last_seq < excluded.last_seq
         RETURNING node`,
        [nodes, batches.map((b) => b.bootId), batches.map((b) => b.seq), batches.map((b) => b.atMs)],
      );
      const stored = new Set(won.map((r) => r.node)); // one batch per node in a group
      const writing = batches.filter((b) => stored.has(b.node));
      await resolveKeyIds(
        writing.flatMap((b) => b.rows),
        pgDictionary(c),
        slice,
        known,
      );
      const rows: BucketRow[] = [];
      const nodeOf: number[] = [];
      for (const [n, b] of writing.entries()) {
        for (const r of mergeSameKeyIds(await sortInSlices(b.rows, lockOrder, slice))) {
          rows.push(r);
          nodeOf.push(n);
        }
      }
      const names = writing.map((b) => b.node);
      for (let i = 0; i < rows.length; i += FLOW_ROWS_PER_INSERT) {
        if (slice.isUp()) await slice.next();
        await upsertBucketRows(
          c,
          names,
          nodeOf.slice(i, i + FLOW_ROWS_PER_INSERT),
          rows.slice(i, i + FLOW_ROWS_PER_INSERT),
        );
      }
      return stored;
    });
    known.commit();
    return group.map((b) => ({ duplicate: !claimed.has(b.node) }));
  }

  /**
   * Dictionary entries no bucket uses any more are deleted, in their own
   * transaction after a compaction that deleted buckets. The epoch row's lock
   * makes it wait for groups being written and holds new ones off until it
   * commits; the epoch it sets makes every replica forget the ids it kept.
   */
  private async pruneFlowDictionaries(): Promise<void> {
    await this.transaction(async (c) => {
      await c.query('UPDATE flow_dictionary_epoch SET epoch = epoch + 1 WHERE id = 1');
      for (const sql of PG_DICTIONARY_PRUNE) await c.query(sql);
    });
  }

  /**
   * Compactions take turns (advisory lock). Against batches being stored they
   * never wait: a bucket row that a batch holds locked is skipped (FOR UPDATE
   * SKIP LOCKED) and left for the next compaction, so a late batch adding to an
   * old minute cannot deadlock with the compaction, and what is rolled up is
   * exactly what is deleted: the rows are locked, summed and deleted in one
   * statement, never counted from one snapshot and deleted from another.
   */
  async compactFlows(rollupBeforeMs: number, deleteBeforeMs: number): Promise<{ rolledUp: number; deleted: number }> {
    const cut = Math.floor(rollupBeforeMs / HOUR_BUCKET_MS) * HOUR_BUCKET_MS; // only whole hours roll up
    const out = await this.transaction(async (c) => {
      await c.query(`SELECT pg_advisory_xact_lock(${FLOW_COMPACTION_LOCK_KEY})`);
      const rolled = await c.query(
        `WITH moved AS MATERIALIZED (
           SELECT bucket_start_ms, node, key_id, connections, packets, bytes, first_ms, last_ms
           FROM flow_buckets WHERE bucket_ms = ${MINUTE_BUCKET_MS} AND bucket_start_ms < $1
           FOR UPDATE SKIP LOCKED
         ), gone AS (
           DELETE FROM flow_buckets f USING moved m
           WHERE f.bucket_ms = ${MINUTE_BUCKET_MS} AND f.bucket_start_ms = m.bucket_start_ms AND f.node = m.node AND f.key_id = m.key_id
         )
         INSERT INTO flow_buckets (${FLOW_COLUMNS})
         SELECT (bucket_start_ms / ${HOUR_BUCKET_MS}) * ${HOUR_BUCKET_MS}, ${HOUR_BUCKET_MS}, node, key_id, ${FLOW_ROLLUP_COLUMNS}
         FROM moved
         GROUP BY (bucket_start_ms / ${HOUR_BUCKET_MS}), node, key_id
         ON CONFLICT ${FLOW_BUCKET_KEY} DO UPDATE SET ${flowMergeSet(POSTGRES)}`,
        [cut],
      );
      const deleted = await c.query(
        `DELETE FROM flow_buckets f
         USING (SELECT bucket_ms, bucket_start_ms, node, key_id FROM flow_buckets WHERE bucket_start_ms < $1 FOR UPDATE SKIP LOCKED) d
         WHERE f.bucket_ms = d.bucket_ms AND f.bucket_start_ms = d.bucket_start_ms AND f.node = d.node AND f.key_id = d.key_id`,
        [deleteBeforeMs],
      );
      return { rolledUp: rolled.rowCount ?? 0, deleted: deleted.rowCount ?? 0 };
    });
    if (out.deleted > 0) await this.pruneFlowDictionaries();
    return out;
  }

  async latestAuditEvents(
    objects: { apiGroup: string; resource: string; namespace: string; name: string }[],
    beforeMs: number,
    onlyWatched = false,
  ): Promise<StoredAuditEvent[]> {
    if (objects.length === 0) return [];
    const rows = await this.reader.all<AuditEventRow>(
      `SELECT DISTINCT ON (e.api_group, e.resource, e.namespace, e.name) e.*
       FROM audit_events e JOIN unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS o(g, r, ns, n)
         ON e.api_group = o.g AND e.resource = o.r AND e.namespace = o.ns AND e.name = o.n
       WHERE e.stage_ms < $5${onlyWatched ? " AND e.audit_id LIKE 'watch:%'" : ''}
       ORDER BY e.api_group, e.resource, e.namespace, e.name, e.stage_ms DESC, e.audit_id COLLATE "C" DESC`,
      [
        objects.map((o) => o.apiGroup),
        objects.map((o) => o.resource),
        objects.map((o) => o.namespace),
        objects.map((o) => o.name),
        beforeMs,
      ],
    );
    return rows.map(toAuditEvent).sort((a, b) => a.stageMs - b.stageMs);
  }
}

/** The URL without its password, for error messages and logs. */
function redactedUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return 'the --db URL';
  }
}

/**
 * Add `rows` (key ids resolved, in lock order) to their buckets, row i to node `nodes[nodeOf[i]]`: one statement.
 * The numbers go as array literals built here: node-postgres would escape each element on the event loop.
 */
async function upsertBucketRows(c: pg.PoolClient, nodes: string[], nodeOf: number[], rows: BucketRow[]): Promise<void> {
  const cols = ['', '', '', '', '', '', '', '', ''];
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i]!;
    const sep = i === 0 ? '' : ',';
    cols[0] += sep + (nodeOf[i]! + 1);
    cols[1] += sep + r.bucketStart;
    cols[2] += sep + r.bucketMs;
    cols[3] += sep + r.keyId!;
    cols[4] += sep + r.connections;
    cols[5] += sep + r.packets;
    cols[6] += sep + r.bytes;
    cols[7] += sep + r.first;
    cols[8] += sep + r.last;
  }
  await c.query(
    `INSERT INTO flow_buckets (${FLOW_COLUMNS})
     SELECT u.bucket_start, u.bucket_ms, ($1::text[])[u.n], u.key_id, u.connections, u.packets, u.bytes, u.first_ms, u.last_ms
     FROM unnest($2::int[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[])
       WITH ORDINALITY AS u(n, bucket_start, bucket_ms, key_id, connections, packets, bytes, first_ms, last_ms, ord)
     ORDER BY u.ord
     ON CONFLICT ${FLOW_BUCKET_KEY} DO UPDATE SET ${flowMergeSet(POSTGRES)}`,
    [nodes, ...cols.map((col) => `{${col}}`)],
  );
}

/**
 * Retention's pruning of the flow dictionaries: keys no bucket uses (flow_buckets_key), then endpoints and policy
 * lists no key uses (anti-joins: the planner hashes flow_keys once for the unindexed list columns).
 */
const PG_DICTIONARY_PRUNE = [
  'DELETE FROM flow_keys k WHERE NOT EXISTS (SELECT 1 FROM flow_buckets b WHERE b.key_id = k.id)',
  `DELETE FROM flow_endpoints e WHERE NOT EXISTS (SELECT 1 FROM flow_keys k WHERE k.src_id = e.id)
     AND NOT EXISTS (SELECT 1 FROM flow_keys k WHERE k.dst_id = e.id)`,
  `DELETE FROM flow_policy_lists l WHERE NOT EXISTS (SELECT 1 FROM flow_keys k WHERE k.policies_id = l.id)
     AND NOT EXISTS (SELECT 1 FROM flow_keys k WHERE k.staged_id = l.id)`,
];

const byText = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/**
 * Ids for `keys`: those stored already, then the rest added (in the order
 * given, which every writer sorts the same way) and read back. A writer adding
 * the same entry meanwhile makes the insert wait for its commit and then skip
 * it (ON CONFLICT DO NOTHING); the read after sees it either way.
 */
async function pgLookup<T>(
  c: pg.PoolClient,
  items: T[],
  key: (t: T) => string,
  select: { sql: string; withColumns: boolean },
  insert: string,
  arrays: (items: T[]) => unknown[],
): Promise<Map<string, number>> {
  const ids = new Map<string, number>();
  // select's $1 is the items' keys; with its columns, $2... are insert's parameters.
  const read = async (list: T[]) => {
    const { rows } = await c.query<{ id: number; k: string }>(select.sql, [
      list.map(key),
      ...(select.withColumns ? arrays(list) : []),
    ]);
    for (const r of rows) ids.set(r.k, r.id);
  };
  await read(items);
  const missing = items.filter((t) => !ids.has(key(t)));
  if (missing.length === 0) return ids;
  await c.query(insert, arrays(missing));
  await read(missing);
  return ids;
}

/** The flow dictionaries on `c`, inside the batch's transaction. */
function pgDictionary(
  c: pg.PoolClient,
  keyColumns: readonly (typeof KEY_TUPLE_COLUMNS)[number][] = KEY_TUPLE_COLUMNS,
): FlowDictionary {
  return {
    endpoints: (items) =>
      pgLookup(
        c,
        items,
        (t) => t.json,
        {
          sql: `SELECT e.id, u.k FROM unnest($1::text[]) AS u(k)
                JOIN flow_endpoints e ON e.endpoint_sha256 = sha256(convert_to(u.k, 'UTF8'))`,
          withColumns: false,
        },
        `INSERT INTO flow_endpoints (endpoint_sha256, endpoint_json, kind, namespace, name, internet)
         SELECT sha256(convert_to(u.j, 'UTF8')), u.j, u.k, u.ns, u.n, u.i
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::boolean[]) WITH ORDINALITY AS u(j, k, ns, n, i, ord)
         ORDER BY u.ord ON CONFLICT (endpoint_sha256) DO NOTHING`,
        (list) => [
          list.map((t) => t.json),
          list.map((t) => t.e.kind),
          list.map((t) => t.e.namespace),
          list.map((t) => t.e.name),
          list.map((t) => t.e.internet),
        ],
      ),
    policyLists: (jsons) =>
      pgLookup(
        c,
        jsons,
        (j) => j,
        {
          sql: `SELECT l.id, u.k FROM unnest($1::text[]) AS u(k)
                JOIN flow_policy_lists l ON l.policies_sha256 = sha256(convert_to(u.k, 'UTF8'))`,
          withColumns: false,
        },
        `INSERT INTO flow_policy_lists (policies_sha256, policies_json)
         SELECT sha256(convert_to(u.j, 'UTF8')), u.j FROM unnest($1::text[]) WITH ORDINALITY AS u(j, ord)
         ORDER BY u.ord ON CONFLICT (policies_sha256) DO NOTHING`,
        (list) => [list],
      ),
    keys: (tuples) => pgKeys(c, tuples, keyColumns),
  };
}

/** flow_keys' identity columns' types, for unnest. */
const KEY_COLUMN_TYPES: Record<(typeof KEY_TUPLE_COLUMNS)[number], string> = {
  src_id: 'bigint',
  dst_id: 'bigint',
  protocol: 'text',
  destination_port: 'int',
  action: 'text',
  reporter: 'text',
  policies_id: 'bigint',
  staged_id: 'bigint',
  unnamed_policy: 'boolean',
  policy_decided: 'boolean',
  policy_unknown: 'boolean',
};

/** Ids for key tuples: each tuple's first keyColumns.length elements, one per column (before migration 013, fewer). */
function pgKeys(
  c: pg.PoolClient,
  tuples: KeyTuple[],
  keyColumns: readonly (typeof KEY_TUPLE_COLUMNS)[number][],
): Promise<Map<string, number>> {
  const cols = keyColumns.join(', ');
  const arrays = (from: number) => keyColumns.map((col, i) => `$${i + from}::${KEY_COLUMN_TYPES[col]}[]`).join(', ');
  return pgLookup(
    c,
    tuples,
    (t) => JSON.stringify(t),
    {
      sql: `SELECT k.id, u.k FROM unnest($1::text[], ${arrays(2)}) AS u(k, ${cols})
            JOIN flow_keys k ON ${keyColumns.map((col) => `k.${col} = u.${col}`).join(' AND ')}`,
      withColumns: true,
    },
    `INSERT INTO flow_keys (${cols})
     SELECT ${keyColumns.map((col) => `u.${col}`).join(', ')}
     FROM unnest(${arrays(1)}) WITH ORDINALITY AS u(${cols}, ord)
     ORDER BY u.ord
     ON CONFLICT (${cols}) DO NOTHING`,
    (list) => keyColumns.map((_, i) => list.map((t) => t[i])),
  );
}

/**
 * Migration 008's data: every flow_buckets_legacy row read as the writer reads
 * a batch's records (flow-buckets.ts), its key looked up in (or added to) the
 * dictionaries, and added to its bucket; then the legacy table is dropped. In
 * the migration's transaction: converted whole or not at all.
 */
async function convertLegacyFlows(c: pg.PoolClient): Promise<void> {
  const dict = pgDictionary(c, KEY_TUPLE_COLUMNS_BEFORE_013);
  const slice = new TimeSlice();
  const conversion = new LegacyConversion();
  let after: [number, number, string, Buffer] | undefined;
  for (;;) {
    const { rows: legacy } = await c.query<LegacyFlowRow & { flow_key_sha256: Buffer }>(
      `SELECT * FROM flow_buckets_legacy
       ${after ? 'WHERE (bucket_ms, bucket_start_ms, node, flow_key_sha256) > ($1, $2, $3, $4)' : ''}
       ORDER BY bucket_ms, bucket_start_ms, node, flow_key_sha256 LIMIT ${LEGACY_ROWS_PER_STEP}`,
      after ?? [],
    );
    if (legacy.length === 0) break;
    const last = legacy[legacy.length - 1]!;
    after = [last.bucket_ms, last.bucket_start_ms, last.node, last.flow_key_sha256];
    for (const [node, rows] of conversion.step(legacy)) {
      await resolveKeyIds(
        rows.filter((r) => r.keyId === undefined),
        dict,
        slice,
      );
      const merged = mergeSameKeyIds(rows.sort(lockOrder));
      for (let i = 0; i < merged.length; i += FLOW_ROWS_PER_INSERT) {
        const part = merged.slice(i, i + FLOW_ROWS_PER_INSERT);
        await upsertBucketRows(c, [node], new Array<number>(part.length).fill(0), part);
      }
    }
    conversion.learned();
  }
  await c.query('DROP TABLE flow_buckets_legacy');
}
