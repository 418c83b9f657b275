-- Git mirrors (mirrors/): what was configured, projected from mirror.configured /
-- mirror.removed, and how the fetches went (operational state the fetcher writes).

-- Projection of mirror.* (repo_key = lower(repo), as every read model keys repos).
CREATE TABLE mirrors (
    repo_key text PRIMARY KEY,
    repo text NOT NULL,
    project_id text NOT NULL,
    clone_url text NOT NULL,
    -- NULL: the remote's HEAD.
    default_branch text,
    -- The name of a token in the settings, never its value.
    credential text,
    configured_seq bigint NOT NULL
);

-- Written by the fetcher, not by a projection: how the last fetch went. A replay keeps it
-- (ServiceDefinition.unreplayable_tables), the mirror on disk being state as well.
CREATE TABLE mirror_status (
    repo_key text PRIMARY KEY,
    state text NOT NULL DEFAULT 'never_fetched'
        CHECK (state IN ('never_fetched', 'queued', 'fetching', 'ok', 'failed')),
    started_at timestamptz,
    finished_at timestamptz,
    succeeded_at timestamptz,
    last_error text,
    progress jsonb,
    -- The default branch as the last successful fetch resolved it, and its head.
    resolved_default_branch text,
    head text
);

-- Fetches to run (shared/jobs.py): queued by the mirrors projection on mirror.configured,
-- mirror.sync-requested and commit.pushed of a mirrored repo, and by the interval timer.
CREATE TABLE mirror_jobs (
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
CREATE INDEX mirror_jobs_open ON mirror_jobs (enqueued_seq) WHERE status <> 'done';
CREATE INDEX mirror_jobs_repo ON mirror_jobs ((payload->>'repo_key')) WHERE status IN ('pending', 'running');
