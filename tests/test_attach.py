"""attach_* and create_feed: bad input gets an error naming the culprit."""

import threading
import time

import psycopg
import pytest

import pgfeed
from conftest import HASHING, attach, fresh, make_tables


def new_feed(conn):
    name = fresh("feed")
    conn.execute("SELECT pgfeed.create_feed(%s, model => %s)", [name, HASHING])
    return name


def test_missing_column_is_named_with_the_columns_there_are(conn):
    post, like = make_tables(conn)
    feed = new_feed(conn)
    with pytest.raises(psycopg.errors.UndefinedColumn, match=rf'column "slug" does not exist in table (public\.)?{post}') as error:
        conn.execute(f"SELECT pgfeed.attach_content(%s, '{post}', 'slug', 'title', 'created_at')", [feed])
    assert "title" in error.value.diag.message_hint
    conn.execute(f"SELECT pgfeed.attach_content(%s, '{post}', 'id', 'title', 'created_at')", [feed])
    with pytest.raises(psycopg.errors.UndefinedColumn, match='column "liker" does not exist'):
        conn.execute(f"SELECT pgfeed.attach_interactions(%s, '{like}', 'liker', 'post_id')", [feed])


def test_bad_expressions_are_reported_with_the_table(conn):
    post, _ = make_tables(conn)
    feed = new_feed(conn)
    invalid = rf"text expression 'titel' is not valid on table (public\.)?{post}"
    with pytest.raises(psycopg.errors.InvalidParameterValue, match=invalid):
        conn.execute(f"SELECT pgfeed.attach_content(%s, '{post}', 'id', 'titel', 'created_at')", [feed])
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="condition expression"):
        conn.execute(f"SELECT pgfeed.attach_content(%s, '{post}', 'id', 'title', 'created_at', condition => 'title')", [feed])


def test_key_types_are_checked(conn):
    post, like = make_tables(conn)
    feed = new_feed(conn)
    with pytest.raises(psycopg.errors.DatatypeMismatch, match=r"has type text, which pgfeed cannot use as an item key"):
        conn.execute(f"SELECT pgfeed.attach_content(%s, '{post}', 'title', 'body', 'created_at')", [feed])
    uuid_post, uuid_like = make_tables(conn, "uuid")
    conn.execute(f"SELECT pgfeed.attach_content(%s, '{post}', 'id', 'title', 'created_at')", [feed])
    with pytest.raises(psycopg.errors.DatatypeMismatch, match="holds uuid keys but the items"):
        conn.execute(f"SELECT pgfeed.attach_interactions(%s, '{uuid_like}', 'user_id', 'post_id')", [feed])


def test_unknown_feed_and_duplicates(conn):
    post, like = make_tables(conn)
    with pytest.raises(psycopg.errors.UndefinedObject, match='unknown feed "ghost"'):
        conn.execute(f"SELECT pgfeed.attach_content('ghost', '{post}', 'id', 'title', 'created_at')")
    feed = attach(conn, post, like)
    with pytest.raises(psycopg.errors.DuplicateObject, match=f'feed "{feed}" already exists'):
        conn.execute("SELECT pgfeed.create_feed(%s, model => %s)", [feed, HASHING])
    with pytest.raises(Exception, match="model 'no-such-model' not found"):
        conn.execute("SELECT pgfeed.create_feed(%s, model => 'no-such-model')", [fresh("feed")])


def test_identifiers_are_quoted_not_pasted(conn):
    table = fresh('"Odd Table')  # needs quoting everywhere
    conn.execute(f'CREATE TABLE "{table[1:]}" ("Post Id" int PRIMARY KEY, "Text" text, "When" timestamptz DEFAULT now())')
    feed = new_feed(conn)
    conn.execute("""SELECT pgfeed.attach_content(%s, %s::regclass, 'Post Id', '"Text"', 'When')""",
                 [feed, f'"{table[1:]}"'])
    conn.execute(f'INSERT INTO "{table[1:]}" VALUES (1, %s)', ["hello'); DROP TABLE x; --"])
    assert conn.execute("SELECT embedded FROM pgfeed.status() WHERE feed = %s", [feed]).fetchone()[0] == 1


def test_detach_and_drop_leave_user_tables_as_they_were(conn):
    post, like = make_tables(conn)
    triggers_before = conn.execute("SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal").fetchone()[0]
    feed = attach(conn, post, like)
    conn.execute(f"INSERT INTO {post} (title, body) VALUES ('a', 'b')")
    conn.execute(f"INSERT INTO {like} VALUES (1, 1)")
    conn.execute("SELECT pgfeed.detach(%s, %s::regclass)", [feed, like])
    assert conn.execute("SELECT interactions, profiles FROM pgfeed.status() WHERE feed = %s", [feed]).fetchone() == (0, 0)
    conn.execute("SELECT pgfeed.drop_feed(%s)", [feed])
    assert conn.execute("SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal").fetchone()[0] == triggers_before
    assert conn.execute(f"SELECT count(*) FROM {post}").fetchone()[0] == 1
    assert conn.execute(f"SELECT count(*) FROM {like}").fetchone()[0] == 1


def test_a_feed_whose_tables_were_dropped_can_still_be_dropped(conn):
    post, like = make_tables(conn)
    feed = attach(conn, post, like)
    conn.execute(f"DROP TABLE {like}, {post}")
    conn.execute("SELECT pgfeed.drop_feed(%s)", [feed])
    assert conn.execute("SELECT count(*) FROM pgfeed.feed_config WHERE name = %s", [feed]).fetchone()[0] == 0


def texts_embedded(conn):
    """How many texts this session's backend has embedded with the test encoder."""
    row = conn.execute("SELECT texts FROM pgfeed.encoder_stats() WHERE model = %s", [HASHING]).fetchone()
    return row[0] if row else 0


