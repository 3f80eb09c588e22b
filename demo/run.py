"""pgfeed demo: 320 short posts over 10 topics, two users with different tastes,
and their feeds, computed entirely inside PostgreSQL with all-MiniLM-L6-v2.

    python demo/run.py --dsn "host=... dbname=pgfeed"
"""

from __future__ import annotations

import csv
import random
import time
from pathlib import Path

import click
import psycopg

import pgfeed

CORPUS = Path(__file__).with_name("posts.csv")
USERS = {1: ("Alice", ["cooking", "gardening"]), 2: ("Bob", ["programming", "astronomy"])}
SETUP = """
DO $$ BEGIN
    IF EXISTS (SELECT FROM pgfeed.feed_config WHERE name = 'posts') THEN PERFORM pgfeed.drop_feed('posts'); END IF;
END $$;
DROP SCHEMA IF EXISTS demo CASCADE;
CREATE SCHEMA demo;
CREATE TABLE demo.post (id bigserial PRIMARY KEY, topic text NOT NULL, body text NOT NULL,
                        status text NOT NULL DEFAULT 'published', created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE demo.post_like (user_id integer NOT NULL, post_id bigint NOT NULL REFERENCES demo.post ON DELETE CASCADE,
                             created_at timestamptz NOT NULL DEFAULT now());
SELECT pgfeed.create_feed('posts');
SELECT pgfeed.attach_content('posts', 'demo.post'::regclass, 'id', $$topic || ': ' || body$$, 'created_at',
                             condition => $$status = 'published'$$);
SELECT pgfeed.attach_interactions('posts', 'demo.post_like'::regclass, 'user_id', 'post_id',
                                  created_at_column => 'created_at');
"""


def load(conn: psycopg.Connection) -> float:
    """Insert the corpus (spread over two weeks) in one statement; returns seconds."""
    with CORPUS.open() as f:
        posts = [(row["topic"], row["text"], i * 61) for i, row in enumerate(csv.DictReader(f))]
    started = time.perf_counter()
    with conn.cursor() as cur:
        cur.execute("""INSERT INTO demo.post (topic, body, created_at)
                       SELECT topic, body, now() - minutes * interval '1 minute'
                         FROM unnest(%s::text[], %s::text[], %s::int[]) AS p(topic, body, minutes)""",
                    [[p[0] for p in posts], [p[1] for p in posts], [p[2] for p in posts]])
    return time.perf_counter() - started


def like(conn: psycopg.Connection) -> None:
    rng = random.Random(42)
    ids_by_topic: dict[str, list[int]] = {}
    for post_id, topic in conn.execute("SELECT id, topic FROM demo.post ORDER BY id"):
        ids_by_topic.setdefault(topic, []).append(post_id)
    likes = [(user, post_id) for user, (_, topics) in USERS.items()
             for topic in topics for post_id in rng.sample(ids_by_topic[topic], 5)]
    everything = [post_id for ids in ids_by_topic.values() for post_id in ids]
    hits = everything[::9]  # some posts everyone likes: popularity
    likes += [(100 + n, rng.choice(hits if rng.random() < 0.6 else everything)) for n in range(40) for _ in range(4)]
    conn.cursor().executemany("INSERT INTO demo.post_like (user_id, post_id) VALUES (%s, %s)", likes)


def show(conn: psycopg.Connection, title: str, user_id: int | None, liked_topics: list[str]) -> None:
    items = pgfeed.feed(conn, "posts", user_id, limit=10)
    posts = dict(conn.execute("SELECT id, (topic, body) FROM demo.post WHERE id = ANY (%s)",
                              [[i.item_id for i in items]]).fetchall())
    matching = sum(posts[i.item_id][0] in liked_topics for i in items)
    click.secho(f"\n{title}" + (f" — {matching}/10 from liked topics" if liked_topics else ""), bold=True)
    click.echo(f"{'#':>2}  {'score':>6} {'sim':>6} {'fresh':>6} {'pop':>6}  {'topic':<12} post")
    for rank, item in enumerate(items, 1):
        topic, body = posts[item.item_id]
        click.echo(f"{rank:>2}  {item.score:6.3f} {item.similarity:6.3f} {item.freshness:6.3f} {item.popularity:6.3f}"
                   f"  {topic:<12} {body[:70]}")


@click.command()
@click.option("--dsn", envvar="PGFEED_DSN", required=True)
def main(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(SETUP)
        seconds = load(conn)
        like(conn)
        status = pgfeed.status(conn)[0]
        click.echo(f"embedded {status['embedded']} posts in PostgreSQL in {seconds:.1f} s (model load included); "
                   f"{status['interactions']} likes, {status['profiles']} profiles")
        for user_id, (name, topics) in USERS.items():
            show(conn, f"{name} (likes {' and '.join(topics)})", user_id, topics)
        show(conn, "A new visitor (cold start: freshness and popularity only)", None, [])


if __name__ == "__main__":
    main()
