-- Policy diffs and tamper alerts look up the latest stored version of each
-- changed object; without this index each lookup scanned the whole table, so an
-- audit webhook batch of n changes cost n scans.
CREATE INDEX audit_events_object ON audit_events (api_group, resource, namespace, name, stage_ms);
