"""Likes from concurrent transactions (issue 13, deliverable 6): the interaction
log mirrors the like table under any interleaving, a like never waits on
another transaction's pgfeed bookkeeping, and once workers have folded what
writers left, like counts and profiles equal a numpy recomputation from the
user's own tables."""

import random
import threading
import time

import psycopg
import pytest

from conftest import HASHING, drain, feed_id, fresh, make_tables
from test_profiles import assert_profile

PROFILE_SIZE = 5  # as test_profiles' reference


def like_feed(conn, time_column=True):
    post, like = make_tables(conn)
    feed = fresh("feed")
    conn.execute("SELECT pgfeed.create_feed(%s, model => %s, profile_size => %s)", [feed, HASHING, PROFILE_SIZE])
    conn.execute(f"SELECT pgfeed.attach_content(%s, '{post}', 'id', $$title || ' ' || body$$, 'created_at', "
                 "condition => $$status = 'published'$$)", [feed])
    conn.execute(f"SELECT pgfeed.attach_interactions(%s, '{like}', 'user_id', 'post_id', created_at_column => %s)",
                 [feed, "created_at" if time_column else None])
    conn.execute(f"""INSERT INTO {post} (title, body) SELECT 'post ' || g, (ARRAY['cats purr', 'dogs bark', 'stocks fall',
                     'rain falls'])[g % 4 + 1] || ' ' || g FROM generate_series(1, 40) g""")
    return post, like, feed


def assert_mirrored(conn, post, like, feed):
    """Log = table (as multisets of (user, item)), counts = the table's, profiles = numpy's."""
    fid = feed_id(conn, feed)
    table = sorted(conn.execute(f"SELECT user_id, post_id FROM {like}").fetchall())
    log = sorted(conn.execute(f"SELECT user_id, item_id FROM pgfeed.interaction_log_{fid}").fetchall())
    assert log == table
    expected = dict(conn.execute(f"SELECT post_id, count(*) FROM {like} GROUP BY post_id").fetchall())
    counts = dict(conn.execute(f"SELECT item_id, popularity FROM pgfeed.item_popularity_{fid} WHERE popularity <> 0"))
    assert counts == expected
    for (user,) in conn.execute(f"SELECT DISTINCT user_id FROM {like}").fetchall():
        assert_profile(conn, post, like, feed, user)


@pytest.mark.parametrize("time_column", [True, False], ids=["equal times", "no time column"])
def test_two_transactions_each_removing_one_of_two_equal_likes_leave_no_ghost(conn, app_dsn, time_column):
    post, like, feed = like_feed(conn, time_column)
    conn.execute(f"ALTER TABLE {like} ALTER created_at SET DEFAULT '2026-01-01'")  # equal times
    conn.execute(f"INSERT INTO {like} (user_id, post_id) VALUES (1, 5), (1, 5)")
    first_row, second_row = [r[0] for r in conn.execute(f"SELECT ctid::text FROM {like}")]
    with psycopg.connect(app_dsn) as first, psycopg.connect(app_dsn) as second:
        first.execute(f"DELETE FROM {like} WHERE ctid = %s::tid", [first_row])  # left open
        deleted = threading.Event()

        def delete_the_other():
            second.execute(f"DELETE FROM {like} WHERE ctid = %s::tid", [second_row])
            deleted.set()

        thread = threading.Thread(target=delete_the_other)
        thread.start()
        waited = not deleted.wait(5)
        first.commit()
        thread.join(10)
        second.commit()
    drain(conn, feed)
    assert not waited  # pgfeed made the second transaction wait for the first (0.2.0 did)
    assert conn.execute(f"SELECT count(*) FROM pgfeed.interaction_log_{feed_id(conn, feed)}").fetchone()[0] == 0
    assert_mirrored(conn, post, like, feed)


