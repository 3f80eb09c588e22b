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
    IF NOT EXISTS (SELECT FROM pg_class WHERE oid = p_source) THEN
        RETURN;  -- the user dropped the table, and its triggers with it
    END IF;
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

CREATE OR REPLACE FUNCTION pgfeed._create_similarity_indexes(p_table text) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $$
BEGIN
    -- m = 8 links a node instead of pgvector's default 16: measured (bench/README), it halves the
    -- cost of an insert (0.95 to 0.42 ms a row for 5,000 real vectors), which the sync trigger pays
    -- on top of the model, and the feed keeps its recall (the tiers' searches are iterative).
    FOR v_tier IN 0 .. pgfeed._popularity_tiers() - 1 LOOP
        EXECUTE format('CREATE INDEX ON %s USING hnsw (embedding vector_cosine_ops) WITH (m = 8) WHERE tier = %s',
                       p_table, v_tier);
    END LOOP;
END
$$;
COMMENT ON FUNCTION pgfeed._create_similarity_indexes(text) IS
    'creates an item store''s HNSW indexes (m 8), one a like-count tier (pgfeed._popularity_tier)';

CREATE OR REPLACE FUNCTION pgfeed._create_item_store(p_table text, p_item_type regtype, p_dimensions integer,
                                                     p_comment text) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $$
BEGIN
    EXECUTE format($ddl$
        CREATE TABLE %1$s (
            item_id     %2$s PRIMARY KEY,
            embedding   vector(%3$s),
            text_hash   text,
            created_at  timestamptz,
            model       text,
            error       text,
            embedded_at timestamptz,
            tier        smallint NOT NULL DEFAULT 0  -- pgfeed._popularity_tier of its like count
        );
        CREATE INDEX ON %1$s (created_at);
        COMMENT ON TABLE %1$s IS %4$L;
        $ddl$, p_table, p_item_type, p_dimensions, p_comment);
    PERFORM pgfeed._create_similarity_indexes(p_table);
END
$$;
COMMENT ON FUNCTION pgfeed._create_item_store(text, regtype, integer, text) IS
    'creates an item store: one row an item, its vector (an HNSW index a like-count tier), text hash, time, '
    'model label, error and tier';

CREATE OR REPLACE FUNCTION pgfeed._tier_trigger() RETURNS trigger
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $$
BEGIN
    -- (A model switch's shadow store copies an item's tier as it embeds it, and the swap the tiers changed since.)
    EXECUTE format('UPDATE %s SET tier = $1 WHERE item_id = $2', pgfeed._item_store(TG_ARGV[0]::integer))
      USING pgfeed._popularity_tier(NEW.popularity), NEW.item_id;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION pgfeed._tier_trigger() IS
    'row trigger on a like-count table: moves an item whose count crossed a power of ten to its new tier';

CREATE OR REPLACE FUNCTION pgfeed._create_tier_triggers(p_feed_id integer) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $$
BEGIN
    -- only when the tier changes: twice in the life of an item with a hundred likes
    EXECUTE format($ddl$
        CREATE OR REPLACE TRIGGER pgfeed_tier_insert AFTER INSERT ON %1$s FOR EACH ROW
            WHEN (pgfeed._popularity_tier(NEW.popularity) <> 0) EXECUTE FUNCTION pgfeed._tier_trigger(%2$s);
        CREATE OR REPLACE TRIGGER pgfeed_tier_update AFTER UPDATE OF popularity ON %1$s FOR EACH ROW
            WHEN (pgfeed._popularity_tier(OLD.popularity) <> pgfeed._popularity_tier(NEW.popularity))
            EXECUTE FUNCTION pgfeed._tier_trigger(%2$s);
        $ddl$, pgfeed._item_popularity(p_feed_id), p_feed_id);
END
$$;
COMMENT ON FUNCTION pgfeed._create_tier_triggers(integer) IS
    'creates (or replaces) the triggers that keep the item store''s like-count tiers in step with the like counts';

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

    PERFORM pgfeed._create_item_store(v_store, v_item_kind, v_feed.dimensions,
                                      format('pgfeed item store of feed %s (content from %s)', feed, source));
    EXECUTE format($ddl$
        CREATE TABLE %1$s (
            item_id    %2$s PRIMARY KEY,
            popularity bigint NOT NULL DEFAULT 0
        );
        CREATE INDEX ON %1$s (popularity);
        COMMENT ON TABLE %1$s IS %3$L;
        $ddl$, pgfeed._item_popularity(v_feed.feed_id), v_item_kind, format('pgfeed like counts of feed %s', feed));
    PERFORM pgfeed._create_tier_triggers(v_feed.feed_id);

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
    -- A bulk load may skip pgfeed on purpose; pgfeed.reembed() catches up.
    IF current_setting('pgfeed.skip_content_triggers', true) = 'on' THEN
        RETURN NULL;
    END IF;
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
        PERFORM pgfeed._sync_items(v_source.feed_id, v_ids, v_texts, v_created, v_eligible,
                                   CASE (SELECT mode FROM pgfeed.feed_config WHERE feed_id = v_source.feed_id)
                                        WHEN 'async' THEN 'queue' ELSE 'now' END);
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION pgfeed._content_trigger() IS
    'statement-level trigger on a content table: one batched embedding call a statement (sync feeds), '
    'or one queue insert (async feeds)';

CREATE OR REPLACE FUNCTION pgfeed._sync_items(
    p_feed_id integer, p_ids text[], p_texts text[], p_created timestamptz[], p_eligible boolean[],
    p_embed text DEFAULT 'now')
RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $$
DECLARE
    v_feed pgfeed.feed_config;
    v_source pgfeed.content_source;
    v_store text := pgfeed._item_store(p_feed_id);
    v_removed text[];
    v_ids text[];
    v_texts text[];
    v_created timestamptz[];
    v_encodable integer[];
    v_vectors vector[];
    v_error text;
    v_still_current text := '';
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
    IF p_embed = 'queue' THEN
        PERFORM pgfeed._enqueue(p_feed_id, v_ids);
        RETURN 0;
    END IF;

    -- One model call for the statement (the encoder batches inside). NULL or
    -- blank texts cannot be embedded: they are kept as failed items. When the
    -- encoder fails, the whole batch is kept as failed and queued for a worker
    -- so that the user's write commits; a worker ('raise') lets it propagate.
    v_encodable := ARRAY(SELECT i FROM generate_subscripts(v_texts, 1) AS i WHERE v_texts[i] ~ '[^[:space:]]');
    IF cardinality(v_encodable) > 0 THEN
        BEGIN
            v_vectors := pgfeed._encode(ARRAY(SELECT v_texts[i] FROM unnest(v_encodable) AS i), v_feed.model);
        EXCEPTION WHEN OTHERS THEN
            IF p_embed = 'raise' THEN
                RAISE;
            END IF;
            v_error := format('encoder %s failed: %s', v_feed.model, SQLERRM);
            RAISE WARNING 'pgfeed: feed "%": % item(s) saved without embedding and queued: %',
                          v_feed.name, cardinality(v_encodable), v_error
                USING HINT = 'run `pgfeed worker` once the encoder works, or SELECT pgfeed.reembed(...)';
            PERFORM pgfeed._enqueue(p_feed_id, ARRAY(SELECT v_ids[i] FROM unnest(v_encodable) AS i), v_error);
        END;
    END IF;

    IF p_embed = 'raise' THEN
        -- A worker read these rows a while ago: store only what is still their
        -- current text, so that a concurrent delete or edit wins.
        SELECT * INTO STRICT v_source FROM pgfeed.content_source WHERE feed_id = p_feed_id;
        v_still_current := format('WHERE EXISTS (SELECT FROM %s r WHERE r.%I = u.id::%s AND (%s) '
                                  'AND ((%s)::text) IS NOT DISTINCT FROM u.body)',
                                  v_source.source, v_source.id_column, v_feed.item_type,
                                  coalesce(v_source.condition, 'true'), v_source.text_expression);
    END IF;
    EXECUTE format($q$
        WITH stored AS (
        INSERT INTO %1$s AS s (item_id, embedding, text_hash, created_at, model, error, embedded_at, tier)
        SELECT u.id::%2$s, e.embedding,
               CASE WHEN e.embedding IS NOT NULL OR u.body !~ '[^[:space:]]' THEN md5(u.body) END,
               u.created, $6,
               CASE WHEN e.embedding IS NOT NULL THEN NULL
                    WHEN u.body IS NULL THEN 'text expression is NULL'
                    WHEN u.body !~ '[^[:space:]]' THEN 'text expression is empty'
                    ELSE $5 END,
               now(),
               coalesce(pgfeed._popularity_tier((SELECT p.popularity FROM %3$s p WHERE p.item_id = u.id::%2$s)), 0)
          FROM unnest($1, $2, $3) WITH ORDINALITY AS u(id, body, created, ord)
          LEFT JOIN unnest($4, $7) AS e(ord, embedding) ON e.ord = u.ord
          %4$s
        ON CONFLICT (item_id) DO UPDATE
           SET embedding = EXCLUDED.embedding, text_hash = EXCLUDED.text_hash, created_at = EXCLUDED.created_at,
               model = EXCLUDED.model, error = EXCLUDED.error, embedded_at = EXCLUDED.embedded_at
        RETURNING item_id
        )
        -- every stored item has a like count, so the popularity stream reaches all of them
        INSERT INTO %3$s (item_id) SELECT item_id FROM stored ON CONFLICT (item_id) DO NOTHING
        $q$, v_store, v_feed.item_type, pgfeed._item_popularity(p_feed_id), v_still_current)
       USING v_ids, v_texts, v_created, v_encodable, v_error, pgfeed._model_label(v_feed.model, v_feed.dimensions),
             v_vectors;

    -- Earlier queued work on them is done; but a worker read its rows a while
    -- ago, and what was queued since (an edit it did not see) must stay: it
    -- removes only what it claimed.
    IF v_error IS NULL AND p_embed <> 'raise' THEN
        PERFORM pgfeed._dequeue(p_feed_id, v_ids);
    END IF;
    PERFORM pgfeed._refresh_profiles_of_items(p_feed_id, v_ids);
    RETURN coalesce(cardinality(v_vectors), 0);
END
$$;
COMMENT ON FUNCTION pgfeed._sync_items(integer, text[], text[], timestamptz[], boolean[], text) IS
    'brings content rows into a feed''s item store: embeds new or changed text (p_embed now or raise) or queues it '
    '(queue), keeps failures, drops ineligible rows; returns how many were embedded';

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

CREATE OR REPLACE FUNCTION pgfeed._content_source(p_feed pgfeed.feed_config) RETURNS pgfeed.content_source
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $$
DECLARE
    v_source pgfeed.content_source;
BEGIN
    SELECT * INTO v_source FROM pgfeed.content_source WHERE feed_id = p_feed.feed_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'feed "%" has no content table', p_feed.name
            USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'attach one with pgfeed.attach_content(...)';
    END IF;
    RETURN v_source;
END
$$;
COMMENT ON FUNCTION pgfeed._content_source(pgfeed.feed_config) IS 'the content table of a feed, or a clear error';

CREATE OR REPLACE FUNCTION pgfeed._reembed_page(p_feed pgfeed.feed_config, p_after text, p_size integer,
                                                OUT rows integer, OUT embedded integer, OUT last_key text)
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $$
DECLARE
    v_source pgfeed.content_source := pgfeed._content_source(p_feed);
    v_ids text[]; v_texts text[]; v_created timestamptz[]; v_eligible boolean[];
BEGIN
    -- keyset paging through the content table: resumable from any key
    EXECUTE pgfeed._content_rows_sql(v_source, format(
                '(SELECT * FROM %1$s WHERE $1 IS NULL OR %2$I > $1::%3$s ORDER BY %2$I LIMIT %4$s) AS r',
                v_source.source, v_source.id_column, p_feed.item_type, p_size))
       INTO v_ids, v_texts, v_created, v_eligible, last_key USING p_after;
    rows := coalesce(cardinality(v_ids), 0);
    embedded := pgfeed._sync_items(p_feed.feed_id, v_ids, v_texts, v_created, v_eligible);
END
$$;
COMMENT ON FUNCTION pgfeed._reembed_page(pgfeed.feed_config, text, integer) IS
    'embeds (if needed) the content rows after a key, one page; returns the page''s size, embedded count and last key';

CREATE OR REPLACE FUNCTION pgfeed._remove_gone_items(p_feed pgfeed.feed_config) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $$
DECLARE
    v_source pgfeed.content_source := pgfeed._content_source(p_feed);
    v_gone text[];
BEGIN
    EXECUTE format('SELECT array_agg(s.item_id::text) FROM %s s WHERE NOT EXISTS (SELECT FROM %s r WHERE r.%I = s.item_id)',
                   pgfeed._item_store(p_feed.feed_id), v_source.source, v_source.id_column)
       INTO v_gone;
    PERFORM pgfeed._remove_items(p_feed.feed_id, v_gone);
END
$$;
COMMENT ON FUNCTION pgfeed._remove_gone_items(pgfeed.feed_config) IS
    'removes items whose content row is gone (deleted while the triggers were skipped)';

CREATE OR REPLACE FUNCTION pgfeed.reembed(feed text, force boolean DEFAULT false) RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $$
DECLARE
    v_feed pgfeed.feed_config := pgfeed._feed(feed);
    v_page record;
    v_after text;
    v_embedded bigint := 0;
BEGIN
    PERFORM pgfeed._content_source(v_feed);
    IF force THEN
        EXECUTE format('UPDATE %s SET text_hash = NULL', pgfeed._item_store(v_feed.feed_id));
    END IF;
    PERFORM pgfeed._remove_gone_items(v_feed);
    LOOP
        v_page := pgfeed._reembed_page(v_feed, v_after, 512);
        EXIT WHEN v_page.rows = 0;
        v_embedded := v_embedded + v_page.embedded;
        v_after := v_page.last_key;
    END LOOP;
    RETURN v_embedded;
END
$$;
COMMENT ON FUNCTION pgfeed.reembed(text, boolean) IS
    'brings a feed''s item store up to date with its content table in one transaction (backfill, retry of failures; '
    'force re-embeds everything); returns how many items were embedded. `pgfeed reembed` does it in batches';

CREATE OR REPLACE FUNCTION pgfeed.reembed_batch(
    feed text, size integer DEFAULT 512, restart boolean DEFAULT false, force boolean DEFAULT false)
RETURNS TABLE (rows integer, embedded integer, resumed_after text)
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $$
DECLARE
    v_feed pgfeed.feed_config := pgfeed._feed(feed);
    v_page record;
BEGIN
    PERFORM pgfeed._content_source(v_feed);
    IF size IS NULL OR size < 1 THEN
        RAISE EXCEPTION 'size must be at least 1, got %', coalesce(size::text, 'NULL') USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF restart OR force THEN
        DELETE FROM pgfeed.reembed_progress p WHERE p.feed_id = v_feed.feed_id;
    END IF;
    IF force THEN
        -- committed with the first page: a resumed run still re-embeds the rest
        EXECUTE format('UPDATE %s SET text_hash = NULL', pgfeed._item_store(v_feed.feed_id));
    END IF;
    SELECT p.after_key INTO resumed_after FROM pgfeed.reembed_progress p WHERE p.feed_id = v_feed.feed_id;
    v_page := pgfeed._reembed_page(v_feed, resumed_after, size);
    rows := v_page.rows; embedded := v_page.embedded;
    IF v_page.rows = 0 THEN
        PERFORM pgfeed._remove_gone_items(v_feed);
        DELETE FROM pgfeed.reembed_progress p WHERE p.feed_id = v_feed.feed_id;
    ELSE
        INSERT INTO pgfeed.reembed_progress AS p (feed_id, after_key) VALUES (v_feed.feed_id, v_page.last_key)
        ON CONFLICT (feed_id) DO UPDATE SET after_key = EXCLUDED.after_key, updated_at = now();
    END IF;
    RETURN NEXT;
END
$$;
COMMENT ON FUNCTION pgfeed.reembed_batch(text, integer, boolean, boolean) IS
    'one page of a resumable reembed, to be called (each in its own transaction) until it returns 0 rows: embeds the '
    'content rows after the last committed key and records the new one; restart starts over, force re-embeds all';

-- Feeds attached before the like-count tiers existed (migration 004) get their triggers here.
SELECT pgfeed._create_tier_triggers(feed_id) FROM pgfeed.content_source;
