"""Bad input never costs the user a write, and gets an error naming the culprit
and the fix (issue 13, deliverable 5)."""

import math

import psycopg
import pytest

import pgfeed
from conftest import APP_ROLE, HASHING, attach, drain, feed_id, fresh, make_tables


def items(conn, feed):
    return dict(conn.execute(f"SELECT item_id, coalesce(error, 'embedded') FROM pgfeed.item_store_{feed_id(conn, feed)}"))


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("text, condition", [
    ("title || (100 / views)::text", None),
    ("title", "100 / views > 1"),
], ids=["text", "condition"])
def test_an_expression_failing_for_one_row_keeps_every_row(conn, app, mode, text, condition):
    post, _ = make_tables(conn)
    feed = fresh("feed")
    conn.execute("SELECT pgfeed.create_feed(%s, model => %s, mode => %s)", [feed, HASHING, mode])
    conn.execute("SELECT pgfeed.attach_content(%s, %s, 'id', %s, 'created_at', condition => %s)",
                 [feed, post, text, condition])
    ids = [r[0] for r in app.execute(f"INSERT INTO {post} (title, body, views) VALUES ('a', '', 1), ('b', '', 0), "
                                     "('c', '', 2) RETURNING id")]
    assert app.execute(f"SELECT count(*) FROM {post}").fetchone()[0] == 3  # the statement committed whole
    if mode == "async":
        conn.execute("SELECT * FROM pgfeed.work(%s)", [feed])
    assert items(conn, feed) == {ids[0]: "embedded", ids[1]: "text expression or condition failed: division by zero",
                                 ids[2]: "embedded"}
    assert conn.execute("SELECT failed, problem FROM pgfeed.status() WHERE feed = %s", [feed]).fetchone() == (1, None)
    # a reembed skips it the same way, and embeds it once the row is fixed
    assert conn.execute("SELECT pgfeed.reembed(%s)", [feed]).fetchone()[0] == 0
    app.execute(f"UPDATE {post} SET views = 5 WHERE id = %s", [ids[1]])
    conn.execute("SELECT * FROM pgfeed.work(%s)", [feed])
    assert items(conn, feed)[ids[1]] == "embedded"


def test_backfill_skips_rows_the_expression_fails_on(conn, app):
    post, _ = make_tables(conn)
    app.execute(f"INSERT INTO {post} (title, body, views) SELECT 'p' || g, '', g % 3 FROM generate_series(1, 9) g")
    feed = fresh("feed")
    conn.execute("SELECT pgfeed.create_feed(%s, model => %s)", [feed, HASHING])
    embedded = conn.execute("SELECT pgfeed.attach_content(%s, %s, 'id', 'title || (1 / views)::text', 'created_at')",
                            [feed, post]).fetchone()[0]
    assert embedded == 6
    assert sorted(items(conn, feed).values()).count("text expression or condition failed: division by zero") == 3


@pytest.mark.parametrize("table", [
    "CREATE TABLE {t} (id int, title text, created_at timestamptz)",
    "CREATE TABLE {t} (id int NOT NULL, x int NOT NULL, title text, created_at timestamptz, PRIMARY KEY (id, x))",
    "CREATE TABLE {t} (id int UNIQUE, title text, created_at timestamptz)",
], ids=["no key", "one column of a composite key", "unique but nullable"])
def test_the_id_column_must_be_a_unique_key(conn, table):
    name = fresh("post")
    conn.execute(table.format(t=name))
    feed = fresh("feed")
    conn.execute("SELECT pgfeed.create_feed(%s, model => %s)", [feed, HASHING])
    with pytest.raises(psycopg.errors.InvalidTableDefinition, match=f"column public.{name}.id is not a unique key") as e:
        conn.execute("SELECT pgfeed.attach_content(%s, %s, 'id', 'title', 'created_at')", [feed, name])
    assert "primary key" in e.value.diag.message_hint


def test_views_are_not_content_tables(conn):
    post, _ = make_tables(conn)
    conn.execute(f"CREATE VIEW {post}_v AS SELECT * FROM {post}")
    feed = fresh("feed")
    conn.execute("SELECT pgfeed.create_feed(%s, model => %s)", [feed, HASHING])
    with pytest.raises(psycopg.errors.WrongObjectType, match="is not a table"):
        conn.execute("SELECT pgfeed.attach_content(%s, %s, 'id', 'title', 'created_at')", [feed, f"{post}_v"])


def test_infinite_and_missing_times_rank_without_error(conn, app):
    post, like = make_tables(conn)
    app.execute(f"ALTER TABLE {post} ALTER created_at DROP NOT NULL")
    feed = attach(conn, post, like)
    ids = [r[0] for r in app.execute(f"INSERT INTO {post} (title, body, created_at) VALUES "
                                     "('a', 'x', 'infinity'), ('b', 'y', '-infinity'), ('c', 'z', NULL) RETURNING id")]
    app.execute(f"INSERT INTO {like} (user_id, post_id) VALUES (1, %s)", [ids[1]])
    freshness = {item.item_id: item.freshness for item in pgfeed.feed(app, feed, None, limit=10)}
    assert freshness == {ids[0]: 1.0, ids[1]: 0.0, ids[2]: 0.0}
    assert len(pgfeed.feed(app, feed, 1, limit=10)) == 2


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
@pytest.mark.parametrize("setting", ["weight_similarity", "weight_freshness", "weight_popularity",
                                     "popularity_saturation"])
