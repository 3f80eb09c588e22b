"""pgfeed in Django's admin, against the real server: the feeds page (one row per feed of pgfeed.status(), with
retry and re-embed behind a POST, CSRF and a permission), the content model's embedding-state column, list
filter and "re-embed selected"; and the SQL they stand on, pgfeed.item_status and pgfeed.reembed_items, as the
application role (granted, ungranted) and as a feed administrator."""

import html
import importlib
import re
import sys
import uuid

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

import pgfeed
from conftest import APP_ROLE, HASHING, ROOT, attach, drain, encoder_calls, feed_id, fresh, make_tables
from django_settings import configure

PASSWORD = "pgfeed admin tests"


@pytest.fixture(scope="module")
def site(dsn):
    """Django's admin on the test database: its tables (migrate), a content model Post with a PostAdmin of
    FeedAdminMixin over an async feed, a superuser, and a staff user who may only view the feeds page."""
    configure(dsn)
    from django.contrib import admin
    from django.contrib.auth.models import Permission, User
    from django.core.management import call_command
    from django.db import connection
    from django.db import models as m
    from django.urls import clear_url_caches

    from pgfeed.django.admin import FeedAdminMixin

    suffix = uuid.uuid4().hex[:8]

    class Post(m.Model):
        title = m.CharField(max_length=200)
        body = m.TextField()
        status = m.CharField(max_length=20, default="published")
        created_at = m.DateTimeField(auto_now_add=True)

        class Meta:
            app_label = "pgfeed"  # an installed app, which the admin's index needs; pgfeed.django has no migrations
            db_table = f"admin_post_{suffix}"

    # the admin's tables, and the Post table (syncdb: an app without migrations), as the superuser
    call_command("migrate", run_syncdb=True, verbosity=0, skip_checks=True)
    feed = fresh("feed")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pgfeed.create_feed(%s, model => %s, mode => 'async')", [feed, HASHING])
        conn.execute("SELECT pgfeed.attach_content(%s, %s::regclass, 'id', $$title || ' ' || body$$, 'created_at', "
                     "condition => $$status = 'published'$$)", [feed, Post._meta.db_table])

    class PostAdmin(FeedAdminMixin, admin.ModelAdmin):
        pgfeed_feed = feed
        list_display = ("title", "status")
        list_per_page = 50

    admin.site.register(Post, PostAdmin)
    if "django_urls" in sys.modules:  # the admin's URLs were read before Post was registered
        importlib.reload(sys.modules["django_urls"])
    clear_url_caches()
    superuser = User.objects.create_superuser(fresh("admin"), password=PASSWORD)
    viewer = User.objects.create_user(fresh("viewer"), password=PASSWORD, is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(content_type__app_label="pgfeed", codename="view_feed"))
    connection.close()
    yield {"Post": Post, "feed": feed, "superuser": superuser, "viewer": viewer}
    admin.site.unregister(Post)


def client(user, **options):
    from django.test import Client

    c = Client(**options)
    c.force_login(user)
    return c


