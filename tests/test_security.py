"""What ordinary roles can and cannot do (SECURITY.md): each attack of issue 13
is tried by a role that is not a superuser, and must fail and change nothing."""

import time

import psycopg
import pytest

import pgfeed
from conftest import APP_ROLE, HASHING, attach, feed_id, fresh, make_tables

# The caller's own type whose cast to text would make its role a superuser, and
# leaves a mark in the session when it runs at all (with whatever rights).
HOSTILE_TYPE = """
    CREATE TYPE {schema}.k AS (v int);
    CREATE FUNCTION {schema}.k_to_text({schema}.k) RETURNS text LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM set_config('pgfeed_test.cast_ran', current_user, false);
        IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
            EXECUTE format('ALTER ROLE %I SUPERUSER', session_user);
        END IF;
        RETURN ($1).v::text;
    END $$;
    CREATE CAST ({schema}.k AS text) WITH FUNCTION {schema}.k_to_text({schema}.k);
"""


def tenant_tables(conn, make_role):
    """A role that is not a superuser, may create objects in public, and owns a fresh post and like table."""
    owner, owner_dsn = make_role()
    conn.execute(f"GRANT CREATE ON SCHEMA public TO {owner}")
    with psycopg.connect(owner_dsn, autocommit=True) as tenant:
        post, like = make_tables(tenant, owner=None)
    return owner, owner_dsn, post, like


def is_superuser(conn, role):
    return conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = %s", [role]).fetchone()[0]


def cast_ran(session):
    return session.execute("SELECT current_setting('pgfeed_test.cast_ran', true)").fetchone()[0] or None


def feed_with_posts(conn, likes=True):
    post, like = make_tables(conn)
    if likes:
        feed = attach(conn, post, like)
    else:
        feed = fresh("feed")
        conn.execute("SELECT pgfeed.create_feed(%s, model => %s)", [feed, HASHING])
        conn.execute(f"SELECT pgfeed.attach_content(%s, '{post}', 'id', 'title', 'created_at')", [feed])
    conn.execute(f"INSERT INTO {post} (title, body) SELECT 'post ' || g, 'body' FROM generate_series(1, 5) g")
    return post, like, feed


@pytest.mark.parametrize("likes", [True, False], ids=["with likes", "without likes"])
@pytest.mark.parametrize("argument", ["user_id", "exclude"])
def test_a_callers_own_cast_never_runs_in_feed(conn, make_role, likes, argument):
    _, _, feed = feed_with_posts(conn, likes)
    role, role_dsn = make_role()
    conn.execute("SELECT pgfeed.grant_feed(%s, %s)", [feed, role])  # even a granted reader
    with psycopg.connect(role_dsn, autocommit=True) as attacker:
        attacker.execute(HOSTILE_TYPE.format(schema="pg_temp"))
        call = ("SELECT count(*) FROM pgfeed.feed(%s, ROW(1)::pg_temp.k)" if argument == "user_id"
                else "SELECT count(*) FROM pgfeed.feed(%s, 1, exclude => ARRAY[ROW(1)::pg_temp.k])")
        with pytest.raises(psycopg.errors.DatatypeMismatch, match=r"got (a value of type )?k(\[\])?\n"):
            attacker.execute(call, [feed])
        assert cast_ran(attacker) is None
    assert not is_superuser(conn, role)


@pytest.mark.parametrize("table, column, value", [
    ("like", "user_id", "user_id"), ("like", "post_id", "post_id"), ("post", "id", "id"),
    ("post", "created_at", "1"), ("post", "title", "length(title)"), ("post", "status", "length(status)"),
], ids=["like user", "like item", "content id", "content time", "text expression", "condition"])
def test_a_table_owners_retyped_column_never_runs_in_the_triggers(conn, make_role, table, column, value):
    owner, owner_dsn, post, like = tenant_tables(conn, make_role)
    feed = attach(conn, post, like)  # a superuser attaches the tenant's tables
    with psycopg.connect(owner_dsn, autocommit=True) as tenant:
        tenant.execute(f"INSERT INTO {post} (title, body) VALUES ('a', 'b')")
        tenant.execute(f"INSERT INTO {like} (user_id, post_id) SELECT 1, id FROM {post}")
        tenant.execute(HOSTILE_TYPE.format(schema="public"))
        name = post if table == "post" else like
        tenant.execute(f"ALTER TABLE {name} ALTER {column} DROP DEFAULT")
        tenant.execute(f"ALTER TABLE {name} ALTER {column} TYPE public.k USING ROW({value})::public.k")
        # every write the owner makes is kept; pgfeed stands aside and says why
        tenant.execute(f"UPDATE {post} SET body = 'c'")
        tenant.execute(f"INSERT INTO {like} SELECT * FROM {like}")
        tenant.execute(f"DELETE FROM {like}")
        tenant.execute(f"DELETE FROM {post}")
        assert cast_ran(tenant) is None
    assert not is_superuser(conn, owner)
    problem = conn.execute("SELECT problem FROM pgfeed.status() WHERE feed = %s", [feed]).fetchone()[0]
    assert f"column {column} of table public.{name} changed type from" in problem and "detach" in problem
    assert cast_ran(conn) is None  # nor in the superuser's session that read the status


