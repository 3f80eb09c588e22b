-- Internal helpers shared by the public calls: loading the Python side,
-- looking up feeds, naming per-feed tables, checking keys and expressions.

-- SECURITY DEFINER: it takes no input, and reads the path that only the
-- installing superuser can write, so that a granted role's feed() and embed()
-- can load pgfeed without reading pgfeed.setting itself.
CREATE OR REPLACE FUNCTION pgfeed._python_path() RETURNS void
LANGUAGE plpython3u VOLATILE SECURITY DEFINER
SET search_path FROM CURRENT
AS $python$
# The only place that extends the server's import path: from pgfeed.setting,
# which only the installing superuser can write. Prepended, so that the
# project's environment wins over system site-packages.
import site, sys
if "pgfeed.path" in GD:
    return
setting = {r["name"]: r["value"] for r in plpy.execute("SELECT name, value FROM pgfeed.setting")}
before = list(sys.path)
for path in setting.get("python_path", "").split(":"):
    if path:
        site.addsitedir(path)
sys.path[:] = [p for p in sys.path if p not in before] + before
import pgfeed  # (light: the modules the shims need are imported by them)
pgfeed.check_version(setting.get("version"))
GD["pgfeed.path"] = True
$python$;
COMMENT ON FUNCTION pgfeed._python_path() IS
    'makes the pgfeed Python package importable in this backend (path fixed at install time)';

CREATE OR REPLACE FUNCTION pgfeed._python_init() RETURNS void
LANGUAGE plpython3u VOLATILE
SET search_path FROM CURRENT
AS $python$
plpy.execute("SELECT pgfeed._python_path()")
import pgfeed.server  # (numpy, the encoders: what embedding needs)
GD["pgfeed"] = pgfeed.server
$python$;
COMMENT ON FUNCTION pgfeed._python_init() IS
    'loads pgfeed.server, which the embedding functions call, into this backend';

-- SECURITY DEFINER: no input; any role may know the version, not the settings.
CREATE OR REPLACE FUNCTION pgfeed.version() RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE SECURITY DEFINER
SET search_path FROM CURRENT
AS $$ SELECT value FROM pgfeed.setting WHERE name = 'version' $$;
COMMENT ON FUNCTION pgfeed.version() IS 'version of the installed pgfeed bundle';

-- SECURITY DEFINER: it compares a text with the feed names and answers only
-- whether that one exists, so that a role refused a feed learns nothing more.
CREATE OR REPLACE FUNCTION pgfeed._feed_exists(p_name text) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path FROM CURRENT
AS $$ SELECT EXISTS (SELECT FROM pgfeed.feed_config WHERE name = p_name) $$;
COMMENT ON FUNCTION pgfeed._feed_exists(text) IS 'whether a feed of that name exists, granted or not';

CREATE OR REPLACE FUNCTION pgfeed._feed(p_name text) RETURNS pgfeed.feed_config
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $$
DECLARE
    v_feed pgfeed.feed_config;
BEGIN
    -- row-level security shows a role only the feeds granted to it
    SELECT * INTO v_feed FROM pgfeed.feed_config WHERE name = p_name;
    IF FOUND THEN
        RETURN v_feed;
    END IF;
    IF pgfeed._feed_exists(p_name) THEN
        RAISE EXCEPTION 'permission denied for feed "%"', p_name
            USING ERRCODE = 'insufficient_privilege',
                  HINT = format('its owner or a superuser grants it with SELECT pgfeed.grant_feed(%L, %L)', p_name, current_user);
    END IF;
    RAISE EXCEPTION 'unknown feed "%"', p_name
        USING ERRCODE = 'undefined_object',
              HINT = coalesce('feeds you may read: ' || (SELECT string_agg(name, ', ' ORDER BY name) FROM pgfeed.feed_config),
                              'no feed is granted to you')
                     || format('; create it with SELECT pgfeed.create_feed(%L)', p_name);
END
$$;
COMMENT ON FUNCTION pgfeed._feed(text) IS
    'the configuration of a feed by name, if it exists and the role may read it; otherwise a clear error';

