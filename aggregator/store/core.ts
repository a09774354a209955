import {
  namespaceVersionRows,
  namespaceVersionsDuring,
  NAMESPACE_VERSIONS,
  type NamespaceVersion,
} from './namespace-versions.js';
import { podLifetimePage, podVersionRows, POD_LABEL_VERSIONS, type PodLifetime } from './pod-lifetimes.js';
import { deletePodHistory, objectsExisting } from './history-retention.js';
import type { FlowRecord } from '../../common/flow.js';
import type { NodeRole, ScanReport } from '../../common/scan-report.js';
import { TimeSlice } from '../../common/time-slice.js';
import type { ClusterScan, StoredClusterScan } from '../cluster-cis/scan.js';
import type { ArchivedRunRow, ScanAnchor, StoredScanRow } from '../evidence/records.js';
import {
  CHAIN_HEADS_SQL,
  RUN_EVIDENCE_SQL,
  runSteps,
  SCAN_EVIDENCE_SQL,
  sealRun,
  sealScan,
  toArchivedRunRow,
  toScanRow,
  type RunEvidenceDbRow,
  type ScanEvidenceDbRow,
} from './evidence.js';
import {
  bool,
  auditEventValues,
  toAuditEvent,
  toCheckStatus,
  FlowRowReader,
  nodeCisSummaryValues,
  toNodeCisSummary,
  toNodeRecord,
  toPodSighting,
  toRunRecord,
  type AuditEventRow,
  type CheckStatusRow,
  type FlowRow,
  type NodeCisSummaryRow,
  type NodeRow,
  type PodRow,
  type ReportRunRow,
  type SqlBool,
} from './rows.js';
import {
  AUDIT_EVENTS,
  CHECK_RESULTS,
  LEDGER_SQL,
  ledgerUpsertSql,
  NODE_CIS_SUMMARIES_SQL,
  NODE_CIS_SUMMARY_UPSERT,
  params,
  POD_HISTORY,
  RUN_COLUMNS,
  RUN_PATCH_COLUMNS,
  touchNodeSql,
  type Conn,
  type Dialect,
  type Table,
} from './sql.js';
import type {
  FlowBucketRow,
  FlowQuery,
  LatestCheckStatus,
  NodeChange,
  NodeCisSummary,
  NodeHello,
  NodeLiveness,
  NodeRecord,
  PodSighting,
  ReportRunRecord,
  ReportRunStatus,
  Store,
  StoredAuditEvent,
} from './types.js';

/** Names per statement when reading some nodes (well under either store's limit on parameters). */
const NAMES_PER_READ = 500;

/** Byte order of strings (UTF-16 code units), as both stores sort text. */
const byBytes = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/**
 * What the SQLite and the PostgreSQL store share: every operation whose SQL is
 * the same up to the Dialect's spellings. A store brings its connections
 * (committed reads, single autocommit statements, transactions), its batch
 * insert, and the operations that truly differ: storing and compacting flow
 * buckets (SQLite's time-sliced transaction, PostgreSQL's lock order and SKIP
 * LOCKED) and the latest audit event per object.
 *
 * Under PostgreSQL several replicas write at once (READ COMMITTED); where that
 * matters the shared statements lock (Dialect.forUpdate) or rely on a unique
 * key, and SQLite's single writer makes the same statements behave the same.
 */
export abstract class SqlStore implements Store {
  abstract readonly kind: 'sqlite' | 'postgres';
  protected abstract readonly d: Dialect;
  /** Reads of committed data. */
  protected abstract readonly reader: Conn;
  /** One statement, committed on its own. */
  protected abstract readonly writer: Conn;
  /** Range reads (auditEvents) go in pages of this many rows. */
  protected abstract readonly rowsPerPage: number;
  /** Run `fn` in one transaction; roll back if it throws. */
  protected abstract tx<T>(fn: (c: Conn) => Promise<T>): Promise<T>;
  /**
   * Insert `rows` (values in `table`'s column order) as one atomic step, `tail`
   * (ON CONFLICT, RETURNING) applying to each, on `c` inside a transaction;
   * answers what RETURNING returns, in the rows' order.
   */
  protected abstract insertRows<R>(table: Table, rows: unknown[][], tail: string, c?: Conn): Promise<R[]>;

