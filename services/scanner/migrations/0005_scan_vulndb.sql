-- How many active advisories a snapshot's last match (scan.completed, then scan.rematched)
-- was made against: a snapshot matched against an empty database is matched again by the
-- next OSV import whatever packages that import names (its "no finding" meant nothing).
ALTER TABLE scans ADD COLUMN vulndb_advisories integer NOT NULL DEFAULT 0;