def test_a_column_name_is_never_code(conn, app):
    """Column names of a like table with quotes and a dollar-quote tag, attached where function bodies go
    unchecked: pgfeed's trigger function for the table holds them as names, and likes are followed."""
    post, like = make_tables(conn)
    payload = "$body$;SELECT set_config('pgfeed_test.cast_ran', 'ran', false);SELECT $body$"
    conn.execute(f"""ALTER TABLE {like} RENAME user_id TO "{payload.replace('"', '""')}";
                     ALTER TABLE {like} RENAME post_id TO "it""em's $$" """)
    conn.execute("SET check_function_bodies = off")
    feed = fresh("feed")
    conn.execute("SELECT pgfeed.create_feed(%s, model => %s)", [feed, HASHING])
    conn.execute("SELECT pgfeed.attach_content(%s, %s, 'id', 'title', 'created_at')", [feed, post])
    conn.execute("SELECT pgfeed.attach_interactions(%s, %s, %s, %s, created_at_column => 'created_at')",
                 [feed, like, payload, "it\"em's $$"])
    conn.execute("RESET check_function_bodies")
    assert cast_ran(conn) is None
    conn.execute("SELECT pgfeed.grant_feed(%s, %s)", [feed, APP_ROLE])
    app.execute(f"INSERT INTO {post} (title, body) VALUES ('a', 'b')")
    app.execute(f"INSERT INTO {like} VALUES (3, (SELECT max(id) FROM {post}))")
    assert conn.execute(f"SELECT user_id FROM pgfeed.interaction_log_{feed_id(conn, feed)}").fetchall() == [(3,)]
    assert cast_ran(conn) is None and cast_ran(app) is None


@pytest.mark.parametrize("text, condition", [
    ("public.{owner}_summary(title)", None), ("title", "public.{owner}_summary(title) <> ''"),
    ("title::public.{owner}_t", None), ("title || set_config('role', body, true)", None),
    ("query_to_xml(body, true, true, '')::text", None),
], ids=["text calls the owner's function", "condition calls it", "a cast to the owner's type", "a volatile built-in",
        "a built-in that runs SQL"])
def test_expressions_may_use_only_what_is_built_in(conn, make_role, text, condition):
    """pgfeed evaluates text expressions and conditions with its own rights: a function, operator or type the
    table's owner could change (SECURITY INVOKER, SET search_path, a new body) is refused at attach."""
    owner, owner_dsn, post, like = tenant_tables(conn, make_role)
    with psycopg.connect(owner_dsn, autocommit=True) as tenant:
        tenant.execute(f"CREATE FUNCTION public.{owner}_summary(t text) RETURNS text LANGUAGE sql AS 'SELECT t'")
        tenant.execute(f"CREATE DOMAIN public.{owner}_t AS text")
    feed = fresh("feed")
    conn.execute("SELECT pgfeed.create_feed(%s, model => %s)", [feed, HASHING])
    with pytest.raises(psycopg.errors.InvalidParameterValue,
                       match=f"uses .*({owner}_.*, which is not built into PostgreSQL|which is volatile|which runs SQL)"
                       ) as refused:
        conn.execute("SELECT pgfeed.attach_content(%s, %s, 'id', %s, 'created_at', condition => %s)",
                     [feed, post, text.format(owner=owner), condition and condition.format(owner=owner)])
    assert "GENERATED ALWAYS AS" in refused.value.diag.message_hint


