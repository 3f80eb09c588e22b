"""Profiles and popularity against a numpy reference computed from the user's
own tables: profile = normalized mean of the last N liked items' embeddings.
The profile feed() ranks by (pgfeed.profile) follows a like at once; the
profile table is stored by workers."""

import threading

import numpy as np
import psycopg
import pytest

import pgfeed
from conftest import APP_ROLE, HASHING, attach, drain, feed_id, fresh, make_tables
from pgfeed.encoders.hashing import HashingEncoder

PROFILE_SIZE = 5


def setup_feed(conn, posts=12):
    post, like = make_tables(conn)
    feed = attach(conn, post, like, profile_size=PROFILE_SIZE)
    conn.execute(f"""INSERT INTO {post} (title, body)
                     SELECT 'post ' || g, (ARRAY['cats purr', 'dogs bark', 'stocks fall', 'rain falls'])[g % 4 + 1] || ' ' || g
                       FROM generate_series(1, {posts}) g""")
    return post, like, feed


def reference_profile(conn, post, like, user_id):
    """numpy: the last PROFILE_SIZE likes of published posts, newest first, mean, normalized."""
    texts = [r[0] for r in conn.execute(f"""
        SELECT p.title || ' ' || p.body FROM {like} l JOIN {post} p ON p.id = l.post_id
         WHERE l.user_id = %s AND p.status = 'published' ORDER BY l.created_at DESC LIMIT {PROFILE_SIZE}""", [user_id])]
    if not texts:
        return None
    mean = HashingEncoder().encode(texts).astype(np.float64).mean(axis=0)
    return mean / np.linalg.norm(mean)


def as_array(text):
    return None if text is None else np.array([float(x) for x in text.strip("[]").split(",")])


def current_profile(conn, feed, user_id):
    vector = pgfeed.profile(conn, feed, user_id)
    return None if vector is None else np.array(vector)


def stored_profile(conn, feed, user_id):
    row = conn.execute(f"SELECT embedding::text FROM pgfeed.profile_{feed_id(conn, feed)} WHERE user_id = %s",
                       [user_id]).fetchone()
    return None if row is None else as_array(row[0])


def assert_close(actual, expected):
    if expected is None:
        assert actual is None
    else:
        np.testing.assert_allclose(actual, expected, atol=1e-5)


def assert_profile(conn, post, like, feed, user_id):
    """The profile feed() ranks by equals the reference at once, and the stored one once a worker has run."""
    expected = reference_profile(conn, post, like, user_id)
    assert_close(current_profile(conn, feed, user_id), expected)
    drain(conn, feed)
    assert_close(stored_profile(conn, feed, user_id), expected)
    assert_close(current_profile(conn, feed, user_id), expected)


def test_profile_is_the_normalized_mean_of_the_last_n_likes(app, conn):
    post, like, feed = setup_feed(conn)
    for post_id in [1, 2, 3, 5, 8, 9, 11]:  # one statement each: created_at orders them
        app.execute(f"INSERT INTO {like} (user_id, post_id) SELECT 42, id FROM {post} ORDER BY id OFFSET %s LIMIT 1",
                     [post_id - 1])
    assert_profile(conn, post, like, feed, 42)
    items = conn.execute(f"SELECT items FROM pgfeed.profile_{feed_id(conn, feed)} WHERE user_id = 42").fetchone()[0]
    assert items == PROFILE_SIZE


def test_bulk_likes_in_one_statement(conn):
    post, like, feed = setup_feed(conn)
    conn.execute(f"""INSERT INTO {like} (user_id, post_id, created_at)
                     SELECT u, p.id, now() - (p.id * interval '1 minute') - (u * interval '1 second')
                       FROM {post} p, generate_series(1, 4) u WHERE (p.id + u) % 3 = 0""")
    for user_id in range(1, 5):
        assert_profile(conn, post, like, feed, user_id)


