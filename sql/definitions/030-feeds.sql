-- Feeds: who manages them; creating and dropping them, and detaching the
-- tables they watch.

-- Superusers manage every feed. A role a superuser let create feeds
-- (pgfeed.grant_admin) manages the feeds it created, attaches only tables it
-- owns, names only the packaged models and those a superuser allowed, and
-- writes only expressions that compute from the row alone (SECURITY.md,
-- "Feed owners"). The set-up functions are SECURITY DEFINER, and their last
-- argument, _caller, says who called them: its default, pgfeed._caller(), is
-- evaluated as the caller, before the function takes pgfeed's rights, and
-- makes a temporary table that the caller owns; pgfeed._caller_role reads
-- its owner and drops it. Nothing else tells a SECURITY DEFINER function who
-- called it: session_user and the role setting name someone else inside
-- another role's function, and inside an index expression a VACUUM runs.
CREATE OR REPLACE FUNCTION pgfeed._caller() RETURNS text
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $$
DECLARE
    v_proof text := 'pgfeed_caller_' || md5(random()::text || clock_timestamp()::text);
BEGIN
    EXECUTE format('CREATE TEMPORARY TABLE pg_temp.%I () ON COMMIT DROP', v_proof);
    RETURN v_proof;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE EXCEPTION 'pgfeed cannot tell who calls it: %', SQLERRM
        USING ERRCODE = 'insufficient_privilege',
              HINT = format('its set-up functions learn who calls them from a temporary table of the caller''s: '
                            'GRANT TEMPORARY ON DATABASE %I TO %I; they cannot be called from an index expression '
                            'or another security-restricted operation', current_database(), current_user);
END
$$;
COMMENT ON FUNCTION pgfeed._caller() IS
    'the default of the set-up functions'' _caller argument: a temporary table the caller owns, which tells them who '
    'called';

CREATE OR REPLACE FUNCTION pgfeed._caller_role(p_proof text) RETURNS oid
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $$
DECLARE
    v_caller oid;
BEGIN
    SELECT c.relowner INTO v_caller FROM pg_class c
     WHERE c.relnamespace = pg_my_temp_schema() AND c.relkind = 'r' AND c.relname = p_proof
       AND p_proof ~ '^pgfeed_caller_[0-9a-f]{32}$';
    IF NOT FOUND THEN
        RAISE EXCEPTION 'pgfeed cannot tell who calls it: % is not what pgfeed._caller() made in this session',
                        coalesce(quote_literal(p_proof), 'NULL')
            USING ERRCODE = 'insufficient_privilege', HINT = 'leave the _caller argument out';
    END IF;
    EXECUTE format('DROP TABLE pg_temp.%I', p_proof);  -- used once
    RETURN v_caller;
END
$$;
COMMENT ON FUNCTION pgfeed._caller_role(text) IS 'the role that called a set-up function, from the proof its _caller made';

CREATE OR REPLACE FUNCTION pgfeed._is_superuser(p_role oid) RETURNS boolean
LANGUAGE sql STABLE STRICT
SET search_path FROM CURRENT
AS $$ SELECT coalesce((SELECT rolsuper FROM pg_roles WHERE oid = p_role), false) $$;
COMMENT ON FUNCTION pgfeed._is_superuser(oid) IS 'whether a role is a superuser';

CREATE OR REPLACE FUNCTION pgfeed._has_privileges_of(p_role oid, p_of oid) RETURNS boolean
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
    SELECT pgfeed._is_superuser(p_role)
           OR EXISTS (SELECT FROM pg_roles r WHERE r.oid = p_of AND pg_has_role(p_role, r.oid, 'USAGE'))
$$;
COMMENT ON FUNCTION pgfeed._has_privileges_of(oid, oid) IS
    'whether a role has another''s privileges (is it, inherits from it, or is a superuser); false for a dropped role';

CREATE OR REPLACE FUNCTION pgfeed._admin(p_proof text) RETURNS oid
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $$
DECLARE
    v_caller oid := pgfeed._caller_role(p_proof);
