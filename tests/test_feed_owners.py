"""Feeds managed by roles that are not superusers (SECURITY.md, "Feed owners"): a superuser lets a role create
feeds once (pgfeed.grant_admin); it then manages only its own feeds, attaches only its own tables, names only
allowed models, and writes only expressions that compute from the row alone. Each refusal changes nothing."""

import re

import psycopg
import pytest

import pgfeed
from conftest import HASHING, fresh, make_tables

SETUP_CALLS = {
    "alter_feed": "SELECT pgfeed.alter_feed(%s, weight_freshness => 0.9)",
    "grant_feed": "SELECT pgfeed.grant_feed(%s, current_user::regrole)",
    "revoke_feed": "SELECT pgfeed.revoke_feed(%s, 'pgfeed_test_app')",
    "reembed": "SELECT pgfeed.reembed(%s, force => true)",
    "reembed_batch": "SELECT * FROM pgfeed.reembed_batch(%s)",
    "retry": "SELECT pgfeed.retry(%s)",
    "detach": "SELECT pgfeed.detach(%s)",
    "drop_feed": "SELECT pgfeed.drop_feed(%s)",
}


@pytest.fixture
def owner(conn, make_role):
    """(role, connection): a role that is not a superuser, let create feeds, owning a post and a like table."""
    role, role_dsn = make_role()
    conn.execute(f"GRANT CREATE ON SCHEMA public TO {role}")
    conn.execute("SELECT pgfeed.grant_admin(%s)", [role])
    conn.execute("SELECT pgfeed.allow_model(%s)", [HASHING])
    with psycopg.connect(role_dsn, autocommit=True) as session:
        yield role, session
    conn.execute("SELECT pgfeed.revoke_admin(%s)", [role])


def own_feed(session, **options):
    """A feed the session's role creates over tables it makes; returns (feed, post, like)."""
    post, like = make_tables(session, owner=None)
    feed = fresh("feed")
    session.execute("SELECT pgfeed.create_feed(%s, model => %s)", [feed, HASHING])
    session.execute(f"SELECT pgfeed.attach_content(%s, '{post}', 'id', $$concat_ws(' ', title, body)$$, "
                    "'created_at', condition => $$status = 'published' AND created_at < '2100-01-01'::date$$)", [feed])
    session.execute(f"SELECT pgfeed.attach_interactions(%s, '{like}', 'user_id', 'post_id')", [feed])
    return feed, post, like


def settings(conn, feed):
    return conn.execute("SELECT to_jsonb(c) - 'created_at' FROM pgfeed.feed_config c WHERE name = %s",
                        [feed]).fetchone()


def test_a_role_not_let_manage_feeds_is_told_what_a_superuser_runs(conn, make_role):
    role, role_dsn = make_role()
    with psycopg.connect(role_dsn, autocommit=True) as session:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match=f"role {role} may not manage feeds") as error:
            session.execute("SELECT pgfeed.create_feed('never', model => %s)", [HASHING])
    assert error.value.diag.message_hint == f"a superuser lets it, once: SELECT pgfeed.grant_admin('{role}')"
    assert not conn.execute("SELECT count(*) FROM pgfeed.feed_config WHERE name = 'never'").fetchone()[0]


def test_a_feed_owner_sets_up_reads_and_drops_its_feed(conn, owner):
    role, session = owner
    feed, post, like = own_feed(session)
    assert conn.execute("SELECT owner::regrole::text FROM pgfeed.feed_config WHERE name = %s",
                        [feed]).fetchone()[0] == role
    session.execute(f"INSERT INTO {post} (title, body, status) VALUES ('a', 'garden', 'published'), "
                    "('b', 'garden soil', 'published'), ('c', 'tax', 'draft'), ('d', 'bread', 'published')")
    session.execute(f"INSERT INTO {like} (user_id, post_id) VALUES (7, 1)")
    # its own reads: the feed holds the published posts the writes made, user 7's liked one left out
    published = {row[0] for row in session.execute(f"SELECT id FROM {post} WHERE status = 'published'")}
    assert {item.item_id for item in pgfeed.feed(session, feed, None, limit=10)} == published
    assert {item.item_id for item in pgfeed.feed(session, feed, 7, limit=10)} == published - {1}
    assert [s["feed"] for s in pgfeed.status(session)] == [feed]  # only its own feed
    for call in ("alter_feed", "grant_feed", "reembed", "reembed_batch", "retry"):
        session.execute(SETUP_CALLS[call], [feed])
    assert settings(conn, feed)[0]["weight_freshness"] == 0.9
    session.execute("SELECT pgfeed.drop_feed(%s)", [feed])
    assert settings(conn, feed) is None
    assert not conn.execute("SELECT count(*) FROM pg_trigger WHERE tgrelid = %s::regclass AND NOT tgisinternal",
                            [post]).fetchone()[0]