def test_unlike_recomputes_and_last_unlike_removes_the_profile(app, conn):
    post, like, feed = setup_feed(conn)
    ids = [r[0] for r in conn.execute(f"SELECT id FROM {post} ORDER BY id LIMIT 7")]
    for post_id in ids:
        app.execute(f"INSERT INTO {like} (user_id, post_id) VALUES (7, %s)", [post_id])
    app.execute(f"DELETE FROM {like} WHERE user_id = 7 AND post_id = %s", [ids[-1]])
    assert_profile(conn, post, like, feed, 7)
    app.execute(f"DELETE FROM {like} WHERE user_id = 7")
    assert current_profile(conn, feed, 7) is None
    drain(conn, feed)
    assert stored_profile(conn, feed, 7) is None


def test_deleting_or_unpublishing_a_liked_item_recomputes(app, conn):
    post, like, feed = setup_feed(conn)
    ids = [r[0] for r in conn.execute(f"SELECT id FROM {post} ORDER BY id LIMIT 3")]
    for post_id in ids:
        app.execute(f"INSERT INTO {like} (user_id, post_id) VALUES (9, %s)", [post_id])
    app.execute(f"DELETE FROM {post} WHERE id = %s", [ids[0]])
    assert_profile(conn, post, like, feed, 9)
    app.execute(f"UPDATE {post} SET status = 'draft' WHERE id = %s", [ids[1]])
    assert_profile(conn, post, like, feed, 9)
    app.execute(f"UPDATE {post} SET body = 'entirely new words' WHERE id = %s", [ids[2]])
    assert_profile(conn, post, like, feed, 9)


def test_update_of_a_like_moves_it(app, conn):
    post, like, feed = setup_feed(conn)
    app.execute(f"INSERT INTO {like} (user_id, post_id) VALUES (3, 1), (3, 2)")
    app.execute(f"UPDATE {like} SET post_id = 4 WHERE user_id = 3 AND post_id = 1")
    assert_profile(conn, post, like, feed, 3)


def test_popularity_counts_stay_exact(app, conn):
    post, like, feed = setup_feed(conn)
    app.execute(f"INSERT INTO {like} (user_id, post_id) SELECT u, 1 + (u % 5) FROM generate_series(1, 40) u")
    app.execute(f"DELETE FROM {like} WHERE user_id % 3 = 0")
    app.execute(f"UPDATE {like} SET post_id = 6 WHERE user_id % 4 = 0")
    app.execute(f"INSERT INTO {like} (user_id, post_id) VALUES (100, 2), (100, 2)")  # a duplicate counts twice
    app.execute(f"UPDATE {post} SET status = 'draft' WHERE id = 3")
    app.execute(f"UPDATE {post} SET status = 'published' WHERE id = 3")  # counts survive leaving the feed
    expected = dict(conn.execute(f"SELECT post_id, count(*) FROM {like} GROUP BY post_id").fetchall())
    actual = dict(conn.execute(
        f"SELECT item_id, popularity FROM pgfeed.item_popularity_{feed_id(conn, feed)} WHERE popularity > 0").fetchall())
    assert actual == expected


def test_without_a_time_column_the_order_of_insertion_counts(app, conn):
    post, like, _ = setup_feed(conn)
    feed = fresh("feed")
    conn.execute("SELECT pgfeed.create_feed(%s, model => %s, profile_size => 2)", [feed, HASHING])
    conn.execute(f"SELECT pgfeed.attach_content(%s, '{post}', 'id', $$title || ' ' || body$$, 'created_at')", [feed])
    conn.execute(f"SELECT pgfeed.attach_interactions(%s, '{like}', 'user_id', 'post_id')", [feed])
    for post_id in (4, 1, 3):  # the like table's created_at is ignored: the last two inserted are 1 and 3
        app.execute(f"INSERT INTO {like} (user_id, post_id, created_at) VALUES (5, %s, now() - %s * interval '1 day')",
                     [post_id, post_id])
    texts = [r[0] for r in conn.execute(f"SELECT title || ' ' || body FROM {post} WHERE id IN (1, 3)")]
    mean = HashingEncoder().encode(texts).astype(np.float64).mean(axis=0)
    assert_close(current_profile(conn, feed, 5), mean / np.linalg.norm(mean))
    drain(conn, feed)
    assert_close(stored_profile(conn, feed, 5), mean / np.linalg.norm(mean))


