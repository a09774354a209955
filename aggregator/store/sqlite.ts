import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import type { NodeRole, ScanReport } from '../../common/scan-report.js';
import type { FlowRecord } from '../../common/flow.js';
import { TimeSlice } from '../../common/time-slice.js';
import { mergeBucketRows } from './flow-buckets.js';
import { WalCheckpointer } from './wal-checkpoints.js';
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
import { migrationFiles } from './migrations.js';
import { toRunRecord, type ReportRunRow } from './report-runs.js';

interface NodeRow {
  name: string;
  role: string;
  labels_json: string;
  kubelet_version: string;
  kubernetes_version: string;
  os_image: string;
  kernel_version: string;
  architecture: string;
  agent_version: string;
  boot_id: string;
  connected: number;
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
/** One flow-bucket row added to its bucket (bucketParams names the parameters); the bench's baseline runs the same. */
export const FLOW_BUCKET_UPSERT_SQL = `INSERT INTO flow_buckets (bucket_ms, bucket_start_ms, node, flow_key, src_kind, src_namespace, src_name, dst_kind, dst_namespace, dst_name, action, reporter, record_json, connections, packets, bytes, first_ms, last_ms)
  VALUES (@bucketMs, @bucketStart, @node, @key, @srcKind, @srcNs, @srcName, @dstKind, @dstNs, @dstName, @action, @reporter, @json, @connections, @packets, @bytes, @first, @last)
  ON CONFLICT (bucket_ms, bucket_start_ms, node, flow_key) DO UPDATE SET
    connections = connections + excluded.connections, packets = packets + excluded.packets, bytes = bytes + excluded.bytes,
    first_ms = MIN(first_ms, excluded.first_ms), last_ms = MAX(last_ms, excluded.last_ms)`;

export class SqliteStore implements Store {
  readonly kind = 'sqlite' as const;
  /** The last write queued: the next one starts after it settles. */
  private writeQueue: Promise<unknown> = Promise.resolve();

  private constructor(
    private readonly db: Database.Database,
    private readonly reader: Database.Database | undefined,
    private readonly checkpointer: WalCheckpointer | undefined,
  ) {}

  static open(file: string): SqliteStore {
    const inMemory = file === ':memory:';
    if (!inMemory) mkdirSync(dirname(file), { recursive: true });
    const db = new Database(file);
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL'); // WAL + NORMAL is durable across process crashes
    db.pragma('foreign_keys = ON');
    db.pragma('busy_timeout = 5000');
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
    return this.reader ? fn(this.reader) : this.write(fn);
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
    this.reader?.close();
    this.db.close();
  }

  async recordHello(h: NodeHello, atMs: number, connectionId = ''): Promise<{ lastStoredSeq: number }> {
    return this.write((db) => {
      return db.transaction(() => {
        db.prepare(
          `INSERT INTO nodes (name, role, labels_json, kubelet_version, kubernetes_version, os_image, kernel_version, architecture, agent_version, boot_id, connected, first_seen_ms, last_seen_ms, connection_id)
             VALUES (@name, @role, @labels, @kubeletVersion, @kubernetesVersion, @osImage, @kernelVersion, @architecture, @agentVersion, @bootId, 1, @at, @at, @connectionId)
             ON CONFLICT (name) DO UPDATE SET role = excluded.role, labels_json = excluded.labels_json, kubelet_version = excluded.kubelet_version,
               kubernetes_version = excluded.kubernetes_version, os_image = excluded.os_image, kernel_version = excluded.kernel_version,
               architecture = excluded.architecture, agent_version = excluded.agent_version, boot_id = excluded.boot_id, connected = 1, last_seen_ms = excluded.last_seen_ms,
               connection_id = excluded.connection_id`,
        ).run({ ...h, labels: JSON.stringify(h.labels), at: atMs, connectionId });
        const row = db
          .prepare('SELECT last_seq FROM agent_sequences WHERE node = ? AND boot_id = ?')
          .get(h.name, h.bootId) as { last_seq: number } | undefined;
        return { lastStoredSeq: row?.last_seq ?? 0 };
      })();
    });
  }

  async markDisconnected(node: string, atMs: number, connectionId?: string): Promise<void> {
    return this.write((db) => {
      db.prepare(
        'UPDATE nodes SET connected = 0, last_seen_ms = MAX(last_seen_ms, ?) WHERE name = ? AND (? IS NULL OR connection_id = ?)',
      ).run(atMs, node, connectionId ?? null, connectionId ?? null);
    });
  }

