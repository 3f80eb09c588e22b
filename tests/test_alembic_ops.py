"""pgfeed.alembic: op.create_feed, op.attach_content, op.attach_interactions, ... in an alembic migration context
on the real server, and their reverse steps."""

import psycopg
import pytest
from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy import create_engine, pool
from sqlalchemy.exc import DBAPIError

import pgfeed
import pgfeed.alembic  # noqa: F401 (registers the operations)
from conftest import HASHING, feed_id, fresh, make_tables


def test_alembic_operations_set_up_a_feed_and_their_reverse_takes_it_down(dsn, conn):
    post, like = make_tables(conn)
    conn.execute(f"INSERT INTO {post} (title, body) SELECT 'post ' || g, 'text ' || g FROM generate_series(1, 6) g")
    conn.execute(f"INSERT INTO {like} (user_id, post_id) VALUES (1, 1), (1, 2)")
    feed = fresh("feed")
    engine = create_engine("postgresql+psycopg://", creator=lambda: psycopg.connect(dsn), poolclass=pool.NullPool)
    with engine.begin() as connection:
        op = Operations(MigrationContext.configure(connection))
        done = [op.create_feed(feed, model=HASHING, weight_freshness=0.0),
                op.attach_content(feed, post, "id", "title || ' ' || body", "created_at", filter_columns=["status"]),
                op.attach_interactions(feed, like, "user_id", "post_id", created_at_column="created_at"),
                op.alter_feed(feed, max_per_group=3)]
    assert done == [None] * 4
    assert conn.execute("SELECT max_per_group, weight_freshness FROM pgfeed.feed_config WHERE name = %s",
                        [feed]).fetchone() == (3, 0.0)
    assert conn.execute("SELECT filter_columns FROM pgfeed.content_source WHERE feed_id = %s",
                        [feed_id(conn, feed)]).fetchone()[0] == ["status"]
    assert {item.item_id for item in pgfeed.feed(conn, feed, 1, limit=20)} == {3, 4, 5, 6}  # 1 and 2 liked

    steps = [pgfeed.alembic.CreateFeedOp(feed, model=HASHING),
             pgfeed.alembic.AttachContentOp(feed, post, "id", "title", "created_at"),
             pgfeed.alembic.AttachInteractionsOp(feed, like, "user_id", "post_id")]
    with engine.begin() as connection:
        op = Operations(MigrationContext.configure(connection))
        op.invoke(steps[2].reverse())  # detach the likes
    assert conn.execute("SELECT count(*) FROM pgfeed.interaction_source WHERE feed_id = %s",
                        [feed_id(conn, feed)]).fetchone()[0] == 0
    with engine.begin() as connection:
        op = Operations(MigrationContext.configure(connection))
        op.invoke(steps[1].reverse())
        op.invoke(steps[0].reverse())
    assert conn.execute("SELECT count(*) FROM pgfeed.feed_config WHERE name = %s", [feed]).fetchone()[0] == 0
    with pytest.raises(TypeError, match="unknown settings \\['colour'\\]"):
        pgfeed.alembic.CreateFeedOp(feed, colour="blue")
    with engine.begin() as connection, pytest.raises(DBAPIError, match="unknown feed"):
        Operations(MigrationContext.configure(connection)).drop_feed(feed)
