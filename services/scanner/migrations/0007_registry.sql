-- The artifact registry's metadata: repositories, artifacts (with the tombstones of deleted
-- ones: PyPI never takes a file name twice), blocks and the last change of the blocks.
-- Written by the registry projection from repository.*, artifact.* and block.* events, so
-- `gatehouse replay scanner` rebuilds them identically (times, actors and sequences come
-- from the events' envelopes).

CREATE TABLE registry_repositories (
    id text PRIMARY KEY,
    project_id text NOT NULL,
    slug text NOT NULL,
    format text NOT NULL,
    visibility text NOT NULL,
    quarantine_new boolean NOT NULL,
    description text NOT NULL,
    quota_bytes bigint,
    quota_artifacts bigint,
    used_bytes bigint NOT NULL DEFAULT 0,
    artifact_count bigint NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL,
    created_by text NOT NULL,
    created_seq bigint NOT NULL,
    updated_at timestamptz NOT NULL,
    -- The ETag: the sequence of the last repository.created / repository.updated.
    revision bigint NOT NULL,
    -- The last change of the repository's artifacts (the simple index's ETag).
    artifacts_seq bigint NOT NULL
);
CREATE UNIQUE INDEX registry_repositories_slug ON registry_repositories (project_id, slug);
CREATE INDEX registry_repositories_order ON registry_repositories (created_seq);

CREATE TABLE registry_artifacts (
    id text PRIMARY KEY,
    repo_id text NOT NULL,
    project_id text NOT NULL,
    format text NOT NULL,
    path text NOT NULL,
    kind text NOT NULL,
    name text,
    -- PEP 503 for pypi (the simple index's key), lower-cased for generic.
    normalized_name text,
    version text,
    purl text,
    digest text NOT NULL,
    size bigint NOT NULL,
    metadata_digest text,
    requires_python text,
    sbom_digests text[] NOT NULL DEFAULT '{}',
    provenance jsonb,
    uploaded_by text NOT NULL,
    uploaded_at timestamptz NOT NULL,
    uploaded_seq bigint NOT NULL,
    scan_status text NOT NULL DEFAULT 'pending',
    quarantined boolean NOT NULL,
    -- Promotion: the artifact this one is a copy of.
    source_artifact_id text,
    deleted_seq bigint,
    deleted_reason text
);
-- One live artifact per path; deleted ones stay as tombstones.
CREATE UNIQUE INDEX registry_artifacts_live_path ON registry_artifacts (repo_id, path)
    WHERE deleted_seq IS NULL;
CREATE INDEX registry_artifacts_any_path ON registry_artifacts (repo_id, path);
CREATE INDEX registry_artifacts_name ON registry_artifacts (repo_id, normalized_name)
    WHERE deleted_seq IS NULL;
CREATE INDEX registry_artifacts_order ON registry_artifacts (uploaded_seq)
    WHERE deleted_seq IS NULL;
CREATE INDEX registry_artifacts_quarantined ON registry_artifacts (uploaded_seq)
    WHERE quarantined AND deleted_seq IS NULL;
CREATE INDEX registry_artifacts_digest ON registry_artifacts (digest);

CREATE TABLE registry_blocks (
    id text PRIMARY KEY,
    purl text,
    -- The package the purl names ('pkg:pypi/evil-pkg'): the index fetches look up.
    purl_key text,
    versions text,
    digest text,
    name_pattern text,
    format text,
    reason text NOT NULL,
    customer_message text NOT NULL,
    blocked_until timestamptz,
    source text NOT NULL,
    advisory_id text,
    created_at timestamptz NOT NULL,
    created_by text NOT NULL,
    created_seq bigint NOT NULL,
    updated_at timestamptz NOT NULL,
    revision bigint NOT NULL,
    hits bigint NOT NULL DEFAULT 0
);
CREATE INDEX registry_blocks_digest ON registry_blocks (digest) WHERE digest IS NOT NULL;
CREATE INDEX registry_blocks_purl ON registry_blocks (purl_key) WHERE purl_key IS NOT NULL;
CREATE INDEX registry_blocks_order ON registry_blocks (created_seq);

-- One row: the sequence of the last block.created / updated / deleted (a block changes
-- whether index files are available, so it is part of every index's ETag).
CREATE TABLE registry_block_changes (
    id smallint PRIMARY KEY CHECK (id = 1),
    seq bigint NOT NULL
);