@pytest.mark.parametrize("call", sorted(SETUP_CALLS))
def test_a_feed_owner_cannot_touch_another_roles_feed(conn, owner, make_role, call):
    _, session = owner
    other, other_dsn = make_role()
    conn.execute(f"GRANT CREATE ON SCHEMA public TO {other}")
    conn.execute("SELECT pgfeed.grant_admin(%s)", [other])
    with psycopg.connect(other_dsn, autocommit=True) as other_session:
        feed, post, _ = own_feed(other_session)
        other_session.execute(f"INSERT INTO {post} (title, body) VALUES ('a', 'b')")
    before = settings(conn, feed)
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match=f'must be the owner of feed "{feed}"') as error:
        session.execute(SETUP_CALLS[call], [feed])
    assert error.value.diag.message_hint.startswith(f"it is {other}'s")
    assert settings(conn, feed) == before
    assert [s["items"] for s in pgfeed.status(conn) if s["feed"] == feed] == [1]
    conn.execute("SELECT pgfeed.revoke_admin(%s)", [other])


def test_retry_of_every_feed_is_of_the_callers_feeds(conn, owner):
    _, session = owner
    feed, post, _ = own_feed(session)
    session.execute(f"INSERT INTO {post} (title, body) VALUES ('', NULL)")  # concat_ws gives '': kept as failed
    theirs, their_post, _ = own_feed(conn)
    conn.execute(f"INSERT INTO {their_post} (title, body) VALUES ('', NULL)")
    assert session.execute("SELECT pgfeed.retry()").fetchone()[0] == 1  # its own failed item only
    queued = conn.execute("SELECT c.name FROM pgfeed.embedding_queue q JOIN pgfeed.feed_config c USING (feed_id) "
                          "WHERE c.name IN (%s, %s)", [feed, theirs]).fetchall()
    assert queued == [(feed,)]


def test_a_feed_owner_attaches_only_tables_whose_owners_privileges_it_has(conn, owner, make_role):
    role, session = owner
    feed = fresh("feed")
    session.execute("SELECT pgfeed.create_feed(%s, model => %s)", [feed, HASHING])
    post, _ = make_tables(conn, owner=None)  # the superuser's
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match=f"must be the owner of table public.{post}"):
        session.execute(f"SELECT pgfeed.attach_content(%s, '{post}', 'id', 'title', 'created_at')", [feed])
    team, _ = make_role("NOLOGIN")  # a group the role is a member of owns it: the role has its privileges
    conn.execute(f"ALTER TABLE {post} OWNER TO {team}; GRANT {team} TO {role}")
    session.execute(f"SELECT pgfeed.attach_content(%s, '{post}', 'id', 'title', 'created_at')", [feed])
    shared_post, shared_like = make_tables(conn, owner=team)
    conn.execute(f"GRANT SELECT, INSERT ON {shared_post}, {shared_like} TO {role}")
    conn.execute(f"REVOKE {team} FROM {role}")  # privileges on the tables are not ownership
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match=f"must be the owner of table public.{shared_like}"):
        session.execute(f"SELECT pgfeed.attach_interactions(%s, '{shared_like}', 'user_id', 'post_id')", [feed])
    assert not conn.execute("SELECT count(*) FROM pgfeed.interaction_source s JOIN pgfeed.feed_config c "
                            "USING (feed_id) WHERE c.name = %s", [feed]).fetchone()[0]


@pytest.mark.parametrize("where, expression, culprit", [
    ("text", "(SELECT rolpassword FROM pg_authid LIMIT 1)", "a subquery"),
    ("text", "title || current_user", "current_user, current_date or the like"),
    ("condition", "current_setting('data_directory') <> ''", "function current_setting(text)"),
    ("condition", "pg_has_role('postgres', 'USAGE')", "function pg_has_role(name,text)"),
    ("condition", "EXISTS (SELECT FROM pg_stat_activity)", "a subquery"),
    ("condition", "length(pg_read_file('/etc/hostname')) > 0", "function pg_read_file(text)"),
    ("weight", "length(current_schema)", "current_user, current_date or the like"),
    ("weight", "(SELECT count(*) FROM pg_class)::float8", "a subquery"),
], ids=["catalog read", "current_user", "a setting", "a role check", "activity", "a file", "current_schema",
        "count of catalog"])
