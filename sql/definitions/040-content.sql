-- Content: attaching a content table, its statement-level triggers, and the
-- one routine (_sync_items) that brings items into the item store, used by the
-- triggers and by reembed alike.

CREATE OR REPLACE FUNCTION pgfeed._table_and_partitions(p_table regclass) RETURNS SETOF regclass
LANGUAGE sql STABLE STRICT
SET search_path FROM CURRENT
AS $$ SELECT p_table UNION SELECT relid FROM pg_partition_tree(p_table) $$;
COMMENT ON FUNCTION pgfeed._table_and_partitions(regclass) IS 'a table and, if it is partitioned, each of its partitions';

CREATE OR REPLACE FUNCTION pgfeed._create_triggers(p_source regclass, p_prefix text, p_function text, p_argument integer)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $$
DECLARE
    v_table regclass;
BEGIN
    -- On the table and on each of its partitions: a statement's triggers fire
    -- for the table it names, so rows written straight into a partition are
    -- seen by the partition's. (pgfeed._follow_partitions adds them to
    -- partitions made later.) One trigger an event: PostgreSQL allows
    -- transition tables only on single-event triggers.
    FOR v_table IN SELECT t FROM pgfeed._table_and_partitions(p_source) AS t
                    WHERE NOT EXISTS (SELECT FROM pg_trigger g WHERE g.tgrelid = t AND g.tgname = p_prefix || '_insert') LOOP
        EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON %s REFERENCING NEW TABLE AS pgfeed_new '
                       'FOR EACH STATEMENT EXECUTE FUNCTION %s(%s)', p_prefix || '_insert', v_table, p_function, p_argument);
        EXECUTE format('CREATE TRIGGER %I AFTER UPDATE ON %s REFERENCING OLD TABLE AS pgfeed_old NEW TABLE AS pgfeed_new '
                       'FOR EACH STATEMENT EXECUTE FUNCTION %s(%s)', p_prefix || '_update', v_table, p_function, p_argument);
        EXECUTE format('CREATE TRIGGER %I AFTER DELETE ON %s REFERENCING OLD TABLE AS pgfeed_old '
                       'FOR EACH STATEMENT EXECUTE FUNCTION %s(%s)', p_prefix || '_delete', v_table, p_function, p_argument);
        EXECUTE format('CREATE TRIGGER %I AFTER TRUNCATE ON %s '
                       'FOR EACH STATEMENT EXECUTE FUNCTION %s(%s)', p_prefix || '_truncate', v_table, p_function, p_argument);
    END LOOP;
END
$$;
COMMENT ON FUNCTION pgfeed._create_triggers(regclass, text, text, integer) IS
    'creates the statement-level INSERT, UPDATE, DELETE and TRUNCATE triggers pgfeed puts on a table and its partitions';

CREATE OR REPLACE FUNCTION pgfeed._drop_triggers(p_source regclass, p_prefix text) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $$
DECLARE
    v_trigger record;
BEGIN
    -- on the table and its partitions (a partition detached since keeps them: its writes do nothing)
    FOR v_trigger IN SELECT t.tgname, t.tgrelid::regclass AS tbl FROM pg_trigger t
                      WHERE t.tgrelid IN (SELECT pgfeed._table_and_partitions(p_source))
                        AND t.tgname IN (p_prefix || '_insert', p_prefix || '_update', p_prefix || '_delete',
                                         p_prefix || '_truncate') LOOP
        EXECUTE format('DROP TRIGGER %I ON %s', v_trigger.tgname, v_trigger.tbl);
    END LOOP;
END
$$;
COMMENT ON FUNCTION pgfeed._drop_triggers(regclass, text) IS 'removes the triggers _create_triggers made';

CREATE OR REPLACE FUNCTION pgfeed._attached_to(p_table oid, p_source regclass) RETURNS boolean
LANGUAGE sql STABLE
SET search_path FROM CURRENT
-- (on every trigger statement: the partition tree is walked only for a write to a partition)
AS $$ SELECT CASE WHEN p_table = p_source THEN true ELSE p_table IN (SELECT relid FROM pg_partition_tree(p_source)) END $$;
COMMENT ON FUNCTION pgfeed._attached_to(oid, regclass) IS 'whether a table is an attached table or one of its partitions';

-- SECURITY DEFINER: it puts pgfeed's triggers on partitions, of any owner,
-- made after their table was attached. It looks only at the tables the DDL
-- made or changed, reads only the catalogs, waits on no lock, and never
-- fails the DDL.
CREATE OR REPLACE FUNCTION pgfeed._follow_partitions() RETURNS event_trigger
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path FROM CURRENT
SET lock_timeout = '100ms'
AS $$
DECLARE
    v_source record;
BEGIN
    FOR v_source IN
        WITH touched AS (
            SELECT DISTINCT a.ancestor
              FROM pg_event_trigger_ddl_commands() AS c
             CROSS JOIN LATERAL pg_partition_ancestors(c.objid) AS a(ancestor)
             WHERE c.classid = 'pg_class'::regclass AND c.object_type = 'table'
        )
        SELECT c.source, pgfeed._content_trigger_prefix(c.feed_id) AS prefix, 'pgfeed._content_trigger' AS fn,
               c.feed_id AS arg
          FROM pgfeed.content_source c WHERE c.source IN (SELECT ancestor FROM touched)
         UNION ALL
        SELECT i.source, pgfeed._interaction_trigger_prefix(i.feed_id, i.source_id), pgfeed._interaction_follower(i.source_id),
               i.source_id
          FROM pgfeed.interaction_source i WHERE i.source IN (SELECT ancestor FROM touched)
    LOOP
        PERFORM pgfeed._create_triggers(v_source.source, v_source.prefix, v_source.fn, v_source.arg);
    END LOOP;
EXCEPTION WHEN OTHERS THEN
    RAISE WARNING 'pgfeed: could not add its triggers to new partitions: %', SQLERRM
        USING HINT = 'rows written straight into those partitions are not followed until the feed is attached again';
END
$$;
COMMENT ON FUNCTION pgfeed._follow_partitions() IS
    'event trigger: adds pgfeed''s triggers to partitions created or attached under an attached table';

DROP EVENT TRIGGER IF EXISTS pgfeed_follow_partitions;
CREATE EVENT TRIGGER pgfeed_follow_partitions ON ddl_command_end
    WHEN TAG IN ('CREATE TABLE', 'ALTER TABLE')
    EXECUTE FUNCTION pgfeed._follow_partitions();