def test_settings_must_be_finite(conn, setting, value):
    with pytest.raises(psycopg.errors.InvalidParameterValue, match=f"{setting} must be a finite number"):
        conn.execute(f"SELECT pgfeed.create_feed(%s, model => %s, {setting} => %s::float8)", [fresh("feed"), HASHING, value])
    post, like = make_tables(conn)
    feed = attach(conn, post, like)
    with pytest.raises(psycopg.errors.InvalidParameterValue, match=f"{setting} must be a finite number"):
        conn.execute(f"SELECT pgfeed.alter_feed(%s, {setting} => %s::float8)", [feed, value])


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_like_weights_must_be_finite(conn, value):
    post, like = make_tables(conn)
    feed = fresh("feed")
    conn.execute("SELECT pgfeed.create_feed(%s, model => %s)", [feed, HASHING])
    conn.execute("SELECT pgfeed.attach_content(%s, %s, 'id', 'title', 'created_at')", [feed, post])
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="weight must be a finite non-zero number"):
        conn.execute("SELECT pgfeed.attach_interactions(%s, %s, 'user_id', 'post_id', weight => %s)", [feed, like, value])


def test_conditions_with_or_are_counted_as_one_condition(conn, app):
    post, _ = make_tables(conn)
    feed = fresh("feed")
    conn.execute("SELECT pgfeed.create_feed(%s, model => %s)", [feed, HASHING])
    conn.execute("SELECT pgfeed.attach_content(%s, %s, 'id', 'title', 'created_at', "
                 "condition => $$status = 'published' OR views > 10$$)", [feed, post])
    app.execute(f"INSERT INTO {post} (title, status, views) VALUES ('a', 'draft', 0), ('b', 'draft', 11), "
                "('c', 'published', 0)")
    assert conn.execute("SELECT items, embedded, pending FROM pgfeed.status() WHERE feed = %s", [feed]).fetchone() \
        == (2, 2, 0)


def attach_titles(conn, post, like, like_time=None):
    """A feed over a post table's titles and a like table; returns its name."""
    feed = fresh("feed")
    conn.execute("SELECT pgfeed.create_feed(%s, model => %s)", [feed, HASHING])
    conn.execute("SELECT pgfeed.attach_content(%s, %s, 'id', 'title', 'created_at')", [feed, post])
    conn.execute("SELECT pgfeed.attach_interactions(%s, %s, 'user_id', 'post_id', created_at_column => %s)",
                 [feed, like, like_time])
    conn.execute("SELECT pgfeed.grant_feed(%s, %s)", [feed, APP_ROLE])
    return feed


def test_truncating_one_partition_forgets_only_its_rows(conn, app):
    """TRUNCATE of one partition (of the content or the like table) leaves the other partitions' items and likes:
    a worker reads the tables again."""
    post, like = fresh("post"), fresh("post_like")
    app.execute(f"""CREATE TABLE {post} (id int PRIMARY KEY, title text, created_at timestamptz DEFAULT now())
                         PARTITION BY RANGE (id);
                     CREATE TABLE {post}_a PARTITION OF {post} FOR VALUES FROM (0) TO (100);
                     CREATE TABLE {post}_b PARTITION OF {post} FOR VALUES FROM (100) TO (200);
                     CREATE TABLE {like} (user_id int, post_id int) PARTITION BY RANGE (user_id);
                     CREATE TABLE {like}_a PARTITION OF {like} FOR VALUES FROM (0) TO (1000);
                     CREATE TABLE {like}_b PARTITION OF {like} FOR VALUES FROM (1000) TO (2000)""")
    feed = attach_titles(conn, post, like)
    app.execute(f"INSERT INTO {post} (id, title) VALUES (1, 'a'), (2, 'b'), (101, 'c'), (102, 'd')")
    app.execute(f"INSERT INTO {like} (user_id, post_id) VALUES (1, 1), (2, 101), (1001, 2), (1002, 102)")
    app.execute(f"TRUNCATE {like}_a")
    app.execute(f"TRUNCATE {post}_b")
    drain(conn, feed)
    fid = feed_id(conn, feed)
    assert sorted(conn.execute(f"SELECT user_id, item_id FROM pgfeed.interaction_log_{fid}").fetchall()) \
        == [(1001, 2), (1002, 102)]
    assert set(items(conn, feed)) == {1, 2}
    assert dict(conn.execute(f"SELECT item_id, popularity FROM pgfeed.item_popularity_{fid} WHERE popularity > 0")) \
        == {2: 1, 102: 1}
    assert conn.execute("SELECT problem FROM pgfeed.status() WHERE feed = %s", [feed]).fetchone()[0] is None


