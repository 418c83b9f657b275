-- What `gatehouse backup` / `gatehouse restore` did, projected from backup.* events for
-- /health/backup. A projection: rebuilt by replay.

CREATE TABLE backups (
    backup_id text NOT NULL,
    kind text NOT NULL CHECK (kind IN ('completed', 'failed', 'restored')),
    archive text,
    sha256 text,
    size_bytes bigint,
    last_sequence bigint,
    events bigint,
    blobs bigint,
    tables text[] NOT NULL DEFAULT '{}',
    error text,
    started_at timestamptz,
    finished_at timestamptz NOT NULL,
    stream_sequence bigint NOT NULL,
    PRIMARY KEY (backup_id, kind)
);
CREATE INDEX backups_by_kind_time ON backups (kind, finished_at DESC);
