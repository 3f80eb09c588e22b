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
-- restored on return, so that the per-feed values set below stay in here
SET hnsw.iterative_scan = 'strict_order'
SET hnsw.ef_search = 40
SET hnsw.max_scan_tuples = 20000
AS $$
DECLARE
    v_feed pgfeed.feed_config := pgfeed._feed(feed);
    v_store text := pgfeed._item_store(v_feed.feed_id);
    v_likes text := pgfeed._item_popularity(v_feed.feed_id);
    v_user text;
    v_exclude text[];
    v_profile vector;
    v_eligible text;
    v_components text;
    v_round text;
    v_region text;
    v_depth integer;
    v_ids text[]; v_scores float8[]; v_similarities float8[]; v_freshness float8[]; v_popularities float8[];
    v_kth float8;
    v_bound_similarity float8; v_bound_freshness float8; v_bound_popularity float8;
    v_need float8;
    v_since timestamptz;
    v_min_likes float8;
    v_region_rows bigint;
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
    v_eligible := format('s.embedding IS NOT NULL AND NOT s.item_id = ANY (coalesce($7, ''{}'')::%s[])', v_feed.item_type);
    IF v_user IS NOT NULL AND v_feed.user_type IS NOT NULL THEN
        EXECUTE format('SELECT embedding FROM %s WHERE user_id = $1::%s', pgfeed._profile(v_feed.feed_id), v_feed.user_type)
           INTO v_profile USING v_user;
        IF exclude_seen THEN
            v_eligible := v_eligible || format(
                ' AND NOT EXISTS (SELECT FROM %s l WHERE l.user_id = $9::%s AND l.item_id = s.item_id)',
                pgfeed._interaction_log(v_feed.feed_id), v_feed.user_type);
        END IF;
    END IF;
    IF "limit" = 0 THEN
        RETURN;
    END IF;
    -- the components of an eligible item s; its score is their weighted sum ($2, $3, $4)
    v_components := format($c$
        coalesce(1 - (s.embedding <=> $1), 0) AS similarity,
        coalesce(1 / (1 + greatest(extract(epoch FROM now() - s.created_at)::float8, 0) / $5), 0) AS freshness,
        least(1, ln(1 + coalesce((SELECT p.popularity FROM %s p WHERE p.item_id = s.item_id), 0)::float8) / ln($6))
            AS popularity$c$, v_likes);

    -- Fagin's threshold algorithm over three sorted index streams of the
    -- eligible items: nearest to the profile (HNSW, iterative scan), newest
    -- (btree on time), most liked (btree on the like count). Every item a
    -- stream yields is scored exactly. The last value each stream yielded
    -- bounds that component for every item no stream yielded; if the k-th
    -- best score is at least the sum of the bounds, no unseen item can enter
    -- the top k. Without a profile (cold start) similarity is 0 and the
    -- similarity stream is not read. Every stored item has a like count, so
    -- the popularity stream running out means every eligible item was seen.
    v_round := format($q$
        WITH nearest AS (
            SELECT s.item_id, %7$s FROM %1$s s WHERE %4$s AND %3$s ORDER BY s.embedding <=> $1 LIMIT $10
        ), newest AS (
            SELECT s.item_id, %7$s FROM %1$s s
             WHERE %5$s AND s.created_at IS NOT NULL AND %3$s ORDER BY s.created_at DESC LIMIT $10
        ), popular AS (
            SELECT s.item_id, %7$s FROM %6$s p JOIN %1$s s ON s.item_id = p.item_id
             WHERE %3$s ORDER BY p.popularity DESC LIMIT $10
        ), top AS (
            SELECT item_id, $2 * similarity + $3 * freshness + $4 * popularity AS score, similarity, freshness, popularity
              FROM (SELECT DISTINCT ON (item_id) * FROM (TABLE nearest UNION ALL TABLE newest UNION ALL TABLE popular) AS u) AS c
             ORDER BY score DESC, item_id LIMIT $8
        )
        SELECT array_agg(t.item_id::text ORDER BY t.score DESC, t.item_id), array_agg(t.score ORDER BY t.score DESC, t.item_id),
               array_agg(t.similarity ORDER BY t.score DESC, t.item_id), array_agg(t.freshness ORDER BY t.score DESC, t.item_id),
               array_agg(t.popularity ORDER BY t.score DESC, t.item_id),
               CASE WHEN count(*) = $8 THEN min(t.score) END,
               -- an ended similarity stream still bounds by its last value: HNSW may stop at its scan limit
               (SELECT CASE WHEN $1 IS NULL THEN 0 ELSE coalesce(min(similarity), -1) END FROM nearest),
               (SELECT CASE WHEN count(*) = $10 THEN min(freshness) ELSE 0 END FROM newest),
               -- NULL: the popularity stream ran out, every eligible item was seen
               (SELECT CASE WHEN count(*) = $10 THEN min(popularity) END FROM popular)
          FROM top t
        $q$, v_store, v_feed.item_type, v_eligible,
        CASE WHEN v_profile IS NULL OR v_feed.weight_similarity = 0 THEN 'false' ELSE 'true' END,
        CASE WHEN v_feed.weight_freshness = 0 THEN 'false' ELSE 'true' END, v_likes, v_components);

    -- The bounds of the streams are loose when many items share a component
    -- value (a popular item saturates at popularity 1, and so may thousands
    -- more). An unseen item can still enter the top k only if its freshness
    -- and popularity together make up for what its similarity (at most the
    -- similarity bound) leaves to reach the k-th score; that needs a minimum
    -- creation time and a minimum like count, a box that the btrees on both
    -- read directly. When the box holds few rows, they are scored and merged
    -- and the result is exact; otherwise the streams are read deeper.
    v_region := format($q$
        WITH region AS (
            SELECT s.item_id, %5$s FROM %1$s s JOIN %3$s p ON p.item_id = s.item_id
             WHERE %4$s AND ($11::timestamptz IS NULL OR s.created_at >= $11) AND ($12::float8 IS NULL OR p.popularity >= $12)
               AND NOT s.item_id = ANY ($13::%2$s[])
             LIMIT 4 * $10 + 1
        ), candidates AS (
            SELECT item_id::text, $2 * similarity + $3 * freshness + $4 * popularity AS score, similarity, freshness, popularity
              FROM region
            UNION ALL
            SELECT * FROM unnest($13, $14, $15, $16, $17)
        ), top AS (
            SELECT * FROM candidates ORDER BY score DESC, item_id::%2$s LIMIT $8
        )
        SELECT (SELECT count(*) FROM region),
               array_agg(t.item_id ORDER BY t.score DESC, t.item_id::%2$s), array_agg(t.score ORDER BY t.score DESC, t.item_id::%2$s),
               array_agg(t.similarity ORDER BY t.score DESC, t.item_id::%2$s),
               array_agg(t.freshness ORDER BY t.score DESC, t.item_id::%2$s),
               array_agg(t.popularity ORDER BY t.score DESC, t.item_id::%2$s)
          FROM top t
        $q$, v_store, v_feed.item_type, v_likes, v_eligible, v_components);

    PERFORM set_config('hnsw.max_scan_tuples', greatest(20000, 2 * v_feed.search_max_depth)::text, true);
    v_depth := greatest(v_feed.search_depth, "limit");
    LOOP
        -- HNSW finds the nearest n rows well only with a candidate list of at least n
        PERFORM set_config('hnsw.ef_search', v_feed.ef_search::text, true);
        EXECUTE v_round
           INTO v_ids, v_scores, v_similarities, v_freshness, v_popularities, v_kth,
                v_bound_similarity, v_bound_freshness, v_bound_popularity
           USING v_profile, v_feed.weight_similarity, v_feed.weight_freshness, v_feed.weight_popularity,
                 extract(epoch FROM v_feed.freshness_unit)::float8, v_feed.popularity_saturation,
                 v_exclude, "limit", v_user, v_depth;
        -- what freshness and popularity must add up to for an unseen item to reach the k-th score
        v_need := v_kth - v_feed.weight_similarity * v_bound_similarity;
        RAISE DEBUG 'pgfeed.feed: depth %, k-th score %, bounds similarity % freshness % popularity %',
            v_depth, v_kth, v_bound_similarity, v_bound_freshness, v_bound_popularity;
        EXIT WHEN v_ids IS NULL OR v_bound_popularity IS NULL  -- fewer than k eligible items, or all of them seen
               OR v_feed.weight_freshness * v_bound_freshness + v_feed.weight_popularity * v_bound_popularity <= v_need;
        -- freshness >= (need - w_pop * popularity bound) / w_fresh, i.e. created at most unit * (1/freshness - 1) ago
        v_since := CASE WHEN v_feed.weight_freshness > 0 AND v_need > v_feed.weight_popularity * v_bound_popularity
                        THEN now() - v_feed.freshness_unit * (v_feed.weight_freshness
                                                              / (v_need - v_feed.weight_popularity * v_bound_popularity) - 1) END;
        -- popularity >= (need - w_fresh * freshness bound) / w_pop, i.e. at least saturation^popularity - 1 likes
        v_min_likes := CASE WHEN v_feed.weight_popularity > 0 AND v_need > v_feed.weight_freshness * v_bound_freshness
                            THEN power(v_feed.popularity_saturation,
                                       (v_need - v_feed.weight_freshness * v_bound_freshness) / v_feed.weight_popularity) - 1 END;
        IF v_since IS NOT NULL OR v_min_likes IS NOT NULL OR v_depth >= v_feed.search_max_depth THEN
            EXECUTE v_region
               INTO v_region_rows, v_ids, v_scores, v_similarities, v_freshness, v_popularities
               USING v_profile, v_feed.weight_similarity, v_feed.weight_freshness, v_feed.weight_popularity,
                     extract(epoch FROM v_feed.freshness_unit)::float8, v_feed.popularity_saturation,
                     v_exclude, "limit", v_user, v_depth, v_since, v_min_likes,
                     v_ids, v_scores, v_similarities, v_freshness, v_popularities;
            RAISE DEBUG 'pgfeed.feed: region since %, likes >= %: % rows', v_since, v_min_likes, v_region_rows;
            -- past the deepest read allowed, the best of what was read is the answer
            EXIT WHEN v_region_rows <= 4 * v_depth OR v_depth >= v_feed.search_max_depth;
        END IF;
        v_depth := least(v_depth * 4, v_feed.search_max_depth);
    END LOOP;
    RETURN QUERY SELECT * FROM unnest(v_ids, v_scores, v_similarities, v_freshness, v_popularities);
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
