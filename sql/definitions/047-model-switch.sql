-- Changing a feed's model. The next model's vectors are built in a shadow item
-- store by the workers (pgfeed.work() when the queue is idle) while the feed
-- keeps serving the current vectors; once every item has one, the shadow store
-- replaces the item store and the profiles are recomputed, in one transaction.

CREATE OR REPLACE FUNCTION pgfeed._drop_next_item_store(p_feed_id integer) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $$
BEGIN
    IF to_regclass(pgfeed._next_item_store(p_feed_id)) IS NOT NULL THEN  -- no notice when there is none
        EXECUTE format('DROP TABLE %s', pgfeed._next_item_store(p_feed_id));
    END IF;
END
$$;
COMMENT ON FUNCTION pgfeed._drop_next_item_store(integer) IS 'drops the shadow item store of a model switch, if any';

CREATE OR REPLACE FUNCTION pgfeed._start_switch(p_feed pgfeed.feed_config, p_model text) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $$
DECLARE
    v_dimensions integer := pgfeed._model_dimensions(p_model);  -- also a clear error for an unknown model
BEGIN
    PERFORM pgfeed._drop_next_item_store(p_feed.feed_id);
    UPDATE pgfeed.feed_config SET next_model = NULL, next_dimensions = NULL, next_after_key = NULL
     WHERE feed_id = p_feed.feed_id;
    IF p_model = p_feed.model THEN
        RETURN;  -- back to the current model: a switch under way is cancelled
    END IF;
    IF p_feed.item_type IS NULL THEN
        -- no item holds a vector: nothing to rebuild
        UPDATE pgfeed.feed_config SET model = p_model, dimensions = v_dimensions WHERE feed_id = p_feed.feed_id;
        IF p_feed.user_type IS NOT NULL THEN
            EXECUTE format('TRUNCATE %1$s; ALTER TABLE %1$s ALTER COLUMN embedding TYPE @vector@.vector(%2$s)',
                           pgfeed._profile(p_feed.feed_id), v_dimensions);
        END IF;
        RETURN;
    END IF;
    PERFORM pgfeed._create_item_store(pgfeed._next_item_store(p_feed.feed_id), p_feed.item_type, v_dimensions,
                                      format('pgfeed item store of feed %s being filled for its next model', p_feed.feed_id));
    UPDATE pgfeed.feed_config SET next_model = p_model, next_dimensions = v_dimensions WHERE feed_id = p_feed.feed_id;
    PERFORM pg_notify('pgfeed_queue', p_feed.feed_id::text);  -- idle workers start on it
END
$$;
COMMENT ON FUNCTION pgfeed._start_switch(pgfeed.feed_config, text) IS
    'starts (or with the current model, cancels) a feed''s switch to another model';

CREATE OR REPLACE FUNCTION pgfeed._switch_pending(p_feed pgfeed.feed_config, p_after text, p_size integer,
                                                  OUT ids text[], OUT texts text[], OUT created timestamptz[],
                                                  OUT last_key text)
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $$
DECLARE
    v_source pgfeed.content_source := pgfeed._content_source(p_feed);
    v_page record;
BEGIN
    -- Content rows after the key p_after (NULL: from the start), in key order,
    -- of embedded items whose current text has no vector of the next model
    -- yet: those of the first page of p_size rows that has any, and the page's
    -- last key. None (NULL ids) when the pass reached the end of the table.
    last_key := p_after;
    LOOP
        v_page := pgfeed._read_content(v_source, p_feed.item_type, NULL, last_key, p_size);
        EXIT WHEN v_page.ids IS NULL;
        last_key := v_page.last_key;
        EXECUTE format($q$
            SELECT array_agg(u.id), array_agg(u.body), array_agg(u.created)
              FROM unnest($1, $2, $3, $4, $5) AS u(id, body, created, ok, err)
             WHERE u.ok AND u.err IS NULL
               AND EXISTS (SELECT FROM %1$s s WHERE s.item_id = u.id::%3$s AND s.embedding IS NOT NULL)
               AND md5(u.body) IS DISTINCT FROM (SELECT n.text_hash FROM %2$s n WHERE n.item_id = u.id::%3$s)
            $q$, pgfeed._item_store(p_feed.feed_id), pgfeed._next_item_store(p_feed.feed_id), p_feed.item_type)
           INTO ids, texts, created
           USING v_page.ids, v_page.texts, v_page.created, v_page.eligible, v_page.errors;
        EXIT WHEN ids IS NOT NULL;
    END LOOP;
END
$$;
COMMENT ON FUNCTION pgfeed._switch_pending(pgfeed.feed_config, text, integer) IS
    'the next content rows a model switch has still to embed, read through the feed''s reader, and where they end';

CREATE OR REPLACE FUNCTION pgfeed._switch_step(p_feed pgfeed.feed_config, p_size integer) RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $$
DECLARE
    v_after text := p_feed.next_after_key;
    v_pending record;
    v_ids text[]; v_texts text[]; v_created timestamptz[]; v_last text;
    v_encodable integer[];