def test_a_feed_owners_expressions_compute_from_the_row_alone(conn, owner, where, expression, culprit):
    _, session = owner
    post, like = make_tables(session, owner=None)
    feed = fresh("feed")
    session.execute("SELECT pgfeed.create_feed(%s, model => %s)", [feed, HASHING])
    text, condition = (expression, None) if where == "text" else ("title", expression if where == "condition" else None)
    call = f"SELECT pgfeed.attach_content(%s, '{post}', 'id', %s, 'created_at', condition => %s)"
    if where == "weight":
        session.execute(call, [feed, text, condition])
        call = f"SELECT pgfeed.attach_interactions(%s, '{like}', 'user_id', 'post_id', weight_expression => %s)"
        params = [feed, expression]
    else:
        params = [feed, text, condition]
    with pytest.raises(psycopg.errors.InvalidParameterValue, match=f"{where} expression .* uses {re.escape(culprit)}"):
        session.execute(call, params)
    # a superuser may still attach what pgfeed's own rules allow it (a catalog read, a stable function)
    if where == "text" and culprit == "a subquery":
        conn.execute(f"SELECT pgfeed.attach_content(%s, '{post}', 'id', %s, 'created_at')", [feed, expression])


def test_a_feed_owners_everyday_expressions_are_accepted_and_give_what_sql_gives(conn, owner):
    _, session = owner
    post, like = make_tables(session, owner=None)
    feed = fresh("feed")
    session.execute("SELECT pgfeed.create_feed(%s, model => %s)", [feed, HASHING])
    text = "format('%s: %s', upper(title), coalesce(body, '')) || ' ' || to_char(created_at, 'YYYY') || views"
    condition = "status IN ('published', 'featured') AND views >= 0 AND date_trunc('day', created_at) < now()::date + 1"
    session.execute(f"SELECT pgfeed.attach_content(%s, '{post}', 'id', %s, 'created_at', condition => %s)",
                    [feed, text, condition.replace("now()::date + 1", "'2100-01-01'::date")])
    session.execute(f"SELECT pgfeed.attach_interactions(%s, '{like}', 'user_id', 'post_id', "
                    "weight_expression => $$CASE WHEN extract(hour FROM created_at) >= 0 THEN 2.0 END$$)", [feed])
    session.execute(f"INSERT INTO {post} (title, body, status, views) VALUES ('a', 'x', 'published', 3), "
                    "('b', NULL, 'featured', 1), ('c', 'z', 'draft', 0)")
    session.execute(f"INSERT INTO {like} (user_id, post_id) VALUES (1, 1)")
    store = conn.execute("SELECT pgfeed._item_store(feed_id) FROM pgfeed.feed_config WHERE name = %s",
                         [feed]).fetchone()[0]
    expected = session.execute(f"SELECT id, {text} FROM {post} WHERE {condition} ORDER BY id").fetchall()
    assert [row[0] for row in expected] == [1, 2]
    for item_id, item_text in expected:  # each stored vector is the embedding of what SQL computes
        assert conn.execute(f"SELECT embedding = pgfeed.embed(%s, %s) FROM {store} WHERE item_id = %s",
                            [item_text, HASHING, item_id]).fetchone() == (True,)
    assert conn.execute(f"SELECT count(*) FROM {store}").fetchone()[0] == 2
    assert conn.execute(f"SELECT weight FROM pgfeed.interaction_log_{settings(conn, feed)[0]['feed_id']}"
                        ).fetchall() == [(2.0,)]


def test_a_feed_owner_names_only_packaged_and_allowed_models(conn, owner):
    _, session = owner
    for model in ("/etc", "pgfeed_test_encoders:FailingEncoder"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege,
                           match=f"model '{model}' is not allowed to feed owners that are not superusers"):
            session.execute("SELECT pgfeed.create_feed(%s, model => %s)", [fresh("feed"), model])
    feed = fresh("feed")
    session.execute("SELECT pgfeed.create_feed(%s)", [feed])  # the packaged default
    session.execute("SELECT pgfeed.alter_feed(%s, model => 'all-MiniLM-L6-v2:onnx-int8')", [feed])
    models = "SELECT model, next_model FROM pgfeed.feed_config WHERE name = %s"
    before = conn.execute(models, [feed]).fetchone()
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="is not allowed"):
        session.execute("SELECT pgfeed.alter_feed(%s, model => 'pgfeed_test_encoders:SlowEncoder')", [feed])
    assert conn.execute(models, [feed]).fetchone() == before


