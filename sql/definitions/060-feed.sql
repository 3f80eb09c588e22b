-- Reading: the hybrid-scored feed and the status of every feed.

CREATE OR REPLACE FUNCTION pgfeed.feed(
    feed text,
    user_id anyelement,
    "limit" integer DEFAULT 20,
    exclude anycompatiblearray DEFAULT NULL::text[],
    exclude_seen boolean DEFAULT true)
RETURNS TABLE (item_id text, score float8, similarity float8, freshness float8, popularity float8)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path FROM CURRENT
-- restored on return, so that the per-feed values set below stay in here.
-- The streams are cursors read a little at a time: plan them for their first
-- rows, and without JIT, whose compile time a cursor's whole-table cost estimate
-- would otherwise buy on every call.
SET cursor_tuple_fraction = 0.0001
SET jit = off
-- relaxed: strict order drops the items a scan finds late, such as those of a
-- second cluster of interests near the profile; the bound below allows for it
SET hnsw.iterative_scan = 'relaxed_order'
SET hnsw.ef_search = 40
SET hnsw.max_scan_tuples = 20000
AS $$
DECLARE
    v_feed pgfeed.feed_config := pgfeed._feed(feed);
    v_store text := pgfeed._item_store(v_feed.feed_id);
    v_likes text := pgfeed._item_popularity(v_feed.feed_id);
    v_unit float8 := extract(epoch FROM v_feed.freshness_unit);  -- seconds
    v_user text;
    v_exclude text[];
    v_profile vector;
    v_eligible text;
    v_components text;
    v_merge text;
    v_region text;
    -- the three streams: 1 nearest to the profile, 2 newest, 3 most liked
    v_cursors text[] := ARRAY[NULL, NULL, NULL];  -- their portals; read through v_cursor
    v_cursor refcursor;
    v_weights float8[] := ARRAY[v_feed.weight_similarity, v_feed.weight_freshness, v_feed.weight_popularity];
    v_bounds float8[] := ARRAY[0, 0, 0];  -- the last value of each stream's component
    v_read integer[] := ARRAY[0, 0, 0];   -- rows read from each stream
    v_lowest float8[] := ARRAY[-1, 0, 0];  -- the lowest value of each component
    v_slopes float8[] := ARRAY[NULL, NULL, NULL];  -- weighted value each stream fell by per millisecond, last read
    v_stream integer;
    v_started timestamptz;
    v_first float8;
    v_before float8;
    v_gap float8;  -- how far the threshold is above the k-th score
    v_id text; v_similarity float8; v_freshness float8; v_popularity float8;
    v_ids text[] := '{}'; v_scores float8[] := '{}'; v_similarities float8[] := '{}';
    v_freshnesses float8[] := '{}'; v_popularities float8[] := '{}';
    v_new_ids text[]; v_new_similarities float8[]; v_new_freshnesses float8[]; v_new_popularities float8[];
    v_kth float8;
    v_need float8;
    v_since timestamptz;
    v_min_likes float8;
    v_region_rows bigint;
    v_next_region integer;
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
        v_exclude := ARRAY(SELECT pgfeed._key_text(e, v_feed.item_type, feed, 'item') FROM unnest(exclude) AS e);
    END IF;
    -- an item s is eligible if it is embedded, not excluded and (by default) not seen by the user
    v_eligible := format('s.embedding IS NOT NULL AND NOT s.item_id = ANY (coalesce($5, ''{}'')::%s[])', v_feed.item_type);
    IF v_user IS NOT NULL AND v_feed.user_type IS NOT NULL THEN
        EXECUTE format('SELECT embedding FROM %s WHERE user_id = $1::%s', pgfeed._profile(v_feed.feed_id), v_feed.user_type)
           INTO v_profile USING v_user;
        IF exclude_seen THEN
            v_eligible := v_eligible || format(
                ' AND NOT EXISTS (SELECT FROM %s l WHERE l.user_id = $4::%s AND l.item_id = s.item_id)',
                pgfeed._interaction_log(v_feed.feed_id), v_feed.user_type);
        END IF;
    END IF;
    IF "limit" = 0 THEN
        RETURN;
    END IF;
    -- the components of an eligible item s
    v_components := format($c$
        s.item_id::text,
        coalesce(1 - (s.embedding <=> $1), 0)::float8,
        coalesce(1 / (1 + greatest(extract(epoch FROM now() - s.created_at)::float8, 0) / $2), 0)::float8,
        least(1, ln(1 + coalesce((SELECT p.popularity FROM %s p WHERE p.item_id = s.item_id), 0)::float8) / ln($3))::float8
        $c$, v_likes);

    -- Fagin's threshold algorithm over three sorted index streams of the
    -- eligible items: nearest to the profile (HNSW, iterative scan), newest
    -- (btree on time), most liked (btree on the like count). Every item a
    -- stream yields is scored exactly. The last value a stream yielded bounds
    -- that component for every item no stream yielded; once the k-th best
    -- score is at least the weighted sum of the bounds, no unseen item can
    -- enter the top k. The streams stay open and are read in turns (the rule
    -- is at the loop's head): which one pays depends on the data (similarities
    -- spread or bunched, like counts saturated or not). Without a profile
    -- (cold start) similarity is 0 and
    -- its stream is not read. Every stored item has a like count, so the
    -- popularity stream running out means every eligible item was seen.
    IF v_profile IS NOT NULL AND v_feed.weight_similarity > 0 THEN
        v_cursor := NULL;
        OPEN v_cursor NO SCROLL FOR EXECUTE format(
            'SELECT %s FROM %s s WHERE %s ORDER BY s.embedding <=> $1', v_components, v_store, v_eligible)
            USING v_profile, v_unit, v_feed.popularity_saturation, v_user, v_exclude;
        v_cursors[1] := v_cursor; v_bounds[1] := 1;
    END IF;
    IF v_feed.weight_freshness > 0 THEN
        v_cursor := NULL;
        OPEN v_cursor NO SCROLL FOR EXECUTE format(
            'SELECT %s FROM %s s WHERE %s AND s.created_at IS NOT NULL ORDER BY s.created_at DESC',
            v_components, v_store, v_eligible)
            USING v_profile, v_unit, v_feed.popularity_saturation, v_user, v_exclude;
        v_cursors[2] := v_cursor; v_bounds[2] := 1;
    END IF;
    v_cursor := NULL;
    OPEN v_cursor NO SCROLL FOR EXECUTE format(
        'SELECT %s FROM %s p JOIN %s s ON s.item_id = p.item_id WHERE %s ORDER BY p.popularity DESC',
        v_components, v_likes, v_store, v_eligible)
        USING v_profile, v_unit, v_feed.popularity_saturation, v_user, v_exclude;
    v_cursors[3] := v_cursor; v_bounds[3] := 1;

    -- the best k of what was read, and of newly read rows ($1 to $9)
    v_merge := format($q$
        SELECT array_agg(item_id ORDER BY score DESC, item_id::%1$s), array_agg(score ORDER BY score DESC, item_id::%1$s),
               array_agg(similarity ORDER BY score DESC, item_id::%1$s), array_agg(freshness ORDER BY score DESC, item_id::%1$s),
               array_agg(popularity ORDER BY score DESC, item_id::%1$s)
          FROM (SELECT * FROM (SELECT DISTINCT ON (item_id) *
                                 FROM (SELECT * FROM unnest($1, $2, $3, $4, $5)
                                       UNION ALL
                                       SELECT i, $11 * s + $12 * f + $13 * p, s, f, p FROM unnest($6, $7, $8, $9) AS n(i, s, f, p)
                                      ) AS c (item_id, score, similarity, freshness, popularity)
                                ORDER BY item_id) AS d
                 ORDER BY score DESC, item_id::%1$s LIMIT $10) AS t
        $q$, v_feed.item_type);

    -- The bounds of the streams are loose when many items share a component
    -- value (a popular item saturates at popularity 1, and so may thousands
    -- more). An unseen item can still enter the top k only if its freshness
    -- and popularity together make up for what its similarity (at most the
    -- similarity bound) leaves to reach the k-th score; that needs a minimum
    -- creation time and a minimum like count, a box that the btrees on both
    -- read directly. When the box holds no more rows than the streams have
    -- read, they are scored and merged and the result is exact; otherwise the
    -- streams are read on. Its limit keeps a failed try as cheap as the reads
    -- so far, and the tries are spaced out as reads double.
    v_region := format($q$
        SELECT %5$s FROM %1$s s JOIN %3$s p ON p.item_id = s.item_id
         WHERE %4$s AND ($6::timestamptz IS NULL OR s.created_at >= $6) AND ($7::float8 IS NULL OR p.popularity >= ceil($7)::bigint)  -- like counts are whole: an index condition
         LIMIT $8 + 1
        $q$, v_store, v_feed.item_type, v_likes, v_eligible, v_components);
    v_next_region := 2 * greatest(v_feed.search_depth, "limit");

    PERFORM set_config('hnsw.ef_search', v_feed.ef_search::text, true);
    PERFORM set_config('hnsw.max_scan_tuples', greatest(20000, 2 * v_feed.search_max_depth)::text, true);
    LOOP
        -- The next stream to read: first each open one once. Then the one that
        -- would close the gap soonest by itself at the pace of its last read;
        -- when none can (clustered similarities fall slowly, then steeply;
        -- saturated popularity does not fall), the one that fell fastest.
        SELECT i INTO v_stream FROM generate_subscripts(v_cursors, 1) AS i
         WHERE v_cursors[i] IS NOT NULL AND v_read[i] < v_feed.search_max_depth
         ORDER BY v_slopes[i] IS NOT NULL,
                  CASE WHEN v_weights[i] * (v_bounds[i] - v_lowest[i]) >= v_gap AND v_slopes[i] > 0
                       THEN v_gap / v_slopes[i] END NULLS LAST,
                  v_slopes[i] DESC, v_weights[i] * v_bounds[i] DESC, i
         LIMIT 1;
        EXIT WHEN v_stream IS NULL;  -- every stream read to its deepest
        v_first := NULL;
        v_before := v_bounds[v_stream];
        v_cursor := v_cursors[v_stream];
        v_started := clock_timestamp();
        v_new_ids := '{}'; v_new_similarities := '{}'; v_new_freshnesses := '{}'; v_new_popularities := '{}';
        FOR j IN 1 .. least(greatest(v_feed.search_depth, "limit", v_read[v_stream] / 2),
                            v_feed.search_max_depth - v_read[v_stream]) LOOP
            FETCH v_cursor INTO v_id, v_similarity, v_freshness, v_popularity;
            IF NOT FOUND THEN
                CLOSE v_cursor;
                v_cursors[v_stream] := NULL;
                EXIT;
            END IF;
            v_new_ids := v_new_ids || v_id; v_new_similarities := v_new_similarities || v_similarity;
            v_new_freshnesses := v_new_freshnesses || v_freshness; v_new_popularities := v_new_popularities || v_popularity;
            v_bounds[v_stream] := CASE v_stream WHEN 1 THEN v_similarity WHEN 2 THEN v_freshness ELSE v_popularity END;
            v_first := coalesce(v_first, v_bounds[v_stream]);
        END LOOP;
        v_read[v_stream] := v_read[v_stream] + cardinality(v_new_ids);
        IF v_cursors[v_stream] IS NULL AND v_stream = 2 THEN
            v_bounds[2] := 0;  -- every eligible item with a creation time was seen
        END IF;
        -- (A similarity stream that ran out still bounds by its last value: HNSW
        -- may stop at its scan limit.) A similarity bound that rose (the scan
        -- came upon a second cluster near the profile) makes the stream new
        -- again: read on before judging its pace.
        v_slopes[v_stream] := CASE WHEN v_bounds[v_stream] <= v_before THEN
            v_weights[v_stream] * coalesce(v_first - v_bounds[v_stream], 0)
            / greatest(extract(epoch FROM clock_timestamp() - v_started) * 1000, 0.001) END;
        EXECUTE v_merge INTO v_ids, v_scores, v_similarities, v_freshnesses, v_popularities
            USING v_ids, v_scores, v_similarities, v_freshnesses, v_popularities,
                  v_new_ids, v_new_similarities, v_new_freshnesses, v_new_popularities,
                  "limit", v_feed.weight_similarity, v_feed.weight_freshness, v_feed.weight_popularity;
        v_kth := CASE WHEN cardinality(v_ids) = "limit" THEN v_scores["limit"] END;
        RAISE DEBUG 'pgfeed.feed: read % rows (nearest, newest, most liked), k-th score %, bounds %, slopes %',
            v_read, v_kth, v_bounds, v_slopes;
        EXIT WHEN v_cursors[3] IS NULL;  -- every eligible item was seen
        CONTINUE WHEN v_kth IS NULL;
        v_gap := v_weights[1] * v_bounds[1] + v_weights[2] * v_bounds[2] + v_weights[3] * v_bounds[3] - v_kth;
        EXIT WHEN v_gap <= 0;
        CONTINUE WHEN v_read[1] + v_read[2] + v_read[3] < v_next_region;
        v_next_region := 2 * (v_read[1] + v_read[2] + v_read[3]);
        -- what freshness and popularity must add up to for an unseen item to reach the k-th score
        v_need := v_kth - v_weights[1] * v_bounds[1];
        -- freshness >= (need - w_pop * popularity bound) / w_fresh, i.e. created at most unit * (1/freshness - 1) ago
        v_since := CASE WHEN v_weights[2] > 0 AND v_need > v_weights[3] * v_bounds[3]
                        THEN now() - v_feed.freshness_unit * (v_weights[2] / (v_need - v_weights[3] * v_bounds[3]) - 1) END;
        -- popularity >= (need - w_fresh * freshness bound) / w_pop, i.e. at least saturation^popularity - 1 likes
        v_min_likes := CASE WHEN v_weights[3] > 0 AND v_need > v_weights[2] * v_bounds[2]
                            THEN power(v_feed.popularity_saturation,
                                       (v_need - v_weights[2] * v_bounds[2]) / v_weights[3]) - 1 END;
        CONTINUE WHEN v_since IS NULL AND v_min_likes IS NULL;
        EXECUTE format('SELECT array_agg(r.i), array_agg(r.s), array_agg(r.f), array_agg(r.p) FROM (%s) AS r (i, s, f, p)', v_region)
           INTO v_new_ids, v_new_similarities, v_new_freshnesses, v_new_popularities
           USING v_profile, v_unit, v_feed.popularity_saturation, v_user,
                 v_exclude, v_since, v_min_likes, v_read[1] + v_read[2] + v_read[3];
        v_region_rows := coalesce(cardinality(v_new_ids), 0);
        RAISE DEBUG 'pgfeed.feed: region since %, likes >= %: % rows', v_since, v_min_likes, v_region_rows;
        IF v_region_rows <= v_read[1] + v_read[2] + v_read[3] THEN
            EXECUTE v_merge INTO v_ids, v_scores, v_similarities, v_freshnesses, v_popularities
                USING v_ids, v_scores, v_similarities, v_freshnesses, v_popularities,
                      v_new_ids, v_new_similarities, v_new_freshnesses, v_new_popularities,
                      "limit", v_feed.weight_similarity, v_feed.weight_freshness, v_feed.weight_popularity;
            EXIT;
        END IF;
    END LOOP;
    RETURN QUERY SELECT * FROM unnest(v_ids, v_scores, v_similarities, v_freshnesses, v_popularities);
