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

CREATE OR REPLACE FUNCTION pgfeed._interaction_rows_sql(p_source pgfeed.interaction_source, p_from text,
                                                       p_weightless boolean DEFAULT false)
RETURNS text
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
    -- (user, item, time, weight) of the rows in p_from as text, timestamptz
    -- and float8 arrays (weights NULL without a weight expression: the
    -- table's weight). Run, and so planned, only once a statement of its own
    -- (pgfeed._row_types_sql: pg_typeof, which plans nothing of the owner's)
    -- has found in the rows themselves that the columns have the types the
    -- table was attached with: the table as it is now, where the catalogs a
    -- REPEATABLE READ transaction reads may predate an ALTER. Planning folds
    -- the immutable functions a cast of the owner's would bring (a review
    -- became superuser through a statement of no rows that named one), and the
    -- writer's lock keeps the types until this has run. The weight expression
    -- is built-in SQL only (checked at attach). A weight that is NULL, NaN or
    -- infinite counts as 0: the item is seen, and enters no profile and no
    -- like count; so does a row it fails on (p_weightless: weights 0, for a
    -- row read alone once the statement failed, pgfeed._interaction_read_sql).
    -- A time without a zone (timestamp, date) is read in UTC,
    -- whatever the writer's TimeZone: an unlike must find the time its like
    -- was logged with.
    SELECT format($q$
        SELECT r.users::text[], r.items::text[], %5$s, r.weights
          FROM (SELECT array_agg(t.%1$I) AS users, array_agg(t.%2$I) AS items, %3$s AS created, %6$s AS weights
                  FROM %4$s AS t) AS r
        $q$,
        p_source.user_column, p_source.item_column,
        CASE WHEN p_source.created_at_column IS NULL THEN 'NULL::timestamptz[]'
             ELSE format('array_agg(t.%I)', p_source.created_at_column) END, p_from,
        CASE WHEN max(c->>'type') FILTER (WHERE c->>'name' = p_source.created_at_column) = 'timestamp with time zone'
                  OR p_source.created_at_column IS NULL
             THEN 'r.created::timestamptz[]'
             ELSE 'ARRAY(SELECT c::timestamp AT TIME ZONE ''UTC'' FROM unnest(r.created) WITH ORDINALITY AS u(c, o) ORDER BY o)'
        END,
        CASE WHEN p_source.weight_expression IS NULL THEN 'NULL::float8[]'
             WHEN p_weightless THEN 'array_agg(0::float8)'
             ELSE format('array_agg(CASE WHEN abs((%1$s)::float8) < ''Infinity'' THEN (%1$s)::float8 ELSE 0 END)',
                         p_source.weight_expression) END)
      FROM jsonb_array_elements(p_source.watched) AS w(c)
$$;
COMMENT ON FUNCTION pgfeed._interaction_rows_sql(pgfeed.interaction_source, text, boolean) IS
    'the query that reads (users, items, times, weights) from interaction rows of the attached types, as arrays';

CREATE OR REPLACE FUNCTION pgfeed._interaction_read_sql(p_source pgfeed.interaction_source, p_from text, p_into text[])
RETURNS text
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
    -- The follower's statement that reads its transition rows (p_from) into
    -- its variables. With a weight expression, a block: where the statement
    -- fails on a row's weight (a division by zero), the rows are read again
    -- one by one and the row it fails on weighs 0, so that no other like of
    -- the statement is lost (the block, and so a subtransaction, only then: a
    -- like pays for none otherwise).
    SELECT CASE WHEN p_source.weight_expression IS NULL
                THEN format('%s INTO %s;', pgfeed._interaction_rows_sql(p_source, p_from), array_to_string(p_into, ', '))
                ELSE format($b$
                    BEGIN
                        %1$s INTO %4$s;
                    EXCEPTION WHEN data_exception THEN
                        %5$s := '{}'; %6$s := '{}'; %7$s := '{}'; %8$s := '{}';
                        FOR v_row IN 0 .. (SELECT count(*) FROM %9$s) - 1 LOOP
                            BEGIN
                                %2$s INTO v_users, v_items, v_created, v_weights;
                            EXCEPTION WHEN data_exception THEN
                                %3$s INTO v_users, v_items, v_created, v_weights;
                            END;
                            %5$s := %5$s || v_users; %6$s := %6$s || v_items; %7$s := %7$s || v_created;
                            %8$s := %8$s || v_weights;
                        END LOOP;
                    END;$b$,
                    pgfeed._interaction_rows_sql(p_source, p_from),
                    pgfeed._interaction_rows_sql(p_source, format('(SELECT * FROM %s OFFSET v_row LIMIT 1)', p_from)),
                    pgfeed._interaction_rows_sql(p_source, format('(SELECT * FROM %s OFFSET v_row LIMIT 1)', p_from), true),
                    array_to_string(p_into, ', '), p_into[1], p_into[2], p_into[3], p_into[4], p_from) END
$$;
COMMENT ON FUNCTION pgfeed._interaction_read_sql(pgfeed.interaction_source, text, text[]) IS
    'the statement (or block) of an interaction follower that reads its transition rows into its variables';

CREATE OR REPLACE FUNCTION pgfeed.attach_interactions(
    feed text,
    source regclass,
    user_column name,
    item_column name,
    weight float8 DEFAULT 1.0,
    created_at_column name DEFAULT NULL,
    backfill boolean DEFAULT true,
    weight_expression text DEFAULT NULL,
    _caller text DEFAULT pgfeed._caller())
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path FROM CURRENT
AS $$
DECLARE
    v_caller oid := pgfeed._admin(_caller);
BEGIN
    IF weight IS NULL OR weight = 0 OR weight IN ('NaN', 'Infinity', '-Infinity') THEN
        RAISE EXCEPTION 'weight must be a finite non-zero number, got %', coalesce(weight::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'use 1.0 for likes and a negative weight for dislikes; for what was shown, pgfeed.attach_impressions';
    END IF;
    RETURN pgfeed._attach_interactions(pgfeed._owned_feed(feed, v_caller), source, user_column, item_column, weight,
                                       created_at_column, backfill, weight_expression, v_caller);
END
$$;
COMMENT ON FUNCTION pgfeed.attach_interactions(text, regclass, name, name, float8, name, boolean, text, text) IS
    'attaches an interaction table (likes; a negative weight for dislikes; weight_expression, built-in SQL over a '
    'row, for graded feedback such as rating - 3) to a feed; existing rows are loaded unless backfill is false; '
    'returns how many';

CREATE OR REPLACE FUNCTION pgfeed.attach_impressions(
    feed text,
    source regclass,
    user_column name,
    item_column name,
    created_at_column name DEFAULT NULL,
    backfill boolean DEFAULT true,
    _caller text DEFAULT pgfeed._caller())
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path FROM CURRENT
AS $$
DECLARE
    v_caller oid := pgfeed._admin(_caller);
BEGIN
    -- An impression is an interaction of weight 0: logged like a like, so
    -- that detach, drop, TRUNCATE and bulk loads behave as for like tables,
    -- but it enters no profile (the window skips weight 0) and no like count
    -- (counts are of positive weights). feed(exclude_seen => true) hides it
    -- for the feed's seen_for, or for good.
    RETURN pgfeed._attach_interactions(pgfeed._owned_feed(feed, v_caller), source, user_column, item_column, 0,
                                       created_at_column, backfill, NULL, v_caller);
END
$$;
COMMENT ON FUNCTION pgfeed.attach_impressions(text, regclass, name, name, name, boolean, text) IS
    'attaches the table of what the application showed to whom: feed() leaves those items out (exclude_seen) for '
    'the feed''s seen_for, or for good; impressions enter no profile and no like count; existing rows are loaded '
    'unless backfill is false; returns how many';

CREATE OR REPLACE FUNCTION pgfeed._attach_interactions(
    p_feed pgfeed.feed_config, source regclass, user_column name, item_column name, weight float8,
    created_at_column name, backfill boolean, weight_expression text, p_caller oid)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $$
DECLARE
    feed text := p_feed.name;
    v_user_kind regtype;
    v_item_kind regtype;
    v_source pgfeed.interaction_source;
    v_columns smallint[];
BEGIN
    IF p_feed.item_type IS NULL THEN
        RAISE EXCEPTION 'feed "%" has no content table yet', feed
            USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'call pgfeed.attach_content(...) first';
    END IF;
    IF EXISTS (SELECT 1 FROM pgfeed.interaction_source s WHERE s.feed_id = p_feed.feed_id AND s.source = _attach_interactions.source) THEN
        RAISE EXCEPTION 'table % is already attached to feed "%"', source, feed USING ERRCODE = 'duplicate_object';
    END IF;
    PERFORM pgfeed._require_table(source);
    PERFORM pgfeed._require_owned_table(source, p_caller);
    PERFORM pgfeed._require_plannable(source, feed);
    v_user_kind := pgfeed._key_column(source, user_column, 'a user');
    v_item_kind := pgfeed._key_column(source, item_column, 'an item');
    IF v_item_kind <> p_feed.item_type THEN
        RAISE EXCEPTION 'column %.% holds % keys but the items of feed "%" have % keys', source, quote_ident(item_column),
                        v_item_kind, feed, p_feed.item_type USING ERRCODE = 'datatype_mismatch';
    END IF;
    IF created_at_column IS NOT NULL AND NOT pgfeed._time_type(pgfeed._column_type(source, created_at_column)) THEN
        RAISE EXCEPTION 'column %.% has type %, which pgfeed cannot read as a time', source, quote_ident(created_at_column),
                        pgfeed._column_type(source, created_at_column)
            USING ERRCODE = 'datatype_mismatch', HINT = 'use a timestamptz, timestamp or date column, or none';
    END IF;

    IF p_feed.user_type IS NULL THEN
        EXECUTE format($ddl$
            CREATE TABLE %1$s (
                seq        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                source_id  integer NOT NULL,
                user_id    %3$s NOT NULL,
                item_id    %4$s NOT NULL,
                weight     float8 NOT NULL,
                created_at timestamptz
            );
            CREATE INDEX ON %1$s (user_id, created_at DESC NULLS LAST, seq DESC) WHERE weight <> 0;  -- profiles
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
            $ddl$, pgfeed._interaction_log(p_feed.feed_id), pgfeed._profile(p_feed.feed_id),
            v_user_kind, p_feed.item_type, p_feed.dimensions,
            format('pgfeed interaction log of feed %s', p_feed.feed_id), format('pgfeed user profiles of feed %s', p_feed.feed_id),
            pgfeed._popularity_delta(p_feed.feed_id), pgfeed._profile_dirty(p_feed.feed_id));
        UPDATE pgfeed.feed_config SET user_type = v_user_kind WHERE feed_id = p_feed.feed_id;
    ELSIF p_feed.user_type <> v_user_kind THEN
        RAISE EXCEPTION 'column %.% holds % keys but the users of feed "%" have % keys', source, quote_ident(user_column),
                        v_user_kind, feed, p_feed.user_type USING ERRCODE = 'datatype_mismatch';
    END IF;

    -- the weight expression: built-in SQL over columns of built-in types, which the trigger then watches
    v_columns := ARRAY[pgfeed._column_number(source, user_column), pgfeed._column_number(source, item_column),
                       pgfeed._column_number(source, created_at_column)]
                 || coalesce(pgfeed._expression_columns(source, weight_expression, 'float8', 'weight',
                                                        NOT pgfeed._is_superuser(p_caller)), '{}');
    PERFORM pgfeed._require_built_in_columns(source, pgfeed._watched(source, v_columns), feed);

    INSERT INTO pgfeed.interaction_source (feed_id, source, user_column, item_column, weight, created_at_column,
                                           source_name, watched, weight_expression)
    VALUES (p_feed.feed_id, source, user_column, item_column, weight, created_at_column, source::text,
            pgfeed._watched(source, v_columns), weight_expression)
    RETURNING * INTO v_source;
    PERFORM pgfeed._grant_readers(p_feed.feed_id);
    PERFORM pgfeed._create_interaction_follower(v_source.source_id);
    PERFORM pgfeed._create_triggers(source, pgfeed._interaction_trigger_prefix(p_feed.feed_id, v_source.source_id),
                                    pgfeed._interaction_follower(v_source.source_id), v_source.source_id);
    IF NOT backfill THEN
        RETURN 0;
    END IF;
    RETURN pgfeed._load_interactions(v_source);
END
$$;
COMMENT ON FUNCTION pgfeed._attach_interactions(pgfeed.feed_config, regclass, name, name, float8, name, boolean, text,
                                                oid) IS
    'attaches an interaction table of a weight (0: impressions) to a feed, its log and profile tables made with the '
    'first; returns how many rows were loaded';

CREATE OR REPLACE FUNCTION pgfeed._load_interactions(p_source pgfeed.interaction_source) RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
SET standard_conforming_strings = on  -- the weight expression is read as it was checked, whatever the session says
AS $$
DECLARE
    v_typed boolean;
    v_users text[]; v_items text[]; v_created timestamptz[]; v_weights float8[];
    v_one_users text[]; v_one_items text[]; v_one_created timestamptz[]; v_one_weights float8[];
    v_rows tid[];
    v_row tid;
    v_changed text[];
    v_feed pgfeed.feed_config;
BEGIN
    -- only columns of the built-in types the table was attached with are read
    SELECT * INTO STRICT v_feed FROM pgfeed.feed_config WHERE feed_id = p_source.feed_id;
    BEGIN
        PERFORM pgfeed._lock_source(p_source.source, v_feed.name);
        PERFORM pgfeed._require_source(p_source.source, p_source.source_name, p_source.watched, v_feed.name);
        -- (no row: nothing to read, nor to plan; pgfeed._interaction_rows_sql)
        EXECUTE pgfeed._row_types_sql(p_source.watched, p_source.source::text) INTO v_typed;
        IF v_typed IS NOT NULL THEN
            PERFORM pgfeed._require_row_types(v_typed, p_source.source, v_feed.name);
            BEGIN
                EXECUTE pgfeed._interaction_rows_sql(p_source, p_source.source::text)
                   INTO v_users, v_items, v_created, v_weights;
            EXCEPTION WHEN data_exception THEN
                -- a row the weight expression fails on weighs 0 (pgfeed._interaction_read_sql): each row alone
                v_users := '{}'; v_items := '{}'; v_created := '{}'; v_weights := '{}';
                EXECUTE format('SELECT array_agg(ctid) FROM %s', p_source.source) INTO v_rows;
                FOREACH v_row IN ARRAY v_rows LOOP
                    BEGIN
                        EXECUTE pgfeed._interaction_rows_sql(p_source, format('(SELECT * FROM %s WHERE ctid = $1)', p_source.source))
                           INTO v_one_users, v_one_items, v_one_created, v_one_weights USING v_row;
                    EXCEPTION WHEN data_exception THEN
                        EXECUTE pgfeed._interaction_rows_sql(p_source, format('(SELECT * FROM %s WHERE ctid = $1)', p_source.source),
                                                             true)
                           INTO v_one_users, v_one_items, v_one_created, v_one_weights USING v_row;
                    END;
                    v_users := v_users || v_one_users; v_items := v_items || v_one_items;
                    v_created := v_created || v_one_created; v_weights := v_weights || v_one_weights;
                END LOOP;
            END;
        END IF;
        RAISE SQLSTATE 'PF001';  -- read: the lock goes (pgfeed._lock_source)
    EXCEPTION WHEN SQLSTATE 'PF001' THEN
        NULL;
    END;
    -- (the profiles at once, not marked one by one: a load may bring thousands of users)
    EXECUTE pgfeed._interaction_write_sql(v_feed, '$1', '$2', NULL, ARRAY['$3', '$4', '$5', '$6'], false)
       INTO v_changed USING p_source.source_id, p_source.weight, v_users, v_items, v_created, v_weights;
    PERFORM pgfeed._refresh_profiles(p_source.feed_id, v_changed);
    RETURN coalesce(cardinality(v_users), 0);
END
$$;
COMMENT ON FUNCTION pgfeed._load_interactions(pgfeed.interaction_source) IS
    'logs every row of an interaction table (attach, catching up); returns how many';

CREATE OR REPLACE FUNCTION pgfeed._create_interaction_follower(p_source_id integer) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
SET check_function_bodies = on  -- a function that would not compile fails the attach, never a writer
AS $$
DECLARE
    v_source pgfeed.interaction_source;
    v_feed pgfeed.feed_config;
    v_columns text;
    v_body text;
BEGIN
    SELECT * INTO STRICT v_source FROM pgfeed.interaction_source WHERE source_id = p_source_id;
    SELECT * INTO STRICT v_feed FROM pgfeed.feed_config WHERE feed_id = v_source.feed_id;
    SELECT string_agg(format('(%s, %L, %s)', c->>'attnum', c->>'name', (c->>'type')::regtype::oid), ', ')
      INTO v_columns FROM jsonb_array_elements(v_source.watched) AS w(c);
    -- The trigger function of one interaction table, made at attach and again
    -- on every install (the end of this file), with the table's number and
    -- columns written in, so that every statement in it is planned once a
    -- session: a like is on the application's hot path (issue 13: at most
    -- 0.5 ms added to a one-row INSERT, where planning the same statements
    -- for every like cost more than 1 ms).
    --
    -- SECURITY DEFINER, so that a role writing the like table needs no
    -- privilege on pgfeed's tables. It reads only the user, item and time
    -- columns, after checking that they are still the built-in types they
    -- were attached with (pgfeed._interaction_rows_sql), and casts them with
    -- built-in casts. (A transition table's statements are planned again
    -- when its table changes, as the table's own are.) A failure of pgfeed's
    -- own is recorded, never the writer's problem: a worker catches up later.
    -- The profiles are stored later too: feed() computes a marked profile.
    -- (the body is a literal, not dollar-quoted: a column name may hold any dollar-quote tag)
    v_body := format($body$
        DECLARE
            v_typed boolean;
            v_old_users text[]; v_old_items text[]; v_old_created timestamptz[]; v_old_weights float8[];
            v_new_users text[]; v_new_items text[]; v_new_created timestamptz[]; v_new_weights float8[];%13$s
            v_feed text;
        BEGIN
            -- only for the table attached and its partitions (not a trigger someone else made with this function)
            IF TG_RELID <> %1$s AND NOT pgfeed._attached_to(TG_RELID, %1$s) THEN
                RETURN NULL;
            END IF;
            BEGIN
                -- the columns as attached (number, name, type) in the catalogs, else pgfeed._source_problem says how not
                IF (SELECT count(*) FROM pg_attribute
                     WHERE attrelid = %1$s AND NOT attisdropped AND (attnum, attname, atttypid) IN (%2$s)) <> %3$s THEN
                    PERFORM pgfeed._require_source(s.source, s.source_name, s.watched, c.name)
                       FROM pgfeed.interaction_source s JOIN pgfeed.feed_config c USING (feed_id)
                      WHERE s.source_id = %4$s;
                END IF;
                IF TG_OP = 'TRUNCATE' AND TG_RELID = %1$s THEN
                    PERFORM pgfeed._forget_source(%4$s);
                    RETURN NULL;
                ELSIF TG_OP = 'TRUNCATE' THEN
                    -- the log does not know which partition a like came from: a worker loads the table again
                    PERFORM pgfeed._record_problem(%10$s, format('partition %%s of %%s was truncated: a worker loads its '
                                                                 'likes again', TG_RELID::regclass, %1$s::regclass));
                    RETURN NULL;
                END IF;
                -- the rows' own types first, in a statement of their own; no row, nothing to do
                -- (pgfeed._interaction_rows_sql)
                IF TG_OP <> 'INSERT' THEN
                    %11$s INTO v_typed;
                    IF v_typed IS NULL THEN
                        RETURN NULL;
                    END IF;
                    PERFORM pgfeed._require_row_types(v_typed, %1$s, %7$L);
                    %5$s
                END IF;
                IF TG_OP <> 'DELETE' THEN
                    %12$s INTO v_typed;
                    IF v_typed IS NULL THEN
                        RETURN NULL;
                    END IF;
                    PERFORM pgfeed._require_row_types(v_typed, %1$s, %7$L);
                    %6$s
                END IF;
                IF TG_OP = 'UPDATE' THEN
                    -- only what changed (a weight too): an untouched like keeps its place in line
                    WITH o AS (SELECT * FROM unnest(v_old_users, v_old_items, v_old_created, v_old_weights) AS o(u, i, c, w)),
                         n AS (SELECT * FROM unnest(v_new_users, v_new_items, v_new_created, v_new_weights) AS n(u, i, c, w))
                    SELECT g.*, a.*
                      INTO v_old_users, v_old_items, v_old_created, v_old_weights,
                           v_new_users, v_new_items, v_new_created, v_new_weights
                      FROM (SELECT array_agg(u), array_agg(i), array_agg(c), array_agg(w)
                              FROM (TABLE o EXCEPT ALL TABLE n) AS x) AS g,
                           (SELECT array_agg(u), array_agg(i), array_agg(c), array_agg(w)
                              FROM (TABLE n EXCEPT ALL TABLE o) AS x) AS a;
                END IF;
                IF TG_OP = 'INSERT' THEN
                    %8$s;
                ELSE
                    %9$s;
                END IF;
            EXCEPTION WHEN OTHERS THEN
                IF NOT pgfeed._feeds_fault(SQLSTATE) THEN
                    RAISE;
                END IF;
                v_feed := (SELECT name FROM pgfeed.feed_config WHERE feed_id = %10$s);
                PERFORM pgfeed._stand_aside(%10$s, v_feed, TG_OP, TG_TABLE_NAME, SQLERRM);
            END;
            RETURN NULL;
        END
        $body$, v_source.source::oid, v_columns, jsonb_array_length(v_source.watched), p_source_id,
        pgfeed._interaction_read_sql(v_source, 'pgfeed_old', '{v_old_users, v_old_items, v_old_created, v_old_weights}'),
        pgfeed._interaction_read_sql(v_source, 'pgfeed_new', '{v_new_users, v_new_items, v_new_created, v_new_weights}'),
        v_feed.name,
        pgfeed._interaction_write_sql(v_feed, p_source_id::text, v_source.weight::text, NULL,
                                      '{v_new_users, v_new_items, v_new_created, v_new_weights}', true),
        pgfeed._interaction_write_sql(v_feed, p_source_id::text, v_source.weight::text,
                                      '{v_old_users, v_old_items, v_old_created, v_old_weights}',
                                      '{v_new_users, v_new_items, v_new_created, v_new_weights}', true),
        v_source.feed_id, pgfeed._row_types_sql(v_source.watched, 'pgfeed_old'),
        pgfeed._row_types_sql(v_source.watched, 'pgfeed_new'),
        CASE WHEN v_source.weight_expression IS NOT NULL THEN '
            v_users text[]; v_items text[]; v_created timestamptz[]; v_weights float8[];  -- (one row, read alone)' END);
    EXECUTE format('CREATE OR REPLACE FUNCTION %s() RETURNS trigger LANGUAGE plpgsql VOLATILE SECURITY DEFINER '
                   'SET search_path FROM CURRENT '
                   -- (the weight expression's string literals read as they were checked)
                   'SET standard_conforming_strings = on '
                   -- (the plans made for the first like serve every later one: the rows change no plan)
                   'SET plan_cache_mode = force_generic_plan AS %L', pgfeed._interaction_follower(p_source_id), v_body);
    EXECUTE format('COMMENT ON FUNCTION %s() IS %L', pgfeed._interaction_follower(p_source_id),
                   format('statement-level trigger on %s (feed %s): mirrors the change into the log and the like '
                          'counts, and marks the profiles to refresh; never fails the writer''s statement for '
                          'pgfeed''s sake', v_source.source_name, v_source.feed_id));
    EXECUTE format('REVOKE ALL ON FUNCTION %s() FROM PUBLIC', pgfeed._interaction_follower(p_source_id));
END
$$;
COMMENT ON FUNCTION pgfeed._create_interaction_follower(integer) IS
    'makes the trigger function of one interaction table';

CREATE OR REPLACE FUNCTION pgfeed._drop_interaction_follower(p_source pgfeed.interaction_source) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $$
BEGIN
    PERFORM pgfeed._drop_triggers(p_source.source, pgfeed._interaction_trigger_prefix(p_source.feed_id, p_source.source_id));
    -- (with the triggers a partition detached since still has: its writes did nothing)
    EXECUTE format('DROP FUNCTION IF EXISTS %s() CASCADE', pgfeed._interaction_follower(p_source.source_id));
END
$$;
COMMENT ON FUNCTION pgfeed._drop_interaction_follower(pgfeed.interaction_source) IS
    'removes an interaction table''s triggers and their function';

CREATE OR REPLACE FUNCTION pgfeed._popularity_changes_sql(p_feed_id integer, p_items text) RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$
    -- Common table expressions that apply like-count changes (from one
    -- named "changes": item_id, delta) to a feed's counts without waiting:
    -- a count no other transaction holds is locked and changed at once,
    -- together with the changes others left on it; the changes of a count
    -- another transaction holds are appended (a delta row), and folded later
    -- by it, the next like of the item or a worker. Counts are changed only
    -- under READ COMMITTED: a REPEATABLE READ or SERIALIZABLE writer would
    -- fail to serialize on a count changed since its snapshot, so there every
    -- change is appended. "folded" yields a row a count changed. p_items, an
    -- SQL array of the items (NULL: any), limits each scan of the counts by a
    -- condition of its own, so that a plan made once for every call reads
    -- them by index (the changes left on them are read by index from those).
    -- (Every item the feed ranks has a count row: one is made when it enters
    -- the item store.)
    SELECT format($q$
        locked AS (
            SELECT p.item_id FROM %1$s p
             WHERE p.item_id IN (SELECT item_id FROM changes) AND %3$s
               AND current_setting('transaction_isolation') = 'read committed'
             ORDER BY p.item_id
               FOR UPDATE SKIP LOCKED
        ), taken AS (
            DELETE FROM %2$s d WHERE d.item_id IN (SELECT item_id FROM locked) RETURNING d.item_id, d.delta
        ), folded AS (
            UPDATE %1$s p SET popularity = p.popularity + f.delta
              FROM (SELECT item_id, sum(delta) AS delta
                      FROM (SELECT item_id, delta FROM changes WHERE item_id IN (SELECT item_id FROM locked)
                            UNION ALL
                            SELECT item_id, delta FROM taken) AS x
                     GROUP BY item_id) AS f
             WHERE p.item_id = f.item_id AND %3$s
            RETURNING 1
        ), deferred AS (
            INSERT INTO %2$s (item_id, delta)
            SELECT item_id, delta FROM changes WHERE delta <> 0 AND item_id NOT IN (SELECT item_id FROM locked)
        )$q$, pgfeed._item_popularity(p_feed_id), pgfeed._popularity_delta(p_feed_id),
        coalesce('p.item_id = ANY (' || p_items || ')', 'true'))
$$;
COMMENT ON FUNCTION pgfeed._popularity_changes_sql(integer, text) IS
    'common table expressions that apply like-count changes to the counts at once where no other transaction '
    'holds them, and append them otherwise';

CREATE OR REPLACE FUNCTION pgfeed._interaction_write_sql(
    p_feed pgfeed.feed_config, p_source_id text, p_weight text, p_old text[], p_new text[], p_mark boolean)
RETURNS text
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
    -- The statement that writes interaction changes to a feed's log, like
    -- counts and profile marks, and yields the users whose likes changed. Its
    -- inputs are SQL expressions: the source, its weight, the removed and the
    -- added rows (each (users, items, times, weights): text, text, timestamptz
    -- and float8 arrays, a NULL weight the source's; p_old NULL: nothing
    -- removed). With p_mark, the users are marked
    -- for their profile to be stored again (feed() computes a marked user's
    -- profile as it reads; workers store it); without, they are its result.
    --
    -- Nothing in it waits on a lock another transaction holds (issue 13): a
    -- like commits as soon as the user's own statement would, under any
    -- isolation level, and two transactions never deadlock over pgfeed's rows.
    -- A removed row takes out one matching log entry (the newest): duplicate
    -- likes in the user's table stay counted as many times as they remain. An
    -- entry another transaction is taking out is skipped, not waited for: two
    -- transactions that each delete one of two equal likes take out one entry
    -- each (waiting, the second would find the first's entry gone and take out
    -- none, leaving a like the table no longer has). Like counts change as
    -- pgfeed._popularity_changes_sql says.
    SELECT format($q$
        WITH %1$s, added AS (
            INSERT INTO %2$s (source_id, user_id, item_id, weight, created_at)
            SELECT %6$s, u::%3$s, i::%4$s, coalesce(w, %7$s), c
              FROM unnest(%8$s, %9$s, %10$s, %13$s) AS a(u, i, c, w)
             WHERE u IS NOT NULL AND i IS NOT NULL
            RETURNING user_id, item_id, weight
        ), changes AS (
            SELECT item_id, sum(delta)::bigint AS delta
              FROM (SELECT item_id, -1 AS delta FROM removed WHERE weight > 0
                    UNION ALL
                    SELECT item_id, 1 FROM added WHERE weight > 0) AS z
             GROUP BY item_id HAVING sum(delta) <> 0
        ), %11$s, changed AS (
            -- (an impression, of weight 0, changes no profile)
            SELECT DISTINCT user_id FROM (SELECT user_id, weight FROM removed UNION ALL SELECT user_id, weight FROM added) AS t
             WHERE weight <> 0
        )
        %12$s
        $q$,
        CASE WHEN p_old IS NULL
             THEN format('removed AS (SELECT NULL::%s AS user_id, NULL::%s AS item_id, NULL::float8 AS weight WHERE false)',
                         p_feed.user_type, p_feed.item_type)
             ELSE format($r$
                 gone AS (
                     SELECT u::%3$s AS user_id, i::%4$s AS item_id, c AS created_at, coalesce(w, %9$s) AS weight,
                            count(*) AS n
                       FROM unnest(%5$s, %6$s, %7$s, %8$s) AS g(u, i, c, w)
                      WHERE u IS NOT NULL AND i IS NOT NULL
                      GROUP BY 1, 2, 3, 4
                 ), removed AS (
                     DELETE FROM %1$s WHERE seq IN (
                         SELECT v.seq FROM gone g CROSS JOIN LATERAL (
                             SELECT l.seq FROM %1$s l
                              WHERE l.user_id = g.user_id AND l.item_id = g.item_id AND l.source_id = %2$s
                                AND l.created_at IS NOT DISTINCT FROM g.created_at AND l.weight = g.weight
                              ORDER BY l.seq DESC LIMIT g.n
                                FOR UPDATE SKIP LOCKED) AS v)
                     RETURNING user_id, item_id, weight
                 )$r$, pgfeed._interaction_log(p_feed.feed_id), p_source_id, p_feed.user_type, p_feed.item_type,
                 p_old[1], p_old[2], p_old[3], p_old[4], p_weight) END,
        pgfeed._interaction_log(p_feed.feed_id), p_feed.user_type, p_feed.item_type, pgfeed._profile_dirty(p_feed.feed_id),
        p_source_id, p_weight, p_new[1], p_new[2], p_new[3],
        pgfeed._popularity_changes_sql(p_feed.feed_id,
            format('(%s)::%s[]', concat_ws(' || ', p_old[2], p_new[2]), p_feed.item_type)),
        CASE WHEN p_mark THEN format('INSERT INTO %s (user_id) SELECT user_id FROM changed', pgfeed._profile_dirty(p_feed.feed_id))
             ELSE 'SELECT array_agg(user_id::text) FROM changed' END,
        p_new[4])
$$;
COMMENT ON FUNCTION pgfeed._interaction_write_sql(pgfeed.feed_config, text, text, text[], text[], boolean) IS
    'the statement that writes interaction changes to a feed''s log, like counts and profile marks';

CREATE OR REPLACE FUNCTION pgfeed._fold_popularity(p_feed_id integer) RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $$
DECLARE
    v_folded bigint;
BEGIN
    -- (the appended changes are the only ones: each item with some is taken as a change of 0)
    EXECUTE format('WITH changes AS (SELECT DISTINCT item_id, 0::bigint AS delta FROM %s), %s SELECT count(*) FROM folded',
                   pgfeed._popularity_delta(p_feed_id), pgfeed._popularity_changes_sql(p_feed_id, NULL))
       INTO v_folded;
    RETURN v_folded;
END
$$;
COMMENT ON FUNCTION pgfeed._fold_popularity(integer) IS
    'folds every appended like-count change of a feed whose count no other transaction holds; returns how many '
    'counts changed';

CREATE OR REPLACE FUNCTION pgfeed._forget_source(p_source_id integer) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $$
DECLARE
    v_feed_id integer := (SELECT feed_id FROM pgfeed.interaction_source WHERE source_id = p_source_id);
    v_users text[];
BEGIN
    EXECUTE format($q$
        WITH removed AS (
            DELETE FROM %2$s WHERE source_id = $1 RETURNING user_id, item_id, weight
        ), counted AS (
            INSERT INTO %1$s (item_id, delta)
            SELECT item_id, -count(*) FROM removed WHERE weight > 0 GROUP BY item_id
        )
        SELECT array_agg(DISTINCT user_id::text) FROM removed
        $q$, pgfeed._popularity_delta(v_feed_id), pgfeed._interaction_log(v_feed_id))
       INTO v_users USING p_source_id;
    PERFORM pgfeed._fold_popularity(v_feed_id);
    PERFORM pgfeed._refresh_profiles(v_feed_id, v_users);
END
$$;
COMMENT ON FUNCTION pgfeed._forget_source(integer) IS
    'removes every logged interaction of one interaction table (truncated or detached)';

CREATE OR REPLACE FUNCTION pgfeed._profile_window_sql(p_feed pgfeed.feed_config, p_user text,
                                                      p_until text DEFAULT NULL) RETURNS text
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
    -- The items of one user's profile (p_user, an SQL expression of the user
    -- key): their last profile_size interactions with an embedded item,
    -- newest first (by time, then by order of insertion): item, embedding,
    -- weight (not impressions, of weight 0). With p_until (an SQL expression of a log position), as the log
    -- stood there: a page after a cursor ranks by the first page's profile.
    SELECT format($q$
        SELECT i.item_id, i.embedding, l.weight
          FROM %1$s l JOIN %2$s i ON i.item_id = l.item_id
         WHERE l.user_id = %3$s AND l.weight <> 0 AND i.embedding IS NOT NULL %5$s
         ORDER BY l.created_at DESC NULLS LAST, l.seq DESC
         LIMIT %4$s
        $q$, pgfeed._interaction_log(p_feed.feed_id), pgfeed._item_store(p_feed.feed_id), p_user, p_feed.profile_size,
        'AND l.seq <= ' || p_until)
$$;
COMMENT ON FUNCTION pgfeed._profile_window_sql(pgfeed.feed_config, text, text) IS
    'the query that reads the items a user''s profile is made of (item, embedding, weight), now or up to a log position';

CREATE OR REPLACE FUNCTION pgfeed._profile_sql(p_feed pgfeed.feed_config, p_user text, p_until text DEFAULT NULL)
RETURNS text
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
    -- The profile of one user from the log: the L2-normalized, weight-signed
    -- sum of the embeddings of the profile's items, and how many there are; no
    -- row at all (cold start) without likes, or when likes and dislikes cancel out.
    SELECT format($q$
        SELECT @vector@.l2_normalize(w.total) AS embedding, w.items
          FROM (SELECT @vector@.sum(pgfeed._scale(r.embedding, r.weight)) AS total, count(*)::integer AS items
                  FROM (%s) AS r) AS w
         WHERE @vector@.vector_norm(w.total) > 1e-6
        $q$, pgfeed._profile_window_sql(p_feed, p_user, p_until))
$$;
COMMENT ON FUNCTION pgfeed._profile_sql(pgfeed.feed_config, text, text) IS
    'the query that computes one user''s profile (embedding, items) from the interaction log, now or up to a log position';

CREATE OR REPLACE FUNCTION pgfeed._current_profile(p_feed pgfeed.feed_config, p_user text) RETURNS @vector@.vector
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $$
DECLARE
    v_profile @vector@.vector;
BEGIN
    -- The stored profile, unless the user's likes changed since it was stored
    -- (the user is marked): then it is computed from the log as the caller's
    -- transaction sees it, so that a read follows the user's own likes at once
    -- while workers store profiles off the like's path. (With the caller's
    -- rights: a granted role reads these tables; nothing here writes.)
    EXECUTE format($q$
        SELECT CASE WHEN EXISTS (SELECT FROM %1$s m WHERE m.user_id = $1::%2$s)
                    THEN (SELECT c.embedding FROM (%3$s) AS c)
                    ELSE (SELECT p.embedding FROM %4$s p WHERE p.user_id = $1::%2$s) END
        $q$, pgfeed._profile_dirty(p_feed.feed_id), p_feed.user_type, pgfeed._profile_sql(p_feed, format('$1::%s', p_feed.user_type)),
        pgfeed._profile(p_feed.feed_id))
       INTO v_profile USING p_user;
    RETURN v_profile;
END
$$;
COMMENT ON FUNCTION pgfeed._current_profile(pgfeed.feed_config, text) IS
    'a user''s profile as of now: stored, or computed from the log when the user''s likes changed since';

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
        -- refreshed by a worker (feed() computes it meanwhile). So is every
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
                SELECT DISTINCT u::%2$s AS user_id FROM unnest($1::text[]) AS u
            ), unmarked AS (
                -- what this refresh sees, it includes (marks other transactions hold are left to them)
                DELETE FROM %3$s WHERE seq IN (
                    SELECT m.seq FROM %3$s m JOIN affected a ON a.user_id = m.user_id FOR UPDATE SKIP LOCKED)
            ), usable AS (
                SELECT a.user_id, p.embedding, p.items FROM affected a CROSS JOIN LATERAL (%4$s) AS p
            ), dropped AS (
                DELETE FROM %1$s p USING affected a
                 WHERE p.user_id = a.user_id AND NOT EXISTS (SELECT FROM usable u WHERE u.user_id = a.user_id)
            )
            INSERT INTO %1$s AS p (user_id, embedding, items, model, updated_at)
            SELECT user_id, embedding, items, $2, now() FROM usable
            ON CONFLICT (user_id) DO UPDATE
               SET embedding = EXCLUDED.embedding, items = EXCLUDED.items,
                   model = EXCLUDED.model, updated_at = EXCLUDED.updated_at
            $q$, pgfeed._profile(p_feed_id), v_feed.user_type, pgfeed._profile_dirty(p_feed_id),
            pgfeed._profile_sql(v_feed, 'a.user_id'))
           USING v_users, pgfeed._model_label(v_feed.model, v_feed.dimensions);
    END IF;
