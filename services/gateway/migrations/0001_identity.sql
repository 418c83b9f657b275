-- The gateway's read model: projects, API keys, users and their e-mail addresses.
-- Every column is derived from events (envelope occurred_at / actor, stream sequence), never
-- from now() or random defaults, so a replay from sequence 0 rebuilds identical rows.

CREATE TABLE projects (
    id text PRIMARY KEY,
    slug text NOT NULL UNIQUE,
    name text NOT NULL,
    description text NOT NULL,
    default_branch text NOT NULL,
    repos text[] NOT NULL,
    badge text NOT NULL,
    created_at timestamptz NOT NULL,
    created_by text NOT NULL,
    updated_at timestamptz NOT NULL,
    archived_at timestamptz,
    -- Stream sequence of the project's last event: the ETag.
    version bigint NOT NULL
);

CREATE TABLE api_keys (
    id text PRIMARY KEY,
    name text NOT NULL,
    prefix text NOT NULL,
    token_sha256 text NOT NULL UNIQUE,
    roles text[] NOT NULL,
    project_id text,
    expires_at timestamptz,
    bootstrap boolean NOT NULL,
    created_at timestamptz NOT NULL,
    created_by text NOT NULL,
    revoked_at timestamptz,
    revoked_by text,
    version bigint NOT NULL
);
CREATE INDEX api_keys_by_project ON api_keys (project_id, id);
CREATE INDEX api_keys_bootstrap ON api_keys (id) WHERE bootstrap;

CREATE TABLE users (
    login text PRIMARY KEY,
    -- lower(login): logins are unique without regard to case, as on GitHub.
    login_key text NOT NULL UNIQUE,
    name text NOT NULL,
    created_at timestamptz NOT NULL,
    created_by text NOT NULL,
    updated_at timestamptz NOT NULL,
    version bigint NOT NULL
);

CREATE TABLE user_emails (
    -- lower(email): an address belongs to at most one user.
    email_key text PRIMARY KEY,
    login text NOT NULL REFERENCES users (login),
    email text NOT NULL,
    verified boolean NOT NULL,
    added_at timestamptz NOT NULL,
    verified_at timestamptz,
    version bigint NOT NULL
);
CREATE INDEX user_emails_by_login ON user_emails (login, email_key);
