"""The installer and alembic give the same objects; installing again changes nothing."""

import os
import subprocess
import sys

import psycopg
import pytest
from conftest import ROOT
from psycopg.conninfo import make_conninfo

import pgfeed

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
                    OR NOT coalesce(p.proconfig, '{}') @> ARRAY['search_path=pg_catalog, pgfeed, pg_temp'])
        """).fetchall()
    assert missing == []


def test_alembic_upgrade_gives_what_install_gives_and_downgrade_removes_it(dsn, empty_database):
    alembic(empty_database, "upgrade", "head")
    via_alembic = snapshot(empty_database)
    per_feed = ("item_store_", "item_popularity_", "interaction_log_", "profile_", "_content_rows_", "_content_keys_")
    reference = [row for row in snapshot(dsn) if not row[1].startswith(per_feed)]
    # the test database's server path also reaches tests/server; nothing else may differ
    strip = lambda rows: [r for r in rows if r[:2] != ("setting", "python_path")]
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