-- Per-feed tables are named after the feed's id, so names never need quoting.
CREATE OR REPLACE FUNCTION pgfeed._item_store(p_feed_id integer) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path FROM CURRENT
AS $$ SELECT 'pgfeed.item_store_' || p_feed_id $$;
COMMENT ON FUNCTION pgfeed._item_store(integer) IS 'name of a feed''s item store: id, embedding, text hash, time, model';

CREATE OR REPLACE FUNCTION pgfeed._next_item_store(p_feed_id integer) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path FROM CURRENT
AS $$ SELECT 'pgfeed.item_store_' || p_feed_id || '_next' $$;
COMMENT ON FUNCTION pgfeed._next_item_store(integer) IS
    'name of the item store a model switch fills with the next model''s vectors';

-- Popularity lives apart from the item store: a like then never writes a new
-- version of an item's row, which would add an entry to its HNSW index. Only
-- the item's like-count tier (below) is kept in the store.
CREATE OR REPLACE FUNCTION pgfeed._item_popularity(p_feed_id integer) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path FROM CURRENT
AS $$ SELECT 'pgfeed.item_popularity_' || p_feed_id $$;
COMMENT ON FUNCTION pgfeed._item_popularity(integer) IS
    'name of a feed''s table of like counts: one row for every item in the store or liked';

-- Like-count tiers by powers of ten: 0-8, 9-98, 99 and more likes. Each tier
-- of an item store has its own HNSW index, so that the feed reads the nearest
-- popular items apart from the nearest unpopular ones. With the default
-- saturation (1000) their popularity is at most 0.32, 0.67 and 1: a tier of
-- 999 and more likes would bound nothing tighter, and each tier costs the feed
-- an HNSW search.
CREATE OR REPLACE FUNCTION pgfeed._popularity_tiers() RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path FROM CURRENT
AS $$ SELECT 3 $$;
COMMENT ON FUNCTION pgfeed._popularity_tiers() IS 'how many like-count tiers there are (pgfeed._popularity_tier)';

CREATE OR REPLACE FUNCTION pgfeed._popularity_tier(p_likes bigint) RETURNS smallint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path FROM CURRENT
AS $$ SELECT CASE WHEN p_likes >= 99 THEN 2 WHEN p_likes >= 9 THEN 1 ELSE 0 END::smallint $$;
COMMENT ON FUNCTION pgfeed._popularity_tier(bigint) IS
    'an item''s like-count tier (0 to 2: 0-8, 9-98, 99+ likes); the item store keeps it, and has an HNSW index a tier';

CREATE OR REPLACE FUNCTION pgfeed._tier_most_likes(p_tier integer) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path FROM CURRENT
AS $$ SELECT CASE WHEN p_tier < pgfeed._popularity_tiers() - 1 THEN (10::bigint ^ (p_tier + 1))::bigint - 2 END $$;
COMMENT ON FUNCTION pgfeed._tier_most_likes(integer) IS
    'the most likes an item of a tier can have (NULL: no limit)';

CREATE OR REPLACE FUNCTION pgfeed._interaction_log(p_feed_id integer) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path FROM CURRENT
AS $$ SELECT 'pgfeed.interaction_log_' || p_feed_id $$;
COMMENT ON FUNCTION pgfeed._interaction_log(integer) IS 'name of a feed''s log of interactions, mirrored from the attached tables';

CREATE OR REPLACE FUNCTION pgfeed._interaction_follower(p_source_id integer) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path FROM CURRENT
AS $$ SELECT 'pgfeed._follow_interactions_' || p_source_id $$;
COMMENT ON FUNCTION pgfeed._interaction_follower(integer) IS
    'name of the trigger function of an interaction table (pgfeed._create_interaction_follower)';

CREATE OR REPLACE FUNCTION pgfeed._popularity_delta(p_feed_id integer) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path FROM CURRENT
AS $$ SELECT 'pgfeed.popularity_delta_' || p_feed_id $$;
COMMENT ON FUNCTION pgfeed._popularity_delta(integer) IS
    'name of a feed''s like-count changes not yet folded into its like counts (pgfeed._fold_popularity)';

CREATE OR REPLACE FUNCTION pgfeed._profile_dirty(p_feed_id integer) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path FROM CURRENT
AS $$ SELECT 'pgfeed.profile_dirty_' || p_feed_id $$;
COMMENT ON FUNCTION pgfeed._profile_dirty(integer) IS
    'name of a feed''s users whose likes changed since their profile was stored';