  abstract ping(): Promise<void>;
  abstract unavailableReason(err: unknown): string | undefined;
  abstract close(): Promise<void>;
  abstract recordFlowBatch(
    node: string,
    bootId: string,
    seq: number,
    flows: FlowRecord[],
    atMs: number,
  ): Promise<{ duplicate: boolean }>;
  abstract compactFlows(rollupBeforeMs: number, deleteBeforeMs: number): Promise<{ rolledUp: number; deleted: number }>;
  abstract latestAuditEvents(
    objects: { apiGroup: string; resource: string; namespace: string; name: string }[],
    beforeMs: number,
    onlyWatched?: boolean,
  ): Promise<StoredAuditEvent[]>;

  private readonly nodeWatchers = new Set<(change: NodeChange) => void>();

  /** Where nodeLiveness and cisSummaries read (PostgreSQL: a connection of their own while it is there). */
  protected get nodeReader(): Conn {
    return this.reader;
  }

  watchNodes(listener: (change: NodeChange) => void): () => void {
    this.nodeWatchers.add(listener);
    return () => this.nodeWatchers.delete(listener);
  }

  /** A change to the nodes committed (here, or told by another replica): every watcher hears of it. */
  protected nodesChanged(change: NodeChange): void {
    for (const w of this.nodeWatchers) w(change);
  }

