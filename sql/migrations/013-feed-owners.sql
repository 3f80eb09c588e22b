-- Feeds managed by roles that are not superusers: each feed has an owner (the
-- role that created it), and a superuser names, once, the roles that may
-- create feeds (pgfeed.grant_admin). SECURITY.md, "Feed owners".
ALTER TABLE pgfeed.feed_config ADD COLUMN owner oid;
COMMENT ON COLUMN pgfeed.feed_config.owner IS
    'the role that created the feed: it (and the roles that have its privileges) and superusers manage it';

CREATE TABLE pgfeed.feed_admin (
    admin oid PRIMARY KEY
);
COMMENT ON TABLE pgfeed.feed_admin IS
    'roles a superuser let create feeds (pgfeed.grant_admin); written only through SECURITY DEFINER functions';

-- Models that roles who are not superusers may name, besides the packaged ones.
CREATE TABLE pgfeed.allowed_model (
    model text PRIMARY KEY
);
COMMENT ON TABLE pgfeed.allowed_model IS
    'model specs a superuser let feed owners use (pgfeed.allow_model), besides the packaged models';

-- Functions whose arguments change: the definitions make them again (the set-up
-- functions take the caller's proof of identity, _caller; a catch-up may embed).
DO $$
DECLARE
    v_function regprocedure;
BEGIN
    FOR v_function IN SELECT p.oid::regprocedure FROM pg_proc p
                       WHERE p.pronamespace = 'pgfeed'::regnamespace
                         AND p.proname IN ('create_feed', 'alter_feed', 'detach', 'drop_feed', 'grant_feed',
                                           'revoke_feed', 'attach_content', 'attach_interactions',
                                           'attach_impressions', '_attach_interactions', 'reembed', 'reembed_batch',
                                           'retry', '_expression_columns', '_content_columns', '_catch_up', 'work', 'queued') LOOP
        EXECUTE format('DROP FUNCTION %s', v_function);
    END LOOP;
END
$$;