CREATE OR REPLACE FUNCTION pgfeed._profile(p_feed_id integer) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path FROM CURRENT
AS $$ SELECT 'pgfeed.profile_' || p_feed_id $$;
COMMENT ON FUNCTION pgfeed._profile(integer) IS 'name of a feed''s table of user profile vectors';

CREATE OR REPLACE FUNCTION pgfeed._key_kind(p_type regtype) RETURNS regtype
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path FROM CURRENT
AS $$
    SELECT CASE
        WHEN p_type IN ('smallint'::regtype, 'integer'::regtype, 'bigint'::regtype) THEN 'bigint'::regtype
        WHEN p_type = 'uuid'::regtype THEN 'uuid'::regtype
    END
$$;
COMMENT ON FUNCTION pgfeed._key_kind(regtype) IS
    'how pgfeed stores a key column of this type (bigint for any integer, uuid), or NULL if unsupported';

CREATE OR REPLACE FUNCTION pgfeed._time_type(p_type regtype) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path FROM CURRENT
AS $$ SELECT p_type IN ('timestamp with time zone'::regtype, 'timestamp without time zone'::regtype, 'date'::regtype) $$;
COMMENT ON FUNCTION pgfeed._time_type(regtype) IS
    'whether pgfeed reads a column of this type as a time (built-in types only: their casts run no one''s code)';

CREATE OR REPLACE FUNCTION pgfeed._column_type(p_table regclass, p_column name) RETURNS regtype
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $$
DECLARE
    v_type regtype;
BEGIN
    SELECT atttypid INTO v_type FROM pg_attribute
     WHERE attrelid = p_table AND attname = p_column AND attnum > 0 AND NOT attisdropped;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'column "%" does not exist in table %', p_column, p_table
            USING ERRCODE = 'undefined_column',
                  HINT = 'its columns are: ' || (SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum)
                                                  FROM pg_attribute WHERE attrelid = p_table AND attnum > 0 AND NOT attisdropped);
    END IF;
    RETURN v_type;
END
$$;
COMMENT ON FUNCTION pgfeed._column_type(regclass, name) IS 'type of a column, or an error naming the missing column';

CREATE OR REPLACE FUNCTION pgfeed._key_column(p_table regclass, p_column name, p_role text) RETURNS regtype
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $$
DECLARE
    v_type regtype := pgfeed._column_type(p_table, p_column);
BEGIN
    IF pgfeed._key_kind(v_type) IS NULL THEN
        RAISE EXCEPTION 'column %.% has type %, which pgfeed cannot use as % key', p_table, quote_ident(p_column), v_type, p_role
            USING ERRCODE = 'datatype_mismatch', HINT = 'keys must be integer, bigint or uuid';
    END IF;
    RETURN pgfeed._key_kind(v_type);
END
$$;
COMMENT ON FUNCTION pgfeed._key_column(regclass, name, text) IS 'the key kind of a key column, or an error saying why it cannot be a key';

CREATE OR REPLACE FUNCTION pgfeed._expression_columns(p_table regclass, p_expression text, p_type regtype, p_what text,
                                                      p_pure boolean)
RETURNS smallint[]
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
SET standard_conforming_strings = on  -- as pgfeed._evaluate_rows reads it, whatever the session says
AS $$
DECLARE
    v_view text := 'pgfeed_expression_' || pg_backend_pid();
    v_columns smallint[];
    v_foreign text;
