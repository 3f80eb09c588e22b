-- Items one at a time, for an admin (pgfeed.django's): the state of given
-- items of a feed, and sending given items through embedding again. What a
-- role reads here it reads with its own rights, as with status(); re-embedding
-- stays with feed administrators, as reembed() does.

CREATE OR REPLACE FUNCTION pgfeed._require_feed_name(p_feed text) RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path FROM CURRENT
AS $$
BEGIN
    IF p_feed IS NULL THEN
        RAISE EXCEPTION 'feed must not be NULL'
            USING ERRCODE = 'null_value_not_allowed', HINT = 'name a feed: SELECT feed FROM pgfeed.status() lists yours';
    END IF;
    RETURN p_feed;
END
$$;
COMMENT ON FUNCTION pgfeed._require_feed_name(text) IS 'a feed''s name as given, or a clear error for NULL';

CREATE OR REPLACE FUNCTION pgfeed._item_keys(p_feed pgfeed.feed_config, p_ids text[]) RETURNS text[]
LANGUAGE plpgsql IMMUTABLE
SET search_path FROM CURRENT
AS $$
DECLARE
    v_keys text[];
    v_key text;
    v_at integer;
BEGIN
    -- Keys as pgfeed stores them (the item store's type, back to text: ' 7'
    -- is '7', an upper-case uuid lower case), in the order given. Casts
    -- between built-in types only, whoever calls.
    IF p_ids IS NULL THEN
        RETURN NULL;
    END IF;
    IF array_ndims(p_ids) > 1 THEN
        RAISE EXCEPTION 'ids must be a one-dimensional array of item keys, got % dimensions', array_ndims(p_ids)
            USING ERRCODE = 'array_subscript_error', HINT = 'pass ARRAY[''1'', ''2''], not ARRAY[[''1''], [''2'']]';
    END IF;
    v_at := array_position(p_ids, NULL);
    IF v_at IS NOT NULL THEN
        RAISE EXCEPTION 'ids holds a NULL (element % of %): every item key must be a value', v_at, cardinality(p_ids)
            USING ERRCODE = 'null_value_not_allowed', HINT = 'leave the NULLs out (array_remove(ids, NULL))';
    END IF;
    BEGIN
        EXECUTE format('SELECT ARRAY(SELECT k::%s::text FROM unnest($1) WITH ORDINALITY AS u(k, o) ORDER BY o)',
                       p_feed.item_type)
           INTO v_keys USING p_ids;
    EXCEPTION WHEN invalid_text_representation OR numeric_value_out_of_range THEN
        -- the first key that is not one, by its position
        FOR i IN 1 .. cardinality(p_ids) LOOP
            v_key := p_ids[i];
            BEGIN
                EXECUTE format('SELECT $1::%s', p_feed.item_type) USING v_key;
            EXCEPTION WHEN invalid_text_representation OR numeric_value_out_of_range THEN
                RAISE EXCEPTION 'element % of ids, %, is not an item key of feed "%", whose keys are %', i,
                                quote_literal(left(v_key, 60)) || CASE WHEN length(v_key) > 60 THEN ' (cut)' ELSE '' END,
                                p_feed.name, p_feed.item_type
                    USING ERRCODE = 'invalid_text_representation',
                          HINT = CASE WHEN p_feed.item_type = 'uuid'::regtype
                                      THEN 'pass uuids as text: ''a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'''
                                      ELSE 'pass integers as text: ''42''' END;
            END;
        END LOOP;
        RAISE;  -- (not reached: one of them failed above)
    END;
    RETURN v_keys;
END
$$;
COMMENT ON FUNCTION pgfeed._item_keys(pgfeed.feed_config, text[]) IS
    'item keys given as text, as the feed stores them (in the order given); an error names the first that is not one';

-- SECURITY INVOKER, like status(): a role reads the queue's rows of the feeds
-- granted to it (row-level security) and the item stores grant_feed gave it.
CREATE OR REPLACE FUNCTION pgfeed.item_status(feed text, ids text[])
RETURNS TABLE (item_id text, state text, attempts integer, error text, embedded_at timestamptz, queued_at timestamptz,
               model text)
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $$
-- (its rows come from RETURN QUERY, which plpgsql_check takes for OUT variables never set)
-- @plpgsql_check_options: extra_warnings = false
DECLARE
    v_feed pgfeed.feed_config := pgfeed._feed(pgfeed._require_feed_name(item_status.feed));
    v_store text := pgfeed._item_store(v_feed.feed_id);
    v_given text[] := item_status.ids;
    v_keys text[];
BEGIN
    PERFORM pgfeed._content_source(v_feed);  -- no content table, no items: a clear error
    IF item_status.ids IS NULL THEN
        -- Every item pending or failed: the feed's queue (an index) and the
        -- items kept as failed (a partial index); never the whole store.
        EXECUTE format('SELECT array_agg(k) FROM (SELECT q.item_id FROM pgfeed.embedding_queue q WHERE q.feed_id = $1 '
                       'UNION SELECT s.item_id::text FROM %s s WHERE s.error IS NOT NULL) AS u(k)', v_store)
           INTO v_keys USING v_feed.feed_id;
        v_given := v_keys;
    ELSE
        v_keys := pgfeed._item_keys(v_feed, item_status.ids);
    END IF;
    -- Queued work wins over what is stored (a changed text waits there, with
    -- its last error); failed: queued work kept after max_attempts, or an
    -- item stored with its error; absent: neither stored nor queued.
    RETURN QUERY EXECUTE format($q$
        WITH given AS (
            SELECT DISTINCT ON (g.given) g.given, g.k, g.o
              FROM unnest($2::text[], $3::text[]) WITH ORDINALITY AS g(given, k, o) ORDER BY g.given, g.o
        ), queued AS (
            SELECT DISTINCT ON (q.item_id) q.item_id, q.attempts, q.last_error, q.queued_at, q.failed_at
              FROM pgfeed.embedding_queue q
             WHERE q.feed_id = $1 AND q.item_id IN (SELECT g.k FROM given g)
             ORDER BY q.item_id, q.failed_at IS NOT NULL, q.seq DESC
        )
        SELECT g.given,
               CASE WHEN q.item_id IS NOT NULL AND q.failed_at IS NULL THEN 'pending'
                    WHEN q.item_id IS NOT NULL OR s.error IS NOT NULL THEN 'failed'
                    WHEN s.embedding IS NOT NULL THEN 'embedded'
                    ELSE 'absent' END,
               q.attempts, coalesce(q.last_error, s.error), s.embedded_at, q.queued_at, s.model
          FROM given g
          LEFT JOIN queued q ON q.item_id = g.k
          LEFT JOIN %1$s s ON s.item_id = g.k::%2$s
         ORDER BY g.o
        $q$, v_store, v_feed.item_type)
        USING v_feed.feed_id, v_given, v_keys;
END
$$;
COMMENT ON FUNCTION pgfeed.item_status(text, text[]) IS
    'the state of items of a feed granted to the role, one row a key given (as given): embedded, pending (queued for '
    'a worker), failed (kept with its error; pgfeed.retry queues it again) or absent (neither stored nor queued: no '
    'such row, or its condition is false); attempts and queued_at of queued work, the last error, when it was stored '
    'and with which model. ids NULL: every pending and failed item (read from the queue and an index, never the '
    'whole item store)';

CREATE OR REPLACE FUNCTION pgfeed._reembed_keys(p_feed pgfeed.feed_config, p_keys text[]) RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $$
DECLARE
    v_rows record;
    v_embedded integer;
BEGIN
    -- reembed()'s steps for these keys only: their rows read (locked and
    -- checked), the store brought up to date with them through _sync_items,
    -- as if their texts had changed (force); keys whose row is gone leave the
    -- store. Async feeds queue them for the workers, as their triggers do.
    v_rows := pgfeed._read_content(pgfeed._content_source(p_feed), p_feed.item_type, p_keys);
    PERFORM pgfeed._remove_items(p_feed.feed_id, ARRAY(SELECT k FROM unnest(p_keys) AS k
                                                        WHERE NOT k = ANY (coalesce(v_rows.ids, '{}'))));
    IF v_rows.ids IS NULL THEN
        RETURN 0;
    END IF;
    EXECUTE format('UPDATE %s SET text_hash = NULL WHERE item_id = ANY ($1::%s[])', pgfeed._item_store(p_feed.feed_id),
                   p_feed.item_type)
      USING v_rows.ids;
    v_embedded := pgfeed._sync_items(p_feed.feed_id, v_rows.ids, v_rows.texts, v_rows.created, v_rows.eligible,
                                     CASE p_feed.mode WHEN 'async' THEN 'queue' ELSE 'now' END, v_rows.errors,
                                     v_rows.attributes);
    IF p_feed.mode = 'async' THEN
        -- queued: every row in the feed whose expressions did not fail (those are kept as failed now)
        RETURN (SELECT count(*) FROM unnest(v_rows.eligible, v_rows.errors) AS u(ok, err) WHERE u.ok AND u.err IS NULL);
    END IF;
    RETURN v_embedded;
