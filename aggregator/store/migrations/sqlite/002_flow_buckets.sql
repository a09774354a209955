-- Flows pre-aggregated in time buckets: one row per (bucket, node, flow key),
-- never one row per flow. bucket_ms is the bucket's size: minute buckets for
-- recent data, rolled up into hour buckets as they age (retention settings).
CREATE TABLE flow_buckets (
  bucket_ms        INTEGER NOT NULL,
  bucket_start_ms  INTEGER NOT NULL,
  node             TEXT NOT NULL,
  flow_key         TEXT NOT NULL,
  src_kind         TEXT NOT NULL,
  src_namespace    TEXT NOT NULL,
  src_name         TEXT NOT NULL,
  dst_kind         TEXT NOT NULL,
  dst_namespace    TEXT NOT NULL,
  dst_name         TEXT NOT NULL,
  action           TEXT NOT NULL,
  reporter         TEXT NOT NULL,
  record_json      TEXT NOT NULL,
  connections      INTEGER NOT NULL,
  packets          INTEGER NOT NULL,
  bytes            INTEGER NOT NULL,
  first_ms         INTEGER NOT NULL,
  last_ms          INTEGER NOT NULL,
  PRIMARY KEY (bucket_ms, bucket_start_ms, node, flow_key)
);
CREATE INDEX flow_buckets_time ON flow_buckets (bucket_start_ms);
CREATE INDEX flow_buckets_dst ON flow_buckets (dst_namespace, dst_name, bucket_start_ms);
CREATE INDEX flow_buckets_src ON flow_buckets (src_namespace, src_name, bucket_start_ms);