COMMENT ON EVENT TRIGGER pgfeed_follow_partitions IS
    'pgfeed: new partitions of attached tables get the feed''s triggers';

CREATE OR REPLACE FUNCTION pgfeed._content_trigger_prefix(p_feed_id integer) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path FROM CURRENT
AS $$ SELECT 'pgfeed_feed' || p_feed_id || '_content' $$;
COMMENT ON FUNCTION pgfeed._content_trigger_prefix(integer) IS 'name prefix of the triggers on a feed''s content table';

-- Text expressions and conditions are the feed administrator's SQL over the
-- table's columns, made of built-in functions and operators only and reading
-- columns of built-in types only (pgfeed._expression_columns,
-- pgfeed._require_built_in_columns, checked again before each read by
-- pgfeed._source_problem): so pgfeed evaluates them with its own rights, and
-- nothing of the table owner's or the writer's runs.
CREATE OR REPLACE FUNCTION pgfeed._attributes_sql(p_source pgfeed.content_source) RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$
    SELECT coalesce('jsonb_build_object(' || string_agg(format('%L, r.%I', c, c), ', ' ORDER BY c) || ')', 'NULL::jsonb')
      FROM (SELECT DISTINCT c FROM unnest(p_source.filter_columns || p_source.group_column) AS c WHERE c IS NOT NULL) AS u
$$;
COMMENT ON FUNCTION pgfeed._attributes_sql(pgfeed.content_source) IS
    'the expression of a content row r''s filter and group columns as the item store keeps them: {"column": value}';

CREATE OR REPLACE FUNCTION pgfeed._evaluate_rows(p_source pgfeed.content_source, p_rows anyarray,
                                                 OUT ids text[], OUT texts text[], OUT created timestamptz[],
                                                 OUT eligible boolean[], OUT errors text[], OUT attributes jsonb[])
LANGUAGE plpgsql STABLE
-- the search_path (and the reading of string literals) the expressions were checked with; every pgfeed name here
-- is qualified
SET search_path = pg_catalog, pg_temp
SET standard_conforming_strings = on
AS $$
DECLARE
    v_columns text := format('r.%I::text AS i, (%s)::text AS t, r.%I::timestamptz AS c, coalesce((%s)::boolean, false) AS e, '
                             '%s AS a',
                             p_source.id_column, p_source.text_expression, p_source.created_at_column,
                             coalesce(p_source.condition, 'true'), pgfeed._attributes_sql(p_source));
    v_id text; v_text text; v_created timestamptz; v_eligible boolean; v_error text; v_attributes jsonb;
BEGIN
    BEGIN
        EXECUTE format('SELECT array_agg(i), array_agg(t), array_agg(c), array_agg(e), array_agg(NULL::text), array_agg(a) '
                       'FROM (SELECT %s FROM unnest($1) AS r) AS x', v_columns)
           INTO ids, texts, created, eligible, errors, attributes USING p_rows;
    EXCEPTION WHEN OTHERS THEN
        -- a row the expressions fail on is kept with the error; the others go on, each alone
        ids := '{}'; texts := '{}'; created := '{}'; eligible := '{}'; errors := '{}'; attributes := '{}';
        FOR i IN 1 .. coalesce(cardinality(p_rows), 0) LOOP
            BEGIN
                EXECUTE format('SELECT %s, NULL::text AS err FROM unnest($1) AS r', v_columns)
                   INTO v_id, v_text, v_created, v_eligible, v_attributes, v_error USING p_rows[i:i];
            EXCEPTION WHEN OTHERS THEN
                EXECUTE format('SELECT r.%I::text AS i, NULL::text AS t, NULL::timestamptz AS c, true AS e, '
                               'NULL::jsonb AS a, $2 AS err FROM unnest($1) AS r',
                               p_source.id_column)
                   INTO v_id, v_text, v_created, v_eligible, v_attributes, v_error USING p_rows[i:i], SQLERRM;
            END;
            ids := ids || v_id; texts := texts || v_text; created := created || v_created;
            eligible := eligible || v_eligible; errors := errors || v_error; attributes := attributes || v_attributes;
        END LOOP;
    END;
END
$$;
COMMENT ON FUNCTION pgfeed._evaluate_rows(pgfeed.content_source, anyarray) IS
    'keys, texts, times and eligibility of content rows (given as an array of the table''s rows), the errors of '
    'rows the text expression or condition failed on, and their filter and group columns (attributes)';

