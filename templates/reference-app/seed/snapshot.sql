-- The schema and rows baked into seed/snapshot.db (kept for review; rebuild
-- the snapshot with: sqlite3 seed/snapshot.db < seed/snapshot.sql).
CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
INSERT INTO items (id, name) VALUES (1, 'Snapshot row: Ada'), (2, 'Snapshot row: Grace'), (3, 'Snapshot row: Linus');
