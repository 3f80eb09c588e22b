-- Content: attaching a content table, its statement-level triggers, and the
-- one routine (_sync_items) that brings items into the item store, used by the
-- triggers and by reembed alike.

CREATE OR REPLACE FUNCTION pgfeed._create_triggers(p_source regclass, p_prefix text, p_function text, p_argument integer)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $$
BEGIN
    -- One trigger an event: PostgreSQL allows transition tables only on single-event triggers.
    EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON %s REFERENCING NEW TABLE AS pgfeed_new '
                   'FOR EACH STATEMENT EXECUTE FUNCTION %s(%s)', p_prefix || '_insert', p_source, p_function, p_argument);
    EXECUTE format('CREATE TRIGGER %I AFTER UPDATE ON %s REFERENCING OLD TABLE AS pgfeed_old NEW TABLE AS pgfeed_new '
                   'FOR EACH STATEMENT EXECUTE FUNCTION %s(%s)', p_prefix || '_update', p_source, p_function, p_argument);
    EXECUTE format('CREATE TRIGGER %I AFTER DELETE ON %s REFERENCING OLD TABLE AS pgfeed_old '
                   'FOR EACH STATEMENT EXECUTE FUNCTION %s(%s)', p_prefix || '_delete', p_source, p_function, p_argument);
    EXECUTE format('CREATE TRIGGER %I AFTER TRUNCATE ON %s '
                   'FOR EACH STATEMENT EXECUTE FUNCTION %s(%s)', p_prefix || '_truncate', p_source, p_function, p_argument);
END
$$;
COMMENT ON FUNCTION pgfeed._create_triggers(regclass, text, text, integer) IS
    'creates the statement-level INSERT, UPDATE, DELETE and TRUNCATE triggers pgfeed puts on a table';

CREATE OR REPLACE FUNCTION pgfeed._drop_triggers(p_source regclass, p_prefix text) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $$
DECLARE
    v_event text;
BEGIN
    FOREACH v_event IN ARRAY ARRAY['insert', 'update', 'delete', 'truncate'] LOOP
        EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', p_prefix || '_' || v_event, p_source);
    END LOOP;
END
$$;
COMMENT ON FUNCTION pgfeed._drop_triggers(regclass, text) IS 'removes the triggers _create_triggers made';

CREATE OR REPLACE FUNCTION pgfeed._content_trigger_prefix(p_feed_id integer) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path FROM CURRENT
AS $$ SELECT 'pgfeed_feed' || p_feed_id || '_content' $$;
COMMENT ON FUNCTION pgfeed._content_trigger_prefix(integer) IS 'name prefix of the triggers on a feed''s content table';

CREATE OR REPLACE FUNCTION pgfeed._content_rows_sql(p_source pgfeed.content_source, p_from text) RETURNS text
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
    -- Columns of the rows in p_from as parallel arrays: key, text, time,
    -- whether the row belongs in the feed, and the greatest key (for paging).
    SELECT format('SELECT array_agg(%1$I::text), array_agg((%2$s)::text), array_agg(%3$I::timestamptz), '
                  'array_agg(coalesce((%4$s)::boolean, false)), (array_agg(%1$I ORDER BY %1$I DESC))[1]::text FROM %5$s',
                  p_source.id_column, p_source.text_expression, p_source.created_at_column,
                  coalesce(p_source.condition, 'true'), p_from)
$$;
COMMENT ON FUNCTION pgfeed._content_rows_sql(pgfeed.content_source, text) IS
    'the query that reads content rows for _sync_items';

CREATE OR REPLACE FUNCTION pgfeed.attach_content(
    feed text,
    source regclass,
    id_column name,
    text text,
    created_at_column name,
    condition text DEFAULT NULL,
    backfill boolean DEFAULT true)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $$
DECLARE
    v_feed pgfeed.feed_config := pgfeed._feed(feed);
    v_item_kind regtype;
    v_store text := pgfeed._item_store(v_feed.feed_id);