BEGIN
    IF p_expression IS NULL THEN
        RETURN NULL;  -- no condition
    END IF;
    -- It is written into statements between parentheses (here, and where it
    -- is evaluated): it may not close them or end the statement.
    v_foreign := pgfeed._expression_problem(p_expression);
    IF v_foreign IS NOT NULL THEN
        RAISE EXCEPTION '% expression % is not one SQL expression: it has %', p_what, quote_literal(p_expression),
                        v_foreign
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = format('it is an SQL expression of type %s over the columns of %s', p_type, p_table);
    END IF;
    -- A view is parsed, never run: the expression is checked, and what it
    -- uses found in pg_depend, without evaluating anything. It is parsed with
    -- the search_path it is evaluated with (pgfeed._evaluate_rows). A
    -- condition must be boolean itself (as in WHERE), not merely castable.
    BEGIN
        PERFORM set_config('search_path', 'pg_catalog, pg_temp', true);
        EXECUTE CASE WHEN p_type = 'boolean'::regtype
                     THEN format('CREATE TEMP VIEW %I AS SELECT FROM %s WHERE (%s)', v_view, p_table, p_expression)
                     ELSE format('CREATE TEMP VIEW %I AS SELECT (%s)::%s FROM %s', v_view, p_expression, p_type, p_table) END;
    EXCEPTION WHEN OTHERS THEN
        RAISE EXCEPTION '% expression % is not valid on table %: %', p_what, quote_literal(p_expression), p_table, SQLERRM
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = format('it must be an SQL expression of type %s over the columns of %s, with PostgreSQL''s '
                                'built-in functions and operators', p_type, p_table);
    END;
    -- pgfeed evaluates it with its own rights, so it may use nothing anyone
    -- but the installer could have made or could change: only what is in
    -- pg_catalog, and the table's columns.
    SELECT o.identity || ', which is not built into PostgreSQL' INTO v_foreign
      FROM pg_rewrite w JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = w.oid
     CROSS JOIN LATERAL pg_identify_object(d.refclassid, d.refobjid, 0) AS o
      LEFT JOIN pg_cast c ON d.refclassid = 'pg_cast'::regclass AND c.oid = d.refobjid
     WHERE w.ev_class = ('pg_temp.' || quote_ident(v_view))::regclass
       AND NOT (d.refclassid = 'pg_class'::regclass AND d.refobjid IN (p_table, w.ev_class))
       AND o.schema IS DISTINCT FROM 'pg_catalog'
       AND NOT (c.oid IS NOT NULL AND (c.castfunc = 0 OR (SELECT pronamespace FROM pg_proc WHERE oid = c.castfunc)
                                                         = 'pg_catalog'::regnamespace))
     LIMIT 1;
    -- Nor a function that acts beyond its arguments on the values it is given
    -- (set_config, pg_read_file, lo_import: volatile ones), runs SQL given as
    -- text (query_to_xml and its family) or returns a set; nor a whole-row
    -- reference, which reads every column, also those pgfeed does not watch,
    -- whose types (and casts) a table owner may make its own. A feed owner
    -- who is not a superuser (p_pure) may use only what computes a value from
    -- the row alone, so that it does the same with anyone's rights: no
    -- subquery (the catalogs), no current_user or setting, no function that
    -- reads more than its arguments (pgfeed._pure_stable).
    WITH tree AS (
        SELECT w.ev_action::text AS t FROM pg_rewrite w WHERE w.ev_class = ('pg_temp.' || quote_ident(v_view))::regclass
    ), called AS (
        -- (built-in functions are pinned: pg_depend records none; the parsed rule names each one it calls)
        SELECT DISTINCT p.oid, p.proname, p.provolatile, p.proretset
          FROM tree CROSS JOIN LATERAL regexp_matches(tree.t, ':(?:funcid|opfuncid) (\d+)', 'g') AS m
          JOIN pg_proc p ON p.oid = m[1]::oid
    )
    SELECT coalesce(v_foreign, (
        SELECT format('function %s, which %s', c.oid::regprocedure,
                      CASE WHEN c.provolatile = 'v' THEN 'is volatile' WHEN c.proretset THEN 'returns a set'
                           ELSE 'runs SQL given as text' END)
          FROM called c WHERE c.provolatile = 'v' OR c.proname LIKE '%\_to\_xml%' OR c.proretset LIMIT 1), (
        SELECT 'a whole-row reference to the table: name its columns'
          FROM tree WHERE tree.t ~ '\{VAR :varno \d+ :varattno 0 '), (
        SELECT CASE m[1] WHEN 'SUBLINK' THEN 'a subquery'
                         WHEN 'SQLVALUEFUNCTION' THEN 'current_user, current_date or the like'
                         ELSE 'an aggregate, window function or sequence' END
          FROM tree CROSS JOIN LATERAL regexp_matches(
                   tree.t, '\{(SUBLINK|SQLVALUEFUNCTION|AGGREF|WINDOWFUNC|GROUPINGFUNC|NEXTVALUEEXPR)\M', 'g') AS m
         WHERE p_pure LIMIT 1), (
        SELECT format('function %s, which reads more than its arguments', c.oid::regprocedure)
          FROM called c WHERE p_pure AND c.provolatile <> 'i' AND NOT pgfeed._pure_stable(c.proname) LIMIT 1))
      INTO v_foreign;
    IF v_foreign IS NOT NULL THEN
        EXECUTE format('DROP VIEW pg_temp.%I', v_view);
        RAISE EXCEPTION '% expression % uses %', p_what, quote_literal(p_expression), v_foreign
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = format('pgfeed evaluates it with its own rights, so it may use only built-in functions, operators '
                                'and types that act on their arguments alone; compute anything else in a generated column '
                                'of %s (ALTER TABLE %1$s ADD COLUMN ... GENERATED ALWAYS AS (...) STORED) and use that '
                                'column', p_table);
    END IF;
    SELECT array_agg(DISTINCT d.refobjsubid::smallint) INTO v_columns
      FROM pg_rewrite w JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = w.oid
     WHERE w.ev_class = ('pg_temp.' || quote_ident(v_view))::regclass AND d.refobjid = p_table AND d.refobjsubid > 0;
    EXECUTE format('DROP VIEW pg_temp.%I', v_view);
    RETURN coalesce(v_columns, '{}');
