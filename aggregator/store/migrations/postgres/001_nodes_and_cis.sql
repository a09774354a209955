-- The PostgreSQL twin of migrations/sqlite/001_nodes_and_cis.sql: same tables,
-- columns and constraints, in PostgreSQL types. Times are Unix milliseconds
-- (BIGINT), as in SQLite, so both stores hand compute/ the same numbers.

-- Nodes as their agents describe them in Hello.
CREATE TABLE nodes (
  name               TEXT PRIMARY KEY,
  role               TEXT NOT NULL,
  -- JSONB so a label selector can be answered in SQL (labels @> '{"zone":"a"}').
  labels             JSONB NOT NULL DEFAULT '{}',
  kubelet_version    TEXT NOT NULL DEFAULT '',
  kubernetes_version TEXT NOT NULL DEFAULT '',
  os_image           TEXT NOT NULL DEFAULT '',
  kernel_version     TEXT NOT NULL DEFAULT '',
  architecture       TEXT NOT NULL DEFAULT '',
  agent_version      TEXT NOT NULL DEFAULT '',
  boot_id            TEXT NOT NULL DEFAULT '',
  connected          BOOLEAN NOT NULL DEFAULT FALSE,
  first_seen_ms      BIGINT NOT NULL,
  last_seen_ms       BIGINT NOT NULL,
  latest_run_id      BIGINT
);

-- The dedup ledger: the highest sequence number stored per (node, boot id).
-- Replicas serialize on this row (SELECT ... FOR UPDATE) while storing a message.
CREATE TABLE agent_sequences (
  node       TEXT NOT NULL,
  boot_id    TEXT NOT NULL,
  last_seq   BIGINT NOT NULL,
  updated_ms BIGINT NOT NULL,
  PRIMARY KEY (node, boot_id)
);

-- Every benchmark run received; never updated after it is written.
CREATE TABLE benchmark_runs (
  id                BIGSERIAL PRIMARY KEY,
  node              TEXT NOT NULL,
  boot_id           TEXT NOT NULL,
  seq               BIGINT NOT NULL,
  benchmark_id      TEXT NOT NULL,
  benchmark_version TEXT NOT NULL,
  role              TEXT NOT NULL,
  started_at_ms     BIGINT NOT NULL,
  duration_ms       BIGINT NOT NULL,
  pass              INTEGER NOT NULL,
  fail              INTEGER NOT NULL,
  skip              INTEGER NOT NULL,
  score_percent     DOUBLE PRECISION NOT NULL,
  received_at_ms    BIGINT NOT NULL,
  -- JSON, not JSONB: the report is only ever read back whole, and JSON keeps it
  -- exactly as the agent sent it (key order included) for GET /nodes/:name/cis.
  report            JSON NOT NULL,
  UNIQUE (node, boot_id, seq)
);
CREATE INDEX benchmark_runs_node_started ON benchmark_runs (node, started_at_ms);

-- One row per check of each run, for "most failed checks" without parsing reports.
CREATE TABLE check_results (
  run_id   BIGINT NOT NULL REFERENCES benchmark_runs (id),
  check_id TEXT NOT NULL,
  title    TEXT NOT NULL,
  status   TEXT NOT NULL,
  scored   BOOLEAN NOT NULL,
  PRIMARY KEY (run_id, check_id)
);