BEGIN
    PERFORM pgfeed._require_readable(p_feed);
    LOOP
        v_pending := pgfeed._switch_pending(p_feed, v_after, p_size);
        v_ids := v_pending.ids; v_texts := v_pending.texts; v_created := v_pending.created; v_last := v_pending.last_key;
        -- at the end of a pass, once more from the start: texts may have changed behind it
        EXIT WHEN v_ids IS NOT NULL OR v_after IS NULL;
        v_after := NULL;
    END LOOP;
    IF v_ids IS NULL THEN
        PERFORM pgfeed._swap_model(p_feed);
        RETURN 0;
    END IF;
    v_encodable := ARRAY(SELECT i FROM generate_subscripts(v_texts, 1) AS i WHERE v_texts[i] ~ '[^[:space:]]');
    -- Each item takes its tier from the item store now, so that the swap moves
    -- (and re-indexes) only the items whose like count crossed a tier since:
    -- moving them all held writers off for 10.5 s at 100,000 items.
    EXECUTE format($q$
        INSERT INTO %1$s AS n (item_id, embedding, text_hash, created_at, model, embedded_at, tier, attributes)
        SELECT u.id::%2$s, e.embedding, md5(u.body), u.created, $5, now(),
               coalesce((SELECT s.tier FROM %3$s s WHERE s.item_id = u.id::%2$s), 0),
               (SELECT s.attributes FROM %3$s s WHERE s.item_id = u.id::%2$s)
          FROM unnest($1, $2, $3) WITH ORDINALITY AS u(id, body, created, ord)
          JOIN unnest($4, $6) AS e(ord, embedding) ON e.ord = u.ord
        ON CONFLICT (item_id) DO UPDATE
           SET embedding = EXCLUDED.embedding, text_hash = EXCLUDED.text_hash, created_at = EXCLUDED.created_at,
               model = EXCLUDED.model, embedded_at = EXCLUDED.embedded_at, tier = EXCLUDED.tier,
               attributes = EXCLUDED.attributes
        $q$, pgfeed._next_item_store(p_feed.feed_id), p_feed.item_type, pgfeed._item_store(p_feed.feed_id))
       USING v_ids, v_texts, v_created, v_encodable, pgfeed._model_label(p_feed.next_model, p_feed.next_dimensions),
             pgfeed._encode(ARRAY(SELECT v_texts[i] FROM unnest(v_encodable) AS i), p_feed.next_model);
    UPDATE pgfeed.feed_config SET next_after_key = v_last WHERE feed_id = p_feed.feed_id;
    RETURN cardinality(v_ids);
END
$$;
COMMENT ON FUNCTION pgfeed._switch_step(pgfeed.feed_config, integer) IS
    'embeds one batch of a model switch with the next model, or swaps the stores when none is left; '
    'returns how many content rows it took';

CREATE OR REPLACE FUNCTION pgfeed._swap_model(p_feed pgfeed.feed_config) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $$
DECLARE
    v_store text := pgfeed._item_store(p_feed.feed_id);
    v_next text := pgfeed._next_item_store(p_feed.feed_id);
    v_users text[];
BEGIN
    -- Writers of the item store (content triggers, workers) wait from here to
    -- the commit; feed() readers go on until the store is dropped below.
    EXECUTE format('LOCK TABLE %s IN SHARE ROW EXCLUSIVE MODE', v_store);
    IF (pgfeed._switch_pending(p_feed, NULL, 512)).ids IS NOT NULL THEN
        RETURN;  -- changed since the last pass: the next step takes it
    END IF;
    -- The item store is the truth on what is in the feed; items without a
    -- vector (kept failures) carry over as they are.
    EXECUTE format($q$
        DELETE FROM %2$s n WHERE NOT EXISTS (SELECT FROM %1$s s WHERE s.item_id = n.item_id AND s.embedding IS NOT NULL);
        UPDATE %2$s n SET created_at = s.created_at, tier = s.tier, attributes = s.attributes FROM %1$s s
         WHERE s.item_id = n.item_id AND (s.created_at IS DISTINCT FROM n.created_at OR s.tier <> n.tier
                                          OR s.attributes IS DISTINCT FROM n.attributes);
        INSERT INTO %2$s SELECT * FROM %1$s WHERE embedding IS NULL;
        DROP TABLE %1$s;
        ALTER TABLE %2$s RENAME TO %3$I;
        $q$, v_store, v_next, split_part(v_store, '.', 2));
    PERFORM pgfeed._grant_readers(p_feed.feed_id);  -- the new store is a new table
    UPDATE pgfeed.feed_config
       SET model = next_model, dimensions = next_dimensions, next_model = NULL, next_dimensions = NULL, next_after_key = NULL
     WHERE feed_id = p_feed.feed_id;
    IF p_feed.user_type IS NOT NULL THEN
        EXECUTE format('SELECT array_agg(DISTINCT user_id::text) FROM %s', pgfeed._interaction_log(p_feed.feed_id))
           INTO v_users;
        EXECUTE format('TRUNCATE %1$s; ALTER TABLE %1$s ALTER COLUMN embedding TYPE @vector@.vector(%2$s)',
                       pgfeed._profile(p_feed.feed_id), p_feed.next_dimensions);
        PERFORM pgfeed._refresh_profiles(p_feed.feed_id, v_users);
    END IF;
END
$$;
COMMENT ON FUNCTION pgfeed._swap_model(pgfeed.feed_config) IS
    'ends a model switch: the filled shadow store becomes the item store and the profiles are recomputed with it';
