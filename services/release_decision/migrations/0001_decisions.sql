-- Decisions: the evidence per (repo, commit) gathered from events (projects, scans and their
-- findings, signatures, branch heads, promotions, the decision policy), the current decision
-- of each commit with every revision it went through, and the jobs that announce each
-- revision as release.decided. Written by the `decisions` projection only, so `gatehouse
-- replay release-decision` rebuilds them identically (the jobs' lease columns aside).

-- Projects as the gateway announces them (other parts of this service read it too:
-- repo -> project, slug, badge visibility).
CREATE TABLE projects (
    id text PRIMARY KEY,
    slug text NOT NULL,
    name text NOT NULL DEFAULT '',
    repos text[] NOT NULL DEFAULT '{}',
    default_branch text NOT NULL DEFAULT 'main',
    badge text NOT NULL DEFAULT 'private',
    archived boolean NOT NULL DEFAULT false,
    created_seq bigint NOT NULL,
    created_at timestamptz NOT NULL
);
CREATE INDEX projects_repos ON projects USING gin (repos);

-- Scans that name a repo and a commit (a scan without them is evidence for no commit).
CREATE TABLE scans (
    scan_id text PRIMARY KEY,
    project_id text NOT NULL,
    repo text NOT NULL,
    commit text NOT NULL,
    label text,
    status text NOT NULL CHECK (status IN
        ('queued', 'running', 'succeeded', 'failed', 'cancelled', 'deleted')),
    queued_seq bigint NOT NULL,
    completed_seq bigint,
    sbom_digest text,
    result_digest text,
    forbidden_license_count integer NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL
);
CREATE INDEX scans_commit ON scans (repo, commit, queued_seq DESC);

-- Findings of the succeeded scans above, kept current by finding.* events.
CREATE TABLE findings (
    finding_id text PRIMARY KEY,
    scan_id text NOT NULL REFERENCES scans (scan_id) ON DELETE CASCADE,
    package text NOT NULL,
    vulnerability_id text NOT NULL,
    severity text NOT NULL,
    epss double precision,
    state text NOT NULL,
    affected boolean NOT NULL,
    -- advisory_withdrawn / no_longer_in_range: the finding is gone from its snapshot;
    -- not_in_new_snapshot: a later snapshot no longer has it (it still holds for this one).
    resolved_reason text,
    gone boolean NOT NULL DEFAULT false
);
CREATE INDEX findings_scan ON findings (scan_id);

-- The latest commit.verified per commit.
CREATE TABLE signatures (
    repo text NOT NULL,
    commit text NOT NULL,
    event_id text NOT NULL,
    verified boolean NOT NULL,
    reason text NOT NULL,
    key_id text,
    signer text,
    verified_at timestamptz NOT NULL,
    seq bigint NOT NULL,
    PRIMARY KEY (repo, commit)
);

-- The newest commit per branch (commit.pushed with head = true).
CREATE TABLE heads (
    repo text NOT NULL,
    branch text NOT NULL,
    commit text NOT NULL,
    pushed_at timestamptz NOT NULL,
    seq bigint NOT NULL,
    PRIMARY KEY (repo, branch)
);

-- The decision policy: 'org' or the project id, with its version and document.
CREATE TABLE policies (
    scope text PRIMARY KEY,
    project_id text,
    version integer NOT NULL,
    -- NULL: a project override that was removed (the org policy applies).
    document jsonb,
    updated_at timestamptz NOT NULL,
    updated_by text NOT NULL,
    seq bigint NOT NULL
);

CREATE TABLE promotions (
    id text PRIMARY KEY,
    snapshot_id text NOT NULL,
    project_id text NOT NULL,
    repo text NOT NULL,
    commit text NOT NULL,
    target_status text NOT NULL,
    release_label text,
    metadata jsonb NOT NULL DEFAULT '{}',
    decision text NOT NULL,
    blockers jsonb NOT NULL DEFAULT '[]',
    policy_version integer NOT NULL DEFAULT 0,
    override jsonb,
    promoted_by text NOT NULL,
    promoted_at timestamptz NOT NULL,
    seq bigint NOT NULL,
    UNIQUE (snapshot_id, target_status)
);
CREATE INDEX promotions_repo ON promotions (repo, seq DESC);
CREATE INDEX promotions_project ON promotions (project_id, seq DESC);

-- The current decision of each commit that has evidence.
CREATE TABLE decisions (
    repo text NOT NULL,
    commit text NOT NULL,
    project_id text,
    revision integer NOT NULL,
    decision text NOT NULL CHECK (decision IN ('SHIP', 'NO_SHIP')),
    blockers jsonb NOT NULL,
    blocker_total integer NOT NULL,
    policy_version integer NOT NULL,
    policy_scope text NOT NULL,
    evidence jsonb NOT NULL,
    evaluated_at timestamptz NOT NULL,
    cause_event_id text NOT NULL,
    cause_event_type text NOT NULL,
    seq bigint NOT NULL,
    PRIMARY KEY (repo, commit)
);
CREATE INDEX decisions_project ON decisions (project_id);

-- Every revision of every decision, with the event that caused it.
CREATE TABLE decision_history (
    repo text NOT NULL,
    commit text NOT NULL,
    revision integer NOT NULL,
    project_id text,
    decision text NOT NULL,
    blockers jsonb NOT NULL,
    blocker_total integer NOT NULL,
    policy_version integer NOT NULL,
    policy_scope text NOT NULL,
    evidence jsonb NOT NULL,
    evaluated_at timestamptz NOT NULL,
    cause_event_id text NOT NULL,
    cause_event_type text NOT NULL,
    seq bigint NOT NULL,
    PRIMARY KEY (repo, commit, revision)
);
CREATE INDEX decision_history_repo ON decision_history (repo, seq DESC, commit, revision DESC);
CREATE INDEX decision_history_as_of ON decision_history (repo, commit, evaluated_at);

-- Jobs that publish release.decided (one per revision); the event finishes its job.
CREATE TABLE decision_jobs (
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
CREATE INDEX decision_jobs_open ON decision_jobs (enqueued_seq) WHERE status <> 'done';
