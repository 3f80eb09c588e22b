-- Feeds: creating and dropping them, and detaching the tables they watch.

CREATE OR REPLACE FUNCTION pgfeed.create_feed(
    name text,
    model text DEFAULT 'all-MiniLM-L6-v2',
    weight_similarity float8 DEFAULT 0.6,
    weight_freshness float8 DEFAULT 0.2,
    weight_popularity float8 DEFAULT 0.2,
    profile_size integer DEFAULT 20,
    freshness_unit interval DEFAULT '1 hour',
    popularity_saturation float8 DEFAULT 1000)
RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $$
DECLARE
    v_feed_id integer;
BEGIN
    IF EXISTS (SELECT 1 FROM pgfeed.feed_config c WHERE c.name = create_feed.name) THEN
        RAISE EXCEPTION 'feed "%" already exists', create_feed.name
            USING ERRCODE = 'duplicate_object',
                  HINT = format('pick another name, or drop it first with SELECT pgfeed.drop_feed(%L)', create_feed.name);
    END IF;
    IF least(weight_similarity, weight_freshness, weight_popularity) < 0
       OR weight_similarity + weight_freshness + weight_popularity <= 0 THEN
        RAISE EXCEPTION 'weights must be >= 0 and not all 0, got similarity %, freshness %, popularity %',
                        weight_similarity, weight_freshness, weight_popularity USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF profile_size < 1 THEN
        RAISE EXCEPTION 'profile_size must be at least 1, got %', profile_size USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO pgfeed.feed_config (name, model, dimensions, weight_similarity, weight_freshness, weight_popularity,
                                    profile_size, freshness_unit, popularity_saturation)
    VALUES (create_feed.name, create_feed.model, pgfeed._model_dimensions(create_feed.model),
            weight_similarity, weight_freshness, weight_popularity, profile_size, freshness_unit, popularity_saturation)
    RETURNING feed_id INTO v_feed_id;
    RETURN v_feed_id;
END
$$;
COMMENT ON FUNCTION pgfeed.create_feed(text, text, float8, float8, float8, integer, interval, float8) IS
    'registers a feed: its model, score weights (similarity, freshness, popularity) and profile size; returns its id';

CREATE OR REPLACE FUNCTION pgfeed.detach(feed text, source regclass DEFAULT NULL) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $$
DECLARE
    v_feed pgfeed.feed_config := pgfeed._feed(feed);
    v_content pgfeed.content_source;
    v_interactions pgfeed.interaction_source;
BEGIN
    SELECT * INTO v_content FROM pgfeed.content_source WHERE feed_id = v_feed.feed_id;
    IF detach.source IS NULL OR detach.source = v_content.source THEN
        -- Without its content a feed has nothing to rank: everything goes.
        FOR v_interactions IN SELECT * FROM pgfeed.interaction_source WHERE feed_id = v_feed.feed_id LOOP
            PERFORM pgfeed._drop_triggers(v_interactions.source,
                                          pgfeed._interaction_trigger_prefix(v_feed.feed_id, v_interactions.source_id));
        END LOOP;
        IF v_content.feed_id IS NOT NULL THEN
            PERFORM pgfeed._drop_triggers(v_content.source, pgfeed._content_trigger_prefix(v_feed.feed_id));
        END IF;
        EXECUTE format('DROP TABLE IF EXISTS %s, %s, %s', pgfeed._item_store(v_feed.feed_id),
                       pgfeed._interaction_log(v_feed.feed_id), pgfeed._profile(v_feed.feed_id));
        DELETE FROM pgfeed.interaction_source WHERE feed_id = v_feed.feed_id;
        DELETE FROM pgfeed.content_source WHERE feed_id = v_feed.feed_id;
        UPDATE pgfeed.feed_config SET item_type = NULL, user_type = NULL WHERE feed_id = v_feed.feed_id;
        RETURN;
    END IF;
    SELECT * INTO v_interactions FROM pgfeed.interaction_source s
     WHERE s.feed_id = v_feed.feed_id AND s.source = detach.source;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'table % is not attached to feed "%"', detach.source, feed USING ERRCODE = 'undefined_object';
    END IF;
    PERFORM pgfeed._drop_triggers(v_interactions.source,
                                  pgfeed._interaction_trigger_prefix(v_feed.feed_id, v_interactions.source_id));
    PERFORM pgfeed._forget_source(v_interactions.source_id);
    DELETE FROM pgfeed.interaction_source WHERE source_id = v_interactions.source_id;
END
$$;
COMMENT ON FUNCTION pgfeed.detach(text, regclass) IS
    'detaches one interaction table from a feed, or (source NULL or the content table) all of its tables; '
    'the user''s tables are left as they were';

CREATE OR REPLACE FUNCTION pgfeed.drop_feed(name text) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $$
BEGIN
    PERFORM pgfeed.detach(drop_feed.name);
    DELETE FROM pgfeed.feed_config c WHERE c.name = drop_feed.name;
END
$$;
COMMENT ON FUNCTION pgfeed.drop_feed(text) IS 'drops a feed, its triggers and its data; the user''s tables are left as they were';
