"""The models of the Django tests (an app_label, tables with fresh names) and a feed over them, shared by the
test modules that use them: each module's fixture makes its own tables, and takes its models out of Django's
registry when done, so that the next module's are not a reload of them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

from conftest import HASHING, fresh
from django_settings import configure


def article_models(dsn: str) -> Iterator[tuple]:
    """For a fixture: ``yield from article_models(dsn)`` gives (Article, Like, Author, Note)."""
    configure(dsn)
    from django.apps import apps
    from django.db import connection
    from django.db import models as m

    suffix = uuid.uuid4().hex[:8]

    class Author(m.Model):
        name = m.CharField(max_length=100)

        class Meta:
            app_label = "pgfeed_tests"
            db_table = f"author_{suffix}"

    class Article(m.Model):
        title = m.CharField(max_length=200)
        body = m.TextField()
        created_at = m.DateTimeField(auto_now_add=True)
        author = m.ForeignKey(Author, null=True, on_delete=m.CASCADE)

        class Meta:
            app_label = "pgfeed_tests"
            db_table = f"article_{suffix}"

    class Like(m.Model):
        user_id = m.BigIntegerField()
        article = m.ForeignKey(Article, on_delete=m.CASCADE)

        class Meta:
            app_label = "pgfeed_tests"
            db_table = f"article_like_{suffix}"

    class Note(m.Model):
        id = m.UUIDField(primary_key=True, default=uuid.uuid4)
        body = m.TextField()
        created_at = m.DateTimeField(auto_now_add=True)

        class Meta:
            app_label = "pgfeed_tests"
            db_table = f"note_{suffix}"

    with connection.schema_editor() as editor:
        for model in (Author, Article, Like, Note):
            editor.create_model(model)
    yield Article, Like, Author, Note
    for model in (Author, Article, Like, Note):
        apps.all_models["pgfeed_tests"].pop(model._meta.model_name, None)
    apps.clear_cache()


def article_feed(conn, Article, Like, **settings):
    """A feed over the articles and their likes; 12 articles of three topics by two authors, user 5 liked two
    garden notes (articles 0 and 3)."""
    from django.db import connection

    feed = fresh("feed")
    options = "".join(f", {key} => %({key})s" for key in settings)
    conn.execute(f"SELECT pgfeed.create_feed(%(feed)s, model => %(model)s{options})",
                 {"feed": feed, "model": HASHING, **settings})
    conn.execute("SELECT pgfeed.attach_content(%s, %s::regclass, 'id', $$title || ' ' || body$$, 'created_at')",
                 [feed, Article._meta.db_table])
    conn.execute("SELECT pgfeed.attach_interactions(%s, %s::regclass, 'user_id', 'article_id')",
                 [feed, Like._meta.db_table])
    Author = Article._meta.get_field("author").related_model
    authors = [Author.objects.create(name=name) for name in ("Ann", "Bob")]
    articles = [Article.objects.create(title=f"note {i}", body=["garden soil", "bread dough", "tax return"][i % 3],
                                       author=authors[i % 2]) for i in range(12)]
    Like.objects.create(user_id=5, article=articles[0])
    Like.objects.create(user_id=5, article=articles[3])
    connection.close()  # (the next query sees the feed's settings as committed)
    return feed, articles
