-- Registry artifacts as the release gate hears of them (artifact.* events from the scanner):
-- the commit each was built from (provenance), its scan on upload, and the block that
-- applies to it as artifact.blocked / artifact.unblocked last said. A commit whose artifacts
-- are blocked is NO_SHIP `artifact_blocked`; `?artifact=sha256:…` decides an artifact.
-- Written by the `decisions` projection only (replayed identically).
CREATE TABLE artifacts (
    id text PRIMARY KEY,
    digest text NOT NULL,
    repo_id text NOT NULL,
    project_id text NOT NULL,
    path text NOT NULL,
    purl text,
    -- Lower case, as the read models key repos and commits.
    prov_repo text,
    prov_commit text,
    scan_status text NOT NULL DEFAULT 'pending',
    scan_id text,
    -- The advisories naming the artifact's own purl: {advisory id: severity}.
    advisories jsonb NOT NULL DEFAULT '{}',
    block_id text,
    block_reason text,
    deleted boolean NOT NULL DEFAULT false,
    uploaded_seq bigint NOT NULL
);
CREATE INDEX artifacts_digest ON artifacts (digest) WHERE NOT deleted;
CREATE INDEX artifacts_blocked ON artifacts (prov_repo, prov_commit)
    WHERE block_id IS NOT NULL AND NOT deleted;
CREATE INDEX artifacts_repo ON artifacts (repo_id);

-- The scan of an SBOM an artifact carried (scan.queued with artifact_id) is tracked even
-- without a commit: an artifact without provenance is decided on it.
ALTER TABLE scans ALTER COLUMN repo DROP NOT NULL;
ALTER TABLE scans ALTER COLUMN commit DROP NOT NULL;
ALTER TABLE scans ADD COLUMN artifact_id text;