CREATE OR REPLACE FUNCTION pgfeed._lock_source(p_source regclass, p_feed text) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
SET lock_timeout = '500ms'  -- under deadlock_timeout: an autovacuum in the way is waited for, never cancelled
AS $$
BEGIN
    -- Before pgfeed reads an attached table outside its triggers (workers,
    -- reembed, status): nothing that changes how a query on the table is
    -- planned can come between the checks below and the read. Planning
    -- folds the functions of the table's index expressions and predicates,
    -- constraints, statistics and partition keys with the planner's rights;
    -- ALTER TABLE, CREATE INDEX (CONCURRENTLY), ADD CONSTRAINT, CREATE
    -- STATISTICS and ATTACH PARTITION all conflict with SHARE UPDATE
    -- EXCLUSIVE, which writers share (a role that may only read the table
    -- takes ACCESS SHARE, and plans with its own rights). That lock also
    -- keeps VACUUM, ANALYZE and other workers' reads out, so callers hold it
    -- for their read only: they read in a block they end with RAISE SQLSTATE
    -- 'PF001' and catch, which rolls the block back and releases the lock,
    -- the rows staying in their variables. A table someone holds longer than
    -- lock_timeout is read another time. Under READ COMMITTED only, so that
    -- the checks read the catalogs as they are.
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'pgfeed reads its tables only under READ COMMITTED'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'call it outside a REPEATABLE READ or SERIALIZABLE transaction';
    END IF;
    IF NOT EXISTS (SELECT FROM pg_class WHERE oid = p_source) THEN
        RAISE EXCEPTION 'table % was dropped: detach it (SELECT pgfeed.detach(%, %))', p_source::oid, quote_literal(p_feed),
                        p_source::oid
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    EXECUTE format('LOCK TABLE %s IN %s MODE', p_source,
                   CASE WHEN (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN 'SHARE UPDATE EXCLUSIVE'
                        ELSE 'ACCESS SHARE' END);
    PERFORM pgfeed._require_plannable(p_source, p_feed);
END
$$;
COMMENT ON FUNCTION pgfeed._lock_source(regclass, text) IS
    'locks an attached table against anything that changes how a query on it is planned, and checks that planning '
    'one runs no one''s code; fails (lock_not_available) when someone holds it longer than half a second';

CREATE OR REPLACE FUNCTION pgfeed._read_content(p_source pgfeed.content_source, p_item_type regtype, p_ids text[],
                                                p_after text DEFAULT NULL, p_limit integer DEFAULT NULL,
                                                OUT ids text[], OUT texts text[], OUT created timestamptz[],
                                                OUT eligible boolean[], OUT errors text[], OUT attributes jsonb[],
                                                OUT last_key text)
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
SET constraint_exclusion = off  -- planning would fold the CHECK constraints of partitions
AS $$
DECLARE
    v_feed text;
BEGIN
    -- Content rows by key (p_ids), or the page of p_limit rows after a key in key order.
    v_feed := (SELECT name FROM pgfeed.feed_config WHERE feed_id = p_source.feed_id);
    BEGIN
        PERFORM pgfeed._lock_source(p_source.source, v_feed);
        PERFORM pgfeed._require_source(p_source.source, p_source.source_name, p_source.watched, v_feed);
        IF p_ids IS NOT NULL THEN
            EXECUTE format('SELECT r.* FROM pgfeed._evaluate_rows($2, ARRAY(SELECT t FROM %s t WHERE t.%I = ANY ($1::%s[]))) AS r',
                           p_source.source, p_source.id_column, p_item_type)
               INTO ids, texts, created, eligible, errors, attributes USING p_ids, p_source;
        ELSE
            EXECUTE format('SELECT r.* FROM pgfeed._evaluate_rows($2, ARRAY(SELECT t FROM %1$s t WHERE $1 IS NULL OR t.%2$I > $1::%3$s '
                           'ORDER BY t.%2$I LIMIT %4$s)) AS r',
                           p_source.source, p_source.id_column, p_item_type, p_limit)
               INTO ids, texts, created, eligible, errors, attributes USING p_after, p_source;
            last_key := ids[cardinality(ids)];  -- the rows keep their order
        END IF;
        RAISE SQLSTATE 'PF001';  -- read: the lock goes (pgfeed._lock_source)
    EXCEPTION WHEN SQLSTATE 'PF001' THEN
        NULL;
    END;
END
$$;
COMMENT ON FUNCTION pgfeed._read_content(pgfeed.content_source, regtype, text[], text, integer) IS
    'content rows by key, or a page of them after a key, once the table is locked and checked: keys, texts, times, '
    'eligibility, the errors of rows the expressions failed on, and the page''s last key';

CREATE OR REPLACE FUNCTION pgfeed._content_problem(p_feed pgfeed.feed_config) RETURNS text
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
    SELECT coalesce(
        (SELECT coalesce(pgfeed._source_problem(s.source, s.source_name, s.watched, p_feed.name),
                         pgfeed._planning_problem(s.source, p_feed.name))
           FROM pgfeed.content_source s WHERE s.feed_id = p_feed.feed_id),
        (SELECT p FROM pgfeed.interaction_source s
           CROSS JOIN LATERAL coalesce(pgfeed._source_problem(s.source, s.source_name, s.watched, p_feed.name),
                                       pgfeed._planning_problem(s.source, p_feed.name)) AS p
          WHERE s.feed_id = p_feed.feed_id AND p IS NOT NULL
          ORDER BY s.source_id LIMIT 1))
$$;
COMMENT ON FUNCTION pgfeed._content_problem(pgfeed.feed_config) IS
    'what keeps a feed from reading its tables now (pgfeed._source_problem of each), or NULL';

CREATE OR REPLACE FUNCTION pgfeed._require_readable(p_feed pgfeed.feed_config) RETURNS void
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $$
DECLARE
    v_problem text;
BEGIN
    PERFORM pgfeed._content_source(p_feed);
    v_problem := pgfeed._content_problem(p_feed);
    IF v_problem IS NOT NULL THEN
        RAISE EXCEPTION 'feed "%" cannot read its tables: %', p_feed.name, v_problem
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
END
$$;
COMMENT ON FUNCTION pgfeed._require_readable(pgfeed.feed_config) IS
    'fails with the problem (and its fix) when a feed has no content table or cannot read its tables as attached';

CREATE OR REPLACE FUNCTION pgfeed._feeds_fault(p_sqlstate text) RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path FROM CURRENT
AS $$
    -- Not the transaction's (serialization failures, deadlocks: class 40) nor the server's (out of memory or
    -- shared memory, shutdown, I/O, internal errors: 53, 57, 58, XX): those are raised as they are.
    SELECT left(p_sqlstate, 2) NOT IN ('40', '53', '57', '58', 'XX')
$$;
COMMENT ON FUNCTION pgfeed._feeds_fault(text) IS
    'whether an error a trigger met is the feed''s to record (a table changed, an expression failed), not the '
    'transaction''s or the server''s';

CREATE OR REPLACE FUNCTION pgfeed._stand_aside(p_feed_id integer, p_feed text, p_operation text, p_table name,
                                               p_error text) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $$
BEGIN
    PERFORM pgfeed._record_problem(p_feed_id, p_error);
    RAISE WARNING 'pgfeed: feed "%" did not follow this % on %: %', p_feed, p_operation, p_table, p_error
        USING HINT = 'the rows are written; pgfeed.status() shows the problem, and a worker catches up once it is fixed';
END
$$;
COMMENT ON FUNCTION pgfeed._stand_aside(integer, text, text, name, text) IS
    'what a trigger does with a fault of the feed''s: the statement goes on, the problem is recorded and warned of';

CREATE OR REPLACE FUNCTION pgfeed._record_problem(p_feed_id integer, p_problem text) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $$
BEGIN
    -- Append-only, and once while it lasts: writers that meet the problem at
    -- the same time never wait on each other or fail to serialize.
    INSERT INTO pgfeed.feed_problem (feed_id, problem)
    SELECT p_feed_id, p_problem
     WHERE NOT EXISTS (SELECT FROM pgfeed.feed_problem p WHERE p.feed_id = p_feed_id AND p.problem = p_problem);
END
$$;
COMMENT ON FUNCTION pgfeed._record_problem(integer, text) IS
    'records that a feed missed changes of its tables and why: workers catch up once the tables are readable again';
CREATE OR REPLACE FUNCTION pgfeed._create_similarity_indexes(p_table text) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $$
BEGIN
    -- m = 8 links a node instead of pgvector's default 16: measured (bench/README), it halves the
    -- cost of an insert (0.95 to 0.42 ms a row for 5,000 real vectors), which the sync trigger pays
    -- on top of the model, and the feed keeps its recall (the tiers' searches are iterative).
    FOR v_tier IN 0 .. pgfeed._popularity_tiers() - 1 LOOP
        EXECUTE format('CREATE INDEX ON %s USING hnsw (embedding @vector@.vector_cosine_ops) WITH (m = 8) WHERE tier = %s',
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
            embedding   @vector@.vector(%3$s),
            text_hash   text,
            created_at  timestamptz,
            model       text,
            error       text,
            embedded_at timestamptz,
            tier        smallint NOT NULL DEFAULT 0,  -- pgfeed._popularity_tier of its like count
            attributes  jsonb  -- the row's filter and group columns: {"column": value}
        );
        CREATE INDEX ON %1$s (created_at);
        CREATE INDEX ON %1$s (item_id) WHERE error IS NOT NULL;  -- the failed items, few (status, retry, item_status)
        CREATE INDEX ON %1$s USING gin (attributes jsonb_path_ops) WHERE attributes IS NOT NULL;
        COMMENT ON TABLE %1$s IS %4$L;
        $ddl$, p_table, p_item_type, p_dimensions, p_comment);
    PERFORM pgfeed._create_similarity_indexes(p_table);
END
$$;
COMMENT ON FUNCTION pgfeed._create_item_store(text, regtype, integer, text) IS
    'creates an item store: one row an item, its vector (an HNSW index a like-count tier), text hash, time, '
    'model label, error (its failed items indexed), tier and attributes (filter and group columns, GIN-indexed)';

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
    -- Only when the tier changes: twice in the life of an item with a hundred
    -- likes. The conditions are the tiers' bounds written out: a call of
    -- pgfeed._popularity_tier there would be set up again for every like.
    EXECUTE format($ddl$
        CREATE OR REPLACE TRIGGER pgfeed_tier_insert AFTER INSERT ON %1$s FOR EACH ROW
            WHEN (NEW.popularity > %3$s) EXECUTE FUNCTION pgfeed._tier_trigger(%2$s);
        CREATE OR REPLACE TRIGGER pgfeed_tier_update AFTER UPDATE OF popularity ON %1$s FOR EACH ROW
            WHEN (%4$s) EXECUTE FUNCTION pgfeed._tier_trigger(%2$s);
        $ddl$, pgfeed._item_popularity(p_feed_id), p_feed_id, pgfeed._tier_most_likes(0),
        (SELECT string_agg(format('(OLD.popularity > %1$s) <> (NEW.popularity > %1$s)', pgfeed._tier_most_likes(t)), ' OR ')
           FROM generate_series(0, pgfeed._popularity_tiers() - 2) AS t));
END
$$;
COMMENT ON FUNCTION pgfeed._create_tier_triggers(integer) IS
    'creates (or replaces) the triggers that keep the item store''s like-count tiers in step with the like counts';

CREATE OR REPLACE FUNCTION pgfeed._require_unique_key(p_table regclass, p_column name) RETURNS void
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $$
BEGIN
    -- pgfeed keeps one item a key: a key two rows share would make an insert
    -- collide in the item store and a delete remove an item that still exists.
    IF NOT EXISTS (SELECT FROM pg_index i
                    WHERE i.indrelid = p_table AND i.indisunique AND i.indpred IS NULL AND i.indnkeyatts = 1
                      AND i.indkey[0] = pgfeed._column_number(p_table, p_column))
       OR NOT (SELECT attnotnull FROM pg_attribute WHERE attrelid = p_table AND attname = p_column) THEN
        RAISE EXCEPTION 'column %.% is not a unique key: pgfeed needs one item a key', p_table, quote_ident(p_column)
            USING ERRCODE = 'invalid_table_definition',
                  HINT = format('use the primary key, or a column with a unique index of its own and NOT NULL '
                                '(ALTER TABLE %s ADD UNIQUE (%I), ALTER %2$I SET NOT NULL)', p_table, p_column);
    END IF;
END
$$;
COMMENT ON FUNCTION pgfeed._require_unique_key(regclass, name) IS
    'fails with a clear message unless the column alone is a NOT NULL unique key of the table';

CREATE OR REPLACE FUNCTION pgfeed._require_plannable(p_table regclass, p_feed text) RETURNS void
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $$
DECLARE
    v_problem text := pgfeed._planning_problem(p_table, p_feed);
BEGIN
    IF v_problem IS NOT NULL THEN
        RAISE EXCEPTION USING MESSAGE = v_problem, ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
END
$$;
COMMENT ON FUNCTION pgfeed._require_plannable(regclass, text) IS
    'fails, before anything is attached, when pgfeed could not read the table without running someone''s code';

CREATE OR REPLACE FUNCTION pgfeed._require_table(p_table regclass) RETURNS void
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $$
BEGIN
    -- A view or a foreign table runs its owner's query or wrapper when pgfeed reads it.
    IF (SELECT relkind FROM pg_class WHERE oid = p_table) NOT IN ('r', 'p') THEN
        RAISE EXCEPTION '% is not a table', p_table
            USING ERRCODE = 'wrong_object_type', HINT = 'attach the table the rows are written to';
    END IF;
END
$$;
COMMENT ON FUNCTION pgfeed._require_table(regclass) IS 'fails with a clear message unless the relation is a table';

CREATE OR REPLACE FUNCTION pgfeed._content_columns(p_table regclass, p_id_column name, p_text text,
                                                   p_created_at_column name, p_condition text, p_pure boolean)
RETURNS smallint[]
LANGUAGE sql VOLATILE
SET search_path FROM CURRENT
AS $$
    SELECT pgfeed._expression_columns(p_table, p_text, 'text', 'text', p_pure)
           || coalesce(pgfeed._expression_columns(p_table, p_condition, 'boolean', 'condition', p_pure), '{}')
           || pgfeed._column_number(p_table, p_id_column) || pgfeed._column_number(p_table, p_created_at_column)
$$;
COMMENT ON FUNCTION pgfeed._content_columns(regclass, name, text, name, text, boolean) IS
    'checks a content table''s text expression and condition; returns every column the feed reads';

CREATE OR REPLACE FUNCTION pgfeed.attach_content(
    feed text,
    source regclass,
    id_column name,
    text text,
    created_at_column name,
    condition text DEFAULT NULL,
    backfill boolean DEFAULT true,
    filter_columns name[] DEFAULT NULL,
    group_column name DEFAULT NULL,
    _caller text DEFAULT pgfeed._caller())
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path FROM CURRENT
AS $$
DECLARE
    v_caller oid := pgfeed._admin(_caller);
    v_feed pgfeed.feed_config := pgfeed._owned_feed(feed, v_caller);
    v_item_kind regtype;
    v_store text := pgfeed._item_store(v_feed.feed_id);
    v_columns smallint[];
    v_column name;
    -- the same table again: its definition changes in place (a renamed column)
    v_again boolean := EXISTS (SELECT FROM pgfeed.content_source s
                                WHERE s.feed_id = v_feed.feed_id AND s.source = attach_content.source);
BEGIN
    IF NOT v_again AND EXISTS (SELECT 1 FROM pgfeed.content_source s WHERE s.feed_id = v_feed.feed_id) THEN
        RAISE EXCEPTION 'feed "%" already has a content table', feed
            USING ERRCODE = 'duplicate_object',
                  HINT = format('detach it first: SELECT pgfeed.detach(%L)', feed);
    END IF;
    PERFORM pgfeed._require_table(source);
    PERFORM pgfeed._require_owned_table(source, v_caller);
    PERFORM pgfeed._require_plannable(source, feed);
    v_item_kind := pgfeed._key_column(source, id_column, 'an item');
    IF v_again AND v_item_kind <> v_feed.item_type THEN
        RAISE EXCEPTION 'column %.% holds % keys but the items of feed "%" have % keys', source, quote_ident(id_column),
                        v_item_kind, feed, v_feed.item_type
            USING ERRCODE = 'datatype_mismatch',
                  HINT = format('detach it first, which drops its items: SELECT pgfeed.detach(%L)', feed);
    END IF;
    PERFORM pgfeed._require_unique_key(source, id_column);
    IF NOT pgfeed._time_type(pgfeed._column_type(source, created_at_column)) THEN
        RAISE EXCEPTION 'column %.% has type %, which pgfeed cannot read as a time', source, quote_ident(created_at_column),
                        pgfeed._column_type(source, created_at_column)
            USING ERRCODE = 'datatype_mismatch', HINT = 'use a timestamptz, timestamp or date column';
    END IF;
    v_columns := pgfeed._content_columns(source, id_column, attach_content.text, created_at_column, condition,
                                         NOT pgfeed._is_superuser(v_caller));
    PERFORM pgfeed._require_built_in_columns(source, pgfeed._watched(source, v_columns), feed);
    -- filter and group columns: copied into the item store as they are
    FOR v_column IN SELECT DISTINCT c FROM unnest(filter_columns || group_column) AS c WHERE c IS NOT NULL LOOP
        IF pgfeed._column_number(source, v_column) IS NULL THEN
            RAISE EXCEPTION 'table % has no column %', source, quote_ident(v_column)
                USING ERRCODE = 'undefined_column', HINT = 'filter_columns and group_column name columns of the content table';
        END IF;
        IF pgfeed._column_type(source, v_column) NOT IN ('text'::regtype, 'character varying'::regtype, 'smallint'::regtype,
                                                         'integer'::regtype, 'bigint'::regtype, 'boolean'::regtype,
                                                         'uuid'::regtype) THEN
            RAISE EXCEPTION 'column %.% has type %: a filter or group column is text, varchar, an integer, boolean or uuid',
                            source, quote_ident(v_column), pgfeed._column_type(source, v_column)
                USING ERRCODE = 'datatype_mismatch',
                      HINT = 'add a generated column of one of those types (ALTER TABLE ... ADD COLUMN ... GENERATED ALWAYS AS (...) STORED) and use that';
        END IF;
        v_columns := v_columns || pgfeed._column_number(source, v_column);
    END LOOP;

    IF v_again THEN
        -- As attaching does (CREATE TRIGGER takes this lock): open writers
        -- are waited for and new ones wait, so that every row is read either
        -- by the catch-up below or by the triggers with the new definition.
        EXECUTE format('LOCK TABLE %s IN SHARE ROW EXCLUSIVE MODE', attach_content.source);
        UPDATE pgfeed.content_source s
           SET id_column = attach_content.id_column, text_expression = attach_content.text,
               created_at_column = attach_content.created_at_column, condition = attach_content.condition,
               source_name = attach_content.source::text, watched = pgfeed._watched(attach_content.source, v_columns),
               filter_columns = attach_content.filter_columns, group_column = attach_content.group_column
         WHERE s.feed_id = v_feed.feed_id;
        -- partitions whose triggers pgfeed._follow_partitions could not make
        PERFORM pgfeed._create_triggers(source, pgfeed._content_trigger_prefix(v_feed.feed_id), 'pgfeed._content_trigger',
                                        v_feed.feed_id);
        -- Items keep their vectors: only rows whose text changed reach the
        -- model (now in a sync feed, through the workers otherwise).
        RETURN pgfeed._catch_up(v_feed, CASE WHEN backfill AND v_feed.mode = 'sync' THEN 'now' ELSE 'queue' END);
    END IF;
    PERFORM pgfeed._create_item_store(v_store, v_item_kind, v_feed.dimensions,
                                      format('pgfeed item store of feed %s', v_feed.feed_id));
    EXECUTE format($ddl$
        CREATE TABLE %1$s (
            item_id    %2$s PRIMARY KEY,
            popularity bigint NOT NULL DEFAULT 0
        );
        CREATE INDEX ON %1$s (popularity);
        COMMENT ON TABLE %1$s IS %3$L;
        $ddl$, pgfeed._item_popularity(v_feed.feed_id), v_item_kind, format('pgfeed like counts of feed %s', v_feed.feed_id));
    PERFORM pgfeed._create_tier_triggers(v_feed.feed_id);

    INSERT INTO pgfeed.content_source (feed_id, source, id_column, text_expression, created_at_column, condition,
                                       source_name, watched, filter_columns, group_column)
    VALUES (v_feed.feed_id, source, id_column, attach_content.text, created_at_column, condition,
            source::text, pgfeed._watched(source, v_columns), filter_columns, group_column);
    UPDATE pgfeed.feed_config SET item_type = v_item_kind WHERE feed_id = v_feed.feed_id;
    PERFORM pgfeed._grant_readers(v_feed.feed_id);
    PERFORM pgfeed._create_triggers(source, pgfeed._content_trigger_prefix(v_feed.feed_id),
                                    'pgfeed._content_trigger', v_feed.feed_id);
    IF backfill THEN
        RETURN pgfeed._reembed(pgfeed._feed(feed), false);  -- as attached
    END IF;
    RETURN 0;
END
$$;
COMMENT ON FUNCTION pgfeed.attach_content(text, regclass, name, text, name, text, boolean, name[], name, text) IS
    'attaches a content table to a feed: id_column its unique key, text an SQL expression over a row, condition a '
    'boolean one (both built-in SQL only); filter_columns what feed() may filter on, group_column what '
    'max_per_group caps (an author); existing rows are embedded unless backfill is false; returns how many were '
    'embedded. The feed''s own table again: its definition changes, items keep their vectors where the text did not '
    'change (the fix for a renamed column), what the triggers missed is caught up, and it returns how many rows it read';

-- SECURITY DEFINER, so that a role writing the content table needs no
-- privilege on pgfeed's tables. It runs nothing the table's owner or the
-- writer controls: it checks that the key and time columns are still the
-- built-in types they were attached with, casts only those, and hands the
-- rows to the feed's reader, which evaluates the text and condition as the
-- table's owner. A failure of pgfeed's own is recorded, never the writer's
-- problem: the statement's rows stay, and a worker catches up later.
CREATE OR REPLACE FUNCTION pgfeed._content_trigger() RETURNS trigger
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path FROM CURRENT
AS $$
DECLARE
    v_source pgfeed.content_source;
    v_feed pgfeed.feed_config;
    v_gone text[];
    v_ids text[]; v_texts text[]; v_created timestamptz[]; v_eligible boolean[]; v_errors text[];
    v_attributes jsonb[];
    v_typed boolean;
BEGIN
    -- A bulk load may skip pgfeed on purpose; pgfeed.reembed() catches up.
    IF current_setting('pgfeed.skip_content_triggers', true) = 'on' THEN
        RETURN NULL;
    END IF;
    -- only for the table the feed is attached to (not a trigger someone else made with this function)
    SELECT * INTO v_source FROM pgfeed.content_source
     WHERE feed_id = TG_ARGV[0]::integer AND pgfeed._attached_to(TG_RELID, source);
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    SELECT * INTO STRICT v_feed FROM pgfeed.feed_config WHERE feed_id = v_source.feed_id;
    BEGIN
        PERFORM pgfeed._require_source(v_source.source, v_source.source_name, v_source.watched, v_feed.name);
        IF TG_OP = 'TRUNCATE' AND TG_RELID = v_source.source THEN
            PERFORM pgfeed._remove_all_items(v_source.feed_id);
            RETURN NULL;
        ELSIF TG_OP = 'TRUNCATE' THEN
            -- the item store does not know which partition an item came from: a worker reads the table again
            PERFORM pgfeed._record_problem(v_source.feed_id, format('partition %s of %s was truncated: a worker reads '
                                                                   'it again', TG_RELID::regclass, v_source.source));
            RETURN NULL;
        END IF;
        -- The rows' own types, in a statement of its own. No row, nothing to do:
        -- and nothing to plan, for planning the statements below on a column
        -- an ALTER retyped would fold the owner's cast (a review became
        -- superuser through a statement of no rows).
        EXECUTE pgfeed._row_types_sql(v_source.watched, CASE TG_OP WHEN 'DELETE' THEN 'pgfeed_old' ELSE 'pgfeed_new' END)
           INTO v_typed;
        IF v_typed IS NULL THEN
            RETURN NULL;
        END IF;
        PERFORM pgfeed._require_row_types(v_typed, v_source.source, v_feed.name);
        IF TG_OP IN ('UPDATE', 'DELETE') THEN
            -- keys that no longer exist (deleted rows, or updates of the key itself)
            EXECUTE format('SELECT array_agg(k::text) FROM (SELECT %1$I FROM pgfeed_old %2$s) AS g(k)',
                           v_source.id_column,
                           CASE WHEN TG_OP = 'UPDATE' THEN format('EXCEPT SELECT %I FROM pgfeed_new', v_source.id_column) END)
               INTO v_gone;
            PERFORM pgfeed._remove_items(v_source.feed_id, v_gone);
        END IF;
        IF TG_OP IN ('INSERT', 'UPDATE') THEN
            -- (transition tables are visible only here, not in the functions this one calls)
            -- (rows of the table written to, which may be a partition with columns in another order)
            EXECUTE format('SELECT * FROM pgfeed._evaluate_rows($1, ARRAY(SELECT t::%s FROM pgfeed_new t))', TG_RELID::regclass)
               INTO v_ids, v_texts, v_created, v_eligible, v_errors, v_attributes USING v_source;
            PERFORM pgfeed._sync_items(v_source.feed_id, v_ids, v_texts, v_created, v_eligible,
                                       CASE v_feed.mode WHEN 'async' THEN 'queue' ELSE 'now' END, v_errors, v_attributes);
        END IF;
    EXCEPTION WHEN OTHERS THEN
        IF NOT pgfeed._feeds_fault(SQLSTATE) THEN
            RAISE;
        END IF;
        PERFORM pgfeed._stand_aside(v_source.feed_id, v_feed.name, TG_OP, TG_TABLE_NAME, SQLERRM);
    END;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION pgfeed._content_trigger() IS
    'statement-level trigger on a content table: one batched embedding call a statement (sync feeds), '
    'or one queue insert (async feeds); never fails the writer''s statement for pgfeed''s sake';

