-- Runs first on every install: the extensions pgfeed needs, its schema, and the
-- table that records which run-once migrations have been applied.
CREATE EXTENSION IF NOT EXISTS vector;
CREATE EXTENSION IF NOT EXISTS plpython3u;

CREATE SCHEMA IF NOT EXISTS pgfeed;
COMMENT ON SCHEMA pgfeed IS 'pgfeed: personalized content feeds (embeddings, profiles, hybrid ranking)';

CREATE TABLE IF NOT EXISTS pgfeed.migration (
    name        text PRIMARY KEY,
    body_sha256 text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE pgfeed.migration IS 'run-once migrations of the pgfeed bundle already applied here';

-- The run-once migrations run with this search_path, which also reaches
-- pgvector wherever it was installed; pg_temp comes last so that no temporary
-- object can shadow a name pgfeed uses. The definitions are created with a
-- narrower one, pg_catalog, pgfeed, pg_temp (installer.py).
SELECT set_config('search_path', format('pg_catalog, pgfeed, %I, pg_temp', extnamespace::regnamespace), true)
  FROM pg_extension WHERE extname = 'vector';