@pytest.mark.parametrize("isolation", ["READ COMMITTED", "REPEATABLE READ"])
def test_overlapping_like_transactions_never_deadlock_and_end_exact(conn, app_dsn, isolation):
    """8 clients for a few seconds: transactions of several likes and unlikes of overlapping users and items
    (duplicates too). No deadlock; under REPEATABLE READ failures to serialize are retried."""
    post, like, feed = like_feed(conn)
    items = [r[0] for r in conn.execute(f"SELECT id FROM {post}")]
    deadlocks, retried, committed = [], [], []

    def client(seed):
        rng = random.Random(seed)
        with psycopg.connect(app_dsn) as session:
            session.execute(f"SET default_transaction_isolation = '{isolation.lower()}'")
            session.commit()
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                # in (user, item) order: on a plain table these transactions cannot deadlock over their own rows
                steps = sorted((rng.randint(1, 6), rng.choice(items[:8]), rng.random() < 0.3)
                               for _ in range(rng.randint(1, 4)))
                try:
                    for user, item, unlike in steps:
                        if unlike:
                            session.execute(f"DELETE FROM {like} WHERE ctid = (SELECT ctid FROM {like} "
                                            "WHERE user_id = %s AND post_id = %s LIMIT 1)", [user, item])
                        else:
                            session.execute(f"INSERT INTO {like} (user_id, post_id) VALUES (%s, %s)", [user, item])
                    session.commit()
                    committed.append(1)
                except psycopg.errors.DeadlockDetected:
                    session.rollback()
                    deadlocks.append(1)
                except psycopg.errors.SerializationFailure:
                    session.rollback()
                    retried.append(1)

    threads = [threading.Thread(target=client, args=(seed,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert deadlocks == []
    assert len(committed) > 50
    drain(conn, feed)
    assert_mirrored(conn, post, like, feed)


def test_a_content_edit_and_a_like_moving_its_item_to_another_tier_never_deadlock(conn, app_dsn):
    """An open transaction editing a post twice, and between its edits a like that moves the post to the next
    like-count tier: the like's tier change waits for the edit's row, and the second edit must not wait for the
    like's count (a deadlock before)."""
    post, like, feed = like_feed(conn)
    conn.execute(f"INSERT INTO {like} (user_id, post_id) SELECT u, 4 FROM generate_series(1, 8) u")  # tier 0's most
    errors = []
    with psycopg.connect(app_dsn) as editor, psycopg.connect(app_dsn, autocommit=True) as liker:
        editor.execute(f"UPDATE {post} SET body = 'first edit' WHERE id = 4")

        def ninth_like():
            try:
                liker.execute(f"INSERT INTO {like} (user_id, post_id) VALUES (9, 4)")
            except psycopg.Error as error:
                errors.append(error)

        thread = threading.Thread(target=ninth_like)
        thread.start()
        time.sleep(0.5)  # the like waits for the edited row
        editor.execute(f"UPDATE {post} SET body = 'second edit' WHERE id = 4")
        time.sleep(1.5)  # past deadlock_timeout
        editor.commit()
        thread.join(10)
    assert errors == []
    fid = feed_id(conn, feed)
    assert conn.execute(f"SELECT popularity FROM pgfeed.item_popularity_{fid} WHERE item_id = 4").fetchone()[0] == 9
    assert conn.execute(f"SELECT tier FROM pgfeed.item_store_{fid} WHERE item_id = 4").fetchone()[0] == 1


def test_a_catch_up_logs_the_likes_again_only_while_none_comes_or_goes(conn, app_dsn):
    """A worker catching a feed up forgets a like table's log and loads it again: a like committed or removed in
    between would be logged twice or left as a ghost, so the catch-up waits for the table's open writers (at most
    its lock timeout, then another time) and holds off new ones until it commits."""
    post, like, feed = like_feed(conn)
    conn.execute(f"INSERT INTO {like} (user_id, post_id) VALUES (1, 1), (2, 2)")
    conn.execute("INSERT INTO pgfeed.feed_problem (feed_id, problem) VALUES (%s, 'missed something')",
                 [feed_id(conn, feed)])
    with psycopg.connect(app_dsn) as writer:
        writer.execute(f"INSERT INTO {like} (user_id, post_id) VALUES (3, 3)")  # left open
        conn.execute("SELECT * FROM pgfeed.work(%s)", [feed]).fetchall()
        assert conn.execute("SELECT problem FROM pgfeed.status() WHERE feed = %s", [feed]).fetchone()[0] \
            == "missed something"  # not caught up while the like is open
        writer.commit()
    drain(conn, feed)
    assert conn.execute("SELECT problem FROM pgfeed.status() WHERE feed = %s", [feed]).fetchone()[0] is None
    assert_mirrored(conn, post, like, feed)
