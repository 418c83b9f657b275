-- Idempotency-Key bookkeeping: the first response to a POST, per principal and key, kept for
-- 24 hours. Request state, not a projection: a replay does not touch it.

CREATE TABLE idempotency_keys (
    principal text NOT NULL,
    idempotency_key text NOT NULL,
    fingerprint text NOT NULL,
    running boolean NOT NULL,
    status integer,
    headers jsonb,
    body bytea,
    started_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (principal, idempotency_key)
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);
