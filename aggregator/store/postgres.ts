import pg from 'pg';
import type { FlowRecord } from '../../common/flow.js';
import type { NodeRole, ScanReport } from '../../common/scan-report.js';
import { sortInSlices, TimeSlice } from '../../common/time-slice.js';
import { lockOrder, mergeBucketRows, type BucketParams } from './flow-buckets.js';
import {
  HOUR_BUCKET_MS,
  MINUTE_BUCKET_MS,
  type FlowBucketRow,
  type FlowQuery,
  type LatestCheckStatus,
  type NodeHello,
  type NodeRecord,
  type PodSighting,
  type ReportRunRecord,
  type ReportRunStatus,
  type Store,
  type StoredAuditEvent,
} from './types.js';
import { migrationFiles, type Migration } from './migrations.js';
import { toRunRecord, type ReportRunRow } from './report-runs.js';

/**
 * Advisory lock key held while migrating ("VERDICT1" in ASCII), so replicas
 * starting together migrate one after the other. Other Verdict locks (the report
 * scheduler's) must use other keys.
 */
const MIGRATION_LOCK_KEY = '6216712418393519153';

/**
 * Advisory lock key held while compacting flow buckets ("VERDICTF" in ASCII,
 * 0x5645524449435446), so replicas that compact at the same time take turns.
 */
const FLOW_COMPACTION_LOCK_KEY = '6216465313895240774';

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

interface NodeRow {
  name: string;
  role: string;
  labels: Record<string, string>;
  kubelet_version: string;
  kubernetes_version: string;
  os_image: string;
  kernel_version: string;
  architecture: string;
  agent_version: string;
  boot_id: string;
  connected: boolean;
  first_seen_ms: number;
  last_seen_ms: number;
  benchmark_id: string | null;
  benchmark_version: string | null;
  run_role: string | null;
  started_at_ms: number | null;
  pass: number | null;
  fail: number | null;
  skip: number | null;
  score_percent: number | null;
}

/**
 * The shared store for several stateless aggregator replicas: one PostgreSQL
 * database, READ COMMITTED, with row locks where SQLite relies on having a
 * single writer. Behaviour matches SqliteStore case for case
 * (test/aggregator/store-contract.test.ts runs the same cases on both).
 */
export class PostgresStore implements Store {
  readonly kind = 'postgres' as const;
  private closed = false;

  private constructor(private readonly pool: pg.Pool) {}

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

  async recordHello(h: NodeHello, atMs: number, connectionId = ''): Promise<{ lastStoredSeq: number }> {
    return this.transaction(async (c) => {
      await c.query(
        `INSERT INTO nodes (name, role, labels, kubelet_version, kubernetes_version, os_image, kernel_version, architecture, agent_version, boot_id, connected, first_seen_ms, last_seen_ms, connection_id)
         VALUES ($1, $2, $3::jsonb, $4, $5, $6, $7, $8, $9, $10, TRUE, $11, $11, $12)
         ON CONFLICT (name) DO UPDATE SET role = excluded.role, labels = excluded.labels, kubelet_version = excluded.kubelet_version,
           kubernetes_version = excluded.kubernetes_version, os_image = excluded.os_image, kernel_version = excluded.kernel_version,
           architecture = excluded.architecture, agent_version = excluded.agent_version, boot_id = excluded.boot_id, connected = TRUE, last_seen_ms = excluded.last_seen_ms,
           connection_id = excluded.connection_id`,
        [
          h.name,
          h.role,
          JSON.stringify(h.labels),
          h.kubeletVersion,
          h.kubernetesVersion,
          h.osImage,
          h.kernelVersion,
          h.architecture,
          h.agentVersion,
          h.bootId,
          atMs,
          connectionId,
        ],
      );
      const seen = await c.query<{ last_seq: number }>(
        'SELECT last_seq FROM agent_sequences WHERE node = $1 AND boot_id = $2',
        [h.name, h.bootId],
      );
      return { lastStoredSeq: seen.rows[0]?.last_seq ?? 0 };
    });
  }

  async markDisconnected(node: string, atMs: number, connectionId?: string): Promise<void> {
    await this.pool.query(
      'UPDATE nodes SET connected = FALSE, last_seen_ms = GREATEST(last_seen_ms, $1) WHERE name = $2 AND ($3::text IS NULL OR connection_id = $3)',
      [atMs, node, connectionId ?? null],
    );
  }

