-- Every report run, archived with its inputs. A run's result is written once
-- and never changed; scheduled runs are unique per (report, interval).
CREATE TABLE report_runs (
  id                TEXT PRIMARY KEY,
  report            TEXT NOT NULL,
  report_type       TEXT NOT NULL,
  trigger_kind      TEXT NOT NULL,
  status            TEXT NOT NULL,
  attempts          INTEGER NOT NULL DEFAULT 0,
  interval_start_ms INTEGER NOT NULL,
  interval_end_ms   INTEGER NOT NULL,
  not_before_ms     INTEGER NOT NULL,
  created_ms        INTEGER NOT NULL,
  started_ms        INTEGER,
  finished_ms       INTEGER,
  error             TEXT,
  inputs_json       TEXT NOT NULL,
  result_json       TEXT
);
CREATE UNIQUE INDEX report_runs_scheduled ON report_runs (report, interval_start_ms, interval_end_ms) WHERE trigger_kind = 'scheduled';
CREATE INDEX report_runs_report ON report_runs (report, created_ms);
CREATE INDEX report_runs_status ON report_runs (status, not_before_ms);

-- Kubernetes audit events received on the audit webhook (audit.k8s.io/v1), for policy-audit reports.
CREATE TABLE audit_events (
  audit_id        TEXT PRIMARY KEY,
  stage_ms        INTEGER NOT NULL,
  verb            TEXT NOT NULL,
  resource        TEXT NOT NULL,
  api_group       TEXT NOT NULL,
  namespace       TEXT NOT NULL,
  name            TEXT NOT NULL,
  username        TEXT NOT NULL,
  event_json      TEXT NOT NULL
);
CREATE INDEX audit_events_time ON audit_events (stage_ms);
