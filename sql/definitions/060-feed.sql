-- Reading: the hybrid-scored feed and the status of every feed.

CREATE OR REPLACE FUNCTION pgfeed._top_k(
    p_streams text[], p_popularity text, p_key_types text[], p_profile @vector@.vector, p_unit float8, p_saturation float8,
    p_user text, p_exclude text[], p_ranked_at float8, p_filter jsonb, p_weights float8[], p_ceilings float8[],
    p_ef_search integer[], p_limit integer, p_depth integer, p_max_depth integer, p_after_score float8,
    p_after_item text, p_max_per_group integer)
RETURNS TABLE (item_id text, score float8, similarity float8, freshness float8, popularity float8)
LANGUAGE plpython3u VOLATILE
SET search_path FROM CURRENT
-- The streams' plans are kept for the backend's life (PL/Python's SD), so no
-- call plans them again. PL/Python cannot ask the planner for a fast start (a
-- cursor's first rows) and a kept plan is one plan for every profile: plans
-- that would read a whole table before their first row are switched off, so
-- every stream walks its index and stops where the loop stops reading (the
-- exact scan, which reads everything, switches them on: pgfeed.topk).
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
after = None if p_after_item is None else (p_after_score, p_after_item)
query = topk.Query(p_streams, p_popularity, p_key_types, '@vector@.vector', p_profile, p_unit, p_saturation, p_user,
                   p_exclude, p_ranked_at, p_filter, p_weights, p_ceilings, p_ef_search, p_limit, p_depth, p_max_depth,
                   after, p_max_per_group)
return topk.top_k(plpy, SD.setdefault("plans", {}), query)
$python$;
COMMENT ON FUNCTION pgfeed._top_k(text[], text, text[], @vector@.vector, float8, float8, text, text[], float8, jsonb,
                                  float8[], float8[], integer[], integer, integer, integer, float8, text, integer) IS
    'the threshold algorithm behind pgfeed.feed(): one page, best first, read from sorted index streams';

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
    -- planner's (reltuples): a tier never counted gets the whole list (the
    -- most liked, twice it).
    -- The most liked tier is the exception: a list of 1% of its items, up to
    -- twice the feed's. Its items' popularity lifts them over the others', so
    -- a page is mostly theirs, and a profile between two interests sent its
    -- graph's search astray at shorter lists: at 1M (46,532 items in it),
    -- with 160 users' profiles, a search at 200 found fewer than half of the
    -- tier's 20 nearest for 12 of them, and 8 feeds' recall@20 was under 0.9
    -- (down to 0); at 400 every search found all 20, and no feed was under
    -- 0.9. At 100k (4,602 items) 40 lost no user's item, and 400 cost 1.4 ms.
    SELECT array_agg(CASE WHEN t = pgfeed._popularity_tiers() - 1
                          THEN least(1000, 2 * p_ef_search,
                                     CASE WHEN c.reltuples >= 0 THEN greatest(40, ceil(c.reltuples / 100)) END)::integer
                          WHEN c.reltuples >= 0
                          THEN least(p_ef_search, greatest(40, ceil(p_ef_search * sqrt(c.reltuples / 500000))))::integer
                          ELSE p_ef_search END ORDER BY t)
      FROM generate_series(0, pgfeed._popularity_tiers() - 1) AS t
      LEFT JOIN (pg_index i JOIN pg_class c ON c.oid = i.indexrelid)
             ON i.indrelid = p_store::regclass AND pg_get_expr(i.indpred, i.indrelid) = format('(tier = %s)', t)
$$;
COMMENT ON FUNCTION pgfeed._tier_ef_search(text, integer) IS
    'hnsw.ef_search for each like-count tier of an item store: the feed''s, scaled down for smaller tiers; 1% of the '
    'most liked tier''s items, up to twice the feed''s';

CREATE OR REPLACE FUNCTION pgfeed._cursor_check_sql(p_payload text, p_feed_id text, p_user text, p_filter text)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$ SELECT format($q$left(md5(concat_ws('/', %s, %s, %s, %s)), 16)$q$, p_payload, p_feed_id, p_user, p_filter) $$;
COMMENT ON FUNCTION pgfeed._cursor_check_sql(text, text, text, text) IS
    'the SQL expression of a cursor''s check, from SQL expressions of its payload, feed, user and filter';

CREATE OR REPLACE FUNCTION pgfeed._cursor_sql(p_ranked_at text, p_log_position text, p_score text, p_item text,
                                              p_feed_id text, p_user text, p_filter text) RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$
    -- The SQL of a cursor, from SQL expressions of what it holds, written
    -- into the statement that returns a page's rows (a function call a row
    -- cost 0.14 ms): v1.<payload>.<check>. The payload (JSON in base64url)
    -- holds the ranking's time, the user's last log position then, the row's
    -- score and key (float8 as JSON: the shortest text that reads back
    -- exactly); the check ties it to the feed, user and filter it was made
    -- for, and shows an altered one.
    SELECT format($q$'v1.' || %1$s || '.' || %2$s$q$, c.payload, pgfeed._cursor_check_sql(c.payload, p_feed_id, p_user, p_filter))
      FROM (SELECT format($q$rtrim(translate(encode(convert_to(jsonb_build_object('t', %s, 'l', %s, 's', %s, 'i', %s)::text,
                                                               'UTF8'), 'base64'), E'+/\n', '-_'), '=')$q$,
                          p_ranked_at, p_log_position, p_score, p_item) AS payload) AS c
