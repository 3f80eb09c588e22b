-- 0.2.0: the item store keeps each item's like-count tier (0-8, 9-98, 99-998,
-- 999+ likes) and has an HNSW index a tier instead of one over all items, so
-- that the feed reads the nearest popular items apart from the rest
-- (060-feed.sql). The triggers that keep the tiers are made by 040-content.sql.

DO $$
DECLARE
    v_feed_id integer;
    v_store regclass;
    v_index regclass;
BEGIN
    FOR v_feed_id IN SELECT feed_id FROM pgfeed.content_source LOOP
        FOR v_store IN SELECT to_regclass(t) FROM unnest(ARRAY['pgfeed.item_store_' || v_feed_id,
                                                               'pgfeed.item_store_' || v_feed_id || '_next']) AS t
                        WHERE to_regclass(t) IS NOT NULL LOOP
            EXECUTE format('ALTER TABLE %s ADD COLUMN tier smallint NOT NULL DEFAULT 0', v_store);
            -- (a model switch's shadow store takes the tiers of the item store when it is swapped in)
            EXECUTE format($q$
                UPDATE %s s SET tier = CASE WHEN p.popularity >= 999 THEN 3 WHEN p.popularity >= 99 THEN 2 ELSE 1 END
                  FROM pgfeed.item_popularity_%s p WHERE p.item_id = s.item_id AND p.popularity >= 9
                $q$, v_store, v_feed_id);
            FOR v_index IN SELECT i.indexrelid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
                             JOIN pg_am a ON a.oid = c.relam WHERE i.indrelid = v_store AND a.amname = 'hnsw' LOOP
                EXECUTE format('DROP INDEX %s', v_index);
            END LOOP;
            FOR v_tier IN 0 .. 3 LOOP
                EXECUTE format('CREATE INDEX ON %s USING hnsw (embedding vector_cosine_ops) WHERE tier = %s',
                               v_store, v_tier);
            END LOOP;
        END LOOP;
    END LOOP;
END
$$;