END
$$;
COMMENT ON FUNCTION pgfeed._reembed_keys(pgfeed.feed_config, text[]) IS
    'sends the content rows of some keys (a page) through embedding again, embedded now (sync) or queued (async); '
    'removes the items whose row is gone; returns how many were embedded or queued';

CREATE OR REPLACE FUNCTION pgfeed._reembed_items(p_feed pgfeed.feed_config, p_ids text[]) RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $$
DECLARE
    v_keys text[];
    v_done bigint := 0;
BEGIN
    PERFORM pgfeed._require_readable(p_feed);
    IF p_ids IS NULL THEN
        RAISE EXCEPTION 'ids must not be NULL'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = format('pass the keys of the items to embed again; every item: SELECT pgfeed.reembed(%L, force => true)',
                                p_feed.name);
    END IF;
    -- a page of keys at a time, as reembed() goes through the table
    v_keys := ARRAY(SELECT DISTINCT k FROM unnest(pgfeed._item_keys(p_feed, p_ids)) AS k ORDER BY k);
    FOR v_page IN 0 .. (cardinality(v_keys) + 511) / 512 - 1 LOOP
        v_done := v_done + pgfeed._reembed_keys(p_feed, v_keys[v_page * 512 + 1 : (v_page + 1) * 512]);
    END LOOP;
    RETURN v_done;
END
$$;
COMMENT ON FUNCTION pgfeed._reembed_items(pgfeed.feed_config, text[]) IS
    'what reembed_items does once the feed is found: the keys checked, then sent through embedding a page at a time';

-- Not granted to PUBLIC: a feed administrator's call, as reembed() is. The
-- feed is found as reembed() finds it; _reembed_items does the rest.
CREATE OR REPLACE FUNCTION pgfeed.reembed_items(feed text, ids text[], _caller text DEFAULT pgfeed._caller())
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path FROM CURRENT
AS $$
BEGIN
    RETURN pgfeed._reembed_items(pgfeed._owned_feed(pgfeed._require_feed_name(feed), pgfeed._admin(_caller)), ids);
END
$$;
COMMENT ON FUNCTION pgfeed.reembed_items(text, text[], text) IS
    'sends items of a feed (by key, as text) through embedding again, also unchanged ones: embedded now in a sync '
    'feed, queued for the workers in an async one; keys without a content row are left out (and leave the store); '
    'returns how many were embedded or queued';