  async forgetNode(node: string): Promise<void> {
    await this.pool.query('DELETE FROM nodes WHERE name = $1', [node]);
  }

  async touchNode(node: string, atMs: number): Promise<void> {
    await this.pool.query('UPDATE nodes SET last_seen_ms = GREATEST(last_seen_ms, $1) WHERE name = $2', [atMs, node]);
  }

  async markAllDisconnected(): Promise<void> {
    await this.pool.query('UPDATE nodes SET connected = FALSE');
  }

  /**
   * Replicas may store messages of one agent at the same time (a reconnect lands
   * on another replica while the first still works through what it received).
   * Locking the node's row first makes the writes for one node take turns, and
   * under READ COMMITTED each later statement sees what the previous writer
   * committed: the ledger check, the run and the "latest" comparison then behave
   * as in SQLite's single writer. The ledger row lock and the UNIQUE
   * (node, boot_id, seq) insert cover the one case with no node row to lock.
   */
  async recordBenchmarkRun(
    node: string,
    bootId: string,
    seq: number,
    report: ScanReport,
    atMs: number,
  ): Promise<{ duplicate: boolean }> {
    return this.transaction(async (c) => {
      await c.query('UPDATE nodes SET last_seen_ms = GREATEST(last_seen_ms, $1) WHERE name = $2', [atMs, node]);
      const seen = await c.query<{ last_seq: number }>(
        'SELECT last_seq FROM agent_sequences WHERE node = $1 AND boot_id = $2 FOR UPDATE',
        [node, bootId],
      );
      const lastSeq = seen.rows[0]?.last_seq;
      if (lastSeq !== undefined && seq <= lastSeq) return { duplicate: true };
      const s = report.summary;
      const startedAtMs = Date.parse(report.startedAt);
      const inserted = await c.query<{ id: number }>(
        `INSERT INTO benchmark_runs (node, boot_id, seq, benchmark_id, benchmark_version, role, started_at_ms, duration_ms, pass, fail, skip, score_percent, received_at_ms, report)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14::json)
         ON CONFLICT (node, boot_id, seq) DO NOTHING RETURNING id`,
        [
          node,
          bootId,
          seq,
          report.benchmark.id,
          report.benchmark.version,
          report.nodeRole,
          startedAtMs,
          report.durationMs,
          s.pass,
          s.fail,
          s.skip,
          s.scorePercent,
          atMs,
          JSON.stringify(report),
        ],
      );
      const runId = inserted.rows[0]?.id;
      // Another replica stored this very seq after our ledger read (possible only without a node row).
      if (runId === undefined) return { duplicate: true };
      const checks = report.checks;
      await c.query(
        `INSERT INTO check_results (run_id, check_id, title, status, scored)
         SELECT $1::bigint, * FROM unnest($2::text[], $3::text[], $4::text[], $5::boolean[])`,
        [
          runId,
          checks.map((ch) => ch.id),
          checks.map((ch) => ch.title),
          checks.map((ch) => ch.status),
          checks.map((ch) => ch.scored),
        ],
      );
      await c.query(
        `INSERT INTO agent_sequences (node, boot_id, last_seq, updated_ms) VALUES ($1, $2, $3, $4)
         ON CONFLICT (node, boot_id) DO UPDATE SET last_seq = GREATEST(agent_sequences.last_seq, excluded.last_seq), updated_ms = excluded.updated_ms`,
        [node, bootId, seq, atMs],
      );
      // A resent older run must not replace a newer one as "latest".
      await c.query(
        `UPDATE nodes SET latest_run_id = $1 WHERE name = $2 AND (latest_run_id IS NULL OR
           (SELECT started_at_ms FROM benchmark_runs WHERE id = nodes.latest_run_id) <= $3)`,
        [runId, node, startedAtMs],
      );
      return { duplicate: false };
    });
  }