def test_who_calls_cannot_be_claimed(conn, owner):
    """The proof of who calls is a temporary table the caller's own default argument makes: a made-up name, a
    table of another name, and a superuser's proof left by hand in the session are all refused or gone."""
    _, session = owner
    theirs = fresh("feed")
    conn.execute("SELECT pgfeed.create_feed(%s, model => %s)", [theirs, HASHING])
    session.execute("CREATE TEMPORARY TABLE pgfeed_caller_0123456789abcdef0123456789abcdef ()")
    for proof in ("pgfeed_caller_0123456789abcdef0123456789abcdef", "x", None):
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match=f'must be the owner of feed "{theirs}"|'
                                                                       "pgfeed cannot tell who calls it"):
            session.execute("SELECT pgfeed.drop_feed(%s, _caller => %s)", [theirs, proof])
    with psycopg.connect(conn.info.dsn) as superuser:  # one transaction: BEGIN, a proof made by hand, SET ROLE
        proof = superuser.execute("SELECT pgfeed._caller()").fetchone()[0]
        superuser.commit()  # ON COMMIT DROP: it is gone
        superuser.execute(f"SET ROLE {owner[0]}")
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="pgfeed cannot tell who calls it"):
            superuser.execute("SELECT pgfeed.drop_feed(%s, _caller => %s)", [theirs, proof])
    assert settings(conn, theirs) is not None


def test_a_set_up_call_from_an_index_expression_cannot_act_as_whoever_maintains_the_table(conn, owner):
    """A table owner's index expression runs as the owner when a superuser (or autovacuum) rebuilds it, a
    security-restricted operation: a set-up call there cannot take the superuser for its caller."""
    role, session = owner
    theirs = fresh("feed")
    conn.execute("SELECT pgfeed.create_feed(%s, model => %s)", [theirs, HASHING])
    session.execute(f"""
        CREATE TABLE trap (v int);
        CREATE FUNCTION trap_drop(int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$
        BEGIN
            IF current_setting('pgfeed_test.armed', true) = 'on' THEN
                PERFORM pgfeed.drop_feed('{theirs}');
            END IF;
            RETURN $1;
        END $$;
        CREATE INDEX ON trap (trap_drop(v));
        INSERT INTO trap VALUES (1)""")
    conn.execute("SET pgfeed_test.armed = on")
    with pytest.raises(psycopg.errors.Error, match="cannot create temporary table within security-restricted"):
        conn.execute("REINDEX TABLE trap")
    conn.execute("RESET pgfeed_test.armed")
    assert settings(conn, theirs) is not None
    conn.execute("DROP TABLE trap")


@pytest.mark.parametrize("where, expression", [
    ("text", "body)::text FROM {post}; ALTER ROLE {role} SUPERUSER; SELECT (body"),
    ("text", "body) FROM {post}, pg_authid WHERE (true"),
    ("condition", "true) OR (SELECT true FROM pg_authid"),
    ("weight", "1)::float8 FROM {like}; ALTER ROLE {role} SUPERUSER; SELECT (1"),
    ("text", "body || E'\\'' || ')'"),
    ("text", "body /* ) */"),
    ("text", "$x$)$x$"),
    ("text", '"text"E\'\\\' || \')::text FROM {post}; ALTER ROLE {role} SUPERUSER; SELECT 1 --\''),
    ("weight", "length('\\') + length(') FROM {like}; ALTER ROLE {role} SUPERUSER; SELECT (1 --')"),
], ids=["statements", "from clause", "condition", "weight", "escape string", "comment", "dollar quote",
        "quoted name then E", "strings not standard"])
def test_an_expression_cannot_close_its_parentheses_or_end_the_statement(conn, owner, where, expression):
    """What the reviews of 0.5.0 found: pgfeed pasted the text between parentheses into a statement it ran with its
    own rights, so `body); ALTER ROLE ...` made a feed owner a superuser; so did an escape string after a quoted
    name, and a backslash in a session with standard_conforming_strings off. Each is refused before anything
    parses it."""
    role, session = owner
    session.execute("SET standard_conforming_strings = off")  # the writer's session may say so
    post, like = make_tables(session, owner=None)
    feed = fresh("feed")
    session.execute("SELECT pgfeed.create_feed(%s, model => %s)", [feed, HASHING])
    expression = expression.format(post=post, like=like, role=role)
    if where == "weight":
        session.execute(f"SELECT pgfeed.attach_content(%s, '{post}', 'id', 'title', 'created_at')", [feed])
        call = f"SELECT pgfeed.attach_interactions(%s, '{like}', 'user_id', 'post_id', weight_expression => %s)"
        params = [feed, expression]
    else:
        call = f"SELECT pgfeed.attach_content(%s, '{post}', 'id', %s, 'created_at', condition => %s)"
        params = [feed, expression, None] if where == "text" else [feed, "title", expression]
    with pytest.raises(psycopg.errors.InvalidParameterValue, match=f"{where} expression .* is not one SQL expression"):
        session.execute(call, params)
    assert conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = %s", [role]).fetchone() == (False,)
    # what looks like those inside a string or a quoted name is data
    session.execute(f'ALTER TABLE {post} ADD COLUMN "a;)" text')
    if where != "weight":
        session.execute(f"""SELECT pgfeed.attach_content(%s, '{post}', 'id', $$title || ';)' || "a;)"$$,
                                                         'created_at')""", [feed])


