// The SQL both stores run, and the little in its text that differs by dialect.
// Statements use PostgreSQL's numbered placeholders ($1, $2, ...) in both: in
// SQLite `$1` is a named parameter, bound by the SQLite store from the same
// array (see sqlite.ts). Both speak ON CONFLICT ... DO UPDATE/NOTHING,
// RETURNING, TRUE/FALSE and CAST; what else differs is the Dialect below.

/** A connection, or a transaction, as the shared store code (core.ts) runs statements on it. */
export interface Conn {
  /** The rows a query (or an INSERT ... RETURNING) answers. */
  all<R>(sql: string, params?: unknown[]): Promise<R[]>;
  /** A statement that answers no rows; how many rows it changed. */
  run(sql: string, params?: unknown[]): Promise<number>;
}

/** The spellings that differ between SQLite and PostgreSQL. */
export interface Dialect {
  /** The larger of two values: SQLite's scalar MAX (PostgreSQL's MAX is an aggregate only). */
  greatest: 'MAX' | 'GREATEST';
  /** The smaller of two values. */
  least: 'MIN' | 'LEAST';
  /** `col` in byte order, as ORDER BY sorts it: SQLite's BINARY, COLLATE "C" in PostgreSQL whatever the locale. */
  byteOrder(col: string): string;
  /** Appended to a SELECT that must lock what it reads: PostgreSQL's replicas; SQLite has one writer. */
  forUpdate: string;
  /** A subquery answering the strings of parameter `p`, a JSON array. */
  jsonTexts(p: string): string;
  /** A LIMIT parameter for `n`, where a negative `n` means no limit. */
  limit(n: number): number | null;
}

export const SQLITE: Dialect = {
  greatest: 'MAX',
  least: 'MIN',
  byteOrder: (col) => col,
  forUpdate: '',
  jsonTexts: (p) => `(SELECT value FROM json_each(${p}))`,
  limit: (n) => n, // SQLite reads a negative LIMIT as none
};

export const POSTGRES: Dialect = {
  greatest: 'GREATEST',
  least: 'LEAST',
  byteOrder: (col) => `${col} COLLATE "C"`,
  forUpdate: ' FOR UPDATE',
  jsonTexts: (p) => `(SELECT json_array_elements_text(CAST(${p} AS JSON)))`,
  limit: (n) => (n < 0 ? null : n), // PostgreSQL refuses a negative LIMIT and reads NULL as none
};

/** A table written a batch of rows at a time: its columns, each with its PostgreSQL type (for unnest's arrays). */
export interface Table {
  name: string;
  columns: readonly (readonly [name: string, pgType: 'text' | 'bigint' | 'boolean'])[];
}

export const CHECK_RESULTS: Table = {
  name: 'check_results',
  columns: [
    ['run_id', 'bigint'],
    ['check_id', 'text'],
    ['title', 'text'],
    ['status', 'text'],
    ['scored', 'boolean'],
  ],
};

export const AUDIT_EVENTS: Table = {
  name: 'audit_events',
  columns: [
    ['audit_id', 'text'],
    ['stage_ms', 'bigint'],
    ['verb', 'text'],
    ['resource', 'text'],
    ['api_group', 'text'],
    ['namespace', 'text'],
    ['name', 'text'],
    ['username', 'text'],
    ['event_json', 'text'],
  ],
};

export const POD_HISTORY: Table = {
  name: 'pod_history',
  columns: [
    ['uid', 'text'],
    ['namespace', 'text'],
    ['name', 'text'],
    ['labels_json', 'text'],
    ['service_account', 'text'],
    ['host_network', 'boolean'],
    ['first_seen_ms', 'bigint'],
    ['last_seen_ms', 'bigint'],
    ['deleted_ms', 'bigint'],
  ],
};

/** The column names of `t`, comma-separated. */
export const columnList = (t: Table, prefix = ''): string => t.columns.map(([c]) => prefix + c).join(', ');

/** One row of `t` as a single-row INSERT, then `tail` (ON CONFLICT, RETURNING). */
export const insertOneSql = (t: Table, tail: string): string =>
  `INSERT INTO ${t.name} (${columnList(t)}) VALUES (${t.columns.map((_, i) => `$${i + 1}`).join(', ')}) ${tail}`;

