"""A feed as a QuerySet: one query reads the page from pgfeed.feed(), a second (the QuerySet) reads the rows,
annotated with what the feed says of each and ordered as the feed ranks them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from django.db import connections
from django.db.models import F, FloatField, Func, IntegerField, Model, QuerySet, TextField
from django.db.models.expressions import RawSQL

from pgfeed.client import feed_call

# what pgfeed.feed() says of each item, as the QuerySet's annotations (with rank: 1 for the first)
COLUMNS = {"score": FloatField(), "similarity": FloatField(), "freshness": FloatField(), "popularity": FloatField(),
           "because": TextField(), "cursor": TextField()}


class ArrayPosition(Func):
    function = "array_position"
    output_field = IntegerField()


class Subscript(Func):
    """array[position]"""
    template = "(%(expressions)s]"
    arg_joiner = ")["


def feed_rows(queryset: QuerySet, feed: str, user: Any, limit: int, after: str | None, filter: dict | None,
              exclude: Iterable[Any] | None, exclude_seen: bool) -> list[tuple]:
    """The page as pgfeed.feed() returns it: (item_id, score, similarity, freshness, popularity, because, cursor)."""
    call, params = feed_call(feed, getattr(user, "pk", user), limit,
                             [getattr(item, "pk", item) for item in exclude or []], exclude_seen, after, filter)
    with connections[queryset.db].cursor() as cursor:
        cursor.execute(f"SELECT item_id, {', '.join(COLUMNS)} FROM {call}", params)
        return cursor.fetchall()


def in_feed_order(queryset: QuerySet, rows: list[tuple]) -> QuerySet:
    """The rows of ``queryset`` the feed returned, in its order, annotated with its columns and ``rank``. The
    page travels as array parameters: whatever the QuerySet joins or prefetches, it is one query (more with
    prefetch_related), and it can be filtered, sliced or used as a subquery."""
    pk = queryset.model._meta.pk
    array_type = pk.cast_db_type(connections[queryset.db])
    keys = [pk.to_python(row[0]) for row in rows]
    position = ArrayPosition(RawSQL(f"%s::{array_type}[]", [keys]), F("pk"))
    columns = {name: Subscript(RawSQL(f"%s::{'float8' if isinstance(field, FloatField) else 'text'}[]",
                                      [[row[i] for row in rows]]), position, output_field=field)
               for i, (name, field) in enumerate(COLUMNS.items(), start=1)}
    return queryset.filter(pk__in=keys).annotate(rank=position, **columns).order_by("rank")


def base_queryset(model_or_queryset: type[Model] | QuerySet, using: str | None) -> QuerySet:
    if isinstance(model_or_queryset, QuerySet):
        return model_or_queryset if using is None else model_or_queryset.using(using)
    return model_or_queryset._default_manager.db_manager(using).all()


def feed_queryset(
    model: type[Model] | QuerySet,
    feed: str,
    user: Any,
    limit: int = 20,
    after: str | None = None,
    filter: dict | None = None,
    exclude: Iterable[Any] | None = None,
    exclude_seen: bool = True,
    using: str | None = None,
) -> QuerySet:
    """A page of ``user``'s feed as a QuerySet of ``model`` (or of the QuerySet given: ``Post.objects.
    select_related("author")``), best first, each row annotated with ``rank`` (1 for the first), ``score``,
    ``similarity``, ``freshness``, ``popularity``, ``because`` (the key, as text, of the liked item most similar
    to it; None on a cold start) and ``cursor`` (pass the last one's as ``after`` for the next page).

    The feed is read when this is called (one query); the QuerySet is a second one, evaluated as any other.
    ``user`` is a model instance or a primary key, None for the cold-start feed; ``filter`` ({"column": value or
    [values]}) keeps the items whose filter columns match; ``exclude`` leaves out these instances or keys.
    """
    queryset = base_queryset(model, using)
    return in_feed_order(queryset, feed_rows(queryset, feed, user, limit, after, filter, exclude, exclude_seen))


class FeedPage(Sequence):
    """One page of a FeedPaginator: its objects in feed order, and the cursor of the page after it (None if it is
    the last)."""

    def __init__(self, object_list: list, next_cursor: str | None) -> None:
        self.object_list, self.next_cursor = object_list, next_cursor

    def __getitem__(self, index):
        return self.object_list[index]

    def __len__(self) -> int:
        return len(self.object_list)

    def has_next(self) -> bool:
        return self.next_cursor is not None


class FeedPaginator:
    """Pages through a feed by its cursors, for an infinite scroll or a "more" link:

        page = FeedPaginator(Post.objects.select_related("author"), "posts", request.user).page(request.GET.get("after"))
        # render page; link to ?after={{ page.next_cursor }} if page.has_next()

    A page is two queries. It asks the feed for one item more than ``per_page``: whether there is a next page is
    known, not guessed (the first ``per_page`` items are the same either way)."""

    def __init__(self, model: type[Model] | QuerySet, feed: str, user: Any, per_page: int = 20,
                 filter: dict | None = None, exclude: Iterable[Any] | None = None, exclude_seen: bool = True,
                 using: str | None = None) -> None:
        if per_page < 1:
            raise ValueError(f"per_page must be at least 1, got {per_page}")
        self.queryset = base_queryset(model, using)
        self.feed, self.user, self.per_page = feed, user, per_page
        self.filter, self.exclude, self.exclude_seen = filter, exclude, exclude_seen

    def page(self, after: str | None = None) -> FeedPage:
        """The page after the cursor ``after`` (None: the first page)."""
        objects, next_cursor = self.page_queryset(after)
        return FeedPage(list(objects), next_cursor)

    def page_queryset(self, after: str | None = None) -> tuple[QuerySet, str | None]:
        """The page after ``after`` as a QuerySet in feed order (the feed is read, the rows are not yet), and the
        cursor of the page after it (None if it is the last)."""
        rows = feed_rows(self.queryset, self.feed, self.user, self.per_page + 1, after, self.filter, self.exclude,
                         self.exclude_seen)
        more = len(rows) > self.per_page
        rows = rows[:self.per_page]
        return in_feed_order(self.queryset, rows), rows[-1][-1] if more else None