def test_nothing_that_changes_planning_comes_between_a_workers_check_and_read(conn, dsn, make_role):
    """Planning a query on a table folds the functions of its statistics and indexes with the planner's rights:
    a worker reads a tenant's table only while no such DDL is under way (it waits half a second, then does the
    batch another time), and holds the table no longer than its read (VACUUM and ANALYZE are not kept waiting)."""
    owner, owner_dsn, post, like = tenant_tables(conn, make_role)
    feed = attach(conn, post, like, mode="async")
    conn.execute(f"INSERT INTO {post} (title, body) VALUES ('a', 'b')")
    with psycopg.connect(owner_dsn) as tenant:
        tenant.execute(f"CREATE STATISTICS public.{owner}_held ON title, body FROM {post}")  # under way
        assert conn.execute("SELECT * FROM pgfeed.work(%s)", [feed]).fetchall() == []
        assert conn.execute("SELECT pgfeed.queued(%s)", [feed]).fetchone()[0] == 1
        tenant.rollback()
    with psycopg.connect(dsn) as worker, psycopg.connect(owner_dsn, autocommit=True) as tenant:
        assert [row[2] for row in worker.execute("SELECT * FROM pgfeed.work(%s)", [feed])] == [1]  # embedded
        tenant.execute("SET lock_timeout = '5s'")
        tenant.execute(f"CREATE STATISTICS public.{owner}_s ON title, body FROM {post}")  # the worker's transaction
        tenant.execute(f"ANALYZE {post}")                                               # is still open
        worker.commit()


def test_columns_of_a_type_of_the_owners_are_refused(conn, make_role):
    owner, owner_dsn, post, like = tenant_tables(conn, make_role)
    with psycopg.connect(owner_dsn, autocommit=True) as tenant:
        tenant.execute(f"CREATE TYPE public.{owner}_mood AS ENUM ('happy', 'sad')")
        tenant.execute(f"ALTER TABLE {post} ADD COLUMN mood public.{owner}_mood")
    feed = fresh("feed")
    conn.execute("SELECT pgfeed.create_feed(%s, model => %s)", [feed, HASHING])
    with pytest.raises(psycopg.errors.DatatypeMismatch, match=f"column public.{post}.mood has type"):
        conn.execute("SELECT pgfeed.attach_content(%s, %s, 'id', 'title', 'created_at', condition => $$mood IS NULL$$)",
                     [feed, post])


def test_workers_are_held_up_by_no_tenant(conn, dsn, app_dsn):
    """A table an open ALTER holds, and a profile lock another role holds, hold up no worker: the other feeds'
    queues are drained, and the held feed is done once released."""
    held_post, held_like = make_tables(conn)
    held = attach(conn, held_post, held_like, mode="async")
    other_post, other_like = make_tables(conn)
    other = attach(conn, other_post, other_like, mode="async")
    conn.execute(f"INSERT INTO {held_post} (title, body) VALUES ('a', 'b')")
    conn.execute(f"INSERT INTO {other_post} (title, body) SELECT 'p' || g, 'b' FROM generate_series(1, 5) g")
    conn.execute(f"INSERT INTO {other_like} (user_id, post_id) VALUES (1, 1)")
    with psycopg.connect(app_dsn) as tenant, psycopg.connect(dsn, autocommit=True) as stranger:
        tenant.execute(f"ALTER TABLE {held_post} ADD COLUMN x int")  # left open
        stranger.execute("SELECT pg_advisory_lock(%s, hashtext('1'))", [feed_id(conn, other)])
        conn.execute(f"INSERT INTO {other_like} (user_id, post_id) VALUES (1, 2)")  # the profile is marked
        done = run_cli(dsn, "worker", "--drain", "--quiet")
        assert done.returncode == 0
        status = {row["feed"]: row for row in pgfeed.status(conn) if row["feed"] in (held, other)}
        assert status[other]["embedded"] == 5 and status[other]["pending"] == 0
        tenant.rollback()
    assert run_cli(dsn, "worker", "--drain", "--quiet").returncode == 0
    assert {row["feed"]: row for row in pgfeed.status(conn)}[held]["embedded"] == 1


