-- 0.3.0: who may read a feed, what pgfeed watches on the tables it is
-- attached to, and the problem that keeps a feed from following them.

-- Append-only: writers that meet a problem at once never wait on each other.
CREATE TABLE pgfeed.feed_problem (
    seq        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    feed_id    integer NOT NULL REFERENCES pgfeed.feed_config ON DELETE CASCADE,
    problem    text NOT NULL,
    noticed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ON pgfeed.feed_problem (feed_id);
COMMENT ON TABLE pgfeed.feed_problem IS
    'why the triggers or workers could not follow a feed''s tables (a column renamed, dropped or retyped, the table '
    'dropped, a reader that failed); a worker removes the rows once the feed has caught up';

-- The columns a feed reads, as they were when it was attached: a column
-- renamed, dropped or retyped since is named in the feed's problem instead of
-- being read (or cast) as something else.
ALTER TABLE pgfeed.content_source
    ADD COLUMN source_name text,
    ADD COLUMN watched     jsonb NOT NULL DEFAULT '[]';
ALTER TABLE pgfeed.interaction_source
    ADD COLUMN source_name text,
    ADD COLUMN watched     jsonb NOT NULL DEFAULT '[]';
COMMENT ON COLUMN pgfeed.content_source.watched IS
    'the columns the feed reads: [{"attnum", "name", "type"}] as attached';
COMMENT ON COLUMN pgfeed.interaction_source.watched IS
    'the columns the feed reads: [{"attnum", "name", "type"}] as attached';

CREATE TABLE pgfeed.feed_reader (
    feed_id integer NOT NULL REFERENCES pgfeed.feed_config ON DELETE CASCADE,
    reader  oid NOT NULL,  -- a role (not regrole: a dropped role must not break the policies below)
    PRIMARY KEY (feed_id, reader)
);
COMMENT ON TABLE pgfeed.feed_reader IS 'the roles granted each feed (pgfeed.grant_feed)';

-- A role sees the feeds it was granted (directly or through a role it
-- inherits from), and nothing of the others; superusers and the installing
-- role, which owns these tables, see everything.
ALTER TABLE pgfeed.feed_reader ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_grants ON pgfeed.feed_reader FOR SELECT
    USING (reader IN (SELECT r.oid FROM pg_catalog.pg_roles r WHERE pg_catalog.pg_has_role(r.oid, 'USAGE')));
ALTER TABLE pgfeed.feed_config ENABLE ROW LEVEL SECURITY;
CREATE POLICY granted ON pgfeed.feed_config FOR SELECT
    USING (EXISTS (SELECT FROM pgfeed.feed_reader r WHERE r.feed_id = feed_config.feed_id));
ALTER TABLE pgfeed.content_source ENABLE ROW LEVEL SECURITY;
CREATE POLICY granted ON pgfeed.content_source FOR SELECT
    USING (EXISTS (SELECT FROM pgfeed.feed_reader r WHERE r.feed_id = content_source.feed_id));
ALTER TABLE pgfeed.interaction_source ENABLE ROW LEVEL SECURITY;
CREATE POLICY granted ON pgfeed.interaction_source FOR SELECT
    USING (EXISTS (SELECT FROM pgfeed.feed_reader r WHERE r.feed_id = interaction_source.feed_id));
ALTER TABLE pgfeed.feed_problem ENABLE ROW LEVEL SECURITY;
CREATE POLICY granted ON pgfeed.feed_problem FOR SELECT
    USING (EXISTS (SELECT FROM pgfeed.feed_reader r WHERE r.feed_id = feed_problem.feed_id));
ALTER TABLE pgfeed.embedding_queue ENABLE ROW LEVEL SECURITY;
CREATE POLICY granted ON pgfeed.embedding_queue FOR SELECT
    USING (EXISTS (SELECT FROM pgfeed.feed_reader r WHERE r.feed_id = embedding_queue.feed_id));

-- Functions whose signature or result type changed, or that are gone; definitions recreate the others.
DROP FUNCTION IF EXISTS pgfeed.status();
DROP FUNCTION IF EXISTS pgfeed._sync_items(integer, text[], text[], timestamptz[], boolean[], text);
DROP FUNCTION IF EXISTS pgfeed._check_expression(regclass, text, regtype, text);
DROP FUNCTION IF EXISTS pgfeed._content_rows_sql(pgfeed.content_source, text);
DROP FUNCTION IF EXISTS pgfeed._switch_pending_sql(pgfeed.feed_config, pgfeed.content_source, integer);
