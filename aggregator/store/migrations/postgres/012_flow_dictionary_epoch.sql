-- The flow dictionaries' prune epoch (issue 13). Writers keep flow key ids in
-- memory and read this row FOR SHARE in each transaction that writes flow
-- buckets; retention's pruning of unused dictionary entries (postgres.ts,
-- pruneFlowDictionaries) raises the epoch under the row's exclusive lock, so
-- it waits for the writers in flight, holds new ones off until it commits,
-- and every replica then forgets the ids it kept. One row.
CREATE TABLE flow_dictionary_epoch (
  id     INTEGER PRIMARY KEY CHECK (id = 1),
  epoch  BIGINT NOT NULL
);
INSERT INTO flow_dictionary_epoch (id, epoch) VALUES (1, 0);