BEGIN
    IF NOT EXISTS (SELECT FROM pgfeed.feed_admin a WHERE pgfeed._has_privileges_of(v_caller, a.admin))
       AND NOT pgfeed._is_superuser(v_caller) THEN
        RAISE EXCEPTION 'role % may not manage feeds', v_caller::regrole
            USING ERRCODE = 'insufficient_privilege',
                  HINT = format('a superuser lets it, once: SELECT pgfeed.grant_admin(%L)', v_caller::regrole);
    END IF;
    RETURN v_caller;
END
$$;
COMMENT ON FUNCTION pgfeed._admin(text) IS
    'the role that called a set-up function, if it may manage feeds (a superuser, or granted by grant_admin)';

CREATE OR REPLACE FUNCTION pgfeed._owned_feed(p_name text, p_caller oid) RETURNS pgfeed.feed_config
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $$
DECLARE
    v_feed pgfeed.feed_config;
BEGIN
    SELECT * INTO v_feed FROM pgfeed.feed_config c WHERE c.name = p_name;
    IF NOT FOUND AND pgfeed._is_superuser(p_caller) THEN
        PERFORM pgfeed._feed(p_name);  -- its error lists the feeds
    ELSIF NOT FOUND THEN
        RAISE EXCEPTION 'unknown feed "%"', p_name
            USING ERRCODE = 'undefined_object', HINT = format('create it with SELECT pgfeed.create_feed(%L)', p_name);
    ELSIF NOT pgfeed._has_privileges_of(p_caller, v_feed.owner) THEN
        RAISE EXCEPTION 'must be the owner of feed "%"', p_name
            USING ERRCODE = 'insufficient_privilege',
                  HINT = format('it is %s''s: that role, a role with its privileges or a superuser manages it',
                                coalesce((SELECT quote_ident(rolname) FROM pg_roles WHERE oid = v_feed.owner),
                                         'a superuser'));
    END IF;
    RETURN v_feed;
END
$$;
COMMENT ON FUNCTION pgfeed._owned_feed(text, oid) IS
    'the configuration of a feed the caller manages, or a clear error';

CREATE OR REPLACE FUNCTION pgfeed._require_owned_table(p_table regclass, p_caller oid) RETURNS void
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $$
BEGIN
    IF NOT pgfeed._has_privileges_of(p_caller, (SELECT relowner FROM pg_class WHERE oid = p_table)) THEN
        RAISE EXCEPTION 'must be the owner of table %', p_table
            USING ERRCODE = 'insufficient_privilege',
                  HINT = format('a feed owner that is not a superuser attaches only tables whose owner''s privileges '
                                'it has; %s belongs to %s', p_table,
                                (SELECT quote_ident(r.rolname) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner
                                  WHERE c.oid = p_table));
    END IF;
END
$$;
COMMENT ON FUNCTION pgfeed._require_owned_table(regclass, oid) IS
    'fails unless the caller has the privileges of the table''s owner (or is a superuser)';

CREATE OR REPLACE FUNCTION pgfeed._require_model(p_model text, p_caller oid) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $$
BEGIN
    -- A model spec can name a Python class or a directory the server loads.
    IF NOT pgfeed._is_superuser(p_caller) AND NOT pgfeed._packaged_model(p_model)
       AND NOT EXISTS (SELECT FROM pgfeed.allowed_model a WHERE a.model = p_model) THEN
        RAISE EXCEPTION 'model % is not allowed to feed owners that are not superusers', quote_literal(p_model)
            USING ERRCODE = 'insufficient_privilege',
                  HINT = format('use a packaged model (all-MiniLM-L6-v2, all-MiniLM-L6-v2:onnx-int8), or a superuser '
                                'allows this one: SELECT pgfeed.allow_model(%L)', p_model);
    END IF;
END
$$;
COMMENT ON FUNCTION pgfeed._require_model(text, oid) IS
    'fails unless the caller may name that model: a superuser any, others the packaged and the allowed ones';

CREATE OR REPLACE FUNCTION pgfeed.grant_admin(role regrole) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $$
BEGIN
    IF role IS NULL THEN
        RAISE EXCEPTION 'role must not be NULL' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO pgfeed.feed_admin (admin) VALUES (role) ON CONFLICT DO NOTHING;
    PERFORM pgfeed._grant_admin_rights(role);
