-- Reading: the hybrid-scored feed and the status of every feed.

CREATE OR REPLACE FUNCTION pgfeed._top_k(
    p_streams text[], p_popularity text, p_key_types text[], p_profile @vector@.vector, p_unit float8, p_saturation float8,
    p_user text, p_exclude text[], p_weights float8[], p_ceilings float8[], p_ef_search integer[], p_limit integer,
    p_depth integer, p_max_depth integer)
RETURNS TABLE (item_id text, score float8, similarity float8, freshness float8, popularity float8)
LANGUAGE plpython3u VOLATILE
SET search_path FROM CURRENT
-- The streams' plans are kept for the backend's life (PL/Python's SD), so no
-- call plans them again. PL/Python cannot ask the planner for a fast start (a
-- cursor's first rows) and a kept plan is one plan for every profile: plans
-- that would read a whole table before their first row are switched off, so
-- every stream walks its index and stops where the loop stops reading.
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET enable_sort = off
SET enable_hashjoin = off
SET enable_mergejoin = off
SET jit = off
-- relaxed: strict order drops the items a scan finds late, such as those of a
-- second cluster of interests near the profile; the bound below allows for it
SET hnsw.iterative_scan = 'relaxed_order'
-- a scan that stops at its memory limit would pass for a tier read to its end
SET hnsw.scan_mem_multiplier = 8
AS $python$
# pgfeed.topk: Fagin's threshold algorithm over the streams pgfeed.feed() built
if "pgfeed.topk" not in GD:
    plpy.execute("SELECT pgfeed._python_path()")
    import pgfeed.topk
    GD["pgfeed.topk"] = pgfeed.topk
topk = GD["pgfeed.topk"]
query = topk.Query(p_streams, p_popularity, p_key_types, '@vector@.vector', p_profile, p_unit, p_saturation, p_user,
                   p_exclude, p_weights, p_ceilings, p_ef_search, p_limit, p_depth, p_max_depth)
return topk.top_k(plpy, SD.setdefault("plans", {}), query)
$python$;
COMMENT ON FUNCTION pgfeed._top_k(text[], text, text[], @vector@.vector, float8, float8, text, text[], float8[], float8[],
                                  integer[], integer, integer, integer) IS
    'the threshold algorithm behind pgfeed.feed(): the k best items (and ties) read from sorted index streams';

CREATE OR REPLACE FUNCTION pgfeed._tier_ef_search(p_store text, p_ef_search integer) RETURNS integer[]
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
    -- A feed's ef_search is for a tier of half a million items or more. The
    -- greedy search of a smaller graph strays less, and a tier's first read is
    -- mostly its first search, so a smaller tier gets a list scaled by the
    -- square root of its size, not under pgvector's default 40. Measured
    -- (bench/README.md): at 81,000 items a list of 60 found what 200 found; at
    -- 810,000, 100 lost one user's feed and 200 did not. Sizes are the
    -- planner's (reltuples): a tier never counted gets the whole list.
    SELECT array_agg(CASE WHEN c.reltuples >= 0
                          THEN least(p_ef_search, greatest(40, ceil(p_ef_search * sqrt(c.reltuples / 500000))))::integer
                          ELSE p_ef_search END ORDER BY t)
      FROM generate_series(0, pgfeed._popularity_tiers() - 1) AS t
      LEFT JOIN (pg_index i JOIN pg_class c ON c.oid = i.indexrelid)
             ON i.indrelid = p_store::regclass AND pg_get_expr(i.indpred, i.indrelid) = format('(tier = %s)', t)
$$;
COMMENT ON FUNCTION pgfeed._tier_ef_search(text, integer) IS
    'hnsw.ef_search for each like-count tier of an item store: the feed''s, scaled down for smaller tiers';

CREATE OR REPLACE FUNCTION pgfeed.feed(
    feed text,
    user_id anyelement,
    "limit" integer DEFAULT 20,
    exclude anycompatiblearray DEFAULT NULL::text[],
    exclude_seen boolean DEFAULT true)
RETURNS TABLE (item_id text, score float8, similarity float8, freshness float8, popularity float8, because text)
-- SECURITY INVOKER: a role reads a feed with its own rights, those
-- pgfeed.grant_feed gave it on the feed's tables, and through its own
-- row-level security policies on the content table.
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
-- restored on return, so that the values set below and in _top_k (a tier's ef_search) stay in here
SET hnsw.ef_search = 40
SET hnsw.max_scan_tuples = 20000
AS $$
-- (its rows come from RETURN QUERY, which plpgsql_check takes for OUT variables never set)
-- @plpgsql_check_options: extra_warnings = false
DECLARE
    v_feed pgfeed.feed_config := pgfeed._feed(feed);
    v_store text := pgfeed._item_store(v_feed.feed_id);
    v_likes text := pgfeed._item_popularity(v_feed.feed_id);
    v_user text;
    v_exclude text[] := '{}'::text[];
    v_profile @vector@.vector;
    v_liked text[];                -- the profile's items of positive weight, and their embeddings
    v_liked_embeddings @vector@.vector[];
    v_content pgfeed.content_source;
    v_eligible text;
    v_columns text;
    v_tiers integer := pgfeed._popularity_tiers();
    v_streams text[] := array_fill(NULL::text, ARRAY[v_tiers + 2]);  -- nearest in each tier, newest, most liked
BEGIN
    IF v_feed.item_type IS NULL THEN
        RAISE EXCEPTION 'feed "%" has no content table', feed
            USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'attach one with pgfeed.attach_content(...)';
    END IF;
    IF "limit" IS NULL OR "limit" < 0 THEN
        RAISE EXCEPTION 'limit must be >= 0, got %', coalesce("limit"::text, 'NULL') USING ERRCODE = 'invalid_parameter_value';
    END IF;
    v_user := pgfeed._key_text(user_id, v_feed.user_type, feed, 'user');
    IF exclude IS NOT NULL THEN
        -- (checked as a whole first: unnest would take a composite array apart into columns)
        IF pg_typeof(exclude) NOT IN ('smallint[]'::regtype, 'integer[]'::regtype, 'bigint[]'::regtype, 'uuid[]'::regtype,
                                      'text[]'::regtype, 'character varying[]'::regtype) THEN
            RAISE EXCEPTION 'exclude must be an array of % keys; got %', v_feed.item_type, pg_typeof(exclude)
                USING ERRCODE = 'datatype_mismatch';
        END IF;
        v_exclude := ARRAY(SELECT pgfeed._key_text(e, v_feed.item_type, feed, 'item') FROM unnest(exclude) AS e);
    END IF;
    -- The streams' parameters: $1 profile, $2 freshness unit (seconds), $3
    -- popularity saturation, $4 user, $5 excluded items (typed as the keys, so
    -- that no row casts them). An item s is eligible if it is embedded, not
    -- excluded and (by default) not seen by the user.
    v_eligible := 's.embedding IS NOT NULL AND NOT s.item_id = ANY ($5)';
    -- Row-level security on the content table: an item is eligible only if
    -- the caller may see its row (the check is an index lookup a row read).
    SELECT * INTO v_content FROM pgfeed.content_source c WHERE c.feed_id = v_feed.feed_id;
    IF (SELECT relrowsecurity FROM pg_class WHERE oid = v_content.source) THEN
        v_eligible := v_eligible || format(' AND EXISTS (SELECT FROM %s r WHERE r.%I = s.item_id)',
                                           v_content.source, v_content.id_column);
    END IF;
    IF v_user IS NOT NULL AND v_feed.user_type IS NOT NULL THEN
        v_profile := pgfeed._current_profile(v_feed, v_user);
        IF v_profile IS NOT NULL THEN
            EXECUTE format('SELECT array_agg(w.item_id::text), array_agg(w.embedding) FROM (%s) AS w WHERE w.weight > 0',
                           pgfeed._profile_window_sql(v_feed, format('$1::%s', v_feed.user_type)))
               INTO v_liked, v_liked_embeddings USING v_user;
        END IF;
        IF exclude_seen THEN
            v_eligible := v_eligible || format(
                ' AND NOT EXISTS (SELECT FROM %s l WHERE l.user_id = $4 AND l.item_id = s.item_id)',
                pgfeed._interaction_log(v_feed.feed_id));
        END IF;
    END IF;
    IF "limit" = 0 THEN
        RETURN;
    END IF;
    -- What a stream yields of an eligible item s: its key, similarity,
    -- freshness and tier (pgfeed._top_k names them i, s, f, t, p). Freshness
    -- from epochs, which are infinite for infinite times (an age of -infinity,
    -- counted as 0, for 'infinity'; +infinity, freshness 0, for '-infinity'),
    -- where subtracting timestamps would fail; no time, no freshness.
    v_columns := $c$
        s.item_id::text AS i,
        coalesce(1 - (s.embedding OPERATOR(@vector@.<=>) $1), 0)::float8 AS s,
        CASE WHEN s.created_at IS NOT NULL
             THEN 1 / (1 + greatest(date_part('epoch', now()) - date_part('epoch', s.created_at), 0) / $2) ELSE 0 END AS f,
        s.tier::integer AS t
        $c$;
    IF v_profile IS NOT NULL AND v_feed.weight_similarity > 0 THEN
        FOR t IN 0 .. v_tiers - 1 LOOP
            v_streams[t + 1] := format('SELECT %s, NULL::float8 AS p FROM %s s WHERE %s AND s.tier = %s ORDER BY s.embedding OPERATOR(@vector@.<=>) $1',
                                       v_columns, v_store, v_eligible, t);
        END LOOP;
    END IF;
    IF v_feed.weight_freshness > 0 THEN
        v_streams[v_tiers + 1] := format('SELECT %s, NULL::float8 AS p FROM %s s WHERE %s AND s.created_at IS NOT NULL ORDER BY s.created_at DESC',
                               v_columns, v_store, v_eligible);
    END IF;
    v_streams[v_tiers + 2] := format($q$
        SELECT %s, least(1, ln(1 + p.popularity::float8) / ln($3)) AS p
          FROM %s p JOIN %s s ON s.item_id = p.item_id WHERE %s ORDER BY p.popularity DESC
        $q$, v_columns, v_likes, v_store, v_eligible);

    PERFORM set_config('hnsw.max_scan_tuples', greatest(20000, 2 * v_feed.search_max_depth)::text, true);
    -- because: the item of the profile (of positive weight) most similar to the returned one
    RETURN QUERY EXECUTE format($q$
        SELECT t.*, (SELECT w.i FROM unnest($15::text[], $16::@vector@.vector[]) AS w(i, e)
                      ORDER BY w.e OPERATOR(@vector@.<=>) s.embedding, w.i LIMIT 1)
          FROM pgfeed._top_k($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) AS t
          LEFT JOIN %2$s s ON s.item_id = t.item_id::%1$s
         ORDER BY t.score DESC, t.item_id::%1$s LIMIT $12
        $q$, v_feed.item_type, v_store)
        USING v_streams,
              format('SELECT p.item_id::text AS i, least(1, ln(1 + p.popularity::float8) / ln($2)) AS p FROM %s p '
                     'WHERE p.item_id = ANY ($1)', v_likes),
              ARRAY[v_feed.user_type::text, v_feed.item_type::text],
              v_profile, extract(epoch FROM v_feed.freshness_unit)::float8, v_feed.popularity_saturation::float8, v_user,
              v_exclude,
              ARRAY[v_feed.weight_similarity, v_feed.weight_freshness, v_feed.weight_popularity]::float8[],
              ARRAY(SELECT least(1, coalesce(ln(1 + pgfeed._tier_most_likes(t)) / ln(v_feed.popularity_saturation), 1))::float8
                      FROM generate_series(0, v_tiers - 1) AS t),
              pgfeed._tier_ef_search(v_store, v_feed.ef_search),
              "limit", v_feed.search_depth, v_feed.search_max_depth, v_liked, v_liked_embeddings;
END
$$;
COMMENT ON FUNCTION pgfeed.feed(text, anyelement, integer, anycompatiblearray, boolean) IS
    'a user''s feed, best first: score = w_sim*similarity + w_fresh*freshness + w_pop*popularity, found with the '
    'threshold algorithm over the similarity (an HNSW index a like-count tier), time and popularity indexes; '
    'items the user interacted with are left out unless exclude_seen is false; because: the item the user liked '
    '(of the profile''s) most similar to each (NULL on a cold start)';

-- SECURITY INVOKER, like feed(): what it reads, the role reads with its own rights.
CREATE OR REPLACE FUNCTION pgfeed.profile(feed text, user_id anyelement) RETURNS @vector@.vector
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $$
DECLARE
    v_feed pgfeed.feed_config := pgfeed._feed(feed);
BEGIN
    IF v_feed.user_type IS NULL THEN
        RETURN NULL;
    END IF;
    RETURN pgfeed._current_profile(v_feed, pgfeed._key_text(user_id, v_feed.user_type, feed, 'user'));
END
$$;
COMMENT ON FUNCTION pgfeed.profile(text, anyelement) IS
    'the profile vector feed() ranks a user''s feed by (NULL for a cold start): the normalized, weight-signed sum '
    'of the embeddings of the user''s last profile_size interactions';

CREATE OR REPLACE FUNCTION pgfeed._count_content(p_source pgfeed.content_source, p_feed pgfeed.feed_config,
                                                 OUT items bigint, OUT pending bigint)
LANGUAGE plpgsql VOLATILE
-- the search_path (and the reading of string literals) the condition was checked with; every pgfeed name here is
-- qualified
SET search_path = pg_catalog, pg_temp
SET standard_conforming_strings = on
SET constraint_exclusion = off
AS $$
DECLARE
    v_keys text[];
    v_page record;
    v_after text;
BEGIN
    -- items: eligible content rows (and rows the condition fails on, kept as
    -- failed items); pending: queued, or eligible but never brought in
    -- (triggers skipped), and not failed
    BEGIN
        PERFORM pgfeed._lock_source(p_source.source, p_feed.name);
        PERFORM pgfeed._require_source(p_source.source, p_source.source_name, p_source.watched, p_feed.name);
        BEGIN
            EXECUTE format('SELECT array_agg(r.%I::text) FROM %s AS r WHERE coalesce((%s)::boolean, false)',
                           p_source.id_column, p_source.source, coalesce(p_source.condition, 'true'))
               INTO v_keys;
        EXCEPTION WHEN data_exception OR syntax_error_or_access_rule_violation THEN
            -- (a row the condition fails on: each row alone)
            v_keys := '{}';
            LOOP
                v_page := pgfeed._read_content(p_source, p_feed.item_type, NULL, v_after, 1000);
                EXIT WHEN v_page.ids IS NULL;
                v_keys := v_keys || ARRAY(SELECT k FROM unnest(v_page.ids, v_page.eligible, v_page.errors) AS u(k, ok, err)
                                           WHERE ok OR err IS NOT NULL);
                v_after := v_page.last_key;
            END LOOP;
        END;
        RAISE SQLSTATE 'PF001';  -- read: the lock goes (pgfeed._lock_source)
    EXCEPTION WHEN SQLSTATE 'PF001' THEN
        NULL;
    END;
    items := coalesce(cardinality(v_keys), 0);
    EXECUTE format($q$
        SELECT count(*) FROM (
            SELECT q.item_id FROM pgfeed.embedding_queue q WHERE q.feed_id = $1 AND q.failed_at IS NULL
            UNION
            (SELECT k FROM unnest($2::text[]) AS k WHERE NOT EXISTS (SELECT FROM %1$s s WHERE s.item_id = k::%2$s)
             EXCEPT
             SELECT q.item_id FROM pgfeed.embedding_queue q WHERE q.feed_id = $1 AND q.failed_at IS NOT NULL)) AS p
        $q$, pgfeed._item_store(p_feed.feed_id), p_feed.item_type)
       INTO pending USING p_feed.feed_id, v_keys;
END
$$;
COMMENT ON FUNCTION pgfeed._count_content(pgfeed.content_source, pgfeed.feed_config) IS
    'a feed''s eligible content rows and pending items, read with the caller''s rights';

CREATE OR REPLACE FUNCTION pgfeed.status()
RETURNS TABLE (feed text, mode text, model text, dimensions integer, switching_to text, items bigint, embedded bigint,
               pending bigint, failed bigint, oldest_pending interval, interactions bigint, profiles bigint,
               profiles_pending bigint, counts_pending bigint, problem text)
-- SECURITY INVOKER: a role sees the feeds granted to it (row-level security
-- on pgfeed.feed_config) and counts with the rights grant_feed gave it.
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
-- a table an open ALTER holds makes its feed's row say so, and holds up no other
SET lock_timeout = '1s'
AS $$
DECLARE
    v_feed pgfeed.feed_config;
    v_source pgfeed.content_source;
    v_live text;  -- what keeps the feed from reading its tables now
BEGIN
    FOR v_feed IN SELECT * FROM pgfeed.feed_config ORDER BY name LOOP
        feed := v_feed.name; mode := v_feed.mode; model := v_feed.model; dimensions := v_feed.dimensions;
        switching_to := v_feed.next_model;
        items := NULL; embedded := NULL; pending := NULL; failed := NULL; interactions := 0; profiles := 0;
        profiles_pending := 0; counts_pending := 0; oldest_pending := NULL;
        -- one feed's broken table is that feed's problem, not the others'
        BEGIN
            v_live := pgfeed._content_problem(v_feed);
            problem := coalesce(v_live,
                                (SELECT p.problem FROM pgfeed.feed_problem p WHERE p.feed_id = v_feed.feed_id
                                  ORDER BY p.seq DESC LIMIT 1));
            SELECT now() - min(q.queued_at) INTO oldest_pending
              FROM pgfeed.embedding_queue q WHERE q.feed_id = v_feed.feed_id AND q.failed_at IS NULL;
            PERFORM FROM pgfeed.content_source s WHERE s.feed_id = v_feed.feed_id;
            SELECT * INTO v_source FROM pgfeed.content_source s WHERE s.feed_id = v_feed.feed_id;
            IF FOUND AND v_live IS NULL THEN
                -- embedded; failed: kept with an error, in the item store or the queue, and not queued again (retry)
                EXECUTE format($q$
                    SELECT (SELECT count(*) FROM %1$s WHERE embedding IS NOT NULL),
                           (SELECT count(*) FROM (
                                SELECT s.item_id::text FROM %1$s s WHERE s.error IS NOT NULL
                                UNION
                                SELECT q.item_id FROM pgfeed.embedding_queue q WHERE q.feed_id = $1 AND q.failed_at IS NOT NULL
                                EXCEPT
                                SELECT q.item_id FROM pgfeed.embedding_queue q WHERE q.feed_id = $1 AND q.failed_at IS NULL) AS f)
                    $q$, pgfeed._item_store(v_feed.feed_id))
                   INTO embedded, failed USING v_feed.feed_id;
                -- items and pending read the content table, with the caller's rights: only if it may
                IF has_table_privilege(v_source.source, 'SELECT') THEN
                    SELECT c.items, c.pending INTO items, pending FROM pgfeed._count_content(v_source, v_feed) AS c;
                END IF;
            END IF;
            IF v_feed.user_type IS NOT NULL THEN
                -- what workers have yet to store: profiles (feed() computes them meanwhile) and like counts
                EXECUTE format('SELECT (SELECT count(*) FROM %s), (SELECT count(*) FROM %s), '
                               '(SELECT count(DISTINCT user_id) FROM %s), (SELECT count(DISTINCT item_id) FROM %s)',
                               pgfeed._interaction_log(v_feed.feed_id), pgfeed._profile(v_feed.feed_id),
                               pgfeed._profile_dirty(v_feed.feed_id), pgfeed._popularity_delta(v_feed.feed_id))
                   INTO interactions, profiles, profiles_pending, counts_pending;
            END IF;
        EXCEPTION WHEN OTHERS THEN
            problem := coalesce(problem || '; ', '') || 'status: ' || SQLERRM;
        END;
        RETURN NEXT;
    END LOOP;
END
$$;
COMMENT ON FUNCTION pgfeed.status() IS
    'one row a feed granted to the role: mode, model (and the model a switch is building), eligible content rows, '
    'embedded, pending (queued or never embedded) and failed items, age of the oldest queued work, logged '
    'interactions, stored profiles, users whose profile and items whose like count a worker has yet to store, and '
    'the problem that keeps the feed from following its tables (with its fix)';
