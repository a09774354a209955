import pg from 'pg';
import type { FlowRecord } from '../../common/flow.js';
import { sortInSlices, TimeSlice } from '../../common/time-slice.js';
import { SqlStore } from './core.js';
import { lockOrder, mergeBucketRows, type BucketParams } from './flow-buckets.js';
import { FLOW_COMPACTION_LOCK_KEY, MIGRATION_LOCK_KEY } from './locks.js';
import { migrationFiles, type Migration } from './migrations.js';
import { toAuditEvent, type AuditEventRow } from './rows.js';
import {
  columnList,
  FLOW_COLUMNS,
  FLOW_ROLLUP_COLUMNS,
  flowMergeSet,
  POSTGRES,
  touchNodeSql,
  type Conn,
  type Table,
} from './sql.js';
import { HOUR_BUCKET_MS, MINUTE_BUCKET_MS, type StoredAuditEvent } from './types.js';

/** How long to wait for a connection before a query (and so /readyz) fails, instead of hanging. */
const CONNECT_TIMEOUT_MS = 10_000;

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
    throw new Error(`VERDICT_STORE_CORRUPT: integer ${text} is beyond 2^53 and cannot be read exactly`);
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

/**
 * Bucket rows per INSERT: node-postgres turns each array parameter into text
 * on the event loop, a few ms for this many rows.
 */
const FLOW_ROWS_PER_INSERT = 2000;

/** flow_buckets' columns here: the key is unique by its SHA-256 (migrations/postgres/002_flow_buckets.sql). */
const PG_FLOW_COLUMNS = FLOW_COLUMNS.replace('node, flow_key,', 'node, flow_key_sha256, flow_key,');

