-- Each pod's labels and service account over time, so network access judges a
-- pod by the labels it had then (a label change can take it out of a policy's
-- selector mid-interval): a row from when the aggregator first saw the pod, and
-- one at each change. pod_history keeps the latest beside when it came and went;
-- a pod recorded before this table has no rows until its labels change, then
-- its earlier labels get a row from its first sighting.
CREATE TABLE pod_label_versions (
  uid             TEXT NOT NULL,
  from_ms         BIGINT NOT NULL,
  labels_json     TEXT NOT NULL,
  service_account TEXT NOT NULL,
  PRIMARY KEY (uid, from_ms)
);