CREATE OR REPLACE FUNCTION pgfeed._sync_items(
    p_feed_id integer, p_ids text[], p_texts text[], p_created timestamptz[], p_eligible boolean[],
    p_embed text DEFAULT 'now', p_errors text[] DEFAULT NULL, p_attributes jsonb[] DEFAULT NULL)
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
    v_errors text[];
    v_attributes jsonb[];
    v_encodable integer[];
    v_vectors @vector@.vector[];
    v_error text;
    v_current record;
    v_keep boolean[];  -- the rows to store (NULL: all)
BEGIN
    IF p_ids IS NULL THEN
        RETURN 0;
    END IF;
    SELECT * INTO STRICT v_feed FROM pgfeed.feed_config WHERE feed_id = p_feed_id;

    -- rows whose condition is not true leave the feed; rows the expressions
    -- failed on stay, as failed items
    p_errors := coalesce(p_errors, array_fill(NULL::text, ARRAY[cardinality(p_ids)]));
    v_removed := ARRAY(SELECT id FROM unnest(p_ids, p_eligible, p_errors) AS u(id, ok, err) WHERE NOT ok AND err IS NULL);
    PERFORM pgfeed._remove_items(p_feed_id, v_removed);

    -- Eligible rows with new or changed text need the model. The others at
    -- most moved in time or changed their filter and group columns; the text
    -- hash is what makes re-writes free.
    EXECUTE format($q$
        WITH u AS (
            SELECT id::%2$s AS item_id, body, created, err, attributes
              FROM unnest($1, $2, $3, $4, $5, $6) AS u(id, body, created, ok, err, attributes) WHERE ok OR err IS NOT NULL
        ), moved AS (
            UPDATE %1$s s SET created_at = u.created, attributes = u.attributes
              FROM u WHERE s.item_id = u.item_id AND s.text_hash = md5(u.body) AND u.err IS NULL
                       AND (s.created_at IS DISTINCT FROM u.created OR s.attributes IS DISTINCT FROM u.attributes)
        )
        SELECT array_agg(u.item_id::text), array_agg(u.body), array_agg(u.created), array_agg(u.err),
               array_agg(u.attributes)
          FROM u LEFT JOIN %1$s s ON s.item_id = u.item_id
         WHERE s.item_id IS NULL OR s.text_hash IS DISTINCT FROM md5(u.body) OR u.err IS NOT NULL
        $q$, v_store, v_feed.item_type)
       INTO v_ids, v_texts, v_created, v_errors, v_attributes
       USING p_ids, p_texts, p_created, p_eligible, p_errors,
             coalesce(p_attributes, array_fill(NULL::jsonb, ARRAY[cardinality(p_ids)]));
    IF v_ids IS NULL THEN
        RETURN 0;
    END IF;
    IF p_embed = 'queue' THEN
        -- only rows the expressions failed on are stored now, as failed items
        PERFORM pgfeed._enqueue(p_feed_id, ARRAY(SELECT v_ids[i] FROM generate_subscripts(v_ids, 1) AS i
                                                  WHERE v_errors[i] IS NULL));
        v_keep := ARRAY(SELECT v_errors[i] IS NOT NULL FROM generate_subscripts(v_ids, 1) AS i ORDER BY i);
        IF NOT true = ANY (v_keep) THEN
            RETURN 0;
        END IF;
    END IF;

    -- One model call for the statement (the encoder batches inside). NULL or
    -- blank texts cannot be embedded: they are kept as failed items. When the
    -- encoder fails, the whole batch is kept as failed and queued for a worker
    -- so that the user's write commits; a worker ('raise') lets it propagate.
    v_encodable := ARRAY(SELECT i FROM generate_subscripts(v_texts, 1) AS i
                          WHERE v_texts[i] ~ '[^[:space:]]' AND v_errors[i] IS NULL AND coalesce(v_keep[i], true));
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
        v_current := pgfeed._read_content(v_source, v_feed.item_type, v_ids);
        v_keep := ARRAY(
            SELECT v_errors[i] IS NOT NULL
                   OR EXISTS (SELECT FROM unnest(v_current.ids, v_current.texts, v_current.eligible, v_current.errors)
                                          AS c(id, body, ok, err)
                               WHERE c.id = v_ids[i] AND c.body IS NOT DISTINCT FROM v_texts[i] AND c.ok AND c.err IS NULL)
              FROM generate_subscripts(v_ids, 1) AS i ORDER BY i);
    END IF;
    EXECUTE format($q$
        WITH stored AS (
        INSERT INTO %1$s AS s (item_id, embedding, text_hash, created_at, model, error, embedded_at, tier, attributes)
        SELECT u.id::%2$s, e.embedding,
               CASE WHEN e.embedding IS NOT NULL OR u.body !~ '[^[:space:]]' THEN md5(u.body) END,
               u.created, $6,
               CASE WHEN e.embedding IS NOT NULL THEN NULL
                    WHEN $9[u.ord] IS NOT NULL THEN 'text expression or condition failed: ' || $9[u.ord]
                    WHEN u.body IS NULL THEN 'text expression is NULL'
                    WHEN u.body !~ '[^[:space:]]' THEN 'text expression is empty'
                    ELSE $5 END,
               now(),
               coalesce(pgfeed._popularity_tier((SELECT p.popularity FROM %3$s p WHERE p.item_id = u.id::%2$s)), 0),
               $10[u.ord]
          FROM unnest($1, $2, $3) WITH ORDINALITY AS u(id, body, created, ord)
          LEFT JOIN unnest($4, $7) AS e(ord, embedding) ON e.ord = u.ord
         WHERE coalesce($8[u.ord], true)
        ON CONFLICT (item_id) DO UPDATE
           SET embedding = EXCLUDED.embedding, text_hash = EXCLUDED.text_hash, created_at = EXCLUDED.created_at,
               model = EXCLUDED.model, error = EXCLUDED.error, embedded_at = EXCLUDED.embedded_at,
               attributes = EXCLUDED.attributes
        RETURNING item_id
        )
        -- Every stored item has a like count, so the popularity stream reaches
        -- all of them. Only a missing one is made: ON CONFLICT alone would wait
        -- for a like's open transaction that changed the count (and a like that
        -- moves the item to another tier waits for this one: a deadlock).
        INSERT INTO %3$s (item_id)
        SELECT s.item_id FROM stored s WHERE NOT EXISTS (SELECT FROM %3$s p WHERE p.item_id = s.item_id)
        ON CONFLICT (item_id) DO NOTHING
        $q$, v_store, v_feed.item_type, pgfeed._item_popularity(p_feed_id))
       USING v_ids, v_texts, v_created, v_encodable, v_error, pgfeed._model_label(v_feed.model, v_feed.dimensions),
             v_vectors, v_keep, v_errors, v_attributes;

    -- Earlier queued work on them is done; but a worker read its rows a while
    -- ago, and what was queued since (an edit it did not see) must stay: it
    -- removes only what it claimed.
    IF v_error IS NULL AND p_embed = 'now' THEN
        PERFORM pgfeed._dequeue(p_feed_id, v_ids);
    END IF;
    PERFORM pgfeed._refresh_profiles_of_items(p_feed_id, v_ids);
    RETURN coalesce(cardinality(v_vectors), 0);
