"""examples/django, as its developers run it: the application's role (not a superuser) migrates a fresh database,
is told the one step a superuser runs once, and after it migrates and runs the blog's own tests with Django's test
runner (their test database made from a template that step gave pgfeed)."""

import os
import shlex
import signal
import subprocess
import sys
import time

import psycopg
from psycopg.conninfo import conninfo_to_dict

from conftest import ROOT, server_dsn

EXAMPLE = ROOT / "examples" / "django"
ROLE, DATABASE, TEMPLATE = "blog_app", "blog_example", "blog_example_template"


def drop_everything(admin):
    for name in (f"test_{DATABASE}", DATABASE, TEMPLATE):
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    admin.execute(f"DROP ROLE IF EXISTS {ROLE}")


def manage(*arguments, env):
    return subprocess.run([sys.executable, "manage.py", *arguments], cwd=EXAMPLE, env=env, capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, timeout=1200)


def test_the_example_blog_migrates_as_its_own_role_and_passes_its_tests(dsn):
    server = conninfo_to_dict(server_dsn())
    with psycopg.connect(server_dsn(), autocommit=True) as admin:
        drop_everything(admin)
        admin.execute(f"CREATE ROLE {ROLE} LOGIN CREATEDB")
        admin.execute(f"CREATE DATABASE {DATABASE} OWNER {ROLE}")
        admin.execute(f"CREATE DATABASE {TEMPLATE} OWNER {ROLE}")  # its owner may copy it
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PG", "DJANGO"))}
    env.update(PGHOST=server["host"], PGPORT=server["port"], PGUSER=ROLE, PGDATABASE=DATABASE,
               BLOG_TEST_TEMPLATE=TEMPLATE, PATH=f"{os.path.dirname(sys.executable)}{os.pathsep}{env['PATH']}")
    try:
        first = manage("migrate", "--noinput", env=env)
        assert first.returncode != 0
        steps = [shlex.split(line) for line in first.stderr.splitlines() if line.strip().startswith("pgfeed install")]
        assert [conninfo_to_dict(step[3])["dbname"] for step in steps] == [DATABASE, TEMPLATE], first.stderr
        for step in steps:  # what a superuser runs, as printed
            assert step[4:] == ["--feed-admin", ROLE] and conninfo_to_dict(step[3])["user"] == "postgres"
            subprocess.run(step, env=env, check=True, capture_output=True, stdin=subprocess.DEVNULL)

        again = manage("migrate", "--noinput", env=env)
        assert again.returncode == 0, again.stderr
        assert "Applying blog.0002_feed... OK" in again.stdout
        with psycopg.connect(f"dbname={DATABASE} user={ROLE}", host=server["host"], port=server["port"]) as app:
            assert app.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone() == (False,)
            assert app.execute("SELECT owner::regrole::text, model FROM pgfeed.feed_config WHERE name = 'posts'"
                               ).fetchone() == (ROLE, "all-MiniLM-L6-v2")

        # the worker under a process manager: manage.py pgfeed worker, as the blog's role, stopped by SIGTERM
        with psycopg.connect(f"dbname={DATABASE} user={ROLE}", host=server["host"], port=server["port"],
                             autocommit=True) as app:
            app.execute("SELECT pgfeed.alter_feed('posts', mode => 'async')")
            app.execute("INSERT INTO auth_user (username, password, is_superuser, first_name, last_name, email, "
                        "is_staff, is_active, date_joined) VALUES ('ann', '!', false, '', '', '', false, true, now())")
            app.execute("INSERT INTO blog_post (author_id, title, body, published, created_at) SELECT u.id, "
                        "'Post ' || g, 'About gardens, part ' || g, true, now() FROM auth_user u, generate_series(1, 3) g")
            worker = subprocess.Popen([sys.executable, "manage.py", "pgfeed", "worker", "--poll", "600", "--quiet"],
                                      cwd=EXAMPLE, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                deadline = time.monotonic() + 120
                while app.execute("SELECT embedded FROM pgfeed.status() WHERE feed = 'posts'").fetchone()[0] < 3:
                    assert time.monotonic() < deadline and worker.poll() is None, worker.stderr.read()
                    time.sleep(0.2)
            finally:
                worker.send_signal(signal.SIGTERM)
                out, err = worker.communicate(timeout=60)
            assert worker.returncode == 0, err
            assert out.startswith("3 embedded, 0 failed, in ")
            app.execute("SELECT pgfeed.alter_feed('posts', mode => 'sync')")

        tests = manage("test", "blog", "--noinput", "-v", "2", env=env)
        assert tests.returncode == 0, tests.stderr[-6000:]
        assert "Ran 11 tests" in tests.stderr and "\nOK" in tests.stderr, tests.stderr[-3000:]
    finally:
        with psycopg.connect(server_dsn(), autocommit=True) as admin:
            drop_everything(admin)
