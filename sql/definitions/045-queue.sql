-- The embedding queue: async feeds' content triggers and failed sync
-- embeddings put item keys here; pgfeed.work() (run by `pgfeed worker`)
-- embeds them in batches. Failed work is retried with backoff, isolated
-- from its batch, and after max_attempts kept as failed, never dropped.

CREATE OR REPLACE FUNCTION pgfeed._enqueue(p_feed_id integer, p_ids text[], p_error text DEFAULT NULL) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $$
BEGIN
    IF cardinality(p_ids) > 0 THEN
        INSERT INTO pgfeed.embedding_queue (feed_id, item_id, attempts, last_error)
        SELECT p_feed_id, id, CASE WHEN p_error IS NULL THEN 0 ELSE 1 END, p_error FROM unnest(p_ids) AS id;
        -- one notification a transaction and feed: PostgreSQL folds duplicates
        PERFORM pg_notify('pgfeed_queue', p_feed_id::text);
    END IF;
END
$$;
COMMENT ON FUNCTION pgfeed._enqueue(integer, text[], text) IS
    'queues items of a feed for a worker and wakes the workers listening on channel pgfeed_queue';

CREATE OR REPLACE FUNCTION pgfeed._dequeue(p_feed_id integer, p_ids text[]) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $$
BEGIN
    IF cardinality(p_ids) > 0 THEN
        -- Rows another worker holds are left to it; the hash makes them free.
        DELETE FROM pgfeed.embedding_queue WHERE seq IN (
            SELECT seq FROM pgfeed.embedding_queue
             WHERE feed_id = p_feed_id AND item_id = ANY (p_ids)
               FOR UPDATE SKIP LOCKED);
    END IF;
END
$$;
COMMENT ON FUNCTION pgfeed._dequeue(integer, text[]) IS 'removes queued work on items that have just been embedded';

CREATE OR REPLACE FUNCTION pgfeed._item_lock(p_feed_id integer, p_item_id text) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path FROM CURRENT
AS $$ SELECT (p_feed_id::bigint << 32) | (hashtext(p_item_id)::bigint & 4294967295) $$;
COMMENT ON FUNCTION pgfeed._item_lock(integer, text) IS
    'advisory lock key of one item of a feed (single-bigint keys: apart from the per-user profile locks)';

-- Workers: superusers and the roles a superuser granted work() and queued()
-- work on every feed; a feed owner (pgfeed.grant_admin) on its own feeds.
CREATE OR REPLACE FUNCTION pgfeed._worked_feeds(p_feed text, p_proof text) RETURNS integer[]
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $$
DECLARE
    v_caller oid := pgfeed._caller_role(p_proof);
    v_owner oid;  -- whose feeds, NULL: everyone's
BEGIN
    IF NOT pgfeed._is_superuser(v_caller)
       AND EXISTS (SELECT FROM pgfeed.feed_admin a WHERE pgfeed._has_privileges_of(v_caller, a.admin)) THEN
        v_owner := v_caller;
    END IF;
    IF p_feed IS NOT NULL AND v_owner IS NOT NULL THEN
        PERFORM pgfeed._owned_feed(p_feed, v_owner);
    ELSIF p_feed IS NOT NULL THEN
        PERFORM pgfeed._feed(p_feed);  -- a clear error for an unknown feed
    END IF;
    RETURN ARRAY(SELECT c.feed_id FROM pgfeed.feed_config c
                  WHERE (p_feed IS NULL OR c.name = p_feed)
                    AND (v_owner IS NULL OR pgfeed._has_privileges_of(v_owner, c.owner)));
END
$$;
COMMENT ON FUNCTION pgfeed._worked_feeds(text, text) IS
    'the feeds a worker call may work on: the one named, or all; a feed owner''s own only';

CREATE OR REPLACE FUNCTION pgfeed.work(feed text DEFAULT NULL, batch integer DEFAULT 64,
                                       _caller text DEFAULT pgfeed._caller())
