"""Reading feeds from Python."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass

import psycopg
from psycopg.types.json import Jsonb

Key = int | uuid.UUID


@dataclass(frozen=True)
class FeedItem:
    item_id: Key
    score: float
    similarity: float
    freshness: float
    popularity: float
    because: Key | None = None  # the liked item most similar to this one (None on a cold start)
    cursor: str | None = None   # pass the last item's as ``after`` for the next page


def parse_key(text: str) -> Key:
    """pgfeed keys are integers or UUIDs; pgfeed.feed() returns them as text."""
    return int(text) if text.lstrip("-").isdigit() else uuid.UUID(text)


def feed_call(
    feed: str, user_id: Key | None, limit: int, exclude: Iterable[Key] | None, exclude_seen: bool,
    after: str | None = None, filter: dict | None = None,
) -> tuple[str, list]:
    """SQL that calls pgfeed.feed(), and its parameters. NULLs are typed here:
    pgfeed.feed() is polymorphic in the user and item keys."""
    args, params = ["%s", "NULL::text" if user_id is None else "%s", '"limit" => %s', "exclude_seen => %s",
                    "after => %s", "filter => %s"], [feed]
    params += ([] if user_id is None else [user_id]) + [limit, exclude_seen, after,
                                                         None if filter is None else Jsonb(filter)]
    exclude = list(exclude or [])
    if exclude:
        args.append("exclude => %s")
        params.append(exclude)
    return f"pgfeed.feed({', '.join(args)})", params


def feed(
    conn: psycopg.Connection,
    feed: str,
    user_id: Key | None,
    limit: int = 20,
    exclude: Iterable[Key] | None = None,
    exclude_seen: bool = True,
    after: str | None = None,
    filter: dict | None = None,
) -> list[FeedItem]:
    """A page of a user's feed, best first. ``user_id=None`` gives the cold-start feed; ``after`` the last
    item's ``cursor`` gives the next page; ``filter`` ({"column": value or [values]}) keeps the items whose
    filter columns match."""
    call, params = feed_call(feed, user_id, limit, exclude, exclude_seen, after, filter)
    rows = conn.execute(f"SELECT item_id, score, similarity, freshness, popularity, because, cursor FROM {call}",
                        params).fetchall()
    return [FeedItem(parse_key(row[0]), *row[1:5], because=None if row[5] is None else parse_key(row[5]),
                     cursor=row[6])
            for row in rows]


def profile(conn: psycopg.Connection, feed: str, user_id: Key) -> list[float] | None:
    """The vector pgfeed.feed() ranks a user's feed by; None for a cold start."""
    text = conn.execute("SELECT pgfeed.profile(%s, %s)::text", [feed, user_id]).fetchone()[0]
    return None if text is None else [float(x) for x in text.strip("[]").split(",")]


def status(conn: psycopg.Connection) -> list[dict]:
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cursor:
        return cursor.execute("SELECT * FROM pgfeed.status()").fetchall()
