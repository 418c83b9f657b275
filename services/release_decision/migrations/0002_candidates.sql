-- Release candidates, environments and deployments (the `candidates` projection).
-- Rows carry the stream sequence of the event that wrote them, so a replay rebuilds them
-- identically; times are the events' occurred_at, never the wall clock.

CREATE TABLE releases (
    id text PRIMARY KEY,
    project_id text NOT NULL,
    version text NOT NULL,
    created_at timestamptz NOT NULL,
    created_by text NOT NULL,
    created_seq bigint NOT NULL,
    UNIQUE (project_id, version)
);
CREATE INDEX releases_by_project ON releases (project_id, created_seq DESC);

CREATE TABLE release_candidates (
    id text PRIMARY KEY,
    release_id text NOT NULL REFERENCES releases (id),
    project_id text NOT NULL,
    version text NOT NULL,
    release_version text NOT NULL,
    rc_number integer NOT NULL,
    repo text NOT NULL,
    commit text NOT NULL,
    trigger_build_workflow boolean NOT NULL,
    created_at timestamptz NOT NULL,
    created_by text NOT NULL,
    created_seq bigint NOT NULL,
    UNIQUE (project_id, version)
);
CREATE INDEX release_candidates_by_release ON release_candidates (release_id, rc_number);

CREATE TABLE environments (
    id text PRIMARY KEY,
    project_id text NOT NULL,
    name text NOT NULL,
    protected boolean NOT NULL,
    workflow_url text,
    version integer NOT NULL,
    created_at timestamptz NOT NULL,
    created_by text NOT NULL,
    updated_at timestamptz NOT NULL,
    updated_by text NOT NULL,
    updated_seq bigint NOT NULL,
    UNIQUE (project_id, name)
);

CREATE TABLE deployments (
    id text PRIMARY KEY,
    project_id text NOT NULL,
    environment_id text NOT NULL REFERENCES environments (id),
    environment text NOT NULL,
    release_candidate_id text NOT NULL REFERENCES release_candidates (id),
    release_candidate_version text NOT NULL,
    release_version text NOT NULL,
    repo text NOT NULL,
    commit text NOT NULL,
    status text NOT NULL,
    workflow_url text,
    protected boolean NOT NULL,
    gate jsonb,
    requested boolean NOT NULL,
    created_at timestamptz NOT NULL,
    created_by text NOT NULL,
    created_seq bigint NOT NULL,
    updated_at timestamptz NOT NULL,
    updated_by text NOT NULL,
    updated_seq bigint NOT NULL
);
CREATE INDEX deployments_by_environment ON deployments (environment_id, created_seq DESC);
CREATE INDEX deployments_by_candidate ON deployments (environment_id, release_candidate_id, created_seq DESC);

-- Every status a deployment went through, in stream order (the audit of a deployment).
CREATE TABLE deployment_statuses (
    deployment_id text NOT NULL REFERENCES deployments (id),
    seq bigint NOT NULL,
    status text NOT NULL,
    previous_status text,
    cause text NOT NULL,
    superseded_by text,
    at timestamptz NOT NULL,
    actor text NOT NULL,
    PRIMARY KEY (deployment_id, seq)
);