RETURNS TABLE (feed_name text, claimed integer, embedded integer, failed integer)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path FROM CURRENT
-- a row a writer's open transaction holds (an item it is deleting, say) is
-- waited for this long, then its batch is put off: no tenant holds up a worker
SET lock_timeout = '1s'
AS $$
DECLARE
    v_feeds integer[] := pgfeed._worked_feeds(work.feed, _caller);
    v_feed pgfeed.feed_config;
    v_source pgfeed.content_source;
    v_seqs bigint[];
    v_items text[];
    v_ids text[]; v_texts text[]; v_created timestamptz[]; v_eligible boolean[]; v_errors text[]; v_attributes jsonb[];
    v_rows record;
    v_problem text;
    v_done text[];
    v_held text[];
    v_item text;
    v_kept_failed integer;
BEGIN
    IF batch IS NULL OR batch < 1 THEN
        RAISE EXCEPTION 'batch must be at least 1, got %', coalesce(batch::text, 'NULL') USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- A feed that missed changes of its tables (pgfeed.feed_problem) catches
    -- up once they are readable again: one worker at a time, one call.
    FOR v_feed IN
        SELECT c.* FROM pgfeed.feed_config c
         WHERE EXISTS (SELECT FROM pgfeed.feed_problem p WHERE p.feed_id = c.feed_id)
           AND c.feed_id = ANY (v_feeds)
         ORDER BY c.feed_id FOR UPDATE SKIP LOCKED
    LOOP
        BEGIN
            CONTINUE WHEN pgfeed._content_problem(v_feed) IS NOT NULL;
            claimed := pgfeed._catch_up(v_feed);
        EXCEPTION WHEN lock_not_available THEN
            CONTINUE;  -- an open ALTER holds one of its tables: another time
        WHEN OTHERS THEN
            PERFORM pgfeed._record_problem(v_feed.feed_id, 'catching up failed: ' || SQLERRM);
            CONTINUE;
        END;
        feed_name := v_feed.name; embedded := 0; failed := 0;
        RETURN NEXT;
        RETURN;
    END LOOP;
    -- the feed with the oldest ready work first
    FOR v_feed IN
        SELECT c.* FROM pgfeed.feed_config c
          JOIN pgfeed.content_source s ON s.feed_id = c.feed_id
          JOIN LATERAL (SELECT min(q.seq) AS first FROM pgfeed.embedding_queue q
                         WHERE q.feed_id = c.feed_id AND q.failed_at IS NULL AND q.not_before <= now()) AS q ON q.first IS NOT NULL
         WHERE c.feed_id = ANY (v_feeds)
         ORDER BY q.first
    LOOP
        -- Claim a batch; rows another worker holds are skipped, not waited for.
        WITH claim AS (
            SELECT q.seq, q.item_id FROM pgfeed.embedding_queue q
             WHERE q.feed_id = v_feed.feed_id AND q.failed_at IS NULL AND q.not_before <= now()
             ORDER BY q.seq LIMIT batch
               FOR UPDATE SKIP LOCKED
        )
        SELECT array_agg(seq), array_agg(DISTINCT item_id) INTO v_seqs, v_items FROM claim;
        CONTINUE WHEN v_seqs IS NULL;
        -- A feed that cannot read its content table waits (status() says why),
        -- one whose table an open ALTER holds is done another time; the others go on.
        SELECT * INTO STRICT v_source FROM pgfeed.content_source WHERE feed_id = v_feed.feed_id;
        BEGIN
            PERFORM pgfeed._lock_source(v_source.source, v_feed.name);
            v_problem := pgfeed._source_problem(v_source.source, v_source.source_name, v_source.watched, v_feed.name);
            RAISE SQLSTATE 'PF001';  -- checked: the lock goes (pgfeed._lock_source)
        EXCEPTION
            WHEN SQLSTATE 'PF001' THEN
                NULL;
            WHEN lock_not_available THEN
                CONTINUE;
            WHEN object_not_in_prerequisite_state THEN
                v_problem := SQLERRM;
        END;
        IF v_problem IS NOT NULL THEN
            PERFORM pgfeed._record_problem(v_feed.feed_id, v_problem);
            CONTINUE;
        END IF;
        -- An item queued twice is embedded by one worker at a time. One whose
        -- key is held (by another worker, or by anyone: advisory locks are
        -- open to all) is put off a little, so that the items behind it go on.
        v_held := ARRAY(SELECT i FROM unnest(v_items) AS i
                         WHERE NOT pg_try_advisory_xact_lock(pgfeed._item_lock(v_feed.feed_id, i)));
        IF cardinality(v_held) > 0 THEN
            UPDATE pgfeed.embedding_queue q SET not_before = now() + interval '10 seconds'
             WHERE q.seq = ANY (v_seqs) AND q.item_id = ANY (v_held);
            v_items := ARRAY(SELECT i FROM unnest(v_items) AS i WHERE NOT i = ANY (v_held));
            CONTINUE WHEN cardinality(v_items) = 0;  -- nothing done is no batch: the next feed
        END IF;
        v_seqs := ARRAY(SELECT seq FROM pgfeed.embedding_queue WHERE seq = ANY (v_seqs) AND item_id = ANY (v_items));
        BEGIN
            v_rows := pgfeed._read_content(v_source, v_feed.item_type, v_items);
        EXCEPTION
            WHEN lock_not_available THEN
                CONTINUE;  -- an open ALTER holds the table: another time
            WHEN OTHERS THEN
                PERFORM pgfeed._record_problem(v_feed.feed_id, 'reading content rows failed: ' || SQLERRM);
                CONTINUE;
        END;
        v_ids := v_rows.ids; v_texts := v_rows.texts; v_created := v_rows.created; v_eligible := v_rows.eligible;
        v_errors := v_rows.errors; v_attributes := v_rows.attributes;
        feed_name := v_feed.name; claimed := cardinality(v_items); embedded := 0; failed := 0;
        BEGIN
            embedded := pgfeed._sync_items(v_feed.feed_id, v_ids, v_texts, v_created, v_eligible, 'raise', v_errors,
                                           v_attributes);
            v_done := v_items;  -- rows deleted since they were queued count as done too
        EXCEPTION WHEN lock_not_available THEN
            -- rows of the item store a writer's open transaction holds: the batch another time, no attempt counted
            v_done := '{}'; embedded := 0;
            UPDATE pgfeed.embedding_queue q SET not_before = now() + interval '10 seconds' WHERE q.seq = ANY (v_seqs);
        WHEN OTHERS THEN
            -- Isolate what fails: each item alone, so one poison row does not hold back its batch.
            v_done := ARRAY(SELECT i FROM unnest(v_items) AS i WHERE NOT i = ANY (coalesce(v_ids, '{}')));
            FOR v_item IN SELECT unnest(v_ids) LOOP
                BEGIN
                    embedded := embedded + pgfeed._sync_items(
                        v_feed.feed_id, ARRAY[v_item],
                        ARRAY(SELECT t FROM unnest(v_ids, v_texts) AS u(i, t) WHERE i = v_item),
                        ARRAY(SELECT c FROM unnest(v_ids, v_created) AS u(i, c) WHERE i = v_item),
                        ARRAY(SELECT e FROM unnest(v_ids, v_eligible) AS u(i, e) WHERE i = v_item), 'raise',
                        ARRAY(SELECT e FROM unnest(v_ids, v_errors) AS u(i, e) WHERE i = v_item),
                        ARRAY(SELECT a FROM unnest(v_ids, v_attributes) AS u(i, a) WHERE i = v_item));
                    v_done := v_done || v_item;
                EXCEPTION WHEN OTHERS THEN
                    failed := failed + 1;
                    UPDATE pgfeed.embedding_queue q
                       SET attempts = q.attempts + 1, last_error = SQLERRM,
                           not_before = now() + least(interval '1 second' * 2 ^ q.attempts, interval '1 hour'),
                           failed_at = CASE WHEN q.attempts + 1 >= v_feed.max_attempts THEN now() END
                     WHERE q.seq = ANY (v_seqs) AND q.item_id = v_item;
                END;
            END LOOP;
        END;
        DELETE FROM pgfeed.embedding_queue q WHERE q.seq = ANY (v_seqs) AND q.item_id = ANY (v_done);
        -- done but kept as failed (an empty text, a condition that fails on the row) counts as failed too
        EXECUTE format('SELECT count(*) FROM %s s WHERE s.item_id = ANY ($1::%s[]) AND s.error IS NOT NULL',
                       pgfeed._item_store(v_feed.feed_id), v_feed.item_type)
           INTO v_kept_failed USING v_done;
        failed := failed + v_kept_failed;
        -- Failures kept for the same items are resolved. Pending rows queued
        -- meanwhile stay: they may hold an edit made after the texts were read.
        DELETE FROM pgfeed.embedding_queue q
         WHERE q.feed_id = v_feed.feed_id AND q.item_id = ANY (v_done) AND q.failed_at IS NOT NULL;
        RETURN NEXT;
        RETURN;  -- one batch a call: the caller commits it
    END LOOP;
    -- No queued work is ready: like counts and profiles that writers left to
    -- be done without waiting.
    FOR v_feed IN SELECT c.* FROM pgfeed.feed_config c
                   WHERE c.user_type IS NOT NULL AND c.feed_id = ANY (v_feeds) ORDER BY c.feed_id LOOP
        claimed := pgfeed._catch_up_likes(v_feed.feed_id, batch);
        CONTINUE WHEN claimed = 0;
        feed_name := v_feed.name; embedded := 0; failed := 0;
        RETURN NEXT;
        RETURN;
    END LOOP;
    -- Then a batch of a model switch, if one is under way.
    -- One worker at a time fills a feed's shadow store; the others skip it.
    FOR v_feed IN
        SELECT c.* FROM pgfeed.feed_config c
         WHERE c.next_model IS NOT NULL AND c.feed_id = ANY (v_feeds)
         ORDER BY c.feed_id FOR UPDATE SKIP LOCKED
    LOOP
        BEGIN
            claimed := pgfeed._switch_step(v_feed, batch);
        EXCEPTION WHEN OTHERS THEN
            RAISE WARNING 'pgfeed: feed "%": the switch to model % is stalled: %', v_feed.name, v_feed.next_model, SQLERRM
                USING HINT = format('the feed keeps serving with %s; fix the encoder, or cancel with '
                                    'SELECT pgfeed.alter_feed(%L, model => %L)', v_feed.model, v_feed.name, v_feed.model);
            CONTINUE;
        END;
        CONTINUE WHEN claimed = 0;  -- swapped, or changed meanwhile
        feed_name := v_feed.name; embedded := claimed; failed := 0;
        RETURN NEXT;
        RETURN;
    END LOOP;