def text(fragment: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split()


def feed_rows(page: str) -> dict[str, dict]:
    """The feeds page's rows: feed -> {column: its cell's words}."""
    rows = {}
    for name, row in re.findall(r'<tr data-feed="([^"]*)">(.*?)</tr>', page, re.S):
        rows[html.unescape(name)] = {column: text(cell)
                                     for column, cell in re.findall(r'<td class="pgfeed-(\w+)">(.*?)</td>', row, re.S)}
    return rows


def count(cell: list[str]) -> int | None:
    return None if cell[0] == "–" else int(cell[0])


def changelist_states(page: str) -> dict[int, str]:
    """The changelist's rows: key -> the state its embedding column shows."""
    states = {}
    for row in re.findall(r"<tr>(.*?)</tr>", page, re.S):
        key = re.search(r'name="_selected_action" value="(\d+)"', row)
        state = re.search(r'class="pgfeed-state" data-state="(\w*)"', row)
        if key and state:
            states[int(key.group(1))] = state.group(1)
    return states


def independent_states(conn, feed: str, keys) -> dict[int, str]:
    """Each key's state read straight from the feed's store and queue, as a superuser."""
    store = f"pgfeed.item_store_{feed_id(conn, feed)}"
    rows = conn.execute(f"""
        SELECT k, CASE WHEN EXISTS (SELECT FROM pgfeed.embedding_queue q WHERE q.feed_id = %s AND q.item_id = k::text
                                                                     AND q.failed_at IS NULL) THEN 'pending'
                       WHEN EXISTS (SELECT FROM pgfeed.embedding_queue q WHERE q.feed_id = %s AND q.item_id = k::text)
                         OR EXISTS (SELECT FROM {store} s WHERE s.item_id = k AND s.error IS NOT NULL) THEN 'failed'
                       WHEN EXISTS (SELECT FROM {store} s WHERE s.item_id = k AND s.embedding IS NOT NULL) THEN 'embedded'
                       ELSE 'absent' END
          FROM unnest(%s::bigint[]) AS k""", [feed_id(conn, feed)] * 2 + [list(keys)]).fetchall()
    return dict(rows)


@pytest.fixture
def posts(site, conn):
    """Posts of the admin's async feed in each state: embedded, failed (an empty text), pending (queued since the
    last drain), absent (a draft); keys by state."""
    Post, feed = site["Post"], site["feed"]
    Post.objects.all().delete()
    drain(conn, feed)
    made = {"embedded": [Post.objects.create(title=f"garden {i}", body="soil and seeds").pk for i in range(3)],
            "failed": [Post.objects.create(title="", body="").pk]}
    drain(conn, feed)
    made["pending"] = [Post.objects.create(title=f"bread {i}", body="dough").pk for i in range(2)]
    made["absent"] = [Post.objects.create(title="draft", body="not yet", status="draft").pk]
    keys = [k for ks in made.values() for k in ks]
    assert independent_states(conn, feed, keys) == {k: state for state, ks in made.items() for k in ks}
    return made


def test_the_index_has_a_pgfeed_section_and_the_feeds_page_one_row_per_feed(site, conn, posts):
    superuser, feed = site["superuser"], site["feed"]
    # a sync feed with likes and a profile beside the admin's async one
    post, like = make_tables(conn)
    sync_feed = attach(conn, post, like)
    conn.execute(f"INSERT INTO {post} (title, body) VALUES ('a', 'one'), ('b', 'two'), ('', '')")
    conn.execute(f"INSERT INTO {like} (user_id, post_id) SELECT 7, min(id) FROM {post}")
    drain(conn, sync_feed)

    index = client(superuser).get("/admin/")
    assert index.status_code == 200
    assert 'href="/admin/pgfeed/"' in index.text and 'href="/admin/pgfeed/feed/"' in index.text

    page = client(superuser).get("/admin/pgfeed/feed/")
    assert page.status_code == 200
    rows = feed_rows(page.text)
    status = {row["feed"]: row for row in pgfeed.status(conn)}
    assert set(rows) == set(status)  # one row per feed, no other
    for name, row in rows.items():
        for column in ("items", "embedded", "pending", "failed", "profiles"):
            assert count(row[column]) == status[name][column], (name, column)
        assert row["mode"] == [status[name]["mode"]] and row["model"][0] == status[name]["model"]
    # the counts, checked on their own
    assert [count(rows[feed][c]) for c in ("items", "embedded", "pending", "failed")] == [6, 3, 2, 1]
    assert [count(rows[sync_feed][c]) for c in ("items", "embedded", "pending", "failed", "profiles")] == [3, 2, 0, 1, 1]
    # the latest errors under the failed counts
    failed_key = posts["failed"][0]
    assert f"{failed_key} : text expression is empty" in " ".join(rows[feed]["failed"])
    assert "text expression is empty" in " ".join(rows[sync_feed]["failed"])
    assert "Retry" in page.text and "Re-embed" in page.text


def test_the_feeds_page_is_for_those_with_the_permission_and_its_actions_for_managers(site, conn, posts):
    viewer, superuser, feed = site["viewer"], site["superuser"], site["feed"]
    page = client(viewer).get("/admin/pgfeed/feed/")
    assert page.status_code == 200 and feed in feed_rows(page.text)
    assert "Retry" not in page.text and 'name="action"' not in page.text
    queue_before = conn.execute("SELECT count(*) FROM pgfeed.embedding_queue").fetchone()[0]
    assert client(viewer).post("/admin/pgfeed/feed/", {"feed": feed, "action": "retry"}).status_code == 403
    # a POST without the CSRF token is refused, even a superuser's
    assert client(superuser, enforce_csrf_checks=True).post(
        "/admin/pgfeed/feed/", {"feed": feed, "action": "retry"}).status_code == 403
    assert conn.execute("SELECT count(*) FROM pgfeed.embedding_queue").fetchone()[0] == queue_before
    # nor has the index a row for a staff user without it
    from django.contrib.auth.models import User
    stranger = User.objects.create_user(fresh("staff"), password=PASSWORD, is_staff=True)
    assert client(stranger).get("/admin/pgfeed/feed/").status_code == 403
    assert 'href="/admin/pgfeed/feed/"' not in client(stranger).get("/admin/").text
    # no page to add, change or delete a feed
    assert client(superuser).get(f"/admin/pgfeed/feed/{feed}/change/").status_code == 404


def test_retry_and_reembed_act_on_the_feed_and_say_how_many(site, conn, posts):
    superuser, feed, Post = site["superuser"], site["feed"], site["Post"]
    failed = str(posts["failed"][0])
    # retry: the failed item queued again, attempts reset
    response = client(superuser).post("/admin/pgfeed/feed/", {"feed": feed, "action": "retry"}, follow=True)
    assert response.status_code == 200
    assert f"Feed “{feed}”: 1 failed item(s) queued again." in response.text
    assert conn.execute("SELECT attempts FROM pgfeed.embedding_queue WHERE feed_id = %s AND item_id = %s AND "
                        "failed_at IS NULL", [feed_id(conn, feed), failed]).fetchall() == [(0,)]
    # re-embed: rows the triggers skipped (a bulk load) are embedded now
    with psycopg.connect(conn.info.dsn) as loader:
        loader.execute("SET pgfeed.skip_content_triggers = on")
        loader.execute(f"INSERT INTO {Post._meta.db_table} (title, body, status, created_at) "
                       "SELECT 'loaded ' || g, 'in bulk', 'published', now() FROM generate_series(1, 4) g")
    skipped = [k for (k,) in conn.execute(f"SELECT id FROM {Post._meta.db_table} WHERE title LIKE 'loaded %%'")]
    assert set(independent_states(conn, feed, skipped).values()) == {"absent"}
    response = client(superuser).post("/admin/pgfeed/feed/", {"feed": feed, "action": "reembed"}, follow=True)
    # the two pending bread posts and the four loaded ones (the failed one stays failed: its text is empty)
    assert f"Feed “{feed}”: 6 item(s) embedded." in response.text
    assert set(independent_states(conn, feed, skipped + posts["pending"]).values()) == {"embedded"}
    # a feed that does not exist: the database's error, shown
    response = client(superuser).post("/admin/pgfeed/feed/", {"feed": "no_such_feed", "action": "retry"}, follow=True)
    assert "Feed “no_such_feed”: retry failed: unknown feed" in html.unescape(response.text)


def test_as_the_application_role_the_page_shows_its_feeds_and_says_what_it_may_not_do(site, conn, app):
    from django.db import connection

    post, like = make_tables(conn)
    granted = attach(conn, post, like)  # granted to the application role; the admin's own feed is not
    # Django's tables for the role: sessions, users, permissions
    conn.execute(f"""DO $$ DECLARE t text; BEGIN
        FOR t IN SELECT quote_ident(tablename) FROM pg_tables WHERE schemaname = 'public'
                  AND (tablename LIKE 'django\\_%' OR tablename LIKE 'auth\\_%') LOOP
            EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %s TO {APP_ROLE}', t);
        END LOOP;
        EXECUTE 'GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {APP_ROLE}';
    END $$""")
    superuser = client(site["superuser"])
    connection.close()
    connection.settings_dict["USER"] = APP_ROLE
    try:
        page = superuser.get("/admin/pgfeed/feed/")
        assert page.status_code == 200
        assert set(feed_rows(page.text)) == {row["feed"] for row in pgfeed.status(app)}
        assert granted in feed_rows(page.text) and site["feed"] not in feed_rows(page.text)
        response = superuser.post("/admin/pgfeed/feed/", {"feed": granted, "action": "retry"}, follow=True)
        said = html.unescape(response.text)
        assert f"Feed “{granted}”: retry failed: " in said  # a feed administrator's call
        assert "Django's database role lacks the right" in said
    finally:
        connection.close()
        connection.settings_dict["USER"] = conninfo_to_dict(conn.info.dsn)["user"]


def test_the_changelist_shows_each_rows_state_from_one_item_status_call(site, conn, posts):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    superuser, feed = site["superuser"], site["feed"]
    with CaptureQueriesContext(connection) as queries:
        page = client(superuser).get(f"/admin/pgfeed/{site['Post']._meta.model_name}/")
    assert page.status_code == 200
    shown = changelist_states(page.text)
    expected = {k: state for state, keys in posts.items() for k in keys}
    assert shown == expected == independent_states(conn, feed, expected)
    assert sum("pgfeed.item_status" in q["sql"] for q in queries.captured_queries) == 1  # a page, not a row
    assert "failed: text expression is empty" in page.text


def test_the_state_filter_selects_exactly_the_items_of_that_state(site, conn, posts):
    superuser = site["superuser"]
    url = f"/admin/pgfeed/{site['Post']._meta.model_name}/"
    page = client(superuser).get(url)
    for state in ("embedded", "pending", "failed", "absent"):
        assert f"?pgfeed_state={state}" in page.text  # offered
        filtered = client(superuser).get(url, {"pgfeed_state": state})
        assert filtered.status_code == 200
        assert sorted(changelist_states(filtered.text)) == sorted(posts[state]), state
        assert set(changelist_states(filtered.text).values()) == {state}


def test_reembed_selected_queues_exactly_the_selected_items(site, conn, posts):
    superuser, viewer, feed = site["superuser"], site["viewer"], site["feed"]
    url = f"/admin/pgfeed/{site['Post']._meta.model_name}/"
    queue = "SELECT item_id::bigint FROM pgfeed.embedding_queue WHERE feed_id = %s AND failed_at IS NULL ORDER BY 1"
    before = [k for (k,) in conn.execute(queue, [feed_id(conn, feed)])]
    assert before == sorted(posts["pending"])
    selected = posts["embedded"][:2]
    response = client(superuser).post(url, {"action": "pgfeed_reembed_selected", "_selected_action": selected}, follow=True)
    assert response.status_code == 200
    assert f"Feed “{feed}”: 2 posts embedded again or queued for the workers." in response.text
    after = [k for (k,) in conn.execute(queue, [feed_id(conn, feed)])]
    assert after == sorted(posts["pending"] + selected)
    assert independent_states(conn, feed, selected) == dict.fromkeys(selected, "pending")
    # the action is a manager's: not offered to others (and so refused)
    from django.contrib.auth.models import Permission
    viewer.user_permissions.add(Permission.objects.get(content_type__app_label="pgfeed", codename="view_post"))
    page = client(viewer).get(url)
    assert page.status_code == 200 and "pgfeed_reembed_selected" not in page.text
    client(viewer).post(url, {"action": "pgfeed_reembed_selected", "_selected_action": posts["embedded"][2:]})
    assert [k for (k,) in conn.execute(queue, [feed_id(conn, feed)])] == after


def test_the_admin_needs_no_migration():
    from django.core.management import call_command

    call_command("makemigrations", "--check", "--dry-run", verbosity=0, skip_checks=True)  # exits 1 if it would write one


# The SQL the admin calls.

def item_states(connection, feed, ids):
    return {row[0]: row[1:] for row in connection.execute(
        "SELECT item_id, state, error FROM pgfeed.item_status(%s, %s::text[])", [feed, ids])}


def test_item_status_reads_what_the_grant_gives_and_nothing_without_it(app, conn):
    post, like = make_tables(conn)
    feed = attach(conn, post, like, mode="async")  # granted to the application role
    app.execute(f"INSERT INTO {post} (id, title, body, status) VALUES (1, 'a', 'one', 'published'), (2, '', '', 'published'),"
                " (3, 'c', 'three', 'draft')")
    drain(conn, feed)
    app.execute(f"INSERT INTO {post} (id, title, body) VALUES (4, 'd', 'four')")
    ids = ["1", "2", "3", "4", "999"]
    expected = {"1": ("embedded", None), "2": ("failed", "text expression is empty"), "3": ("absent", None),
                "4": ("pending", None), "999": ("absent", None)}
    assert item_states(app, feed, ids) == item_states(conn, feed, ids) == expected
    assert dict(independent_states(conn, feed, [1, 2, 3, 4, 999])) == {int(k): v[0] for k, v in expected.items()}
    # ids NULL: every pending and failed item, nothing else
    assert sorted(app.execute("SELECT item_id, state FROM pgfeed.item_status(%s, NULL)", [feed]).fetchall()) == \
        [("2", "failed"), ("4", "pending")]
    # another feed, not granted to it: refused as feed() refuses it, before anything is read
    other = fresh("feed")
    conn.execute("SELECT pgfeed.create_feed(%s, model => %s)", [other, HASHING])
    conn.execute(f"SELECT pgfeed.attach_content(%s, '{post}'::regclass, 'id', 'body', 'created_at')", [other])
    for ids_given in (ids, None):
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match=f'permission denied for feed "{other}"'):
            app.execute("SELECT * FROM pgfeed.item_status(%s, %s::text[])", [other, ids_given])
    conn.execute("SELECT pgfeed.revoke_feed(%s, %s)", [feed, APP_ROLE])
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match=f'permission denied for feed "{feed}"'):
        app.execute("SELECT * FROM pgfeed.item_status(%s, %s)", [feed, ids])
    with pytest.raises(psycopg.errors.InsufficientPrivilege):  # nor reads the queue or the store itself
        app.execute(f"SELECT * FROM pgfeed.item_store_{feed_id(conn, feed)}")
    assert app.execute("SELECT count(*) FROM pgfeed.embedding_queue WHERE feed_id = %s",
                       [feed_id(conn, feed)]).fetchone()[0] == 0


