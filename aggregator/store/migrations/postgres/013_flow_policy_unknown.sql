-- The PostgreSQL twin of migrations/sqlite/013_flow_policy_unknown.sql:
-- FlowRecord.policyUnknown in the flow identity. flow_keys gains
-- policy_unknown (false for every existing key: no record stored before had
-- it; a column with a constant default rewrites nothing) and its UNIQUE
-- constraint includes it, so a trace-only Hubble connection never shares a key
-- with the same connection decided by no policy. The old constraint's name
-- was chosen by the server (and truncated), so it is looked up.
--
-- FlowEndpoint.reserved needs no column: it is part of
-- flow_endpoints.endpoint_json (and so of its SHA-256), written only when set.
--
-- A replica older than this migration cannot add flow keys once it has run
-- (its ON CONFLICT names the old constraint): upgrade every replica together.
ALTER TABLE flow_keys ADD COLUMN policy_unknown BOOLEAN NOT NULL DEFAULT false;
DO $$
DECLARE
  old_name text;
BEGIN
  SELECT conname INTO STRICT old_name FROM pg_constraint
   WHERE conrelid = 'flow_keys'::regclass AND contype = 'u';
  EXECUTE format('ALTER TABLE flow_keys DROP CONSTRAINT %I', old_name);
END
$$;
ALTER TABLE flow_keys ADD CONSTRAINT flow_keys_identity
  UNIQUE (src_id, dst_id, protocol, destination_port, action, reporter, policies_id, staged_id, unnamed_policy, policy_decided, policy_unknown);
