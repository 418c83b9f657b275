-- Senders lease a subscription, not its deliveries: only the head of a subscription's queue
-- is ever in flight, so one row per subscription being sent to says who sends and which
-- stretch of its queue (stream sequences first_seq..last_seq) is under way. A claim costs a
-- few rows whatever the run's length, and a delivery row is written once per attempt (its
-- outcome), not also when it is claimed.
CREATE TABLE subscription_leases (
    subscription_id text PRIMARY KEY,
    owner text NOT NULL,
    until timestamptz NOT NULL,
    first_seq bigint NOT NULL,
    last_seq bigint NOT NULL
);

-- Deliveries claimed under the old per-delivery leases go back to their queue.
UPDATE deliveries SET status = CASE WHEN attempts > 0 THEN 'retrying' ELSE 'pending' END
WHERE status = 'delivering';
ALTER TABLE deliveries DROP COLUMN lease_owner, DROP COLUMN lease_until;
