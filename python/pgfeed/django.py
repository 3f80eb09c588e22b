"""Django: a feed as a RawQuerySet of your model, in feed order.

    from pgfeed.django import feed_queryset
    for post in feed_queryset(Post, "posts", request.user, limit=20):
        print(post.title, post.score)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import connections
from django.db.models import Model, UUIDField
from django.db.models.query import RawQuerySet

from pgfeed.client import feed_call


def feed_queryset(
    model: type[Model],
    feed: str,
    user: Any,
    limit: int = 20,
    exclude: Iterable[Any] | None = None,
    exclude_seen: bool = True,
    using: str | None = None,
    after: str | None = None,
    filter: dict | None = None,
) -> RawQuerySet:
    """Instances of ``model`` in the order of ``pgfeed.feed``, each with ``.score``,
    ``.similarity``, ``.freshness``, ``.popularity``, ``.because`` (the key, as text, of the liked item
    most similar to it; None on a cold start) and ``.cursor`` (pass the last one's as ``after`` for the next
    page). ``filter`` ({"column": value or [values]}) keeps the items whose filter columns match.

    ``user`` is a model instance or a primary key; ``None`` gives the cold-start
    feed. The join casts the feed's key to the primary key's type, never the
    table's column, so the primary key index serves it.
    """
    manager = model._default_manager.db_manager(using)
    quote = connections[manager.db].ops.quote_name
    key_type = "uuid" if isinstance(model._meta.pk, UUIDField) else "bigint"

    call, params = feed_call(feed, getattr(user, "pk", user), limit,
                             [getattr(item, "pk", item) for item in exclude or []], exclude_seen, after, filter)
    sql = (
        f"SELECT t.*, f.score, f.similarity, f.freshness, f.popularity, f.because, f.cursor "
        f"FROM {call} WITH ORDINALITY AS f(item_id, score, similarity, freshness, popularity, because, cursor, rank) "
        f"JOIN {quote(model._meta.db_table)} AS t ON t.{quote(model._meta.pk.column)} = f.item_id::{key_type} "
        f"ORDER BY f.rank"
    )
    return manager.raw(sql, params)