/** The flow_buckets columns before migration 008 (the bench's baseline only; the store no longer writes them). */
export const LEGACY_FLOW_COLUMNS =
  'bucket_ms, bucket_start_ms, node, flow_key, src_kind, src_namespace, src_name, dst_kind, dst_namespace, dst_name, action, reporter, record_json, connections, packets, bytes, first_ms, last_ms';

/** The flow_buckets columns both dialects write. */
export const FLOW_COLUMNS = 'bucket_start_ms, bucket_ms, node, key_id, connections, packets, bytes, first_ms, last_ms';

/** A rolled-up hour row's counts and times, from the minute rows grouped by hour (after the key columns). */
export const FLOW_ROLLUP_COLUMNS = 'SUM(connections), SUM(packets), SUM(bytes), MIN(first_ms), MAX(last_ms)';

/** flow_buckets' primary key (the ON CONFLICT target of an upsert). */
export const FLOW_BUCKET_KEY = '(bucket_start_ms, bucket_ms, node, key_id)';

/** A bucket row added to the one stored: counts summed, times widened (`t` is the table's name or alias). */
export const flowMergeSet = (d: Dialect, t = 'flow_buckets'): string =>
  `connections = ${t}.connections + excluded.connections, packets = ${t}.packets + excluded.packets, bytes = ${t}.bytes + excluded.bytes,
   first_ms = ${d.least}(${t}.first_ms, excluded.first_ms), last_ms = ${d.greatest}(${t}.last_ms, excluded.last_ms)`;

/** Last seen moves forward: $1 the time, $2 the node. */
export const touchNodeSql = (d: Dialect): string =>
  `UPDATE nodes SET last_seen_ms = ${d.greatest}(last_seen_ms, $1) WHERE name = $2`;

/** The dedup ledger's highest stored seq for ($1 node, $2 boot id). */
export const LEDGER_SQL = 'SELECT last_seq FROM agent_sequences WHERE node = $1 AND boot_id = $2';

/** The dedup ledger records ($3) as the highest seq stored for ($1 node, $2 boot id) at $4; never moves back. */
export const ledgerUpsertSql = (d: Dialect): string =>
  `INSERT INTO agent_sequences (node, boot_id, last_seq, updated_ms) VALUES ($1, $2, $3, $4)
   ON CONFLICT (node, boot_id) DO UPDATE SET last_seq = ${d.greatest}(agent_sequences.last_seq, excluded.last_seq), updated_ms = excluded.updated_ms`;

/**
 * A node's latest-run summary (node_cis_summaries): $1 node, $2 run id, $3 benchmark, $4 role, $5-$7 pass, fail,
 * skip, $8 score, $9 the failing scored checks (JSON), $10 why it is not assessable (or NULL).
 */
export const NODE_CIS_SUMMARY_UPSERT = `INSERT INTO node_cis_summaries (node, run_id, benchmark_id, role, pass, fail, skip, score_percent, failed_checks_json, not_assessable)
  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
  ON CONFLICT (node) DO UPDATE SET run_id = excluded.run_id, benchmark_id = excluded.benchmark_id, role = excluded.role,
    pass = excluded.pass, fail = excluded.fail, skip = excluded.skip, score_percent = excluded.score_percent,
    failed_checks_json = excluded.failed_checks_json, not_assessable = excluded.not_assessable`;

/** Every listed node's summary row, while it is the summary of the node's latest run. */
export const NODE_CIS_SUMMARIES_SQL = `SELECT s.node, s.run_id, s.benchmark_id, s.role, s.pass, s.fail, s.skip, s.score_percent, s.failed_checks_json, s.not_assessable
  FROM node_cis_summaries s JOIN nodes n ON n.name = s.node AND n.latest_run_id = s.run_id`;

/** report_runs columns but the result, which only reportRun reads. */
export const RUN_COLUMNS =
  'id, report, report_type, trigger_kind, status, attempts, interval_start_ms, interval_end_ms, not_before_ms, created_ms, started_ms, finished_ms, error, inputs_json';

/** The columns transitionReportRun may set, by patch key (the result apart). */
export const RUN_PATCH_COLUMNS = {
  status: 'status',
  attempts: 'attempts',
  notBeforeMs: 'not_before_ms',
  startedMs: 'started_ms',
  finishedMs: 'finished_ms',
  error: 'error',
} as const;

/** Collects a statement's parameters: `p(v)` adds one and answers its placeholder. */
export function params(first: unknown[] = []): { values: unknown[]; p: (v: unknown) => string } {
  const values = [...first];
  return { values, p: (v) => `$${values.push(v)}` };
}
