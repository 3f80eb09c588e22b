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
-- a scan that stops at its memory limit would pass for a tier read to its end
SET hnsw.scan_mem_multiplier = 8
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
    -- The streams: 1 to 4 nearest to the profile among the items of like-count
    -- tier 0 to 3 (pgfeed._popularity_tier), 5 newest, 6 most liked. Each is
    -- opened when first read; NULL query: not read in this call.
    v_queries text[] := array_fill(NULL::text, ARRAY[6]);
    v_cursors text[] := array_fill(NULL::text, ARRAY[6]);  -- their portals; read through v_cursor
    v_cursor refcursor;
    v_ended boolean[] := array_fill(false, ARRAY[6]);
    v_weights float8[];
    v_ceilings float8[];  -- the highest popularity in each tier
    v_bounds float8[] := array_fill(1::float8, ARRAY[6]);  -- the last value of each stream's component
    v_read integer[] := array_fill(0, ARRAY[6]);            -- rows read from each stream
    v_lowest float8[] := ARRAY[-1, -1, -1, -1, 0, 0];       -- the lowest value of each component
    v_slopes float8[] := array_fill(NULL::float8, ARRAY[6]);  -- weighted value each stream fell by per ms, last read
    v_stream integer;
    v_tier integer;  -- the tier whose unseen items can score the most
    v_top float8;    -- and what they can score without freshness
    v_bound float8;
    v_close integer;  -- tiers within the gap of it
    v_candidate integer;
    v_pace float8;
    v_closing integer; v_soonest float8;       -- the stream that would close the gap soonest, and when
    v_fastest integer; v_fastest_pace float8;  -- the stream falling fastest
    v_best_new float8;  -- the best score among newly read rows
    v_started timestamptz;
    v_first float8;
    v_before float8;
    v_gap float8;  -- how far the threshold is above the k-th score
    v_id text; v_similarity float8; v_freshness float8; v_popularity float8;
    -- the best items read so far (the k best and any tied with the k-th), then newly read rows
    v_ids text[] := '{}'; v_scores float8[] := '{}'; v_similarities float8[] := '{}';
    v_freshnesses float8[] := '{}'; v_popularities float8[] := '{}';
    v_new_ids text[]; v_new_similarities float8[]; v_new_freshnesses float8[]; v_new_popularities float8[];
    v_kth float8;
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

    -- Fagin's threshold algorithm over sorted index streams of the eligible
    -- items: nearest to the profile (HNSW, iterative scan) in each like-count
    -- tier, newest (btree on time), most liked (btree on the like count).
    -- Every item a stream yields is scored exactly. An item no stream yielded
    -- has at most the similarity last read in its tier, the popularity of its
    -- tier and of the last item read most liked, and the freshness last read
    -- newest; once the k-th best score is at least the highest such bound (the
    -- threshold), no unseen item can enter the top k. The tiers make the bound
    -- tight: the nearest items among the most liked are what a feed shows, and
    -- without them a similarity stream would have to be read until it passes
    -- every such item's similarity. The streams stay open and are read in turns
    -- (the rule is at the loop's head). Without a profile (cold start)
    -- similarity is 0 and no tier is read. Every stored item has a like count,
    -- so the popularity stream running out means every eligible item was seen.
    v_weights := ARRAY[v_feed.weight_similarity, v_feed.weight_similarity, v_feed.weight_similarity,
                       v_feed.weight_similarity, v_feed.weight_freshness, v_feed.weight_popularity];
    v_ceilings := ARRAY(SELECT least(1, coalesce(ln(1 + pgfeed._tier_most_likes(t)) / ln(v_feed.popularity_saturation), 1))
                          FROM generate_series(0, 3) AS t);
    IF v_profile IS NOT NULL AND v_feed.weight_similarity > 0 THEN
        FOR t IN 0 .. 3 LOOP
            v_queries[t + 1] := format('SELECT %s FROM %s s WHERE %s AND s.tier = %s ORDER BY s.embedding <=> $1',
                                       v_components, v_store, v_eligible, t);
        END LOOP;
    ELSE
        v_bounds[1:4] := ARRAY[0, 0, 0, 0];
    END IF;
    IF v_feed.weight_freshness > 0 THEN
        v_queries[5] := format('SELECT %s FROM %s s WHERE %s AND s.created_at IS NOT NULL ORDER BY s.created_at DESC',
                               v_components, v_store, v_eligible);
    END IF;
    v_queries[6] := format('SELECT %s FROM %s p JOIN %s s ON s.item_id = p.item_id WHERE %s ORDER BY p.popularity DESC',
                           v_components, v_likes, v_store, v_eligible);

    PERFORM set_config('hnsw.ef_search', v_feed.ef_search::text, true);
    PERFORM set_config('hnsw.max_scan_tuples', greatest(20000, 2 * v_feed.search_max_depth)::text, true);
    LOOP
        -- The tier whose unseen items could score the most; the threshold is
        -- their bound. What lowers it: that tier's stream, the newest stream,
        -- the most liked stream (once below the tier's ceiling).
        v_top := NULL;
        FOR t IN REVERSE 4 .. 1 LOOP
            v_bound := v_weights[t] * v_bounds[t] + v_weights[6] * least(v_ceilings[t], v_bounds[6]);
            IF v_top IS NULL OR v_bound > v_top THEN
                v_tier := t; v_top := v_bound;
            END IF;
        END LOOP;
        v_gap := v_top + v_weights[5] * v_bounds[5] - v_kth;
        EXIT WHEN v_gap < 0;  -- (a tie could be an unseen item with a smaller key)
        -- Lowering the threshold by the gap through the tiers takes reading
        -- every tier within the gap of the top one; through freshness, only the
        -- newest stream. The pace of a tier's stream is shared out accordingly.
        v_close := 0;
        FOR t IN 1 .. 4 LOOP
            IF v_weights[t] * v_bounds[t] + v_weights[6] * least(v_ceilings[t], v_bounds[6]) > v_top - v_gap THEN
                v_close := v_close + 1;
            END IF;
        END LOOP;
        -- The next stream to read among those: first each once. Then the one
        -- that would close the gap soonest by itself at the pace of its last
        -- read; when none can (clustered similarities fall slowly, then steeply;
        -- saturated popularity does not fall), the one that fell fastest.
        v_stream := NULL; v_closing := NULL; v_soonest := NULL; v_fastest := NULL; v_fastest_pace := NULL;
        FOREACH v_candidate IN ARRAY ARRAY[v_tier, 5, 6] LOOP
            CONTINUE WHEN v_queries[v_candidate] IS NULL OR v_ended[v_candidate]
                          OR v_read[v_candidate] >= v_feed.search_max_depth;
            IF v_slopes[v_candidate] IS NULL THEN
                v_stream := v_candidate;
                EXIT;
            END IF;
            v_pace := v_slopes[v_candidate] / CASE WHEN v_candidate <= 4 THEN greatest(v_close, 1) ELSE 1 END;
            IF v_pace > 0 AND v_weights[v_candidate] * (v_bounds[v_candidate] - v_lowest[v_candidate]) >= v_gap
               AND (v_soonest IS NULL OR v_gap / v_pace < v_soonest) THEN
                v_closing := v_candidate; v_soonest := v_gap / v_pace;
            END IF;
            IF v_fastest_pace IS NULL OR v_pace > v_fastest_pace THEN
                v_fastest := v_candidate; v_fastest_pace := v_pace;
            END IF;
        END LOOP;
        v_stream := coalesce(v_stream, v_closing, v_fastest);
        EXIT WHEN v_stream IS NULL;  -- what could lower the threshold is read to its deepest
        IF v_cursors[v_stream] IS NULL THEN
            v_cursor := NULL;
            OPEN v_cursor NO SCROLL FOR EXECUTE v_queries[v_stream]
                USING v_profile, v_unit, v_feed.popularity_saturation, v_user, v_exclude;
            v_cursors[v_stream] := v_cursor;
        END IF;
        v_first := NULL;
        v_before := v_bounds[v_stream];
        v_cursor := v_cursors[v_stream];
        v_started := clock_timestamp();
        v_new_ids := '{}'; v_new_similarities := '{}'; v_new_freshnesses := '{}'; v_new_popularities := '{}';
        v_best_new := NULL;
        FOR j IN 1 .. least(greatest(v_feed.search_depth, "limit", v_read[v_stream] / 2),
                            v_feed.search_max_depth - v_read[v_stream]) LOOP
            FETCH v_cursor INTO v_id, v_similarity, v_freshness, v_popularity;
            IF NOT FOUND THEN
                CLOSE v_cursor;
                v_ended[v_stream] := true;
                EXIT;
            END IF;
            v_new_ids := v_new_ids || v_id; v_new_similarities := v_new_similarities || v_similarity;
            v_new_freshnesses := v_new_freshnesses || v_freshness; v_new_popularities := v_new_popularities || v_popularity;
            v_bounds[v_stream] := CASE WHEN v_stream <= 4 THEN v_similarity WHEN v_stream = 5 THEN v_freshness
                                       ELSE v_popularity END;
            v_first := coalesce(v_first, v_bounds[v_stream]);
            v_best_new := greatest(v_best_new,
                                   v_weights[1] * v_similarity + v_weights[5] * v_freshness + v_weights[6] * v_popularity);
        END LOOP;
        v_read[v_stream] := v_read[v_stream] + cardinality(v_new_ids);
        IF v_ended[v_stream] AND v_stream <> 6 THEN
            -- Every eligible item of the tier (or with a creation time) was seen:
            -- none is left to bound. An HNSW scan could also stop at its limits,
            -- but they are set far above a read's reach: rows visited twice the
            -- deepest read (so it would take more rows filtered out, seen or
            -- excluded, than read), memory 8 x work_mem.
            v_bounds[v_stream] := v_lowest[v_stream];
        END IF;
        -- A similarity bound that rose (the scan came upon a second cluster
        -- near the profile) makes the stream new again: read on before judging
        -- its pace.
        v_slopes[v_stream] := CASE WHEN v_bounds[v_stream] <= v_before THEN
            v_weights[v_stream] * coalesce(v_first - v_bounds[v_stream], 0)
            / greatest(extract(epoch FROM clock_timestamp() - v_started) * 1000, 0.001) END;
        IF v_best_new >= coalesce(v_kth, '-infinity') THEN  -- else nothing new among the best k
            SELECT array_agg(m.i ORDER BY m.sc DESC), array_agg(m.sc ORDER BY m.sc DESC), array_agg(m.s ORDER BY m.sc DESC),
                   array_agg(m.f ORDER BY m.sc DESC), array_agg(m.p ORDER BY m.sc DESC)
              INTO v_ids, v_scores, v_similarities, v_freshnesses, v_popularities
              FROM (SELECT * FROM (SELECT DISTINCT ON (c.i) *
                                     FROM (SELECT * FROM unnest(v_ids, v_scores, v_similarities, v_freshnesses, v_popularities)
                                           UNION ALL
                                           SELECT n.i, v_weights[1] * n.s + v_weights[5] * n.f + v_weights[6] * n.p, n.s, n.f, n.p
                                             FROM unnest(v_new_ids, v_new_similarities, v_new_freshnesses, v_new_popularities)
                                                  AS n(i, s, f, p)
                                          ) AS c (i, sc, s, f, p)
                                    ORDER BY c.i) AS d
                     ORDER BY d.sc DESC FETCH FIRST "limit" ROWS WITH TIES) AS m;
            v_kth := CASE WHEN cardinality(v_ids) >= "limit" THEN v_scores["limit"] END;
        END IF;
        RAISE DEBUG 'pgfeed.feed: read % rows (nearest in tiers 0-3, newest, most liked), k-th score %, bounds %, slopes %',
            v_read, v_kth, v_bounds, v_slopes;
        EXIT WHEN v_ended[6];  -- every eligible item was seen
    END LOOP;
    RETURN QUERY EXECUTE format($q$
        SELECT * FROM unnest($1, $2, $3, $4, $5) AS t (item_id, score, similarity, freshness, popularity)
         ORDER BY score DESC, item_id::%s LIMIT $6
        $q$, v_feed.item_type)
        USING v_ids, v_scores, v_similarities, v_freshnesses, v_popularities, "limit";
END
$$;
COMMENT ON FUNCTION pgfeed.feed(text, anyelement, integer, anycompatiblearray, boolean) IS
    'a user''s feed, best first: score = w_sim*similarity + w_fresh*freshness + w_pop*popularity, found with the '
    'threshold algorithm over the similarity (an HNSW index a like-count tier), time and popularity indexes; '
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