def test_reembed_items_is_a_feed_administrators_call(app, conn):
    post, like = make_tables(conn)
    feed = attach(conn, post, like)  # sync, granted to the application role
    app.execute(f"INSERT INTO {post} (id, title, body) SELECT g, 'post ' || g, 'text' FROM generate_series(1, 6) g")
    for call in ("reembed_items(%s, ARRAY['1'])", "reembed(%s)"):  # refused, as reembed() is
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            app.execute(f"SELECT pgfeed.{call}", [feed])
    # the same privileges as reembed(): who may call it, with whose rights
    privileges = "SELECT proacl, prosecdef FROM pg_proc WHERE oid = %s::regprocedure"
    assert conn.execute(privileges, ["pgfeed.reembed_items(text, text[], text)"]).fetchone() == \
        conn.execute(privileges, ["pgfeed.reembed(text, boolean, text)"]).fetchone()
    store = f"pgfeed.item_store_{feed_id(conn, feed)}"
    before = dict(conn.execute(f"SELECT item_id, embedded_at FROM {store}").fetchall())
    # sync: those items embedded again now (unchanged texts too), the others left alone; a key without a row is no item
    calls = encoder_calls(conn)
    assert conn.execute("SELECT pgfeed.reembed_items(%s, ARRAY['2', '4', ' 4', '404'])", [feed]).fetchone()[0] == 2
    assert encoder_calls(conn) == calls + 1
    after = dict(conn.execute(f"SELECT item_id, embedded_at FROM {store}").fetchall())
    assert {k for k in after if after[k] != before[k]} == {2, 4}
    # a row deleted while the triggers were skipped: its item leaves the store, as reembed() does
    with psycopg.connect(conn.info.dsn, autocommit=True) as loader:
        loader.execute("SET pgfeed.skip_content_triggers = on")
        loader.execute(f"DELETE FROM {post} WHERE id = 5")
    assert conn.execute("SELECT pgfeed.reembed_items(%s, ARRAY['5', '6'])", [feed]).fetchone()[0] == 1
    assert 5 not in dict(conn.execute(f"SELECT item_id, 1 FROM {store}").fetchall())
    # async: queued for the workers, not embedded now
    conn.execute("SELECT pgfeed.alter_feed(%s, mode => 'async')", [feed])
    calls = encoder_calls(conn)
    assert conn.execute("SELECT pgfeed.reembed_items(%s, ARRAY['1', '3'])", [feed]).fetchone()[0] == 2
    assert encoder_calls(conn) == calls
    assert sorted(conn.execute("SELECT item_id FROM pgfeed.item_status(%s, NULL) WHERE state = 'pending'",
                               [feed]).fetchall()) == [("1",), ("3",)]
    drain(conn, feed)
    assert item_states(conn, feed, ["1", "3"]) == {"1": ("embedded", None), "3": ("embedded", None)}


