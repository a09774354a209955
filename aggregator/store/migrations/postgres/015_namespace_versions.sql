-- Each namespace's labels over time, so namespace selectors (a policy's, a
-- rule's) are evaluated with the labels a namespace had then: a row when the
-- aggregator first saw a namespace and one at each change of its labels;
-- labels_json NULL from its deletion.
CREATE TABLE namespace_versions (
  name        TEXT NOT NULL,
  from_ms     BIGINT NOT NULL,
  labels_json TEXT,
  PRIMARY KEY (name, from_ms)
);