END
$$;
COMMENT ON FUNCTION pgfeed._expression_columns(regclass, text, regtype, text, boolean) IS
    'checks that an expression is valid SQL of a type over a table''s rows that uses only what is built in (pure: '
    'and computes from the row alone), without running it; returns the columns it reads';

CREATE OR REPLACE FUNCTION pgfeed._expression_problem(p_expression text) RETURNS text
LANGUAGE plpython3u IMMUTABLE STRICT
SET search_path FROM CURRENT
AS $python$
if "pgfeed" not in GD:
    plpy.execute("SELECT pgfeed._python_init()")
return GD["pgfeed"].expression_problem(p_expression)
$python$;
COMMENT ON FUNCTION pgfeed._expression_problem(text) IS
    'what keeps a text from being one SQL expression that stays inside the parentheses it is written between, or NULL';

CREATE OR REPLACE FUNCTION pgfeed._pure_stable(p_function name) RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT
SET search_path FROM CURRENT
AS $$
    -- Built-in functions marked STABLE only because the output of their
    -- arguments' types, or the time zone, is a setting: they read nothing else.
    SELECT p_function IN ('concat', 'concat_ws', 'format', 'anytextcat', 'textanycat', 'to_char', 'array_to_string',
                          'to_json', 'to_jsonb', 'json_build_object', 'jsonb_build_object', 'json_build_array',
                          'jsonb_build_array', 'date_part', 'extract', 'date_trunc', 'timezone', 'date', 'timestamp',
                          'timestamptz', 'to_timestamp', 'to_date')
           OR p_function ~ '^(date|timestamp|timestamptz)_(eq|ne|lt|le|gt|ge|cmp|pl|mi)(_|$)'
$$;
COMMENT ON FUNCTION pgfeed._pure_stable(name) IS
    'whether a built-in STABLE function computes from its arguments alone (and the session''s time zone and formats)';

CREATE OR REPLACE FUNCTION pgfeed._require_built_in_columns(p_table regclass, p_watched jsonb, p_feed text) RETURNS void
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $$
DECLARE
    v_column jsonb;
BEGIN
    -- A column of a type of someone's own (a domain, an enum, a composite)
    -- could bring its own casts and operators into the expressions.
    FOR v_column IN SELECT * FROM jsonb_array_elements(p_watched) LOOP
        IF (SELECT t.typnamespace FROM pg_type t WHERE t.oid = (v_column->>'type')::regtype) <> 'pg_catalog'::regnamespace THEN
            RAISE EXCEPTION 'column %.% has type %, which is not built into PostgreSQL', p_table,
                            quote_ident(v_column->>'name'), v_column->>'type'
                USING ERRCODE = 'datatype_mismatch',
                      HINT = format('feed "%s" reads it with pgfeed''s own rights; use a column of a built-in type '
                                    '(a generated column casting this one, for example)', p_feed);
        END IF;
    END LOOP;
