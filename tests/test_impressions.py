"""Impressions: the application's own table of what it showed to whom. With
exclude_seen, feed() leaves those items out, for the feed's seen_for or for
good; impressions never enter a profile or a like count. Checked against the
numpy reference (test_feed.reference_feed) with the shown items excluded."""

import psycopg
import pytest
from test_feed import TOPICS, WEIGHTS, compare, feed_in_one_transaction, reference_feed

import pgfeed
from conftest import APP_ROLE, attach, feed_id, fresh, make_tables


def setup_feed(conn, app, backfill_shown=()):
    """60 posts, user 1 likes six of them; an impression table, attached (after the rows in backfill_shown,
    (user, post) pairs, are in it)."""
    post, like = make_tables(conn)
    shown = fresh("shown")
    conn.execute(f"""CREATE TABLE {shown} (user_id integer NOT NULL, post_id integer NOT NULL,
                                           shown_at timestamptz NOT NULL DEFAULT clock_timestamp());
                     ALTER TABLE {shown} OWNER TO {APP_ROLE}""")
    feed = attach(conn, post, like, profile_size=10, **WEIGHTS)
    conn.execute(f"""INSERT INTO {post} (title, body, created_at)
                     SELECT 'post ' || g, (%s::text[])[g %% 5 + 1] || ' ' || (g %% 7), now() - g * interval '37 minutes'
                       FROM generate_series(1, 60) g""", [TOPICS])
    ids = [r[0] for r in conn.execute(f"SELECT id FROM {post} ORDER BY id")]
    app.cursor().executemany(f"INSERT INTO {like} (user_id, post_id) VALUES (1, %s)", [(i,) for i in ids[::10]])
    app.cursor().executemany(f"INSERT INTO {like} (user_id, post_id) VALUES (7, %s)", [(i,) for i in ids[:30]])
    app.cursor().executemany(f"INSERT INTO {shown} (user_id, post_id) VALUES (%s, %s)",
                             [(u, ids[i]) for u, i in backfill_shown])
    conn.execute("SELECT pgfeed.attach_impressions(%s, %s::regclass, 'user_id', 'post_id', 'shown_at')",
                 [feed, shown])
    return post, like, shown, feed, ids


def shown_to(conn, shown, user_id):
    return {r[0] for r in conn.execute(f"SELECT post_id FROM {shown} WHERE user_id = %s", [user_id])}


def test_shown_items_are_left_out(app, conn, app_dsn):
    post, like, shown, feed, _ = setup_feed(conn, app)
    first = [i.item_id for i in pgfeed.feed(app, feed, 1, limit=10)]
    app.cursor().executemany(f"INSERT INTO {shown} (user_id, post_id) VALUES (1, %s)", [(i,) for i in first])
    now, actual = feed_in_one_transaction(app_dsn, feed, 1, limit=60)
    assert not set(first) & {i.item_id for i in actual}
    compare(reference_feed(conn, post, like, 1, now, exclude=set(first)), actual, 60)
    # shown to user 1 only; and exclude_seen => false shows them again
    assert set(first) <= {i.item_id for i in pgfeed.feed(app, feed, 2, limit=60)}
    assert set(first) <= {i.item_id for i in pgfeed.feed(app, feed, 1, limit=60, exclude_seen=False)}


def test_seen_for_brings_shown_items_back_but_never_liked_ones(app, conn, app_dsn):
    post, like, shown, feed, ids = setup_feed(conn, app)
    liked = {r[0] for r in conn.execute(f"SELECT post_id FROM {like} WHERE user_id = 1")}
    old, recent = [i for i in ids[1:20] if i not in liked][:5], [i for i in ids[21:40] if i not in liked][:5]
    app.cursor().executemany(f"INSERT INTO {shown} (user_id, post_id, shown_at) VALUES (1, %s, now() - interval '3 hours')",
                             [(i,) for i in old])
    app.cursor().executemany(f"INSERT INTO {shown} (user_id, post_id) VALUES (1, %s)", [(i,) for i in recent])
    app.execute(f"UPDATE {like} SET created_at = now() - interval '5 hours' WHERE user_id = 1")  # liked long ago
    everything = {i.item_id for i in pgfeed.feed(app, feed, 1, limit=100)}
    assert not everything & (set(old) | set(recent) | liked)
    conn.execute("SELECT pgfeed.alter_feed(%s, seen_for => '1 hour')", [feed])
    now, actual = feed_in_one_transaction(app_dsn, feed, 1, limit=100)
    assert set(old) <= {i.item_id for i in actual}
    compare(reference_feed(conn, post, like, 1, now, exclude=set(recent)), actual, 100)
    conn.execute("SELECT pgfeed.alter_feed(%s, seen_for => '0')", [feed])  # 0: hidden for good again
    assert not set(old) & {i.item_id for i in pgfeed.feed(app, feed, 1, limit=100)}