END
$$;
COMMENT ON FUNCTION pgfeed.grant_admin(regrole) IS
    'lets a role (and the roles with its privileges) create feeds, manage the feeds it created, attach the tables it '
    'owns, and run the workers (a superuser''s call, once)';

CREATE OR REPLACE FUNCTION pgfeed.revoke_admin(role regrole) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $$
BEGIN
    DELETE FROM pgfeed.feed_admin a WHERE a.admin = role;
    EXECUTE format('REVOKE EXECUTE ON FUNCTION pgfeed.work(text, integer, text), pgfeed.queued(text, text) FROM %s', role);
END
$$;
COMMENT ON FUNCTION pgfeed.revoke_admin(regrole) IS
    'takes back what grant_admin gave a role; the feeds it created stay, for a superuser to manage';

CREATE OR REPLACE FUNCTION pgfeed._grant_admin_rights(p_role regrole) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $$
BEGIN
    -- the workers' calls (made again by every install, which may make them anew)
    EXECUTE format('GRANT EXECUTE ON FUNCTION pgfeed.work(text, integer, text), pgfeed.queued(text, text) TO %s', p_role);
END
$$;
COMMENT ON FUNCTION pgfeed._grant_admin_rights(regrole) IS 'grants a feed administrator the workers'' calls';

CREATE OR REPLACE FUNCTION pgfeed.allow_model(model text) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $$
BEGIN
    PERFORM pgfeed._model_dimensions(model);  -- it loads, or the error says how to make it available
    INSERT INTO pgfeed.allowed_model (model) VALUES (allow_model.model) ON CONFLICT DO NOTHING;
END
$$;
COMMENT ON FUNCTION pgfeed.allow_model(text) IS
    'lets feed owners that are not superusers name a model spec besides the packaged ones (a superuser''s call)';


CREATE OR REPLACE FUNCTION pgfeed._check_feed_config(p_feed pgfeed.feed_config) RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path FROM CURRENT
AS $$
DECLARE
    v_setting record;
BEGIN
    -- NaN compares greater than every number: it would pass the checks below and empty the feed
    FOR v_setting IN SELECT * FROM (VALUES ('weight_similarity', p_feed.weight_similarity),
                                           ('weight_freshness', p_feed.weight_freshness),
                                           ('weight_popularity', p_feed.weight_popularity),
                                           ('popularity_saturation', p_feed.popularity_saturation)) AS v(name, value)
                     WHERE value IN ('NaN', 'Infinity', '-Infinity') LOOP
        RAISE EXCEPTION '% must be a finite number, got %', v_setting.name, v_setting.value
            USING ERRCODE = 'invalid_parameter_value';
    END LOOP;
    IF p_feed.popularity_saturation <= 1 THEN
        RAISE EXCEPTION 'popularity_saturation must be greater than 1, got %', p_feed.popularity_saturation
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'it is the like count at which popularity reaches 1 (default 1000)';
    END IF;
    IF p_feed.freshness_unit <= interval '0' THEN
        RAISE EXCEPTION 'freshness_unit must be a positive interval, got %', p_feed.freshness_unit
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF least(p_feed.weight_similarity, p_feed.weight_freshness, p_feed.weight_popularity) < 0
       OR p_feed.weight_similarity + p_feed.weight_freshness + p_feed.weight_popularity <= 0 THEN
        RAISE EXCEPTION 'weights must be >= 0 and not all 0, got similarity %, freshness %, popularity %',
                        p_feed.weight_similarity, p_feed.weight_freshness, p_feed.weight_popularity
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_feed.seen_for <= interval '0' OR p_feed.seen_for > interval '100 years' THEN
        RAISE EXCEPTION 'seen_for must be a positive interval of at most 100 years, got %', p_feed.seen_for
            USING ERRCODE = 'invalid_parameter_value', HINT = 'NULL (or 0 in alter_feed) hides shown items for good';
    END IF;
    IF p_feed.max_per_group < 1 OR p_feed.exact_max_items < 0 THEN
        RAISE EXCEPTION 'max_per_group must be at least 1 (or 0 to lift the cap), exact_max_items at least 0; got %, %',
                        p_feed.max_per_group, p_feed.exact_max_items
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_feed.profile_size < 1 THEN
        RAISE EXCEPTION 'profile_size must be at least 1, got %', p_feed.profile_size USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_feed.mode NOT IN ('sync', 'async') THEN
        RAISE EXCEPTION 'mode must be sync or async, got %', quote_literal(p_feed.mode)
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'sync embeds before the statement ends; async queues the work for `pgfeed worker`';
    END IF;
    IF least(p_feed.max_attempts, p_feed.search_depth, p_feed.search_max_depth, p_feed.ef_search) < 1
       OR p_feed.ef_search > 1000 THEN
        RAISE EXCEPTION 'max_attempts, search_depth and search_max_depth must be at least 1, ef_search 1 to 1000'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
