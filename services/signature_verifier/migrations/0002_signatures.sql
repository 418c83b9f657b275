-- Users, signing keys and the verification cache (signatures/).

-- Projection of user.created / user.email-added / user.email-verified (the gateway owns
-- users; verification needs their e-mails and whether each is verified).
CREATE TABLE users (
    login_key text PRIMARY KEY,
    login text NOT NULL,
    name text NOT NULL DEFAULT ''
);
CREATE TABLE user_emails (
    email_key text PRIMARY KEY,
    login_key text NOT NULL,
    email text NOT NULL,
    verified boolean NOT NULL DEFAULT false
);
CREATE INDEX user_emails_by_login ON user_emails (login_key);

-- Projection of gpgkey.added / gpgkey.revoked.
CREATE TABLE gpg_keys (
    id bigint PRIMARY KEY,
    login_key text NOT NULL,
    login text NOT NULL,
    key_id text NOT NULL,
    name text,
    armored text NOT NULL,
    added_at timestamptz NOT NULL,
    revoked_at timestamptz
);
CREATE INDEX gpg_keys_by_login ON gpg_keys (login_key, id) WHERE revoked_at IS NULL;
-- Every key id (primary and subkeys, upper-case 16 hex digits) of a key.
CREATE TABLE gpg_key_ids (
    key_id text NOT NULL,
    gpg_key bigint NOT NULL REFERENCES gpg_keys (id),
    PRIMARY KEY (key_id, gpg_key)
);

-- Projection of sshkey.added / sshkey.revoked.
CREATE TABLE ssh_keys (
    id bigint PRIMARY KEY,
    login_key text NOT NULL,
    login text NOT NULL,
    title text NOT NULL DEFAULT '',
    key text NOT NULL,
    fingerprint text NOT NULL,
    added_at timestamptz NOT NULL,
    revoked_at timestamptz
);
CREATE INDEX ssh_keys_by_login ON ssh_keys (login_key, id) WHERE revoked_at IS NULL;
CREATE INDEX ssh_keys_by_fingerprint ON ssh_keys (fingerprint) WHERE revoked_at IS NULL;

-- Key ids (GitHub's integer `id`) for gpg_keys and ssh_keys alike, allocated by the
-- handler before it publishes; the event carries the id, so a replay reuses it.
CREATE SEQUENCE key_store_ids;

-- The verification cache: projection of commit.verified. A commit without a row reads
-- `unsigned`, not stamped (verified_at NULL); so does a row whose reason is `unsigned`
-- (its key was revoked).
CREATE TABLE verifications (
    repo_key text NOT NULL,
    oid text NOT NULL,
    verified boolean NOT NULL,
    reason text NOT NULL,
    key_id text,
    key_store_id bigint,
    signer text,
    signature_kind text,
    verified_at timestamptz,
    event_id text NOT NULL,
    PRIMARY KEY (repo_key, oid)
);
CREATE INDEX verifications_by_key ON verifications (key_store_id) WHERE key_store_id IS NOT NULL;

-- Re-verification after a key upload / revocation, per key: what the key's GET shows.
CREATE TABLE key_backfills (
    key_store_id bigint PRIMARY KEY,
    state text NOT NULL CHECK (state IN ('pending', 'running', 'done')),
    done integer NOT NULL DEFAULT 0,
    total integer NOT NULL DEFAULT 0
);