END
$$;
COMMENT ON FUNCTION pgfeed.feed(text, anyelement, integer, anycompatiblearray, boolean) IS
    'a user''s feed, best first: score = w_sim*similarity + w_fresh*freshness + w_pop*popularity, found with the '
    'threshold algorithm over the similarity (HNSW), time and popularity indexes, completed by a range read of both; '
    'items the user interacted with are left out unless exclude_seen is false';

CREATE OR REPLACE FUNCTION pgfeed.status()
RETURNS TABLE (feed text, mode text, model text, dimensions integer, switching_to text, items bigint, embedded bigint,
               pending bigint, failed bigint, oldest_pending interval, interactions bigint, profiles bigint)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path FROM CURRENT
AS $$
DECLARE
    v_feed pgfeed.feed_config;
    v_source pgfeed.content_source;
BEGIN
    FOR v_feed IN SELECT * FROM pgfeed.feed_config ORDER BY name LOOP
        feed := v_feed.name; mode := v_feed.mode; model := v_feed.model; dimensions := v_feed.dimensions;
        switching_to := v_feed.next_model;
        items := 0; embedded := 0; pending := 0; failed := 0; interactions := 0; profiles := 0;
        SELECT now() - min(q.queued_at) INTO oldest_pending
          FROM pgfeed.embedding_queue q WHERE q.feed_id = v_feed.feed_id AND q.failed_at IS NULL;
        SELECT * INTO v_source FROM pgfeed.content_source s WHERE s.feed_id = v_feed.feed_id;
        IF FOUND THEN
            -- pending: queued, or eligible but never brought in (triggers skipped);
            -- failed: kept with an error, in the item store or the queue
            EXECUTE format($q$
                SELECT (SELECT count(*) FROM %1$s r WHERE %3$s),
                       (SELECT count(*) FROM %2$s WHERE embedding IS NOT NULL),
                       (SELECT count(*) FROM (
                            SELECT q.item_id FROM pgfeed.embedding_queue q WHERE q.feed_id = $1 AND q.failed_at IS NULL
                            UNION
                            SELECT r.%4$I::text FROM %1$s r
                             WHERE %3$s AND NOT EXISTS (SELECT FROM %2$s s WHERE s.item_id = r.%4$I)
                            EXCEPT
                            SELECT q.item_id FROM pgfeed.embedding_queue q WHERE q.feed_id = $1 AND q.failed_at IS NOT NULL) AS p),
                       (SELECT count(*) FROM (
                            SELECT s.item_id::text FROM %2$s s WHERE s.error IS NOT NULL
                            UNION
                            SELECT q.item_id FROM pgfeed.embedding_queue q WHERE q.feed_id = $1 AND q.failed_at IS NOT NULL) AS f)
                $q$, v_source.source, pgfeed._item_store(v_feed.feed_id), coalesce(v_source.condition, 'true'),
                v_source.id_column)
               INTO items, embedded, pending, failed USING v_feed.feed_id;
        END IF;
        IF v_feed.user_type IS NOT NULL THEN
            EXECUTE format('SELECT (SELECT count(*) FROM %s), (SELECT count(*) FROM %s)',
                           pgfeed._interaction_log(v_feed.feed_id), pgfeed._profile(v_feed.feed_id))
               INTO interactions, profiles;
        END IF;
        RETURN NEXT;
    END LOOP;
END
$$;
COMMENT ON FUNCTION pgfeed.status() IS
    'one row a feed: mode, model (and the model a switch is building), eligible content rows, embedded, pending (queued or never embedded) and failed items, '
    'age of the oldest queued work, logged interactions, profiles';
