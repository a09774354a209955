-- Flow buckets as ids and counts (issue 13). A bucket row used to repeat its
-- flow's whole key (both endpoints with their labels, the policy lists: some
-- 750 bytes of JSON, again in the primary key's index) and the record's JSON
-- (another 950): about 3.3 kB a row. Now each endpoint (with its label set and
-- service account), each policy list and each distinct flow key is stored once,
-- in a dictionary table keyed by id, and a bucket row holds the time, the node,
-- the key's id and the counts.
--
-- The old rows are converted by the store right after this file runs, in the
-- same transaction (aggregator/store/sqlite.ts, convertLegacyFlows): from
-- flow_buckets_legacy, each record's JSON read as the writer reads a batch, so
-- the dictionaries hold exactly what new batches will look up. Then
-- flow_buckets_legacy is dropped.
ALTER TABLE flow_buckets RENAME TO flow_buckets_legacy;
DROP INDEX flow_buckets_time;
DROP INDEX flow_buckets_dst;
DROP INDEX flow_buckets_src;

-- An endpoint as flows name it. endpoint_json is the whole of it (kind,
-- namespace, name, labels, serviceAccount, internet, in that order), the
-- identity; the other columns are what reads filter and group on.
CREATE TABLE flow_endpoints (
  id             INTEGER PRIMARY KEY,
  endpoint_json  TEXT NOT NULL UNIQUE,
  kind           TEXT NOT NULL,
  namespace      TEXT NOT NULL,
  name           TEXT NOT NULL,
  internet       INTEGER NOT NULL
);
CREATE INDEX flow_endpoints_name ON flow_endpoints (namespace, name);

-- A list of policies (applied or staged), as JSON: [{tier, namespace, name, action, kind}, ...].
CREATE TABLE flow_policy_lists (
  id             INTEGER PRIMARY KEY,
  policies_json  TEXT NOT NULL UNIQUE
);

-- A flow key: everything of a flow but its counts and times, by ids.
CREATE TABLE flow_keys (
  id                INTEGER PRIMARY KEY,
  src_id            INTEGER NOT NULL,
  dst_id            INTEGER NOT NULL,
  protocol          TEXT NOT NULL,
  destination_port  INTEGER NOT NULL,
  action            TEXT NOT NULL,
  reporter          TEXT NOT NULL,
  policies_id       INTEGER NOT NULL,
  staged_id         INTEGER NOT NULL,
  unnamed_policy    INTEGER NOT NULL,
  policy_decided    INTEGER NOT NULL,
  UNIQUE (src_id, dst_id, protocol, destination_port, action, reporter, policies_id, staged_id, unnamed_policy, policy_decided)
);
CREATE INDEX flow_keys_dst ON flow_keys (dst_id);

-- One row per (bucket, node, flow key), as before. Clustered by key, then
-- time (WITHOUT ROWID: the primary key is the table): summing an interval per
-- key (Store.flowTotals) reads each key's range of the interval in key order,
-- with no sort, whatever the interval's length. Reads by time alone
-- (flowRows, compaction, retention) take flow_buckets_time.
CREATE TABLE flow_buckets (
  key_id           INTEGER NOT NULL,
  bucket_start_ms  INTEGER NOT NULL,
  bucket_ms        INTEGER NOT NULL,
  node             TEXT NOT NULL,
  connections      INTEGER NOT NULL,
  packets          INTEGER NOT NULL,
  bytes            INTEGER NOT NULL,
  first_ms         INTEGER NOT NULL,
  last_ms          INTEGER NOT NULL,
  PRIMARY KEY (key_id, bucket_start_ms, bucket_ms, node)
) WITHOUT ROWID;
CREATE INDEX flow_buckets_time ON flow_buckets (bucket_start_ms);
