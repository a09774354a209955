-- The CIS summary kept as results arrive (issue 13), not recomputed from check
-- rows per request: one compact row per node for its latest benchmark run,
-- written in the transaction that makes the run the node's latest. The
-- cluster summary and /metrics read these rows (a few hundred bytes each),
-- never check_results, so every replica sharing a store answers from what all
-- of them stored. A row counts only while its run_id is the node's
-- latest_run_id (nodes left and re-joined keep no stale summary).
CREATE TABLE node_cis_summaries (
  node               TEXT PRIMARY KEY,
  run_id             INTEGER NOT NULL,
  benchmark_id       TEXT NOT NULL,
  role               TEXT NOT NULL,
  pass               INTEGER NOT NULL,
  fail               INTEGER NOT NULL,
  skip               INTEGER NOT NULL,
  score_percent      REAL NOT NULL,
  -- JSON array of the ids of the scored checks the run fails.
  failed_checks_json TEXT NOT NULL,
  -- Why the scanned root is not a Kubernetes node ("no kubelet found under /host ..."); NULL for a real scan.
  not_assessable     TEXT
);

INSERT INTO node_cis_summaries (node, run_id, benchmark_id, role, pass, fail, skip, score_percent, failed_checks_json, not_assessable)
SELECT n.name, r.id, r.benchmark_id, r.role, r.pass, r.fail, r.skip, r.score_percent,
  (SELECT json_group_array(c.check_id) FROM check_results c WHERE c.run_id = r.id AND c.status = 'FAIL' AND c.scored),
  NULL
FROM nodes n JOIN benchmark_runs r ON r.id = n.latest_run_id;

-- Section 5 evaluated by the aggregator from the API (issue 14): one row per
-- evaluation whose results differ from the one before; checked_at_ms moves on
-- the latest row when a re-evaluation finds the same. The latest is the
-- highest id.
CREATE TABLE cluster_cis_scans (
  id              INTEGER PRIMARY KEY AUTOINCREMENT,
  benchmark_id    TEXT NOT NULL,
  started_at_ms   INTEGER NOT NULL,
  checked_at_ms   INTEGER NOT NULL,
  pass            INTEGER NOT NULL,
  fail            INTEGER NOT NULL,
  skip            INTEGER NOT NULL,
  score_percent   REAL NOT NULL,
  -- The results' fingerprint: an evaluation equal to the latest only moves checked_at_ms.
  fingerprint     TEXT NOT NULL,
  scan_json       TEXT NOT NULL
);