END
$$;
COMMENT ON FUNCTION pgfeed._check_feed_config(pgfeed.feed_config) IS 'fails with a clear message on an invalid feed setting';

CREATE OR REPLACE FUNCTION pgfeed.create_feed(
    name text,
    model text DEFAULT 'all-MiniLM-L6-v2',
    weight_similarity float8 DEFAULT 0.6,
    weight_freshness float8 DEFAULT 0.2,
    weight_popularity float8 DEFAULT 0.2,
    profile_size integer DEFAULT 20,
    freshness_unit interval DEFAULT '1 hour',
    popularity_saturation float8 DEFAULT 1000,
    mode text DEFAULT 'sync',
    max_per_group integer DEFAULT NULL,
    exact_max_items integer DEFAULT 50000,
    seen_for interval DEFAULT NULL,
    _caller text DEFAULT pgfeed._caller())
RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path FROM CURRENT
AS $$
DECLARE
    v_caller oid := pgfeed._admin(_caller);
    v_feed pgfeed.feed_config;
BEGIN
    IF EXISTS (SELECT 1 FROM pgfeed.feed_config c WHERE c.name = create_feed.name) THEN
        RAISE EXCEPTION 'feed "%" already exists', create_feed.name
            USING ERRCODE = 'duplicate_object',
                  HINT = format('pick another name, or drop it first with SELECT pgfeed.drop_feed(%L)', create_feed.name);
    END IF;
    v_feed := jsonb_populate_record(NULL::pgfeed.feed_config, jsonb_build_object(
        'name', create_feed.name, 'model', create_feed.model, 'weight_similarity', weight_similarity,
        'weight_freshness', weight_freshness, 'weight_popularity', weight_popularity, 'profile_size', profile_size,
        'freshness_unit', freshness_unit, 'popularity_saturation', popularity_saturation, 'mode', create_feed.mode,
        'max_attempts', 5, 'search_depth', 100, 'search_max_depth', 20000, 'ef_search', 200,
        'max_per_group', nullif(create_feed.max_per_group, 0), 'exact_max_items', coalesce(exact_max_items, 50000),
        'seen_for', create_feed.seen_for));
    PERFORM pgfeed._check_feed_config(v_feed);
    PERFORM pgfeed._require_model(v_feed.model, v_caller);
    INSERT INTO pgfeed.feed_config (name, model, dimensions, weight_similarity, weight_freshness, weight_popularity,
                                    profile_size, freshness_unit, popularity_saturation, mode, max_per_group,
                                    exact_max_items, seen_for, owner)
    VALUES (v_feed.name, v_feed.model, pgfeed._model_dimensions(v_feed.model),
            v_feed.weight_similarity, v_feed.weight_freshness, v_feed.weight_popularity, v_feed.profile_size,
            v_feed.freshness_unit, v_feed.popularity_saturation, v_feed.mode, v_feed.max_per_group,
            v_feed.exact_max_items, v_feed.seen_for, v_caller)
    RETURNING feed_id INTO v_feed.feed_id;
    IF NOT pgfeed._is_superuser(v_caller) THEN
        INSERT INTO pgfeed.feed_reader (feed_id, reader) VALUES (v_feed.feed_id, v_caller);  -- its owner reads it
    END IF;
    RETURN v_feed.feed_id;
