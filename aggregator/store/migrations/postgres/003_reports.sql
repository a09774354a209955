-- The PostgreSQL twin of migrations/sqlite/003_reports.sql: every report run,
-- archived with its inputs, and the Kubernetes audit events reports read.
-- Times are Unix milliseconds (BIGINT), as in SQLite.

-- A run's result is written once and never changed; scheduled runs are unique
-- per (report, interval). Several replicas share this table: a run is claimed
-- by moving it from 'queued' to 'running' with one conditional UPDATE, so only
-- one of them gets it.
CREATE TABLE report_runs (
  id                TEXT PRIMARY KEY,
  report            TEXT NOT NULL,
  report_type       TEXT NOT NULL,
  trigger_kind      TEXT NOT NULL,
  status            TEXT NOT NULL,
  attempts          INTEGER NOT NULL DEFAULT 0,
  interval_start_ms BIGINT NOT NULL,
  interval_end_ms   BIGINT NOT NULL,
  not_before_ms     BIGINT NOT NULL,
  created_ms        BIGINT NOT NULL,
  started_ms        BIGINT,
  finished_ms       BIGINT,
  error             TEXT,
  -- TEXT, not JSON or JSONB: written and read back whole and parsed in the
  -- store, exactly as written (key order, number spelling), as in SQLite. An
  -- archived result must read back as it was produced.
  inputs_json       TEXT NOT NULL,
  result_json       TEXT
);
CREATE UNIQUE INDEX report_runs_scheduled ON report_runs (report, interval_start_ms, interval_end_ms) WHERE trigger_kind = 'scheduled';
CREATE INDEX report_runs_report ON report_runs (report, created_ms);
CREATE INDEX report_runs_status ON report_runs (status, not_before_ms);

-- Kubernetes audit events received on the audit webhook (audit.k8s.io/v1), for
-- policy-audit reports; stored once per audit ID.
CREATE TABLE audit_events (
  audit_id        TEXT PRIMARY KEY,
  stage_ms        BIGINT NOT NULL,
  verb            TEXT NOT NULL,
  resource        TEXT NOT NULL,
  api_group       TEXT NOT NULL,
  namespace       TEXT NOT NULL,
  name            TEXT NOT NULL,
  username        TEXT NOT NULL,
  -- TEXT, as in SQLite: the event is read back whole, exactly as stored.
  event_json      TEXT NOT NULL
);
CREATE INDEX audit_events_time ON audit_events (stage_ms);
