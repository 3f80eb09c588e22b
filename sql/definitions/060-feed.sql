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
AS $$
DECLARE
    v_feed pgfeed.feed_config := pgfeed._feed(feed);
    v_user text;
    v_exclude text[];
    v_profile vector;
    v_seen text := '';
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
    -- Exact hybrid ranking over the item store. Without a profile (cold start)
    -- similarity is 0 and freshness and popularity decide.
    RETURN QUERY EXECUTE format($q$
        SELECT c.item_id::text, $2 * c.similarity + $3 * c.freshness + $4 * c.popularity AS score,
               c.similarity, c.freshness, c.popularity
          FROM (SELECT s.item_id,
                       coalesce(1 - (s.embedding <=> $1), 0) AS similarity,
                       coalesce(1 / (1 + greatest(extract(epoch FROM now() - s.created_at)::float8, 0) / $5), 0) AS freshness,
                       least(1, ln(1 + s.popularity::float8) / ln($6)) AS popularity
                  FROM %1$s s
                 WHERE s.embedding IS NOT NULL
                   AND NOT s.item_id = ANY (coalesce($7, '{}')::%2$s[])
                   %3$s) AS c
         ORDER BY score DESC, c.item_id
         LIMIT $8
        $q$, pgfeed._item_store(v_feed.feed_id), v_feed.item_type, v_seen)
        USING v_profile, v_feed.weight_similarity, v_feed.weight_freshness, v_feed.weight_popularity,
              extract(epoch FROM v_feed.freshness_unit)::float8, v_feed.popularity_saturation,
              v_exclude, "limit", v_user;
END
$$;
COMMENT ON FUNCTION pgfeed.feed(text, anyelement, integer, anycompatiblearray, boolean) IS
    'a user''s feed, best first: score = w_sim*similarity + w_fresh*freshness + w_pop*popularity; '
    'items the user interacted with are left out unless exclude_seen is false';

CREATE OR REPLACE FUNCTION pgfeed.status()
RETURNS TABLE (feed text, model text, dimensions integer, items bigint, embedded bigint, pending bigint,
               failed bigint, interactions bigint, profiles bigint)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path FROM CURRENT
AS $$
DECLARE
    v_feed pgfeed.feed_config;
    v_source pgfeed.content_source;
BEGIN
    FOR v_feed IN SELECT * FROM pgfeed.feed_config ORDER BY name LOOP
        feed := v_feed.name; model := v_feed.model; dimensions := v_feed.dimensions;
        items := 0; embedded := 0; pending := 0; failed := 0; interactions := 0; profiles := 0;
        SELECT * INTO v_source FROM pgfeed.content_source s WHERE s.feed_id = v_feed.feed_id;
        IF FOUND THEN
            EXECUTE format('SELECT count(*) FROM %s WHERE %s', v_source.source, coalesce(v_source.condition, 'true'))
               INTO items;
            EXECUTE format('SELECT count(embedding), count(error) FROM %s', pgfeed._item_store(v_feed.feed_id))
               INTO embedded, failed;
            pending := greatest(items - embedded - failed, 0);
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
    'one row a feed: eligible content rows, embedded, pending, failed, logged interactions, profiles';