@pytest.mark.parametrize("kind", ["timestamp", "date"])
def test_an_unlike_from_another_time_zone_takes_its_like_out(conn, app, kind):
    """A like time without a zone is logged in UTC: the unlike of a session in another TimeZone finds it."""
    post, like = fresh("post"), fresh("post_like")
    app.execute(f"""CREATE TABLE {post} (id int PRIMARY KEY, title text, created_at timestamptz DEFAULT now());
                     CREATE TABLE {like} (user_id int, post_id int, created_at {kind})""")
    feed = attach_titles(conn, post, like, like_time="created_at")
    app.execute(f"INSERT INTO {post} (id, title) VALUES (7, 'a')")
    app.execute("SET TimeZone = 'UTC'")
    app.execute(f"INSERT INTO {like} VALUES (7, 7, '2026-01-01 12:00')")
    app.execute("SET TimeZone = 'America/New_York'")
    app.execute(f"DELETE FROM {like} WHERE user_id = 7")
    fid = feed_id(conn, feed)
    assert conn.execute(f"SELECT count(*) FROM pgfeed.interaction_log_{fid}").fetchone()[0] == 0
    assert conn.execute(f"SELECT popularity FROM pgfeed.item_popularity_{fid}").fetchall() == [(0,)]


def test_rows_written_to_partitions_are_followed_including_partitions_made_later(conn, app):
    post, like = fresh("post"), fresh("post_like")
    app.execute(f"""CREATE TABLE {post} (id int PRIMARY KEY, title text, created_at timestamptz DEFAULT now())
                         PARTITION BY RANGE (id);
                     CREATE TABLE {post}_1 PARTITION OF {post} FOR VALUES FROM (0) TO (100);
                     CREATE TABLE {like} (user_id int, post_id int) PARTITION BY RANGE (user_id);
                     CREATE TABLE {like}_0 PARTITION OF {like} FOR VALUES FROM (0) TO (100)""")
    feed = attach_titles(conn, post, like)
    # a partition made later, its columns in another order (attached, not created as a partition)
    app.execute(f"CREATE TABLE {post}_2 (created_at timestamptz DEFAULT now(), title text, id int NOT NULL)")
    app.execute(f"ALTER TABLE {post} ATTACH PARTITION {post}_2 FOR VALUES FROM (100) TO (200)")
    app.execute(f"INSERT INTO {post} (id, title) VALUES (1, 'through the table')")
    app.execute(f"INSERT INTO {post}_1 (id, title) VALUES (2, 'straight into a partition')")
    app.execute(f"INSERT INTO {post}_2 (id, title) VALUES (150, 'into the later one')")
    app.execute(f"INSERT INTO {like}_0 (user_id, post_id) SELECT u, 150 FROM generate_series(1, 4) u")
    assert items(conn, feed) == {1: "embedded", 2: "embedded", 150: "embedded"}
    assert pgfeed.feed(app, feed, None, limit=1)[0].item_id == 150  # the most liked
    app.execute(f"DELETE FROM {post}_2 WHERE id = 150")
    assert set(items(conn, feed)) == {1, 2}
    conn.execute("SELECT pgfeed.drop_feed(%s)", [feed])
    assert conn.execute(f"SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'pgfeed%%' AND tgrelid::regclass::text "
                        f"LIKE '{post}%%'").fetchone()[0] == 0


def test_a_foreign_partition_is_refused_its_wrapper_never_read(conn, app):
    """A partition that is a foreign table would be read through its wrapper with pgfeed's rights (a superuser's
    user mapping, a file the superuser may read): a feed refuses to read such a table (a like table: a content
    table's unique key keeps foreign partitions out), at attach and after (the second review of 0.5.0)."""
    post, like = fresh("post"), fresh("post_like")
    app.execute(f"""CREATE TABLE {post} (id int PRIMARY KEY, title text, created_at timestamptz DEFAULT now());
                     CREATE TABLE {like} (user_id int NOT NULL, post_id int NOT NULL) PARTITION BY RANGE (user_id);
                     CREATE TABLE {like}_0 PARTITION OF {like} FOR VALUES FROM (0) TO (100)""")
    feed = attach_titles(conn, post, like)
    conn.execute(f"""CREATE EXTENSION IF NOT EXISTS file_fdw;
                     CREATE SERVER IF NOT EXISTS pgfeed_test_files FOREIGN DATA WRAPPER file_fdw;
                     CREATE FOREIGN TABLE {like}_files (user_id int NOT NULL, post_id int NOT NULL)
                         SERVER pgfeed_test_files OPTIONS (filename '/etc/hostname', format 'text');
                     ALTER TABLE {like} ATTACH PARTITION {like}_files FOR VALUES FROM (100) TO (200)""")
    message = f"partition public.{like}_files of public.{like} is a foreign table"
    assert [s["problem"] for s in pgfeed.status(conn) if s["feed"] == feed][0].startswith(message)
    conn.execute("SELECT pgfeed.detach(%s, %s::regclass)", [feed, like])
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match=message):
        conn.execute(f"SELECT pgfeed.attach_interactions(%s, '{like}', 'user_id', 'post_id')", [feed])
    conn.execute(f"DROP FOREIGN TABLE {like}_files")