def test_concurrent_likes_of_one_user_both_count(conn, dsn):
    post, like, feed = setup_feed(conn)
    with psycopg.connect(dsn) as first, psycopg.connect(dsn) as second:
        first.execute(f"INSERT INTO {like} (user_id, post_id) VALUES (8, 1)")  # transaction left open
        done = threading.Event()

        def like_in_second():
            second.execute(f"INSERT INTO {like} (user_id, post_id) VALUES (8, 2)")
            second.commit()
            done.set()

        worker = threading.Thread(target=like_in_second)
        worker.start()
        assert done.wait(10)  # without waiting for the first transaction
        first.commit()
        worker.join(10)
    assert conn.execute(f"SELECT count(*) FROM pgfeed.profile_dirty_{feed_id(conn, feed)}").fetchone()[0] == 2
    assert_profile(conn, post, like, feed, 8)  # a worker stores it
    assert conn.execute(f"SELECT count(*) FROM pgfeed.profile_dirty_{feed_id(conn, feed)}").fetchone()[0] == 0


def test_a_users_next_read_follows_their_like_under_any_isolation(app, conn):
    """Read-your-writes without a worker: the like's own transaction, and the next one, rank by the new profile."""
    post, like, feed = setup_feed(conn)
    for level in ("READ COMMITTED", "REPEATABLE READ", "SERIALIZABLE"):
        user_id = {"READ COMMITTED": 21, "REPEATABLE READ": 22, "SERIALIZABLE": 23}[level]
        with app.transaction():
            app.execute(f"SET TRANSACTION ISOLATION LEVEL {level}")
            app.execute(f"INSERT INTO {like} (user_id, post_id) VALUES (%s, 1), (%s, 2)", [user_id, user_id])
            assert_close(current_profile(app, feed, user_id), reference_profile(app, post, like, user_id))
        assert_close(current_profile(app, feed, user_id), reference_profile(conn, post, like, user_id))
        assert stored_profile(conn, feed, user_id) is None  # not stored yet: no worker ran
    # what a worker has yet to do: the three profiles, and the counts of posts 1 and 2 that the REPEATABLE READ and
    # SERIALIZABLE likes could not change in place (they would fail to serialize)
    pending = "SELECT profiles_pending, counts_pending, problem FROM pgfeed.status() WHERE feed = %s"
    assert app.execute(pending, [feed]).fetchone() == (3, 2, None)
    drain(conn, feed)
    assert app.execute(pending, [feed]).fetchone() == (0, 0, None)
    for user_id in (21, 22, 23):
        assert_close(stored_profile(conn, feed, user_id), reference_profile(conn, post, like, user_id))
    counts = f"SELECT item_id, popularity FROM pgfeed.item_popularity_{feed_id(conn, feed)} WHERE popularity > 0"
    assert dict(conn.execute(counts).fetchall()) == {1: 3, 2: 3}



def test_because_names_the_liked_item_most_like_each_one(app, conn):
    """because: of the items the profile is made of (the last PROFILE_SIZE likes), the one whose embedding is
    nearest to the returned item's, by cosine in numpy; NULL on a cold start."""
    post, like, feed = setup_feed(conn, posts=30)
    for post_id in (1, 2, 5, 7, 8, 11, 17):  # one statement each: the last five make the profile
        app.execute(f"INSERT INTO {like} (user_id, post_id) VALUES (4, %s)", [post_id])
    window = [r[0] for r in conn.execute(f"SELECT post_id FROM {like} WHERE user_id = 4 ORDER BY created_at DESC "
                                         f"LIMIT {PROFILE_SIZE}")]
    texts = dict(conn.execute(f"SELECT id, title || ' ' || body FROM {post}").fetchall())
    vectors = dict(zip(texts, HashingEncoder().encode(list(texts.values())).astype(np.float64), strict=True))
    unit = {key: v / np.linalg.norm(v) for key, v in vectors.items()}
    items = pgfeed.feed(app, feed, 4, limit=10)
    assert len(items) == 10
    for item in items:
        cosines = {w: float(unit[w] @ unit[item.item_id]) for w in window}
        assert item.because in window and cosines[item.because] == pytest.approx(max(cosines.values()), abs=1e-6)
    assert {item.because for item in pgfeed.feed(app, feed, 999, limit=5)} == {None}  # no likes: cold start