END
$$;
COMMENT ON FUNCTION pgfeed.create_feed(text, text, float8, float8, float8, integer, interval, float8, text, integer,
                                       integer, interval, text) IS
    'registers a feed: its model, score weights (similarity, freshness, popularity), profile size, mode '
    '(sync or async), the cap of items of one group a page, up to how many items it ranks exactly, and how long an '
    'impression hides its item (NULL: for good); returns its id. Its creator owns it (and reads it); leave _caller out';

CREATE OR REPLACE FUNCTION pgfeed.alter_feed(
    name text,
    mode text DEFAULT NULL,
    weight_similarity float8 DEFAULT NULL,
    weight_freshness float8 DEFAULT NULL,
    weight_popularity float8 DEFAULT NULL,
    profile_size integer DEFAULT NULL,
    freshness_unit interval DEFAULT NULL,
    popularity_saturation float8 DEFAULT NULL,
    max_attempts integer DEFAULT NULL,
    search_depth integer DEFAULT NULL,
    search_max_depth integer DEFAULT NULL,
    ef_search integer DEFAULT NULL,
    model text DEFAULT NULL,
    max_per_group integer DEFAULT NULL,
    exact_max_items integer DEFAULT NULL,
    seen_for interval DEFAULT NULL,
    _caller text DEFAULT pgfeed._caller())
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path FROM CURRENT
AS $$
DECLARE
    v_caller oid := pgfeed._admin(_caller);
    v_old pgfeed.feed_config := pgfeed._owned_feed(alter_feed.name, v_caller);
    v_new pgfeed.feed_config;
BEGIN
    -- the settings given (not NULL) over the current ones
    v_new := jsonb_populate_record(v_old, jsonb_strip_nulls(jsonb_build_object(
        'mode', alter_feed.mode, 'weight_similarity', weight_similarity, 'weight_freshness', weight_freshness,
        'weight_popularity', weight_popularity, 'profile_size', profile_size, 'freshness_unit', freshness_unit,
        'popularity_saturation', popularity_saturation, 'max_attempts', max_attempts, 'search_depth', search_depth,
        'search_max_depth', search_max_depth, 'ef_search', ef_search, 'exact_max_items', exact_max_items)));
    IF alter_feed.max_per_group IS NOT NULL THEN
        v_new.max_per_group := nullif(alter_feed.max_per_group, 0);  -- 0 lifts the cap
    END IF;
    IF alter_feed.seen_for IS NOT NULL THEN
        v_new.seen_for := nullif(alter_feed.seen_for, interval '0');  -- 0: shown items stay hidden for good
    END IF;
    PERFORM pgfeed._check_feed_config(v_new);
    UPDATE pgfeed.feed_config c
       SET mode = v_new.mode, weight_similarity = v_new.weight_similarity, weight_freshness = v_new.weight_freshness,
           weight_popularity = v_new.weight_popularity, profile_size = v_new.profile_size,
           freshness_unit = v_new.freshness_unit, popularity_saturation = v_new.popularity_saturation,
           max_attempts = v_new.max_attempts, search_depth = v_new.search_depth,
           search_max_depth = v_new.search_max_depth, ef_search = v_new.ef_search,
           max_per_group = v_new.max_per_group, exact_max_items = v_new.exact_max_items, seen_for = v_new.seen_for
     WHERE c.feed_id = v_old.feed_id;
    IF v_new.profile_size <> v_old.profile_size AND v_old.user_type IS NOT NULL THEN
        EXECUTE format('SELECT pgfeed._refresh_profiles($1, ARRAY(SELECT DISTINCT user_id::text FROM %s))',
                       pgfeed._interaction_log(v_old.feed_id)) USING v_old.feed_id;
    END IF;
    IF alter_feed.model IS NOT NULL AND alter_feed.model IS DISTINCT FROM coalesce(v_old.next_model, v_old.model) THEN
        PERFORM pgfeed._require_model(alter_feed.model, v_caller);
        PERFORM pgfeed._start_switch(v_old, alter_feed.model);
    END IF;
