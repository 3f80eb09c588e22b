-- 0.2.0: like-count tiers 99-998 and 999+ become one tier, 99+ (010-internals.sql):
-- with the default saturation both were bounded by popularity 1, and each tier
-- costs the feed an HNSW search. The two tiers' indexes give way to one.

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
            FOR v_index IN SELECT i.indexrelid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
                             JOIN pg_am a ON a.oid = c.relam
                            WHERE i.indrelid = v_store AND a.amname = 'hnsw'
                              AND pg_get_expr(i.indpred, i.indrelid) IN ('(tier = 2)', '(tier = 3)') LOOP
                EXECUTE format('DROP INDEX %s', v_index);
            END LOOP;
            EXECUTE format('UPDATE %s SET tier = 2 WHERE tier = 3', v_store);
            EXECUTE format('CREATE INDEX ON %s USING hnsw (embedding vector_cosine_ops) WHERE tier = 2', v_store);
        END LOOP;
    END LOOP;
END
$$;
