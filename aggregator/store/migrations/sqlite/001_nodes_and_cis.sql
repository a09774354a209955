-- Nodes as their agents describe them in Hello.
CREATE TABLE nodes (
  name               TEXT PRIMARY KEY,
  role               TEXT NOT NULL,
  labels_json        TEXT NOT NULL DEFAULT '{}',
  kubelet_version    TEXT NOT NULL DEFAULT '',
  kubernetes_version TEXT NOT NULL DEFAULT '',
  os_image           TEXT NOT NULL DEFAULT '',
  kernel_version     TEXT NOT NULL DEFAULT '',
  architecture       TEXT NOT NULL DEFAULT '',
  agent_version      TEXT NOT NULL DEFAULT '',
  boot_id            TEXT NOT NULL DEFAULT '',
  connected          INTEGER NOT NULL DEFAULT 0,
  first_seen_ms      INTEGER NOT NULL,
  last_seen_ms       INTEGER NOT NULL,
  latest_run_id      INTEGER
);

-- The dedup ledger: the highest sequence number stored per (node, boot id).
CREATE TABLE agent_sequences (
  node       TEXT NOT NULL,
  boot_id    TEXT NOT NULL,
  last_seq   INTEGER NOT NULL,
  updated_ms INTEGER NOT NULL,
  PRIMARY KEY (node, boot_id)
);

-- Every benchmark run received; never updated after it is written.
CREATE TABLE benchmark_runs (
  id                INTEGER PRIMARY KEY AUTOINCREMENT,
  node              TEXT NOT NULL,
  boot_id           TEXT NOT NULL,
  seq               INTEGER NOT NULL,
  benchmark_id      TEXT NOT NULL,
  benchmark_version TEXT NOT NULL,
  role              TEXT NOT NULL,
  started_at_ms     INTEGER NOT NULL,
  duration_ms       INTEGER NOT NULL,
  pass              INTEGER NOT NULL,
  fail              INTEGER NOT NULL,
  skip              INTEGER NOT NULL,
  score_percent     REAL NOT NULL,
  received_at_ms    INTEGER NOT NULL,
  report_json       TEXT NOT NULL,
  UNIQUE (node, boot_id, seq)
);
CREATE INDEX benchmark_runs_node_started ON benchmark_runs (node, started_at_ms);

-- One row per check of each run, for "most failed checks" without parsing reports.
CREATE TABLE check_results (
  run_id   INTEGER NOT NULL REFERENCES benchmark_runs (id),
  check_id TEXT NOT NULL,
  title    TEXT NOT NULL,
  status   TEXT NOT NULL,
  scored   INTEGER NOT NULL,
  PRIMARY KEY (run_id, check_id)
);