END
$$;
COMMENT ON FUNCTION pgfeed._sync_items(integer, text[], text[], timestamptz[], boolean[], text, text[], jsonb[]) IS
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
    -- no row is left to embed; rows a worker holds are left to it (it finds their rows gone, and drops them):
    -- waiting for them could deadlock with the worker, which waits for the table
    DELETE FROM pgfeed.embedding_queue q
     WHERE q.seq IN (SELECT w.seq FROM pgfeed.embedding_queue w WHERE w.feed_id = p_feed_id FOR UPDATE SKIP LOCKED);
    IF (SELECT user_type FROM pgfeed.feed_config WHERE feed_id = p_feed_id) IS NOT NULL THEN
        EXECUTE format('DELETE FROM %s', pgfeed._profile(p_feed_id));  -- no item left to be similar to
    END IF;
END
$$;
COMMENT ON FUNCTION pgfeed._remove_all_items(integer) IS
    'empties a feed''s item store, and its queue of work (its content table was truncated)';

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
    v_page record;
BEGIN
    -- keyset paging through the content table: resumable from any key
    v_page := pgfeed._read_content(pgfeed._content_source(p_feed), p_feed.item_type, NULL, p_after, p_size);
    rows := coalesce(cardinality(v_page.ids), 0);
    last_key := v_page.last_key;
    embedded := pgfeed._sync_items(p_feed.feed_id, v_page.ids, v_page.texts, v_page.created, v_page.eligible, 'now',
                                   v_page.errors, v_page.attributes);
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
    BEGIN
        PERFORM pgfeed._lock_source(v_source.source, p_feed.name);
        PERFORM pgfeed._require_source(v_source.source, v_source.source_name, v_source.watched, p_feed.name);
        EXECUTE format('SELECT array_agg(s.item_id::text) FROM %s s WHERE NOT EXISTS (SELECT FROM %s r WHERE r.%I = s.item_id)',
                       pgfeed._item_store(p_feed.feed_id), v_source.source, v_source.id_column)
           INTO v_gone;
        RAISE SQLSTATE 'PF001';  -- read: the lock goes (pgfeed._lock_source)
    EXCEPTION WHEN SQLSTATE 'PF001' THEN
        NULL;
    END;
    PERFORM pgfeed._remove_items(p_feed.feed_id, v_gone);