$$;
COMMENT ON FUNCTION pgfeed._cursor_sql(text, text, text, text, text, text, text) IS
    'the SQL expression of the cursor of a feed row, from SQL expressions of what it holds';

CREATE OR REPLACE FUNCTION pgfeed._read_cursor(p_cursor text, p_feed_id integer, p_user text, p_filter jsonb,
                                               OUT ranked_at float8, OUT log_position bigint, OUT score float8,
                                               OUT item text)
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $$
DECLARE
    v_parts text[] := string_to_array(p_cursor, '.');
    v_payload jsonb;
    v_check text;
BEGIN
    BEGIN
        v_payload := convert_from(decode(rpad(translate(v_parts[2], '-_', '+/'), (length(v_parts[2]) + 3) / 4 * 4, '='),
                                         'base64'), 'UTF8')::jsonb;
        ranked_at := (v_payload->>'t')::float8; log_position := (v_payload->>'l')::bigint;
        score := (v_payload->>'s')::float8; item := v_payload->>'i';
    EXCEPTION WHEN data_exception OR invalid_text_representation THEN
        v_payload := NULL;
    END;
    IF cardinality(v_parts) <> 3 OR v_parts[1] <> 'v1' OR jsonb_typeof(v_payload) IS DISTINCT FROM 'object'
       OR ranked_at IS NULL OR score IS NULL OR item IS NULL
       -- (a time PostgreSQL can hold, a finite score: NaN would sort every row the same)
       OR NOT ranked_at BETWEEN -1e10 AND 1e10 OR score IN ('NaN', 'Infinity', '-Infinity') THEN
        RAISE EXCEPTION 'malformed cursor: %', left(p_cursor, 60)
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'pass the cursor column of the last row of a page of this feed as after, or NULL for a first page';
    END IF;
    EXECUTE 'SELECT ' || pgfeed._cursor_check_sql('$1', '$2', '$3', '$4') INTO v_check
      USING v_parts[2], p_feed_id, p_user, p_filter;
    IF v_parts[3] IS DISTINCT FROM v_check THEN
        RAISE EXCEPTION 'cursor was made for another feed, user or filter, or altered'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'page with the feed, user and filter of the first page; start again with after => NULL';
    END IF;
END
$$;
COMMENT ON FUNCTION pgfeed._read_cursor(text, integer, text, jsonb) IS
    'what a cursor holds, once it is known to be one of this feed, user and filter: fails with a clear message if not';

CREATE OR REPLACE FUNCTION pgfeed._filter(p_content pgfeed.content_source, p_filter jsonb, p_feed text) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE
SET search_path FROM CURRENT
AS $$
DECLARE
    v_key text;
    v_values jsonb;
    v_type regtype;
    v_given jsonb;
    v_value jsonb;
    v_choices jsonb[];
    v_filter jsonb := '{}'::jsonb;