@pytest.mark.parametrize("call, error, message", [
    ("item_status(NULL, ARRAY['1'])", psycopg.errors.NullValueNotAllowed, "feed must not be NULL"),
    ("reembed_items(NULL, ARRAY['1'])", psycopg.errors.NullValueNotAllowed, "feed must not be NULL"),
    ("item_status('no_such_feed', ARRAY['1'])", psycopg.errors.UndefinedObject, 'unknown feed "no_such_feed"'),
    ("reembed_items({feed}, NULL)", psycopg.errors.NullValueNotAllowed, "ids must not be NULL"),
    ("item_status({feed}, ARRAY['1', NULL])", psycopg.errors.NullValueNotAllowed,
     r"ids holds a NULL \(element 2 of 2\)"),
    ("reembed_items({feed}, ARRAY[NULL, '1'])", psycopg.errors.NullValueNotAllowed,
     r"ids holds a NULL \(element 1 of 2\)"),
    ("item_status({feed}, ARRAY['1', $$1' OR '1' = '1$$])", psycopg.errors.InvalidTextRepresentation,
     r"""element 2 of ids, '1'' OR ''1'' = ''1', is not an item key of feed "\w+", whose keys are bigint"""),
    ("reembed_items({feed}, ARRAY['99999999999999999999'])", psycopg.errors.InvalidTextRepresentation,
     "element 1 of ids, '99999999999999999999', is not an item key"),
    ("item_status({feed}, ARRAY[repeat('x', 10000)])", psycopg.errors.InvalidTextRepresentation,
     r"element 1 of ids, 'x{60}' \(cut\), is not"),
    ("item_status({feed}, ARRAY[['1'], ['2']])", psycopg.errors.ArraySubscriptError,
     "ids must be a one-dimensional array of item keys, got 2 dimensions"),
])
def test_bad_input_is_named_with_its_fix(conn, call, error, message):
    post, like = make_tables(conn)
    feed = attach(conn, post, like)
    with pytest.raises(error, match=message) as raised:
        conn.execute("SELECT * FROM pgfeed." + call.format(feed=f"'{feed}'"))
    assert raised.value.diag.message_hint  # and what to do


