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