END
$$;
COMMENT ON FUNCTION pgfeed.work(text, integer, text) IS
    'embeds one batch of queued items (of one feed, or of the feed with the oldest work), or else one batch of a '
    'model switch; returns nothing when no work is ready; items that fail are retried with backoff and kept as '
    'failed after max_attempts';

CREATE OR REPLACE FUNCTION pgfeed.retry(feed text DEFAULT NULL, _caller text DEFAULT pgfeed._caller()) RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path FROM CURRENT
AS $$
DECLARE
    v_caller oid := pgfeed._admin(_caller);
    v_feed pgfeed.feed_config;
    v_failed text[];
    v_count bigint := 0;
    v_requeued bigint;
BEGIN
    IF retry.feed IS NOT NULL THEN
        PERFORM pgfeed._owned_feed(retry.feed, v_caller);
    END IF;
    FOR v_feed IN SELECT * FROM pgfeed.feed_config c
                   WHERE (retry.feed IS NULL OR c.name = retry.feed) AND pgfeed._has_privileges_of(v_caller, c.owner) LOOP
        UPDATE pgfeed.embedding_queue q SET attempts = 0, failed_at = NULL, not_before = now()
         WHERE q.feed_id = v_feed.feed_id AND q.failed_at IS NOT NULL;
        GET DIAGNOSTICS v_requeued = ROW_COUNT;
        -- failed items that have no queued work (sync failures already cleaned up, empty texts)
        IF to_regclass(pgfeed._item_store(v_feed.feed_id)) IS NOT NULL THEN
            EXECUTE format('SELECT array_agg(s.item_id::text) FROM %s s WHERE s.error IS NOT NULL AND NOT EXISTS '
                           '(SELECT FROM pgfeed.embedding_queue q WHERE q.feed_id = $1 AND q.item_id = s.item_id::text)',
                           pgfeed._item_store(v_feed.feed_id))
               INTO v_failed USING v_feed.feed_id;
            PERFORM pgfeed._enqueue(v_feed.feed_id, v_failed);
        END IF;
        IF v_requeued > 0 THEN
            PERFORM pg_notify('pgfeed_queue', v_feed.feed_id::text);
        END IF;
        v_count := v_count + v_requeued + coalesce(cardinality(v_failed), 0);
    END LOOP;
    RETURN v_count;