def test_ungranted_roles_read_nothing(conn, make_role):
    post, _, feed = feed_with_posts(conn)
    role, role_dsn = make_role()
    conn.execute(f"GRANT SELECT ON {post} TO {role}")
    with psycopg.connect(role_dsn, autocommit=True) as stranger:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match=f'permission denied for feed "{feed}"'):
            stranger.execute("SELECT * FROM pgfeed.feed(%s, 1)", [feed])
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match=f'permission denied for feed "{feed}"'):
            stranger.execute("SELECT pgfeed.profile(%s, 1)", [feed])
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match=f'model "{HASHING}" is not used by any feed'):
            stranger.execute("SELECT pgfeed.embed('x', %s)", [HASHING])
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            stranger.execute(f"SELECT count(*) FROM pgfeed.item_store_{feed_id(conn, feed)}")
        assert stranger.execute("SELECT feed FROM pgfeed.status()").fetchall() == []
        assert stranger.execute("SELECT name FROM pgfeed.feed_config").fetchall() == []
        with pytest.raises(psycopg.errors.UndefinedObject) as unknown:
            stranger.execute("SELECT * FROM pgfeed.feed('no_such_feed', 1)")
        assert feed not in unknown.value.diag.message_hint  # no names of feeds it may not read
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            stranger.execute("SELECT * FROM pgfeed.work()")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):  # nor grant itself the feed
            stranger.execute("SELECT pgfeed.grant_feed(%s, current_user::regrole)", [feed])
        # a page after a cursor, a filter: refused before anything is read
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match=f'permission denied for feed "{feed}"'):
            stranger.execute("SELECT * FROM pgfeed.feed(%s, 1, after => 'v1.x.y', filter => '{}')", [feed])
        # nor manage it: impressions, settings, weights
        for call in ("pgfeed.attach_impressions(%s, 'pg_class', 'relowner', 'oid')",
                     "pgfeed.alter_feed(%s, max_per_group => 1, seen_for => '1 hour')",
                     "pgfeed.attach_interactions(%s, 'pg_class', 'relowner', 'oid', weight_expression => '1')"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                stranger.execute(f"SELECT {call}", [feed])
        assert stranger.execute("SELECT pgfeed.version()").fetchone()[0] == pgfeed.__version__


def test_granted_roles_read_and_revoke_takes_it_back(conn, make_role):
    post, _, feed = feed_with_posts(conn)
    _, _, other = feed_with_posts(conn)
    group, _ = make_role("NOLOGIN")
    role, role_dsn = make_role(f"LOGIN IN ROLE {group}")
    conn.execute("SELECT pgfeed.grant_feed(%s, %s)", [feed, group])  # through a role it inherits from
    conn.execute(f"GRANT SELECT ON {post} TO {group}")  # status() counts the content rows it may read
    with psycopg.connect(role_dsn, autocommit=True) as reader:
        assert len(pgfeed.feed(reader, feed, 1, limit=3)) == 3
        assert [r["feed"] for r in pgfeed.status(reader)] == [feed]
        assert pgfeed.status(reader)[0]["items"] == 5
        assert reader.execute("SELECT vector_dims(pgfeed.embed('x', %s))", [HASHING]).fetchone()[0] == 384
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            reader.execute("SELECT * FROM pgfeed.feed(%s, 1)", [other])
    conn.execute("SELECT pgfeed.revoke_feed(%s, %s)", [feed, group])
    with psycopg.connect(role_dsn, autocommit=True) as reader:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied for feed"):
            reader.execute("SELECT * FROM pgfeed.feed(%s, 1)", [feed])
        assert pgfeed.status(reader) == []


def test_row_level_security_on_the_content_table_is_honoured(conn, make_role):
    post, like = make_tables(conn)
    conn.execute(f"ALTER TABLE {post} ADD COLUMN tenant name NOT NULL DEFAULT current_user")
    feed = attach(conn, post, like)
    alice, alice_dsn = make_role()
    bob, _ = make_role()
    conn.execute(f"INSERT INTO {post} (title, body, tenant) SELECT 'post ' || g, 'body', "
                 f"CASE WHEN g % 2 = 0 THEN '{alice}' ELSE '{bob}' END FROM generate_series(1, 10) g")
    conn.execute(f"ALTER TABLE {post} ENABLE ROW LEVEL SECURITY")
    conn.execute(f"CREATE POLICY own_posts ON {post} FOR SELECT USING (tenant = current_user)")
    conn.execute(f"GRANT SELECT ON {post} TO {alice}")
    conn.execute("SELECT pgfeed.grant_feed(%s, %s)", [feed, alice])
    mine = {r[0] for r in conn.execute(f"SELECT id FROM {post} WHERE tenant = %s", [alice])}
    with psycopg.connect(alice_dsn, autocommit=True) as reader:
        got = {item.item_id for item in pgfeed.feed(reader, feed, None, limit=10)}
    assert got == mine
    assert len(pgfeed.feed(conn, feed, None, limit=10)) == 10  # the superuser sees them all


def run_cli(dsn, *args):
    import subprocess
    import sys
    return subprocess.run([sys.executable, "-m", "pgfeed", *args, "--dsn", dsn], capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("breakage, repair, problem", [
    ("ALTER TABLE {post} RENAME body TO content", "ALTER TABLE {post} RENAME content TO body",
     'column body of table public.{post} was renamed to content'),
    ("ALTER TABLE {post} DROP COLUMN body",  # the fix the problem names: attach again
     "ALTER TABLE {post} ADD COLUMN body text; SELECT pgfeed.detach('{feed}'); "
     "SELECT pgfeed.attach_content('{feed}', '{post}', 'id', $$title || ' ' || body$$, 'created_at'); "
     "SELECT pgfeed.attach_interactions('{feed}', '{like}', 'user_id', 'post_id')",
     'column body of table public.{post} was dropped'),
    ("ALTER TABLE {post} ALTER id TYPE text", "ALTER TABLE {post} ALTER id TYPE integer USING id::integer",
     'column id of table public.{post} changed type from integer to text'),
], ids=["renamed", "dropped", "retyped"])
def test_a_broken_tenant_stops_no_other_feed_and_catches_up_once_repaired(conn, dsn, breakage, repair, problem):
    broken_post, broken_like = make_tables(conn)
    broken = attach(conn, broken_post, broken_like, mode="async")
    healthy_post, healthy_like = make_tables(conn)
    healthy = attach(conn, healthy_post, healthy_like, mode="async")
    conn.execute(breakage.format(post=broken_post))
    # the broken tenant's writes are kept, with a warning
    conn.execute(f"INSERT INTO {broken_post} (id, title) VALUES (1001, 'kept')")
    conn.execute(f"INSERT INTO {broken_like} (user_id, post_id) VALUES (1, 1001)")
    conn.execute(f"INSERT INTO {healthy_post} (title, body) SELECT 'p' || g, 'b' FROM generate_series(1, 20) g")
    done = run_cli(dsn, "worker", "--drain", "--quiet")
    assert done.returncode == 0 and "Traceback" not in done.stderr
    status = {row["feed"]: row for row in pgfeed.status(conn) if row["feed"] in (broken, healthy)}
    assert status[healthy]["embedded"] == 20 and status[healthy]["problem"] is None
    assert problem.format(post=broken_post) in status[broken]["problem"]
    assert "detach" in status[broken]["problem"]
    shown = run_cli(dsn, "status")
    assert shown.returncode == 1 and "Traceback" not in shown.stderr and broken in shown.stdout  # 1: a problem

    conn.execute(repair.format(post=broken_post, like=broken_like, feed=broken))
    conn.execute(f"UPDATE {broken_post} SET body = 'now readable' WHERE id = 1001")
    assert run_cli(dsn, "worker", "--drain", "--quiet").returncode == 0
    status = {row["feed"]: row for row in pgfeed.status(conn) if row["feed"] == broken}[broken]
    assert status["problem"] is None
    assert (status["items"], status["embedded"], status["interactions"], status["profiles"]) == (1, 1, 1, 1)


def test_a_dropped_table_breaks_only_its_feed(conn, dsn):
    gone_post, gone_like = make_tables(conn)
    gone = attach(conn, gone_post, gone_like)
    _, _, healthy = feed_with_posts(conn)
    conn.execute(f"DROP TABLE {gone_like}")
    status = {row["feed"]: row for row in pgfeed.status(conn)}
    oid = conn.execute("SELECT source::oid FROM pgfeed.interaction_source WHERE feed_id = %s",
                       [feed_id(conn, gone)]).fetchone()[0]
    assert f"table public.{gone_like} was dropped: detach it (SELECT pgfeed.detach('{gone}', {oid}))" \
        in status[gone]["problem"]
    assert status[healthy]["problem"] is None and status[healthy]["items"] == 5
    shown = run_cli(dsn, "status")
    assert shown.returncode == 1 and "Traceback" not in shown.stderr  # 1: a problem
    conn.execute(f"SELECT pgfeed.detach(%s, {oid})", [gone])  # the fix the problem names
    assert {row["feed"]: row for row in pgfeed.status(conn)}[gone]["problem"] is None


@pytest.mark.parametrize("table, column", [("post", "status"), ("like", "user_id")], ids=["condition column", "like user"])
def test_a_type_changed_after_a_repeatable_read_snapshot_is_caught(conn, make_role, table, column):
    """The catalogs a REPEATABLE READ writer sees predate an ALTER committed since; pgfeed's statements would be
    parsed with the new type. The check takes the types from a parse too."""
    owner, owner_dsn, post, like = tenant_tables(conn, make_role)
    feed = attach(conn, post, like)
    name = post if table == "post" else like
    with psycopg.connect(owner_dsn, autocommit=True) as alterer, psycopg.connect(owner_dsn) as writer:
        # implicit: pgfeed's own comparisons and casts would take it
        alterer.execute(HOSTILE_TYPE.format(schema="public").replace("k_to_text(public.k);", "k_to_text(public.k) AS IMPLICIT;"))
        writer.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        writer.execute("SELECT 1")  # the snapshot
        alterer.execute(f"ALTER TABLE {name} ALTER {column} DROP DEFAULT, "
                        f"ALTER {column} TYPE public.k USING ROW(length({column}::text))::public.k")
        if table == "post":
            writer.execute(f"INSERT INTO {post} (title, body, status) VALUES ('a', 'b', ROW(9)::public.k)")
        else:
            writer.execute(f"INSERT INTO {like} (user_id, post_id) VALUES (ROW(9)::public.k, 1)")
        writer.commit()  # the write is kept
        assert cast_ran(writer) is None
    assert not is_superuser(conn, owner)
    assert conn.execute(f"SELECT count(*) FROM {name}").fetchone()[0] == 1
    assert "changed" in conn.execute("SELECT problem FROM pgfeed.status() WHERE feed = %s", [feed]).fetchone()[0]


def test_no_lock_anyone_holds_keeps_workers_busy_or_waiting(conn, dsn, app_dsn):
    """A writer's open transaction holding an item, a role holding every item key of a feed and a profile key:
    workers end (no wait, no spin), other feeds are done, marks stay one a user, other profiles are refreshed."""
    held_post, held_like = make_tables(conn)
    held = attach(conn, held_post, held_like, mode="async")
    other_post, other_like = make_tables(conn)
    other = attach(conn, other_post, other_like, mode="async")
    conn.execute(f"INSERT INTO {held_post} (title, body) SELECT 'p' || g, 'b' FROM generate_series(1, 3) g")
    run_cli(dsn, "worker", "--drain", "--quiet")
    conn.execute(f"UPDATE {held_post} SET body = 'changed'")  # queued again
    conn.execute(f"INSERT INTO {other_post} (title, body) SELECT 'p' || g, 'b' FROM generate_series(1, 4) g")
    held_id, other_id = feed_id(conn, held), feed_id(conn, other)
    with psycopg.connect(app_dsn) as writer, psycopg.connect(dsn, autocommit=True) as stranger:
        writer.execute(f"UPDATE {held_post} SET status = 'draft' WHERE id = 1")  # holds item 1's row, left open
        stranger.execute("SELECT pg_advisory_lock((%s::bigint << 32) | (hashtext(g::text)::bigint & 4294967295)) "
                         "FROM generate_series(2, 3) g", [held_id])
        stranger.execute("SELECT pg_advisory_lock(%s, hashtext('1'))", [other_id])
        with psycopg.connect(app_dsn) as liker:  # marks user 1's profile: its lock is held
            for item in (1, 2, 3):
                liker.execute(f"INSERT INTO {other_like} (user_id, post_id) VALUES (1, %s)", [item])
                liker.commit()
            liker.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            liker.execute(f"INSERT INTO {other_like} (user_id, post_id) VALUES (2, 1)")  # marked too
            liker.commit()
        marks = []
        for _ in range(3):
            started = time.monotonic()
            done = run_cli(dsn, "worker", "--drain", "--quiet")
            assert done.returncode == 0 and time.monotonic() - started < 60, done.stderr
            marks.append(dict(conn.execute(f"SELECT user_id, count(*) FROM pgfeed.profile_dirty_{other_id} GROUP BY 1")))
        assert {r["feed"]: r["embedded"] for r in pgfeed.status(conn) if r["feed"] == other} == {other: 4}
        assert marks[0] == marks[1] == marks[2] and set(marks[0]) == {1}  # the held user's marks do not grow
        assert conn.execute(f"SELECT count(*) FROM pgfeed.profile_{other_id} WHERE user_id = 2").fetchone()[0] == 1
        writer.rollback()
    time.sleep(10.5)  # what was put off is ready again
    assert run_cli(dsn, "worker", "--drain", "--quiet").returncode == 0
    assert conn.execute(f"SELECT count(*) FROM pgfeed.profile_dirty_{other_id}").fetchone()[0] == 0
    assert conn.execute("SELECT pgfeed.queued(%s)", [held]).fetchone()[0] == 0


def test_a_held_partition_holds_up_no_one_elses_ddl(conn, make_role):
    owner, owner_dsn = make_role()
    conn.execute(f"GRANT CREATE ON SCHEMA public TO {owner}")
    post = fresh("post")
    with psycopg.connect(owner_dsn, autocommit=True) as tenant:
        tenant.execute(f"""CREATE TABLE {post} (id int PRIMARY KEY, title text, created_at timestamptz DEFAULT now())
                               PARTITION BY RANGE (id);
                           CREATE TABLE {post}_1 PARTITION OF {post} FOR VALUES FROM (0) TO (100)""")
    feed = fresh("feed")
    conn.execute("SELECT pgfeed.create_feed(%s, model => %s)", [feed, HASHING])
    conn.execute("SELECT pgfeed.attach_content(%s, %s, 'id', 'title', 'created_at')", [feed, post])
    prefix = f"pgfeed_feed{feed_id(conn, feed)}_content"
    with psycopg.connect(owner_dsn) as tenant:
        for event in ("insert", "update", "delete", "truncate"):
            tenant.execute(f"DROP TRIGGER {prefix}_{event} ON {post}_1")
        tenant.execute(f"LOCK TABLE {post}_1 IN ROW EXCLUSIVE MODE")  # left open
        with psycopg.connect(conn.info.dsn, autocommit=True) as someone:
            someone.execute("SET statement_timeout = '5s'")
            someone.execute(f"CREATE TABLE {fresh('unrelated')} (a int)")
        tenant.rollback()


PAYLOAD = """
    CREATE FUNCTION public.{owner}_payload() RETURNS boolean LANGUAGE plpgsql VOLATILE AS $$
    BEGIN
        PERFORM set_config('pgfeed_test.planned_by', current_user, false);
        IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
            EXECUTE format('ALTER ROLE %I SUPERUSER', '{owner}');
        END IF;
        RETURN true;
    END $$;
    CREATE FUNCTION public.{owner}_c() RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS $$
    BEGIN RETURN public.{owner}_payload(); END $$;
"""


@pytest.mark.parametrize("definition", [
    "CREATE INDEX ON {post} (id) WHERE public.{owner}_c()",
    "CREATE TABLE {post}_child () INHERITS ({post}); ALTER TABLE {post}_child ADD CONSTRAINT c CHECK (public.{owner}_c())",
], ids=["a partial index", "an inheritance child's constraint"])
def test_planning_a_read_runs_none_of_the_owners_functions(conn, dsn, make_role, definition):
    """Planning a query folds an owner's immutable functions in index predicates and constraints with the
    planner's rights: pgfeed refuses such tables before it plans a query on them."""
    owner, owner_dsn, post, like = tenant_tables(conn, make_role)
    with psycopg.connect(owner_dsn, autocommit=True) as tenant:
        tenant.execute(PAYLOAD.format(owner=owner))
        tenant.execute(f"INSERT INTO {post} (title, body) VALUES ('a', 'b')")
    feed = attach(conn, post, like, mode="async")  # backfill: a first read
    with psycopg.connect(owner_dsn, autocommit=True) as tenant:
        tenant.execute(definition.format(post=post, owner=owner))
        tenant.execute(f"UPDATE {post} SET body = 'c'")  # queued for a worker, which reads the table
    assert run_cli(dsn, "worker", "--drain", "--quiet").returncode == 0
    assert cast_ran(conn) is None
    assert conn.execute("SELECT current_setting('pgfeed_test.planned_by', true)").fetchone()[0] in (None, "")
    assert not is_superuser(conn, owner)
    problem = conn.execute("SELECT problem FROM pgfeed.status() WHERE feed = %s", [feed]).fetchone()[0]
    assert f"{owner}_c()" in problem or "inherits from" in problem
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match=f"{owner}_c\\(\\)|inherits from"):
        attach(conn, post, like)  # and a new feed over it is refused at its backfill
    assert not is_superuser(conn, owner)


def test_a_writers_string_settings_do_not_change_the_expression(conn, app):
    """A backslash is the one character a session's standard_conforming_strings reads otherwise: expressions hold
    none (chr(92) is one), and the writer's setting changes nothing."""
    post, _ = make_tables(conn)
    feed = fresh("feed")
    conn.execute("SELECT pgfeed.create_feed(%s, model => %s)", [feed, HASHING])
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="a backslash: write chr.92. for one"):
        conn.execute("SELECT pgfeed.attach_content(%s, %s, 'id', $$replace(title, '\\', '/')$$, 'created_at')",
                     [feed, post])
    conn.execute("SELECT pgfeed.attach_content(%s, %s, 'id', $$replace(title, chr(92), '/') || ' end'$$, 'created_at')",
                 [feed, post])
    app.execute("SET standard_conforming_strings = off")
    post_id = app.execute(f"INSERT INTO {post} (title, body) VALUES ('a\\\\b', '') RETURNING id").fetchone()[0]
    assert conn.execute(f"SELECT error FROM pgfeed.item_store_{feed_id(conn, feed)} WHERE item_id = %s",
                        [post_id]).fetchone() == (None,)