END
$$;
COMMENT ON FUNCTION pgfeed.alter_feed(text, text, float8, float8, float8, integer, interval, float8, integer, integer,
                                      integer, integer, text, integer, integer, interval, text) IS
    'changes the given settings of a feed: mode, score weights, profile size, retries, search depth, ef_search, '
    'cap of items a group (0: none), exact_max_items, seen_for (0: for good); '
    'a new model is switched to in the background by the workers, the feed serving the current vectors until then';

CREATE OR REPLACE FUNCTION pgfeed.detach(feed text, source regclass DEFAULT NULL, _caller text DEFAULT pgfeed._caller())
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path FROM CURRENT
AS $$
BEGIN
    PERFORM pgfeed._detach(pgfeed._owned_feed(feed, pgfeed._admin(_caller)), source);
END
$$;
COMMENT ON FUNCTION pgfeed.detach(text, regclass, text) IS
    'detaches one interaction table from a feed, or (source NULL or the content table) all of its tables; '
    'the user''s tables are left as they were';

CREATE OR REPLACE FUNCTION pgfeed._detach(p_feed pgfeed.feed_config, p_source regclass) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $$
DECLARE
    v_content pgfeed.content_source;
    v_interactions pgfeed.interaction_source;
BEGIN
    SELECT * INTO v_content FROM pgfeed.content_source WHERE feed_id = p_feed.feed_id;
    IF p_source IS NULL OR p_source = v_content.source THEN
        -- Without its content a feed has nothing to rank: everything goes.
        FOR v_interactions IN SELECT * FROM pgfeed.interaction_source WHERE feed_id = p_feed.feed_id LOOP
            PERFORM pgfeed._drop_interaction_follower(v_interactions);
        END LOOP;
        IF v_content.feed_id IS NOT NULL THEN
            PERFORM pgfeed._drop_triggers(v_content.source, pgfeed._content_trigger_prefix(p_feed.feed_id));
        END IF;
        EXECUTE format('DROP TABLE IF EXISTS %s, %s, %s, %s, %s, %s', pgfeed._item_store(p_feed.feed_id),
                       pgfeed._item_popularity(p_feed.feed_id), pgfeed._interaction_log(p_feed.feed_id),
                       pgfeed._profile(p_feed.feed_id), pgfeed._popularity_delta(p_feed.feed_id),
                       pgfeed._profile_dirty(p_feed.feed_id));
        PERFORM pgfeed._drop_next_item_store(p_feed.feed_id);
        DELETE FROM pgfeed.interaction_source WHERE feed_id = p_feed.feed_id;
        DELETE FROM pgfeed.content_source WHERE feed_id = p_feed.feed_id;
        DELETE FROM pgfeed.embedding_queue WHERE feed_id = p_feed.feed_id;
        DELETE FROM pgfeed.feed_problem WHERE feed_id = p_feed.feed_id;  -- nothing left to catch up with
        DELETE FROM pgfeed.reembed_progress WHERE feed_id = p_feed.feed_id;
        UPDATE pgfeed.feed_config SET item_type = NULL, user_type = NULL, next_model = NULL, next_dimensions = NULL,
                                      next_after_key = NULL
         WHERE feed_id = p_feed.feed_id;
        RETURN;
    END IF;
    SELECT * INTO v_interactions FROM pgfeed.interaction_source s
     WHERE s.feed_id = p_feed.feed_id AND s.source = p_source;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'table % is not attached to feed "%"', p_source, p_feed.name USING ERRCODE = 'undefined_object';
    END IF;
    PERFORM pgfeed._drop_interaction_follower(v_interactions);
    PERFORM pgfeed._forget_source(v_interactions.source_id);
    DELETE FROM pgfeed.interaction_source WHERE source_id = v_interactions.source_id;
END
$$;
COMMENT ON FUNCTION pgfeed._detach(pgfeed.feed_config, regclass) IS 'detach() of a feed the caller manages';