BEGIN
    IF EXISTS (SELECT 1 FROM pgfeed.content_source s WHERE s.feed_id = v_feed.feed_id) THEN
        RAISE EXCEPTION 'feed "%" already has a content table', feed
            USING ERRCODE = 'duplicate_object',
                  HINT = format('detach it first: SELECT pgfeed.detach(%L)', feed);
    END IF;
    v_item_kind := pgfeed._key_column(source, id_column, 'an item');
    PERFORM pgfeed._column_type(source, created_at_column);
    PERFORM pgfeed._check_expression(source, attach_content.text, 'text', 'text');
    IF condition IS NOT NULL THEN
        PERFORM pgfeed._check_expression(source, condition, 'boolean', 'condition');
    END IF;

    EXECUTE format($ddl$
        CREATE TABLE %1$s (
            item_id     %2$s PRIMARY KEY,
            embedding   vector(%3$s),
            text_hash   text,
            created_at  timestamptz,
            popularity  bigint NOT NULL DEFAULT 0,
            model       text,
            error       text,
            embedded_at timestamptz
        );
        CREATE INDEX ON %1$s USING hnsw (embedding vector_cosine_ops);
        CREATE INDEX ON %1$s (created_at);
        CREATE INDEX ON %1$s (popularity);
        COMMENT ON TABLE %1$s IS %4$L;
        $ddl$, v_store, v_item_kind, v_feed.dimensions,
        format('pgfeed item store of feed %s (content from %s)', feed, source));

    INSERT INTO pgfeed.content_source (feed_id, source, id_column, text_expression, created_at_column, condition)
    VALUES (v_feed.feed_id, source, id_column, attach_content.text, created_at_column, condition);
    UPDATE pgfeed.feed_config SET item_type = v_item_kind WHERE feed_id = v_feed.feed_id;
    PERFORM pgfeed._create_triggers(source, pgfeed._content_trigger_prefix(v_feed.feed_id),
                                    'pgfeed._content_trigger', v_feed.feed_id);
    IF backfill THEN
        RETURN pgfeed.reembed(feed);
    END IF;
    RETURN 0;
END
$$;
COMMENT ON FUNCTION pgfeed.attach_content(text, regclass, name, text, name, text, boolean) IS
    'attaches a content table to a feed: text is an SQL expression over a row, condition a boolean one; '
    'existing rows are embedded unless backfill is false; returns how many were embedded';

CREATE OR REPLACE FUNCTION pgfeed._content_trigger() RETURNS trigger
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path FROM CURRENT
AS $$
DECLARE
    v_source pgfeed.content_source;
    v_gone text[];
    v_ids text[];
    v_texts text[];
    v_created timestamptz[];
    v_eligible boolean[];
    v_max text;
BEGIN
    SELECT * INTO STRICT v_source FROM pgfeed.content_source WHERE feed_id = TG_ARGV[0]::integer;
    IF TG_OP = 'TRUNCATE' THEN
        PERFORM pgfeed._remove_all_items(v_source.feed_id);
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        -- keys that no longer exist (deleted rows, or updates of the key itself)
        EXECUTE format('SELECT array_agg(k::text) FROM (SELECT %1$I FROM pgfeed_old %2$s) AS g(k)',
                       v_source.id_column,
                       CASE WHEN TG_OP = 'UPDATE' THEN format('EXCEPT SELECT %I FROM pgfeed_new', v_source.id_column) END)
           INTO v_gone;
        PERFORM pgfeed._remove_items(v_source.feed_id, v_gone);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        -- Transition tables are visible only here, not in the functions this one calls.
        EXECUTE pgfeed._content_rows_sql(v_source, 'pgfeed_new') INTO v_ids, v_texts, v_created, v_eligible, v_max;
        PERFORM pgfeed._sync_items(v_source.feed_id, v_ids, v_texts, v_created, v_eligible);
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION pgfeed._content_trigger() IS
    'statement-level trigger on a content table: one batched embedding call a statement';

CREATE OR REPLACE FUNCTION pgfeed._sync_items(
    p_feed_id integer, p_ids text[], p_texts text[], p_created timestamptz[], p_eligible boolean[])
RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $$
DECLARE
    v_feed pgfeed.feed_config;
    v_store text := pgfeed._item_store(p_feed_id);
    v_removed text[];
    v_ids text[];
    v_texts text[];
    v_created timestamptz[];
    v_encodable integer[];
    v_vectors vector[];
    v_error text;
    v_popularity text;
