import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import type { FlowEndpoint, FlowRecord } from '../../common/flow.js';
import { TimeSlice } from '../../common/time-slice.js';
import { SqlStore } from './core.js';
import {
  KEY_TUPLE_COLUMNS,
  KEY_TUPLE_COLUMNS_BEFORE_013,
  LegacyConversion,
  mergeBucketRows,
  resolveKeyIdsSync,
  tableOrder,
  type BucketRow,
  type KeyTuple,
  type LegacyFlowRow,
  type SyncFlowDictionary,
} from './flow-buckets.js';
import { FLOW_KEY_IDS_KEPT, FlowKeyIds } from './flow-key-ids.js';
import { FLOW_GROUP_MAX_ROWS, GroupCommit, type FlowBatchWrite } from './group-commit.js';
import { EVIDENCE_MIGRATION, runStepsSync, sealBacklog, type SealStatement } from './evidence.js';
import { migrationFiles } from './migrations.js';
import { toAuditEvent, type AuditEventRow } from './rows.js';
import {
  FLOW_BUCKET_KEY,
  FLOW_COLUMNS,
  FLOW_ROLLUP_COLUMNS,
  LEGACY_FLOW_COLUMNS,
  flowMergeSet,
  insertOneSql,
  LEDGER_SQL,
  ledgerUpsertSql,
  SQLITE,
  touchNodeSql,
  type Conn,
  type Table,
} from './sql.js';
import { HOUR_BUCKET_MS, MINUTE_BUCKET_MS, type StoredAuditEvent } from './types.js';
import { WalCheckpointer } from './wal-checkpoints.js';

/**
 * SQLite result codes (sqlite.org/rescode.html) that mean the database cannot be
 * used now, not that a statement is wrong: disk full, I/O errors, read-only or
 * unopenable file, locked beyond busy_timeout, out of memory.
 */
const UNAVAILABLE_CODES = /^SQLITE_(FULL|IOERR|READONLY|CANTOPEN|BUSY|LOCKED|NOMEM)/;

/**
 * Bucket rows from which a batch's commit hands WAL checkpoints to a worker
 * (wal-checkpoints.ts): about 600 pages of WAL, a few ms to checkpoint here;
 * a 4 MiB batch's 90,000 rows make some 25,000.
 */
const LARGE_WRITE_ROWS = 2000;

/** The write connection's page cache, KiB. */
const WRITE_CACHE_KIB = 32 * 1024;

/** Bucket rows per step of a batch: their dictionary lookups and upserts, a few ms. */
const DICTIONARY_ROWS_PER_STEP = 1000;

/**
 * Retention's pruning of the flow dictionaries: keys no bucket uses, then endpoints and policy lists no key uses.
 * NOT IN over a subquery: SQLite builds its list once (policies_id and staged_id have no index).
 */
const SQLITE_DICTIONARY_PRUNE = [
  'DELETE FROM flow_keys WHERE NOT EXISTS (SELECT 1 FROM flow_buckets b WHERE b.key_id = flow_keys.id)',
  'DELETE FROM flow_endpoints WHERE id NOT IN (SELECT src_id FROM flow_keys UNION SELECT dst_id FROM flow_keys)',
  'DELETE FROM flow_policy_lists WHERE id NOT IN (SELECT policies_id FROM flow_keys UNION SELECT staged_id FROM flow_keys)',
];

/** Legacy flow rows converted per step of migration 008. */
const LEGACY_ROWS_PER_STEP = 5000;

/** Audit event rows per page of a range read: a few milliseconds of reading and parsing. */
const AUDIT_ROWS_PER_PAGE = 500;

/**
 * One flow-bucket row added to its bucket as the store wrote it before migration 008 (bucketParams names the
 * parameters): the bench's baseline only, on a database of that schema.
 */
