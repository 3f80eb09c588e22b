-- Feeds as pages: cursors, filters, a cap of items a group, exact results on
-- small item stores.
ALTER TABLE pgfeed.feed_config
    ADD COLUMN exact_max_items integer NOT NULL DEFAULT 50000 CHECK (exact_max_items >= 0),
    ADD COLUMN max_per_group integer CHECK (max_per_group > 0),
    ADD COLUMN seen_for interval CHECK (seen_for > interval '0');
COMMENT ON COLUMN pgfeed.feed_config.exact_max_items IS
    'up to this many items (in the store, or matching a filter) feed() ranks them all exactly';
COMMENT ON COLUMN pgfeed.feed_config.max_per_group IS 'at most this many items of one group a page (NULL: no cap)';
COMMENT ON COLUMN pgfeed.feed_config.seen_for IS 'how long an impression hides its item (NULL: for good)';

-- Functions whose arguments or results change: the definitions make them again.
DO $$
DECLARE
    v_function regprocedure;
BEGIN
    FOR v_function IN SELECT p.oid::regprocedure FROM pg_proc p
                       WHERE p.pronamespace = 'pgfeed'::regnamespace
                         AND p.proname IN ('feed', '_top_k', '_profile_window_sql', '_profile_sql', 'create_feed',
                                           'alter_feed', 'attach_content', '_evaluate_rows', '_read_content',
                                           '_sync_items', 'attach_interactions', '_interaction_rows_sql') LOOP
        EXECUTE format('DROP FUNCTION %s', v_function);
    END LOOP;
END
$$;

-- Content columns a feed filters on and groups by, copied into the item store
-- (attributes: {"column": value}).
ALTER TABLE pgfeed.content_source
    ADD COLUMN filter_columns name[],
    ADD COLUMN group_column name;
DO $$
DECLARE
    v_store regclass;
BEGIN
    FOR v_store IN SELECT to_regclass(t) FROM pgfeed.content_source s,
                          unnest(ARRAY['pgfeed.item_store_' || s.feed_id, 'pgfeed.item_store_' || s.feed_id || '_next']) AS t
                    WHERE to_regclass(t) IS NOT NULL LOOP
        EXECUTE format('ALTER TABLE %s ADD COLUMN attributes jsonb', v_store);
    END LOOP;
END
$$;

-- Impressions: interactions of weight 0, which profiles skip (the index that
-- reads a profile's window leaves them out). Graded feedback: a weight a row.
ALTER TABLE pgfeed.interaction_source DROP CONSTRAINT IF EXISTS interaction_source_weight_check;
ALTER TABLE pgfeed.interaction_source ADD COLUMN weight_expression text;
COMMENT ON COLUMN pgfeed.interaction_source.weight_expression IS
    'built-in SQL over a row of the table giving its weight (NULL: weight); NULL, NaN or infinite results count as 0';
DO $$
DECLARE
    v_log regclass;
    v_index regclass;
BEGIN
    FOR v_log IN SELECT to_regclass('pgfeed.interaction_log_' || feed_id) FROM pgfeed.feed_config
                  WHERE to_regclass('pgfeed.interaction_log_' || feed_id) IS NOT NULL LOOP
        FOR v_index IN SELECT indexrelid FROM pg_index
                        WHERE indrelid = v_log AND pg_get_indexdef(indexrelid) LIKE '%(user_id, created_at DESC NULLS LAST, seq DESC)' LOOP
            EXECUTE format('DROP INDEX %s', v_index);
        END LOOP;
        EXECUTE format('CREATE INDEX ON %s (user_id, created_at DESC NULLS LAST, seq DESC) WHERE weight <> 0', v_log);
    END LOOP;
END
$$;
