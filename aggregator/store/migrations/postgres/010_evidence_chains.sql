-- The PostgreSQL twin of migrations/sqlite/010_evidence_chains.sql. Replicas
-- append to a chain under an advisory lock (store/locks.ts), and the unique
-- indexes refuse a second link with the same number.
-- Evidence chains (aggregator/evidence/): each archived report run and each
-- stored scan gets its place in a hash chain: chain_seq (from 1 per report for
-- runs, from 1 over all scans), prev_digest (the digest of the link before;
-- NULL for the first) and digest (SHA-256 of the row's canonical form with
-- those two). A run also keeps the scan chain's last link when it was sealed.
-- Rows stored before this migration are chained by the store in the same
-- transaction, right after these statements (scans in id order, each report's
-- succeeded runs in finish order): the chain vouches for them from the upgrade
-- on, not before.
ALTER TABLE report_runs ADD COLUMN chain_seq BIGINT;
ALTER TABLE report_runs ADD COLUMN prev_digest TEXT;
ALTER TABLE report_runs ADD COLUMN digest TEXT;
ALTER TABLE report_runs ADD COLUMN scan_chain_seq BIGINT;
ALTER TABLE report_runs ADD COLUMN scan_chain_digest TEXT;
-- One run per place in a report's chain: two writers cannot both append link n.
CREATE UNIQUE INDEX report_runs_chain ON report_runs (report, chain_seq);

ALTER TABLE benchmark_runs ADD COLUMN chain_seq BIGINT;
ALTER TABLE benchmark_runs ADD COLUMN prev_digest TEXT;
ALTER TABLE benchmark_runs ADD COLUMN digest TEXT;
CREATE UNIQUE INDEX benchmark_runs_chain ON benchmark_runs (chain_seq);

-- Each chain's last link, moved on with every seal: deleting the newest rows of
-- a chain leaves no gap behind them, but it leaves the head pointing past the
-- end. chain is 'scans' or 'report:<name>'.
CREATE TABLE evidence_chain_heads (
  chain  TEXT PRIMARY KEY,
  seq    BIGINT NOT NULL,
  digest TEXT NOT NULL
);
