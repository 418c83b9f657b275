-- Webhook subscriptions (subscriptions/): projection of webhook.created / updated / deleted /
-- secret-rotated / disabled, and their secrets (kept state: never on the bus).

CREATE TABLE subscriptions (
    id text PRIMARY KEY,
    url text NOT NULL,
    -- Exact event types and `<domain>.*` patterns.
    events text[] NOT NULL,
    project_id text,
    description text NOT NULL DEFAULT '',
    enabled boolean NOT NULL,
    format text NOT NULL CHECK (format IN ('standard', 'orbitalreg', 'slack', 'cloudevents')),
    disabled_reason text,
    secret_version integer NOT NULL,
    -- Until when the previous secret version still signs (a rotation's grace period).
    previous_valid_until timestamptz,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    revision integer NOT NULL,
    deleted_at timestamptz,
    -- The stream sequence of the webhook.created: deliveries start after it.
    created_seq bigint NOT NULL
);
CREATE INDEX subscriptions_live ON subscriptions (id) WHERE deleted_at IS NULL;

-- Written by the command handlers before they publish (kept state, backed up like the
-- release signing key): every version of every subscription's secret.
CREATE TABLE subscription_secrets (
    subscription_id text NOT NULL,
    version integer NOT NULL,
    secret text NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (subscription_id, version)
);