  async listNodes(): Promise<NodeRecord[]> {
    // COLLATE "C": byte order, as SQLite sorts, whatever the database's locale.
    const { rows } = await this.pool.query<NodeRow>(
      `SELECT n.*, r.benchmark_id, r.benchmark_version, r.role AS run_role, r.started_at_ms, r.pass, r.fail, r.skip, r.score_percent
       FROM nodes n LEFT JOIN benchmark_runs r ON r.id = n.latest_run_id ORDER BY n.name COLLATE "C"`,
    );
    return rows.map(toNodeRecord);
  }

  async nodeReport(node: string, atMs?: number): Promise<ScanReport | undefined> {
    const { rows } =
      atMs === undefined
        ? await this.pool.query<{ report: ScanReport }>(
            'SELECT r.report FROM nodes n JOIN benchmark_runs r ON r.id = n.latest_run_id WHERE n.name = $1',
            [node],
          )
        : await this.pool.query<{ report: ScanReport }>(
            'SELECT report FROM benchmark_runs WHERE node = $1 AND started_at_ms <= $2 ORDER BY started_at_ms DESC, id DESC LIMIT 1',
            [node, atMs],
          );
    return rows[0]?.report;
  }

  async latestCheckStatuses(): Promise<LatestCheckStatus[]> {
    const { rows } = await this.pool.query<{
      node: string;
      benchmark_id: string;
      check_id: string;
      title: string;
      status: LatestCheckStatus['status'];
      scored: boolean;
    }>(
      `SELECT n.name AS node, r.benchmark_id, c.check_id, c.title, c.status, c.scored
       FROM nodes n JOIN benchmark_runs r ON r.id = n.latest_run_id JOIN check_results c ON c.run_id = r.id`,
    );
    return rows.map((r) => ({
      node: r.node,
      benchmarkId: r.benchmark_id,
      checkId: r.check_id,
      title: r.title,
      status: r.status,
      scored: r.scored,
    }));
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
      await c.query('UPDATE nodes SET last_seen_ms = GREATEST(last_seen_ms, $1) WHERE name = $2', [atMs, node]);
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

  async flowRows(q: FlowQuery): Promise<FlowBucketRow[]> {
    const params: unknown[] = [q.fromMs, q.toMs];
    const p = (v: unknown) => `$${params.push(v)}`;
    const where = ['bucket_start_ms >= $1', 'bucket_start_ms < $2'];
    if (q.namespace !== undefined) {
      const ns = p(q.namespace);
      where.push(`(src_namespace = ${ns} OR dst_namespace = ${ns})`);
    }
    if (q.endpoint !== undefined) {
      const slash = q.endpoint.indexOf('/');
      const name = p(slash >= 0 ? q.endpoint.slice(slash + 1) : q.endpoint);
      if (slash < 0) {
        where.push(`(src_name = ${name} OR dst_name = ${name})`);
      } else {
        const ns = p(q.endpoint.slice(0, slash));
        where.push(
          `((src_namespace = ${ns} AND src_name = ${name}) OR (dst_namespace = ${ns} AND dst_name = ${name}))`,
        );
      }
    }
    if (q.action !== undefined) where.push(`action = ${p(q.action)}`);
    const limit = q.limit !== undefined ? ` LIMIT ${p(Math.max(0, Math.floor(q.limit)))}` : '';
    // COLLATE "C": byte order, as SQLite sorts, whatever the database's locale.
    const { rows } = await this.pool.query<{
      node: string;
      bucket_start_ms: number;
      bucket_ms: number;
      record_json: string;
      connections: number;
      packets: number;
      bytes: number;
      first_ms: number;
      last_ms: number;
    }>(
      `SELECT node, bucket_start_ms, bucket_ms, record_json, connections, packets, bytes, first_ms, last_ms FROM flow_buckets
       WHERE ${where.join(' AND ')} ORDER BY bucket_start_ms DESC, node COLLATE "C", flow_key COLLATE "C", bucket_ms${limit}`,
      params,
    );
    return rows.map((r) => ({
      node: r.node,
      bucketStartMs: r.bucket_start_ms,
      bucketMs: r.bucket_ms,
      flow: {
        ...(JSON.parse(r.record_json) as FlowRecord),
        connections: r.connections,
        packets: r.packets,
        bytes: r.bytes,
        startMs: r.first_ms,
        endMs: r.last_ms,
      },
    }));
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
         INSERT INTO flow_buckets (bucket_ms, bucket_start_ms, node, flow_key_sha256, flow_key, src_kind, src_namespace, src_name, dst_kind, dst_namespace, dst_name, action, reporter, record_json, connections, packets, bytes, first_ms, last_ms)
         SELECT ${HOUR_BUCKET_MS}, (bucket_start_ms / ${HOUR_BUCKET_MS}) * ${HOUR_BUCKET_MS}, node, flow_key_sha256, MIN(flow_key), MIN(src_kind), MIN(src_namespace), MIN(src_name), MIN(dst_kind), MIN(dst_namespace), MIN(dst_name), MIN(action), MIN(reporter), MIN(record_json),
                SUM(connections), SUM(packets), SUM(bytes), MIN(first_ms), MAX(last_ms)
         FROM moved
         GROUP BY (bucket_start_ms / ${HOUR_BUCKET_MS}), node, flow_key_sha256
         ON CONFLICT (bucket_ms, bucket_start_ms, node, flow_key_sha256) DO UPDATE SET
           connections = flow_buckets.connections + excluded.connections, packets = flow_buckets.packets + excluded.packets, bytes = flow_buckets.bytes + excluded.bytes,
           first_ms = LEAST(flow_buckets.first_ms, excluded.first_ms), last_ms = GREATEST(flow_buckets.last_ms, excluded.last_ms)`,
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

  /**
   * ON CONFLICT DO NOTHING without a target covers both the id and the partial
   * unique index on scheduled (report, interval): two replicas creating the same
   * scheduled run at once (a leader handing over) store it once, and the second
   * insert waits for the first to commit and then answers false.
   */
  async createReportRun(r: ReportRunRecord): Promise<boolean> {
    const inserted = await this.pool.query(
      `INSERT INTO report_runs (id, report, report_type, trigger_kind, status, attempts, interval_start_ms, interval_end_ms, not_before_ms, created_ms, inputs_json)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT DO NOTHING`,
      [
        r.id,
        r.report,
        r.reportType,
        r.trigger,
        r.status,
        r.attempts,
        r.intervalStartMs,
        r.intervalEndMs,
        r.notBeforeMs,
        r.createdMs,
        JSON.stringify(r.inputs),
      ],
    );
    return inserted.rowCount === 1;
  }

  /**
   * One conditional UPDATE is the claim: under READ COMMITTED a second replica's
   * UPDATE of the same row waits for the first to commit, then re-checks the WHERE
   * on the new row (status no longer `from`) and changes nothing.
   */
  async transitionReportRun(
    id: string,
    from: ReportRunStatus,
    patch: Partial<
      Pick<ReportRunRecord, 'status' | 'attempts' | 'notBeforeMs' | 'startedMs' | 'finishedMs' | 'error' | 'result'>
    >,
  ): Promise<boolean> {
    const params: unknown[] = [id, from];
    const p = (v: unknown) => `$${params.push(v)}`;
    const sets: string[] = [];
    for (const [k, c] of Object.entries(RUN_PATCH_COLUMNS)) {
      if (k in patch) sets.push(`${c} = ${p((patch as Record<string, unknown>)[k] ?? null)}`);
    }
    // Results are written once; a run that has one is never rewritten.
    if ('result' in patch) sets.push(`result_json = ${p(JSON.stringify(patch.result) ?? null)}`);
    if (sets.length === 0) return false;
    const guard = 'result' in patch ? ' AND result_json IS NULL' : '';
    const updated = await this.pool.query(
      `UPDATE report_runs SET ${sets.join(', ')} WHERE id = $1 AND status = $2${guard}`,
      params,
    );
    return updated.rowCount === 1;
  }

  async reportRun(id: string): Promise<ReportRunRecord | undefined> {
    const { rows } = await this.pool.query<ReportRunRow>(
      `SELECT ${RUN_COLUMNS}, result_json FROM report_runs WHERE id = $1`,
      [id],
    );
    return rows[0] ? toRunRecord(rows[0], true) : undefined;
  }

  async reportRuns(report: string, limit: number): Promise<ReportRunRecord[]> {
    // COLLATE "C": byte order, as SQLite sorts, whatever the database's locale.
    const { rows } = await this.pool.query<ReportRunRow>(
      `SELECT ${RUN_COLUMNS}, NULL AS result_json FROM report_runs WHERE report = $1 ORDER BY created_ms DESC, id COLLATE "C" DESC LIMIT $2`,
      [report, sqliteLimit(limit)],
    );
    return rows.map((r) => toRunRecord(r, false));
  }

  /**
   * Several replicas may read the same due runs; that is fine: moving a run from
   * queued to running (transitionReportRun) is the claim, and only one wins it.
   */
  async dueReportRuns(nowMs: number, limit: number): Promise<ReportRunRecord[]> {
    const { rows } = await this.pool.query<ReportRunRow>(
      `SELECT ${RUN_COLUMNS}, NULL AS result_json FROM report_runs WHERE status = 'queued' AND not_before_ms <= $1
       ORDER BY not_before_ms, created_ms, id COLLATE "C" LIMIT $2`,
      [nowMs, sqliteLimit(limit)],
    );
    return rows.map((r) => toRunRecord(r, false));
  }

  async requeueRunningReportRuns(startedBeforeMs = Number.MAX_SAFE_INTEGER, exceptIds: string[] = []): Promise<number> {
    const updated = await this.pool.query(
      "UPDATE report_runs SET status = 'queued' WHERE status = 'running' AND COALESCE(started_ms, 0) < $1 AND NOT (id = ANY($2::text[]))",
      [startedBeforeMs, exceptIds],
    );
    return updated.rowCount ?? 0;
  }

  async lastScheduledIntervalEnd(report: string): Promise<number | undefined> {
    const { rows } = await this.pool.query<{ m: number | null }>(
      "SELECT MAX(interval_end_ms) AS m FROM report_runs WHERE report = $1 AND trigger_kind = 'scheduled'",
      [report],
    );
    return rows[0]?.m ?? undefined;
  }

  /**
   * One statement for the batch. An audit ID twice in one batch keeps its first
   * event, as SQLite does. The rows go in in audit ID order, so two replicas
   * storing overlapping batches at once (a webhook retry landing on another
   * replica) wait for each other in one order and cannot deadlock.
   */
  async recordAuditEvents(events: StoredAuditEvent[]): Promise<string[]> {
    const firsts = new Map<string, StoredAuditEvent>();
    for (const e of events) if (!firsts.has(e.auditId)) firsts.set(e.auditId, e);
    const rows = [...firsts.values()].sort((a, b) => (a.auditId < b.auditId ? -1 : a.auditId > b.auditId ? 1 : 0));
    if (rows.length === 0) return [];
    const inserted = await this.pool.query<{ audit_id: string }>(
      `INSERT INTO audit_events (audit_id, stage_ms, verb, resource, api_group, namespace, name, username, event_json)
       SELECT u.audit_id, u.stage_ms, u.verb, u.resource, u.api_group, u.namespace, u.name, u.username, u.event_json
       FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[])
         WITH ORDINALITY AS u(audit_id, stage_ms, verb, resource, api_group, namespace, name, username, event_json, ord)
       ORDER BY u.ord
       ON CONFLICT (audit_id) DO NOTHING
       RETURNING audit_id`,
      [
        rows.map((e) => e.auditId),
        rows.map((e) => e.stageMs),
        rows.map((e) => e.verb),
        rows.map((e) => e.resource),
        rows.map((e) => e.apiGroup),
        rows.map((e) => e.namespace),
        rows.map((e) => e.name),
        rows.map((e) => e.username),
        rows.map((e) => JSON.stringify(e.event)),
      ],
    );
    return inserted.rows.map((r) => r.audit_id);
  }

  async recordPods(pods: PodSighting[], atMs: number, deleted: boolean): Promise<void> {
    if (pods.length === 0) return;
    const rows = [...new Map(pods.map((p) => [p.uid, p])).values()].sort((a, b) =>
      a.uid < b.uid ? -1 : a.uid > b.uid ? 1 : 0,
    );
    await this.pool.query(
      `INSERT INTO pod_history (uid, namespace, name, labels_json, service_account, host_network, first_seen_ms, last_seen_ms, deleted_ms)
       SELECT u.uid, u.ns, u.name, u.labels, u.sa, u.hn, $7, $7, $8 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::boolean[]) AS u(uid, ns, name, labels, sa, hn)
       ON CONFLICT (uid) DO UPDATE SET labels_json = excluded.labels_json, service_account = excluded.service_account, host_network = excluded.host_network,
         last_seen_ms = GREATEST(pod_history.last_seen_ms, excluded.last_seen_ms), deleted_ms = COALESCE(excluded.deleted_ms, pod_history.deleted_ms)`,
      [
        rows.map((p) => p.uid),
        rows.map((p) => p.namespace),
        rows.map((p) => p.name),
        rows.map((p) => JSON.stringify(p.labels)),
        rows.map((p) => p.serviceAccount),
        rows.map((p) => p.hostNetwork),
        atMs,
        deleted ? atMs : null,
      ],
    );
  }

  async podsDuring(fromMs: number, toMs: number): Promise<PodSighting[] | undefined> {
    const oldest = await this.pool.query<{ m: number | null }>('SELECT MIN(first_seen_ms) AS m FROM pod_history');
    const m = oldest.rows[0]?.m ?? null;
    if (m === null || m > fromMs) return undefined;
    const { rows } = await this.pool.query<{
      uid: string;
      namespace: string;
      name: string;
      labels_json: string;
      service_account: string;
      host_network: boolean;
    }>(
      'SELECT uid, namespace, name, labels_json, service_account, host_network FROM pod_history WHERE first_seen_ms < $1 AND (deleted_ms IS NULL OR deleted_ms >= $2) ORDER BY namespace COLLATE "C", name COLLATE "C", uid COLLATE "C"',
      [toMs, fromMs],
    );
    return rows.map((r) => ({
      uid: r.uid,
      namespace: r.namespace,
      name: r.name,
      labels: JSON.parse(r.labels_json) as Record<string, string>,
      serviceAccount: r.service_account,
      hostNetwork: r.host_network,
    }));
  }

  async deleteAuditEventsBefore(beforeMs: number): Promise<number> {
    const r = await this.pool.query('DELETE FROM audit_events WHERE stage_ms < $1', [beforeMs]);
    return r.rowCount ?? 0;
  }

  async latestAuditEvents(
    objects: { apiGroup: string; resource: string; namespace: string; name: string }[],
    beforeMs: number,
  ): Promise<StoredAuditEvent[]> {
    if (objects.length === 0) return [];
    const { rows } = await this.pool.query<{
      audit_id: string;
      stage_ms: number;
      verb: string;
      resource: string;
      api_group: string;
      namespace: string;
      name: string;
      username: string;
      event_json: string;
    }>(
      `SELECT DISTINCT ON (e.api_group, e.resource, e.namespace, e.name) e.audit_id, e.stage_ms, e.verb, e.resource, e.api_group, e.namespace, e.name, e.username, e.event_json
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
    return rows
      .map((r) => ({
        auditId: r.audit_id,
        stageMs: r.stage_ms,
        verb: r.verb,
        resource: r.resource,
        apiGroup: r.api_group,
        namespace: r.namespace,
        name: r.name,
        username: r.username,
        event: JSON.parse(r.event_json) as unknown,
      }))
      .sort((a, b) => a.stageMs - b.stageMs);
  }

  async auditEvents(fromMs: number, toMs: number): Promise<StoredAuditEvent[]> {
    const { rows } = await this.pool.query<{
      audit_id: string;
      stage_ms: number;
      verb: string;
      resource: string;
      api_group: string;
      namespace: string;
      name: string;
      username: string;
      event_json: string;
    }>(
      `SELECT audit_id, stage_ms, verb, resource, api_group, namespace, name, username, event_json FROM audit_events
       WHERE stage_ms >= $1 AND stage_ms < $2 ORDER BY stage_ms, audit_id COLLATE "C"`,
      [fromMs, toMs],
    );
    return rows.map((r) => ({
      auditId: r.audit_id,
      stageMs: r.stage_ms,
      verb: r.verb,
      resource: r.resource,
      apiGroup: r.api_group,
      namespace: r.namespace,
      name: r.name,
      username: r.username,
      event: JSON.parse(r.event_json) as unknown,
    }));
  }
}