# The owner's cast, inlined and folded when a statement that names it is planned: it calls an immutable function
# of the owner's with a constant argument, which records who ran it and makes the owner a superuser if it can.
FOLDED_CAST = """
    CREATE TABLE public.{mark} (who text, super boolean);
    CREATE FUNCTION public.{mark}_vol() RETURNS integer LANGUAGE plpgsql VOLATILE AS $$
    BEGIN
        INSERT INTO public.{mark} SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user;
        IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
            EXECUTE format('ALTER ROLE %I SUPERUSER', session_user);
        END IF;
        RETURN 1;
    END $$;
    CREATE FUNCTION public.{mark}_pwn(integer) RETURNS integer LANGUAGE plpgsql IMMUTABLE
        AS $$ BEGIN PERFORM public.{mark}_vol(); RETURN $1; END $$;
    CREATE TYPE public.{mark}_mood AS ENUM ('a');
    CREATE FUNCTION public.{mark}_cast(public.{mark}_mood) RETURNS {target} LANGUAGE sql IMMUTABLE
        AS $$ SELECT {body} $$;
    CREATE CAST (public.{mark}_mood AS {target}) WITH FUNCTION public.{mark}_cast(public.{mark}_mood) AS IMPLICIT;
"""


@pytest.mark.parametrize("table, column, target, body", [
    ("post", "created_at", "timestamptz", "to_timestamp(public.{mark}_pwn(7))"),
    ("shown", "shown_at", "timestamp", "to_timestamp(public.{mark}_pwn(7))::timestamp"),
    ("rating", "stars", "integer", "public.{mark}_pwn(7)"),
], ids=["content time", "impression time", "weight expression"])
def test_a_retyped_column_is_never_planned_in_a_statement_of_no_rows(conn, make_role, table, column, target, body):
    """Under REPEATABLE READ the trigger's checks read catalogs older than an ALTER, and planning a statement that
    casts the retyped column folds the owner's cast with pgfeed's rights. A statement of no rows used to be planned
    and to pass the row check (no row, no type): the review of issue 14 became superuser so."""
    owner, owner_dsn, post, like = tenant_tables(conn, make_role)
    mark = fresh("mark")
    with psycopg.connect(owner_dsn, autocommit=True) as tenant:
        tenant.execute(f"""CREATE TABLE {mark}_shown (user_id integer NOT NULL, post_id integer NOT NULL, shown_at timestamp);
                           CREATE TABLE {mark}_rating (user_id integer NOT NULL, post_id integer NOT NULL, stars integer)""")
    feed = attach(conn, post, like)
    conn.execute(f"SELECT pgfeed.attach_impressions(%s, '{mark}_shown', 'user_id', 'post_id', 'shown_at')", [feed])
    conn.execute(f"SELECT pgfeed.attach_interactions(%s, '{mark}_rating', 'user_id', 'post_id', "
                 "weight_expression => 'stars - 3')", [feed])
    name = {"post": post, "shown": f"{mark}_shown", "rating": f"{mark}_rating"}[table]
    with psycopg.connect(owner_dsn, autocommit=True) as alterer, psycopg.connect(owner_dsn) as writer:
        alterer.execute(FOLDED_CAST.format(mark=mark, target=target, body=body.format(mark=mark)))
        writer.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        writer.execute("SELECT 1")  # the snapshot
        alterer.execute(f"ALTER TABLE {name} ALTER {column} DROP DEFAULT, ALTER {column} TYPE public.{mark}_mood USING NULL")
        columns = "title, created_at" if table == "post" else f"user_id, post_id, {column}"
        values = "'x', 'a'" if table == "post" else "1, 1, 'a'"
        writer.execute(f"INSERT INTO {name} ({columns}) SELECT {values} WHERE false")
        writer.commit()
    assert conn.execute(f"SELECT count(*) FROM public.{mark}").fetchone()[0] == 0
    assert not is_superuser(conn, owner)