  async recordHello(h: NodeHello, atMs: number, connectionId = ''): Promise<{ lastStoredSeq: number }> {
    return this.tx(async (c) => {
      await c.run(
        `INSERT INTO nodes (name, role, labels_json, kubelet_version, kubernetes_version, os_image, kernel_version, architecture, agent_version, boot_id, connected, first_seen_ms, last_seen_ms, connection_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, TRUE, $11, $11, $12)
         ON CONFLICT (name) DO UPDATE SET role = excluded.role, labels_json = excluded.labels_json, kubelet_version = excluded.kubelet_version,
           kubernetes_version = excluded.kubernetes_version, os_image = excluded.os_image, kernel_version = excluded.kernel_version,
           architecture = excluded.architecture, agent_version = excluded.agent_version, boot_id = excluded.boot_id, connected = TRUE,
           last_seen_ms = excluded.last_seen_ms, connection_id = excluded.connection_id`,
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
      const [seen] = await c.all<{ last_seq: number }>(LEDGER_SQL, [h.name, h.bootId]);
      return { lastStoredSeq: seen?.last_seq ?? 0 };
    }).then((r) => {
      this.nodesChanged({ node: h.name });
      return r;
    });
  }

  async markDisconnected(node: string, atMs: number, connectionId?: string): Promise<void> {
    await this.writer.run(
      `UPDATE nodes SET connected = FALSE, last_seen_ms = ${this.d.greatest}(last_seen_ms, $1)
       WHERE name = $2 AND (CAST($3 AS TEXT) IS NULL OR connection_id = $3)`,
      [atMs, node, connectionId ?? null],
    );
    this.nodesChanged({ node });
  }

  async forgetNode(node: string): Promise<void> {
    await this.writer.run('DELETE FROM nodes WHERE name = $1', [node]);
    this.nodesChanged({ node });
  }

  async touchNode(node: string, atMs: number): Promise<void> {
    await this.writer.run(touchNodeSql(this.d), [atMs, node]);
    this.nodesChanged({ node, lastSeenOnly: true });
  }

  async markAllDisconnected(): Promise<void> {
    await this.writer.run('UPDATE nodes SET connected = FALSE');
    this.nodesChanged({ all: true, reason: 'all-disconnected' });
  }

  /**
   * Replicas may store messages of one agent at the same time (a reconnect lands
   * on another replica while the first still works through what it received).
   * Touching the node's row first locks it, so the writes for one node take
   * turns, and under READ COMMITTED each later statement sees what the previous
   * writer committed: the ledger check, the run and the "latest" comparison then
   * behave as under SQLite's single writer. The ledger row lock and the UNIQUE
   * (node, boot_id, seq) insert cover the one case with no node row to lock.
   */
  async recordBenchmarkRun(
    node: string,
    bootId: string,
    seq: number,
    report: ScanReport,
    atMs: number,
  ): Promise<{ duplicate: boolean }> {
    const d = this.d;
    const stored = await this.tx(async (c) => {
      await c.run(touchNodeSql(d), [atMs, node]);
      const [seen] = await c.all<{ last_seq: number }>(LEDGER_SQL + d.forUpdate, [node, bootId]);
      if (seen !== undefined && seq <= seen.last_seq) return { duplicate: true };
      const s = report.summary;
      const startedAtMs = Date.parse(report.startedAt);
      const [run] = await c.all<{ id: number }>(
        `INSERT INTO benchmark_runs (node, boot_id, seq, benchmark_id, benchmark_version, role, started_at_ms, duration_ms, pass, fail, skip, score_percent, received_at_ms, report_json)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
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
      // Another replica stored this very seq after our ledger read (possible only without a node row).
      if (run === undefined) return { duplicate: true };
      const checks = report.checks.map((ch) => [run.id, ch.id, ch.title, ch.status, ch.scored]);
      await this.insertRows(CHECK_RESULTS, checks, '', c);
      await c.run(ledgerUpsertSql(d), [node, bootId, seq, atMs]);
      // The scan joins the scan chain in the transaction that stores it (evidence.ts).
      await this.lockChain(c, 'scans');
      await runSteps(c, sealScan(run.id));
      // A resent older run must not replace a newer one as "latest".
      const latest = await c.run(
        `UPDATE nodes SET latest_run_id = $1 WHERE name = $2 AND (latest_run_id IS NULL OR
           (SELECT started_at_ms FROM benchmark_runs WHERE id = nodes.latest_run_id) <= $3)`,
        [run.id, node, startedAtMs],
      );
      // The node's compact summary follows its latest run in the same transaction (migration 009).
      if (latest === 1) await c.run(NODE_CIS_SUMMARY_UPSERT, nodeCisSummaryValues(node, run.id, report));
      return { duplicate: false };
    });
    // Last contact moved even for a duplicate; a new run may be the latest.
    this.nodesChanged({ node, lastSeenOnly: stored.duplicate });
    return stored;
  }

  async listNodes(): Promise<NodeRecord[]> {
    const rows = await this.reader.all<NodeRow>(
      `SELECT n.*, r.benchmark_id, r.benchmark_version, r.role AS run_role, r.started_at_ms, r.pass, r.fail, r.skip, r.score_percent,
         s.not_assessable
       FROM nodes n LEFT JOIN benchmark_runs r ON r.id = n.latest_run_id
       LEFT JOIN node_cis_summaries s ON s.node = n.name AND s.run_id = n.latest_run_id
       ORDER BY ${this.d.byteOrder('n.name')}`,
    );
    return rows.map(toNodeRecord);
  }

  async nodeLiveness(names?: string[]): Promise<NodeLiveness[]> {
    type Row = {
      name: string;
      connected: SqlBool;
      last_seen_ms: number | string;
      latest_run_id: number | string | null;
      role: NodeRole;
      kubelet_version: string;
      agent_version: string;
    };
    const rows = await this.byNames(names, (where, values) =>
      this.nodeReader.all<Row>(
        `SELECT name, connected, last_seen_ms, latest_run_id, role, kubelet_version, agent_version FROM nodes${where('name')} ORDER BY ${this.d.byteOrder('name')}`,
        values,
      ),
    );
    return rows.map((r) => ({
      name: r.name,
      connected: bool(r.connected),
      lastSeenMs: Number(r.last_seen_ms),
      latestRunId: r.latest_run_id === null ? null : Number(r.latest_run_id),
      role: r.role,
      kubeletVersion: r.kubelet_version,
      agentVersion: r.agent_version,
    }));
  }

  async cisSummaries(names?: string[]): Promise<NodeCisSummary[]> {
    const rows = await this.byNames(names, (where, values) =>
      this.nodeReader.all<NodeCisSummaryRow>(NODE_CIS_SUMMARIES_SQL + where('s.node'), values),
    );
    return rows.map(toNodeCisSummary);
  }

  /** One read for every node (`names` undefined), or one per slice of `names` with `where(column)` limiting it. */
  private async byNames<R>(
    names: string[] | undefined,
    read: (where: (column: string) => string, values: unknown[]) => Promise<R[]>,
  ): Promise<R[]> {
    if (names === undefined) return read(() => '', []);
    const out: R[] = [];
    for (let i = 0; i < names.length; i += NAMES_PER_READ) {
      const { values, p } = params();
      const list = names
        .slice(i, i + NAMES_PER_READ)
        .map(p)
        .join(', ');
      out.push(...(await read((column) => ` WHERE ${column} IN (${list})`, values)));
    }
    return out;
  }

  async checkTitles(checks: { runId: number; checkId: string }[]): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    if (checks.length === 0) return out;
    const { values, p } = params();
    const where = checks.map((k) => `(run_id = ${p(k.runId)} AND check_id = ${p(k.checkId)})`).join(' OR ');
    const rows = await this.reader.all<{ run_id: number | string; check_id: string; title: string }>(
      `SELECT run_id, check_id, title FROM check_results WHERE ${where}`,
      values,
    );
    for (const r of rows) out.set(`${Number(r.run_id)} ${r.check_id}`, r.title);
    return out;
  }

  async nodeReport(node: string, atMs?: number): Promise<ScanReport | undefined> {
    const [row] =
      atMs === undefined
        ? await this.reader.all<{ report_json: string }>(
            'SELECT r.report_json FROM nodes n JOIN benchmark_runs r ON r.id = n.latest_run_id WHERE n.name = $1',
            [node],
          )
        : await this.reader.all<{ report_json: string }>(
            'SELECT report_json FROM benchmark_runs WHERE node = $1 AND started_at_ms <= $2 ORDER BY started_at_ms DESC, id DESC LIMIT 1',
            [node, atMs],
          );
    return row ? (JSON.parse(row.report_json) as ScanReport) : undefined;
  }

  async latestCheckStatuses(): Promise<LatestCheckStatus[]> {
    const rows = await this.reader.all<CheckStatusRow>(
      `SELECT n.name AS node, r.benchmark_id, c.check_id, c.title, c.status, c.scored
       FROM nodes n JOIN benchmark_runs r ON r.id = n.latest_run_id JOIN check_results c ON c.run_id = r.id`,
    );
    return rows.map(toCheckStatus);
  }

  /** The latest row is locked while compared, so two replicas handing over leadership store one after the other. */
  async recordClusterScan(scan: ClusterScan, fingerprint: string, atMs: number): Promise<{ stored: boolean }> {
    const r = await this.recordClusterScanTx(scan, fingerprint, atMs);
    this.nodesChanged({ cluster: true });
    return r;
  }

  private recordClusterScanTx(scan: ClusterScan, fingerprint: string, atMs: number): Promise<{ stored: boolean }> {
    return this.tx(async (c) => {
      const [latest] = await c.all<{ id: number; fingerprint: string }>(
        `SELECT id, fingerprint FROM cluster_cis_scans ORDER BY id DESC LIMIT 1${this.d.forUpdate}`,
      );
      if (latest?.fingerprint === fingerprint) {
        await c.run(
          `UPDATE cluster_cis_scans SET checked_at_ms = ${this.d.greatest}(checked_at_ms, $1) WHERE id = $2`,
          [atMs, latest.id],
        );
        return { stored: false };
      }
      const s = scan.summary;
      await c.run(
        `INSERT INTO cluster_cis_scans (benchmark_id, started_at_ms, checked_at_ms, pass, fail, skip, score_percent, fingerprint, scan_json)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
        [
          scan.benchmark.id,
          Date.parse(scan.startedAt),
          atMs,
          s.pass,
          s.fail,
          s.skip,
          s.scorePercent,
          fingerprint,
          JSON.stringify(scan),
        ],
      );
      return { stored: true };
    });
  }

  async latestClusterScan(atMs?: number): Promise<StoredClusterScan | undefined> {
    // A row is stored only when the results change, so the latest started by atMs is the cluster as it was then.
    const [row] = await this.reader.all<{ checked_at_ms: number; scan_json: string }>(
      `SELECT checked_at_ms, scan_json FROM cluster_cis_scans WHERE CAST($1 AS BIGINT) IS NULL OR started_at_ms <= $1
       ORDER BY id DESC LIMIT 1`,
      [atMs ?? null],
    );
    if (!row) return undefined;
    return {
      ...(JSON.parse(row.scan_json) as ClusterScan),
      checkedAt: new Date(Number(row.checked_at_ms)).toISOString(),
    };
  }

  async flowRows(q: FlowQuery): Promise<FlowBucketRow[]> {
    const { where, values, p } = flowWhere(q);
    const limit = q.limit !== undefined ? ` LIMIT ${p(Math.max(0, Math.floor(q.limit)))}` : '';
    const rows = await this.reader.all<FlowRow>(
      `SELECT b.node, b.bucket_start_ms, b.bucket_ms, b.connections, b.packets, b.bytes, b.first_ms, b.last_ms, ${FLOW_KEY_COLUMNS}
       FROM flow_buckets b ${FLOW_KEY_JOIN}
       WHERE b.bucket_start_ms >= $1 AND b.bucket_start_ms < $2${where.map((w) => ` AND ${w}`).join('')}
       ORDER BY b.bucket_start_ms DESC, ${this.d.byteOrder('b.node')}, b.key_id, b.bucket_ms${limit}`,
      values,
    );
    const reader = new FlowRowReader();
    return rows.map((r) => reader.bucketRow(r));
  }

  /**
   * Summed in SQL, one row per distinct key (the bucket rows' key ids, then
   * each key's dictionary entries once): the rows of the interval never reach
   * this process, only as many records as the interval has distinct flows.
   */
  async flowTotals(q: Omit<FlowQuery, 'limit'>, opts: { connectionsOnly?: boolean } = {}): Promise<FlowRecord[]> {
    const { where, values } = flowWhere(q);
    // SQLite: key by key (its flow_buckets is clustered by key, then time), each key's range of the interval, no sort.
    // PostgreSQL has no such order: there the same IN, with nothing to filter, is a hash join of every row of the
    // interval (30 days over 10M rows: 4.1 s against 2.5 s without it); the join below drops a key it does not know.
    const keys =
      where.length === 0
        ? this.kind === 'sqlite'
          ? ' AND b.key_id IN (SELECT id FROM flow_keys)'
          : ''
        : ` AND b.key_id IN (SELECT k.id FROM flow_keys k JOIN flow_endpoints s ON s.id = k.src_id JOIN flow_endpoints d ON d.id = k.dst_id
             WHERE ${where.join(' AND ')})`;
    const rows = await this.reader.all<FlowRow>(
      `WITH t AS (
         SELECT b.key_id, CAST(SUM(b.connections) AS BIGINT) AS connections, ${
           opts.connectionsOnly
             ? '0 AS packets, 0 AS bytes, MAX(b.last_ms) AS first_ms'
             : 'CAST(SUM(b.packets) AS BIGINT) AS packets, CAST(SUM(b.bytes) AS BIGINT) AS bytes, MIN(b.first_ms) AS first_ms'
         }, MAX(b.last_ms) AS last_ms
         FROM flow_buckets b WHERE b.bucket_start_ms >= $1 AND b.bucket_start_ms < $2${keys}
         GROUP BY b.key_id
       )
       SELECT t.connections, t.packets, t.bytes, t.first_ms, t.last_ms, ${FLOW_KEY_COLUMNS}
       FROM t JOIN flow_keys k ON k.id = t.key_id ${FLOW_DICT_JOIN}`,
      values,
    );
    const reader = new FlowRowReader();
    return rows.map((r) => reader.flow(r));
  }

  /**
   * ON CONFLICT DO NOTHING without a target covers both the id and the partial
   * unique index on scheduled (report, interval): two replicas creating the same
   * scheduled run at once (a leader handing over) store it once, and the second
   * insert waits for the first to commit and then answers false.
   */
  async createReportRun(r: ReportRunRecord): Promise<boolean> {
    const inserted = await this.writer.run(
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
    return inserted === 1;
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
    expect: { attempts?: number } = {},
  ): Promise<boolean> {
    const { values, p } = params([id, from]);
    const sets: string[] = [];
    for (const [k, c] of Object.entries(RUN_PATCH_COLUMNS)) {
      if (k in patch) sets.push(`${c} = ${p((patch as Record<string, unknown>)[k] ?? null)}`);
    }
    // Results are written once; a run that has one is never rewritten.
    if ('result' in patch) sets.push(`result_json = ${p(JSON.stringify(patch.result) ?? null)}`);
    if (sets.length === 0) return false;
    let guard = 'result' in patch ? ' AND result_json IS NULL' : '';
    if (expect.attempts !== undefined) guard += ` AND attempts = ${p(expect.attempts)}`;
    const sql = `UPDATE report_runs SET ${sets.join(', ')} WHERE id = $1 AND status = $2${guard}`;
    if (patch.status !== 'succeeded') return (await this.writer.run(sql, values)) === 1;
    // Archiving a result: the run joins its report's chain in the same transaction (evidence.ts).
    return this.tx(async (c) => {
      await this.lockChain(c, 'runs');
      if ((await c.run(sql, values)) !== 1) return false;
      await runSteps(c, sealRun(id));
      return true;
    });
  }

  /**
   * Hold `chain`'s lock until the transaction on `c` ends, so one writer at a time appends to it: PostgreSQL's
   * replicas take an advisory lock (postgres.ts); SQLite's one writer needs none.
   */
  protected async lockChain(_c: Conn, _chain: 'scans' | 'runs'): Promise<void> {}

  async archivedRuns(report?: string, id?: string): Promise<ArchivedRunRow[]> {
    const rows = await this.reader.all<RunEvidenceDbRow>(
      `${RUN_EVIDENCE_SQL} WHERE (CAST($1 AS TEXT) IS NULL OR report = $1) AND (CAST($2 AS TEXT) IS NULL OR id = $2)
       ORDER BY ${this.d.byteOrder('report')}, chain_seq, created_ms`,
      [report ?? null, id ?? null],
    );
    return rows.map(toArchivedRunRow);
  }

  async storedScans(opts: { links?: boolean } = {}): Promise<StoredScanRow[]> {
    const select = opts.links ? SCAN_EVIDENCE_SQL.replace('report_json', "'' AS report_json") : SCAN_EVIDENCE_SQL;
    const rows = await this.reader.all<ScanEvidenceDbRow>(`${select} ORDER BY chain_seq, id`);
    return rows.map(toScanRow);
  }

  async chainHeads(): Promise<Map<string, ScanAnchor>> {
    const rows = await this.reader.all<{ chain: string; seq: number; digest: string }>(CHAIN_HEADS_SQL);
    return new Map(rows.map((r) => [r.chain, { seq: r.seq, digest: r.digest }]));
  }

  async reportRun(id: string): Promise<ReportRunRecord | undefined> {
    const [row] = await this.reader.all<ReportRunRow>(
      `SELECT ${RUN_COLUMNS}, result_json FROM report_runs WHERE id = $1`,
      [id],
    );
    return row ? toRunRecord(row, true) : undefined;
  }

  async reportRuns(report: string, limit: number): Promise<ReportRunRecord[]> {
    const rows = await this.reader.all<ReportRunRow>(
      `SELECT ${RUN_COLUMNS}, NULL AS result_json FROM report_runs WHERE report = $1
       ORDER BY created_ms DESC, ${this.d.byteOrder('id')} DESC LIMIT $2`,
      [report, this.d.limit(limit)],
    );
    return rows.map((r) => toRunRecord(r, false));
  }

  /**
   * Several replicas may read the same due runs; that is fine: moving a run from
   * queued to running (transitionReportRun) is the claim, and only one wins it.
   */
  async dueReportRuns(nowMs: number, limit: number): Promise<ReportRunRecord[]> {
    const rows = await this.reader.all<ReportRunRow>(
      `SELECT ${RUN_COLUMNS}, NULL AS result_json FROM report_runs WHERE status = 'queued' AND not_before_ms <= $1
       ORDER BY not_before_ms, created_ms, ${this.d.byteOrder('id')} LIMIT $2`,
      [nowMs, this.d.limit(limit)],
    );
    return rows.map((r) => toRunRecord(r, false));
  }

  async runningReportRuns(startedBeforeMs: number, exceptIds: string[] = []): Promise<ReportRunRecord[]> {
    const rows = await this.reader.all<ReportRunRow>(
      `SELECT ${RUN_COLUMNS}, NULL AS result_json FROM report_runs
       WHERE status = 'running' AND COALESCE(started_ms, 0) < $1 AND id NOT IN ${this.d.jsonTexts('$2')}
       ORDER BY created_ms, ${this.d.byteOrder('id')}`,
      [startedBeforeMs, JSON.stringify(exceptIds)],
    );
    return rows.map((r) => toRunRecord(r, false));
  }

  async requeueRunningReportRuns(startedBeforeMs = Number.MAX_SAFE_INTEGER, exceptIds: string[] = []): Promise<number> {
    return this.writer.run(
      `UPDATE report_runs SET status = 'queued'
       WHERE status = 'running' AND COALESCE(started_ms, 0) < $1 AND id NOT IN ${this.d.jsonTexts('$2')}`,
      [startedBeforeMs, JSON.stringify(exceptIds)],
    );
  }

  async lastScheduledIntervalEnd(report: string): Promise<number | undefined> {
    const [row] = await this.reader.all<{ m: number | null }>(
      "SELECT MAX(interval_end_ms) AS m FROM report_runs WHERE report = $1 AND trigger_kind = 'scheduled'",
      [report],
    );
    return row?.m ?? undefined;
  }

  /**
   * One atomic insert for the batch. An audit ID twice in one batch keeps its
   * first event. The rows go in in audit ID order, so two replicas storing
   * overlapping batches at once (a webhook retry landing on another replica)
   * wait for each other in one order and cannot deadlock.
   */
  async recordAuditEvents(events: StoredAuditEvent[]): Promise<string[]> {
    const firsts = new Map<string, StoredAuditEvent>();
    for (const e of events) if (!firsts.has(e.auditId)) firsts.set(e.auditId, e);
    const rows = [...firsts.values()].sort((a, b) => byBytes(a.auditId, b.auditId)).map(auditEventValues);
    if (rows.length === 0) return [];
    const inserted = await this.insertRows<{ audit_id: string }>(
      AUDIT_EVENTS,
      rows,
      'ON CONFLICT (audit_id) DO NOTHING RETURNING audit_id',
    );
    return inserted.map((r) => r.audit_id);
  }

  /**
   * A pod seen twice in one call keeps its last sighting; the rows go in in uid order (lock order). A sighting with
   * new labels or service account starts a label version (pod-lifetimes.ts), compared with pod_history before it moves.
   */
  async recordPods(pods: PodSighting[], atMs: number, deleted: boolean): Promise<void> {
    if (pods.length === 0) return;
    if (!deleted) {
      const latest = [...new Map(pods.map((p) => [p.uid, p])).values()].sort((a, b) => byBytes(a.uid, b.uid));
      const versions = await podVersionRows(this.reader, this.d, latest, atMs);
      if (versions.length > 0)
        await this.insertRows(POD_LABEL_VERSIONS, versions, 'ON CONFLICT (uid, from_ms) DO NOTHING');
    }
    const rows = [...new Map(pods.map((p) => [p.uid, p])).values()]
      .sort((a, b) => byBytes(a.uid, b.uid))
      .map((p) => [
        p.uid,
        p.namespace,
        p.name,
        JSON.stringify(p.labels),
        p.serviceAccount,
        p.hostNetwork,
        atMs,
        atMs,
        deleted ? atMs : null,
      ]);
    await this.insertRows(
      POD_HISTORY,
      rows,
      `ON CONFLICT (uid) DO UPDATE SET labels_json = excluded.labels_json, service_account = excluded.service_account,
         host_network = excluded.host_network, last_seen_ms = ${this.d.greatest}(pod_history.last_seen_ms, excluded.last_seen_ms),
         deleted_ms = COALESCE(excluded.deleted_ms, pod_history.deleted_ms)`,
    );
  }

  async recordNamespaces(seen: { name: string; labels: Record<string, string> | null }[], atMs: number): Promise<void> {
    const rows = await namespaceVersionRows(this.reader, this.d, seen, atMs);
    if (rows.length > 0) await this.insertRows(NAMESPACE_VERSIONS, rows, 'ON CONFLICT (name, from_ms) DO NOTHING');
  }

  namespaceVersions(fromMs: number, toMs: number): Promise<NamespaceVersion[] | undefined> {
    return namespaceVersionsDuring(this.reader, this.d, fromMs, toMs);
  }

  recordPodsGoneExcept(uids: string[], atMs: number, notSeenSinceMs: number): Promise<number> {
    return this.writer.run(
      `UPDATE pod_history SET deleted_ms = $1
       WHERE deleted_ms IS NULL AND last_seen_ms < $3 AND uid NOT IN ${this.d.jsonTexts('$2')}`,
      [atMs, JSON.stringify(uids), notSeenSinceMs],
    );
  }

  podLifetimes(
    fromMs: number,
    toMs: number,
    page: { afterUid?: string; limit: number },
  ): Promise<PodLifetime[] | undefined> {
    return podLifetimePage(this.reader, this.d, fromMs, toMs, page);
  }

  async podsDuring(fromMs: number, toMs: number): Promise<PodSighting[] | undefined> {
    const [oldest] = await this.reader.all<{ m: number | null }>('SELECT MIN(first_seen_ms) AS m FROM pod_history');
    if (oldest?.m === null || oldest?.m === undefined || oldest.m > fromMs) return undefined;
    const { byteOrder } = this.d;
    const rows = await this.reader.all<PodRow>(
      `SELECT uid, namespace, name, labels_json, service_account, host_network FROM pod_history
       WHERE first_seen_ms < $1 AND (deleted_ms IS NULL OR deleted_ms >= $2)
       ORDER BY ${byteOrder('namespace')}, ${byteOrder('name')}, ${byteOrder('uid')}`,
      [toMs, fromMs],
    );
    return rows.map(toPodSighting);
  }

  async deleteAuditEventsBefore(beforeMs: number): Promise<number> {
    // A policy that has not changed since before the horizon is still in force: its latest watched version before the
    // horizon is what network access and diffs start from, so it stays (one row per object) unless it is a deletion.
    const later = this.d.byteOrder('b.audit_id');
    const mine = this.d.byteOrder('audit_events.audit_id');
    return this.writer.run(
      `DELETE FROM audit_events WHERE stage_ms < $1 AND NOT (audit_id LIKE 'watch:%' AND verb <> 'delete'
         AND NOT EXISTS (SELECT 1 FROM audit_events b WHERE b.audit_id LIKE 'watch:%' AND b.stage_ms < $1
           AND b.api_group = audit_events.api_group AND b.resource = audit_events.resource
           AND b.namespace = audit_events.namespace AND b.name = audit_events.name
           AND (b.stage_ms > audit_events.stage_ms OR (b.stage_ms = audit_events.stage_ms AND ${later} > ${mine}))))`,
      [beforeMs],
    );
  }

  /**
   * Retention of pod and namespace history, as of audit events: pods deleted before `beforeMs` go with their label
   * versions, and a label version (a pod's, a namespace's) replaced at or before `beforeMs` goes; the version in force
   * at `beforeMs` stays, so intervals after it are judged as before. Answers how many rows went.
   */
  async deletePodHistoryBefore(beforeMs: number): Promise<number> {
    return this.tx((c) => deletePodHistory(c, beforeMs));
  }

  /**
   * The objects of one resource whose latest event is older than `beforeMs` and not a deletion: what the history holds
   * as existing (a watch that starts compares them with its first list; one absent was deleted while not watched).
   * An object with any event at or after `beforeMs` is left out: something newer speaks for it.
   */
  async auditObjectsExisting(apiGroup: string, resource: string, beforeMs: number): Promise<StoredAuditEvent[]> {
    return (await objectsExisting(this.reader, this.d, apiGroup, resource, beforeMs)).map(toAuditEvent);
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
    const order = `ORDER BY stage_ms, ${this.d.byteOrder('audit_id')} LIMIT $3`;
    let after: AuditEventRow | undefined;
    for (;;) {
      if (after && slice.isUp()) await slice.next();
      const page = after
        ? await this.reader.all<AuditEventRow>(
            `SELECT * FROM audit_events WHERE (stage_ms, ${this.d.byteOrder('audit_id')}) > ($1, $4) AND stage_ms < $2 ${order}`,
            [after.stage_ms, toMs, this.rowsPerPage, after.audit_id],
          )
        : await this.reader.all<AuditEventRow>(
            `SELECT * FROM audit_events WHERE stage_ms >= $1 AND stage_ms < $2 ${order}`,
            [fromMs, toMs, this.rowsPerPage],
          );
      for (const r of page) out.push(toAuditEvent(r));
      if (page.length < this.rowsPerPage) return out;
      after = page[page.length - 1];
    }
  }
}

/** A flow read's key columns (FlowRow), from FLOW_KEY_JOIN's aliases. */
const FLOW_KEY_COLUMNS = `k.src_id, s.endpoint_json AS src_json, k.dst_id, d.endpoint_json AS dst_json, k.protocol, k.destination_port,
  k.action, k.reporter, k.policies_id, p.policies_json, k.staged_id, sp.policies_json AS staged_json, k.unnamed_policy, k.policy_decided,
  k.policy_unknown`;

/** A key's (k) dictionary entries: s and d its endpoints, p and sp its policy lists. */
const FLOW_DICT_JOIN = `JOIN flow_endpoints s ON s.id = k.src_id JOIN flow_endpoints d ON d.id = k.dst_id
  JOIN flow_policy_lists p ON p.id = k.policies_id JOIN flow_policy_lists sp ON sp.id = k.staged_id`;

/** A bucket row's (b) key (k) and its dictionary entries. */
const FLOW_KEY_JOIN = `JOIN flow_keys k ON k.id = b.key_id ${FLOW_DICT_JOIN}`;

/**
 * The conditions of a flow read beyond its interval ($1 and $2), over the key
 * (k) and its endpoints (s, d); and the parameters.
 */
function flowWhere(q: Omit<FlowQuery, 'limit'>): { where: string[]; values: unknown[]; p: (v: unknown) => string } {
  const { values, p } = params([q.fromMs, q.toMs]);
  const where: string[] = [];
  if (q.namespace !== undefined) {
    const ns = p(q.namespace);
    where.push(`(s.namespace = ${ns} OR d.namespace = ${ns})`);
  }
  if (q.endpoint !== undefined) {
    const slash = q.endpoint.indexOf('/');
    const name = p(slash >= 0 ? q.endpoint.slice(slash + 1) : q.endpoint);
    if (slash < 0) {
      where.push(`(s.name = ${name} OR d.name = ${name})`);
    } else {
      const ns = p(q.endpoint.slice(0, slash));
      where.push(`((s.namespace = ${ns} AND s.name = ${name}) OR (d.namespace = ${ns} AND d.name = ${name}))`);
    }
  }
  if (q.action !== undefined) where.push(`k.action = ${p(q.action)}`);
  return { where, values, p };
}
