"""A write request's latency in the example Django blog (examples/django), side by side in one run: a sync feed
through connections closed after each request (CONN_MAX_AGE 0, Django's default), through kept connections
(CONN_MAX_AGE 600), through Django's connection pool, and an async feed through closed connections.

    python bench/django_writes.py --dsn "<superuser DSN>" [--requests 8] [--rounds 2]

Each configuration runs in a process of its own (settings are read once), as one single-threaded worker of a
WSGI server would: signed in, POSTing new posts to /posts/ through Django's WSGIHandler. The database blog_bench
is made afresh; the posts are real sentences (demo/posts.csv)."""

from __future__ import annotations

import csv
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import click
import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

import pgfeed

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "django"
DATABASE = "blog_bench"
CONFIGURATIONS = {
    "sync, CONN_MAX_AGE 0": {"BLOG_CONN_MAX_AGE": "0"},
    "sync, CONN_MAX_AGE 600": {"BLOG_CONN_MAX_AGE": "600"},
    "sync, pool": {"BLOG_POOL": "1"},
    "async, CONN_MAX_AGE 0": {"BLOG_CONN_MAX_AGE": "0", "MODE": "async"},
}


def texts() -> list[tuple[str, str]]:
    with open(ROOT / "demo" / "posts.csv", newline="") as f:
        return [(row["topic"], row["text"]) for row in csv.DictReader(f)]


def child(requests: int, offset: int) -> None:
    """In the configured process, as one worker of a WSGI server: POST `requests` posts through Django's
    WSGIHandler (which sends the request signals, so connections close or go back to the pool as in production;
    the test client would keep them), signed in, with a CSRF token; print each request's seconds as JSON."""
    sys.path.insert(0, str(EXAMPLE))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "blogsite.settings")
    import django

    django.setup()
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.auth.models import User
    from django.contrib.sessions.backends.db import SessionStore
    from django.core.handlers.wsgi import WSGIHandler
    from django.db import connections
    from django.test.client import BOUNDARY, MULTIPART_CONTENT, FakePayload, RequestFactory, encode_multipart
    from django.utils.crypto import get_random_string

    user = User.objects.get(username="writer")
    session = SessionStore()
    session.update({SESSION_KEY: str(user.pk), BACKEND_SESSION_KEY: "django.contrib.auth.backends.ModelBackend",
                    HASH_SESSION_KEY: user.get_session_auth_hash()})
    session.save()
    connections.close_all()  # a server process starts without one
    token, handler, factory = get_random_string(32), WSGIHandler(), RequestFactory()
    seconds, status = [], []
    for title, body in texts()[offset:offset + requests]:
        data = encode_multipart(BOUNDARY, {"title": title, "body": body})
        environ = factory._base_environ(
            PATH_INFO="/posts/", REQUEST_METHOD="POST", CONTENT_TYPE=MULTIPART_CONTENT,
            CONTENT_LENGTH=str(len(data)), HTTP_COOKIE=f"sessionid={session.session_key}; csrftoken={token}",
            HTTP_X_CSRFTOKEN=token, **{"wsgi.input": FakePayload(data)})
        status.clear()
        start = time.perf_counter()
        response = handler(environ, lambda code, headers: status.append(code))  # noqa: B023 (read at once)
        b"".join(response)
        response.close()  # request_finished: CONN_MAX_AGE 0 closes the connection here
        seconds.append(time.perf_counter() - start)
        assert status == ["201 Created"], (status, b"".join(response))
    print(json.dumps(seconds))


@click.command()
@click.option("--dsn", required=True, help="a superuser's DSN on the server to measure")
@click.option("--requests", default=8, show_default=True, help="write requests a configuration a round")
@click.option("--rounds", default=2, show_default=True, help="rounds, the configurations alternating in each")
@click.option("--child-requests", type=int, hidden=True)
@click.option("--child-offset", type=int, hidden=True)
def main(dsn: str, requests: int, rounds: int, child_requests: int | None, child_offset: int | None) -> None:
    if child_requests is not None:
        return child(child_requests, child_offset)
    server = conninfo_to_dict(dsn)
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {DATABASE}")
    blog_dsn = make_conninfo(dsn, dbname=DATABASE)
    pgfeed.install(blog_dsn)
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PG", "BLOG_"))}
    env.update(PGDATABASE=DATABASE, PGUSER=server.get("user", ""), PGHOST=server.get("host", ""),
               PGPORT=server.get("port", ""), DJANGO_SETTINGS_MODULE="blogsite.settings")
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=EXAMPLE, env=env, check=True)
    with psycopg.connect(blog_dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO auth_user (username, password, is_superuser, first_name, last_name, email, "
                     "is_staff, is_active, date_joined) VALUES ('writer', '!', false, '', '', '', false, true, now())")
    measured: dict[str, list[list[float]]] = {name: [] for name in CONFIGURATIONS}
    offset = 0
    for _ in range(rounds):
        for name, settings in CONFIGURATIONS.items():
            with psycopg.connect(blog_dsn, autocommit=True) as conn:
                conn.execute("SELECT pgfeed.alter_feed('posts', mode => %s)", [settings.get("MODE", "sync")])
            out = subprocess.run([sys.executable, __file__, "--dsn", dsn, "--child-requests", str(requests),
                                  "--child-offset", str(offset)], env={**env, **settings}, check=True,
                                 capture_output=True, text=True).stdout
            measured[name].append(json.loads(out.strip().splitlines()[-1]))
            offset += requests
    click.echo(f"write request (POST /posts/, a sync feed embeds in the request), {requests} a process, {rounds} "
               "rounds; ms")
    click.echo(f"{'configuration':<26} {'first':>14} {'later p50':>10} {'later min':>10} {'later mean':>11} "
               f"{'later max':>10}")
    for name, runs in measured.items():
        later = [s * 1000 for run in runs for s in run[1:]]
        first = "–".join(f"{run[0] * 1000:.0f}" for run in runs)
        click.echo(f"{name:<26} {first:>14} {statistics.median(later):>10.1f} {min(later):>10.1f} "
                   f"{statistics.fmean(later):>11.1f} {max(later):>10.1f}")
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")


if __name__ == "__main__":
    main()
