-- Licensing: the license policies (org default and project overrides) with every version,
-- waivers, the licensing view of each snapshot (which policy its categories were evaluated
-- with) and the re-evaluation jobs. Written by the licensing projection from events
-- (policy.changed, license.*, scan.queued/completed/deleted/relicensed), so `gatehouse
-- replay scanner` rebuilds them identically; only the jobs' lease columns are not.

-- The policy in force per scope: 'org', or 'project:<project id>'.
CREATE TABLE license_policies (
    scope text PRIMARY KEY,
    project_id text,
    version integer NOT NULL,
    -- NULL: a project override that was removed (the org policy applies).
    document jsonb,
    updated_at timestamptz NOT NULL,
    updated_by text NOT NULL,
    updated_seq bigint NOT NULL
);

-- Every version, so that a snapshot's categories can be explained with the policy they
-- were evaluated with.
CREATE TABLE license_policy_versions (
    scope text NOT NULL,
    version integer NOT NULL,
    document jsonb,
    at timestamptz NOT NULL,
    actor text NOT NULL,
    seq bigint NOT NULL,
    PRIMARY KEY (scope, version)
);

CREATE TABLE license_waivers (
    id text PRIMARY KEY,
    project_id text NOT NULL,
    license text NOT NULL,
    purl text,
    reason text NOT NULL,
    expires_at timestamptz NOT NULL,
    granted_at timestamptz NOT NULL,
    granted_by text NOT NULL,
    granted_seq bigint NOT NULL,
    revoked_at timestamptz,
    revoked_by text,
    revoke_reason text,
    revoked_seq bigint,
    -- license.waiver-expired applied (the waiver's end was announced).
    expired_seq bigint
);
CREATE INDEX license_waivers_project ON license_waivers (project_id, granted_seq DESC);
CREATE INDEX license_waivers_open ON license_waivers (expires_at)
    WHERE revoked_seq IS NULL AND expired_seq IS NULL;

-- Snapshots as licensing sees them: which is each project's latest, and the policy their
-- categories were last evaluated with.
CREATE TABLE license_scans (
    scan_id text PRIMARY KEY,
    project_id text NOT NULL,
    queued_seq bigint NOT NULL,
    completed_seq bigint,
    result_digest text,
    deleted boolean NOT NULL DEFAULT false,
    -- The evaluation in force: 'scan' (the scan's own) or 'relicensed'.
    evaluation_source text,
    org_policy_version integer,
    project_policy_version integer,
    project_override boolean,
    waiver_ids text[],
    evaluated_at timestamptz,
    evaluated_seq bigint,
    relicense_digest text
);
CREATE INDEX license_scans_latest ON license_scans (project_id, completed_seq DESC)
    WHERE completed_seq IS NOT NULL AND NOT deleted;

-- shared/jobs.py table_ddl('license_jobs'): re-evaluations of a snapshot's licenses.
CREATE TABLE license_jobs (
    id text PRIMARY KEY,
    kind text NOT NULL,
    payload jsonb NOT NULL DEFAULT '{}',
    status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'running', 'done')),
    enqueued_seq bigint NOT NULL,
    finished_seq bigint,
    attempts integer NOT NULL DEFAULT 0,
    lease_owner text,
    lease_until timestamptz,
    not_before timestamptz,
    last_error text
);
CREATE INDEX license_jobs_open ON license_jobs (enqueued_seq) WHERE status <> 'done';
