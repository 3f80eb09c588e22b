"""pgfeed.django against the same server, without a Django project (settings.configure, models with an
app_label)."""

import shlex
import subprocess
import sys
import uuid

import pytest

import pgfeed
from conftest import HASHING, fresh
from django_models import article_feed, article_models


@pytest.fixture(scope="module")
def models(dsn):
    yield from article_models(dsn)


def test_feed_queryset_is_the_feed_as_model_instances(models, conn):
    from pgfeed.django import feed_queryset

    Article, Like, _, _ = models
    feed, articles = article_feed(conn, Article, Like)
    expected = pgfeed.feed(conn, feed, 5, limit=6, exclude=[articles[6].pk])
    result = list(feed_queryset(Article, feed, 5, limit=6, exclude=[articles[6]]))
    assert [a.pk for a in result] == [i.item_id for i in expected]
    assert [a.rank for a in result] == list(range(1, 7))
    assert all(isinstance(a, Article) and a.title.startswith("note") for a in result)
    for article, item in zip(result, expected, strict=True):  # two transactions: freshness moved on a little
        assert (article.similarity, article.popularity) == pytest.approx((item.similarity, item.popularity))
        assert (article.score, article.freshness) == pytest.approx((item.score, item.freshness), abs=1e-3)
        assert int(article.because) == item.because and item.because in (articles[0].pk, articles[3].pk)
    assert result[0].body == "garden soil"  # the user liked garden notes
    after = result[-1].cursor  # the next page, as pgfeed.feed() gives it after that cursor
    assert [a.pk for a in feed_queryset(Article, feed, 5, limit=3, after=after)] == \
        [item.item_id for item in pgfeed.feed(conn, feed, 5, limit=3, after=after)]
    assert len(list(feed_queryset(Article, feed, None, limit=100))) == Article.objects.count()  # cold start


