-- Policy diffs and tamper alerts look up the latest stored version of each
-- changed object; without this index each lookup scanned the whole table, so an
-- audit webhook batch of n changes cost n scans.
CREATE INDEX audit_events_object ON audit_events (api_group, resource, namespace, name, stage_ms, audit_id);
-- Time ranges are read a page at a time in (stage_ms, audit_id) order, each page
-- starting where the last one ended.
DROP INDEX audit_events_time;
CREATE INDEX audit_events_time ON audit_events (stage_ms, audit_id);
