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
    v_user text;
    v_exclude text[];
    v_profile vector;
    v_seen text := '';
    v_round text;
    v_depth integer;
    v_ids text[]; v_scores float8[]; v_similarities float8[]; v_freshness float8[]; v_popularities float8[];
    v_kth float8;
    v_threshold float8;
    v_exact boolean;
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
    IF v_user IS NOT NULL AND v_feed.user_type IS NOT NULL THEN
        EXECUTE format('SELECT embedding FROM %s WHERE user_id = $1::%s', pgfeed._profile(v_feed.feed_id), v_feed.user_type)
           INTO v_profile USING v_user;
        IF exclude_seen THEN
            v_seen := format('AND NOT EXISTS (SELECT FROM %s l WHERE l.user_id = $9::%s AND l.item_id = s.item_id)',
                             pgfeed._interaction_log(v_feed.feed_id), v_feed.user_type);
        END IF;
    END IF;
    IF "limit" = 0 THEN
        RETURN;
    END IF;

    -- Fagin's threshold algorithm over three sorted index streams of the
    -- eligible items: nearest to the profile (HNSW, iterative scan), newest
    -- (btree on time), most liked (btree on popularity). Every item a stream
    -- yields is scored exactly. The last value each stream yielded bounds what
    -- any unseen item can score; once the k-th best seen score reaches that
    -- threshold, no unseen item can enter the top k. Otherwise all streams are
    -- read deeper. Exclusions are filters inside the streams, so they never
    -- shorten the feed. Without a profile (cold start) similarity is 0 and the
    -- similarity stream is not read. Every stored item has a like count, so
    -- the popularity stream running out means every eligible item was seen.
    v_round := format($q$
        WITH nearest AS (
            SELECT s.item_id, s.embedding, s.created_at FROM %1$s s
             WHERE %4$s AND s.embedding IS NOT NULL %3$s
             ORDER BY s.embedding <=> $1 LIMIT $10
        ), newest AS (
            SELECT s.item_id, s.embedding, s.created_at FROM %1$s s
             WHERE %5$s AND s.created_at IS NOT NULL AND s.embedding IS NOT NULL %3$s
             ORDER BY s.created_at DESC LIMIT $10
        ), popular AS (
            SELECT s.item_id, s.embedding, s.created_at, p.popularity FROM %6$s p JOIN %1$s s ON s.item_id = p.item_id
             WHERE s.embedding IS NOT NULL %3$s
             ORDER BY p.popularity DESC LIMIT $10
        ), seen AS (
            SELECT DISTINCT ON (item_id) * FROM (TABLE nearest UNION ALL TABLE newest
                                                 UNION ALL SELECT item_id, embedding, created_at FROM popular) AS u
        ), components AS (
            SELECT seen.item_id,
                   coalesce(1 - (seen.embedding <=> $1), 0) AS similarity,
                   coalesce(1 / (1 + greatest(extract(epoch FROM now() - seen.created_at)::float8, 0) / $5), 0) AS freshness,
                   least(1, ln(1 + coalesce(p.popularity, 0)::float8) / ln($6)) AS popularity
              FROM seen LEFT JOIN %6$s p ON p.item_id = seen.item_id
        ), top AS (
            SELECT item_id, $2 * similarity + $3 * freshness + $4 * popularity AS score, similarity, freshness, popularity
              FROM components ORDER BY score DESC, item_id LIMIT $8
        ), bound AS (
            -- an ended similarity stream still bounds by its last value: HNSW may stop at its scan limit
            SELECT (SELECT CASE WHEN $1 IS NULL THEN 0 ELSE coalesce(1 - max(embedding <=> $1), -1) END FROM nearest)
                       AS similarity,
                   (SELECT CASE WHEN count(*) < $10 THEN 0
                                ELSE 1 / (1 + greatest(extract(epoch FROM now() - min(created_at))::float8, 0) / $5) END
                      FROM newest) AS freshness,
                   (SELECT CASE WHEN count(*) < $10 THEN NULL ELSE least(1, ln(1 + min(popularity)::float8) / ln($6)) END
                      FROM popular) AS popularity
        )
        SELECT array_agg(t.item_id::text ORDER BY t.score DESC, t.item_id), array_agg(t.score ORDER BY t.score DESC, t.item_id),
               array_agg(t.similarity ORDER BY t.score DESC, t.item_id), array_agg(t.freshness ORDER BY t.score DESC, t.item_id),
               array_agg(t.popularity ORDER BY t.score DESC, t.item_id),
               CASE WHEN count(*) = $8 THEN min(t.score) END,
               $2 * b.similarity + $3 * b.freshness + $4 * b.popularity,
               b.popularity IS NULL  -- the popularity stream ran out: every eligible item was seen
          FROM top t CROSS JOIN bound b
         GROUP BY b.similarity, b.freshness, b.popularity
        $q$, pgfeed._item_store(v_feed.feed_id), v_feed.item_type,
        v_seen || ' AND NOT s.item_id = ANY (coalesce($7, ''{}'')::' || v_feed.item_type || '[])',
        CASE WHEN v_profile IS NULL OR v_feed.weight_similarity = 0 THEN 'false' ELSE 'true' END,
        CASE WHEN v_feed.weight_freshness = 0 THEN 'false' ELSE 'true' END, pgfeed._item_popularity(v_feed.feed_id));

    PERFORM set_config('hnsw.ef_search', v_feed.ef_search::text, true);
    PERFORM set_config('hnsw.max_scan_tuples', greatest(20000, 2 * v_feed.search_max_depth)::text, true);
    v_depth := greatest(v_feed.search_depth, "limit");
    LOOP
        EXECUTE v_round
           INTO v_ids, v_scores, v_similarities, v_freshness, v_popularities, v_kth, v_threshold, v_exact
           USING v_profile, v_feed.weight_similarity, v_feed.weight_freshness, v_feed.weight_popularity,
                 extract(epoch FROM v_feed.freshness_unit)::float8, v_feed.popularity_saturation,
                 v_exclude, "limit", v_user, v_depth;
        EXIT WHEN v_ids IS NULL OR v_exact OR v_kth >= v_threshold OR v_depth >= v_feed.search_max_depth;
        v_depth := least(v_depth * 4, v_feed.search_max_depth);
    END LOOP;
    RETURN QUERY SELECT * FROM unnest(v_ids, v_scores, v_similarities, v_freshness, v_popularities);
END
$$;
COMMENT ON FUNCTION pgfeed.feed(text, anyelement, integer, anycompatiblearray, boolean) IS
    'a user''s feed, best first: score = w_sim*similarity + w_fresh*freshness + w_pop*popularity, found with the '
    'threshold algorithm over the similarity (HNSW), time and popularity indexes; '
    'items the user interacted with are left out unless exclude_seen is false';

CREATE OR REPLACE FUNCTION pgfeed.status()
RETURNS TABLE (feed text, mode text, model text, dimensions integer, items bigint, embedded bigint, pending bigint,
               failed bigint, oldest_pending interval, interactions bigint, profiles bigint)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path FROM CURRENT
AS $$
DECLARE
    v_feed pgfeed.feed_config;
    v_source pgfeed.content_source;
BEGIN
    FOR v_feed IN SELECT * FROM pgfeed.feed_config ORDER BY name LOOP
        feed := v_feed.name; mode := v_feed.mode; model := v_feed.model; dimensions := v_feed.dimensions;
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
    'one row a feed: mode, model, eligible content rows, embedded, pending (queued or never embedded) and failed items, '
    'age of the oldest queued work, logged interactions, profiles';