BEGIN
    IF p_ids IS NULL THEN
        RETURN 0;
    END IF;
    SELECT * INTO STRICT v_feed FROM pgfeed.feed_config WHERE feed_id = p_feed_id;

    -- rows whose condition is not true leave the feed
    v_removed := ARRAY(SELECT id FROM unnest(p_ids, p_eligible) AS u(id, ok) WHERE NOT ok);
    PERFORM pgfeed._remove_items(p_feed_id, v_removed);

    -- Eligible rows with new or changed text need the model. The others at
    -- most moved in time; the text hash is what makes re-writes free.
    EXECUTE format($q$
        WITH u AS (
            SELECT id::%2$s AS item_id, body, created
              FROM unnest($1, $2, $3, $4) AS u(id, body, created, ok) WHERE ok
        ), moved AS (
            UPDATE %1$s s SET created_at = u.created
              FROM u WHERE s.item_id = u.item_id AND s.text_hash = md5(u.body)
                       AND s.created_at IS DISTINCT FROM u.created
        )
        SELECT array_agg(u.item_id::text), array_agg(u.body), array_agg(u.created)
          FROM u LEFT JOIN %1$s s ON s.item_id = u.item_id
         WHERE s.item_id IS NULL OR s.text_hash IS DISTINCT FROM md5(u.body)
        $q$, v_store, v_feed.item_type)
       INTO v_ids, v_texts, v_created
       USING p_ids, p_texts, p_created, p_eligible;
    IF v_ids IS NULL THEN
        RETURN 0;
    END IF;

    -- One model call for the statement (the encoder batches inside). NULL or
    -- blank texts cannot be embedded: they are kept as failed items, and so is
    -- the whole batch if the encoder fails, so that the user's write commits.
    v_encodable := ARRAY(SELECT i FROM generate_subscripts(v_texts, 1) AS i WHERE v_texts[i] ~ '[^[:space:]]');
    IF cardinality(v_encodable) > 0 THEN
        BEGIN
            v_vectors := pgfeed._encode(ARRAY(SELECT v_texts[i] FROM unnest(v_encodable) AS i), v_feed.model);
        EXCEPTION WHEN OTHERS THEN
            v_error := format('encoder %s failed: %s', v_feed.model, SQLERRM);
            RAISE WARNING 'pgfeed: feed "%": % item(s) saved without embedding: %', v_feed.name, cardinality(v_encodable), v_error
                USING HINT = format('once the encoder works, embed them with SELECT pgfeed.reembed(%L)', v_feed.name);
        END;
    END IF;

    v_popularity := CASE WHEN v_feed.user_type IS NULL THEN '0' ELSE format(
        '(SELECT count(*) FROM %s l WHERE l.item_id = u.id::%s AND l.weight > 0)',
        pgfeed._interaction_log(p_feed_id), v_feed.item_type) END;
    EXECUTE format($q$
        INSERT INTO %1$s AS s (item_id, embedding, text_hash, created_at, popularity, model, error, embedded_at)
        SELECT u.id::%2$s, e.embedding,
               CASE WHEN e.embedding IS NOT NULL OR u.body !~ '[^[:space:]]' THEN md5(u.body) END,
               u.created, %3$s, $6,
               CASE WHEN e.embedding IS NOT NULL THEN NULL
                    WHEN u.body IS NULL THEN 'text expression is NULL'
                    WHEN u.body !~ '[^[:space:]]' THEN 'text expression is empty'
                    ELSE $5 END,
               now()
          FROM unnest($1, $2, $3) WITH ORDINALITY AS u(id, body, created, ord)
          LEFT JOIN unnest($4, $7) AS e(ord, embedding) ON e.ord = u.ord
        ON CONFLICT (item_id) DO UPDATE
           SET embedding = EXCLUDED.embedding, text_hash = EXCLUDED.text_hash, created_at = EXCLUDED.created_at,
               model = EXCLUDED.model, error = EXCLUDED.error, embedded_at = EXCLUDED.embedded_at
        $q$, v_store, v_feed.item_type, v_popularity)
       USING v_ids, v_texts, v_created, v_encodable, v_error, v_feed.model, v_vectors;

    PERFORM pgfeed._refresh_profiles_of_items(p_feed_id, v_ids);
    RETURN coalesce(cardinality(v_vectors), 0);
