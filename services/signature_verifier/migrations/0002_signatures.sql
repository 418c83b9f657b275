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
    -- The key as GitHub shows it (keys.parse_gpg_key, e-mails not yet marked verified):
    -- parsed once when the event is applied, not on every read.
    view jsonb NOT NULL,
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
-- Written by the verification worker (kept state, like the jobs that fill it).
CREATE TABLE key_backfills (
    key_store_id bigint PRIMARY KEY,
    state text NOT NULL CHECK (state IN ('pending', 'running', 'done')),
    done integer NOT NULL DEFAULT 0,
    total integer NOT NULL DEFAULT 0
);

-- The version of the key set (keys, their owners' e-mails): the stream sequence of the
-- last user / key event applied. Verification caches parsed keys per version.
CREATE TABLE key_set (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    version bigint NOT NULL
);

-- The signed commits of every mirror (signatures/index.py), written by indexing, not by a
-- projection: kept state rebuilt from the mirrors on disk (`gatehouse signatures
-- backfill-all`). `issuer` (OpenPGP key id / SSH fingerprint) is learnt when the signature
-- is first read; `checked_version` is the key-set version the commit was last verified
-- under (NULL: never verified, waiting in the queue).
CREATE TABLE signed_commits (
    repo_key text NOT NULL,
    oid text NOT NULL,
    kind text NOT NULL,
    issuer text,
    checked_version bigint,
    PRIMARY KEY (repo_key, oid)
);
CREATE INDEX signed_commits_by_issuer ON signed_commits (issuer) WHERE issuer IS NOT NULL;
CREATE INDEX signed_commits_unchecked ON signed_commits (repo_key, oid)
    WHERE checked_version IS NULL;

-- The mirrors indexed so far, where they are, and the ref tips they were indexed up to
-- (ref -> oid): the next index walks only what is new.
CREATE TABLE indexed_repos (
    repo_key text PRIMARY KEY,
    repo text NOT NULL,
    path text NOT NULL,
    tips jsonb NOT NULL DEFAULT '{}'
);

-- Verification work (shared/jobs.py): `verify` (a mirror's newly indexed commits),
-- `backfill` (gpgkey.added / sshkey.added), `revoke` (gpgkey.revoked / sshkey.revoked),
-- `restamp` (user.email-verified), `reverify_all` (`gatehouse signatures backfill-all`).
-- Kept state: jobs of key events are enqueued by the projection with ids derived from the
-- event (a replay finds them done), the others by indexing and by the operator.
CREATE TABLE signature_jobs (
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
CREATE INDEX signature_jobs_open ON signature_jobs (enqueued_seq) WHERE status <> 'done';

-- `gatehouse signatures backfill-all` runs: their progress, for the command's progress bar.
CREATE TABLE reverify_runs (
    id text PRIMARY KEY,
    state text NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'indexing', 'verifying', 'done', 'failed')),
    done integer NOT NULL DEFAULT 0,
    total integer NOT NULL DEFAULT 0,
    error text,
    started_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);
