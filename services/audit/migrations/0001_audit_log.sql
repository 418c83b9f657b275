-- The audit log: every event of the stream once, in stream order, hash-chained.
-- hash = SHA-256(prev_hash || convert_to(event, 'UTF8')); the first entry's prev_hash is 32
-- zero bytes. Rows are only ever inserted by the audit projection: UPDATE, DELETE and
-- TRUNCATE are refused, except the TRUNCATE of `gatehouse replay audit` (which rebuilds the
-- identical chain from the stream, the system of record).

-- Full-text document of an event: its string and number values. jsonb cannot hold \u0000,
-- so an event containing that escape is indexed as plain text instead of being refused.
CREATE FUNCTION search_document(event text) RETURNS tsvector
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN strpos(event, '\u0000') = 0
        THEN jsonb_to_tsvector('simple'::regconfig, event::jsonb, '["string", "numeric"]')
        ELSE to_tsvector('simple'::regconfig, event)
    END
$$;

CREATE TABLE entries (
    sequence bigint PRIMARY KEY,
    event_id text NOT NULL UNIQUE,
    type text NOT NULL,
    aggregate text NOT NULL,
    actor text NOT NULL,
    source text NOT NULL,
    occurred_at timestamptz NOT NULL,
    correlation_id text,
    causation_id text,
    -- The canonical JSON of the event envelope: exactly the bytes that were hashed.
    event text NOT NULL,
    prev_hash bytea NOT NULL CHECK (octet_length(prev_hash) = 32),
    hash bytea NOT NULL CHECK (octet_length(hash) = 32),
    search tsvector GENERATED ALWAYS AS (search_document(event)) STORED
);

CREATE INDEX entries_actor ON entries (actor, sequence);
CREATE INDEX entries_type ON entries (type, sequence);
CREATE INDEX entries_aggregate ON entries (aggregate, sequence);
CREATE INDEX entries_occurred_at ON entries (occurred_at);
CREATE INDEX entries_search ON entries USING gin (search);

CREATE FUNCTION refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' AND current_setting('gatehouse.replay', true) = 'on' THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'the audit log is append-only: % on %.% refused', TG_OP, TG_TABLE_SCHEMA,
        TG_TABLE_NAME
        USING ERRCODE = 'restrict_violation',
              HINT = 'rebuild it from the stream with `gatehouse replay audit`';
END
$$;

CREATE TRIGGER entries_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON entries
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
