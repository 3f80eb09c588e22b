"""pgfeed.django.feed_queryset against the same server, without a Django project
(settings.configure, models with an app_label)."""

import uuid

import django
import pytest
from django.conf import settings
from psycopg.conninfo import conninfo_to_dict

import pgfeed
from conftest import HASHING, fresh


@pytest.fixture(scope="module")
def models(dsn):
    params = conninfo_to_dict(dsn)
    settings.configure(
        DATABASES={"default": {"ENGINE": "django.db.backends.postgresql", "NAME": params["dbname"],
                               "USER": params["user"], "HOST": params["host"], "PORT": params["port"]}},
        INSTALLED_APPS=[], USE_TZ=True, DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
    )
    django.setup()
    from django.db import connection
    from django.db import models as m

    suffix = uuid.uuid4().hex[:8]

    class Article(m.Model):
        title = m.CharField(max_length=200)
        body = m.TextField()
        created_at = m.DateTimeField(auto_now_add=True)

        class Meta:
            app_label = "pgfeed_tests"
            db_table = f"article_{suffix}"

    class Like(m.Model):
        user_id = m.BigIntegerField()
        article = m.ForeignKey(Article, on_delete=m.CASCADE)

        class Meta:
            app_label = "pgfeed_tests"
            db_table = f"article_like_{suffix}"

    with connection.schema_editor() as editor:
        editor.create_model(Article)
        editor.create_model(Like)
    return Article, Like


def test_feed_queryset_is_the_feed_as_model_instances(models, conn):
    from pgfeed.django import feed_queryset

    Article, Like = models
    feed = fresh("feed")
    conn.execute("SELECT pgfeed.create_feed(%s, model => %s)", [feed, HASHING])
    conn.execute("SELECT pgfeed.attach_content(%s, %s::regclass, 'id', $$title || ' ' || body$$, 'created_at')",
                 [feed, Article._meta.db_table])
    conn.execute("SELECT pgfeed.attach_interactions(%s, %s::regclass, 'user_id', 'article_id')",
                 [feed, Like._meta.db_table])
    articles = [Article.objects.create(title=f"note {i}", body=["garden soil", "bread dough", "tax return"][i % 3])
                for i in range(12)]
    Like.objects.create(user_id=5, article=articles[0])
    Like.objects.create(user_id=5, article=articles[3])

    expected = pgfeed.feed(conn, feed, 5, limit=6, exclude=[articles[6].pk])
    result = list(feed_queryset(Article, feed, 5, limit=6, exclude=[articles[6]]))
    assert [a.pk for a in result] == [i.item_id for i in expected]
    assert all(isinstance(a, Article) and a.title.startswith("note") for a in result)
    for article, item in zip(result, expected, strict=True):  # two transactions: freshness moved on a little
        assert (article.similarity, article.popularity) == pytest.approx((item.similarity, item.popularity))
        assert (article.score, article.freshness) == pytest.approx((item.score, item.freshness), abs=1e-3)
        assert int(article.because) == item.because and item.because in (articles[0].pk, articles[3].pk)
    assert result[0].body == "garden soil"  # the user liked garden notes
    assert len(list(feed_queryset(Article, feed, None))) == 12  # cold start, nothing seen
