"""Content triggers: what gets embedded, when the model is called, and what
happens to rows the model cannot take. The deterministic encoder is the reference."""

import numpy as np
import pytest

import pgfeed
from conftest import FAILING, HASHING, attach, encoder_calls, feed_id, fresh, make_tables
from pgfeed.encoders.hashing import HashingEncoder


def stored(conn, feed, item_id):
    return conn.execute(
        f"SELECT embedding::text, error FROM pgfeed.item_store_{feed_id(conn, feed)} WHERE item_id = %s", [item_id]
    ).fetchone()


def as_array(text):
    return np.array([float(x) for x in text.strip("[]").split(",")], dtype=np.float32)


def test_insert_embeds_the_text_expression(app, conn):
    post, like = make_tables(conn)
    feed = attach(conn, post, like)
    post_id = app.execute(f"INSERT INTO {post} (title, body) VALUES ('Sourdough', 'starter and crust') RETURNING id").fetchone()[0]
    expected = HashingEncoder().encode(["Sourdough starter and crust"])[0]
    embedding, error = stored(conn, feed, post_id)
    assert error is None
    np.testing.assert_allclose(as_array(embedding), expected, atol=1e-6)


def test_watched_text_update_reembeds_and_other_updates_do_not_call_the_model(app, conn):
    post, like = make_tables(conn)
    feed = attach(conn, post, like)
    post_id = app.execute(f"INSERT INTO {post} (title, body) VALUES ('old', 'text') RETURNING id").fetchone()[0]
    calls = encoder_calls(app)
    app.execute(f"UPDATE {post} SET views = views + 1 WHERE id = %s", [post_id])
    assert encoder_calls(app) == calls
    app.execute(f"UPDATE {post} SET body = 'words' WHERE id = %s", [post_id])
    assert encoder_calls(app) == calls + 1
    np.testing.assert_allclose(as_array(stored(conn, feed, post_id)[0]), HashingEncoder().encode(["old words"])[0], atol=1e-6)


def test_created_at_change_alone_moves_the_item_without_the_model(app, conn):
    post, like = make_tables(conn)
    feed = attach(conn, post, like)
    post_id = app.execute(f"INSERT INTO {post} (title, body) VALUES ('a', 'b') RETURNING id").fetchone()[0]
    calls = encoder_calls(app)
    app.execute(f"UPDATE {post} SET created_at = '2020-01-01Z' WHERE id = %s", [post_id])
    assert encoder_calls(app) == calls
    moved = conn.execute(f"SELECT created_at = '2020-01-01Z' FROM pgfeed.item_store_{feed_id(conn, feed)}").fetchone()[0]
    assert moved


def test_delete_removes_the_item(app, conn):
    post, like = make_tables(conn)
    feed = attach(conn, post, like)
    ids = [r[0] for r in app.execute(f"INSERT INTO {post} (title, body) VALUES ('a', 'b'), ('c', 'd') RETURNING id")]
    app.execute(f"DELETE FROM {post} WHERE id = %s", [ids[0]])
    assert stored(conn, feed, ids[0]) is None
    assert stored(conn, feed, ids[1]) is not None
    app.execute(f"TRUNCATE {post}")
    assert conn.execute(f"SELECT count(*) FROM pgfeed.item_store_{feed_id(conn, feed)}").fetchone()[0] == 0


def test_condition_takes_items_out_and_back_in(app, conn):
    post, like = make_tables(conn)
    feed = attach(conn, post, like)
    post_id = app.execute(f"INSERT INTO {post} (title, body, status) VALUES ('a', 'b', 'draft') RETURNING id").fetchone()[0]
    assert stored(conn, feed, post_id) is None
    app.execute(f"UPDATE {post} SET status = 'published' WHERE id = %s", [post_id])
    assert stored(conn, feed, post_id) is not None
    assert [i.item_id for i in pgfeed.feed(app, feed, None)] == [post_id]
    app.execute(f"UPDATE {post} SET status = 'archived' WHERE id = %s", [post_id])
    assert stored(conn, feed, post_id) is None