export const FLOW_BUCKET_UPSERT_SQL = `INSERT INTO flow_buckets (${LEGACY_FLOW_COLUMNS})
  VALUES (@bucketMs, @bucketStart, @node, @key, @srcKind, @srcNs, @srcName, @dstKind, @dstNs, @dstName, @action, @reporter, @json, @connections, @packets, @bytes, @first, @last)
  ON CONFLICT (bucket_ms, bucket_start_ms, node, flow_key) DO UPDATE SET ${flowMergeSet(SQLITE)}`;

/** One flow-bucket row (its key id resolved) added to its bucket. */
const BUCKET_UPSERT_SQL = `INSERT INTO flow_buckets (${FLOW_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
  ON CONFLICT ${FLOW_BUCKET_KEY} DO UPDATE SET ${flowMergeSet(SQLITE)}`;

/**
 * Bucket rows per upsert statement in a group's transaction. SQLite applies a multi-row upsert row by row, in order,
 * as that many single ones (a row meeting one the same statement inserted updates it), so the rows and their order are
 * the same; the per-statement cost (a call into better-sqlite3, a VDBE run) is paid once for them all.
 */
const BUCKET_ROWS_PER_UPSERT = 50;
const BUCKET_UPSERT_MANY_SQL = `INSERT INTO flow_buckets (${FLOW_COLUMNS}) VALUES ${Array.from(
  { length: BUCKET_ROWS_PER_UPSERT },
  () => '(?, ?, ?, ?, ?, ?, ?, ?, ?)',
).join(', ')}
  ON CONFLICT ${FLOW_BUCKET_KEY} DO UPDATE SET ${flowMergeSet(SQLITE)}`;

const upsertArgs = (node: string, r: BucketRow) => [
  r.bucketStart,
  r.bucketMs,
  node,
  r.keyId,
  r.connections,
  r.packets,
  r.bytes,
  r.first,
  r.last,
];

/**
 * The flow dictionaries on `db`, inside the write transaction: each item looked
 * up, and added when missing (one writer: nobody adds it meanwhile).
 */
function sqliteDictionary(
  db: Database.Database,
  keyColumns: readonly string[] = KEY_TUPLE_COLUMNS,
): SyncFlowDictionary {
  // select's parameters are the first `selectArgs` of insert's. Prepared once: a store keeps its dictionary.
  const lookup = <T>(
    select: string,
    insert: string,
    key: (t: T) => string,
    args: (t: T) => unknown[],
    selectArgs = 1,
  ) => {
    const sel = db.prepare(select).pluck();
    const ins = db.prepare(insert).pluck();
    return (items: T[]) => {
      const ids = new Map<string, number>();
      for (const t of items) {
        const a = args(t);
        const id = (sel.get(...a.slice(0, selectArgs)) ?? ins.get(...a)) as number;
        ids.set(key(t), id);
      }
      return ids;
    };
  };
  return {
    endpoints: lookup<{ json: string; e: FlowEndpoint }>(
      'SELECT id FROM flow_endpoints WHERE endpoint_json = ?',
      'INSERT INTO flow_endpoints (endpoint_json, kind, namespace, name, internet) VALUES (?, ?, ?, ?, ?) RETURNING id',
      (t) => t.json,
      (t) => [t.json, t.e.kind, t.e.namespace, t.e.name, t.e.internet ? 1 : 0],
    ),
    policyLists: lookup<string>(
      'SELECT id FROM flow_policy_lists WHERE policies_json = ?',
      'INSERT INTO flow_policy_lists (policies_json) VALUES (?) RETURNING id',
      (j) => j,
      (j) => [j],
    ),
    // A tuple's first keyColumns.length elements, one per column (all of them but before migration 013).
    keys: lookup<KeyTuple>(
      `SELECT id FROM flow_keys WHERE ${keyColumns.map((c) => `${c} = ?`).join(' AND ')}`,
      `INSERT INTO flow_keys (${keyColumns.join(', ')}) VALUES (${keyColumns.map(() => '?').join(', ')}) RETURNING id`,
      (t) => JSON.stringify(t),
      (t) => t.slice(0, keyColumns.length).map((v) => (typeof v === 'boolean' ? Number(v) : v)),
      keyColumns.length,
    ),
  };
}

