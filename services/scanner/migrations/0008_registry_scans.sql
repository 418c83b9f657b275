-- Scan on upload and the blocks' effect on stored artifacts (services/scanner/registry/
-- scanning.py, block_state.py). Written by the registry projection from artifact.* and
-- block.* events, so a replay rebuilds them (the jobs' lease columns aside).

-- The package an artifact is, keyed as blocks key theirs ('pkg:pypi/evil-pkg'): a purl block
-- finds the stored artifacts it names by it. Existing pypi rows: the PEP 503 name.
ALTER TABLE registry_artifacts ADD COLUMN purl_key text;
UPDATE registry_artifacts SET purl_key = 'pkg:pypi/' || normalized_name
    WHERE format = 'pypi' AND normalized_name IS NOT NULL;
CREATE INDEX registry_artifacts_purl_key ON registry_artifacts (purl_key)
    WHERE deleted_seq IS NULL;

-- What the scan on upload found (artifact.scanned): the scan of the SBOM the artifact
-- carried, the advisories naming its own purl and the malicious ones among them.
ALTER TABLE registry_artifacts ADD COLUMN scan_id text;
ALTER TABLE registry_artifacts ADD COLUMN advisories text[] NOT NULL DEFAULT '{}';
ALTER TABLE registry_artifacts ADD COLUMN malicious text[] NOT NULL DEFAULT '{}';

-- The block that applies to the artifact as artifact.blocked / artifact.unblocked last said
-- (the release gate's view), and the sequence of that event (0: never said).
ALTER TABLE registry_artifacts ADD COLUMN blocked_by text;
ALTER TABLE registry_artifacts ADD COLUMN block_state_seq bigint NOT NULL DEFAULT 0;
CREATE INDEX registry_artifacts_blocked_by ON registry_artifacts (blocked_by)
    WHERE blocked_by IS NOT NULL;

-- Every block a malicious-package advisory ever made (lifted ones too): an admin who lifts
-- one (a false positive) is not overruled by the next scan or import of the same advisory.
CREATE TABLE registry_advisory_blocks (
    block_id text PRIMARY KEY,
    advisory_id text NOT NULL,
    purl_key text NOT NULL,
    created_seq bigint NOT NULL,
    lifted_seq bigint
);

-- shared/jobs.py table_ddl('scanner.registry_jobs'): scans on upload (artifact_scan), the
-- effect of a block change on stored artifacts (blocks), an OSV import's malicious-package
-- advisories against stored artifacts (malware_sweep), a block's expiry (block_expiry).
CREATE TABLE registry_jobs (
    id text PRIMARY KEY,
    kind text NOT NULL,
    payload jsonb NOT NULL DEFAULT '{}',
    status text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'running', 'done', 'failed', 'dropped')),
    enqueued_seq bigint NOT NULL,
    finished_seq bigint,
    attempts integer NOT NULL DEFAULT 0,
    lease_owner text,
    lease_until timestamptz,
    not_before timestamptz,
    last_error text
);
CREATE INDEX registry_jobs_open ON registry_jobs (enqueued_seq) WHERE status <> 'done';