def test_bulk_insert_embeds_all_rows_in_few_model_calls(app, conn):
    post, like = make_tables(conn)
    feed = attach(conn, post, like)
    calls = encoder_calls(app)
    app.execute(f"INSERT INTO {post} (title, body) SELECT 'post ' || g, 'about topic ' || g % 17 FROM generate_series(1, 1000) g")
    assert encoder_calls(app) - calls <= 4  # 1,000 texts in chunks of 256
    embedded, total = conn.execute(
        f"SELECT count(embedding), count(*) FROM pgfeed.item_store_{feed_id(conn, feed)}").fetchone()
    assert embedded == total == 1000
    row = conn.execute(f"SELECT id, title || ' ' || body FROM {post} ORDER BY random() LIMIT 1").fetchone()
    np.testing.assert_allclose(as_array(stored(conn, feed, row[0])[0]), HashingEncoder().encode([row[1]])[0], atol=1e-6)


def test_existing_rows_are_backfilled_and_reembed_catches_up(app, conn):
    post, like = make_tables(conn)
    app.execute(f"INSERT INTO {post} (title, body) SELECT 'p' || g, 'b' || g FROM generate_series(1, 30) g")
    name = fresh("feed")
    conn.execute("SELECT pgfeed.create_feed(%s, model => %s)", [name, HASHING])
    loaded = conn.execute(f"SELECT pgfeed.attach_content(%s, '{post}', 'id', 'title', 'created_at', backfill => false)",
                          [name]).fetchone()[0]
    assert loaded == 0
    assert conn.execute("SELECT pending FROM pgfeed.status() WHERE feed = %s", [name]).fetchone()[0] == 30
    assert conn.execute("SELECT pgfeed.reembed(%s)", [name]).fetchone()[0] == 30
    assert conn.execute("SELECT pgfeed.reembed(%s)", [name]).fetchone()[0] == 0  # unchanged text is skipped
    assert conn.execute("SELECT embedded, pending FROM pgfeed.status() WHERE feed = %s", [name]).fetchone() == (30, 0)


@pytest.mark.parametrize("title, body, error", [(None, None, "text expression is NULL"), ("", " ", "text expression is empty")])
def test_null_or_empty_text_keeps_the_row_and_records_why(app, conn, title, body, error):
    post, like = make_tables(conn)
    feed = attach(conn, post, like)
    post_id = app.execute(f"INSERT INTO {post} (title, body) VALUES (%s, %s) RETURNING id", [title, body]).fetchone()[0]
    assert conn.execute(f"SELECT count(*) FROM {post} WHERE id = %s", [post_id]).fetchone()[0] == 1
    assert stored(conn, feed, post_id) == (None, error)
    assert conn.execute("SELECT failed FROM pgfeed.status() WHERE feed = %s", [feed]).fetchone()[0] == 1


def test_a_failing_encoder_does_not_lose_the_write(app, conn):
    post, like = make_tables(conn)
    feed = attach(conn, post, like, model=FAILING)
    post_id = app.execute(f"INSERT INTO {post} (title, body) VALUES ('kept', 'row') RETURNING id").fetchone()[0]
    assert conn.execute(f"SELECT title FROM {post} WHERE id = %s", [post_id]).fetchone()[0] == "kept"
    embedding, error = stored(conn, feed, post_id)
    assert embedding is None and "the model crashed" in error
    # once the model works, reembed embeds what failed
    conn.execute("UPDATE pgfeed.feed_config SET model = %s WHERE name = %s", [HASHING, feed])
    assert conn.execute("SELECT pgfeed.reembed(%s)", [feed]).fetchone()[0] == 1
    assert stored(conn, feed, post_id)[1] is None


def test_embed_returns_what_the_trigger_stores(app, conn):
    post, like = make_tables(conn)
    feed = attach(conn, post, like)
    post_id = app.execute(f"INSERT INTO {post} (title, body) VALUES ('same', 'vector') RETURNING id").fetchone()[0]
    direct = conn.execute("SELECT pgfeed.embed('same vector', %s)::text", [HASHING]).fetchone()[0]
    assert direct == stored(conn, feed, post_id)[0]


def test_embed_rejects_empty_text_and_unconfigured_models(conn):
    attach(conn, *make_tables(conn))  # a feed that uses HASHING
    with pytest.raises(Exception, match="text 1 is empty"):
        conn.execute("SELECT pgfeed.embed('   ', %s)", [HASHING])
    with pytest.raises(Exception, match='model "os:getcwd" is not used by any feed granted to you'):
        conn.execute("SELECT pgfeed.embed('x', 'os:getcwd')")
