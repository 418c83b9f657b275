-- Deliveries (deliveries/): every public event matched to the live subscriptions it concerns,
-- queued in the same transaction that moves the intake's checkpoint (so before the broker
-- message is acked), then sent in stream order per subscription, each attempt recorded.
-- All of it is kept state (how deliveries went, not what the stream says): a replay of the
-- intake re-applies events with ON CONFLICT DO NOTHING and never sends anything twice.

-- Each delivered event once, exactly as published (the body of standard/orbitalreg formats).
CREATE TABLE delivery_events (
    event_id text PRIMARY KEY,
    event_type text NOT NULL,
    stream_seq bigint NOT NULL,
    occurred_at timestamptz NOT NULL,
    envelope bytea NOT NULL
);
CREATE INDEX delivery_events_by_time ON delivery_events (occurred_at);

CREATE TABLE deliveries (
    -- uuid5(subscription id, event id): stable across retries, redeliveries and replays; it
    -- is the receivers' dedup key (webhook-id, X-Orbitalreg-Delivery).
    id uuid PRIMARY KEY,
    subscription_id text NOT NULL,
    event_id text NOT NULL REFERENCES delivery_events (event_id),
    event_type text NOT NULL,
    -- Order within a subscription: deliveries leave in stream order.
    stream_seq bigint NOT NULL,
    status text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'delivering', 'succeeded', 'retrying', 'dead', 'cancelled')),
    -- Attempts of the current series (a redelivery starts a new series; attempts keep
    -- their numbers across series in delivery_attempts).
    attempts integer NOT NULL DEFAULT 0,
    -- Attempts of every series: the number the next attempt is recorded under.
    attempts_total integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz,
    created_at timestamptz NOT NULL,
    finished_at timestamptz,
    -- A claim by a sender (lease), so two replicas never send one delivery at once.
    lease_owner text,
    lease_until timestamptz,
    UNIQUE (subscription_id, event_id)
);
CREATE INDEX deliveries_open ON deliveries (subscription_id, stream_seq)
    WHERE status IN ('pending', 'delivering', 'retrying');
-- The sender's timer: when the next retry is due.
CREATE INDEX deliveries_due ON deliveries (next_attempt_at)
    WHERE status IN ('pending', 'delivering', 'retrying');
-- Leases of deliveries being sent: when a dead sender's run can be taken over.
CREATE INDEX deliveries_leased ON deliveries (lease_until) WHERE status = 'delivering';
CREATE INDEX deliveries_listing ON deliveries (subscription_id, created_at DESC, id);

CREATE TABLE delivery_attempts (
    delivery_id uuid NOT NULL REFERENCES deliveries (id),
    attempt integer NOT NULL,
    at timestamptz NOT NULL,
    request_headers jsonb NOT NULL,
    response_status integer,
    -- The first 64 KiB of the response body at most.
    response_body text,
    response_truncated boolean NOT NULL DEFAULT false,
    latency_ms double precision,
    error text,
    PRIMARY KEY (delivery_id, attempt)
);

-- Per subscription: when its receiver started failing without a success since (the 5-day
-- rule disables it), and how many deliveries are dead.
CREATE TABLE subscription_health (
    subscription_id text PRIMARY KEY,
    failing_since timestamptz,
    last_success_at timestamptz,
    last_failure_at timestamptz,
    -- The subscription revision at which the sender disabled it (410, or failing too long):
    -- nothing more is sent or queued until the subscription changes (its webhook.disabled
    -- is applied, or it is enabled again).
    disabled_revision integer
);

-- The highest stream sequence the intake ever applied, kept across a replay of the intake
-- (which resets only its checkpoint): a replay re-reads old events but queues nothing for
-- them, so widening a subscription's patterns never sends it old events.
CREATE TABLE delivery_intake (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    high_water bigint NOT NULL
);