/** What a group of flow batches runs per row. */
interface FlowStatements {
  upsert: Database.Statement;
  upsertMany: Database.Statement;
  dict: SyncFlowDictionary;
}

/** Each connection's prepared statements, by SQL text (the shared SQL is a few dozen distinct texts). */
const prepared = new WeakMap<Database.Database, Map<string, Database.Statement>>();

function statement(db: Database.Database, sql: string): Database.Statement {
  let cache = prepared.get(db);
  if (!cache) prepared.set(db, (cache = new Map()));
  let st = cache.get(sql);
  if (!st) cache.set(sql, (st = db.prepare(sql)));
  return st;
}

/** The shared SQL's `$n` are named parameters to SQLite ("1", "2", ...); booleans go in as 1 and 0. */
function bind(values: unknown[]): unknown[] {
  if (values.length === 0) return [];
  return [Object.fromEntries(values.map((v, i) => [i + 1, typeof v === 'boolean' ? Number(v) : v]))];
}

const allRows = <R>(db: Database.Database, sql: string, values: unknown[] = []): R[] =>
  statement(db, sql).all(...bind(values)) as R[];
const changes = (db: Database.Database, sql: string, values: unknown[] = []): number =>
  statement(db, sql).run(...bind(values)).changes;

/** A Conn that runs each statement at once on `db` (inside a transaction the write queue holds). */
const connOf = (db: Database.Database): Conn => ({
  all: async <R>(sql: string, values?: unknown[]) => allRows<R>(db, sql, values),
  run: async (sql, values) => changes(db, sql, values),
});

/**
 * The embedded store: one SQLite file in WAL mode, written through one
 * connection and read through another.
 *
 * better-sqlite3 is synchronous, and most writes are a few statements; but a
 * 4 MiB flow batch is 90,000 upserts, seconds of work, which must not hold the
 * event loop. So recordFlowBatch runs its one transaction in time slices,
 * with turns of the event loop between them. Everything run on the write
 * connection meanwhile would join that open transaction (and be rolled back
 * with it, or commit half a batch early), so every write waits its turn in
 * one queue and runs to its end alone. Reads take the read connection, which
 * in WAL mode sees the last committed state: never part of a batch, and no
 * waiting for one. An in-memory database (tests) cannot be opened twice; there
 * reads wait in the write queue.
 */
export class SqliteStore extends SqlStore {
  readonly kind = 'sqlite' as const;
  protected readonly d = SQLITE;
  protected readonly rowsPerPage = AUDIT_ROWS_PER_PAGE;
  protected readonly reader: Conn = {
    all: <R>(sql: string, values?: unknown[]) => this.read((db) => allRows<R>(db, sql, values)),
    run: (sql, values) => this.read((db) => changes(db, sql, values)),
  };
  protected readonly writer: Conn = {
    all: <R>(sql: string, values?: unknown[]) => this.write((db) => allRows<R>(db, sql, values)),
    run: (sql, values) => this.write((db) => changes(db, sql, values)),
  };
  /** The last write queued: the next one starts after it settles. */
  private writeQueue: Promise<unknown> = Promise.resolve();
  /** Flow key ids kept in memory (one writer: only this store's pruning removes entries). */
  private readonly keyIds = new FlowKeyIds(FLOW_KEY_IDS_KEPT);
  /** Raised by each prune of the flow dictionaries (see FlowKeyIds.useEpoch). */
  private pruneEpoch = 0;
  /** Flow batches from all streams, grouped into transactions (one at a time: there is one writer). */
  private readonly flowGroups = new GroupCommit((batches) => this.writeFlowGroup(batches), {
    maxRows: FLOW_GROUP_MAX_ROWS,
    concurrency: 1,
    isOutage: (err) => this.unavailableReason(err) !== undefined,
  });
  private flowSql?: FlowStatements;