def test_item_keys_of_other_forms_and_many_of_them(conn):
    post, like = make_tables(conn, key="uuid")
    feed = attach(conn, post, like)
    conn.execute(f"INSERT INTO {post} (title, body) VALUES ('a', 'one')")
    key = conn.execute(f"SELECT id FROM {post}").fetchone()[0]
    # keys as given come back as given, matched as the store has them
    given = [str(key).upper(), "{" + str(key) + "}", str(key).replace("-", "")]
    assert item_states(conn, feed, given) == dict.fromkeys(given, ("embedded", None))
    with pytest.raises(psycopg.errors.InvalidTextRepresentation, match="whose keys are uuid"):
        conn.execute("SELECT * FROM pgfeed.item_status(%s, ARRAY['42'])", [feed])
    # a large array: one row a key, in a statement
    many = [str(uuid.uuid4()) for _ in range(50_000)] + [str(key)]
    rows = conn.execute("SELECT state, count(*) FROM pgfeed.item_status(%s, %s::text[]) GROUP BY 1 ORDER BY 1",
                        [feed, many]).fetchall()
    assert rows == [("absent", 50_000), ("embedded", 1)]
    assert conn.execute("SELECT pgfeed.reembed_items(%s, %s::text[])", [feed, many]).fetchone()[0] == 1