def test_attaching_the_feeds_own_table_again_keeps_the_vectors_of_unchanged_texts(conn, app):
    """The fix for a renamed column: attach the same table again with the new name. The feed's definition changes
    in place; only new and changed texts reach the model, and what the triggers missed meanwhile is caught up
    (detach and attach would embed every item again, and lose the likes' order)."""
    post, like = make_tables(conn)
    feed = attach(conn, post, like)
    app.execute(f"INSERT INTO {post} (title, body) SELECT 'post ' || g, 'body ' || g FROM generate_series(1, 4) g")
    app.execute(f"INSERT INTO {like} (user_id, post_id) VALUES (1, 1)")
    app.execute(f"ALTER TABLE {post} RENAME COLUMN body TO content")
    app.execute(f"INSERT INTO {post} (title, content) VALUES ('post 5', 'body 5')")  # missed: the feed stands aside
    app.execute(f"UPDATE {post} SET content = 'changed' WHERE id = 2")
    app.execute(f"DELETE FROM {post} WHERE id = 4")
    app.execute(f"INSERT INTO {like} (user_id, post_id) VALUES (1, 3)")
    assert [s["problem"] is not None for s in pgfeed.status(conn) if s["feed"] == feed] == [True]

    before = texts_embedded(conn)
    conn.execute(f"""SELECT pgfeed.attach_content(%s, '{post}'::regclass, 'id', $$title || ' ' || content$$,
                                                 'created_at', condition => $$status = 'published'$$)""", [feed])
    assert texts_embedded(conn) - before == 2  # post 5 and the changed post 2; posts 1 and 3 kept their vectors
    [status] = [s for s in pgfeed.status(conn) if s["feed"] == feed]
    assert (status["problem"], status["items"], status["embedded"], status["interactions"]) == (None, 4, 4, 2)
    store = conn.execute("SELECT pgfeed._item_store(feed_id) FROM pgfeed.feed_config WHERE name = %s", [feed]).fetchone()[0]
    assert conn.execute(f"SELECT item_id, embedding = pgfeed.embed(%s, %s) FROM {store} WHERE item_id IN (2, 5) "
                        "ORDER BY item_id", ["post 2 changed", HASHING]).fetchall() == [(2, True), (5, False)]
    app.execute(f"INSERT INTO {post} (title, content) VALUES ('post 6', 'body 6')")  # followed again
    assert 6 in {item.item_id for item in pgfeed.feed(conn, feed, None, limit=10)}
    other, _ = make_tables(conn)
    with pytest.raises(psycopg.errors.DuplicateObject, match=f'feed "{feed}" already has a content table'):
        conn.execute(f"SELECT pgfeed.attach_content(%s, '{other}', 'id', 'title', 'created_at')", [feed])


def test_attaching_again_holds_writers_and_remakes_missing_triggers(conn, app, dsn):
    """(The third review of 0.5.0.) A writer during a re-attach waits for it, as for the first attach, and is
    followed with the new definition: the store agrees with the new condition. A partition that lost its
    triggers (pgfeed._follow_partitions gives up after 100 ms) gets them back."""
    post, like = fresh("post"), fresh("post_like")
    app.execute(f"""CREATE TABLE {post} (id int PRIMARY KEY, title text, flag boolean NOT NULL DEFAULT true,
                                         created_at timestamptz DEFAULT now()) PARTITION BY RANGE (id);
                     CREATE TABLE {post}_1 PARTITION OF {post} FOR VALUES FROM (0) TO (100);
                     CREATE TABLE {post}_2 PARTITION OF {post} FOR VALUES FROM (100) TO (200);
                     CREATE TABLE {like} (user_id int, post_id int)""")
    feed = fresh("feed")
    conn.execute("SELECT pgfeed.create_feed(%s, model => %s)", [feed, HASHING])
    attach = f"SELECT pgfeed.attach_content(%s, '{post}', 'id', 'title', 'created_at', condition => %s)"
    conn.execute(attach, [feed, "flag"])
    app.execute(f"INSERT INTO {post} (id, title) VALUES (1, 'one'), (2, 'two')")
    for row in conn.execute("SELECT tgname FROM pg_trigger WHERE tgrelid = %s::regclass AND NOT tgisinternal",
                            [f"{post}_2"]).fetchall():
        conn.execute(f"DROP TRIGGER {row[0]} ON {post}_2")

    with psycopg.connect(dsn) as migration:  # the re-attach, in a transaction left open
        migration.execute(attach, [feed, "NOT flag"])
        writer = threading.Thread(target=lambda: app.execute(
            f"INSERT INTO {post} (id, title, flag) VALUES (50, 'fifty', true), (51, 'fifty-one', false); "
            f"UPDATE {post} SET flag = false WHERE id = 2"))
        writer.start()
        deadline = time.monotonic() + 20
        while not conn.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                               "AND query LIKE %s", [f"INSERT INTO {post}%"]).fetchone()[0]:
            assert time.monotonic() < deadline and writer.is_alive(), "the writer did not wait for the re-attach"
            time.sleep(0.02)
        migration.commit()
    writer.join(timeout=30)
    app.execute(f"INSERT INTO {post}_2 (id, title, flag) VALUES (150, 'straight into the partition', false)")
    store = conn.execute("SELECT pgfeed._item_store(feed_id) FROM pgfeed.feed_config WHERE name = %s", [feed]).fetchone()[0]
    stored = {row[0] for row in conn.execute(f"SELECT item_id FROM {store}")}
    assert stored == {row[0] for row in conn.execute(f"SELECT id FROM {post} WHERE NOT flag")} == {2, 51, 150}
