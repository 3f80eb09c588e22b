-- Runs last on every install. Managing feeds (create, alter, attach, grant,
-- detach, drop, reembed, retry) is for superusers and the roles they let
-- (pgfeed.grant_admin): every role may call those functions, which check
-- who calls them first (pgfeed._admin). Every role may call the read calls,
-- which are SECURITY INVOKER: what a role reads is what pgfeed.grant_feed
-- gave it (row-level security on pgfeed's catalog, SELECT on a feed's
-- tables). A worker role that is neither a superuser nor a feed
-- administrator needs:
-- GRANT EXECUTE ON FUNCTION pgfeed.work(text, integer, text), pgfeed.queued(text, text) TO worker_role.
-- SECURITY.md says why each SECURITY DEFINER function is safe.
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA pgfeed FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA pgfeed FROM PUBLIC;
GRANT USAGE ON SCHEMA pgfeed TO PUBLIC;
-- rows limited by row-level security to the feeds granted to the role
GRANT SELECT ON pgfeed.feed_config, pgfeed.feed_reader, pgfeed.content_source, pgfeed.interaction_source,
                pgfeed.feed_problem, pgfeed.embedding_queue
TO PUBLIC;
GRANT EXECUTE ON FUNCTION
    pgfeed.feed(text, anyelement, integer, anycompatiblearray, boolean, text, jsonb),
    pgfeed.profile(text, anyelement),
    pgfeed.embed(text, text),
    pgfeed.status(),
    pgfeed.encoder_stats(),
    pgfeed.version(),
    -- what those call, with the caller's rights
    pgfeed._feed(text),
    pgfeed._feed_exists(text),
    pgfeed._key_text(anyelement, regtype, text, text),
    pgfeed._key_kind(regtype),
    pgfeed._item_store(integer),
    pgfeed._item_popularity(integer),
    pgfeed._interaction_log(integer),
    pgfeed._profile(integer),
    pgfeed._profile_dirty(integer),
    pgfeed._popularity_delta(integer),
    pgfeed._profile_sql(pgfeed.feed_config, text, text),
    pgfeed._profile_window_sql(pgfeed.feed_config, text, text),
    pgfeed._current_profile(pgfeed.feed_config, text),
    pgfeed._scale(@vector@.vector, float8),
    pgfeed._count_content(pgfeed.content_source, pgfeed.feed_config),
    pgfeed._read_content(pgfeed.content_source, regtype, text[], text, integer),
    pgfeed._evaluate_rows(pgfeed.content_source, anyarray),
    pgfeed._attributes_sql(pgfeed.content_source),
    pgfeed._lock_source(regclass, text),
    pgfeed._planning_problem(regclass, text),
    pgfeed._require_plannable(regclass, text),
    pgfeed._require_source(regclass, text, jsonb, text),
    pgfeed._popularity_tiers(),
    pgfeed._tier_most_likes(integer),
    pgfeed._tier_ef_search(text, integer),
    pgfeed._top_k(text[], text, text[], @vector@.vector, float8, float8, text, text[], float8, jsonb, float8[],
                  float8[], integer[], integer, integer, integer, float8, text, integer),
    pgfeed._filter(pgfeed.content_source, jsonb, text),
    pgfeed._store_size(text),
    pgfeed._cursor_sql(text, text, text, text, text, text, text),
    pgfeed._cursor_check_sql(text, text, text, text),
    pgfeed._read_cursor(text, integer, text, jsonb),
    pgfeed._content_problem(pgfeed.feed_config),
    pgfeed._source_problem(regclass, text, jsonb, text),
    pgfeed._encode(text[], text),
    pgfeed._python_init(),
    pgfeed._python_path()
TO PUBLIC;
-- The set-up functions: each finds out who calls it and what that role may do.
GRANT EXECUTE ON FUNCTION
    pgfeed._caller(),
    pgfeed.create_feed(text, text, float8, float8, float8, integer, interval, float8, text, integer, integer, interval,
                       text),
    pgfeed.alter_feed(text, text, float8, float8, float8, integer, interval, float8, integer, integer, integer, integer,
                      text, integer, integer, interval, text),
    pgfeed.detach(text, regclass, text),
    pgfeed.drop_feed(text, text),
    pgfeed.grant_feed(text, regrole, text),
    pgfeed.revoke_feed(text, regrole, text),
    pgfeed.attach_content(text, regclass, name, text, name, text, boolean, name[], name, text),
    pgfeed.attach_interactions(text, regclass, name, name, float8, name, boolean, text, text),
    pgfeed.attach_impressions(text, regclass, name, name, name, boolean, text),
    pgfeed.reembed(text, boolean, text),
    pgfeed.reembed_batch(text, integer, boolean, boolean, text),
    pgfeed.retry(text, text),
    pgfeed.reembed_items(text, text[], text)
TO PUBLIC;
-- feed administrators run workers (grants that a function made anew lost)
SELECT pgfeed._grant_admin_rights(r.oid::regrole) FROM pgfeed.feed_admin a JOIN pg_roles r ON r.oid = a.admin;
-- Items one at a time (070-admin.sql, the Django admin's): item_status reads with the caller's rights, as status()
-- does; reembed_items is a set-up function (above).
GRANT EXECUTE ON FUNCTION
    pgfeed.item_status(text, text[]),
    -- what it calls, with the caller's rights
    pgfeed._require_feed_name(text),
    pgfeed._item_keys(pgfeed.feed_config, text[]),
    pgfeed._content_source(pgfeed.feed_config)
TO PUBLIC;
