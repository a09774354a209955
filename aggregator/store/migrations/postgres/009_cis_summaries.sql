-- The PostgreSQL twin of migrations/sqlite/009_cis_summaries.sql.
-- One compact row per node for its latest benchmark run (issue 13), written in
-- the transaction that makes the run the latest, under the node row's lock;
-- the summary and /metrics read these, never check_results, so each replica
-- answers from what every replica stored. A row counts only while its run_id
-- is the node's latest_run_id.
CREATE TABLE node_cis_summaries (
  node               TEXT PRIMARY KEY,
  run_id             BIGINT NOT NULL,
  benchmark_id       TEXT NOT NULL,
  role               TEXT NOT NULL,
  pass               INTEGER NOT NULL,
  fail               INTEGER NOT NULL,
  skip               INTEGER NOT NULL,
  score_percent      DOUBLE PRECISION NOT NULL,
  -- JSON array of the ids of the scored checks the run fails.
  failed_checks_json TEXT NOT NULL,
  -- Why the scanned root is not a Kubernetes node; NULL for a real scan.
  not_assessable     TEXT
);

INSERT INTO node_cis_summaries (node, run_id, benchmark_id, role, pass, fail, skip, score_percent, failed_checks_json, not_assessable)
SELECT n.name, r.id, r.benchmark_id, r.role, r.pass, r.fail, r.skip, r.score_percent,
  COALESCE((SELECT CAST(json_agg(c.check_id) AS TEXT) FROM check_results c
            WHERE c.run_id = r.id AND c.status = 'FAIL' AND c.scored), '[]'),
  NULL
FROM nodes n JOIN benchmark_runs r ON r.id = n.latest_run_id;

-- Section 5 evaluated by the aggregator (issue 14): one row per evaluation
-- whose results differ from the one before; checked_at_ms moves on the latest
-- row when a re-evaluation finds the same. The latest is the highest id.
CREATE TABLE cluster_cis_scans (
  id              BIGSERIAL PRIMARY KEY,
  benchmark_id    TEXT NOT NULL,
  started_at_ms   BIGINT NOT NULL,
  checked_at_ms   BIGINT NOT NULL,
  pass            INTEGER NOT NULL,
  fail            INTEGER NOT NULL,
  skip            INTEGER NOT NULL,
  score_percent   DOUBLE PRECISION NOT NULL,
  fingerprint     TEXT NOT NULL,
  scan_json       TEXT NOT NULL
);
