-- Service accounts of a project and their tokens (issue 12). Projected from the
-- serviceaccount.* events like the rest of the read model: every column comes from an
-- event, so a replay from sequence 0 rebuilds identical rows. A deleted account keeps its row
-- (deleted_at): its tokens stay revoked and who-pulled can still name it.

CREATE TABLE service_accounts (
    id text PRIMARY KEY,
    project_id text NOT NULL,
    name text NOT NULL,
    description text NOT NULL,
    roles text[] NOT NULL,
    created_at timestamptz NOT NULL,
    created_by text NOT NULL,
    deleted_at timestamptz,
    deleted_by text,
    version bigint NOT NULL
);
-- A name is unique among the live accounts of its project; a deleted one frees it.
CREATE UNIQUE INDEX service_accounts_live_name
    ON service_accounts (project_id, name) WHERE deleted_at IS NULL;

CREATE TABLE service_account_tokens (
    id text PRIMARY KEY,
    service_account_id text NOT NULL REFERENCES service_accounts (id),
    project_id text NOT NULL,
    name text NOT NULL,
    prefix text NOT NULL,
    token_sha256 text NOT NULL UNIQUE,
    roles text[] NOT NULL,
    expires_at timestamptz,
    created_at timestamptz NOT NULL,
    created_by text NOT NULL,
    revoked_at timestamptz,
    revoked_by text,
    version bigint NOT NULL
);
CREATE INDEX service_account_tokens_by_account ON service_account_tokens (service_account_id, id);

-- When each token last authenticated, to the minute. Not an event (one per request would
-- flood the bus) and not the read model: the gateway's own kept state, written at most once
-- a minute per token. No foreign key: a replay truncates the read model, not this.
CREATE TABLE service_account_token_usage (
    token_id text PRIMARY KEY,
    last_used_at timestamptz NOT NULL
);