def test_during_a_model_switch_items_are_those_of_the_current_model(conn):
    post, like = make_tables(conn)
    feed = attach(conn, post, like)
    conn.execute(f"INSERT INTO {post} (id, title, body) SELECT g, 'post ' || g, 'text' FROM generate_series(1, 40) g")
    small = "pgfeed_test_encoders:SmallHashingEncoder"
    conn.execute("SELECT pgfeed.alter_feed(%s, model => %s)", [feed, small])
    conn.execute("SELECT * FROM pgfeed.work(%s, 8)", [feed])  # the switch under way
    assert conn.execute("SELECT switching_to FROM pgfeed.status() WHERE feed = %s", [feed]).fetchone()[0] == small
    labels = conn.execute("SELECT DISTINCT state, model FROM pgfeed.item_status(%s, ARRAY(SELECT g::text FROM "
                          "generate_series(1, 40) g))", [feed]).fetchall()
    assert labels == [("embedded", f"{HASHING}/384")]
    assert conn.execute("SELECT pgfeed.reembed_items(%s, ARRAY['1', '2'])", [feed]).fetchone()[0] == 2
    drain(conn, feed)  # the switch ends
    labels = conn.execute("SELECT DISTINCT state, model FROM pgfeed.item_status(%s, ARRAY(SELECT g::text FROM "
                          "generate_series(1, 40) g))", [feed]).fetchall()
    assert labels == [("embedded", f"{small}/64")]


