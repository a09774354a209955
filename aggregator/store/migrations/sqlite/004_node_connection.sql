-- The stream that last said Hello for the node: only that stream's end marks it disconnected
-- (with several replicas, an old stream may end on one after the agent reconnected to another).
ALTER TABLE nodes ADD COLUMN connection_id TEXT NOT NULL DEFAULT '';
