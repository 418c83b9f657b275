-- Search (shared/search.py): the git repositories projects list, one row each, so that
-- each is a search hit of its own with a trigram index (an array column cannot have one).
-- Projected from project.created / project.updated with the projects (a replay from
-- sequence 0 rebuilds it); filled here from the projects already projected.
CREATE TABLE project_repos (
    project_id text NOT NULL,
    repo text NOT NULL,
    PRIMARY KEY (project_id, repo)
);
CREATE INDEX project_repos_repo ON project_repos (lower(repo));
INSERT INTO project_repos (project_id, repo)
    SELECT p.id, r.repo FROM projects p CROSS JOIN LATERAL unnest(p.repos) AS r(repo)
    ON CONFLICT DO NOTHING;

-- Trigram indexes of the searched fields, when PostgreSQL has pg_trgm (see the scanner's
-- 0010_search.sql: without it, search matches substrings only). Installed pg_trgm later?
-- `SELECT gateway.search_trigram_indexes();`. Returns whether it could.
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
        ['search_projects_slug', 'projects', 'slug'],
        ['search_projects_name', 'projects', 'name'],
        ['search_project_repos_repo', 'project_repos', 'repo']
    ] LOOP
        EXECUTE format(
            'CREATE INDEX IF NOT EXISTS %I ON gateway.%I USING gin (%I %I.gin_trgm_ops)',
            target[1], target[2], target[3], trgm
        );
    END LOOP;
    RETURN true;
END
$$;

SELECT search_trigram_indexes();
