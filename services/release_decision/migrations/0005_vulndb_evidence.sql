-- The vulnerability database a decision was matched against. `vulndb_imports`: every OSV
-- vulndb.updated (the newest one is the database in force: its age is what
-- max_vulndb_age_hours limits); on each scan, what its last match (scan.completed, then
-- scan.rematched) used: 0 advisories is a match against an empty database.
CREATE TABLE vulndb_imports (
    seq bigint PRIMARY KEY,
    import_id text NOT NULL,
    digest text NOT NULL,
    imported_at timestamptz NOT NULL
);

ALTER TABLE scans ADD COLUMN vulndb_version bigint NOT NULL DEFAULT 0;
ALTER TABLE scans ADD COLUMN vulndb_advisories integer NOT NULL DEFAULT 0;
