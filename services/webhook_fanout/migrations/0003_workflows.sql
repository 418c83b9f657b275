-- Workflow triggers (workflows/): an environment's deployment workflow and a project's build
-- workflow are each called through a fan-out-managed subscription row (workflow_kind set), so
-- ordering, retries, SSRF checks, attempts and the delivery log are the deliveries' own.
-- The intake never matches these rows: the workflows projection queues their deliveries.

ALTER TABLE subscriptions ADD COLUMN workflow_kind text
    CHECK (workflow_kind IN ('deployment', 'build'));
-- What a dispatch format needs besides the event: {"ref": …, "event_type": …}.
ALTER TABLE subscriptions ADD COLUMN workflow_options jsonb;
ALTER TABLE subscriptions DROP CONSTRAINT subscriptions_format_check;
ALTER TABLE subscriptions ADD CONSTRAINT subscriptions_format_check CHECK (format IN (
    'standard', 'orbitalreg', 'slack', 'cloudevents',
    'github_repository_dispatch', 'github_workflow_dispatch'));

-- The workflows projection: each trigger's configuration (environment.updated and
-- webhook.workflow-configured). Rebuilt by a replay.
CREATE TABLE workflow_targets (
    id text PRIMARY KEY,
    kind text NOT NULL CHECK (kind IN ('deployment', 'build')),
    project_id text NOT NULL,
    environment_id text,
    environment text,
    -- The environment's workflow_url, or the build workflow's URL (NULL: not called).
    url text,
    format text NOT NULL DEFAULT 'standard',
    ref text,
    dispatch_event_type text,
    secret_version integer NOT NULL DEFAULT 1,
    previous_valid_until timestamptz,
    updated_at timestamptz NOT NULL,
    created_seq bigint NOT NULL
);
CREATE UNIQUE INDEX workflow_targets_environment ON workflow_targets (environment_id)
    WHERE kind = 'deployment';
CREATE UNIQUE INDEX workflow_targets_build ON workflow_targets (project_id) WHERE kind = 'build';
CREATE INDEX workflow_targets_by_name ON workflow_targets (project_id, environment);

-- Kept state: each workflow delivery with what its outcome reports (queued once, never again,
-- even by a replay), and the outcomes still to announce (webhook.workflow-triggered).
CREATE TABLE workflow_deliveries (
    delivery_id uuid PRIMARY KEY,
    kind text NOT NULL,
    project_id text NOT NULL,
    trigger_event_id text NOT NULL,
    deployment_id text,
    candidate_id text
);

CREATE TABLE workflow_outcomes (
    delivery_id uuid NOT NULL REFERENCES workflow_deliveries (delivery_id),
    -- The attempt series it ends (attempts_total): a redelivery has its own outcome.
    series integer NOT NULL,
    outcome text NOT NULL CHECK (outcome IN ('delivered', 'failed')),
    error text,
    created_at timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz,
    PRIMARY KEY (delivery_id, series)
);
CREATE INDEX workflow_outcomes_unpublished ON workflow_outcomes (created_at)
    WHERE published_at IS NULL;

-- Kept state: the secret version last shown to a user (a rotation keeps the previous secret
-- signing only when someone can hold it).
CREATE TABLE workflow_secret_shown (
    id text PRIMARY KEY,
    version integer NOT NULL
);

-- A workflow delivery that ends (succeeded, or dead) leaves its outcome in the same
-- transaction as the sender's record of it: an outcome is never lost to a crash.
CREATE FUNCTION workflow_outcome() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status IN ('succeeded', 'dead') AND NEW.status IS DISTINCT FROM OLD.status
       AND EXISTS (SELECT 1 FROM webhook_fanout.workflow_deliveries w
                   WHERE w.delivery_id = NEW.id) THEN
        INSERT INTO webhook_fanout.workflow_outcomes (delivery_id, series, outcome)
        VALUES (NEW.id, NEW.attempts_total,
                CASE WHEN NEW.status = 'succeeded' THEN 'delivered' ELSE 'failed' END)
        ON CONFLICT DO NOTHING;
        PERFORM pg_notify('gatehouse_workflow_outcomes', '');
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER deliveries_workflow_outcome AFTER UPDATE OF status ON deliveries
    FOR EACH ROW EXECUTE FUNCTION workflow_outcome();
