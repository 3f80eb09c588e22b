"""A feed's model changes in the background: the workers build the new vectors
beside the current ones, the feed serves the current ones until every item has
a new one, and then both the items and the profiles move over at once."""

import numpy as np
import psycopg
import pytest
from test_feed import compare, feed_in_one_transaction, populate, populate_large, reference_feed

from conftest import HASHING, drain, feed_id
from pgfeed.encoders.hashing import HashingEncoder

SMALL = "pgfeed_test_encoders:SmallHashingEncoder"


def small_encoder() -> HashingEncoder:
    encoder = HashingEncoder()
    encoder.dimension = 64
    return encoder


def feed_status(conn, feed):
    return conn.execute("SELECT model, dimensions, switching_to FROM pgfeed.status() WHERE feed = %s", [feed]).fetchone()


def stored(conn, feed):
    """item id -> (vector, model label) of every embedded item."""
    rows = conn.execute(f"SELECT item_id, embedding::text, model FROM pgfeed.item_store_{feed_id(conn, feed)} "
                        "WHERE embedding IS NOT NULL").fetchall()
    return {i: (np.array(eval(v)), m) for i, v, m in rows}


def texts(conn, post):
    return dict(conn.execute(f"SELECT id, title || ' ' || body FROM {post} WHERE status = 'published'").fetchall())


def test_a_model_switch_keeps_the_feed_serving(dsn, conn):
    post, like, feed, users = populate(conn)
    conn.execute("SELECT pgfeed.alter_feed(%s, model => %s)", [feed, SMALL])
    assert feed_status(conn, feed) == (HASHING, 384, SMALL)

    steps = 0
    while feed_status(conn, feed)[2] is not None:
        assert steps < 50, "the switch does not end"
        if steps == 2:
            # writes during the switch: the current model embeds them, the switch catches up
            conn.execute(f"UPDATE {post} SET body = 'chess endgames theory' WHERE id = (SELECT min(id) FROM {post})")
            conn.execute(f"INSERT INTO {post} (title, body) VALUES ('late', 'dogs bark at the rain')")
        for user in users[:2]:
            now, served = feed_in_one_transaction(dsn, feed, user, limit=10)
            compare(reference_feed(conn, post, like, user, now), served, 10)
        assert {model for _, model in stored(conn, feed).values()} == {f"{HASHING}/384"}
        conn.execute("SELECT * FROM pgfeed.work(%s, 8)", [feed])
        steps += 1
    assert steps > 60 // 8  # in batches, each committed

    assert feed_status(conn, feed) == (SMALL, 64, None)
    current = texts(conn, post)
    vectors = stored(conn, feed)
    assert set(vectors) == set(current)
    ids = sorted(current)
    want = small_encoder().encode([current[i] for i in ids])
    for item_id, expected in zip(ids, want, strict=True):
        vector, model = vectors[item_id]
        assert model == f"{SMALL}/64"
        assert vector @ expected / np.linalg.norm(vector) / np.linalg.norm(expected) == pytest.approx(1, abs=1e-5)
    for user in users:
        now, served = feed_in_one_transaction(dsn, feed, user, limit=10)
        compare(reference_feed(conn, post, like, user, now, encoder=small_encoder()), served, 10)
    # the triggers now embed with the new model
    conn.execute(f"INSERT INTO {post} (title, body) VALUES ('new', 'stocks rise')")
    assert {model for _, model in stored(conn, feed).values()} == {f"{SMALL}/64"}


def test_switching_back_cancels_and_unknown_models_are_refused(conn):
    post, like, feed, users = populate(conn)
    conn.execute("SELECT pgfeed.alter_feed(%s, model => %s)", [feed, SMALL])
    conn.execute("SELECT * FROM pgfeed.work(%s, 8)", [feed])
    conn.execute("SELECT pgfeed.alter_feed(%s, model => %s)", [feed, HASHING])
    assert feed_status(conn, feed) == (HASHING, 384, None)
    assert conn.execute("SELECT to_regclass(%s)", [f"pgfeed.item_store_{feed_id(conn, feed)}_next"]).fetchone()[0] is None
    assert conn.execute("SELECT * FROM pgfeed.work(%s, 8)", [feed]).fetchall() == []
    with pytest.raises(psycopg.Error, match="not found"):
        conn.execute("SELECT pgfeed.alter_feed(%s, model => 'no_such_module:Encoder')", [feed])
    assert feed_status(conn, feed) == (HASHING, 384, None)


def test_a_model_switch_carries_the_like_count_tiers(conn, dsn):
    """The next model's store copies each item's tier as it embeds it, so that
    the swap moves only the items whose like count crossed a tier during the
    switch; after it every item is in the tier of its like count."""
    post, like, feed = populate_large(conn, items=300)
    drain(conn, feed)  # the profiles its likes marked: stored, before the switch's batches
    store = f"pgfeed.item_store_{feed_id(conn, feed)}"

    def tiers(table):
        return dict(conn.execute(f"SELECT item_id, tier FROM {table}").fetchall())

    conn.execute("SELECT pgfeed.alter_feed(%s, model => %s)", [feed, SMALL])
    conn.execute("SELECT * FROM pgfeed.work(%s, 100)", [feed])
    current, embedded = tiers(store), tiers(f"{store}_next")
    assert len(embedded) == 100 and set(current.values()) == {0, 1, 2}
    assert embedded == {item: current[item] for item in embedded}
    # an item already embedded for the next model crosses into the 99+ tier
    item = min(item for item, tier in embedded.items() if tier == 0)
    conn.execute(f"INSERT INTO {like} (user_id, post_id) SELECT u, %s FROM generate_series(1000, 1098) AS u", [item])
    assert tiers(f"{store}_next")[item] == 0
    while feed_status(conn, feed)[2] is not None:
        conn.execute("SELECT * FROM pgfeed.work(%s, 100)", [feed])

    counts = dict(conn.execute(f"SELECT post_id, count(*) FROM {like} GROUP BY post_id").fetchall())
    swapped = tiers(store)
    assert len(swapped) == 300 and swapped[item] == 2
    assert swapped == {i: min(2, len(str(counts.get(i, 0) + 1)) - 1) for i in swapped}
    for user_id in (1, 2):
        now, served = feed_in_one_transaction(dsn, feed, user_id, limit=15)
        compare(reference_feed(conn, post, like, user_id, now, encoder=small_encoder()), served, 15)
