"""Django REST framework: a list view that pages through a feed by its cursors (needs DRF: the rest extra).

    from pgfeed.django.rest import FeedCursorPagination

    class PostFeedPagination(FeedCursorPagination):
        feed = "posts"

    class PostFeed(ListAPIView):
        queryset = Post.objects.select_related("author")
        serializer_class = PostSerializer  # it may read the feed's score, rank, because...
        pagination_class = PostFeedPagination
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db import DataError
from django.db.models import QuerySet
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import BasePagination, CursorPagination
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param

from pgfeed.django.queryset import FeedPaginator


class FeedCursorPagination(BasePagination):
    """Pages of the feed ``feed`` as ``{"next": URL or null, "results": [...]}``: the rows of the view's QuerySet
    that the feed ranks, best first, annotated with ``rank``, ``score``, ``similarity``, ``freshness``,
    ``popularity``, ``because`` and ``cursor`` (a serializer may read them). ``next`` is this URL with
    ``?cursor=`` the last row's cursor, null on the last page: the feed is asked for one item more than the page,
    so that it is known, not guessed. A page is two queries: the feed, then the QuerySet.

    There is no ``previous``: a feed's cursors go forward only. A cursor that is malformed, altered or made for
    another feed, user or filter is a 400 with pgfeed's message. Filter the feed with ``get_feed_filter``: the
    view's own filters only drop rows from the page the feed chose."""

    feed: str | None = None
    page_size = 20
    cursor_query_param = "cursor"
    cursor_query_description = "The cursor of the next page, as the next link of the page before gives it."
    page_size_query_param: str | None = None  # e.g. "page_size": the client chooses, up to max_page_size
    page_size_query_description = CursorPagination.page_size_query_description
    max_page_size: int | None = None

    # DRF's own reading of page_size_query_param and max_page_size, and its OpenAPI parameters for them
    get_page_size = CursorPagination.get_page_size
    get_schema_operation_parameters = CursorPagination.get_schema_operation_parameters

    def get_feed_user(self, request) -> Any:
        """Whose feed: the authenticated user's key; None (the cold-start feed) for anyone else."""
        return request.user.pk if getattr(request.user, "is_authenticated", False) else None

    def get_feed_filter(self, request) -> dict | None:
        """The feed's filter, {"column": value or [values]} on its filter columns, or None."""
        return None

    def paginate_queryset(self, queryset: QuerySet, request, view=None) -> QuerySet:
        if not self.feed:
            raise ImproperlyConfigured(f"{type(self).__name__}.feed names no feed")
        self.request = request
        paginator = FeedPaginator(queryset, self.feed, self.get_feed_user(request), self.get_page_size(request),
                                  filter=self.get_feed_filter(request))
        try:
            page, self.next_cursor = paginator.page_queryset(request.query_params.get(self.cursor_query_param) or None)
        except DataError as error:  # pgfeed's invalid_parameter_value, raised by psycopg (or psycopg2)
            diag = getattr(error.__cause__, "diag", None)
            if diag is None or diag.sqlstate != "22023" or "cursor" not in (diag.message_primary or ""):
                raise
            raise ValidationError({self.cursor_query_param: [diag.message_primary]}) from error
        return page

    def get_next_link(self) -> str | None:
        if self.next_cursor is None:
            return None
        return replace_query_param(self.request.build_absolute_uri(), self.cursor_query_param, self.next_cursor)

    def get_paginated_response(self, data) -> Response:
        return Response({"next": self.get_next_link(), "results": data})

    def get_paginated_response_schema(self, schema: dict) -> dict:
        return {"type": "object", "required": ["next", "results"], "properties": {
            "next": {"type": "string", "nullable": True, "format": "uri",
                     "example": f"http://api.example.org/feed/?{self.cursor_query_param}=v1.eyJpIjogIjE3..."},
            "results": schema}}