  private constructor(
    private readonly db: Database.Database,
    private readonly readDb: Database.Database | undefined,
    private readonly checkpointer: WalCheckpointer | undefined,
  ) {
    super();
  }

  static open(file: string): SqliteStore {
    const inMemory = file === ':memory:';
    if (!inMemory) mkdirSync(dirname(file), { recursive: true });
    const db = new Database(file);
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL'); // WAL + NORMAL is durable across process crashes
    db.pragma('foreign_keys = ON');
    db.pragma('busy_timeout = 5000');
    // Flow buckets are written all over the table (by key): a page cache of SQLite's default 2 MiB re-reads pages
    // from the file for most upserts once the table outgrows it (profiled in bench/ingest).
    db.pragma(`cache_size = -${WRITE_CACHE_KIB}`);
    migrate(db);
    if (inMemory) return new SqliteStore(db, undefined, undefined);
    const reader = new Database(file, { readonly: true, fileMustExist: true });
    reader.pragma('busy_timeout = 5000');
    return new SqliteStore(db, reader, new WalCheckpointer(file, db));
  }

  /** Run `fn` on the write connection once every write queued before it has settled. */
  private write<T>(fn: (db: Database.Database) => T | Promise<T>): Promise<T> {
    const run = this.writeQueue.then(() => fn(this.db)).finally(() => this.checkpointer?.wrote());
    this.writeQueue = run.catch(() => undefined);
    return run;
  }

  /** Run `fn` on the read connection (committed data only); in memory, in the write queue. */
  private async read<T>(fn: (db: Database.Database) => T): Promise<T> {
    return this.readDb ? fn(this.readDb) : this.write(fn);
  }

  /** One transaction in the write queue: nothing else runs on the write connection until it ends. */
  private transaction<T>(fn: (db: Database.Database) => Promise<T>): Promise<T> {
    return this.write(async (db) => {
      db.exec('BEGIN IMMEDIATE');
      try {
        const result = await fn(db);
        db.exec('COMMIT');
        return result;
      } catch (err) {
        // Some errors (SQLITE_FULL, SQLITE_IOERR) have already rolled the transaction back.
        if (db.inTransaction) db.exec('ROLLBACK');
        throw err;
      }
    });
  }

  /**
   * The shared operations' transactions. Each statement runs at once, so every `await` in them resolves without a
   * turn of the event loop: the transaction opens and commits within one turn, with only microtasks between.
   */
  protected tx<T>(fn: (c: Conn) => Promise<T>): Promise<T> {
    return this.transaction((db) => fn(connOf(db)));
  }

  /** One INSERT per row: in `c`'s transaction, or else in one of their own, run to its end in one go. */
  protected async insertRows<R>(table: Table, rows: unknown[][], tail: string, c?: Conn): Promise<R[]> {
    const sql = insertOneSql(table, tail);
    const returning = /\bRETURNING\b/.test(tail);
    if (c === undefined) {
      const each = (db: Database.Database) =>
        rows.flatMap((row) => (returning ? allRows<R>(db, sql, row) : (changes(db, sql, row), [])));
      return this.write((db) => db.transaction(each)(db));
    }
    const out: R[] = [];
    for (const row of rows) {
      if (returning) out.push(...(await c.all<R>(sql, row)));
      else await c.run(sql, row);
    }
    return out;
  }

  /**
   * Readiness means "can store what agents send", and reads keep working on a
   * full disk: so besides a read, write a row with a page-sized blob (it needs a
   * free or new page) and delete it, committed (the WAL frames reach the disk).
   * A full volume (ENOSPC) or a database at its page limit fails here with
   * SQLITE_FULL; once space returns the probe succeeds again. The probe waits
   * its turn behind queued writes (a large flow batch: a few seconds at most).
   */
  async ping(): Promise<void> {
    await this.read((db) => db.prepare('SELECT 1').get());
    await this.write((db) => {
      try {
        db.transaction(() => {
          db.prepare('INSERT INTO store_probe (pad) VALUES (zeroblob(4096))').run();
          db.prepare('DELETE FROM store_probe').run();
        })();
      } catch (err) {
        throw new Error(`cannot write: ${this.unavailableReason(err) ?? (err as Error).message}`, { cause: err });
      }
    });
  }

