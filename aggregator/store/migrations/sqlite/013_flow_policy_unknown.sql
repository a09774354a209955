-- FlowRecord.policyUnknown in the flow identity: a Hubble connection seen only
-- through trace events (no event could say whether a policy decided it) is
-- another flow than the same connection decided by no policy, so flow_keys
-- gains policy_unknown (0 for every existing key: no record stored before had
-- it) and its UNIQUE constraint includes it. SQLite cannot change a table's
-- constraint in place: the table is rebuilt, every key keeping its id (flow
-- buckets name keys by id).
--
-- FlowEndpoint.reserved (the Cilium reserved identity) needs no column: it is
-- part of flow_endpoints.endpoint_json, written only when set, so every
-- existing endpoint is one without it, with the same JSON as before.
CREATE TABLE flow_keys_013 (
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
  policy_unknown    INTEGER NOT NULL DEFAULT 0,
  UNIQUE (src_id, dst_id, protocol, destination_port, action, reporter, policies_id, staged_id, unnamed_policy, policy_decided, policy_unknown)
);
INSERT INTO flow_keys_013 (id, src_id, dst_id, protocol, destination_port, action, reporter, policies_id, staged_id, unnamed_policy, policy_decided, policy_unknown)
  SELECT id, src_id, dst_id, protocol, destination_port, action, reporter, policies_id, staged_id, unnamed_policy, policy_decided, 0
  FROM flow_keys;
DROP TABLE flow_keys;
ALTER TABLE flow_keys_013 RENAME TO flow_keys;
CREATE INDEX flow_keys_dst ON flow_keys (dst_id);
