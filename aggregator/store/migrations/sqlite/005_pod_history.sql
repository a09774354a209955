-- Every pod seen in the cluster and when, so an inventory covers the endpoints
-- in scope at any time during its interval, deleted ones included.
CREATE TABLE pod_history (
  uid           TEXT PRIMARY KEY,
  namespace     TEXT NOT NULL,
  name          TEXT NOT NULL,
  labels_json   TEXT NOT NULL,
  service_account TEXT NOT NULL,
  host_network  INTEGER NOT NULL,
  first_seen_ms INTEGER NOT NULL,
  last_seen_ms  INTEGER NOT NULL,
  deleted_ms    INTEGER
);
CREATE INDEX pod_history_time ON pod_history (first_seen_ms, deleted_ms);
