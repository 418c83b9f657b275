-- GitHub and GitLab integration (the scm part): webhook deliveries handled (de-duplication),
-- pull / merge requests and their head commits, the latest decision of each commit as
-- release.decided announced it, what was posted to GitHub (check runs, the one comment per
-- pull request) and the posting jobs. Written by the `scm` projection from events, so a
-- replay rebuilds them identically; only the jobs' lease columns are not.

CREATE TABLE scm_deliveries (
    provider text NOT NULL,
    delivery_id text NOT NULL,
    event text NOT NULL,
    action text,
    repo text,
    outcome text NOT NULL,
    reason text,
    published integer NOT NULL,
    received_at timestamptz NOT NULL,
    event_id text NOT NULL,
    seq bigint NOT NULL,
    -- The SHA-256 of the body as received: the delivery id header is not covered by
    -- GitHub's signature (and GitLab's token covers nothing), so a captured body sent again
    -- under a new id would otherwise be recorded again (an old push moving a branch's HEAD
    -- back).
    body_digest text,
    PRIMARY KEY (provider, delivery_id)
);
CREATE INDEX scm_deliveries_by_body ON scm_deliveries (provider, body_digest)
    WHERE body_digest IS NOT NULL;

CREATE TABLE scm_pull_requests (
    provider text NOT NULL,
    repo text NOT NULL,
    number integer NOT NULL,
    state text NOT NULL,
    head_sha text NOT NULL,
    head_branch text NOT NULL,
    base_branch text NOT NULL,
    title text NOT NULL,
    url text,
    updated_at timestamptz NOT NULL,
    updated_seq bigint NOT NULL,
    -- When GitHub says the pull request last changed (pull_request.updated_at): deliveries
    -- may arrive out of order, and an older synchronize must not move the recorded head back
    -- (its decision would be posted as the pull request's). Null when not known.
    changed_at timestamptz,
    PRIMARY KEY (provider, repo, number)
);
CREATE INDEX scm_pull_requests_head ON scm_pull_requests (repo, head_sha) WHERE state = 'open';

-- The newest release.decided of each commit (what a post shows).
CREATE TABLE scm_decisions (
    repo text NOT NULL,
    commit text NOT NULL,
    revision integer NOT NULL,
    decision text NOT NULL,
    blockers jsonb NOT NULL,
    blocker_total integer NOT NULL,
    policy_version integer NOT NULL,
    evaluated_at timestamptz NOT NULL,
    event_id text NOT NULL,
    seq bigint NOT NULL,
    PRIMARY KEY (repo, commit)
);

-- The one Gatehouse comment of each GitHub pull request: created once, then edited.
CREATE TABLE scm_comments (
    repo text NOT NULL,
    number integer NOT NULL,
    comment_id bigint NOT NULL,
    commit text NOT NULL,
    revision integer NOT NULL,
    decision text NOT NULL,
    body_digest text NOT NULL,
    posted_at timestamptz NOT NULL,
    seq bigint NOT NULL,
    PRIMARY KEY (repo, number)
);

-- The check run showing each commit's decision (the newest one posted).
CREATE TABLE scm_check_runs (
    repo text NOT NULL,
    commit text NOT NULL,
    check_run_id bigint NOT NULL,
    revision integer NOT NULL,
    decision text NOT NULL,
    posted_at timestamptz NOT NULL,
    seq bigint NOT NULL,
    PRIMARY KEY (repo, commit)
);

-- shared/jobs.py table_ddl('scm_jobs'): posting a decision to GitHub.
CREATE TABLE scm_jobs (
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
CREATE INDEX scm_jobs_open ON scm_jobs (enqueued_seq) WHERE status <> 'done';