END
$$;
COMMENT ON FUNCTION pgfeed.retry(text, text) IS
    'queues failed work again (of one feed, or of all the caller manages) with its attempts reset; returns how many '
    'items';

CREATE OR REPLACE FUNCTION pgfeed.queued(feed text DEFAULT NULL, _caller text DEFAULT pgfeed._caller()) RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path FROM CURRENT
AS $$
DECLARE
    v_feeds integer[] := pgfeed._worked_feeds(queued.feed, _caller);
BEGIN
    RETURN (SELECT count(*) FROM pgfeed.embedding_queue q WHERE q.failed_at IS NULL AND q.feed_id = ANY (v_feeds));
END
$$;
COMMENT ON FUNCTION pgfeed.queued(text, text) IS
    'queued work not yet failed (of one feed, or of all the caller works on): what workers have left to do';

CREATE OR REPLACE FUNCTION pgfeed._catch_up(p_feed pgfeed.feed_config, p_embed text DEFAULT 'queue') RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $$
DECLARE
    v_source pgfeed.content_source := pgfeed._content_source(p_feed);
    v_interactions pgfeed.interaction_source;
    v_page record;
    v_after text;
    v_rows integer := 0;
    v_seen bigint := (SELECT max(seq) FROM pgfeed.feed_problem WHERE feed_id = p_feed.feed_id);