  unavailableReason(err: unknown): string | undefined {
    for (let e: unknown = err; e instanceof Error; e = e.cause) {
      const code = (e as { code?: unknown }).code;
      if (typeof code === 'string' && UNAVAILABLE_CODES.test(code)) {
        // No file path: /readyz is open to anyone who can reach it.
        const hint =
          code === 'SQLITE_FULL'
            ? '; free space on the volume holding the --db file'
            : code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')
              ? '; another process holds the database'
              : '';
        return `${code}: ${e.message}${hint}`;
      }
      // better-sqlite3 after close(): the aggregator is shutting down.
      if (e instanceof TypeError && /database connection is not open/.test(e.message))
        return 'the database is closed; the aggregator is shutting down';
    }
    return undefined;
  }

  /** Close once the writes queued so far have finished: a batch half-way through is completed, not cut off. */
  async close(): Promise<void> {
    await this.writeQueue;
    await this.checkpointer?.close();
    this.readDb?.close();
    this.db.close();
  }

  /**
   * Merged in memory first, outside the queue: a batch's records that share a
   * bucket and key become one row. Then the batch joins a group (group-commit.ts):
   * the batches that arrived from other streams meanwhile, written in one
   * transaction with each one's ledger entry, and answered once it committed.
   * A large group's upserts run in time slices (see the class comment), the
   * write queue keeping every other write out until it commits or rolls back.
   * A process that dies part-way leaves an uncommitted transaction, which
   * SQLite discards when the file is next opened: none of the group is stored,
   * no seq of it is recorded, and none of it was acked.
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

  /** The statements a group of flow batches runs per row, prepared once. */
  private flowStatements(db: Database.Database): FlowStatements {
    return (this.flowSql ??= {
      upsert: db.prepare(BUCKET_UPSERT_SQL),
      upsertMany: db.prepare(BUCKET_UPSERT_MANY_SQL),
      dict: sqliteDictionary(db),
    });
  }