  async forgetNode(node: string): Promise<void> {
    return this.write((db) => {
      db.prepare('DELETE FROM nodes WHERE name = ?').run(node);
    });
  }

  async touchNode(node: string, atMs: number): Promise<void> {
    return this.write((db) => {
      db.prepare('UPDATE nodes SET last_seen_ms = MAX(last_seen_ms, ?) WHERE name = ?').run(atMs, node);
    });
  }

  async markAllDisconnected(): Promise<void> {
    return this.write((db) => {
      db.prepare('UPDATE nodes SET connected = 0').run();
    });
  }

  async recordBenchmarkRun(
    node: string,
    bootId: string,
    seq: number,
    report: ScanReport,
    atMs: number,
  ): Promise<{ duplicate: boolean }> {
    return this.write((db) => {
      return db.transaction(() => {
        const seen = db
          .prepare('SELECT last_seq FROM agent_sequences WHERE node = ? AND boot_id = ?')
          .get(node, bootId) as { last_seq: number } | undefined;
        db.prepare('UPDATE nodes SET last_seen_ms = MAX(last_seen_ms, ?) WHERE name = ?').run(atMs, node);
        if (seen && seq <= seen.last_seq) return { duplicate: true };
        const s = report.summary;
        const info = db
          .prepare(
            `INSERT INTO benchmark_runs (node, boot_id, seq, benchmark_id, benchmark_version, role, started_at_ms, duration_ms, pass, fail, skip, score_percent, received_at_ms, report_json)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
          )
          .run(
            node,
            bootId,
            seq,
            report.benchmark.id,
            report.benchmark.version,
            report.nodeRole,
            Date.parse(report.startedAt),
            report.durationMs,
            s.pass,
            s.fail,
            s.skip,
            s.scorePercent,
            atMs,
            JSON.stringify(report),
          );
        const runId = Number(info.lastInsertRowid);
        const insertCheck = db.prepare(
          'INSERT INTO check_results (run_id, check_id, title, status, scored) VALUES (?, ?, ?, ?, ?)',
        );
        for (const c of report.checks) insertCheck.run(runId, c.id, c.title, c.status, c.scored ? 1 : 0);
        db.prepare(
          'INSERT INTO agent_sequences (node, boot_id, last_seq, updated_ms) VALUES (?, ?, ?, ?) ON CONFLICT (node, boot_id) DO UPDATE SET last_seq = excluded.last_seq, updated_ms = excluded.updated_ms',
        ).run(node, bootId, seq, atMs);
        // A resent older run must not replace a newer one as "latest".
        db.prepare(
          `UPDATE nodes SET latest_run_id = ? WHERE name = ? AND (latest_run_id IS NULL OR
               (SELECT started_at_ms FROM benchmark_runs WHERE id = nodes.latest_run_id) <= ?)`,
        ).run(runId, node, Date.parse(report.startedAt));
        return { duplicate: false };
      })();
    });
  }

  async listNodes(): Promise<NodeRecord[]> {
    return this.read((db) => {
      const rows = db
        .prepare(
          `SELECT n.*, r.benchmark_id, r.benchmark_version, r.role AS run_role, r.started_at_ms, r.pass, r.fail, r.skip, r.score_percent
           FROM nodes n LEFT JOIN benchmark_runs r ON r.id = n.latest_run_id ORDER BY n.name`,
        )
        .all() as NodeRow[];
      return rows.map(toNodeRecord);
    });
  }

  async nodeReport(node: string, atMs?: number): Promise<ScanReport | undefined> {
    return this.read((db) => {
      const row =
        atMs === undefined
          ? (db
              .prepare(
                'SELECT r.report_json FROM nodes n JOIN benchmark_runs r ON r.id = n.latest_run_id WHERE n.name = ?',
              )
              .get(node) as { report_json: string } | undefined)
          : (db
              .prepare(
                'SELECT report_json FROM benchmark_runs WHERE node = ? AND started_at_ms <= ? ORDER BY started_at_ms DESC, id DESC LIMIT 1',
              )
              .get(node, atMs) as { report_json: string } | undefined);
      return row ? (JSON.parse(row.report_json) as ScanReport) : undefined;
    });
  }

  async latestCheckStatuses(): Promise<LatestCheckStatus[]> {
    return this.read((db) => {
      const rows = db
        .prepare(
          `SELECT n.name AS node, r.benchmark_id, c.check_id, c.title, c.status, c.scored
           FROM nodes n JOIN benchmark_runs r ON r.id = n.latest_run_id JOIN check_results c ON c.run_id = r.id`,
        )
        .all() as {
        node: string;
        benchmark_id: string;
        check_id: string;
        title: string;
        status: LatestCheckStatus['status'];
        scored: number;
      }[];
      return rows.map((r) => ({
        node: r.node,
        benchmarkId: r.benchmark_id,
        checkId: r.check_id,
        title: r.title,
        status: r.status,
        scored: r.scored === 1,
      }));
    });
  }

  /**
   * One transaction for the batch and its ledger entry, as always; a large
   * batch's upserts run in time slices (see the class comment), the write
   * queue keeping every other write out until it commits or rolls back.
   * Merged in memory first, outside the queue: a batch's records that share a
   * bucket and key become one upsert. A process that dies part-way leaves an
   * uncommitted transaction, which SQLite discards when the file is next
   * opened: none of the batch is stored and its seq is not recorded.
   */
  async recordFlowBatch(
    node: string,
    bootId: string,
    seq: number,
    flows: FlowRecord[],
    atMs: number,
  ): Promise<{ duplicate: boolean }> {
    const slice = new TimeSlice();
    const rows = await mergeBucketRows(node, flows, MINUTE_BUCKET_MS, slice);
    return this.write(async (db) => {
      db.exec('BEGIN IMMEDIATE');
      try {
        const seen = db
          .prepare('SELECT last_seq FROM agent_sequences WHERE node = ? AND boot_id = ?')
          .get(node, bootId) as { last_seq: number } | undefined;
        db.prepare('UPDATE nodes SET last_seen_ms = MAX(last_seen_ms, ?) WHERE name = ?').run(atMs, node);
        const duplicate = seen !== undefined && seq <= seen.last_seq;
        if (!duplicate) {
          const upsert = db.prepare(FLOW_BUCKET_UPSERT_SQL);
          for (const row of rows) {
            if (slice.isUp()) await slice.next();
            upsert.run(row);
          }
          db.prepare(
            'INSERT INTO agent_sequences (node, boot_id, last_seq, updated_ms) VALUES (?, ?, ?, ?) ON CONFLICT (node, boot_id) DO UPDATE SET last_seq = excluded.last_seq, updated_ms = excluded.updated_ms',
          ).run(node, bootId, seq, atMs);
        }
        // Its WAL frames are too many to checkpoint on the event loop.
        if (rows.length >= LARGE_WRITE_ROWS) this.checkpointer?.takeOver();
        db.exec('COMMIT');
        return { duplicate };
      } catch (err) {
        // Some errors (SQLITE_FULL, SQLITE_IOERR) have already rolled the transaction back.
        if (db.inTransaction) db.exec('ROLLBACK');
        throw err;
      }
    });
  }

  async flowRows(q: FlowQuery): Promise<FlowBucketRow[]> {
    return this.read((db) => {
      const where = ['bucket_start_ms >= @from', 'bucket_start_ms < @to'];
      const params: Record<string, unknown> = { from: q.fromMs, to: q.toMs };
      if (q.namespace !== undefined) {
        where.push('(src_namespace = @ns OR dst_namespace = @ns)');
        params.ns = q.namespace;
      }
      if (q.endpoint !== undefined) {
        const slash = q.endpoint.indexOf('/');
        const ns = slash >= 0 ? q.endpoint.slice(0, slash) : undefined;
        params.epName = slash >= 0 ? q.endpoint.slice(slash + 1) : q.endpoint;
        where.push(
          ns === undefined
            ? '(src_name = @epName OR dst_name = @epName)'
            : '((src_namespace = @epNs AND src_name = @epName) OR (dst_namespace = @epNs AND dst_name = @epName))',
        );
        if (ns !== undefined) params.epNs = ns;
      }
      if (q.action !== undefined) {
        where.push('action = @action');
        params.action = q.action;
      }
      const limit = q.limit !== undefined ? ` LIMIT ${Math.max(0, Math.floor(q.limit))}` : '';
      const rows = db
        .prepare(
          `SELECT node, bucket_start_ms, bucket_ms, record_json, connections, packets, bytes, first_ms, last_ms FROM flow_buckets WHERE ${where.join(' AND ')} ORDER BY bucket_start_ms DESC, node, flow_key, bucket_ms${limit}`,
        )
        .all(params) as {
        node: string;
        bucket_start_ms: number;
        bucket_ms: number;
        record_json: string;
        connections: number;
        packets: number;
        bytes: number;
        first_ms: number;
        last_ms: number;
      }[];
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
    });
  }

  async compactFlows(rollupBeforeMs: number, deleteBeforeMs: number): Promise<{ rolledUp: number; deleted: number }> {
    return this.write((db) => {
      return db.transaction(() => {
        const cut = Math.floor(rollupBeforeMs / HOUR_BUCKET_MS) * HOUR_BUCKET_MS; // only whole hours roll up
        const rolled = db
          .prepare(
            `INSERT INTO flow_buckets (bucket_ms, bucket_start_ms, node, flow_key, src_kind, src_namespace, src_name, dst_kind, dst_namespace, dst_name, action, reporter, record_json, connections, packets, bytes, first_ms, last_ms)
             SELECT ${HOUR_BUCKET_MS}, (bucket_start_ms / ${HOUR_BUCKET_MS}) * ${HOUR_BUCKET_MS}, node, flow_key, MIN(src_kind), MIN(src_namespace), MIN(src_name), MIN(dst_kind), MIN(dst_namespace), MIN(dst_name), MIN(action), MIN(reporter), MIN(record_json),
                    SUM(connections), SUM(packets), SUM(bytes), MIN(first_ms), MAX(last_ms)
             FROM flow_buckets WHERE bucket_ms = ${MINUTE_BUCKET_MS} AND bucket_start_ms < @cut
             GROUP BY (bucket_start_ms / ${HOUR_BUCKET_MS}), node, flow_key
             ON CONFLICT (bucket_ms, bucket_start_ms, node, flow_key) DO UPDATE SET
               connections = connections + excluded.connections, packets = packets + excluded.packets, bytes = bytes + excluded.bytes,
               first_ms = MIN(first_ms, excluded.first_ms), last_ms = MAX(last_ms, excluded.last_ms)`,
          )
          .run({ cut }).changes;
        db.prepare(`DELETE FROM flow_buckets WHERE bucket_ms = ${MINUTE_BUCKET_MS} AND bucket_start_ms < ?`).run(cut);
        const deleted = db.prepare('DELETE FROM flow_buckets WHERE bucket_start_ms < ?').run(deleteBeforeMs).changes;
        return { rolledUp: rolled, deleted };
      })();
    });
  }

  async createReportRun(r: ReportRunRecord): Promise<boolean> {
    return this.write((db) => {
      const info = db
        .prepare(
          `INSERT INTO report_runs (id, report, report_type, trigger_kind, status, attempts, interval_start_ms, interval_end_ms, not_before_ms, created_ms, inputs_json)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
        )
        .run(
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
        );
      return info.changes === 1;
    });
  }

  async transitionReportRun(
    id: string,
    from: ReportRunStatus,
    patch: Partial<
      Pick<ReportRunRecord, 'status' | 'attempts' | 'notBeforeMs' | 'startedMs' | 'finishedMs' | 'error' | 'result'>
    >,
  ): Promise<boolean> {
    return this.write((db) => {
      const sets: string[] = [];
      const params: Record<string, unknown> = { id, from };
      const col: Record<string, string> = {
        status: 'status',
        attempts: 'attempts',
        notBeforeMs: 'not_before_ms',
        startedMs: 'started_ms',
        finishedMs: 'finished_ms',
        error: 'error',
      };
      for (const [k, c] of Object.entries(col)) {
        if (k in patch) {
          sets.push(`${c} = @${k}`);
          params[k] = (patch as Record<string, unknown>)[k] ?? null;
        }
      }
      if ('result' in patch) {
        // Results are written once; a run that has one is never rewritten.
        sets.push('result_json = @result');
        params.result = JSON.stringify(patch.result);
      }
      if (sets.length === 0) return false;
      const guard = 'result' in patch ? ' AND result_json IS NULL' : '';
      return (
        db.prepare(`UPDATE report_runs SET ${sets.join(', ')} WHERE id = @id AND status = @from${guard}`).run(params)
          .changes === 1
      );
    });
  }

  async reportRun(id: string): Promise<ReportRunRecord | undefined> {
    return this.read((db) => {
      const row = db.prepare('SELECT * FROM report_runs WHERE id = ?').get(id) as ReportRunRow | undefined;
      return row ? toRunRecord(row, true) : undefined;
    });
  }

  async reportRuns(report: string, limit: number): Promise<ReportRunRecord[]> {
    return this.read((db) => {
      const rows = db
        .prepare('SELECT * FROM report_runs WHERE report = ? ORDER BY created_ms DESC, id DESC LIMIT ?')
        .all(report, limit) as ReportRunRow[];
      return rows.map((r) => toRunRecord(r, false));
    });
  }

  async dueReportRuns(nowMs: number, limit: number): Promise<ReportRunRecord[]> {
    return this.read((db) => {
      const rows = db
        .prepare(
          "SELECT * FROM report_runs WHERE status = 'queued' AND not_before_ms <= ? ORDER BY not_before_ms, created_ms, id LIMIT ?",
        )
        .all(nowMs, limit) as ReportRunRow[];
      return rows.map((r) => toRunRecord(r, false));
    });
  }

  async requeueRunningReportRuns(startedBeforeMs = Number.MAX_SAFE_INTEGER, exceptIds: string[] = []): Promise<number> {
    return this.write((db) => {
      return db
        .prepare(
          "UPDATE report_runs SET status = 'queued' WHERE status = 'running' AND COALESCE(started_ms, 0) < ? AND id NOT IN (SELECT value FROM json_each(?))",
        )
        .run(startedBeforeMs, JSON.stringify(exceptIds)).changes;
    });
  }

  async lastScheduledIntervalEnd(report: string): Promise<number | undefined> {
    return this.read((db) => {
      const row = db
        .prepare("SELECT MAX(interval_end_ms) AS m FROM report_runs WHERE report = ? AND trigger_kind = 'scheduled'")
        .get(report) as { m: number | null };
      return row.m ?? undefined;
    });
  }

  async recordAuditEvents(events: StoredAuditEvent[]): Promise<string[]> {
    return this.write((db) => {
      const insert = db.prepare(
        'INSERT INTO audit_events (audit_id, stage_ms, verb, resource, api_group, namespace, name, username, event_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (audit_id) DO NOTHING',
      );
      return db.transaction(() =>
        events
          .filter(
            (e) =>
              insert.run(
                e.auditId,
                e.stageMs,
                e.verb,
                e.resource,
                e.apiGroup,
                e.namespace,
                e.name,
                e.username,
                JSON.stringify(e.event),
              ).changes === 1,
          )
          .map((e) => e.auditId),
      )();
    });
  }

  async recordPods(pods: PodSighting[], atMs: number, deleted: boolean): Promise<void> {
    return this.write((db) => {
      const upsert = db.prepare(
        `INSERT INTO pod_history (uid, namespace, name, labels_json, service_account, host_network, first_seen_ms, last_seen_ms, deleted_ms)
         VALUES (@uid, @namespace, @name, @labels, @serviceAccount, @hostNetwork, @at, @at, @deletedMs)
         ON CONFLICT (uid) DO UPDATE SET labels_json = excluded.labels_json, service_account = excluded.service_account, host_network = excluded.host_network,
           last_seen_ms = MAX(last_seen_ms, excluded.last_seen_ms), deleted_ms = COALESCE(excluded.deleted_ms, pod_history.deleted_ms)`,
      );
      db.transaction(() => {
        for (const p of pods)
          upsert.run({
            ...p,
            labels: JSON.stringify(p.labels),
            hostNetwork: p.hostNetwork ? 1 : 0,
            at: atMs,
            deletedMs: deleted ? atMs : null,
          });
      })();
    });
  }

  async podsDuring(fromMs: number, toMs: number): Promise<PodSighting[] | undefined> {
    return this.read((db) => {
      const oldest = db.prepare('SELECT MIN(first_seen_ms) AS m FROM pod_history').get() as { m: number | null };
      if (oldest.m === null || oldest.m > fromMs) return undefined;
      const rows = db
        .prepare(
          'SELECT * FROM pod_history WHERE first_seen_ms < ? AND (deleted_ms IS NULL OR deleted_ms >= ?) ORDER BY namespace, name, uid',
        )
        .all(toMs, fromMs) as {
        uid: string;
        namespace: string;
        name: string;
        labels_json: string;
        service_account: string;
        host_network: number;
      }[];
      return rows.map((r) => ({
        uid: r.uid,
        namespace: r.namespace,
        name: r.name,
        labels: JSON.parse(r.labels_json) as Record<string, string>,
        serviceAccount: r.service_account,
        hostNetwork: r.host_network === 1,
      }));
    });
  }

  async deleteAuditEventsBefore(beforeMs: number): Promise<number> {
    return this.write((db) => {
      return db.prepare('DELETE FROM audit_events WHERE stage_ms < ?').run(beforeMs).changes;
    });
  }

  /**
   * One lookup per object, in time slices: a webhook batch can change tens of
   * thousands of objects, and each lookup holds the event loop.
   */
  async latestAuditEvents(
    objects: { apiGroup: string; resource: string; namespace: string; name: string }[],
    beforeMs: number,
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
          'SELECT * FROM audit_events WHERE api_group = ? AND resource = ? AND namespace = ? AND name = ? AND stage_ms < ? ORDER BY stage_ms DESC, audit_id DESC LIMIT 1',
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

  /**
   * A page at a time in (stage_ms, audit_id) order, each page starting after the
   * last row of the one before, in time slices (a range can hold a
   * 100,000-event webhook batch). Pages are committed states read at different
   * times: a row stored meanwhile behind the last page read is not in the
   * answer, as if the range had been read before it was stored.
   */
  async auditEvents(fromMs: number, toMs: number): Promise<StoredAuditEvent[]> {
    const out: StoredAuditEvent[] = [];
    const slice = new TimeSlice();
    let after: AuditEventRow | undefined;
    for (;;) {
      if (after && slice.isUp()) await slice.next();
      const page = await this.read((db) =>
        after
          ? (db
              .prepare(
                'SELECT * FROM audit_events WHERE (stage_ms, audit_id) > (?, ?) AND stage_ms < ? ORDER BY stage_ms, audit_id LIMIT ?',
              )
              .all(after.stage_ms, after.audit_id, toMs, AUDIT_ROWS_PER_PAGE) as AuditEventRow[])
          : (db
              .prepare(
                'SELECT * FROM audit_events WHERE stage_ms >= ? AND stage_ms < ? ORDER BY stage_ms, audit_id LIMIT ?',
              )
              .all(fromMs, toMs, AUDIT_ROWS_PER_PAGE) as AuditEventRow[]),
      );
      for (const r of page) out.push(toAuditEvent(r));
      if (page.length < AUDIT_ROWS_PER_PAGE) return out;
      after = page[page.length - 1];
    }
  }
}

/** Audit event rows per page of a range read: a few milliseconds of reading and parsing. */
const AUDIT_ROWS_PER_PAGE = 500;

interface AuditEventRow {
  audit_id: string;
  stage_ms: number;
  verb: string;
  resource: string;
  api_group: string;
  namespace: string;
  name: string;
  username: string;
  event_json: string;
}

function toAuditEvent(r: AuditEventRow): StoredAuditEvent {
  return {
    auditId: r.audit_id,
    stageMs: r.stage_ms,
    verb: r.verb,
    resource: r.resource,
    apiGroup: r.api_group,
    namespace: r.namespace,
    name: r.name,
    username: r.username,
    event: JSON.parse(r.event_json) as unknown,
  };
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
      db.prepare('INSERT INTO schema_migrations (version, name, applied_at_ms) VALUES (?, ?, ?)').run(
        m.version,
        m.name,
        Date.now(),
      );
    })();
  }
}

function toNodeRecord(r: NodeRow): NodeRecord {
  return {
    name: r.name,
    role: r.role as NodeRole,
    labels: JSON.parse(r.labels_json) as Record<string, string>,
    kubeletVersion: r.kubelet_version,
    kubernetesVersion: r.kubernetes_version,
    osImage: r.os_image,
    kernelVersion: r.kernel_version,
    architecture: r.architecture,
    agentVersion: r.agent_version,
    bootId: r.boot_id,
    connected: r.connected === 1,
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
