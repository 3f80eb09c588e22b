"""pgfeed.django.rest: a DRF list view paged by a feed's cursors, against the same server (DRF installed: the rest
extra)."""

from urllib.parse import parse_qs, urlsplit

import pytest

import pgfeed
from django_models import article_feed, article_models

pytest.importorskip("rest_framework")


@pytest.fixture(scope="module")
def models(dsn):
    yield from article_models(dsn)


def feed_view(Article, feed, **pagination):
    """A ListAPIView of the articles with their authors' names and the feed's rank and score, paged by ``feed``
    (``pagination``: attributes of its FeedCursorPagination)."""
    from rest_framework import generics, serializers

    from pgfeed.django.rest import FeedCursorPagination

    class ArticleSerializer(serializers.ModelSerializer):
        author = serializers.CharField(source="author.name")
        rank = serializers.IntegerField()
        score = serializers.FloatField()

        class Meta:
            model = Article
            fields = ["id", "title", "author", "rank", "score"]

    return generics.ListAPIView.as_view(queryset=Article.objects.select_related("author"),
                                        serializer_class=ArticleSerializer,
                                        pagination_class=type("Pagination", (FeedCursorPagination,),
                                                              {"feed": feed, **pagination}))


def get(view, url, user=None):
    """The view's response to GET url, as the user with this key (None: anonymous)."""
    from django.contrib.auth.models import User
    from rest_framework.test import APIRequestFactory, force_authenticate

    request = APIRequestFactory().get(url)
    if user is not None:
        force_authenticate(request, user=User(pk=user))
    return view(request)


def pages(view, url, user):
    """Every page from url on, following the next links: [(response, queries), ...]."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    found = []
    while url:
        with CaptureQueriesContext(connection) as queries:
            response = get(view, url, user)
        assert response.status_code == 200, response.data
        found.append((response, len(queries)))
        url = response.data["next"]
    return found


@pytest.mark.parametrize("user", [5, None], ids=["user 5", "anonymous"])
def test_pages_through_a_view_are_the_feeds_one_ranking(models, conn, user):
    """Pages of 4 (the client asked for 50, max_page_size is 4) make what one pgfeed.feed() call of the user
    returns (anonymous: the cold-start feed), each page two queries with the authors' names and the feed's
    scores; next keeps the other parameters, and is null exactly on the last page."""
    Article, Like, _, _ = models
    feed, _ = article_feed(conn, Article, Like, weight_freshness=0)  # (time-free: pages and one call agree)
    whole = pgfeed.feed(conn, feed, user, limit=100)
    assert len(whole) == Article.objects.count() - (Like.objects.filter(user_id=5).count() if user else 0) >= 10
    view = feed_view(Article, feed, page_size_query_param="page_size", max_page_size=4)
    found = pages(view, "/articles/?page_size=50&lang=en", user)

    assert [row["id"] for response, _ in found for row in response.data["results"]] == [i.item_id for i in whole]
    assert [len(response.data["results"]) for response, _ in found] == \
        [4] * (len(whole) // 4) + [len(whole) % 4] * (len(whole) % 4 > 0)
    assert [queries for _, queries in found] == [2] * len(found)
    assert [response.data["next"] is None for response, _ in found] == [False] * (len(found) - 1) + [True]
    assert all(set(response.data) == {"next", "results"} for response, _ in found)
    for response, _ in found[:-1]:
        assert response.data["next"].startswith("http://testserver/articles/?cursor=v1.")
        assert response.data["next"].endswith("&lang=en&page_size=50")
    rows = [row for response, _ in found for row in response.data["results"]]
    assert all(row["author"] == Article.objects.get(pk=row["id"]).author.name for row in rows)
    assert [row["score"] for row in rows] == pytest.approx([i.score for i in whole])
    assert [row["rank"] for row in rows[:4]] == [1, 2, 3, 4]

    first = get(feed_view(Article, feed), "/articles/", user).data  # the default page size, 20
    assert [row["id"] for row in first["results"]] == [i.item_id for i in whole[:20]]
    assert (first["next"] is None) == (len(whole) <= 20)


def test_a_cursor_that_is_not_the_feeds_is_a_400_with_pgfeeds_message(models, conn):
    """Altered, malformed, or made for another user: 400, {"cursor": [pgfeed's message]}, and the next request
    goes on. Other errors of the feed are not the client's: they are raised as they are."""
    from django.core.exceptions import ImproperlyConfigured
    from django.db import DataError

    Article, Like, _, _ = models
    feed, _ = article_feed(conn, Article, Like)
    view = feed_view(Article, feed, page_size=4)
    [cursor] = parse_qs(urlsplit(get(view, "/articles/", 5).data["next"]).query)["cursor"]
    version, payload, check = cursor.split(".")
    altered = f"{version}.{payload}.{'A' if check[0] != 'A' else 'B'}{check[1:]}"
    for url, user, message in [
        (f"/articles/?cursor={altered}", 5, "cursor was made for another feed, user or filter, or altered"),
        (f"/articles/?cursor={cursor}", None, "cursor was made for another feed, user or filter, or altered"),
        (f"/articles/?cursor={cursor}", 6, "cursor was made for another feed, user or filter, or altered"),
        ("/articles/?cursor=nonsense", 5, "malformed cursor: nonsense"),
    ]:
        response = get(view, url, user)
        assert (response.status_code, response.data) == (400, {"cursor": [message]}), url
    assert get(view, f"/articles/?cursor={cursor}", 5).status_code == 200

    # a filter the feed does not have: the view's mistake, not the client's
    with pytest.raises(DataError, match='filter key "colour" is not a filter column'):
        get(feed_view(Article, feed, get_feed_filter=lambda self, request: {"colour": "blue"}), "/articles/", 5)
    with pytest.raises(ImproperlyConfigured, match="Pagination.feed names no feed"):
        get(feed_view(Article, None), "/articles/", 5)


def test_openapi_schema_of_a_page(models):
    """The view's OpenAPI operation: the cursor and page size parameters; a page is next and results, no previous."""
    Article, _, _, _ = models
    as_view = feed_view(Article, "posts", page_size_query_param="page_size")
    schema = as_view.view_class(**as_view.view_initkwargs, format_kwarg=None, request=None).schema  # its AutoSchema
    assert [(p["name"], p["in"], p["schema"]["type"]) for p in schema.get_pagination_parameters("/articles/", "GET")] == \
        [("cursor", "query", "string"), ("page_size", "query", "integer")]
    page = schema.get_responses("/articles/", "GET")["200"]["content"]["application/json"]["schema"]
    assert page["required"] == ["next", "results"] and set(page["properties"]) == {"next", "results"}
    assert page["properties"]["next"]["nullable"] and page["properties"]["results"]["type"] == "array"