END
$$;
COMMENT ON FUNCTION pgfeed._require_built_in_columns(regclass, jsonb, text) IS
    'fails with a clear message unless every column a feed reads has a built-in type';

CREATE OR REPLACE FUNCTION pgfeed._watched(p_table regclass, p_columns smallint[]) RETURNS jsonb
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
    SELECT coalesce(jsonb_agg(jsonb_build_object('attnum', a.attnum, 'name', a.attname, 'type', a.atttypid::regtype::text)
                              ORDER BY a.attnum), '[]')
      FROM pg_attribute a WHERE a.attrelid = p_table AND a.attnum = ANY (p_columns) AND NOT a.attisdropped
$$;
COMMENT ON FUNCTION pgfeed._watched(regclass, smallint[]) IS
    'the columns a feed reads as they are now, recorded at attach: [{"attnum", "name", "type"}]';

CREATE OR REPLACE FUNCTION pgfeed._column_number(p_table regclass, p_column name) RETURNS smallint
LANGUAGE sql STABLE STRICT
SET search_path FROM CURRENT
AS $$ SELECT attnum FROM pg_attribute WHERE attrelid = p_table AND attname = p_column AND attnum > 0 AND NOT attisdropped $$;
COMMENT ON FUNCTION pgfeed._column_number(regclass, name) IS 'the attnum of a column';

CREATE OR REPLACE FUNCTION pgfeed._planning_problem(p_source regclass, p_feed text) RETURNS text
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
    -- Planning a query on a table runs some of its owner's definitions: an
    -- immutable function in an index's expression or predicate, a CHECK
    -- constraint (partitions, inheritance), extended statistics or a
    -- partition key is folded with its constant arguments, with the rights of
    -- whoever plans. pgfeed plans queries on attached tables with its own
    -- (workers, reembed), so they may hold no function but built-in ones, and
    -- no inheritance child (a child could be anything).
    WITH tables AS (
        SELECT relid FROM pg_partition_tree(p_source) UNION SELECT p_source
    ), trees(what, tree) AS (
        SELECT format('index %s', i.indexrelid::regclass), coalesce(i.indexprs::text, '') || coalesce(i.indpred::text, '')
          FROM pg_index i WHERE i.indrelid IN (SELECT relid FROM tables)
        UNION ALL
        SELECT format('constraint %I of %s', c.conname, c.conrelid::regclass), c.conbin::text
          FROM pg_constraint c WHERE c.conrelid IN (SELECT relid FROM tables) AND c.conbin IS NOT NULL
        UNION ALL
        SELECT format('statistics %s', x.stxname), x.stxexprs::text
          FROM pg_statistic_ext x WHERE x.stxrelid IN (SELECT relid FROM tables) AND x.stxexprs IS NOT NULL
        UNION ALL
        SELECT format('the partition key of %s', k.partrelid::regclass), k.partexprs::text
          FROM pg_partitioned_table k WHERE k.partrelid IN (SELECT relid FROM tables) AND k.partexprs IS NOT NULL
    ), called AS (
        SELECT t.what, m[1]::oid AS fn FROM trees t CROSS JOIN LATERAL regexp_matches(t.tree, ':(?:funcid|opfuncid) (\d+)', 'g') AS m
        UNION ALL
        SELECT t.what, o.oprcode::oid FROM trees t CROSS JOIN LATERAL regexp_matches(t.tree, ':opno (\d+)', 'g') AS m
          JOIN pg_operator o ON o.oid = m[1]::oid
    )
    SELECT coalesce(
        (SELECT format('%s calls %s, which is not built in: pgfeed would run it with its own rights when it reads the '
                       'table; drop it, or detach the feed (SELECT pgfeed.detach(%L))', c.what, p.oid::regprocedure, p_feed)
           FROM called c JOIN pg_proc p ON p.oid = c.fn
          WHERE p.pronamespace <> 'pg_catalog'::regnamespace LIMIT 1),
        (SELECT format('%s inherits from %s: pgfeed reads attached tables only with their partitions; detach the feed '
                       '(SELECT pgfeed.detach(%L))', h.inhrelid::regclass, h.inhparent::regclass, p_feed)
           FROM pg_inherits h JOIN pg_class c ON c.oid = h.inhrelid
          WHERE h.inhparent IN (SELECT relid FROM tables) AND NOT c.relispartition LIMIT 1),
        -- a foreign partition is read through its wrapper, with the reader's user mapping
        (SELECT format('partition %s of %s is a foreign table: pgfeed would read it through its wrapper, with its own '
                       'rights; detach that partition, or the feed (SELECT pgfeed.detach(%L))', t.relid::regclass,
                       p_source, p_feed)
           FROM tables t JOIN pg_class c ON c.oid = t.relid WHERE c.relkind = 'f' LIMIT 1))