BEGIN
    -- feed()'s filter, {"column": value} or {"column": [value, ...]}, as
    -- what the item store's attributes are matched against: {"column":
    -- [{"column": value}, ...]}, each value as the column's type stores it
    -- (so that 7 and "7" both find an integer 7; null finds NULL).
    IF jsonb_typeof(p_filter) IS DISTINCT FROM 'object' THEN
        RAISE EXCEPTION 'filter must be a JSON object {"column": value or [values]}, got %', left(p_filter::text, 40)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOR v_key, v_values IN SELECT * FROM jsonb_each(p_filter) LOOP
        IF NOT v_key = ANY (coalesce(p_content.filter_columns, '{}')) THEN
            RAISE EXCEPTION 'filter key "%" is not a filter column of feed "%"', v_key, p_feed
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = CASE WHEN p_content.filter_columns IS NULL
                                  THEN 'the feed has none: attach its content with filter_columns => ARRAY[...]'
                                  ELSE format('its filter columns: %s', array_to_string(p_content.filter_columns, ', ')) END;
        END IF;
        v_type := (SELECT (c->>'type')::regtype FROM jsonb_array_elements(p_content.watched) AS w(c) WHERE c->>'name' = v_key);
        IF jsonb_typeof(v_values) = 'array' AND jsonb_array_length(v_values) > 1000 THEN
            RAISE EXCEPTION 'filter "%" lists % values; at most 1,000', v_key, jsonb_array_length(v_values)
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'add a filter column that groups them (a generated column), and filter on that';
        END IF;
        v_choices := '{}';
        FOR v_given IN SELECT * FROM jsonb_array_elements(CASE jsonb_typeof(v_values) WHEN 'array' THEN v_values
                                                                    ELSE jsonb_build_array(v_values) END) LOOP
            BEGIN
                v_value := CASE WHEN jsonb_typeof(v_given) = 'null' THEN v_given
                                WHEN jsonb_typeof(v_given) NOT IN ('string', 'number', 'boolean') THEN NULL
                                WHEN v_type IN ('smallint', 'integer', 'bigint') THEN to_jsonb((v_given #>> '{}')::bigint)
                                WHEN v_type = 'boolean'::regtype THEN to_jsonb((v_given #>> '{}')::boolean)
                                WHEN v_type = 'uuid'::regtype THEN to_jsonb((v_given #>> '{}')::uuid)
                                ELSE to_jsonb(v_given #>> '{}') END;
            EXCEPTION WHEN data_exception THEN
                v_value := NULL;
            END;
            IF v_value IS NULL THEN
                RAISE EXCEPTION 'filter value % of "%" does not fit the column''s type, %', left(v_given::text, 40), v_key,
                                v_type
                    USING ERRCODE = 'invalid_parameter_value';
            END IF;
            v_choices := v_choices || jsonb_build_object(v_key, v_value);
        END LOOP;
        v_filter := v_filter || jsonb_build_object(v_key, to_jsonb(v_choices));
    END LOOP;
    RETURN v_filter;
END
$$;
COMMENT ON FUNCTION pgfeed._filter(pgfeed.content_source, jsonb, text) IS
    'checks feed()''s filter against the feed''s filter columns and types; returns what the item store is matched against';

CREATE OR REPLACE FUNCTION pgfeed._store_size(p_store text) RETURNS float8
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
    -- The planner's count of an item store's rows, scaled to its size now as
    -- the planner scales it (rows a page times pages), NULL if never counted.
    SELECT CASE WHEN c.reltuples >= 0 AND c.relpages > 0
                THEN c.reltuples / c.relpages * (pg_relation_size(c.oid) / current_setting('block_size')::integer) END
      FROM pg_class c WHERE c.oid = p_store::regclass
$$;
COMMENT ON FUNCTION pgfeed._store_size(text) IS 'how many items an item store holds, as the planner estimates it (NULL: unknown)';

CREATE OR REPLACE FUNCTION pgfeed.feed(
    feed text,
    user_id anyelement,
    "limit" integer DEFAULT 20,
    exclude anycompatiblearray DEFAULT NULL::text[],
    exclude_seen boolean DEFAULT true,
    after text DEFAULT NULL,
    filter jsonb DEFAULT NULL)
RETURNS TABLE (item_id text, score float8, similarity float8, freshness float8, popularity float8, because text,
               cursor text)
-- SECURITY INVOKER: a role reads a feed with its own rights, those
-- pgfeed.grant_feed gave it on the feed's tables, and through its own
-- row-level security policies on the content table.
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
-- restored on return, so that the values set below and in _top_k (a tier's ef_search) stay in here
SET hnsw.ef_search = 40
SET hnsw.max_scan_tuples = 20000
-- a cursor's time and score as JSON: every digit, whatever the session says (else a page would begin elsewhere)
SET extra_float_digits = 3
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
    v_filter jsonb;                -- the filter as the item store's attributes are matched against it
    v_filter_sql text;
    v_impressions integer[];       -- the impression tables (interactions of weight 0)
    v_ranked_at float8;            -- the ranking's time (epoch seconds): the first page's
    v_position bigint;             -- the user's last log position at the first page
    v_after_score float8;          -- the cursor's row: the page begins after it
    v_after_item text;
    v_until text;                  -- the profile's log position on a later page that came after new likes
    v_eligible text;
    v_columns text;
    v_similarity text;             -- the SQL of an item s's similarity, freshness and group
    v_freshness text;
    v_group text;                  -- (of a row, to be qualified; NULL: no group column)
    v_size float8;
    v_tiers integer := pgfeed._popularity_tiers();
    -- nearest in each tier, newest, most liked; or all of them, by score (exact)
    v_streams text[] := array_fill(NULL::text, ARRAY[v_tiers + 3]);
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
    SELECT * INTO v_content FROM pgfeed.content_source c WHERE c.feed_id = v_feed.feed_id;
    IF filter IS NOT NULL THEN
        v_filter := pgfeed._filter(v_content, filter, feed);
    END IF;
    -- A later page ranks as the first did: at its time, by its profile.
    IF after IS NOT NULL THEN
        SELECT c.ranked_at, c.log_position, c.score, c.item INTO v_ranked_at, v_position, v_after_score, v_after_item
          FROM pgfeed._read_cursor(after, v_feed.feed_id, v_user, v_filter) AS c;
        BEGIN
            EXECUTE format('SELECT $1::%s::text', v_feed.item_type) INTO STRICT v_after_item USING v_after_item;
        EXCEPTION WHEN data_exception THEN
            RAISE EXCEPTION 'malformed cursor: its item is not a key of type %', v_feed.item_type
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'pass the cursor column of the last row of a page of this feed as after, or NULL for a first page';
        END;
    ELSE
        v_ranked_at := date_part('epoch', now());
    END IF;
    -- The streams' parameters: $1 profile, $2 freshness unit (seconds), $3
    -- popularity saturation, $4 user, $5 excluded items (typed as the keys, so
    -- that no row casts them), $6 the ranking's time, $7 the weights, $8 the
    -- filter. An item s is eligible if it is embedded, not excluded, (by
    -- default) not seen by the user, and matches the filter.
    -- each key of the filter: one of its values (an index lookup where the filter is selective)
    v_filter_sql := coalesce((SELECT string_agg(format(
        ' AND s.attributes @> ANY (ARRAY(SELECT jsonb_array_elements($8 -> %L)))', k), '' ORDER BY k)
        FROM jsonb_object_keys(v_filter) AS k), '');
    v_eligible := 's.embedding IS NOT NULL AND NOT s.item_id = ANY ($5)' || v_filter_sql;
    -- Row-level security on the content table: an item is eligible only if
    -- the caller may see its row (the check is an index lookup a row read).
    IF (SELECT relrowsecurity FROM pg_class WHERE oid = v_content.source) THEN
        v_eligible := v_eligible || format(' AND EXISTS (SELECT FROM %s r WHERE r.%I = s.item_id)',
                                           v_content.source, v_content.id_column);
    END IF;
    IF v_user IS NOT NULL AND v_feed.user_type IS NOT NULL THEN
        IF after IS NULL THEN
            EXECUTE format('SELECT max(l.seq) FROM %s l WHERE l.user_id = $1::%s AND l.weight <> 0',
                           pgfeed._interaction_log(v_feed.feed_id), v_feed.user_type)
               INTO v_position USING v_user;
        ELSE
            -- the user liked since the first page: the profile the log held then
            EXECUTE format('SELECT CASE WHEN max(l.seq) IS DISTINCT FROM $2 THEN coalesce($2, 0)::text END '
                           'FROM %s l WHERE l.user_id = $1::%s AND l.weight <> 0', pgfeed._interaction_log(v_feed.feed_id),
                           v_feed.user_type)
               INTO v_until USING v_user, v_position;
        END IF;
        IF v_until IS NULL THEN
            v_profile := pgfeed._current_profile(v_feed, v_user);
        ELSE
            EXECUTE format('SELECT c.embedding FROM (%s) AS c',
                           pgfeed._profile_sql(v_feed, format('$1::%s', v_feed.user_type), v_until))
               INTO v_profile USING v_user;
        END IF;
        IF v_profile IS NOT NULL THEN
            EXECUTE format('SELECT array_agg(w.item_id::text), array_agg(w.embedding) FROM (%s) AS w WHERE w.weight > 0',
                           pgfeed._profile_window_sql(v_feed, format('$1::%s', v_feed.user_type), v_until))
               INTO v_liked, v_liked_embeddings USING v_user;
        END IF;
        IF exclude_seen THEN
            -- liked (or disliked, or rated) and shown items; shown ones only for seen_for, if the feed has one,
            -- as of the ranking's time
            v_impressions := ARRAY(SELECT s.source_id FROM pgfeed.interaction_source s
                                    WHERE s.feed_id = v_feed.feed_id AND s.weight = 0 AND s.weight_expression IS NULL);
            v_eligible := v_eligible || format(
                ' AND NOT EXISTS (SELECT FROM %s l WHERE l.user_id = $4 AND l.item_id = s.item_id%s)',
                pgfeed._interaction_log(v_feed.feed_id),
                CASE WHEN v_feed.seen_for IS NOT NULL AND v_impressions <> '{}'
                     THEN format(' AND (NOT l.source_id = ANY (%L::integer[]) OR l.created_at IS NULL '
                                 'OR l.created_at > to_timestamp($6) - %L::interval)', v_impressions, v_feed.seen_for) END);
        END IF;
    END IF;
    IF "limit" = 0 THEN
        RETURN;
    END IF;
    -- What a stream yields of an eligible item s: its key, similarity,
    -- freshness, tier and group (pgfeed._top_k names them i, s, f, t, g; p is
    -- popularity). Freshness from epochs, which are infinite for infinite
    -- times (an age of -infinity, counted as 0, for 'infinity'; +infinity,
    -- freshness 0, for '-infinity'), where subtracting timestamps would fail;
    -- no time, no freshness.
    v_similarity := 'coalesce(1 - (s.embedding OPERATOR(@vector@.<=>) $1), 0)::float8';
    v_freshness := $c$CASE WHEN s.created_at IS NOT NULL
                           THEN 1 / (1 + greatest($6 - date_part('epoch', s.created_at), 0) / $2) ELSE 0 END$c$;
    v_group := CASE WHEN v_content.group_column IS NOT NULL THEN format('attributes ->> %L', v_content.group_column) END;
    v_columns := format('s.item_id::text AS i, %s AS s, %s AS f, s.tier::integer AS t, %s AS g',
                        v_similarity, v_freshness, coalesce('s.' || v_group, 'NULL::text'));
    -- Exact where it is cheap: a store of up to exact_max_items items (as the
    -- planner counts them), or as many matching a filter, is ranked whole.
    v_size := pgfeed._store_size(v_store);
    IF v_size IS NULL OR (v_size > v_feed.exact_max_items AND v_filter IS NOT NULL) THEN
        EXECUTE format('SELECT count(*) FROM (SELECT FROM %s s WHERE s.embedding IS NOT NULL %s LIMIT $1) AS s',
                       v_store, v_filter_sql)
           INTO v_size USING v_feed.exact_max_items + 1, NULL::text, NULL::text, NULL::text, NULL::text, NULL::text,
                             NULL::text, v_filter;
    END IF;
    IF v_size <= v_feed.exact_max_items THEN
        -- Every eligible item's similarity and freshness, and the highest
        -- score its like-count tier allows ($9: each tier's highest
        -- popularity), computed once (OFFSET 0: not again for the order);
        -- the first $10 by that bound (a bounded sort; pgfeed.topk sorts more
        -- if the page needs more), whose like counts pgfeed.topk looks up by
        -- key. A join of every like count cost more than the scan.
        v_streams[v_tiers + 3] := format($q$
            SELECT x.k::text AS i, x.s, x.f, x.t, NULL::float8 AS p, %1$s AS g FROM (
                SELECT s.item_id AS k, %2$s AS s, %3$s AS f, s.tier::integer AS t, s.attributes
                  FROM %4$s s WHERE %5$s OFFSET 0) AS x
             ORDER BY $7[1] * x.s + $7[2] * x.f + $7[3] * $9[x.t + 1] DESC, x.k %6$s
             LIMIT $10
            $q$, coalesce('x.' || v_group, 'NULL::text'), v_similarity, v_freshness, v_store, v_eligible,
            CASE WHEN v_feed.item_type IN ('text'::regtype, 'character varying'::regtype) THEN 'COLLATE "C"' END);
    ELSE
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
    END IF;

    PERFORM set_config('hnsw.max_scan_tuples', greatest(20000, 2 * v_feed.search_max_depth)::text, true);
    -- because: the item of the profile (of positive weight) most similar to the returned one
    RETURN QUERY EXECUTE format($q$
        SELECT t.item_id, t.score, t.similarity, t.freshness, t.popularity,
               (SELECT w.i FROM unnest($17::text[], $18::@vector@.vector[]) AS w(i, e)
                 ORDER BY w.e OPERATOR(@vector@.<=>) s.embedding, w.i LIMIT 1),
               %3$s
          FROM pgfeed._top_k($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $19, $22, $23)
               WITH ORDINALITY AS t
          LEFT JOIN %1$s s ON s.item_id = t.item_id::%2$s
         ORDER BY t.ordinality
        $q$, v_store, v_feed.item_type, pgfeed._cursor_sql('$9', '$21', 't.score', 't.item_id', '$20', '$7', '$10'))
        USING v_streams,
              format('SELECT p.item_id::text AS i, least(1, ln(1 + p.popularity::float8) / ln($2)) AS p FROM %s p '
                     'WHERE p.item_id = ANY ($1)', v_likes),
              ARRAY[v_feed.user_type::text, v_feed.item_type::text],
              v_profile, extract(epoch FROM v_feed.freshness_unit)::float8, v_feed.popularity_saturation::float8, v_user,
              v_exclude, v_ranked_at, v_filter,
              ARRAY[v_feed.weight_similarity, v_feed.weight_freshness, v_feed.weight_popularity]::float8[],
              ARRAY(SELECT least(1, coalesce(ln(1 + pgfeed._tier_most_likes(t)) / ln(v_feed.popularity_saturation), 1))::float8
                      FROM generate_series(0, v_tiers - 1) AS t),
              pgfeed._tier_ef_search(v_store, v_feed.ef_search),
              "limit", v_feed.search_depth, v_feed.search_max_depth, v_liked, v_liked_embeddings, v_after_score,
              v_feed.feed_id, v_position, v_after_item, v_feed.max_per_group;
END
$$;
COMMENT ON FUNCTION pgfeed.feed(text, anyelement, integer, anycompatiblearray, boolean, text, jsonb) IS
    'a user''s feed, best first: score = w_sim*similarity + w_fresh*freshness + w_pop*popularity, ranked exactly up '
    'to exact_max_items items, else found with the threshold algorithm over the similarity (an HNSW index a like-count '
    'tier), time and popularity indexes; items the user interacted with (and was shown, for seen_for) are left out unless exclude_seen is false; '
    'filter: {"column": value or [values]} over the filter columns; at most max_per_group items of a group a page; '
    'because: the liked item (of the profile''s) most similar to each (NULL on a cold start); cursor: pass the last '
    'row''s as after for the next page of the same ranking';

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
