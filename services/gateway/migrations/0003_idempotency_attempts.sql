-- The gateway process running an attempt (its instance id): a retry finds out at once whether
-- that process is still alive (it holds an advisory lock named after its instance id, which
-- PostgreSQL releases when the process dies), instead of waiting for the attempt to age.
ALTER TABLE idempotency_keys ADD COLUMN attempt_by text;
