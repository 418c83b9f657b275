-- Who pulled and retention (issue 12).
--
-- Projections (rebuilt by `gatehouse replay scanner` from the events' envelopes):
-- * registry_pulls / registry_pull_stats: every download.recorded, and per artifact the
--   count and the newest download (what retention's keep_pulled_days looks at). Pull
--   records are kept for good: an incident asks about downloads of long ago.
-- * registry_retention_policies / registry_retention_deletions: retention.policy-set /
--   policy-deleted (and repository.deleted) and every retention.deleted.
--
-- Kept state (ServiceDefinition.unreplayable_tables: backed up, not replayed): the runs of
-- the policies, their planned items, and the job rows the run worker claims.

CREATE TABLE registry_pulls (
    seq bigint PRIMARY KEY,
    event_id text NOT NULL,
    artifact_id text NOT NULL,
    repo_id text NOT NULL,
    project_id text NOT NULL,
    digest text NOT NULL,
    purl text,
    -- The package the purl names ('pkg:pypi/demo', PEP 503 for pypi) and its version: a
    -- versionless lookup matches every version.
    purl_key text,
    purl_version text,
    principal text NOT NULL,
    address text NOT NULL,
    at timestamptz NOT NULL
);
-- The two lookups, newest first.
CREATE INDEX registry_pulls_digest ON registry_pulls (digest, seq DESC);
CREATE INDEX registry_pulls_purl ON registry_pulls (purl_key, seq DESC)
    WHERE purl_key IS NOT NULL;
CREATE INDEX registry_pulls_purl_version ON registry_pulls (purl_key, purl_version, seq DESC)
    WHERE purl_key IS NOT NULL;

CREATE TABLE registry_pull_stats (
    artifact_id text PRIMARY KEY,
    pull_count bigint NOT NULL,
    last_pulled_at timestamptz NOT NULL
);

CREATE TABLE registry_retention_policies (
    id text PRIMARY KEY,
    repo_id text NOT NULL,
    project_id text,
    name text NOT NULL,
    pattern text,
    keep_last integer,
    max_age_days integer,
    keep_pulled_days integer NOT NULL,
    enabled boolean NOT NULL,
    created_at timestamptz NOT NULL,
    created_by text NOT NULL,
    created_seq bigint NOT NULL,
    updated_at timestamptz NOT NULL,
    revision bigint NOT NULL
);
-- Names are unique per repository (case-insensitively), checked under the repository's
-- retention lock before the event is published; not a constraint, so that a projection
-- never refuses an event.
CREATE INDEX registry_retention_policies_name ON registry_retention_policies (repo_id, lower(name));
CREATE INDEX registry_retention_policies_order ON registry_retention_policies (created_seq);

CREATE TABLE registry_retention_deletions (
    artifact_id text PRIMARY KEY,
    policy_id text NOT NULL,
    repo_id text NOT NULL,
    digest text NOT NULL,
    path text NOT NULL,
    at timestamptz NOT NULL,
    seq bigint NOT NULL
);
CREATE INDEX registry_retention_deletions_policy ON registry_retention_deletions (policy_id);

-- Whether an artifact was promoted (the source of a copy): looked up for every candidate.
CREATE INDEX IF NOT EXISTS registry_artifacts_source_artifact
    ON registry_artifacts (source_artifact_id) WHERE source_artifact_id IS NOT NULL;

-- ---- kept state ------------------------------------------------------------------------
CREATE TABLE registry_retention_runs (
    id text PRIMARY KEY,
    repo_id text NOT NULL,
    policy_id text NOT NULL,
    trigger text NOT NULL,
    requested_by text NOT NULL,
    request_id text NOT NULL,
    status text NOT NULL DEFAULT 'queued'
        CHECK (status IN ('queued', 'running', 'done', 'failed')),
    total integer NOT NULL DEFAULT 0,
    deleted integer NOT NULL DEFAULT 0,
    skipped integer NOT NULL DEFAULT 0,
    bytes_freed bigint NOT NULL DEFAULT 0,
    protected_count integer NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL,
    started_at timestamptz,
    finished_at timestamptz,
    error text
);
CREATE INDEX registry_retention_runs_repo ON registry_retention_runs (repo_id, created_at DESC, id DESC);

-- A run's plan, made when it starts: what goes (guard NULL; outcome once its turn came)
-- and what the guards keep.
CREATE TABLE registry_retention_run_items (
    run_id text NOT NULL,
    position integer NOT NULL,
    artifact_id text NOT NULL,
    path text NOT NULL,
    name text,
    version text,
    digest text NOT NULL,
    size bigint NOT NULL,
    uploaded_at timestamptz NOT NULL,
    why text NOT NULL,
    guard text,
    outcome text CHECK (outcome IN ('deleted', 'skipped')),
    PRIMARY KEY (run_id, position)
);

-- shared/jobs.py table_ddl('scanner.registry_retention_jobs'): one job per real run.
CREATE TABLE registry_retention_jobs (
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
CREATE INDEX registry_retention_jobs_open ON registry_retention_jobs (enqueued_seq)
    WHERE status <> 'done';
