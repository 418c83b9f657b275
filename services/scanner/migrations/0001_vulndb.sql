-- The vulnerability database: OSV advisories and EPSS scores, as the `vulndb` projection
-- applies `vulndb.updated` events. Every row records the stream `sequence` of the import
-- that last changed it: the scanner's in-memory matcher follows the table by that column.

CREATE TABLE advisories (
    id text PRIMARY KEY,
    modified timestamptz NOT NULL,
    published timestamptz,
    withdrawn timestamptz,
    -- OSV base ecosystems the advisory names ('unknown' when none).
    ecosystems text[] NOT NULL,
    aliases text[] NOT NULL,
    severity text NOT NULL,
    cvss_score double precision,
    severity_source text,
    severity_vector text,
    summary text,
    -- The OSV document exactly as imported (bytea: jsonb would refuse a \u0000 escape and
    -- reorder keys).
    document bytea NOT NULL,
    import_id text NOT NULL,
    sequence bigint NOT NULL
);
CREATE INDEX advisories_sequence ON advisories (sequence);

-- Which packages an advisory names (withdrawn ones too: a re-match must find the findings
-- they resolve), keyed as the matcher keys them.
CREATE TABLE advisory_packages (
    ecosystem text NOT NULL,
    package_key text NOT NULL,
    advisory_id text NOT NULL REFERENCES advisories (id) ON DELETE CASCADE,
    PRIMARY KEY (ecosystem, package_key, advisory_id)
);
CREATE INDEX advisory_packages_advisory ON advisory_packages (advisory_id);

-- The alias edges of active advisories (an advisory id and one of its aliases).
CREATE TABLE advisory_aliases (
    advisory_id text NOT NULL,
    alias text NOT NULL,
    PRIMARY KEY (advisory_id, alias)
);
CREATE INDEX advisory_aliases_alias ON advisory_aliases (alias);

-- Alias groups: every active advisory id and every alias of one, with its group's id.
CREATE TABLE alias_groups (
    member text PRIMARY KEY,
    group_id text NOT NULL
);
CREATE INDEX alias_groups_group ON alias_groups (group_id);

CREATE TABLE epss (
    cve text PRIMARY KEY,
    score double precision NOT NULL CHECK (score BETWEEN 0 AND 1),
    percentile double precision NOT NULL CHECK (percentile BETWEEN 0 AND 1),
    as_of date NOT NULL,
    import_id text NOT NULL,
    sequence bigint NOT NULL
);
CREATE INDEX epss_sequence ON epss (sequence);

CREATE TABLE vulndb_imports (
    import_id text PRIMARY KEY,
    sequence bigint NOT NULL UNIQUE,
    source text NOT NULL CHECK (source IN ('osv', 'epss')),
    occurred_at timestamptz NOT NULL,
    actor text NOT NULL,
    digest text NOT NULL,
    format text NOT NULL,
    name text NOT NULL,
    counts jsonb NOT NULL,
    counts_by_ecosystem jsonb NOT NULL,
    rejected jsonb NOT NULL,
    rematch_all boolean NOT NULL,
    epss_as_of date,
    epss_model_version text
);
CREATE INDEX vulndb_imports_source ON vulndb_imports (source, sequence);