/** report_runs columns but the result, which only reportRun reads. */
const RUN_COLUMNS =
  'id, report, report_type, trigger_kind, status, attempts, interval_start_ms, interval_end_ms, not_before_ms, created_ms, started_ms, finished_ms, error, inputs_json';

/** The columns transitionReportRun may set, by patch key (the result apart). */
const RUN_PATCH_COLUMNS = {
  status: 'status',
  attempts: 'attempts',
  notBeforeMs: 'not_before_ms',
  startedMs: 'started_ms',
  finishedMs: 'finished_ms',
  error: 'error',
} as const;

/** SQLite reads a negative LIMIT as no limit; PostgreSQL refuses one, and reads NULL as no limit. */
function sqliteLimit(limit: number): number | null {
  return limit < 0 ? null : limit;
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

function toNodeRecord(r: NodeRow): NodeRecord {
  return {
    name: r.name,
    role: r.role as NodeRole,
    labels: r.labels,
    kubeletVersion: r.kubelet_version,
    kubernetesVersion: r.kubernetes_version,
    osImage: r.os_image,
    kernelVersion: r.kernel_version,
    architecture: r.architecture,
    agentVersion: r.agent_version,
    bootId: r.boot_id,
    connected: r.connected,
    firstSeenMs: r.first_seen_ms,
    lastSeenMs: r.last_seen_ms,
    latest:
      r.benchmark_id === null
        ? undefined
        : {
            benchmarkId: r.benchmark_id,
            benchmarkVersion: r.benchmark_version ?? '',
            role: (r.run_role ?? r.role) as NodeRole,
            startedAtMs: r.started_at_ms ?? 0,
            pass: r.pass ?? 0,
            fail: r.fail ?? 0,
            skip: r.skip ?? 0,
            scorePercent: r.score_percent ?? 0,
          },
  };
}

/**
 * Bucket rows per INSERT: node-postgres turns each array parameter into text
 * on the event loop, a few ms for this many rows.
 */
const FLOW_ROWS_PER_INSERT = 2000;

/** Add `rows` (merged, in lock order) to their buckets: one statement. */
async function upsertBucketRows(c: pg.PoolClient, node: string, rows: BucketParams[]): Promise<void> {
  await c.query(
    `INSERT INTO flow_buckets (bucket_ms, bucket_start_ms, node, flow_key_sha256, flow_key, src_kind, src_namespace, src_name, dst_kind, dst_namespace, dst_name, action, reporter, record_json, connections, packets, bytes, first_ms, last_ms)
     SELECT $1::bigint, u.bucket_start, $2::text, sha256(convert_to(u.flow_key, 'UTF8')), u.flow_key, u.src_kind, u.src_ns, u.src_name, u.dst_kind, u.dst_ns, u.dst_name, u.action, u.reporter, u.json, u.connections, u.packets, u.bytes, u.first_ms, u.last_ms
     FROM unnest($3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::bigint[], $15::bigint[], $16::bigint[], $17::bigint[], $18::bigint[])
       WITH ORDINALITY AS u(bucket_start, flow_key, src_kind, src_ns, src_name, dst_kind, dst_ns, dst_name, action, reporter, json, connections, packets, bytes, first_ms, last_ms, ord)
     ORDER BY u.ord
     ON CONFLICT (bucket_ms, bucket_start_ms, node, flow_key_sha256) DO UPDATE SET
       connections = flow_buckets.connections + excluded.connections, packets = flow_buckets.packets + excluded.packets, bytes = flow_buckets.bytes + excluded.bytes,
       first_ms = LEAST(flow_buckets.first_ms, excluded.first_ms), last_ms = GREATEST(flow_buckets.last_ms, excluded.last_ms)`,
    [
      MINUTE_BUCKET_MS,
      node,
      rows.map((r) => r.bucketStart),
      rows.map((r) => r.key),
      rows.map((r) => r.srcKind),
      rows.map((r) => r.srcNs),
      rows.map((r) => r.srcName),
      rows.map((r) => r.dstKind),
      rows.map((r) => r.dstNs),
      rows.map((r) => r.dstName),
      rows.map((r) => r.action),
      rows.map((r) => r.reporter),
      rows.map((r) => r.json),
      rows.map((r) => r.connections),
      rows.map((r) => r.packets),
      rows.map((r) => r.bytes),
      rows.map((r) => r.first),
      rows.map((r) => r.last),
    ],
  );
}