def failed_index(conn, table: str) -> list:
    return conn.execute("SELECT indexdef FROM pg_indexes WHERE schemaname = 'pgfeed' AND tablename = %s "
                        "AND indexdef LIKE '%%WHERE (error IS NOT NULL)'", [table]).fetchall()


def test_item_stores_index_their_failed_items(conn):
    post, like = make_tables(conn)
    feed = attach(conn, post, like)
    store = f"item_store_{feed_id(conn, feed)}"
    assert len(failed_index(conn, store)) == 1
    # a model switch's store has it too, and keeps it as the feed's store
    conn.execute(f"INSERT INTO {post} (title, body) VALUES ('a', 'one')")
    conn.execute("SELECT pgfeed.alter_feed(%s, model => 'pgfeed_test_encoders:SmallHashingEncoder')", [feed])
    assert len(failed_index(conn, store + "_next")) == 1
    drain(conn, feed)
    assert conn.execute("SELECT switching_to FROM pgfeed.status() WHERE feed = %s", [feed]).fetchone()[0] is None
    assert len(failed_index(conn, store)) == 1


def test_the_migration_indexes_the_failed_items_of_stores_made_before(empty_database):
    pgfeed.install(empty_database)
    with psycopg.connect(empty_database, autocommit=True) as conn:
        conn.execute("CREATE TABLE post (id bigint PRIMARY KEY, body text, created_at timestamptz)")
        conn.execute("SELECT pgfeed.create_feed('before', model => %s)", [HASHING])
        conn.execute("SELECT pgfeed.attach_content('before', 'post', 'id', 'body', 'created_at')")
        store = f"item_store_{feed_id(conn, 'before')}"
        conn.execute(f"DROP INDEX pgfeed.{failed_index(conn, store)[0][0].split()[2]}")  # as stores were
        conn.execute((ROOT / "sql" / "migrations" / "014-failed-items-index.sql").read_text())
        assert len(failed_index(conn, store)) == 1
