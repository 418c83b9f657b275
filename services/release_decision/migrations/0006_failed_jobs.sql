-- A job that exhausted its attempts ends `failed` (never claimed again, waiting for an
-- operator: `gatehouse jobs retry|drop`); `dropped` is an operator's "give up", kept for
-- the record. Both are how the work went, like `running`: a replay rebuilds the job pending.
ALTER TABLE decision_jobs DROP CONSTRAINT decision_jobs_status_check;
ALTER TABLE decision_jobs ADD CONSTRAINT decision_jobs_status_check
    CHECK (status IN ('pending', 'running', 'done', 'failed', 'dropped'));
ALTER TABLE scm_jobs DROP CONSTRAINT scm_jobs_status_check;
ALTER TABLE scm_jobs ADD CONSTRAINT scm_jobs_status_check
    CHECK (status IN ('pending', 'running', 'done', 'failed', 'dropped'));
