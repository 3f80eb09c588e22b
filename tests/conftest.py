"""Fixtures: a fresh database on a real PostgreSQL (the project-local cluster
unless $PGFEED_TEST_DSN names another server), pgfeed installed in it by a
superuser, an application role that is not one (it owns the tables the tests
make, is granted their feeds, writes and reads as an application does), and
helpers that make content and like tables with fresh names."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

import pgfeed
from pgfeed.installer import default_python_path

ROOT = Path(__file__).resolve().parents[1]
HASHING = "pgfeed.encoders.hashing:HashingEncoder"
FAILING = "pgfeed_test_encoders:FailingEncoder"
SLOW = "pgfeed_test_encoders:SlowEncoder"
POISON = "pgfeed_test_encoders:PoisonEncoder"
TEST_DB = "pgfeed_test"
APP_ROLE = "pgfeed_test_app"


def server_dsn() -> str:
    return os.environ.get("PGFEED_TEST_DSN") or subprocess.check_output(
        [str(ROOT / "scripts" / "localdb.sh"), "dsn", "postgres"], text=True).strip()


@pytest.fixture(scope="session")
def dsn() -> str:
    with psycopg.connect(server_dsn(), autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {TEST_DB} WITH (FORCE)")
        admin.execute(f"DROP ROLE IF EXISTS {APP_ROLE}")  # it owned objects only in the database just dropped
        admin.execute(f"CREATE ROLE {APP_ROLE} LOGIN")
        admin.execute(f"CREATE DATABASE {TEST_DB}")
    test_dsn = make_conninfo(server_dsn(), dbname=TEST_DB)
    # The test server may also import the encoders in tests/server.
    pgfeed.install(test_dsn, python_path=default_python_path() + os.pathsep + str(ROOT / "tests" / "server"))
    with psycopg.connect(test_dsn, autocommit=True) as admin:
        admin.execute(f"GRANT CREATE ON SCHEMA public TO {APP_ROLE}")
    return test_dsn


@pytest.fixture(scope="session")
def app_dsn(dsn) -> str:
    return make_conninfo(dsn, user=APP_ROLE)


@pytest.fixture
def app(app_dsn):
    """A connection as the application role: not a superuser, owner of the tables make_tables makes, granted
    the feeds attach makes."""
    with psycopg.connect(app_dsn, autocommit=True) as connection:
        yield connection


@pytest.fixture
def empty_database():
    """A database of its own, without pgfeed."""
    name = "pgfeed_install_test"
    with psycopg.connect(server_dsn(), autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {name}")
    yield make_conninfo(server_dsn(), dbname=name)
    with psycopg.connect(server_dsn(), autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def conn(dsn):
    with psycopg.connect(dsn, autocommit=True) as connection:
        yield connection


@pytest.fixture(scope="module")
def model_conn(dsn):
    """One connection for a module's real-model tests: the model loads once a backend."""
    with psycopg.connect(dsn, autocommit=True) as connection:
        yield connection


def fresh(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def make_tables(conn, key: str = "integer", owner: str | None = APP_ROLE):
    """A post table and a like table with keys of the given type, owned by the application role (or by the
    role conn logs in as, with owner None); returns their names."""
    post, like = fresh("post"), fresh("post_like")
    default = "gen_random_uuid()" if key == "uuid" else None
    id_column = f"id uuid PRIMARY KEY DEFAULT {default}" if default else "id serial PRIMARY KEY"
    user_type = "uuid" if key == "uuid" else "integer"
    item_type = "uuid" if key == "uuid" else "integer"
    conn.execute(f"""
        CREATE TABLE {post} ({id_column}, title text, body text, status text NOT NULL DEFAULT 'published',
                             views integer NOT NULL DEFAULT 0, created_at timestamptz NOT NULL DEFAULT now());
        CREATE TABLE {like} (user_id {user_type} NOT NULL, post_id {item_type} NOT NULL,
                             created_at timestamptz NOT NULL DEFAULT clock_timestamp())""")
    if owner:
        conn.execute(f"ALTER TABLE {post} OWNER TO {owner}; ALTER TABLE {like} OWNER TO {owner}")
    return post, like


def attach(conn, post: str, like: str, model: str = HASHING, **feed_options) -> str:
    """A new feed over the two tables, attached as a user would; returns its name."""
    name = fresh("feed")
    options = "".join(f", {key} => %({key})s" for key in feed_options)
    conn.execute(f"SELECT pgfeed.create_feed(%(name)s, model => %(model)s{options})",
                 {"name": name, "model": model, **feed_options})
    conn.execute(f"""SELECT pgfeed.attach_content(%s, '{post}'::regclass, 'id', $$title || ' ' || body$$,
                                                 'created_at', condition => $$status = 'published'$$)""", [name])
    conn.execute(f"""SELECT pgfeed.attach_interactions(%s, '{like}'::regclass, 'user_id', 'post_id',
                                                      created_at_column => 'created_at')""", [name])
    conn.execute("SELECT pgfeed.grant_feed(%s, %s)", [name, APP_ROLE])
    return name


def feed_id(conn, name: str) -> int:
    return conn.execute("SELECT feed_id FROM pgfeed.feed_config WHERE name = %s", [name]).fetchone()[0]


def drain(conn, feed: str, batch: int = 64) -> list:
    """pgfeed.work() until it finds nothing ready (the queue, like counts, profiles to store, a model switch);
    the batches it did."""
    calls = []
    while batch_done := conn.execute("SELECT * FROM pgfeed.work(%s, %s)", [feed, batch]).fetchall():
        calls += batch_done
    return calls


def encoder_calls(conn, model: str = HASHING) -> int:
    row = conn.execute("SELECT calls FROM pgfeed.encoder_stats() WHERE model = %s", [model]).fetchone()
    return row[0] if row else 0


@pytest.fixture
def make_role(conn, dsn):
    """make_role(**attributes) -> (name, dsn): a fresh LOGIN role, not a superuser, and a DSN that logs in as it.
    Roles belong to the cluster: each is removed with what it owns or was granted here."""
    made = []

    def make(options: str = "LOGIN"):
        name = fresh("role")
        conn.execute(f"CREATE ROLE {name} {options}")
        made.append(name)
        return name, make_conninfo(dsn, user=name)

    yield make
    for name in made:
        conn.execute(f"DROP OWNED BY {name} CASCADE")
        conn.execute(f"DROP ROLE {name}")