END
$$;
COMMENT ON FUNCTION pgfeed._remove_gone_items(pgfeed.feed_config) IS
    'removes items whose content row is gone (deleted while the triggers were skipped)';

CREATE OR REPLACE FUNCTION pgfeed.reembed(feed text, force boolean DEFAULT false,
                                          _caller text DEFAULT pgfeed._caller()) RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path FROM CURRENT
AS $$
BEGIN
    RETURN pgfeed._reembed(pgfeed._owned_feed(feed, pgfeed._admin(_caller)), force);
END
$$;
COMMENT ON FUNCTION pgfeed.reembed(text, boolean, text) IS
    'brings a feed''s item store up to date with its content table in one transaction (backfill, retry of failures; '
    'force re-embeds everything); returns how many items were embedded. `pgfeed reembed` does it in batches';

CREATE OR REPLACE FUNCTION pgfeed._reembed(p_feed pgfeed.feed_config, p_force boolean) RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $$
DECLARE
    v_page record;
    v_after text;
    v_embedded bigint := 0;
BEGIN
    PERFORM pgfeed._require_readable(p_feed);
    IF p_force THEN
        EXECUTE format('UPDATE %s SET text_hash = NULL', pgfeed._item_store(p_feed.feed_id));
    END IF;
    PERFORM pgfeed._remove_gone_items(p_feed);
    LOOP
        v_page := pgfeed._reembed_page(p_feed, v_after, 512);
        EXIT WHEN v_page.rows = 0;
        v_embedded := v_embedded + v_page.embedded;
        v_after := v_page.last_key;
    END LOOP;
    RETURN v_embedded;