const connOf = (q: pg.Pool | pg.PoolClient): Conn => ({
  all: async <R>(sql: string, values?: unknown[]) => (await q.query(sql, values)).rows as R[],
  run: async (sql, values) => (await q.query(sql, values)).rowCount ?? 0,
});

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

  private constructor(private readonly pool: pg.Pool) {
    super();
    this.reader = this.writer = connOf(pool);
  }

  static async open(url: string): Promise<PostgresStore> {
    const pool = new pg.Pool({
      connectionString: url,
      types: INT8_AS_NUMBER,
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
      application_name: 'verdict-aggregator',
    });
    // An idle connection that breaks (server restart, network) is dropped by the
    // pool; the next query opens a new one or fails, and /readyz says so. Without
    // a listener the 'error' event would end the process.
    pool.on('error', () => {});
    const store = new PostgresStore(pool);
    try {
      await store.ping();
    } catch (err) {
      await pool.end();
      throw new Error(
        `VERDICT_STORE_UNAVAILABLE: cannot connect to PostgreSQL at ${redactedUrl(url)}: ${(err as Error).message}; check --db and that the server accepts connections`,
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
      } catch (err) {
        throw new Error(`VERDICT_STORE_MIGRATION_FAILED: migrations/postgres/${m.name}: ${(err as Error).message}`, {
          cause: err,
        });
      }
      await c.query('INSERT INTO schema_migrations (version, name, applied_at_ms) VALUES ($1, $2, $3)', [
        m.version,
        m.name,
        Date.now(),
      ]);
    });
  }

  /** Run `fn` in one transaction on one pooled connection; roll back if it throws. */
  private async transaction<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    const c = await this.pool.connect();
    let broken: Error | undefined;
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
    await this.pool.query('SELECT 1');
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
    await this.pool.end();
  }

  /**
   * Locks in the order recordBenchmarkRun takes them: the node's row, then the
   * ledger row. A run has UNIQUE (node, boot_id, seq) to fall back on when
   * there is no row to lock yet; flows have none, so the ledger row is claimed
   * with an upsert rather than read FOR UPDATE: with no row, a second replica's
   * insert of the same (node, boot_id) waits for the first to commit and then
   * finds its seq taken. Then the bucket rows, merged per key first (one upsert
   * may not touch a row twice) and in one order (bucket start, key), so two
   * writers of one node's buckets (two boots with no node row to serialize on)
   * cannot deadlock.
   *
   * A 4 MiB batch holds 90,000 records: merging and sorting them give the event
   * loop a turn every few ms, and the rows go in statements of
   * FLOW_ROWS_PER_INSERT, still in one transaction and in lock order, so the
   * batch stays all or nothing and no one statement's parameters take long to
   * build.
   */
  async recordFlowBatch(
    node: string,
    bootId: string,
    seq: number,
    flows: FlowRecord[],
    atMs: number,
  ): Promise<{ duplicate: boolean }> {
    const slice = new TimeSlice();
    const rows = await sortInSlices(await mergeBucketRows(node, flows, MINUTE_BUCKET_MS, slice), lockOrder, slice);
    return this.transaction(async (c) => {
      await c.query(touchNodeSql(POSTGRES), [atMs, node]);
      const claimed = await c.query(
        `INSERT INTO agent_sequences (node, boot_id, last_seq, updated_ms) VALUES ($1, $2, $3, $4)
         ON CONFLICT (node, boot_id) DO UPDATE SET last_seq = excluded.last_seq, updated_ms = excluded.updated_ms
         WHERE agent_sequences.last_seq < excluded.last_seq`,
        [node, bootId, seq, atMs],
      );
      if (claimed.rowCount === 0) return { duplicate: true };
      for (let i = 0; i < rows.length; i += FLOW_ROWS_PER_INSERT)
        await upsertBucketRows(c, node, rows.slice(i, i + FLOW_ROWS_PER_INSERT));
      return { duplicate: false };
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
    return this.transaction(async (c) => {
      await c.query(`SELECT pg_advisory_xact_lock(${FLOW_COMPACTION_LOCK_KEY})`);
      const rolled = await c.query(
        `WITH moved AS MATERIALIZED (
           SELECT bucket_start_ms, node, flow_key_sha256, flow_key, src_kind, src_namespace, src_name, dst_kind, dst_namespace, dst_name, action, reporter, record_json, connections, packets, bytes, first_ms, last_ms
           FROM flow_buckets WHERE bucket_ms = ${MINUTE_BUCKET_MS} AND bucket_start_ms < $1
           FOR UPDATE SKIP LOCKED
         ), gone AS (
           DELETE FROM flow_buckets f USING moved m
           WHERE f.bucket_ms = ${MINUTE_BUCKET_MS} AND f.bucket_start_ms = m.bucket_start_ms AND f.node = m.node AND f.flow_key_sha256 = m.flow_key_sha256
         )
         INSERT INTO flow_buckets (${PG_FLOW_COLUMNS})
         SELECT ${HOUR_BUCKET_MS}, (bucket_start_ms / ${HOUR_BUCKET_MS}) * ${HOUR_BUCKET_MS}, node, flow_key_sha256, MIN(flow_key), ${FLOW_ROLLUP_COLUMNS}
         FROM moved
         GROUP BY (bucket_start_ms / ${HOUR_BUCKET_MS}), node, flow_key_sha256
         ON CONFLICT (bucket_ms, bucket_start_ms, node, flow_key_sha256) DO UPDATE SET ${flowMergeSet(POSTGRES)}`,
        [cut],
      );
      const deleted = await c.query(
        `DELETE FROM flow_buckets f
         USING (SELECT bucket_ms, bucket_start_ms, node, flow_key_sha256 FROM flow_buckets WHERE bucket_start_ms < $1 FOR UPDATE SKIP LOCKED) d
         WHERE f.bucket_ms = d.bucket_ms AND f.bucket_start_ms = d.bucket_start_ms AND f.node = d.node AND f.flow_key_sha256 = d.flow_key_sha256`,
        [deleteBeforeMs],
      );
      return { rolledUp: rolled.rowCount ?? 0, deleted: deleted.rowCount ?? 0 };
    });
  }

  async latestAuditEvents(
    objects: { apiGroup: string; resource: string; namespace: string; name: string }[],
    beforeMs: number,
  ): Promise<StoredAuditEvent[]> {
    if (objects.length === 0) return [];
    const { rows } = await this.pool.query<AuditEventRow>(
      `SELECT DISTINCT ON (e.api_group, e.resource, e.namespace, e.name) e.*
       FROM audit_events e JOIN unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS o(g, r, ns, n)
         ON e.api_group = o.g AND e.resource = o.r AND e.namespace = o.ns AND e.name = o.n
       WHERE e.stage_ms < $5
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

/** The BucketParams fields upsertBucketRows sends as arrays, in the order of its unnest ($3...$18). */
const BUCKET_FIELDS = `bucketStart key srcKind srcNs srcName dstKind dstNs dstName action reporter json
  connections packets bytes first last`.split(/\s+/) as (keyof BucketParams)[];

/** Add `rows` (merged, in lock order) to their buckets: one statement. */
async function upsertBucketRows(c: pg.PoolClient, node: string, rows: BucketParams[]): Promise<void> {
  await c.query(
    `INSERT INTO flow_buckets (${PG_FLOW_COLUMNS})
     SELECT $1::bigint, u.bucket_start, $2::text, sha256(convert_to(u.flow_key, 'UTF8')), u.flow_key, u.src_kind, u.src_ns, u.src_name, u.dst_kind, u.dst_ns, u.dst_name, u.action, u.reporter, u.json, u.connections, u.packets, u.bytes, u.first_ms, u.last_ms
     FROM unnest($3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::bigint[], $15::bigint[], $16::bigint[], $17::bigint[], $18::bigint[])
       WITH ORDINALITY AS u(bucket_start, flow_key, src_kind, src_ns, src_name, dst_kind, dst_ns, dst_name, action, reporter, json, connections, packets, bytes, first_ms, last_ms, ord)
     ORDER BY u.ord
     ON CONFLICT (bucket_ms, bucket_start_ms, node, flow_key_sha256) DO UPDATE SET ${flowMergeSet(POSTGRES)}`,
    [MINUTE_BUCKET_MS, node, ...BUCKET_FIELDS.map((k) => rows.map((r) => r[k]))],
  );
}