END
$$;
COMMENT ON FUNCTION pgfeed._sync_items(integer, text[], text[], timestamptz[], boolean[]) IS
    'brings content rows into a feed''s item store: embeds new or changed text, keeps failures, drops ineligible rows; '
    'returns how many were embedded';

CREATE OR REPLACE FUNCTION pgfeed._remove_items(p_feed_id integer, p_ids text[]) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $$
DECLARE
    v_removed text[];
BEGIN
    IF cardinality(p_ids) > 0 THEN
        EXECUTE format('WITH d AS (DELETE FROM %s WHERE item_id = ANY ($1::%s[]) RETURNING item_id) '
                       'SELECT array_agg(item_id::text) FROM d',
                       pgfeed._item_store(p_feed_id), (SELECT item_type FROM pgfeed.feed_config WHERE feed_id = p_feed_id))
           INTO v_removed USING p_ids;
        PERFORM pgfeed._refresh_profiles_of_items(p_feed_id, v_removed);
    END IF;
END
$$;
COMMENT ON FUNCTION pgfeed._remove_items(integer, text[]) IS 'removes items from a feed and refreshes the profiles that held them';

CREATE OR REPLACE FUNCTION pgfeed._remove_all_items(p_feed_id integer) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $$
BEGIN
    EXECUTE format('DELETE FROM %s', pgfeed._item_store(p_feed_id));
    IF (SELECT user_type FROM pgfeed.feed_config WHERE feed_id = p_feed_id) IS NOT NULL THEN
        EXECUTE format('DELETE FROM %s', pgfeed._profile(p_feed_id));  -- no item left to be similar to
    END IF;
END
$$;
COMMENT ON FUNCTION pgfeed._remove_all_items(integer) IS 'empties a feed''s item store (its content table was truncated)';

CREATE OR REPLACE FUNCTION pgfeed.reembed(feed text, force boolean DEFAULT false) RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $$
DECLARE
    v_feed pgfeed.feed_config := pgfeed._feed(feed);
    v_source pgfeed.content_source;
    v_store text := pgfeed._item_store(v_feed.feed_id);
    v_gone text[];
    v_ids text[];
    v_texts text[];
    v_created timestamptz[];
    v_eligible boolean[];
    v_after text;
    v_embedded bigint := 0;
BEGIN
    SELECT * INTO v_source FROM pgfeed.content_source WHERE feed_id = v_feed.feed_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'feed "%" has no content table', feed
            USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'attach one with pgfeed.attach_content(...)';
    END IF;
    IF force THEN
        EXECUTE format('UPDATE %s SET text_hash = NULL', v_store);
    END IF;
    EXECUTE format('SELECT array_agg(s.item_id::text) FROM %s s WHERE NOT EXISTS (SELECT FROM %s r WHERE r.%I = s.item_id)',
                   v_store, v_source.source, v_source.id_column)
       INTO v_gone;
    PERFORM pgfeed._remove_items(v_feed.feed_id, v_gone);
    -- page through the content table by key, one batch a page
    LOOP
        EXECUTE pgfeed._content_rows_sql(v_source, format(
                    '(SELECT * FROM %1$s WHERE $1 IS NULL OR %2$I > $1::%3$s ORDER BY %2$I LIMIT 512) AS r',
                    v_source.source, v_source.id_column, v_feed.item_type))
           INTO v_ids, v_texts, v_created, v_eligible, v_after USING v_after;
        EXIT WHEN v_ids IS NULL;
        v_embedded := v_embedded + pgfeed._sync_items(v_feed.feed_id, v_ids, v_texts, v_created, v_eligible);
    END LOOP;
    RETURN v_embedded;
END
$$;
COMMENT ON FUNCTION pgfeed.reembed(text, boolean) IS
    'brings a feed''s item store up to date with its content table (backfill, retry of failures; '
    'force re-embeds everything); returns how many items were embedded';