def test_a_whole_row_reference_cannot_reach_a_column_of_the_owners_type(conn, owner):
    """A whole-row reference reads every column, also one of the table owner's own type whose cast to json is the
    owner's code: to_json(r) ran it with pgfeed's rights (the review of 0.5.0). Refused, to superusers too, whose
    feeds' tables also have owners."""
    _, session = owner
    table = fresh("r")
    session.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, body text, at timestamptz DEFAULT now())")
    for who in (conn, session):
        feed = fresh("feed")
        who.execute("SELECT pgfeed.create_feed(%s, model => %s)", [feed, HASHING])
        for text in (f"to_json({table})::text", f"{table}::text", f"coalesce(body, {table}::text)"):
            with pytest.raises(psycopg.errors.InvalidParameterValue, match="a whole-row reference"):
                who.execute(f"SELECT pgfeed.attach_content(%s, '{table}', 'id', %s, 'at')", [feed, text])
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="generate_series.*which returns a set"):
        session.execute(f"SELECT pgfeed.attach_content(%s, '{table}', 'id', 'generate_series(1, 3)::text', 'at')",
                        [feed])  # (a set of texts a row: the feed failed on ON CONFLICT, again at every catch-up)


def test_a_feed_owners_workers_work_on_its_own_feeds(conn, owner, make_role):
    """work() and queued() of a feed owner see its own feeds only (the review of 0.5.0: they embedded and named
    other tenants' feeds); a worker role a superuser granted them works on every feed, as before."""
    _, session = owner
    feed, post, _ = own_feed(session)
    session.execute("SELECT pgfeed.alter_feed(%s, mode => 'async')", [feed])
    theirs, their_post, _ = own_feed(conn)
    conn.execute("SELECT pgfeed.alter_feed(%s, mode => 'async')", [theirs])
    session.execute(f"INSERT INTO {post} (title, body) VALUES ('a', 'b')")
    conn.execute(f"INSERT INTO {their_post} (title, body) VALUES ('c', 'd'), ('e', 'f')")
    assert session.execute("SELECT pgfeed.queued()").fetchone()[0] == 1
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match=f'must be the owner of feed "{theirs}"'):
        session.execute("SELECT pgfeed.queued(%s)", [theirs])
    assert [row[0] for row in session.execute("SELECT feed_name FROM pgfeed.work()")] == [feed]
    assert session.execute("SELECT * FROM pgfeed.work()").fetchall() == []  # theirs is left for their workers
    worker, worker_dsn = make_role()
    conn.execute(f"GRANT EXECUTE ON FUNCTION pgfeed.work(text, integer, text), pgfeed.queued(text, text) TO {worker}")
    with psycopg.connect(worker_dsn, autocommit=True) as dedicated:
        assert dedicated.execute("SELECT pgfeed.queued(%s)", [theirs]).fetchone()[0] == 2
        assert dedicated.execute("SELECT feed_name, claimed FROM pgfeed.work(%s)", [theirs]).fetchall() == [(theirs, 2)]


@pytest.mark.parametrize("call", ["SELECT pgfeed.grant_admin(%s)", "SELECT pgfeed.revoke_admin(%s)",
                                  "SELECT pgfeed.allow_model('pgfeed_test_encoders:SlowEncoder')"])
def test_only_a_superuser_names_feed_administrators_and_models(conn, owner, make_role, call):
    """A feed owner cannot make another role (or itself again) a feed administrator, take that from one, or allow
    itself a model: those are a superuser's calls, not granted to anyone."""
    role, session = owner
    other, _ = make_role()
    admins = "SELECT array_agg(admin::regrole::text ORDER BY admin) FROM pgfeed.feed_admin"
    before = (conn.execute(admins).fetchone(), conn.execute("SELECT array_agg(model) FROM pgfeed.allowed_model").fetchone())
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied for function"):
        session.execute(call, [other if "grant" in call else role] if "%s" in call else [])
    assert (conn.execute(admins).fetchone(), conn.execute("SELECT array_agg(model) FROM pgfeed.allowed_model").fetchone()) \
        == before
