"""Apply the SQL bundle: bootstrap, run-once migrations, re-runnable definitions,
privileges, in that order, in one transaction under a lock.

The CLI, the alembic migrations and the tests all install through here.
"""

from __future__ import annotations

import hashlib
import os
import sysconfig
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import psycopg

import pgfeed
from pgfeed.connection import ConnOrDsn, connection

_LOCK_KEY = 7_316_524_301  # pg_advisory_xact_lock key serializing installs


class InstallError(RuntimeError):
    """The database cannot take the bundle; the message says why and what to do."""


def bundle_dir() -> Path:
    return Path(str(resources.files("pgfeed") / "sql"))


def default_python_path() -> str:
    """The site-packages of this interpreter, where pgfeed and the model live."""
    paths = sysconfig.get_paths()
    return os.pathsep.join(dict.fromkeys([paths["purelib"], paths["platlib"]]))


def install(conn_or_dsn: ConnOrDsn, *, python_path: str | None = None, feed_admins: Sequence[str] = ()) -> None:
    """Install or upgrade pgfeed in a database. Idempotent.

    ``python_path`` is where the server's PL/Python finds the ``pgfeed`` package
    and its dependencies. It must be readable by the server's OS user. Without
    it, an upgrade keeps the path already set, and a first install takes this
    interpreter's site-packages. The server must be able to import pgfeed from
    there: otherwise nothing is changed and the error says why.

    ``feed_admins`` are roles let create and manage their own feeds
    (``pgfeed.grant_admin``): a project that migrates as a role that is not a
    superuser.
    """
    sql = bundle_dir()
    with connection(conn_or_dsn) as conn, conn.transaction():
        _require_superuser(conn)
        conn.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK_KEY])
        caller_search_path = conn.execute("SELECT current_setting('search_path')").fetchone()[0]
        _execute_file(conn, sql / "bootstrap.sql")
        applied = dict(conn.execute("SELECT name, body_sha256 FROM pgfeed.migration").fetchall())
        for path in sorted((sql / "migrations").glob("*.sql")):
            body = path.read_text()
            digest = hashlib.sha256(body.encode()).hexdigest()
            if path.name not in applied:
                _execute_file(conn, path)
                conn.execute("INSERT INTO pgfeed.migration (name, body_sha256) VALUES (%s, %s)", [path.name, digest])
            elif applied[path.name] != digest:
                raise InstallError(
                    f"migration {path.name} was applied with other contents; released migrations are frozen: "
                    "add a new migration file instead of editing this one"
                )
        conn.execute("INSERT INTO pgfeed.setting (name, value) VALUES ('version', %s) "
                     "ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value", [pgfeed.__version__])
        # a path given replaces the one set; none keeps it (re-running install to upgrade loses nothing)
        conn.execute("INSERT INTO pgfeed.setting (name, value) VALUES ('python_path', %s) "
                     "ON CONFLICT (name) DO UPDATE SET value = coalesce(%s, pgfeed.setting.value)",
                     [python_path or default_python_path(), python_path])
        vector_schema = conn.execute(
            "SELECT quote_ident(extnamespace::regnamespace::text) FROM pg_extension WHERE extname = 'vector'"
        ).fetchone()[0]
        # Definitions resolve names only in pg_catalog and pgfeed, which no ordinary role can
        # write, and name pgvector's objects with its schema (SECURITY.md).
        conn.execute("SELECT set_config('search_path', 'pg_catalog, pgfeed, pg_temp', true)")
        for path in sorted((sql / "definitions").glob("*.sql")):
            _execute_file(conn, path, vector_schema)
        _execute_file(conn, sql / "privileges.sql", vector_schema)
        _check_server_import(conn)
        for role in feed_admins:
            conn.execute("SELECT pgfeed.grant_admin(%s::regrole)", [role])
        # the caller's transaction (alembic's, say) goes on with its own search_path
        conn.execute("SELECT set_config('search_path', %s, true)", [caller_search_path])


def settings(conn_or_dsn: ConnOrDsn) -> dict[str, str]:
    """What install recorded: version, python_path."""
    with connection(conn_or_dsn) as conn:
        return dict(conn.execute("SELECT name, value FROM pgfeed.setting ORDER BY name").fetchall())


def _check_server_import(conn: psycopg.Connection) -> None:
    try:
        with conn.transaction():
            conn.execute("SELECT pgfeed._python_init()")
    except psycopg.Error as exc:
        path = conn.execute("SELECT value FROM pgfeed.setting WHERE name = 'python_path'").fetchone()[0]
        raise InstallError(
            f"the server cannot import pgfeed from python_path {path!r}: {exc.diag.message_primary}; pass "
            "--python-path (python_path=...) with the site-packages of an environment where pgfeed is installed "
            "and that the server's OS user can read"
        ) from exc


def uninstall(conn_or_dsn: ConnOrDsn) -> None:
    """Remove every feed (and so every trigger on user tables), then the schema."""
    with connection(conn_or_dsn) as conn, conn.transaction():
        exists = conn.execute("SELECT to_regclass('pgfeed.feed_config') IS NOT NULL").fetchone()[0]
        if exists:
            conn.execute("SELECT pgfeed.drop_feed(name) FROM pgfeed.feed_config")
        conn.execute("DROP SCHEMA IF EXISTS pgfeed CASCADE")


def _require_superuser(conn: psycopg.Connection) -> None:
    if conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()[0]:
        return
    raise InstallError(
        "installing pgfeed needs a superuser: it creates PL/Python (untrusted) functions "
        "and fixes where the server imports Python code from; connect as one, e.g. postgres"
    )


def _execute_file(conn: psycopg.Connection, path: Path, vector_schema: str | None = None) -> None:
    body = path.read_text()
    if vector_schema is not None:
        body = body.replace("@vector@", vector_schema)
    try:
        conn.execute(body)
    except psycopg.errors.UndefinedFile as exc:  # an extension the server lacks
        raise InstallError(
            f"{exc.diag.message_primary}: pgfeed needs pgvector >= 0.8 and plpython3u on the server "
            "(on Debian/Ubuntu: apt-get install postgresql-plpython3-NN, and build pgvector; see the README)"
        ) from exc
