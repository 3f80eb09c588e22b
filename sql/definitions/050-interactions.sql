-- Interactions: attaching like tables, mirroring them into the feed's
-- interaction log, keeping item popularity exact, and refreshing profiles.
-- A profile is the L2-normalized, weight-signed mean of the embeddings of the
-- user's last profile_size interacted items (newest by created_at, then by
-- insertion order), computed in SQL with pgvector.

CREATE OR REPLACE FUNCTION pgfeed._interaction_trigger_prefix(p_feed_id integer, p_source_id integer) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path FROM CURRENT
AS $$ SELECT 'pgfeed_feed' || p_feed_id || '_interactions' || p_source_id $$;
COMMENT ON FUNCTION pgfeed._interaction_trigger_prefix(integer, integer) IS 'name prefix of the triggers on an interaction table';

CREATE OR REPLACE FUNCTION pgfeed._interaction_rows_sql(
    p_source pgfeed.interaction_source, p_from text, p_except_from text DEFAULT NULL)
RETURNS text
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
    -- (user, item, time) of the rows in p_from as parallel arrays; with
    -- p_except_from, only the rows not also there (what an UPDATE changed).
    WITH projection AS (
        SELECT format('SELECT %I::text AS user_id, %I::text AS item_id, %s AS created_at FROM ',
                      p_source.user_column, p_source.item_column,
                      CASE WHEN p_source.created_at_column IS NULL THEN 'NULL::timestamptz'
                           ELSE format('%I::timestamptz', p_source.created_at_column) END) AS head
    )
    SELECT format('SELECT array_agg(user_id), array_agg(item_id), array_agg(created_at) FROM (%s%s%s) AS r',
                  head, p_from, ' EXCEPT ALL ' || head || p_except_from)
      FROM projection
$$;
COMMENT ON FUNCTION pgfeed._interaction_rows_sql(pgfeed.interaction_source, text, text) IS
    'the query that reads (user, item, time) arrays from interaction rows';

CREATE OR REPLACE FUNCTION pgfeed.attach_interactions(
    feed text,
    source regclass,
    user_column name,
    item_column name,
    weight float8 DEFAULT 1.0,
    created_at_column name DEFAULT NULL,
    backfill boolean DEFAULT true)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $$
DECLARE
    v_feed pgfeed.feed_config := pgfeed._feed(feed);
    v_user_kind regtype;
    v_item_kind regtype;
    v_source pgfeed.interaction_source;
