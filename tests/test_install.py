"""The installer and alembic give the same objects; installing again changes nothing."""

import os
import subprocess
import sys

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

import pgfeed
from conftest import HASHING, ROOT

SNAPSHOT = """
    SELECT 'function', p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')',
           md5(pg_get_functiondef(p.oid)) || ' ' || coalesce(obj_description(p.oid, 'pg_proc'), '<no comment>')
           || ' ' || coalesce(p.proacl::text, '')
      FROM pg_proc p WHERE p.pronamespace = 'pgfeed'::regnamespace
    UNION ALL
    SELECT 'column', c.relname || '.' || a.attname, format_type(a.atttypid, a.atttypmod) || ' ' || c.relkind::text
      FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0
     WHERE c.relnamespace = 'pgfeed'::regnamespace
    UNION ALL
    SELECT 'migration', name, body_sha256 FROM pgfeed.migration
    UNION ALL
    SELECT 'setting', name, value FROM pgfeed.setting
    ORDER BY 1, 2, 3
"""


def snapshot(dsn):
    with psycopg.connect(dsn) as conn:
        return conn.execute(SNAPSHOT).fetchall()


def alembic(dsn, *args):
    subprocess.run([sys.executable, "-m", "alembic", "-c", str(ROOT / "alembic.ini"), "-x", f"dsn={dsn}", *args],
                   check=True, cwd=ROOT, env={**os.environ})


def test_install_twice_is_a_no_op(empty_database):
    pgfeed.install(empty_database)
    first = snapshot(empty_database)
    assert any(kind == "function" and name.startswith("feed(") for kind, name, _ in first)
    pgfeed.install(empty_database)
    assert snapshot(empty_database) == first


def test_every_function_has_a_comment_and_a_fixed_search_path(empty_database):
    pgfeed.install(empty_database)
    with psycopg.connect(empty_database) as conn:
        missing = conn.execute("""
            SELECT p.proname FROM pg_proc p WHERE p.pronamespace = 'pgfeed'::regnamespace
               AND (obj_description(p.oid, 'pg_proc') IS NULL
                    OR NOT (coalesce(p.proconfig, '{}') && ARRAY['search_path=pg_catalog, pgfeed, pg_temp',
                                                                 'search_path=pg_catalog, pg_temp']))
        """).fetchall()
    assert missing == []


def test_alembic_upgrade_gives_what_install_gives_and_downgrade_removes_it(dsn, empty_database):
    alembic(empty_database, "upgrade", "head")
    via_alembic = snapshot(empty_database)
    per_feed = ("item_store_", "item_popularity_", "interaction_log_", "profile_", "popularity_delta_", "profile_dirty_",
                "_follow_interactions_")
    reference = [row for row in snapshot(dsn) if not row[1].startswith(per_feed)]
    # the test database's server path also reaches tests/server; nothing else may differ
    def strip(rows):
        return [r for r in rows if r[:2] != ("setting", "python_path")]

    assert strip(via_alembic) == strip(reference)
    alembic(empty_database, "downgrade", "base")
    with psycopg.connect(empty_database) as conn:
        assert conn.execute("SELECT to_regnamespace('pgfeed')").fetchone()[0] is None


