-- One name and one type for every column that holds JSON, in both dialects:
-- TEXT named *_json, written and read back whole and parsed in the store, as
-- SQLite has always had them and as flow_buckets.record_json,
-- report_runs.inputs_json/result_json, audit_events.event_json and
-- pod_history.labels_json already were here. Two columns were different:
--
-- nodes.labels was JSONB "so a label selector can be answered in SQL", but no
-- query ever looked inside it (the store reads labels back whole); JSONB also
-- reorders keys and rewrites spacing. It becomes labels_json TEXT, holding
-- the labels JSONB printed them (the same object).
--
-- benchmark_runs.report was JSON, which keeps the text as the agent sent it;
-- as TEXT it keeps the same text (json::text is the text stored), so the
-- report reads back byte for byte as before. This rewrites benchmark_runs once.
ALTER TABLE nodes RENAME COLUMN labels TO labels_json;
ALTER TABLE nodes ALTER COLUMN labels_json DROP DEFAULT;
ALTER TABLE nodes ALTER COLUMN labels_json TYPE TEXT USING labels_json::text;
ALTER TABLE nodes ALTER COLUMN labels_json SET DEFAULT '{}';

ALTER TABLE benchmark_runs RENAME COLUMN report TO report_json;
ALTER TABLE benchmark_runs ALTER COLUMN report_json TYPE TEXT USING report_json::text;
