-- Workflow triggers (webhook.workflow-triggered from the fan-out): a candidate's build
-- workflow state, and the jobs that move a pending deployment to queued / error.

-- not_requested (trigger_build_workflow false: ready as it is), requested (the build
-- workflow is being called), triggered (it accepted: 2xx), failed (it could not be called).
ALTER TABLE release_candidates ADD COLUMN build_status text NOT NULL DEFAULT 'not_requested'
    CHECK (build_status IN ('not_requested', 'requested', 'triggered', 'failed'));

-- shared/jobs.py table_ddl('release_decision.workflow_jobs'): publishing the status change.
CREATE TABLE workflow_jobs (
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
CREATE INDEX workflow_jobs_open ON workflow_jobs (enqueued_seq) WHERE status <> 'done';