def graded_feed(conn, expression):
    """A feed whose like table is a table of ratings (stars, kind), weighted by an expression."""
    post, _ = make_tables(conn)
    ratings = fresh("rating")
    conn.execute(f"""CREATE TABLE {ratings} (user_id integer NOT NULL, post_id integer NOT NULL,
                                             stars integer NOT NULL, "kind of" text,
                                             created_at timestamptz NOT NULL DEFAULT clock_timestamp());
                     ALTER TABLE {ratings} OWNER TO {APP_ROLE}""")
    feed = fresh("feed")
    conn.execute("SELECT pgfeed.create_feed(%s, model => %s, profile_size => %s)", [feed, HASHING, PROFILE_SIZE])
    conn.execute(f"SELECT pgfeed.attach_content(%s, '{post}'::regclass, 'id', $$title || ' ' || body$$, 'created_at')",
                 [feed])
    conn.execute(f"""SELECT pgfeed.attach_interactions(%s, '{ratings}'::regclass, 'user_id', 'post_id',
                                                      created_at_column => 'created_at', weight_expression => %s)""",
                 [feed, expression])
    conn.execute("SELECT pgfeed.grant_feed(%s, %s)", [feed, APP_ROLE])
    conn.execute(f"""INSERT INTO {post} (title, body)
                     SELECT 'post ' || g, (ARRAY['cats purr', 'dogs bark', 'stocks fall', 'rain falls'])[g % 4 + 1] || ' ' || g
                       FROM generate_series(1, 12) g""")
    return post, ratings, feed


def graded_reference(conn, post, ratings, user_id, weight):
    """numpy: the last PROFILE_SIZE ratings of non-zero weight, newest first, weight-signed sum, normalized."""
    rows = conn.execute(f"""SELECT p.title || ' ' || p.body, r.stars, r."kind of" FROM {ratings} r
                             JOIN {post} p ON p.id = r.post_id WHERE r.user_id = %s ORDER BY r.created_at DESC""",
                        [user_id]).fetchall()
    rows = [(text, weight(stars, kind)) for text, stars, kind in rows if weight(stars, kind) != 0][:PROFILE_SIZE]
    vectors = HashingEncoder().encode([text for text, _ in rows]).astype(np.float64)
    total = (vectors * np.array([w for _, w in rows])[:, None]).sum(axis=0)
    return total / np.linalg.norm(total)


def test_a_weight_expression_grades_the_feedback(app, conn):
    """rating - 3: a five-star rating pulls twice as hard as a four, a one pushes away, a three counts for
    nothing (the item is seen, not liked); like counts are of positive weights; an edited rating moves."""
    post, ratings, feed = graded_feed(conn, "stars - 3")
    ids = [r[0] for r in conn.execute(f"SELECT id FROM {post} ORDER BY id")]
    for item, stars in zip(ids[:9], [5, 1, 4, 3, 2, 5, 3, 4, 1], strict=True):  # one statement each: times order them
        app.execute(f"INSERT INTO {ratings} (user_id, post_id, stars) VALUES (7, %s, %s)", [item, stars])
    app.execute(f"INSERT INTO {ratings} (user_id, post_id, stars) VALUES (8, %s, 5), (8, %s, 3)", [ids[0], ids[1]])
    weight = lambda stars, kind: stars - 3  # noqa: E731
    assert_close(current_profile(conn, feed, 7), graded_reference(conn, post, ratings, 7, weight))
    drain(conn, feed)
    counts = dict(conn.execute(f"SELECT item_id, popularity FROM pgfeed.item_popularity_{feed_id(conn, feed)}"))
    positive = dict(conn.execute(f"SELECT post_id, count(*) FROM {ratings} WHERE stars > 3 GROUP BY 1"))
    assert counts == {i: positive.get(i, 0) for i in ids}
    assert_close(stored_profile(conn, feed, 7), graded_reference(conn, post, ratings, 7, weight))
    app.execute(f"UPDATE {ratings} SET stars = 1 WHERE user_id = 7 AND post_id = %s", [ids[7]])
    assert_close(current_profile(conn, feed, 7), graded_reference(conn, post, ratings, 7, weight))
    # a three is seen: hidden from the feed with exclude_seen, in no profile (user 8's is their five alone)
    assert ids[1] not in {i.item_id for i in pgfeed.feed(app, feed, 8, limit=20)}
    assert_close(current_profile(conn, feed, 8), graded_reference(conn, post, ratings, 8, weight))


