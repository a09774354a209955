-- The PostgreSQL twin of migrations/sqlite/002_flow_buckets.sql: flows
-- pre-aggregated in time buckets, one row per (bucket, node, flow key), never
-- one row per flow. bucket_ms is the bucket's size: minute buckets for recent
-- data, rolled up into hour buckets as they age (retention settings).
--
-- One difference: the key is unique by its SHA-256 (flow_key_sha256, computed
-- from flow_key on insert), not by flow_key itself. A flow key is JSON holding
-- both endpoints' labels and the policies; a B-tree entry may not exceed about
-- 2.7 kB, and a key past that (pods with many labels) would make every insert
-- of its batch fail, so the batch could never be stored. SQLite has no such
-- limit. flow_key stays, whole, for reading and ordering.
CREATE TABLE flow_buckets (
  bucket_ms        BIGINT NOT NULL,
  bucket_start_ms  BIGINT NOT NULL,
  node             TEXT NOT NULL,
  flow_key_sha256  BYTEA NOT NULL,
  flow_key         TEXT NOT NULL,
  src_kind         TEXT NOT NULL,
  src_namespace    TEXT NOT NULL,
  src_name         TEXT NOT NULL,
  dst_kind         TEXT NOT NULL,
  dst_namespace    TEXT NOT NULL,
  dst_name         TEXT NOT NULL,
  action           TEXT NOT NULL,
  reporter         TEXT NOT NULL,
  -- TEXT, not JSON or JSONB: read back whole and parsed in the store, exactly
  -- as written, as in SQLite.
  record_json      TEXT NOT NULL,
  connections      BIGINT NOT NULL,
  packets          BIGINT NOT NULL,
  bytes            BIGINT NOT NULL,
  first_ms         BIGINT NOT NULL,
  last_ms          BIGINT NOT NULL,
  PRIMARY KEY (bucket_ms, bucket_start_ms, node, flow_key_sha256)
);
CREATE INDEX flow_buckets_time ON flow_buckets (bucket_start_ms);
CREATE INDEX flow_buckets_dst ON flow_buckets (dst_namespace, dst_name, bucket_start_ms);
CREATE INDEX flow_buckets_src ON flow_buckets (src_namespace, src_name, bucket_start_ms);