END
$$;
COMMENT ON FUNCTION pgfeed._reembed(pgfeed.feed_config, boolean) IS 'reembed() of a feed the caller manages';

CREATE OR REPLACE FUNCTION pgfeed.reembed_batch(
    feed text, size integer DEFAULT 512, restart boolean DEFAULT false, force boolean DEFAULT false,
    _caller text DEFAULT pgfeed._caller())
RETURNS TABLE (rows integer, embedded integer, resumed_after text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path FROM CURRENT
AS $$
DECLARE
    v_feed pgfeed.feed_config := pgfeed._owned_feed(feed, pgfeed._admin(_caller));
    v_page record;
BEGIN
    PERFORM pgfeed._require_readable(v_feed);
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
COMMENT ON FUNCTION pgfeed.reembed_batch(text, integer, boolean, boolean, text) IS
    'one page of a resumable reembed, to be called (each in its own transaction) until it returns 0 rows: embeds the '
    'content rows after the last committed key and records the new one; restart starts over, force re-embeds all';

-- Feeds attached before the like-count tiers existed (migration 004) get their triggers here.
SELECT pgfeed._create_tier_triggers(feed_id) FROM pgfeed.content_source;

-- Feeds attached before 0.3.0: record the columns they read.
UPDATE pgfeed.content_source s
   SET source_name = s.source::text,
       watched = pgfeed._watched(s.source, pgfeed._content_columns(s.source, s.id_column, s.text_expression,
                                                                   s.created_at_column, s.condition, false))
 WHERE s.source_name IS NULL AND EXISTS (SELECT FROM pg_class c WHERE c.oid = s.source);