BEGIN
    -- What the triggers missed while the tables could not be read: the item
    -- store follows the content table again (changed texts are queued for
    -- the workers, or embedded now), and the interaction log is loaded anew
    -- from each table.
    PERFORM pgfeed._remove_gone_items(p_feed);
    LOOP
        v_page := pgfeed._read_content(v_source, p_feed.item_type, NULL, v_after, 512);
        EXIT WHEN v_page.ids IS NULL;
        PERFORM pgfeed._sync_items(p_feed.feed_id, v_page.ids, v_page.texts, v_page.created, v_page.eligible, p_embed,
                                   v_page.errors, v_page.attributes);
        v_rows := v_rows + cardinality(v_page.ids);
        v_after := v_page.last_key;
    END LOOP;
    FOR v_interactions IN SELECT * FROM pgfeed.interaction_source WHERE feed_id = p_feed.feed_id LOOP
        -- No like may come or go between forgetting a table's likes and
        -- loading them again (one committed in between would be logged twice,
        -- one removed would stay): writers of the table wait for this
        -- transaction, which waits for theirs at most lock_timeout. Last, so
        -- that they wait only for the likes' part.
        EXECUTE format('LOCK TABLE %s IN SHARE MODE', v_interactions.source);
        PERFORM pgfeed._forget_source(v_interactions.source_id);
        PERFORM pgfeed._load_interactions(v_interactions);
    END LOOP;
    DELETE FROM pgfeed.feed_problem WHERE feed_id = p_feed.feed_id AND seq <= v_seen;
    RETURN v_rows;
END
$$;
COMMENT ON FUNCTION pgfeed._catch_up(pgfeed.feed_config, text) IS
    'brings a feed that missed changes of its tables up to date with them, changed texts queued (or embedded now: '
    'p_embed ''now''); returns how many content rows it read';