CREATE OR REPLACE FUNCTION pgfeed.drop_feed(name text, _caller text DEFAULT pgfeed._caller()) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path FROM CURRENT
AS $$
DECLARE
    v_feed pgfeed.feed_config := pgfeed._owned_feed(drop_feed.name, pgfeed._admin(_caller));
BEGIN
    PERFORM pgfeed._detach(v_feed, NULL);
    DELETE FROM pgfeed.feed_config c WHERE c.feed_id = v_feed.feed_id;
END
$$;
COMMENT ON FUNCTION pgfeed.drop_feed(text, text) IS 'drops a feed, its triggers and its data; the user''s tables are left as they were';

CREATE OR REPLACE FUNCTION pgfeed._readable_tables(p_feed_id integer) RETURNS SETOF text
LANGUAGE sql STABLE STRICT
SET search_path FROM CURRENT
AS $$
    SELECT t FROM unnest(ARRAY[pgfeed._item_store(p_feed_id), pgfeed._item_popularity(p_feed_id),
                               pgfeed._interaction_log(p_feed_id), pgfeed._profile(p_feed_id),
                               pgfeed._profile_dirty(p_feed_id), pgfeed._popularity_delta(p_feed_id)]) AS t
     WHERE to_regclass(t) IS NOT NULL
$$;
COMMENT ON FUNCTION pgfeed._readable_tables(integer) IS 'the tables of a feed that its readers read, as far as they exist';

CREATE OR REPLACE FUNCTION pgfeed._grant_readers(p_feed_id integer) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $$
DECLARE
    v_role text;
    v_table text;
BEGIN
    -- A feed's readers read its tables with their own rights (pgfeed.feed()
    -- is SECURITY INVOKER): SELECT on each.
    FOR v_role IN SELECT quote_ident(r.rolname) FROM pgfeed.feed_reader g JOIN pg_roles r ON r.oid = g.reader
                   WHERE g.feed_id = p_feed_id LOOP
        FOR v_table IN SELECT pgfeed._readable_tables(p_feed_id) LOOP
            EXECUTE format('GRANT SELECT ON %s TO %s', v_table, v_role);
        END LOOP;
    END LOOP;
END
$$;
COMMENT ON FUNCTION pgfeed._grant_readers(integer) IS
    'grants a feed''s roles what reading it takes: SELECT on its tables (made again by attach and model switches)';

CREATE OR REPLACE FUNCTION pgfeed.grant_feed(feed text, role regrole, _caller text DEFAULT pgfeed._caller())
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path FROM CURRENT
AS $$
DECLARE
    v_feed pgfeed.feed_config := pgfeed._owned_feed(feed, pgfeed._admin(_caller));
BEGIN
    IF role IS NULL THEN
        RAISE EXCEPTION 'role must not be NULL' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO pgfeed.feed_reader (feed_id, reader) VALUES (v_feed.feed_id, role) ON CONFLICT DO NOTHING;
    PERFORM pgfeed._grant_readers(v_feed.feed_id);
END
$$;
COMMENT ON FUNCTION pgfeed.grant_feed(text, regrole, text) IS
    'lets a role (and the roles that inherit from it) read a feed: feed(), its row of status(), embed() with its '
    'model; where the content table has row-level security, the role''s own policies apply';

CREATE OR REPLACE FUNCTION pgfeed.revoke_feed(feed text, role regrole, _caller text DEFAULT pgfeed._caller())
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path FROM CURRENT
AS $$
DECLARE
    v_feed pgfeed.feed_config := pgfeed._owned_feed(feed, pgfeed._admin(_caller));
    v_table text;
BEGIN
    DELETE FROM pgfeed.feed_reader r WHERE r.feed_id = v_feed.feed_id AND r.reader = role;
    FOR v_table IN SELECT pgfeed._readable_tables(v_feed.feed_id) LOOP
        EXECUTE format('REVOKE SELECT ON %s FROM %s', v_table, role);
    END LOOP;
END
$$;
COMMENT ON FUNCTION pgfeed.revoke_feed(text, regrole, text) IS 'takes back what grant_feed gave a role';