def test_install_needs_a_superuser(empty_database):
    with psycopg.connect(empty_database, autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS pgfeed_plain")
        conn.execute("CREATE ROLE pgfeed_plain LOGIN")
    try:
        with pytest.raises(pgfeed.InstallError, match="needs a superuser"):
            pgfeed.install(make_conninfo(empty_database, user="pgfeed_plain"))
    finally:
        with psycopg.connect(empty_database, autocommit=True) as conn:
            conn.execute("DROP ROLE pgfeed_plain")


def test_reinstalling_keeps_the_python_path_and_show_prints_it(empty_database, tmp_path):
    custom = pgfeed.installer.default_python_path() + os.pathsep + str(ROOT / "tests" / "server")
    pgfeed.install(empty_database, python_path=custom)
    pgfeed.install(empty_database)  # how the README upgrades
    assert pgfeed.installer.settings(empty_database)["python_path"] == custom
    cli = subprocess.run([sys.executable, "-m", "pgfeed", "install", "--dsn", empty_database], capture_output=True,
                         text=True, check=True)
    assert f"python_path: {custom}" in cli.stdout
    shown = subprocess.run([sys.executable, "-m", "pgfeed", "install", "--show", "--dsn", empty_database],
                           capture_output=True, text=True, check=True)
    assert shown.stdout.splitlines() == [f"python_path: {custom}", f"version: {pgfeed.__version__}"]


def test_a_python_path_the_server_cannot_import_from_changes_nothing(empty_database, tmp_path):
    pgfeed.install(empty_database)
    before = snapshot(empty_database)
    with pytest.raises(pgfeed.InstallError, match=f"the server cannot import pgfeed from python_path '{tmp_path}'"):
        pgfeed.install(empty_database, python_path=str(tmp_path))
    assert snapshot(empty_database) == before
    cli = subprocess.run([sys.executable, "-m", "pgfeed", "install", "--python-path", str(tmp_path), "--dsn",
                          empty_database], capture_output=True, text=True)
    assert cli.returncode == 1 and "Traceback" not in cli.stderr
    assert cli.stderr.startswith("Error: the server cannot import pgfeed")


def test_plpgsql_check_finds_nothing(empty_database):
    """plpgsql_check (errors, other and extra warnings) over every PL/pgSQL function, trigger functions on a table
    like the ones they are attached to, among them the trigger functions pgfeed makes for like tables (one with a
    weight expression)."""
    pgfeed.install(empty_database)
    with psycopg.connect(empty_database, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS plpgsql_check")
        conn.execute("CREATE TEMP TABLE content (id int PRIMARY KEY, body text, created_at timestamptz)")
        conn.execute("CREATE TEMP TABLE like_count (item_id bigint PRIMARY KEY, popularity bigint)")
        conn.execute("""CREATE TABLE post (id bigint PRIMARY KEY, body text NOT NULL, created_at timestamptz);
                        CREATE TABLE post_like (user_id bigint NOT NULL, post_id bigint NOT NULL, created_at date);
                        CREATE TABLE post_rating (user_id bigint NOT NULL, post_id bigint NOT NULL, stars integer)""")
        conn.execute("SELECT pgfeed.create_feed('checked', model => %s)", [HASHING])
        conn.execute("SELECT pgfeed.attach_content('checked', 'post', 'id', 'body', 'created_at')")
        conn.execute("SELECT pgfeed.attach_interactions('checked', 'post_like', 'user_id', 'post_id', "
                     "created_at_column => 'created_at')")
        conn.execute("SELECT pgfeed.attach_interactions('checked', 'post_rating', 'user_id', 'post_id', "
                     "weight_expression => 'stars - 3')")
        found = conn.execute("""
            SELECT p.oid::regprocedure::text, c.lineno, c.level, c.message
              FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang AND l.lanname = 'plpgsql'
             CROSS JOIN LATERAL plpgsql_check_function_tb(
                   p.oid, CASE WHEN p.oid = 'pgfeed._tier_trigger()'::regprocedure THEN 'like_count'::regclass
                               WHEN p.oid = 'pgfeed._content_trigger()'::regprocedure THEN 'content'::regclass
                               WHEN p.proname LIKE '\\_follow\\_interactions\\_%'
                               THEN (SELECT s.source FROM pgfeed.interaction_source s
                                      WHERE p.proname = 'pgfeed._follow_interactions_' || s.source_id
                                         OR p.proname = '_follow_interactions_' || s.source_id)
                               ELSE 0 END,
                   fatal_errors => false,
                   oldtable => CASE WHEN p.prorettype = 'trigger'::regtype THEN 'pgfeed_old' END,
                   newtable => CASE WHEN p.prorettype = 'trigger'::regtype THEN 'pgfeed_new' END) AS c
             WHERE p.pronamespace = 'pgfeed'::regnamespace
               -- the SQL contract names feed()'s parameter "limit" (quoted, as every call may)
               AND c.message <> 'name of parameter "limit" is reserved keyword'
        """).fetchall()
        followers = conn.execute("SELECT count(*) FROM pg_proc WHERE proname LIKE '\\_follow\\_interactions\\_%'")
        assert followers.fetchone()[0] == 2
    assert found == []