$$;
COMMENT ON FUNCTION pgfeed._planning_problem(regclass, text) IS
    'what of a table''s definitions would run someone''s code when pgfeed plans a query on it (a function in an '
    'index, a constraint, statistics or a partition key; an inheritance child; a foreign partition, read through '
    'its wrapper), with the fix; NULL if nothing';

CREATE OR REPLACE FUNCTION pgfeed._require_row_types(p_typed boolean, p_source regclass, p_feed text)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $$
BEGIN
    -- p_typed: whether rows have the types their table's columns were
    -- attached with (pgfeed._row_types_sql), taken with pg_typeof: the table
    -- as it is now, where the catalogs a REPEATABLE READ transaction reads may
    -- predate an ALTER.
    IF NOT p_typed THEN
        RAISE EXCEPTION 'columns of table % changed since this transaction began (a column renamed, dropped or retyped): '
                        'change them back, or detach the feed and attach it again (SELECT pgfeed.detach(%))',
                        p_source, quote_literal(p_feed)
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
END
$$;
COMMENT ON FUNCTION pgfeed._require_row_types(boolean, regclass, text) IS
    'fails when a trigger''s rows have other types than the feed''s columns were attached with';

CREATE OR REPLACE FUNCTION pgfeed._typed_sql(p_watched jsonb) RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$
    SELECT string_agg(format('pg_typeof(t.%I) = %L::regtype', c->>'name', c->>'type'), ' AND ')
      FROM jsonb_array_elements(p_watched) AS w(c)
$$;
COMMENT ON FUNCTION pgfeed._typed_sql(jsonb) IS
    'the condition that a row t has, in each of a feed''s columns, the type the column was attached with';

CREATE OR REPLACE FUNCTION pgfeed._row_types_sql(p_watched jsonb, p_from text) RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $$
    -- (no row: NULL, nothing to object to)
    SELECT format('SELECT bool_and(%s) FROM %s AS t', pgfeed._typed_sql(p_watched), p_from)
$$;
COMMENT ON FUNCTION pgfeed._row_types_sql(jsonb, text) IS
    'the query that tells whether rows (a trigger''s transition table) have the types a feed''s columns were attached with';

CREATE OR REPLACE FUNCTION pgfeed._source_problem(p_source regclass, p_name text, p_watched jsonb, p_feed text)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $$
DECLARE
    v_kind "char";
    v_column jsonb;
    v_now record;
    v_fix text := format('or attach the table again with its columns as they are (a content table: SELECT '
                         'pgfeed.attach_content(%L, ...), which keeps the vectors of unchanged texts; a like table: '
                         'SELECT pgfeed.detach(%1$L, %s), then pgfeed.attach_interactions(%1$L, ...))', p_feed, p_source);
BEGIN
    -- Checked before pgfeed reads a row: what it casts and compares must
    -- still be the built-in types it was attached with.
    SELECT relkind INTO v_kind FROM pg_class WHERE oid = p_source;
    IF NOT FOUND THEN
        -- (a dropped table has no name to pass to detach, its number does)
        RETURN format('table %s was dropped: detach it (SELECT pgfeed.detach(%L, %s))', coalesce(p_name, p_source::oid::text),
                      p_feed, p_source::oid);
    END IF;
    IF v_kind NOT IN ('r', 'p') THEN
        RETURN format('%s is no longer a table: make it one again, %s', p_source, v_fix);
    END IF;
    FOR v_column IN SELECT * FROM jsonb_array_elements(p_watched) LOOP
        SELECT a.attname, a.atttypid::regtype::text AS type, a.attisdropped INTO v_now
          FROM pg_attribute a WHERE a.attrelid = p_source AND a.attnum = (v_column->>'attnum')::smallint;
        IF NOT FOUND OR v_now.attisdropped THEN
            RETURN format('column %I of table %s was dropped: add it back, %s', v_column->>'name', p_source, v_fix);
        ELSIF v_now.attname <> v_column->>'name' THEN
            RETURN format('column %I of table %s was renamed to %I: rename it back, %s',
                          v_column->>'name', p_source, v_now.attname, v_fix);
        ELSIF v_now.type <> v_column->>'type' THEN
            RETURN format('column %I of table %s changed type from %s to %s: change it back, %s',
                          v_column->>'name', p_source, v_column->>'type', v_now.type, v_fix);
        END IF;
    END LOOP;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION pgfeed._source_problem(regclass, text, jsonb, text) IS
    'what keeps pgfeed from reading an attached table as it was attached (dropped, no longer a table, a column '
    'renamed, dropped or retyped), with the fix; NULL when nothing does';