BEGIN
    IF v_feed.item_type IS NULL THEN
        RAISE EXCEPTION 'feed "%" has no content table yet', feed
            USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'call pgfeed.attach_content(...) first';
    END IF;
    IF EXISTS (SELECT 1 FROM pgfeed.interaction_source s WHERE s.feed_id = v_feed.feed_id AND s.source = attach_interactions.source) THEN
        RAISE EXCEPTION 'table % is already attached to feed "%"', source, feed USING ERRCODE = 'duplicate_object';
    END IF;
    IF weight IS NULL OR weight = 0 OR weight IN ('NaN', 'Infinity', '-Infinity') THEN
        RAISE EXCEPTION 'weight must be a finite non-zero number, got %', coalesce(weight::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value', HINT = 'use 1.0 for likes and a negative weight for dislikes';
    END IF;
    PERFORM pgfeed._require_table(source);
    v_user_kind := pgfeed._key_column(source, user_column, 'a user');
    v_item_kind := pgfeed._key_column(source, item_column, 'an item');
    IF v_item_kind <> v_feed.item_type THEN
        RAISE EXCEPTION 'column %.% holds % keys but the items of feed "%" have % keys', source, quote_ident(item_column),
                        v_item_kind, feed, v_feed.item_type USING ERRCODE = 'datatype_mismatch';
    END IF;
    IF created_at_column IS NOT NULL AND NOT pgfeed._time_type(pgfeed._column_type(source, created_at_column)) THEN
        RAISE EXCEPTION 'column %.% has type %, which pgfeed cannot read as a time', source, quote_ident(created_at_column),
                        pgfeed._column_type(source, created_at_column)
            USING ERRCODE = 'datatype_mismatch', HINT = 'use a timestamptz, timestamp or date column, or none';
    END IF;

    IF v_feed.user_type IS NULL THEN
        EXECUTE format($ddl$
            CREATE TABLE %1$s (
                seq        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                source_id  integer NOT NULL,
                user_id    %3$s NOT NULL,
                item_id    %4$s NOT NULL,
                weight     float8 NOT NULL,
                created_at timestamptz
            );
            CREATE INDEX ON %1$s (user_id, created_at DESC NULLS LAST, seq DESC);
            CREATE INDEX ON %1$s (user_id, item_id);
            CREATE INDEX ON %1$s (item_id);
            COMMENT ON TABLE %1$s IS %6$L;
            CREATE TABLE %2$s (
                user_id    %3$s PRIMARY KEY,
                embedding  @vector@.vector(%5$s) NOT NULL,
                items      integer NOT NULL,
                model      text NOT NULL,
                updated_at timestamptz NOT NULL
            );
            COMMENT ON TABLE %2$s IS %7$L;
            CREATE TABLE %8$s (
                seq     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                item_id %4$s NOT NULL,
                delta   bigint NOT NULL
            );
            CREATE INDEX ON %8$s (item_id);
            COMMENT ON TABLE %8$s IS 'pgfeed like-count changes not folded yet';
            CREATE TABLE %9$s (
                seq     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                user_id %3$s NOT NULL
            );
            CREATE INDEX ON %9$s (user_id);
            COMMENT ON TABLE %9$s IS 'pgfeed users whose profile is to be refreshed again';
            $ddl$, pgfeed._interaction_log(v_feed.feed_id), pgfeed._profile(v_feed.feed_id),
            v_user_kind, v_feed.item_type, v_feed.dimensions,
            format('pgfeed interaction log of feed %s', v_feed.feed_id), format('pgfeed user profiles of feed %s', v_feed.feed_id),
            pgfeed._popularity_delta(v_feed.feed_id), pgfeed._profile_dirty(v_feed.feed_id));
        UPDATE pgfeed.feed_config SET user_type = v_user_kind WHERE feed_id = v_feed.feed_id;
    ELSIF v_feed.user_type <> v_user_kind THEN
        RAISE EXCEPTION 'column %.% holds % keys but the users of feed "%" have % keys', source, quote_ident(user_column),
                        v_user_kind, feed, v_feed.user_type USING ERRCODE = 'datatype_mismatch';
    END IF;

    INSERT INTO pgfeed.interaction_source (feed_id, source, user_column, item_column, weight, created_at_column,
                                           source_name, watched)
    VALUES (v_feed.feed_id, source, user_column, item_column, weight, created_at_column, source::text,
            pgfeed._watched(source, ARRAY[pgfeed._column_number(source, user_column), pgfeed._column_number(source, item_column),
                                          pgfeed._column_number(source, created_at_column)]))
    RETURNING * INTO v_source;
    PERFORM pgfeed._grant_readers(v_feed.feed_id);
    PERFORM pgfeed._create_triggers(source, pgfeed._interaction_trigger_prefix(v_feed.feed_id, v_source.source_id),
                                    'pgfeed._interaction_trigger', v_source.source_id);
    IF NOT backfill THEN
        RETURN 0;
    END IF;
    RETURN pgfeed._load_interactions(v_source);
END
$$;
COMMENT ON FUNCTION pgfeed.attach_interactions(text, regclass, name, name, float8, name, boolean) IS
    'attaches an interaction table (likes; a negative weight for dislikes) to a feed; '
    'existing rows are loaded unless backfill is false; returns how many';

CREATE OR REPLACE FUNCTION pgfeed._load_interactions(p_source pgfeed.interaction_source) RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $$
DECLARE
    v_users text[]; v_items text[]; v_created timestamptz[];
    v_feed text;
BEGIN
    -- only columns of the built-in types the table was attached with are read
    v_feed := (SELECT name FROM pgfeed.feed_config WHERE feed_id = p_source.feed_id);
    PERFORM pgfeed._lock_source(p_source.source, v_feed);
    PERFORM pgfeed._require_source(p_source.source, p_source.source_name, p_source.watched, v_feed);
    EXECUTE pgfeed._interaction_rows_sql(p_source, p_source.source::text) INTO v_users, v_items, v_created;
    PERFORM pgfeed._apply_interactions(p_source.source_id, NULL, NULL, NULL, v_users, v_items, v_created);
    RETURN coalesce(cardinality(v_users), 0);
END
$$;
COMMENT ON FUNCTION pgfeed._load_interactions(pgfeed.interaction_source) IS
    'logs every row of an interaction table (attach, catching up); returns how many';

-- SECURITY DEFINER, so that a role writing the like table needs no privilege
-- on pgfeed's tables. It reads only the user, item and time columns, after
-- checking that they are still the built-in types they were attached with,
-- and casts them with built-in casts. A failure of pgfeed's own is recorded,
-- never the writer's problem: a worker catches up later.
CREATE OR REPLACE FUNCTION pgfeed._interaction_trigger() RETURNS trigger
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path FROM CURRENT
AS $$
DECLARE
    v_source pgfeed.interaction_source;
    v_feed text;
    v_types text[];
    v_other text;
    v_old_users text[]; v_old_items text[]; v_old_created timestamptz[];
    v_new_users text[]; v_new_items text[]; v_new_created timestamptz[];
BEGIN
    -- only for the table attached (not a trigger someone else made with this function)
    SELECT * INTO v_source FROM pgfeed.interaction_source
     WHERE source_id = TG_ARGV[0]::integer AND pgfeed._attached_to(TG_RELID, source);
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    SELECT name INTO STRICT v_feed FROM pgfeed.feed_config WHERE feed_id = v_source.feed_id;
    BEGIN
        PERFORM pgfeed._require_source(v_source.source, v_source.source_name, v_source.watched, v_feed);
        IF TG_OP = 'TRUNCATE' THEN
            PERFORM pgfeed._forget_source(v_source.source_id);
            RETURN NULL;
        END IF;
        EXECUTE pgfeed._row_types_sql(v_source.watched, CASE TG_OP WHEN 'DELETE' THEN 'pgfeed_old' ELSE 'pgfeed_new' END)
           INTO v_types;
        PERFORM pgfeed._require_row_types(v_types, v_source.source, v_source.watched, v_feed);
        -- for an UPDATE, only what changed: an untouched like keeps its place in line
        v_other := CASE WHEN TG_OP = 'UPDATE' THEN 'pgfeed_new' END;
        IF TG_OP <> 'INSERT' THEN
            EXECUTE pgfeed._interaction_rows_sql(v_source, 'pgfeed_old', v_other) INTO v_old_users, v_old_items, v_old_created;
        END IF;
        v_other := CASE WHEN TG_OP = 'UPDATE' THEN 'pgfeed_old' END;
        IF TG_OP <> 'DELETE' THEN
            EXECUTE pgfeed._interaction_rows_sql(v_source, 'pgfeed_new', v_other) INTO v_new_users, v_new_items, v_new_created;
        END IF;
        PERFORM pgfeed._apply_interactions(v_source.source_id, v_old_users, v_old_items, v_old_created,
                                           v_new_users, v_new_items, v_new_created);
    EXCEPTION WHEN OTHERS THEN
        IF NOT pgfeed._feeds_fault(SQLSTATE) THEN
            RAISE;
        END IF;
        PERFORM pgfeed._stand_aside(v_source.feed_id, v_feed, TG_OP, TG_TABLE_NAME, SQLERRM);
    END;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION pgfeed._interaction_trigger() IS
    'statement-level trigger on an interaction table: mirrors the change, updates popularity and profiles; never '
    'fails the writer''s statement for pgfeed''s sake';

-- Nothing below waits on a lock another transaction holds (issue 13): a like
-- commits as soon as the user's own statement would, under any isolation
-- level, and two transactions never deadlock over pgfeed's rows.
CREATE OR REPLACE FUNCTION pgfeed._apply_interactions(
    p_source_id integer,
    p_old_users text[], p_old_items text[], p_old_created timestamptz[],
    p_new_users text[], p_new_items text[], p_new_created timestamptz[])
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $$
DECLARE
    v_source pgfeed.interaction_source;
    v_feed pgfeed.feed_config;
    v_users text[];
    v_items text[];
BEGIN
    SELECT * INTO STRICT v_source FROM pgfeed.interaction_source WHERE source_id = p_source_id;
    SELECT * INTO STRICT v_feed FROM pgfeed.feed_config WHERE feed_id = v_source.feed_id;
    -- A removed row takes out one matching log entry (the newest): duplicate
    -- likes in the user's table stay counted as many times as they remain.
    -- An entry another transaction is taking out is skipped, not waited for:
    -- two transactions that each delete one of two equal likes take out one
    -- entry each (waiting, the second would find the first's entry gone and
    -- take out none, leaving a like the table no longer has).
    EXECUTE format($q$
        WITH gone AS (
            SELECT u::%3$s AS user_id, i::%4$s AS item_id, c AS created_at, count(*) AS n
              FROM unnest($1, $2, $3) AS g(u, i, c)
             WHERE u IS NOT NULL AND i IS NOT NULL
             GROUP BY 1, 2, 3
        ), removed AS (
            DELETE FROM %2$s WHERE seq IN (
                SELECT v.seq FROM gone g CROSS JOIN LATERAL (
                    SELECT l.seq FROM %2$s l
                     WHERE l.user_id = g.user_id AND l.item_id = g.item_id AND l.source_id = $7
                       AND l.created_at IS NOT DISTINCT FROM g.created_at
                     ORDER BY l.seq DESC LIMIT g.n
                       FOR UPDATE SKIP LOCKED) AS v)
            RETURNING user_id, item_id, weight
        ), added AS (
            INSERT INTO %2$s (source_id, user_id, item_id, weight, created_at)
            SELECT $7, u::%3$s, i::%4$s, $8, c
              FROM unnest($4, $5, $6) AS a(u, i, c)
             WHERE u IS NOT NULL AND i IS NOT NULL
            RETURNING user_id, item_id, weight
        ), counted AS (
            -- appended, never updated in place: no row for two likers to fight over
            INSERT INTO %1$s (item_id, delta)
            SELECT item_id, sum(delta)
              FROM (SELECT item_id, -1 AS delta FROM removed WHERE weight > 0
                    UNION ALL
                    SELECT item_id, 1 FROM added WHERE weight > 0) AS z
             GROUP BY item_id HAVING sum(delta) <> 0
            RETURNING item_id
        )
        SELECT (SELECT array_agg(DISTINCT user_id::text)
                  FROM (SELECT user_id FROM removed UNION ALL SELECT user_id FROM added) AS t),
               (SELECT array_agg(item_id::text) FROM counted)
        $q$, pgfeed._popularity_delta(v_feed.feed_id), pgfeed._interaction_log(v_feed.feed_id),
        v_feed.user_type, v_feed.item_type)
       INTO v_users, v_items
       USING p_old_users, p_old_items, p_old_created, p_new_users, p_new_items, p_new_created,
             p_source_id, v_source.weight;
    PERFORM pgfeed._fold_popularity(v_feed.feed_id, v_items);
    PERFORM pgfeed._refresh_profiles(v_feed.feed_id, v_users);
END
$$;
COMMENT ON FUNCTION pgfeed._apply_interactions(integer, text[], text[], timestamptz[], text[], text[], timestamptz[]) IS
    'applies removed and added interaction rows to the log, like counts and profiles, waiting on no other transaction';

CREATE OR REPLACE FUNCTION pgfeed._fold_popularity(p_feed_id integer, p_items text[] DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $$
DECLARE
    v_item_type regtype := (SELECT item_type FROM pgfeed.feed_config WHERE feed_id = p_feed_id);
    v_folded bigint;
BEGIN
    -- Adds the appended like-count changes of some items (NULL: of all) to
    -- their counts, each count locked without waiting: a count another
    -- transaction holds is folded later, by it, the next like or a worker.
    -- Only under READ COMMITTED: a REPEATABLE READ or SERIALIZABLE writer
    -- would fail to serialize on a count folded since its snapshot, so there
    -- the changes wait for the next READ COMMITTED like or a worker.
    IF current_setting('transaction_isolation') <> 'read committed' OR cardinality(p_items) = 0 THEN
        RETURN 0;
    END IF;
    -- (every item the feed ranks has a count row: one is made when it enters the item store)
    EXECUTE format($q$
        WITH locked AS (
            SELECT p.item_id FROM %1$s p
             WHERE %4$s
             ORDER BY p.item_id
               FOR UPDATE SKIP LOCKED
        ), taken AS (
            DELETE FROM %2$s d USING locked l WHERE d.item_id = l.item_id RETURNING d.item_id, d.delta
        ), folded AS (
            UPDATE %1$s p SET popularity = p.popularity + t.delta
              FROM (SELECT item_id, sum(delta) AS delta FROM taken GROUP BY item_id) AS t
             WHERE p.item_id = t.item_id
            RETURNING 1
        )
        SELECT count(*) FROM folded
        $q$, pgfeed._item_popularity(p_feed_id), pgfeed._popularity_delta(p_feed_id), v_item_type,
        CASE WHEN p_items IS NULL THEN format('p.item_id IN (SELECT d.item_id FROM %s d)', pgfeed._popularity_delta(p_feed_id))
             ELSE format('p.item_id = ANY ($1::%s[])', v_item_type) END)
       INTO v_folded USING p_items;
    RETURN v_folded;
END
$$;
COMMENT ON FUNCTION pgfeed._fold_popularity(integer, text[]) IS
    'folds appended like-count changes into the like counts, skipping counts other transactions hold; returns how '
    'many counts changed';

CREATE OR REPLACE FUNCTION pgfeed._forget_source(p_source_id integer) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $$
DECLARE
    v_feed_id integer := (SELECT feed_id FROM pgfeed.interaction_source WHERE source_id = p_source_id);
    v_users text[];
    v_items text[];
BEGIN
    EXECUTE format($q$
        WITH removed AS (
            DELETE FROM %2$s WHERE source_id = $1 RETURNING user_id, item_id, weight
        ), counted AS (
            INSERT INTO %1$s (item_id, delta)
            SELECT item_id, -count(*) FROM removed WHERE weight > 0 GROUP BY item_id
            RETURNING item_id
        )
        SELECT (SELECT array_agg(DISTINCT user_id::text) FROM removed), (SELECT array_agg(item_id::text) FROM counted)
        $q$, pgfeed._popularity_delta(v_feed_id), pgfeed._interaction_log(v_feed_id))
       INTO v_users, v_items USING p_source_id;
    PERFORM pgfeed._fold_popularity(v_feed_id, v_items);
    PERFORM pgfeed._refresh_profiles(v_feed_id, v_users);
END
$$;
COMMENT ON FUNCTION pgfeed._forget_source(integer) IS
    'removes every logged interaction of one interaction table (truncated or detached)';

CREATE OR REPLACE FUNCTION pgfeed._refresh_profiles(p_feed_id integer, p_users text[]) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $$
DECLARE
    v_feed pgfeed.feed_config;
    v_users text[];
    v_busy text[];
BEGIN
    IF cardinality(p_users) IS DISTINCT FROM 0 AND p_users IS NOT NULL THEN
        SELECT * INTO STRICT v_feed FROM pgfeed.feed_config WHERE feed_id = p_feed_id;
        -- One transaction at a time refreshes a user's profile, so that the
        -- later one's next statement sees the likes of the one that refreshed
        -- first. A user another transaction holds is not waited for (two
        -- transactions would deadlock, or fail to serialize): it is marked, and
        -- refreshed by the next like of that user or by a worker. So is every
        -- user under REPEATABLE READ and SERIALIZABLE, where the reads of a
        -- refresh would conflict with concurrent likes (and fill the predicate
        -- lock table). A bulk refresh (a backfill, catching up, a model switch)
        -- takes no lock a user: thousands would overflow the lock table.
        IF current_setting('transaction_isolation') <> 'read committed' THEN
            v_busy := p_users;
        ELSIF cardinality(p_users) > 1000 THEN
            v_users := p_users;
        ELSE
            SELECT array_agg(u) FILTER (WHERE locked), array_agg(u) FILTER (WHERE NOT locked) INTO v_users, v_busy
              FROM (SELECT u, pg_try_advisory_xact_lock(p_feed_id, hashtext(u)) AS locked
                      FROM (SELECT DISTINCT u FROM unnest(p_users) AS u) AS d) AS l;
        END IF;
        IF cardinality(v_busy) > 0 THEN
            EXECUTE format('INSERT INTO %s (user_id) SELECT DISTINCT u::%s FROM unnest($1::text[]) AS u',
                           pgfeed._profile_dirty(p_feed_id), v_feed.user_type)
               USING v_busy;
        END IF;
        IF NOT cardinality(v_users) > 0 THEN
            RETURN;
        END IF;
        EXECUTE format($q$
            WITH affected AS (
                SELECT DISTINCT u::%4$s AS user_id FROM unnest($1::text[]) AS u
            ), unmarked AS (
                -- what this refresh sees, it includes (marks other transactions hold are left to them)
                DELETE FROM %5$s WHERE seq IN (
                    SELECT m.seq FROM %5$s m JOIN affected a ON a.user_id = m.user_id FOR UPDATE SKIP LOCKED)
            ), latest AS (
                SELECT a.user_id, pgfeed._scale(r.embedding, r.weight) AS embedding
                  FROM affected a CROSS JOIN LATERAL (
                      SELECT i.embedding, l.weight
                        FROM %2$s l JOIN %1$s i ON i.item_id = l.item_id
                       WHERE l.user_id = a.user_id AND i.embedding IS NOT NULL
                       ORDER BY l.created_at DESC NULLS LAST, l.seq DESC
                       LIMIT $2) AS r
            ), computed AS (
                SELECT user_id, @vector@.sum(embedding) AS total, count(*) AS items FROM latest GROUP BY user_id
            ), usable AS (
                -- likes and dislikes that cancel out leave no direction: cold start
                SELECT user_id, @vector@.l2_normalize(total) AS embedding, items FROM computed
                 WHERE @vector@.vector_norm(total) > 1e-6
            ), dropped AS (
                DELETE FROM %3$s p USING affected a
                 WHERE p.user_id = a.user_id AND NOT EXISTS (SELECT FROM usable u WHERE u.user_id = a.user_id)
            )
            INSERT INTO %3$s AS p (user_id, embedding, items, model, updated_at)
            SELECT user_id, embedding, items, $3, now() FROM usable
            ON CONFLICT (user_id) DO UPDATE
               SET embedding = EXCLUDED.embedding, items = EXCLUDED.items,
                   model = EXCLUDED.model, updated_at = EXCLUDED.updated_at
            $q$, pgfeed._item_store(p_feed_id), pgfeed._interaction_log(p_feed_id), pgfeed._profile(p_feed_id),
            v_feed.user_type, pgfeed._profile_dirty(p_feed_id))
           USING v_users, v_feed.profile_size, pgfeed._model_label(v_feed.model, v_feed.dimensions);
    END IF;
END
$$;
COMMENT ON FUNCTION pgfeed._refresh_profiles(integer, text[]) IS
    'recomputes the profiles of the given users from their last profile_size interactions; users another '
    'transaction is refreshing are marked for later instead of waited for';

CREATE OR REPLACE FUNCTION pgfeed._catch_up_likes(p_feed_id integer, p_limit integer) RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $$
DECLARE
    v_users text[];
    v_marks bigint[];
    v_left bigint;
BEGIN
    -- What writers left for later: like-count changes, and profiles marked
    -- while another transaction held them. Returns how much it did: counts
    -- folded and profiles refreshed (a profile still held is marked again,
    -- and is no progress: a role that holds one keeps no worker busy).
    IF (SELECT user_type FROM pgfeed.feed_config WHERE feed_id = p_feed_id) IS NULL THEN
        RETURN 0;
    END IF;
    -- the users marked longest ago, each once: one still held holds back no other
    EXECUTE format('SELECT array_agg(seq), array_agg(DISTINCT user_id::text) FROM %1$s '
                   'WHERE user_id IN (SELECT user_id FROM %1$s GROUP BY user_id ORDER BY min(seq) LIMIT %2$s)',
                   pgfeed._profile_dirty(p_feed_id), p_limit)
       INTO v_marks, v_users;
    -- a user someone still holds keeps its marks as they are (refreshing would mark it once more)
    v_users := ARRAY(SELECT u FROM unnest(v_users) AS u WHERE pg_try_advisory_xact_lock(p_feed_id, hashtext(u)));
    PERFORM pgfeed._refresh_profiles(p_feed_id, v_users);
    EXECUTE format('SELECT count(*) FROM %s WHERE seq = ANY ($1)', pgfeed._profile_dirty(p_feed_id)) INTO v_left USING v_marks;
    RETURN pgfeed._fold_popularity(p_feed_id) + coalesce(cardinality(v_marks), 0) - v_left;
END
$$;
COMMENT ON FUNCTION pgfeed._catch_up_likes(integer, integer) IS
    'folds a feed''s pending like-count changes and refreshes (up to p_limit) marked profiles; returns how many';

CREATE OR REPLACE FUNCTION pgfeed._refresh_profiles_of_items(p_feed_id integer, p_item_ids text[]) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $$
DECLARE
    v_feed pgfeed.feed_config;
    v_users text[];
BEGIN
    SELECT * INTO STRICT v_feed FROM pgfeed.feed_config WHERE feed_id = p_feed_id;
    IF v_feed.user_type IS NOT NULL AND cardinality(p_item_ids) > 0 THEN
        EXECUTE format('SELECT array_agg(DISTINCT user_id::text) FROM %s WHERE item_id = ANY ($1::%s[])',
                       pgfeed._interaction_log(p_feed_id), v_feed.item_type)
           INTO v_users USING p_item_ids;
        PERFORM pgfeed._refresh_profiles(p_feed_id, v_users);
    END IF;
END
$$;
COMMENT ON FUNCTION pgfeed._refresh_profiles_of_items(integer, text[]) IS
    'refreshes the profiles of users who interacted with items whose embedding changed or went away';

-- Tables attached before 0.3.0: record the columns their feeds read.
UPDATE pgfeed.interaction_source s
   SET source_name = s.source::text,
       watched = pgfeed._watched(s.source, ARRAY[pgfeed._column_number(s.source, s.user_column),
                                                 pgfeed._column_number(s.source, s.item_column),
                                                 pgfeed._column_number(s.source, s.created_at_column)])
 WHERE s.source_name IS NULL AND EXISTS (SELECT FROM pg_class c WHERE c.oid = s.source);
