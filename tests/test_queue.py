"""Async feeds and the embedding queue: triggers only queue, workers drain
the queue side by side without double work, nothing is lost when a worker is
killed or the encoder fails, poison rows are isolated and kept."""

import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import psycopg
import pytest

from conftest import HASHING, POISON, SLOW, attach, drain, feed_id, make_tables
from pgfeed.encoders.hashing import HashingEncoder


def queued(conn, feed):
    return conn.execute("SELECT pgfeed.queued(%s)", [feed]).fetchone()[0]


def store(conn, feed):
    """item id -> stored vector (None if failed)."""
    rows = conn.execute(f"SELECT item_id, embedding::text FROM pgfeed.item_store_{feed_id(conn, feed)}").fetchall()
    return {item: None if vector is None else np.array(eval(vector)) for item, vector in rows}


def assert_embedded_as_reference(conn, feed, post):
    texts = dict(conn.execute(f"SELECT id, title || ' ' || body FROM {post}").fetchall())
    stored = store(conn, feed)
    assert sorted(stored) == sorted(texts)
    expected = HashingEncoder().encode([texts[i] for i in sorted(texts)])
    np.testing.assert_allclose(np.array([stored[i] for i in sorted(texts)]), expected, atol=1e-6)


def run_worker(dsn, feed, *args):
    return subprocess.Popen([sys.executable, "-m", "pgfeed", "worker", "--dsn", dsn, "--feed", feed, "--quiet",
                             *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture
def async_feed(conn):
    post, like = make_tables(conn)
    feed = attach(conn, post, like, model=HASHING, mode="async")
    return post, like, feed


def test_async_trigger_only_queues_and_never_loads_the_model(dsn, conn, async_feed):
    post, _, feed = async_feed
    with psycopg.connect(dsn, autocommit=True) as writer:
        writer.execute(f"INSERT INTO {post} (title, body) SELECT 'post ' || g, 'text ' || g FROM generate_series(1, 50) g")
        writer.execute(f"UPDATE {post} SET body = body || ' edited' WHERE id <= 5")
        assert writer.execute("SELECT count(*) FROM pgfeed.encoder_stats()").fetchone()[0] == 0
    assert store(conn, feed) == {}
    assert queued(conn, feed) == 55  # append-only: an edit before embedding queues the item again
    row = conn.execute("SELECT pending, embedded, oldest_pending FROM pgfeed.status() WHERE feed = %s", [feed]).fetchone()
    assert row[0] == 50 and row[1] == 0 and row[2] is not None

    calls = drain(conn, feed, batch=16)
    assert sum(c[2] for c in calls) == 50  # the five re-queued items were free: hash unchanged
    assert queued(conn, feed) == 0
    assert_embedded_as_reference(conn, feed, post)
    assert conn.execute("SELECT pending, embedded, oldest_pending FROM pgfeed.status() WHERE feed = %s",
                        [feed]).fetchone() == (0, 50, None)


def test_unchanged_text_is_not_queued_and_removals_are_immediate(app, conn, async_feed):
    post, _, feed = async_feed
    app.execute(f"INSERT INTO {post} (title, body) VALUES ('a', 'one'), ('b', 'two')")
    drain(conn, feed)
    app.execute(f"UPDATE {post} SET views = views + 1")
    assert queued(conn, feed) == 0
    app.execute(f"UPDATE {post} SET status = 'draft' WHERE title = 'a'")
    app.execute(f"DELETE FROM {post} WHERE title = 'b'")
    assert store(conn, feed) == {} and queued(conn, feed) == 0


def test_switching_mode_changes_what_the_trigger_does(app, conn):
    post, like = make_tables(conn)
    feed = attach(conn, post, like, model=HASHING)
    app.execute(f"INSERT INTO {post} (title, body) VALUES ('sync', 'embedded at once')")
    assert len(store(conn, feed)) == 1
    conn.execute("SELECT pgfeed.alter_feed(%s, mode => 'async')", [feed])
    app.execute(f"INSERT INTO {post} (title, body) VALUES ('async', 'queued')")
    assert len(store(conn, feed)) == 1 and queued(conn, feed) == 1
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="mode must be sync or async"):
        conn.execute("SELECT pgfeed.alter_feed(%s, mode => 'later')", [feed])


def test_two_workers_share_the_queue_without_double_work(app, dsn, conn):
    post, like = make_tables(conn)
    feed = attach(conn, post, like, model=SLOW, mode="async")
    app.execute(f"INSERT INTO {post} (title, body) SELECT 'post ' || g, 'text ' || g FROM generate_series(1, 400) g")
    workers = [run_worker(dsn, feed, "--drain", "--batch", "10") for _ in range(2)]
    outputs = [w.communicate(timeout=120) for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs
    embedded = [int(re.search(r"(\d+) embedded", out).group(1)) for out, _ in outputs]
    assert sum(embedded) == 400 and min(embedded) > 0, embedded  # each item once, and both worked
    assert queued(conn, feed) == 0
    assert_embedded_as_reference(conn, feed, post)


def test_a_worker_killed_mid_batch_loses_nothing(app, dsn, conn):
    post, like = make_tables(conn)
    feed = attach(conn, post, like, model=SLOW, mode="async")
    app.execute(f"INSERT INTO {post} (title, body) SELECT 'post ' || g, 'text ' || g FROM generate_series(1, 300) g")
    worker = run_worker(dsn, feed, "--batch", "100")  # 0.5 s a batch
    deadline = time.monotonic() + 30
    while not conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'").fetchone()[0]:
        assert time.monotonic() < deadline, "the worker never claimed a batch"
        time.sleep(0.02)
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()
    deadline = time.monotonic() + 60
    while queued(conn, feed):  # the orphaned batch is either committed or released
        drain(conn, feed)
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert_embedded_as_reference(conn, feed, post)


def test_rows_deleted_or_edited_while_their_batch_embeds_end_as_the_table_says(app, dsn, conn):
    """A worker embeds what it read a while ago: a row deleted meanwhile must
    not come back into the store, and a row edited meanwhile must end with the
    vector of its new text."""
    post, like = make_tables(conn)
    feed = attach(conn, post, like, model=SLOW, mode="async")
    app.execute(f"INSERT INTO {post} (title, body) SELECT 'post ' || g, 'text ' || g FROM generate_series(1, 100) g")
    worker = run_worker(dsn, feed, "--drain", "--batch", "100")  # 0.5 s for the one batch
    deadline = time.monotonic() + 30
    while not conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'").fetchone()[0]:
        assert time.monotonic() < deadline, "the worker never claimed a batch"
        time.sleep(0.02)
    app.execute(f"DELETE FROM {post} WHERE title IN ('post 7', 'post 70')")
    app.execute(f"UPDATE {post} SET body = 'edited while embedding' WHERE title = 'post 8'")
    out, err = worker.communicate(timeout=60)
    assert worker.returncode == 0, err
    drain(conn, feed)
    assert queued(conn, feed) == 0
    assert_embedded_as_reference(conn, feed, post)  # 98 items, post 8 with its new text


def test_sigterm_lets_the_batch_commit_then_stops(app, dsn, conn):
    post, like = make_tables(conn)
    feed = attach(conn, post, like, model=SLOW, mode="async")
    app.execute(f"INSERT INTO {post} (title, body) SELECT 'post ' || g, 'text ' || g FROM generate_series(1, 100) g")
    worker = run_worker(dsn, feed, "--batch", "100")
    deadline = time.monotonic() + 30
    while not conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'").fetchone()[0]:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    worker.send_signal(signal.SIGTERM)
    out, err = worker.communicate(timeout=30)
    assert worker.returncode == 0, err
    assert "100 embedded" in out
    assert queued(conn, feed) == 0 and len(store(conn, feed)) == 100


def test_idle_worker_wakes_on_notify(app, dsn, conn, async_feed):
    post, _, feed = async_feed
    worker = run_worker(dsn, feed, "--poll", "600")
    try:
        time.sleep(1.5)  # listening by now
        app.execute(f"INSERT INTO {post} (title, body) VALUES ('late', 'arrival')")
        deadline = time.monotonic() + 20
        while not store(conn, feed):
            assert time.monotonic() < deadline, "the worker did not wake up"
            time.sleep(0.05)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.communicate(timeout=30)
    assert worker.returncode == 0


def test_a_poison_row_is_isolated_retried_and_kept(app, conn):
    post, like = make_tables(conn)
    feed = attach(conn, post, like, model=POISON, mode="async")
    conn.execute("SELECT pgfeed.alter_feed(%s, max_attempts => 2)", [feed])
    app.execute(f"INSERT INTO {post} (title, body) SELECT 'post ' || g, CASE WHEN g = 7 THEN 'poison' ELSE 'fine' END || g "
                 "FROM generate_series(1, 10) g")
    poison = conn.execute(f"SELECT id FROM {post} WHERE body LIKE 'poison%%'").fetchone()[0]
    [(_, claimed, embedded, failed)] = conn.execute("SELECT * FROM pgfeed.work(%s, 64)", [feed]).fetchall()
    assert (claimed, embedded, failed) == (10, 9, 1)
    ids = {row[0] for row in conn.execute(f"SELECT id FROM {post}")}
    assert {k for k, v in store(conn, feed).items() if v is not None} == ids - {poison}
    assert poison not in store(conn, feed)
    attempts, error, not_before, failed_at = conn.execute(
        "SELECT attempts, last_error, not_before > now(), failed_at FROM pgfeed.embedding_queue WHERE item_id = %s",
        [str(poison)]).fetchone()
    assert attempts == 1 and "cannot embed a poisoned text" in error and not_before and failed_at is None
    assert conn.execute("SELECT * FROM pgfeed.work(%s, 64)", [feed]).fetchall() == []  # backing off

    conn.execute("UPDATE pgfeed.embedding_queue SET not_before = now() WHERE item_id = %s", [str(poison)])
    [(_, _, embedded, failed)] = conn.execute("SELECT * FROM pgfeed.work(%s, 64)", [feed]).fetchall()
    assert (embedded, failed) == (0, 1)
    attempts, failed_at = conn.execute("SELECT attempts, failed_at FROM pgfeed.embedding_queue WHERE item_id = %s",
                                       [str(poison)]).fetchone()
    assert attempts == 2 and failed_at is not None  # kept, never dropped
    assert conn.execute("SELECT pending, failed FROM pgfeed.status() WHERE feed = %s", [feed]).fetchone() == (0, 1)

    assert conn.execute("SELECT pgfeed.retry(%s)", [feed]).fetchone()[0] == 1
    assert conn.execute("SELECT attempts, failed_at FROM pgfeed.embedding_queue WHERE item_id = %s",
                        [str(poison)]).fetchone() == (0, None)
    app.execute(f"UPDATE {post} SET body = 'cured' WHERE id = %s", [poison])  # the fix: new text, embedded
    drain(conn, feed)
    assert queued(conn, feed) == 0
    assert conn.execute("SELECT count(*) FROM pgfeed.embedding_queue WHERE feed_id = %s", [feed_id(conn, feed)]).fetchone()[0] == 0
    assert all(v is not None for v in store(conn, feed).values()) and len(store(conn, feed)) == 10


def test_sync_encoder_failure_commits_the_row_and_queues_the_work(app, conn):
    post, like = make_tables(conn)
    feed = attach(conn, post, like, model=POISON)
    app.execute(f"INSERT INTO {post} (title, body) VALUES ('a', 'poison pill')")
    post_id = conn.execute(f"SELECT id FROM {post}").fetchone()[0]  # the write committed
    assert conn.execute("SELECT item_id, attempts, last_error LIKE '%%poisoned%%' FROM pgfeed.embedding_queue "
                        "WHERE feed_id = %s", [feed_id(conn, feed)]).fetchall() == [(str(post_id), 1, True)]
    # queued again, so pending, and not also counted failed (0.2.0 counted it twice)
    assert conn.execute("SELECT pending, failed FROM pgfeed.status() WHERE feed = %s", [feed]).fetchone() == (1, 0)
    app.execute(f"UPDATE {post} SET body = 'antidote' WHERE id = %s", [post_id])
    assert queued(conn, feed) == 0  # embedded by the trigger; its queued work went with it
    assert conn.execute("SELECT pending, failed, embedded FROM pgfeed.status() WHERE feed = %s",
                        [feed]).fetchone() == (0, 0, 1)


def test_work_on_an_unknown_feed_is_a_clear_error(conn):
    with pytest.raises(psycopg.errors.UndefinedObject, match='unknown feed "nope"'):
        conn.execute("SELECT * FROM pgfeed.work('nope')")


def test_work_and_the_worker_count_the_items_they_keep_as_failed(app, dsn, conn, async_feed):
    """An item whose text is empty ends failed (kept with its error, not retried): work() and the worker count it
    as failed, as status() does (0.2.0 to 0.4.1 said failed 0)."""
    post, _, feed = async_feed
    rows = [("a", "first"), (None, "no title"), ("", ""), ("b", "second"), ("  ", " ")]
    app.cursor().executemany(f"INSERT INTO {post} (title, body) VALUES (%s, %s)", rows[:3])
    blank = sum(1 for title, body in rows[:3] if title is None or body is None or not f"{title} {body}".strip())
    [(_, claimed, embedded, failed)] = conn.execute("SELECT * FROM pgfeed.work(%s, 64)", [feed]).fetchall()
    assert (claimed, embedded, failed) == (3, 3 - blank, blank)
    assert conn.execute("SELECT failed FROM pgfeed.status() WHERE feed = %s", [feed]).fetchone()[0] == blank

    app.cursor().executemany(f"INSERT INTO {post} (title, body) VALUES (%s, %s)", rows[3:])
    cli = subprocess.run([sys.executable, "-m", "pgfeed", "worker", "--dsn", dsn, "--feed", feed, "--drain", "--quiet"],
                         capture_output=True, text=True, check=True)
    assert cli.stdout.startswith("1 embedded, 1 failed")
    assert conn.execute("SELECT failed FROM pgfeed.status() WHERE feed = %s", [feed]).fetchone()[0] == blank + 1


def test_truncate_clears_the_queue(app, conn, async_feed):
    """TRUNCATE of the content table (Django's flush) leaves no queued work behind (0.2.0 to 0.4.1 did: pending
    counted rows that no longer existed, and oldest_pending grew)."""
    post, _, feed = async_feed
    app.execute(f"INSERT INTO {post} (title, body) SELECT 'post ' || g, 'text ' || g FROM generate_series(1, 5) g")
    assert queued(conn, feed) == 5
    app.execute(f"TRUNCATE {post}")
    assert conn.execute("SELECT count(*) FROM pgfeed.embedding_queue WHERE feed_id = %s",
                        [feed_id(conn, feed)]).fetchone()[0] == 0
    assert conn.execute("SELECT items, pending, failed, oldest_pending FROM pgfeed.status() WHERE feed = %s",
                        [feed]).fetchone() == (0, 0, 0, None)
    assert conn.execute("SELECT * FROM pgfeed.work(%s, 64)", [feed]).fetchall() == []


def test_truncate_leaves_a_workers_batch_to_it(app, dsn, conn, async_feed):
    """Queued rows a worker holds are not waited for (the worker may be waiting for the table): TRUNCATE goes
    on, and the worker drops them once it finds their rows gone."""
    post, _, feed = async_feed
    app.execute(f"INSERT INTO {post} (title, body) SELECT 'post ' || g, 'text ' || g FROM generate_series(1, 5) g")
    with psycopg.connect(dsn) as worker:
        held = worker.execute("SELECT seq FROM pgfeed.embedding_queue WHERE feed_id = %s ORDER BY seq LIMIT 2 "
                              "FOR UPDATE", [feed_id(conn, feed)]).fetchall()
        app.execute("SET statement_timeout = '5s'")  # (it would wait for the worker's transaction)
        app.execute(f"TRUNCATE {post}")
        app.execute("RESET statement_timeout")
        worker.rollback()
    assert queued(conn, feed) == len(held) == 2
    [(_, claimed, embedded, failed)] = conn.execute("SELECT * FROM pgfeed.work(%s, 64)", [feed]).fetchall()
    assert (claimed, embedded, failed) == (2, 0, 0) and queued(conn, feed) == 0
