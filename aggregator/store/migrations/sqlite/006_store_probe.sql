-- Scratch space for the readiness probe: /readyz writes a page-sized row here
-- and deletes it, so a database that cannot write (disk full) is not ready.
CREATE TABLE store_probe (
  id INTEGER PRIMARY KEY,
  pad BLOB NOT NULL
);