END
$$;
COMMENT ON FUNCTION pgfeed._refresh_profiles(integer, text[]) IS
    'stores the profiles of the given users, computed from their last profile_size interactions; users another '
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
    -- What writers left for later: like-count changes they could not make in
    -- place, and the profiles of the users whose likes changed. Returns how
    -- much it did: counts folded and profiles stored (a profile another
    -- transaction holds is marked again, and is no progress: a role that
    -- holds one keeps no worker busy).
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

-- Feeds with likes and their tables: the functions that follow them as this
-- version makes them, and their readers' SELECT on the tables it reads.
SELECT pgfeed._grant_readers(feed_id) FROM pgfeed.feed_config WHERE user_type IS NOT NULL;
SELECT pgfeed._create_interaction_follower(source_id) FROM pgfeed.interaction_source WHERE watched IS NOT NULL;
-- Tables attached before 0.3.0 had triggers on one function for all:
-- theirs are made again on their own (and that function goes, with the
-- triggers of partitions detached since, which did nothing).
SELECT pgfeed._drop_triggers(s.source, pgfeed._interaction_trigger_prefix(s.feed_id, s.source_id)),
       pgfeed._create_triggers(s.source, pgfeed._interaction_trigger_prefix(s.feed_id, s.source_id),
                               pgfeed._interaction_follower(s.source_id), s.source_id)
  FROM pgfeed.interaction_source s
 WHERE EXISTS (SELECT FROM pg_trigger t
                WHERE t.tgrelid = s.source AND t.tgname = pgfeed._interaction_trigger_prefix(s.feed_id, s.source_id) || '_insert'
                  AND t.tgfoid <> to_regproc(pgfeed._interaction_follower(s.source_id)));
DROP FUNCTION IF EXISTS pgfeed._interaction_trigger() CASCADE;
