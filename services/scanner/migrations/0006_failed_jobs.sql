-- A job that exhausted its attempts ends `failed` (never claimed again, waiting for an
-- operator: `gatehouse jobs retry|drop`); `dropped` is an operator's "give up", kept for
-- the record. Both are how the work went, like `running`: a replay rebuilds the job pending.
ALTER TABLE jobs DROP CONSTRAINT jobs_status_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_status_check
    CHECK (status IN ('pending', 'running', 'done', 'failed', 'dropped'));
ALTER TABLE license_jobs DROP CONSTRAINT license_jobs_status_check;
ALTER TABLE license_jobs ADD CONSTRAINT license_jobs_status_check
    CHECK (status IN ('pending', 'running', 'done', 'failed', 'dropped'));