def test_impressions_enter_no_profile_and_no_like_count(app, conn):
    """Nor do they push likes out of a profile's window (the last profile_size interactions): user 7 liked 30
    items, and is then shown 30 more."""
    _, _, shown, feed, ids = setup_feed(conn, app)
    fid = feed_id(conn, feed)
    profiles = {u: pgfeed.profile(app, feed, u) for u in (1, 7)}
    counts = conn.execute(f"SELECT item_id, popularity FROM pgfeed.item_popularity_{fid} ORDER BY 1").fetchall()
    app.cursor().executemany(f"INSERT INTO {shown} (user_id, post_id) VALUES (%s, %s)",
                             [(u, i) for u in (1, 3, 7) for i in ids[5:45]])
    assert {u: pgfeed.profile(app, feed, u) for u in (1, 7)} == profiles
    conn.execute("SELECT pgfeed.work(%s)", [feed])  # (folds any appended count, stores any marked profile)
    assert {u: pgfeed.profile(app, feed, u) for u in (1, 7)} == profiles
    assert pgfeed.profile(app, feed, 3) is None  # shown things, liked none: a cold start
    assert conn.execute(f"SELECT item_id, popularity FROM pgfeed.item_popularity_{fid} ORDER BY 1").fetchall() == counts


def test_truncate_detach_backfill_and_copy_behave_as_for_likes(app, conn):
    _, _, shown, feed, ids = setup_feed(conn, app, backfill_shown=[(1, i) for i in range(1, 20, 2)])
    backfilled = shown_to(conn, shown, 1)
    assert len(backfilled) == 10 and not backfilled & {i.item_id for i in pgfeed.feed(app, feed, 1, limit=100)}
    app.execute(f"TRUNCATE {shown}")
    assert backfilled <= {i.item_id for i in pgfeed.feed(app, feed, 1, limit=100)}
    with app.cursor().copy(f"COPY {shown} (user_id, post_id) FROM STDIN") as copy:
        for i in ids[41:50]:
            copy.write_row([1, i])
    assert not set(ids[41:50]) & {i.item_id for i in pgfeed.feed(app, feed, 1, limit=100)}
    conn.execute("SELECT pgfeed.detach(%s, %s::regclass)", [feed, shown])
    assert set(ids[41:50]) <= {i.item_id for i in pgfeed.feed(app, feed, 1, limit=100)}


def test_a_like_table_of_weight_zero_is_pointed_to_impressions(conn):
    post, like = make_tables(conn)
    feed = attach(conn, post, like)
    other = fresh("shown")
    conn.execute(f"CREATE TABLE {other} (user_id integer NOT NULL, post_id integer NOT NULL)")
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="non-zero") as error:
        conn.execute("SELECT pgfeed.attach_interactions(%s, %s::regclass, 'user_id', 'post_id', 0)", [feed, other])
    assert "attach_impressions" in error.value.diag.message_hint


def test_a_rating_of_weight_zero_is_no_impression(app, conn):
    """seen_for brings back shown items, not an item rated 3 stars under 'stars - 3' (weight 0, but a rating)."""
    _, _, shown, feed, ids = setup_feed(conn, app)
    ratings = fresh("rating")
    conn.execute(f"""CREATE TABLE {ratings} (user_id integer NOT NULL, post_id integer NOT NULL, stars integer NOT NULL,
                                             rated_at timestamptz NOT NULL DEFAULT now() - interval '3 hours')""")
    conn.execute(f"SELECT pgfeed.attach_interactions(%s, '{ratings}'::regclass, 'user_id', 'post_id', "
                 "created_at_column => 'rated_at', weight_expression => 'stars - 3')", [feed])
    conn.execute(f"INSERT INTO {ratings} (user_id, post_id, stars) VALUES (1, %s, 3)", [ids[3]])
    conn.execute(f"INSERT INTO {shown} (user_id, post_id, shown_at) VALUES (1, %s, now() - interval '3 hours')", [ids[5]])
    conn.execute("SELECT pgfeed.alter_feed(%s, seen_for => '1 hour')", [feed])
    got = {i.item_id for i in pgfeed.feed(app, feed, 1, limit=100)}
    assert ids[5] in got and ids[3] not in got
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="at most 100 years"):
        conn.execute("SELECT pgfeed.alter_feed(%s, seen_for => '200000 years')", [feed])