def test_feed_queryset_is_a_queryset(models, conn):
    """What 0.2.0's RawQuerySet refused: count, filter, values, only, first, slicing, select_related, use as a
    subquery; and a page with its authors is two queries."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from pgfeed.django import feed_queryset

    Article, Like, Author, _ = models
    feed, articles = article_feed(conn, Article, Like, weight_freshness=0)
    order = [item.item_id for item in pgfeed.feed(conn, feed, 5, limit=8)]
    page = feed_queryset(Article, feed, 5, limit=8)
    assert page.count() == len(page) == 8
    assert [a.pk for a in page[2:5]] == order[2:5] and page.first().pk == order[0]
    assert list(page.values_list("pk", flat=True)) == order
    by_ann = [pk for pk in order if Article.objects.get(pk=pk).author.name == "Ann"]
    assert list(page.filter(author__name="Ann").values_list("pk", flat=True)) == by_ann
    assert [row["rank"] for row in page.values("rank")] == list(range(1, 9))
    assert set(Article.objects.filter(pk__in=page).values_list("pk", flat=True)) == set(order)
    only = page.only("title")[0]
    assert only.get_deferred_fields() >= {"body"} and only.score == page[0].score

    with CaptureQueriesContext(connection) as queries:
        rows = [(a.pk, a.author.name, a.score) for a in feed_queryset(Article.objects.select_related("author"), feed,
                                                                       5, limit=8)]
    assert len(queries) == 2
    with CaptureQueriesContext(connection) as queries:  # prefetch_related adds its own query, and only that
        likes = {a.pk: len(a.like_set.all()) for a in feed_queryset(Article.objects.prefetch_related("like_set"),
                                                                    feed, 5, limit=8)}
    assert len(queries) == 3 and list(likes) == order
    assert likes == {pk: Like.objects.filter(article_id=pk).count() for pk in order}
    assert [pk for pk, _, _ in rows] == order
    assert all(name == Article.objects.get(pk=pk).author.name for pk, name, _ in rows)


def test_feed_queryset_of_uuid_keys(models, conn):
    from pgfeed.django import feed_queryset

    _, _, _, Note = models
    feed = fresh("feed")
    conn.execute("SELECT pgfeed.create_feed(%s, model => %s)", [feed, HASHING])
    conn.execute("SELECT pgfeed.attach_content(%s, %s::regclass, 'id', 'body', 'created_at')", [feed, Note._meta.db_table])
    notes = [Note.objects.create(body=f"note {i}") for i in range(5)]
    page = feed_queryset(Note, feed, None, limit=3)
    assert [n.pk for n in page] == [item.item_id for item in pgfeed.feed(conn, feed, None, limit=3)]
    assert {n.pk for n in page} <= {n.pk for n in notes} and all(isinstance(n.pk, uuid.UUID) for n in page)


def test_feed_paginator_pages_through_the_feed_by_its_cursors(models, conn):
    """Pages of 4 make the one ranking (every article the user did not like), each page two queries; the last
    says it is."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from pgfeed.django import FeedPaginator

    Article, Like, _, _ = models
    feed, _ = article_feed(conn, Article, Like, weight_freshness=0)  # (time-free: pages and one call agree)
    whole = [item.item_id for item in pgfeed.feed(conn, feed, 5, limit=100)]
    assert len(whole) == Article.objects.count() - Like.objects.filter(user_id=5).count() >= 10
    paginator = FeedPaginator(Article.objects.select_related("author"), feed, 5, per_page=4)
    seen, after, sizes = [], None, []
    while True:
        with CaptureQueriesContext(connection) as queries:
            page = paginator.page(after)
            names = [a.author.name for a in page]
        assert len(queries) == 2 and len(names) == len(page)
        seen += [a.pk for a in page]
        sizes.append(len(page))
        if not page.has_next():
            break
        assert page.next_cursor == page[-1].cursor
        after = page.next_cursor
    assert seen == whole and sizes == [4] * (len(whole) // 4) + [len(whole) % 4] * (len(whole) % 4 > 0)
    assert page.next_cursor is None
    with pytest.raises(ValueError, match="per_page must be at least 1"):
        FeedPaginator(Article, feed, 5, per_page=0)


def test_the_app_starts_without_a_database():
    """INSTALLED_APPS = ["pgfeed.django"] touches no database at start-up: manage.py runs before pgfeed is
    installed, or with the database down."""
    code = ("import django; from django.conf import settings; "
            "settings.configure(INSTALLED_APPS=['pgfeed.django'], DATABASES={'default': {"
            "'ENGINE': 'django.db.backends.postgresql', 'NAME': 'nowhere', 'HOST': '127.0.0.1', 'PORT': '1'}}); "
            "django.setup(); from django.apps import apps; print(apps.get_app_config('pgfeed').name)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "pgfeed.django"


def test_manage_py_pgfeed_runs_the_cli_on_a_databases_alias(models, conn, capsys):
    """status (--json, exit code 1 when a feed has failed items), retry, worker and reembed, connected with the
    settings of a DATABASES alias."""
    import json

    from django.core.management import CommandError, call_command
    from django.db import connections
    from psycopg.conninfo import conninfo_to_dict

    from pgfeed.django.database import conninfo

    Article, Like, _, _ = models
    settings_dict = connections["default"].settings_dict
    assert {key: conninfo_to_dict(conninfo("default"))[key] for key in ("dbname", "user", "host", "port")} == \
        {"dbname": settings_dict["NAME"], "user": settings_dict["USER"], "host": settings_dict["HOST"],
         "port": str(settings_dict["PORT"])}

    feed, _ = article_feed(conn, Article, Like)
    Article.objects.create(title="", body="")  # an empty text: kept as failed
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        call_command("pgfeed", "status", "--json")
    assert exited.value.code == 1
    [row] = [row for row in json.loads(capsys.readouterr().out) if row["feed"] == feed]
    assert (row["items"], row["embedded"], row["failed"]) == (Article.objects.count(), Article.objects.count() - 1, 1)

    call_command("pgfeed", "retry", feed)
    assert capsys.readouterr().out.startswith("1 items queued again")
    call_command("pgfeed", "worker", "--feed", feed, "--drain", "--quiet")
    assert capsys.readouterr().out.startswith("0 embedded, 1 failed")
    call_command("pgfeed", "reembed", feed, "--force", "--quiet")
    assert capsys.readouterr().out.startswith(f"{Article.objects.count() - 1} items embedded")

    with pytest.raises(CommandError, match="No such command 'nope'"):
        call_command("pgfeed", "nope")
    with pytest.raises(CommandError, match="no database alias 'elsewhere'"):
        call_command("pgfeed", "status", database="elsewhere")
    with pytest.raises(CommandError, match="no database alias 'replica'"):
        call_command("pgfeed", "worker", "--drain", "--database", "replica")
    with pytest.raises(CommandError, match="no database alias 'replica'"):
        call_command("pgfeed", "worker", "--database=replica", "--drain")
    with pytest.raises(CommandError, match='unknown feed "missing"'):
        call_command("pgfeed", "retry", "missing")


def test_drain_embeds_the_queue_inside_the_test_transaction(models, conn):
    """An async feed in a TestCase: the queued posts are embedded (and the like counted) by drain() inside the
    test's transaction, so the feed shows them; the rollback takes everything back."""
    from django.db import transaction

    from pgfeed.django import feed_queryset
    from pgfeed.django.testing import drain

    Article, Like, _, _ = models
    feed, _ = article_feed(conn, Article, Like, mode="async")
    drain(feed)  # the fixture's articles
    before, shown_before = Article.objects.count(), len(feed_queryset(Article, feed, None, limit=200))

    class Rollback(Exception):
        pass

    with pytest.raises(Rollback), transaction.atomic():
        new = [Article.objects.create(title=f"fresh {i}", body="compost heap") for i in range(3)]
        Like.objects.create(user_id=77, article=new[0])
        assert {a.pk for a in feed_queryset(Article, feed, None, limit=200)} & {a.pk for a in new} == set()
        totals = drain(feed)
        assert (totals.embedded, totals.failed) == (3, 0)
        shown = {a.pk for a in feed_queryset(Article, feed, None, limit=200)}
        assert {a.pk for a in new} <= shown and len(shown) == shown_before + 3
        [liked] = [a for a in feed_queryset(Article, feed, None, limit=200) if a.pk == new[0].pk]
        assert liked.popularity > 0  # the like counted
        raise Rollback
    assert Article.objects.count() == before
    assert conn.execute("SELECT count(*) FROM pgfeed.embedding_queue WHERE feed_id = "
                        "(SELECT feed_id FROM pgfeed.feed_config WHERE name = %s)", [feed]).fetchone()[0] == 0


def test_system_checks_warn_of_sync_feeds_on_closed_connections_and_a_version_mismatch(models, conn):
    from django.core.checks import run_checks
    from django.db import connections

    Article, Like, _, _ = models
    feed, _ = article_feed(conn, Article, Like)  # sync
    settings_dict = connections["default"].settings_dict

    def ids(**changes):
        saved = {key: settings_dict.get(key) for key in changes}
        settings_dict.update(changes)
        try:
            return {m.id: m for m in run_checks(databases=["default"]) if m.id.startswith("pgfeed.")}
        finally:
            settings_dict.update(saved)

    found = ids(CONN_MAX_AGE=0)
    assert set(found) == {"pgfeed.W001"} and feed in found["pgfeed.W001"].msg
    assert "CONN_MAX_AGE" in found["pgfeed.W001"].hint and "mode => 'async'" in found["pgfeed.W001"].hint
    assert ids(CONN_MAX_AGE=600) == {}
    assert ids(CONN_MAX_AGE=0, OPTIONS={"pool": True}) == {}  # Django's pool keeps them
    assert not [m for m in run_checks() if m.id.startswith("pgfeed.")]  # (no database asked for)

    conn.execute("UPDATE pgfeed.setting SET value = '0.0.1' WHERE name = 'version'")
    try:
        found = ids(CONN_MAX_AGE=600)
    finally:
        conn.execute("UPDATE pgfeed.setting SET value = %s WHERE name = 'version'", [pgfeed.__version__])
    assert set(found) == {"pgfeed.E002"}
    assert "pgfeed 0.0.1" in found["pgfeed.E002"].msg and pgfeed.__version__ in found["pgfeed.E002"].msg


# what a migration's operations change: pgfeed's tables, functions and catalog rows, and triggers on any table
SCHEMA = """
    SELECT 'relation', c.relname::text, c.relkind::text FROM pg_class c WHERE c.relnamespace = 'pgfeed'::regnamespace
    UNION ALL SELECT 'function', p.oid::regprocedure::text, '' FROM pg_proc p WHERE p.pronamespace = 'pgfeed'::regnamespace
    UNION ALL SELECT 'trigger', t.tgrelid::regclass::text, t.tgname FROM pg_trigger t WHERE NOT t.tgisinternal
    UNION ALL SELECT 'feed', f.name, f.feed_id::text FROM pgfeed.feed_config f
    UNION ALL SELECT 'content', s.source::text, s.feed_id::text FROM pgfeed.content_source s
    UNION ALL SELECT 'likes', s.source::text, s.feed_id::text FROM pgfeed.interaction_source s
    ORDER BY 1, 2, 3
"""


def test_migration_operations_set_up_and_take_down_a_feed(models, conn):
    """The operations resolve models and fields from the migration state (a foreign key's name gives its column),
    attach as the SQL would, and go back in reverse: detached, dropped; pgfeed itself stays."""
    from django.db import connection
    from django.db.migrations.state import ModelState, ProjectState

    from pgfeed.django.operations import AlterFeed, AttachContent, AttachInteractions, CreateFeed, DropFeed, InstallPgfeed

    Article, Like, Author, _ = models
    state = ProjectState()
    for model in (Author, Article, Like):
        state.add_model(ModelState.from_model(model))
    feed = fresh("feed")
    author = Author.objects.create(name="Cy")
    for i in range(4):
        Article.objects.create(title=f"by Cy {i}", body="orchard pruning", author=author)
    Like.objects.create(user_id=9, article=Article.objects.filter(author=author).first())
    operations = [
        InstallPgfeed(),
        CreateFeed(feed, model=HASHING, weight_freshness=0.1),
        AttachContent(feed, model="pgfeed_tests.Article", text=["title", "body"], created_at="created_at",
                      condition={"author": author.pk}, filter_columns=["author"], group_column="author"),
        AttachInteractions(feed, model="pgfeed_tests.Like", user="user_id", item="article"),
        AlterFeed(feed, reverse={"max_per_group": 0}, max_per_group=2),
    ]
    before = conn.execute(SCHEMA).fetchall()
    for operation in operations:  # what a migration file holds is what it rebuilds
        name, args, kwargs = operation.deconstruct()
        assert type(operation)(*args, **kwargs).deconstruct() == (name, args, kwargs)
    with connection.schema_editor() as editor:
        for operation in operations:
            operation.database_forwards("pgfeed_tests", editor, state, state)

    text, condition, filters, group = conn.execute(
        "SELECT s.text_expression, s.condition, s.filter_columns, s.group_column FROM pgfeed.content_source s "
        "JOIN pgfeed.feed_config f USING (feed_id) WHERE f.name = %s", [feed]).fetchone()
    assert text == """concat_ws(' ', "title", "body")""" and condition == f'"author_id" = {author.pk}'
    assert (filters, group) == (["author_id"], "author_id")
    assert conn.execute("SELECT user_column, item_column FROM pgfeed.interaction_source s JOIN pgfeed.feed_config f "
                        "USING (feed_id) WHERE f.name = %s", [feed]).fetchone() == ("user_id", "article_id")
    assert conn.execute("SELECT weight_freshness, max_per_group FROM pgfeed.feed_config WHERE name = %s",
                        [feed]).fetchone() == (0.1, 2)
    items = {item.item_id for item in pgfeed.feed(conn, feed, 9, limit=50)}
    liked = set(Like.objects.filter(user_id=9).values_list("article_id", flat=True))
    eligible = set(Article.objects.filter(author=author).values_list("pk", flat=True)) - liked
    assert items < eligible and len(eligible) == 3 and len(items) == 2  # one author: max_per_group 2 a page

    with connection.schema_editor() as editor:
        for operation in reversed(operations):
            operation.database_backwards("pgfeed_tests", editor, state, state)
    assert conn.execute(SCHEMA).fetchall() == before  # and pgfeed itself stays
    assert conn.execute("SELECT count(*) FROM pgfeed.feed_config WHERE name = %s", [feed]).fetchone()[0] == 0
    assert conn.execute("SELECT pgfeed.version()").fetchone()[0] == pgfeed.__version__
    assert not DropFeed(feed).reversible and AlterFeed(feed, mode="async").reversible is False
    with pytest.raises(TypeError, match="unknown settings \\[.colour.\\]"):
        CreateFeed(feed, colour="blue")


def test_install_pgfeed_as_a_role_that_is_not_a_superuser(models, conn, app_dsn):
    """Installed at this version: nothing to do, so a migrating role that is not a superuser goes on. Otherwise it
    says what a superuser runs once."""
    from django.db import connections
    from psycopg.conninfo import conninfo_to_dict

    from pgfeed.django.operations import InstallPgfeed

    connections.settings["app"] = {**connections.settings["default"], "USER": conninfo_to_dict(app_dsn)["user"]}
    try:
        with connections["app"].schema_editor() as editor:
            InstallPgfeed().database_forwards("pgfeed_tests", editor, None, None)
        conn.execute("UPDATE pgfeed.setting SET value = '0.0.1' WHERE name = 'version'")
        try:
            with pytest.raises(pgfeed.InstallError) as error, connections["app"].schema_editor() as editor:
                InstallPgfeed().database_forwards("pgfeed_tests", editor, None, None)
        finally:
            conn.execute("UPDATE pgfeed.setting SET value = %s WHERE name = 'version'", [pgfeed.__version__])
    finally:
        connections["app"].close()
        del connections.settings["app"]
    message = str(error.value)
    assert f"pgfeed {pgfeed.__version__} is not installed in this database (0.0.1)" in message
    # one step for this database, one for the template of Django's test databases; each lets the role manage feeds
    steps = [shlex.split(line) for line in message.splitlines() if line.strip().startswith("pgfeed install")]
    app = conninfo_to_dict(app_dsn)
    for step, dbname in zip(steps, [app["dbname"], "template1"], strict=True):
        assert step[:3] == ["pgfeed", "install", "--dsn"] and step[4:] == ["--feed-admin", app["user"]]
        dsn = conninfo_to_dict(step[3])
        assert dsn["user"] == "postgres" and dsn["dbname"] == dbname and "password" not in dsn


def test_attach_impressions_operation(models, conn):
    """AttachImpressions attaches a table of what was shown as impressions (weight 0), and detaches it reversed."""
    from django.db import connection
    from django.db.migrations.state import ModelState, ProjectState

    from pgfeed.django.operations import AttachContent, AttachImpressions, CreateFeed

    Article, Like, Author, _ = models
    state = ProjectState()
    for model in (Author, Article, Like):
        state.add_model(ModelState.from_model(model))
    feed = fresh("feed")
    operations = [CreateFeed(feed, model=HASHING),
                  AttachContent(feed, model="pgfeed_tests.Article", text="title", created_at="created_at"),
                  AttachImpressions(feed, model="pgfeed_tests.Like", user="user_id", item="article")]
    name, args, kwargs = operations[2].deconstruct()
    assert (name, args, kwargs) == ("AttachImpressions", [feed], {"model": "pgfeed_tests.Like", "user": "user_id",
                                                                  "item": "article"})
    with connection.schema_editor() as editor:
        for operation in operations:
            operation.database_forwards("pgfeed_tests", editor, state, state)
    sources = "SELECT weight, item_column FROM pgfeed.interaction_source JOIN pgfeed.feed_config USING (feed_id) WHERE name = %s"
    assert conn.execute(sources, [feed]).fetchall() == [(0.0, "article_id")]
    shown = set(Like.objects.filter(user_id=5).values_list("article_id", flat=True))
    assert not shown & {item.item_id for item in pgfeed.feed(conn, feed, 5, limit=200)}  # hidden: shown before
    with connection.schema_editor() as editor:
        operations[2].database_backwards("pgfeed_tests", editor, state, state)
    assert conn.execute(sources, [feed]).fetchall() == []
    assert shown <= {item.item_id for item in pgfeed.feed(conn, feed, 5, limit=200)}


def test_a_field_a_feed_reads_renamed_is_an_error_until_a_migration_attaches_it_again(models, conn, monkeypatch):
    """pgfeed.E001 names the operation that fixes it, AttachContent(..., again=True); applied after the rename, it
    keeps the items' vectors (no text reaches the model) and the feed follows the table again."""
    from django.apps import apps
    from django.core.checks import run_checks
    from django.db import connection
    from django.db import models as m
    from django.db.migrations.executor import MigrationExecutor
    from django.db.migrations.state import ModelState, ProjectState

    from pgfeed.django.operations import AttachContent

    Article, Like, Author, _ = models
    feed, _ = article_feed(conn, Article, Like)  # reads title and body

    class ArticleRenamed(m.Model):  # the model after RenameField("body", "content"), before migrate
        title = m.CharField(max_length=200)
        content = m.TextField()
        created_at = m.DateTimeField()
        author = m.ForeignKey(Author, null=True, on_delete=m.CASCADE)

        class Meta:
            app_label = "pgfeed_tests"
            db_table = Article._meta.db_table

    def errors():
        return [m for m in run_checks(databases=["default"]) if m.id == "pgfeed.E001" and f"'{feed}'" in m.msg]

    # (the test's models as the models of an installed app: settings.configure() cannot install their app)
    monkeypatch.setattr(apps, "get_models", lambda *args, **kwargs: list(apps.all_models["pgfeed_tests"].values()))
    try:
        [error] = errors()
        assert "column 'body'" in error.msg and error.obj is ArticleRenamed
        assert f"AttachContent('{feed}', model='pgfeed_tests.ArticleRenamed', ..., again=True)" in error.hint
        again = AttachContent(feed, model="pgfeed_tests.ArticleRenamed", text=["title", "content"],
                              created_at="created_at", again=True)

        class Pending:  # a migration not applied yet that attaches the feed again
            operations = [again]

        monkeypatch.setattr(MigrationExecutor, "migration_plan", lambda self, targets, clean_start=False: [(Pending, False)])
        assert errors() == []
        assert again.deconstruct()[2]["again"] is True and not again.reversible

        # the migration: the rename, then the operation
        conn.execute(f"ALTER TABLE {Article._meta.db_table} RENAME COLUMN body TO content")
        try:
            state = ProjectState()
            for model in (Author, ArticleRenamed):
                state.add_model(ModelState.from_model(model))
            texts = "SELECT coalesce(sum(texts), 0) FROM pgfeed.encoder_stats()"
            with connection.schema_editor() as editor:
                before = editor.connection.cursor().execute(texts).fetchone()[0]
                again.database_forwards("pgfeed_tests", editor, state, state)
                assert editor.connection.cursor().execute(texts).fetchone()[0] == before  # no text re-embedded
            [status] = [row for row in pgfeed.status(conn) if row["feed"] == feed]
            rows = conn.execute(f"SELECT count(*) FROM {Article._meta.db_table}").fetchone()[0]
            assert (status["problem"], status["items"], status["pending"]) == (None, rows, 0)
        finally:
            conn.execute(f"ALTER TABLE {Article._meta.db_table} RENAME COLUMN content TO body")
    finally:
        monkeypatch.undo()
        del apps.all_models["pgfeed_tests"]["articlerenamed"]
        apps.clear_cache()
    monkeypatch.setattr(apps, "get_models", lambda *args, **kwargs: list(apps.all_models["pgfeed_tests"].values()))
    assert [m.id for m in run_checks(databases=["default"]) if f"'{feed}'" in m.msg] == ["pgfeed.E001"]  # (back)
    conn.execute("SELECT pgfeed.drop_feed(%s)", [feed])


def test_attach_content_conditions_from_q_objects_select_what_the_orm_selects(models, conn):
    """A Q condition becomes SQL that keeps the rows Django's own filter with that Q keeps."""
    from django.db import connection
    from django.db.migrations.state import ModelState, ProjectState
    from django.db.models import Q

    from pgfeed.django.operations import AttachContent, CreateFeed

    Article, Like, Author, _ = models
    state = ProjectState()
    for model in (Author, Article, Like):
        state.add_model(ModelState.from_model(model))
    author = Author.objects.create(name="Di")
    for i in range(3):
        Article.objects.create(title=f"by Di {i}", body="hedge laying", author=author)
    Article.objects.create(title="nobody's", body="it's a quote", author=None)
    for q in (Q(author=author), Q(title__in=["by Di 1", "nobody's"]) | Q(author__isnull=True),
              ~Q(title="by Di 0") & Q(author=author.pk), Q(pk__gte=Article.objects.filter(author=author).first().pk)):
        feed = fresh("feed")
        with connection.schema_editor() as editor:
            for operation in (CreateFeed(feed, model=HASHING),
                              AttachContent(feed, model="pgfeed_tests.Article", text=["title", "body"],
                                            created_at="created_at", condition=q)):
                operation.database_forwards("pgfeed_tests", editor, state, state)
        expected = {a.pk for a in Article.objects.filter(q) if f"{a.title} {a.body}".strip()}
        assert {item.item_id for item in pgfeed.feed(conn, feed, None, limit=500)} == expected, q
    with pytest.raises(ValueError, match="lookup 'author__name' is not one pgfeed translates"), \
            connection.schema_editor() as editor:
        AttachContent(feed, model="pgfeed_tests.Article", text=["title"], created_at="created_at",
                      condition=Q(author__name="Di")).database_forwards("pgfeed_tests", editor, state, state)