  /**
   * One group's transaction: each batch's ledger check; the new batches' key ids (in steps of rows); then all their
   * rows in the table's order (key, bucket, node), so that rows of one key from several nodes, neighbours in the
   * table, are written together and the group dirties (and its commit writes) as few pages as it can.
   */
  private async writeFlowGroup(group: FlowBatchWrite[]): Promise<{ duplicate: boolean }[]> {
    const known = this.keyIds.staged();
    const batches = [...group].sort((a, b) => (a.node < b.node ? -1 : a.node > b.node ? 1 : 0));
    const fresh = await this.transaction(async (db) => {
      // Inside the write queue: a prune queued before this group has run, one queued after has not.
      known.atEpoch(this.pruneEpoch);
      const st = this.flowStatements(db);
      const slice = new TimeSlice();
      const writing: FlowBatchWrite[] = [];
      for (const b of batches) {
        const [seen] = allRows<{ last_seq: number }>(db, LEDGER_SQL, [b.node, b.bootId]);
        changes(db, touchNodeSql(SQLITE), [b.atMs, b.node]);
        if (seen === undefined || b.seq > seen.last_seq) writing.push(b);
      }
      // Arrays of their final length, filled in place: growing them (and the statements' parameters) a push at a
      // time was a third of ingest's garbage (profiled).
      const rows = new Array<BucketRow>(writing.reduce((n, b) => n + b.rows.length, 0));
      const nodeOf = new Array<number>(rows.length);
      let at = 0;
      for (const [n, b] of writing.entries()) {
        for (let i = 0; i < b.rows.length; i += DICTIONARY_ROWS_PER_STEP) {
          if (slice.isUp()) await slice.next();
          resolveKeyIdsSync(b.rows.slice(i, i + DICTIONARY_ROWS_PER_STEP), st.dict, known);
        }
        for (const r of b.rows) {
          rows[at] = r;
          nodeOf[at++] = n;
        }
      }
      const order = await tableOrder(rows, nodeOf, slice);
      const args = new Array<unknown>(9 * BUCKET_ROWS_PER_UPSERT);
      let a = 0;
      for (let k = 0; k < order.length; k++) {
        if (k % DICTIONARY_ROWS_PER_STEP === 0 && slice.isUp()) await slice.next();
        const i = order[k]!;
        const r = rows[i]!;
        args[a++] = r.bucketStart;
        args[a++] = r.bucketMs;
        args[a++] = writing[nodeOf[i]!]!.node;
        args[a++] = r.keyId;
        args[a++] = r.connections;
        args[a++] = r.packets;
        args[a++] = r.bytes;
        args[a++] = r.first;
        args[a++] = r.last;
        if (a === args.length) {
          st.upsertMany.run(args);
          a = 0;
        }
      }
      for (let j = 0; j < a; j += 9) st.upsert.run(args.slice(j, j + 9));
      for (const b of writing) changes(db, ledgerUpsertSql(SQLITE), [b.node, b.bootId, b.seq, b.atMs]);
      // Its WAL frames are too many to checkpoint on the event loop.
      if (rows.length >= LARGE_WRITE_ROWS) this.checkpointer?.takeOver();
      return new Set(writing);
    });
    known.commit();
    return group.map((b) => ({ duplicate: !fresh.has(b) }));
  }

  async compactFlows(rollupBeforeMs: number, deleteBeforeMs: number): Promise<{ rolledUp: number; deleted: number }> {
    const cut = Math.floor(rollupBeforeMs / HOUR_BUCKET_MS) * HOUR_BUCKET_MS; // only whole hours roll up
    const compact = (db: Database.Database) => {
      const rolledUp = changes(
        db,
        `INSERT INTO flow_buckets (${FLOW_COLUMNS})
         SELECT (bucket_start_ms / ${HOUR_BUCKET_MS}) * ${HOUR_BUCKET_MS}, ${HOUR_BUCKET_MS}, node, key_id, ${FLOW_ROLLUP_COLUMNS}
         FROM flow_buckets WHERE bucket_ms = ${MINUTE_BUCKET_MS} AND bucket_start_ms < $1
         GROUP BY (bucket_start_ms / ${HOUR_BUCKET_MS}), node, key_id
         ON CONFLICT ${FLOW_BUCKET_KEY} DO UPDATE SET ${flowMergeSet(SQLITE)}`,
        [cut],
      );
      changes(db, `DELETE FROM flow_buckets WHERE bucket_ms = ${MINUTE_BUCKET_MS} AND bucket_start_ms < $1`, [cut]);
      const deleted = changes(db, 'DELETE FROM flow_buckets WHERE bucket_start_ms < $1', [deleteBeforeMs]);
      // Dictionary entries no bucket uses any more go with the last bucket that did (in-memory ids with them).
      if (deleted > 0) for (const sql of SQLITE_DICTIONARY_PRUNE) changes(db, sql);
      return { rolledUp, deleted };
    };
    return this.write((db) => {
      const out = db.transaction(compact)(db);
      // A new epoch, in the write queue: the next group forgets the kept ids, and a group that ran before the prune
      // but keeps what it learned only now (after its commit) keeps nothing.
      if (out.deleted > 0) this.pruneEpoch++;
      return out;
    });
  }

