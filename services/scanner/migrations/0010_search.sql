-- Search (shared/search.py) and findings across projects (/api/v1/detection/findings).
--
-- Findings across projects page through each project's latest snapshot in the order
-- "most severe first, then id descending"; this index serves that order per scan, so a page
-- is one short index range per project whatever the table's size or its statistics.
CREATE INDEX findings_detection ON findings (scan_id, severity_rank DESC, id DESC)
    WHERE resolved_at IS NULL;

-- Trigram indexes of the searched fields, when PostgreSQL has pg_trgm (a contrib module: the
-- embedded pgserver wheel ships without it, and search then matches substrings only).
-- `gatehouse up` creates the extension as the database's superuser; a role that may create
-- it does so here. Installed pg_trgm later? `CREATE EXTENSION pg_trgm SCHEMA public;` then
-- `SELECT scanner.search_trigram_indexes();` (and the gateway's). Returns whether it could.
CREATE FUNCTION search_trigram_indexes() RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    trgm text;
    target text[];
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm')
       AND EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm') THEN
        BEGIN
            CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public;
        EXCEPTION
            WHEN insufficient_privilege THEN
                RAISE NOTICE 'pg_trgm: this role may not create it; search matches substrings';
            WHEN unique_violation OR duplicate_object THEN
                NULL;  -- another service created it at the same moment
        END;
    END IF;
    SELECT n.nspname INTO trgm FROM pg_extension e
        JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_trgm';
    IF trgm IS NULL THEN
        RETURN false;
    END IF;
    FOREACH target SLICE 1 IN ARRAY ARRAY[
        ['search_advisories_id', 'advisories', 'id'],
        ['search_advisories_summary', 'advisories', 'summary'],
        ['search_advisory_aliases', 'advisory_aliases', 'alias'],
        ['search_components_name', 'components', 'name'],
        ['search_components_purl', 'components', 'purl'],
        ['search_registry_repositories_slug', 'registry_repositories', 'slug'],
        ['search_registry_artifacts_name', 'registry_artifacts', 'name'],
        ['search_registry_artifacts_path', 'registry_artifacts', 'path'],
        ['search_registry_artifacts_purl', 'registry_artifacts', 'purl']
    ] LOOP
        EXECUTE format(
            'CREATE INDEX IF NOT EXISTS %I ON scanner.%I USING gin (%I %I.gin_trgm_ops)',
            target[1], target[2], target[3], trgm
        );
    END LOOP;
    RETURN true;
END
$$;

SELECT search_trigram_indexes();
