-- The PostgreSQL twin of migrations/sqlite/008_flow_dictionary.sql: flow
-- buckets as ids and counts. Each endpoint (with its labels and service
-- account), each policy list and each distinct flow key is stored once, in a
-- dictionary table keyed by id; a bucket row holds the time, the node, the
-- key's id and the counts. Endpoints and policy lists are unique by the
-- SHA-256 of their JSON (a B-tree entry may not exceed about 2.7 kB; labels
-- can make the JSON far longer), as flow keys were.
--
-- The old rows are converted by the store right after this file runs, in the
-- same transaction (aggregator/store/postgres.ts, convertLegacyFlows), then
-- flow_buckets_legacy is dropped.
ALTER TABLE flow_buckets RENAME TO flow_buckets_legacy;
ALTER TABLE flow_buckets_legacy RENAME CONSTRAINT flow_buckets_pkey TO flow_buckets_legacy_pkey;
DROP INDEX flow_buckets_time;
DROP INDEX flow_buckets_dst;
DROP INDEX flow_buckets_src;

CREATE TABLE flow_endpoints (
  id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  endpoint_sha256  BYTEA NOT NULL UNIQUE,
  endpoint_json    TEXT NOT NULL,
  kind             TEXT NOT NULL,
  namespace        TEXT NOT NULL,
  name             TEXT NOT NULL,
  internet         BOOLEAN NOT NULL
);
CREATE INDEX flow_endpoints_name ON flow_endpoints (namespace, name);

CREATE TABLE flow_policy_lists (
  id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  policies_sha256  BYTEA NOT NULL UNIQUE,
  policies_json    TEXT NOT NULL
);

CREATE TABLE flow_keys (
  id                BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  src_id            BIGINT NOT NULL,
  dst_id            BIGINT NOT NULL,
  protocol          TEXT NOT NULL,
  destination_port  INTEGER NOT NULL,
  action            TEXT NOT NULL,
  reporter          TEXT NOT NULL,
  policies_id       BIGINT NOT NULL,
  staged_id         BIGINT NOT NULL,
  unnamed_policy    BOOLEAN NOT NULL,
  policy_decided    BOOLEAN NOT NULL,
  UNIQUE (src_id, dst_id, protocol, destination_port, action, reporter, policies_id, staged_id, unnamed_policy, policy_decided)
);
CREATE INDEX flow_keys_dst ON flow_keys (dst_id);

CREATE TABLE flow_buckets (
  bucket_start_ms  BIGINT NOT NULL,
  bucket_ms        BIGINT NOT NULL,
  node             TEXT NOT NULL,
  key_id           BIGINT NOT NULL,
  connections      BIGINT NOT NULL,
  packets          BIGINT NOT NULL,
  bytes            BIGINT NOT NULL,
  first_ms         BIGINT NOT NULL,
  last_ms          BIGINT NOT NULL,
  PRIMARY KEY (bucket_start_ms, bucket_ms, node, key_id)
);
CREATE INDEX flow_buckets_key ON flow_buckets (key_id, bucket_start_ms);