  /**
   * One lookup per object, in time slices: a webhook batch can change tens of
   * thousands of objects, and each lookup holds the event loop.
   */
  async latestAuditEvents(
    objects: { apiGroup: string; resource: string; namespace: string; name: string }[],
    beforeMs: number,
    onlyWatched = false,
  ): Promise<StoredAuditEvent[]> {
    const seen = new Set<string>();
    const unique = objects.filter((o) => {
      const key = JSON.stringify([o.apiGroup, o.resource, o.namespace, o.name]);
      if (seen.has(key)) return false;
      seen.add(key);
      return true;
    });
    const out: StoredAuditEvent[] = [];
    const slice = new TimeSlice();
    let next = 0;
    while (next < unique.length) {
      if (next > 0) await slice.next();
      next = await this.read((db) => {
        const q = db.prepare(
          `SELECT * FROM audit_events WHERE api_group = ? AND resource = ? AND namespace = ? AND name = ? AND stage_ms < ?${onlyWatched ? " AND audit_id LIKE 'watch:%'" : ''} ORDER BY stage_ms DESC, audit_id DESC LIMIT 1`,
        );
        let i = next;
        for (; i < unique.length && (i === next || !slice.isUp()); i++) {
          const o = unique[i] as (typeof unique)[number];
          const r = q.get(o.apiGroup, o.resource, o.namespace, o.name, beforeMs) as AuditEventRow | undefined;
          if (r) out.push(toAuditEvent(r));
        }
        return i;
      });
    }
    return out.sort((a, b) => a.stageMs - b.stageMs);
  }
}

function migrate(db: Database.Database): void {
  db.exec(
    'CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at_ms INTEGER NOT NULL)',
  );
  const applied = new Set(
    (db.prepare('SELECT version FROM schema_migrations').all() as { version: number }[]).map((r) => r.version),
  );
  for (const m of migrationFiles('sqlite')) {
    if (applied.has(m.version)) continue;
    db.transaction(() => {
      db.exec(m.sql);
      if (m.version === FLOW_DICTIONARY_MIGRATION) convertLegacyFlows(db);
      if (m.version === EVIDENCE_MIGRATION) runStepsSync(migrationStatement(db), sealBacklog());
      db.prepare('INSERT INTO schema_migrations (version, name, applied_at_ms) VALUES (?, ?, ?)').run(
        m.version,
        m.name,
        Date.now(),
      );
    })();
  }
}

/** A sealing step's statement on the migration's connection (evidence.ts's sealBacklog). */
const migrationStatement =
  (db: Database.Database) =>
  (st: SealStatement): unknown[] =>
    st.rows ? allRows(db, st.sql, st.values) : (changes(db, st.sql, st.values), []);

/** The migration that makes flow buckets ids and counts (008_flow_dictionary.sql); its rows are converted here. */
const FLOW_DICTIONARY_MIGRATION = 8;

/**
 * Migration 008's data: every flow_buckets_legacy row read as the writer reads
 * a batch's records (flow-buckets.ts), its key looked up in (or added to) the
 * dictionaries, and added to its bucket; then the legacy table is dropped.
 * Inside the migration's transaction, so a database is converted whole or not at all.
 */
function convertLegacyFlows(db: Database.Database): void {
  const dict = sqliteDictionary(db, KEY_TUPLE_COLUMNS_BEFORE_013);
  const read = db.prepare(
    `SELECT rowid, * FROM flow_buckets_legacy WHERE rowid > ? ORDER BY rowid LIMIT ${LEGACY_ROWS_PER_STEP}`,
  );
  const upsert = db.prepare(BUCKET_UPSERT_SQL);
  const conversion = new LegacyConversion();
  for (let after = 0; ;) {
    const legacy = read.all(after) as (LegacyFlowRow & { rowid: number })[];
    if (legacy.length === 0) break;
    after = legacy[legacy.length - 1]!.rowid;
    for (const [node, rows] of conversion.step(legacy)) {
      resolveKeyIdsSync(
        rows.filter((r) => r.keyId === undefined),
        dict,
      );
      for (const row of rows) upsert.run(...upsertArgs(node, row));
    }
    conversion.learned();
  }
  db.exec('DROP TABLE flow_buckets_legacy');
}