CREATE OR REPLACE FUNCTION pgfeed._require_source(p_source regclass, p_name text, p_watched jsonb, p_feed text)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $$
DECLARE
    v_problem text := pgfeed._source_problem(p_source, p_name, p_watched, p_feed);
BEGIN
    IF v_problem IS NOT NULL THEN
        RAISE EXCEPTION USING MESSAGE = v_problem, ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
END
$$;
COMMENT ON FUNCTION pgfeed._require_source(regclass, text, jsonb, text) IS
    'fails with pgfeed._source_problem''s message when an attached table cannot be read as it was attached';

CREATE OR REPLACE FUNCTION pgfeed._key_text(p_value anyelement, p_kind regtype, p_feed text, p_role text) RETURNS text
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
AS $$
DECLARE
    v_given regtype := pg_typeof(p_value);
    v_text text;
BEGIN
    -- The type is checked before the value is touched: a caller's own type
    -- could bring its own cast to text. Only built-in types are cast.
    IF v_given NOT IN ('smallint'::regtype, 'integer'::regtype, 'bigint'::regtype, 'uuid'::regtype,
                       'text'::regtype, 'character varying'::regtype) THEN
        RAISE EXCEPTION 'feed "%" has % keys of type %; got a value of type %', p_feed, p_role,
                        coalesce(p_kind, 'bigint'::regtype), v_given
            USING ERRCODE = 'datatype_mismatch', HINT = 'pass an integer, bigint, uuid or text value';
    END IF;
    IF p_value IS NULL OR p_kind IS NULL OR pgfeed._key_kind(v_given) = p_kind THEN
        RETURN p_value::text;
    END IF;
    IF v_given IN ('text'::regtype, 'character varying'::regtype) THEN
        BEGIN
            EXECUTE format('SELECT $1::%s::text', p_kind) INTO v_text USING p_value::text;
            RETURN v_text;
        EXCEPTION WHEN invalid_text_representation OR numeric_value_out_of_range THEN
            NULL;  -- reported below
        END;
    END IF;
    RAISE EXCEPTION 'feed "%" has % keys of type %; got % of type %', p_feed, p_role, p_kind, quote_literal(p_value::text),
                    v_given
        USING ERRCODE = 'datatype_mismatch', HINT = format('pass a %s value', p_kind);
END
$$;
COMMENT ON FUNCTION pgfeed._key_text(anyelement, regtype, text, text) IS
    'a user or item key as text after checking, by its type alone, that it fits the feed''s key type';

CREATE OR REPLACE FUNCTION pgfeed._scale(p_vector @vector@.vector, p_factor float8) RETURNS @vector@.vector
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path FROM CURRENT
AS $$
    SELECT CASE WHEN p_factor = 1 THEN p_vector
                ELSE array_fill(p_factor::real, ARRAY[@vector@.vector_dims(p_vector)])::@vector@.vector OPERATOR(@vector@.*) p_vector END
$$;
COMMENT ON FUNCTION pgfeed._scale(@vector@.vector, float8) IS 'a vector multiplied by a scalar (an interaction''s weight)';

CREATE OR REPLACE FUNCTION pgfeed._model_label(p_model text, p_dimensions integer) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path FROM CURRENT
AS $$ SELECT p_model || '/' || p_dimensions $$;
COMMENT ON FUNCTION pgfeed._model_label(text, integer) IS
    'what is recorded on every stored vector and profile: the model spec (name and variant) and its dimension';