def test_a_weight_expression_by_kind_and_its_failures(app, conn):
    """A CASE over a quoted column; a NULL result counts as 0; a row the expression fails on (a division by zero)
    weighs 0, and the other rows of its statement count (in the trigger and when the table is loaded)."""
    post, ratings, feed = graded_feed(conn, """CASE "kind of" WHEN 'love' THEN 2 WHEN 'like' THEN 1 END""")
    ids = [r[0] for r in conn.execute(f"SELECT id FROM {post} ORDER BY id")]
    for item, kind in zip(ids[:4], ["love", "like", "meh", "love"], strict=True):
        app.execute(f"""INSERT INTO {ratings} (user_id, post_id, stars, "kind of") VALUES (7, %s, 0, %s)""", [item, kind])
    weight = lambda stars, kind: {"love": 2, "like": 1}.get(kind, 0)  # noqa: E731
    assert_close(current_profile(conn, feed, 7), graded_reference(conn, post, ratings, 7, weight))

    zero_post, zero, broken = graded_feed(conn, "6.0 / stars - 2")
    zero_ids = [r[0] for r in conn.execute(f"SELECT id FROM {zero_post} ORDER BY id")]
    app.execute(f"INSERT INTO {zero} (user_id, post_id, stars) VALUES (7, %s, 0), (7, %s, 2)", zero_ids[:2])
    weight = lambda stars, kind: 6.0 / stars - 2 if stars else 0  # noqa: E731
    assert_close(current_profile(conn, broken, 7), graded_reference(conn, zero_post, zero, 7, weight))
    assert conn.execute(f"SELECT count(*) FROM {zero}").fetchone()[0] == 2
    assert conn.execute("SELECT problem FROM pgfeed.status() WHERE feed = %s", [broken]).fetchone()[0] is None
    assert zero_ids[0] not in {i.item_id for i in pgfeed.feed(app, broken, 7, limit=20)}  # weight 0: seen
    # loaded at attach, the same
    conn.execute("SELECT pgfeed.detach(%s, %s::regclass)", [broken, zero])
    conn.execute(f"SELECT pgfeed.attach_interactions(%s, '{zero}'::regclass, 'user_id', 'post_id', "
                 "created_at_column => 'created_at', weight_expression => '6.0 / stars - 2')", [broken])
    assert_close(current_profile(conn, broken, 7), graded_reference(conn, zero_post, zero, 7, weight))


@pytest.mark.parametrize("expression, error", [
    ("random() * stars", "volatile"),
    ("public.pgfeed_test_weight(stars)", "not built into PostgreSQL"),
    ("stars + ", "not valid"),
    ("nope * 2", "not valid"),
])
def test_a_weight_expression_is_checked_at_attach(conn, expression, error):
    """It runs with pgfeed's rights in the like's trigger: built-in SQL only, as the text expression."""
    conn.execute("CREATE OR REPLACE FUNCTION public.pgfeed_test_weight(integer) RETURNS float8 "
                 "LANGUAGE sql IMMUTABLE AS 'SELECT $1::float8'")
    with pytest.raises(psycopg.errors.InvalidParameterValue, match=error):
        graded_feed(conn, expression)
