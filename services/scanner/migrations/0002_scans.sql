-- Scans: the lifecycle of each upload, its log, the components and findings of every
-- succeeded scan (a "snapshot"), and the triage memory that carries VEX states forward.
-- Every row is written by the scans projection from events (and the result blobs they name),
-- so `gatehouse replay scanner` rebuilds these tables identically. Only the worker columns
-- of `jobs` (attempts, lease) are written outside the projection.

CREATE TABLE scans (
    id text PRIMARY KEY,
    project_id text NOT NULL,
    kind text NOT NULL CHECK (kind IN ('sbom', 'source')),
    status text NOT NULL
        CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    repo text,
    commit text,
    label text,
    source_digest text NOT NULL,
    source_name text NOT NULL DEFAULT '',
    size bigint NOT NULL,
    format text NOT NULL,
    spec_version text,
    sbom_digest text,
    result_digest text,
    progress jsonb,
    error jsonb,
    summary jsonb,
    created_at timestamptz NOT NULL,
    created_by text NOT NULL,
    correlation_id text,
    queued_event_id text NOT NULL,
    queued_seq bigint NOT NULL,
    started_at timestamptz,
    finished_at timestamptz,
    -- Stream sequence of scan.completed: snapshots are ordered by it.
    completed_seq bigint,
    deleted_at timestamptz,
    deleted_forced boolean,
    version bigint NOT NULL
);
CREATE INDEX scans_project ON scans (project_id, queued_seq DESC) WHERE deleted_at IS NULL;
CREATE INDEX scans_snapshots ON scans (project_id, completed_seq DESC)
    WHERE status = 'succeeded' AND deleted_at IS NULL;

CREATE TABLE scan_log (
    scan_id text NOT NULL,
    sequence bigint NOT NULL,
    at timestamptz NOT NULL,
    event text NOT NULL,
    stage text,
    level text NOT NULL CHECK (level IN ('info', 'error')),
    message text NOT NULL,
    PRIMARY KEY (scan_id, sequence)
);

CREATE TABLE components (
    scan_id text NOT NULL,
    ref text NOT NULL,
    name text NOT NULL,
    version text,
    purl text,
    ecosystem text,
    package text,
    type text NOT NULL,
    "group" text,
    scope text NOT NULL,
    direct boolean,
    licenses jsonb NOT NULL,
    license_expression text,
    license_category text NOT NULL,
    -- Most restrictive first: forbidden 0, unknown 1, conditional 2, allowed 3.
    license_rank smallint NOT NULL,
    PRIMARY KEY (scan_id, ref)
);
CREATE INDEX components_name ON components (scan_id, name, ref);

CREATE TABLE findings (
    id text PRIMARY KEY,
    scan_id text NOT NULL,
    project_id text NOT NULL,
    component_ref text NOT NULL,
    component_name text NOT NULL,
    component_version text,
    purl text,
    ecosystem text NOT NULL,
    package text NOT NULL,
    vulnerability_id text NOT NULL,
    advisory_ids text[] NOT NULL,
    aliases text[] NOT NULL,
    match text NOT NULL CHECK (match IN ('affected', 'not_evaluated')),
    match_reason text,
    severity text NOT NULL,
    -- CRITICAL 4, HIGH 3, MEDIUM 2, LOW 1, UNKNOWN 0: sorts and filters.
    severity_rank smallint NOT NULL,
    cvss_score real,
    epss double precision,
    epss_percentile double precision,
    state text NOT NULL,
    justification text,
    detail text NOT NULL DEFAULT '',
    version integer NOT NULL DEFAULT 1,
    cause text NOT NULL CHECK (cause IN ('scan', 'rematch')),
    discovered_at timestamptz NOT NULL,
    resolved_at timestamptz,
    resolved_reason text,
    -- Integer sort keys for keyset pagination (null scores sort lowest).
    cvss_key integer GENERATED ALWAYS AS (COALESCE(round(cvss_score * 10)::integer, -1)) STORED,
    epss_key bigint GENERATED ALWAYS AS (COALESCE(round(epss * 1e9)::bigint, -1)) STORED
);
CREATE INDEX findings_scan ON findings (scan_id, severity_rank DESC, id);
CREATE INDEX findings_component ON findings (scan_id, component_ref);
CREATE INDEX findings_project ON findings (project_id, package, vulnerability_id);

-- What a project decided about a (package, vulnerability): the next scan inherits it.
CREATE TABLE triage (
    project_id text NOT NULL,
    package text NOT NULL,
    vulnerability_id text NOT NULL,
    state text NOT NULL,
    justification text,
    detail text NOT NULL DEFAULT '',
    finding_id text NOT NULL,
    updated_at timestamptz NOT NULL,
    updated_seq bigint NOT NULL,
    PRIMARY KEY (project_id, package, vulnerability_id)
);

-- shared/jobs.py table_ddl('jobs'): scan and re-match work for the scan worker.
CREATE TABLE jobs (
    id text PRIMARY KEY,
    kind text NOT NULL,
    payload jsonb NOT NULL DEFAULT '{}',
    status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'running', 'done')),
    enqueued_seq bigint NOT NULL,
    finished_seq bigint,
    attempts integer NOT NULL DEFAULT 0,
    lease_owner text,
    lease_until timestamptz,
    not_before timestamptz,
    last_error text
);
CREATE INDEX jobs_open ON jobs (enqueued_seq) WHERE status <> 'done';
