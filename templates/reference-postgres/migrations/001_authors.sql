ALTER TABLE notes ADD COLUMN author text NOT NULL DEFAULT 'seed';
INSERT INTO notes (body, author) VALUES ('Added by migration 001', 'migrations');
