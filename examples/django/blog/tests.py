"""The blog's tests, with Django's test runner, on a test database that got pgfeed and the feed through the
migrations, as the application's own role (not a superuser), with the real model."""

import contextlib
import io
import json
import re

from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import connection
from django.db.models import Count
from django.test import TestCase, TransactionTestCase

import pgfeed
from pgfeed.django import FeedPaginator, feed_queryset
from pgfeed.django.testing import drain

from .models import Like, Post

TOPICS = {
    "garden": [("Tomatoes in pots", "Water the tomato plants every morning and feed the soil with compost."),
               ("Pruning roses", "Cut the rose bushes back in late winter, just above an outward bud."),
               ("Raised beds", "A raised vegetable bed warms up early and drains well after rain.")],
    "baking": [("Sourdough starter", "Feed the starter with flour and water until it doubles and smells sour."),
               ("Croissants", "Fold the butter into the dough three times, chilling it between folds."),
               ("Banana bread", "Mash ripe bananas into the batter and bake the loaf for an hour.")],
    "taxes": [("Filing early", "File the tax return before April to get the refund sooner."),
              ("Receipts", "Keep receipts for deductible expenses in one folder for the accountant.")],
}


def sql(query, params=()):
    with connection.cursor() as cursor:
        cursor.execute(query, params)
        return cursor.fetchall()


def feed_ids(user=None, limit=100):
    return [pk for (pk,) in sql("SELECT item_id::bigint FROM pgfeed.feed('posts', %s::bigint, %s)",
                                [getattr(user, "pk", user), limit])]


def store():
    """The feed's item store: what it ranks from (its owner may read it)."""
    return sql("SELECT pgfeed._item_store(feed_id) FROM pgfeed.feed_config WHERE name = 'posts'")[0][0]


def stored_ids():
    return {pk for (pk,) in sql(f"SELECT item_id FROM {store()} WHERE error IS NULL")}


def stored_text_matches(post):
    """Whether the feed's vector of a post is the model's embedding of its title and body."""
    return sql(f"SELECT s.embedding = pgfeed.embed(%s, c.model) FROM {store()} s, pgfeed.feed_config c "
               "WHERE c.name = 'posts' AND s.item_id = %s", [f"{post.title} {post.body}", post.pk]) == [(True,)]


def make_posts():
    authors = {topic: User.objects.create_user(topic) for topic in TOPICS}
    return {topic: [Post.objects.create(author=authors[topic], title=title, body=body) for title, body in posts]
            for topic, posts in TOPICS.items()}


class FeedTests(TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.posts = make_posts()
        cls.reader = User.objects.create_user("reader")
        cls.draft = Post.objects.create(author=cls.reader, title="Draft", body="not published", published=False)

    def published(self):
        return set(Post.objects.filter(published=True).values_list("pk", flat=True))

    def test_the_test_database_got_pgfeed_and_the_feed_through_the_migrations(self):
        self.assertEqual(sql("SELECT pgfeed.version()"), [(pgfeed.__version__,)])
        self.assertFalse(sql("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")[0][0])
        (status,) = [row for row in pgfeed.status(connection.connection) if row["feed"] == "posts"]
        self.assertEqual((status["mode"], status["items"], status["embedded"]), ("sync", 8, 8))
        self.assertEqual(stored_ids(), self.published())  # the draft is left out (condition)
        shown = Post.objects.filter(pk__in=feed_ids())
        self.assertTrue(set(shown.values_list("pk", flat=True)) <= self.published())
        by_author = [row["n"] for row in shown.values("author").annotate(n=Count("pk"))]
        self.assertEqual(sorted(by_author), [2, 2, 2])  # max_per_group=2 a page

    def test_writes_reach_the_feed(self):
        garden = self.posts["garden"][0]
        Post.objects.bulk_create([Post(author=self.reader, title="Seed catalogue", body="Order seeds in winter.")])
        self.assertEqual(stored_ids(), self.published())
        Post.objects.filter(pk=garden.pk).update(body="Grow basil on a sunny windowsill.")  # queryset update
        garden.refresh_from_db()
        self.assertTrue(stored_text_matches(garden))
        Post.objects.filter(pk=self.draft.pk).update(published=True)  # now meets the condition
        Post.objects.filter(title__startswith="Croissants").delete()
        self.assertEqual(stored_ids(), self.published())
        self.assertTrue(stored_text_matches(Post.objects.get(pk=self.draft.pk)))

    def test_likes_through_the_many_to_many_shape_the_feed(self):
        garden = self.posts["garden"]
        self.reader.liked_posts.add(garden[0])
        garden[1].liked_by.add(self.reader)
        self.assertEqual(Like.objects.filter(user=self.reader).count(), 2)
        ranked = feed_ids(self.reader, limit=6)
        self.assertNotIn(garden[0].pk, ranked)  # seen: liked
        self.assertEqual(ranked[0], garden[2].pk)  # the one garden post left comes first
        self.assertIsNotNone(pgfeed.profile(connection.connection, "posts", self.reader.pk))
        self.reader.liked_posts.remove(garden[0], garden[1])
        self.assertIsNone(pgfeed.profile(connection.connection, "posts", self.reader.pk))

    def test_a_page_with_its_authors_is_two_queries(self):
        self.reader.liked_posts.add(self.posts["baking"][0])
        with self.assertNumQueries(2):
            page = list(feed_queryset(Post.objects.select_related("author"), "posts", self.reader, limit=5))
            authors = [post.author.username for post in page]
        self.assertEqual([post.pk for post in page], feed_ids(self.reader, limit=5))
        self.assertEqual(authors[0], "baking")
        self.assertEqual([post.rank for post in page], [1, 2, 3, 4, 5])

    def test_pages_of_the_paginator_are_one_ranking(self):
        sql("SELECT pgfeed.alter_feed('posts', max_per_group => 0)")  # (the cap is a page's: pages would differ)
        self.reader.liked_posts.add(self.posts["taxes"][0])
        paginator, after, seen = FeedPaginator(Post, "posts", self.reader, per_page=3), None, []
        while True:
            page = paginator.page(after)
            seen += [post.pk for post in page]
            if not page.has_next():
                break
            after = page.next_cursor
        self.assertEqual(seen, feed_ids(self.reader))
        self.assertEqual(len(seen), len(self.published()) - 1)

    def test_the_feed_view(self):
        self.reader.liked_posts.add(self.posts["garden"][1])
        self.client.force_login(self.reader)
        with self.assertNumQueries(4):  # the session, the user, and the page's two
            response = self.client.get("/")
        self.assertEqual(response.status_code, 200)
        shown = [int(part.split('"')[0]) for part in response.content.decode().split('data-id="')[1:]]
        self.assertEqual(shown, feed_ids(self.reader, limit=10))
        self.assertContains(response, f"because you liked #{self.posts['garden'][1].pk}")

    def test_a_new_post_is_in_the_feed_of_the_request_after_it(self):
        self.client.force_login(self.reader)
        response = self.client.post("/posts/", {"title": "Compost heaps", "body": "Turn the compost every week."})
        self.assertEqual(response.status_code, 201)
        new = Post.objects.get(title="Compost heaps")
        self.assertIn(new.pk, feed_ids())  # sync: read your writes
        self.assertTrue(stored_text_matches(new))

    def test_the_admin_shows_the_feed_and_each_posts_embedding_state(self):
        failed = Post.objects.create(author=self.reader, title=" ", body="")  # nothing to embed: kept as failed
        self.client.force_login(User.objects.create_superuser("admin", password="-"))
        self.assertContains(self.client.get("/admin/"), 'href="/admin/pgfeed/feed/"')
        page = self.client.get("/admin/pgfeed/feed/")
        row = page.content.decode().split('data-feed="posts"')[1].split("</tr>")[0]
        self.assertIn('class="pgfeed-items">9<', row)
        self.assertIn('class="pgfeed-failed">1', row)
        self.assertIn("text expression is empty", row)
        html = self.client.get("/admin/blog/post/").content.decode()  # each row: its checkbox, then its state
        states = {int(pk): state for pk, state in re.findall(
            r'name="_selected_action" value="(\d+)".*?class="pgfeed-state" data-state="(\w*)"', html, re.S)}
        self.assertEqual(states, {post.pk: "failed" if post == failed else "absent" if post == self.draft
                                  else "embedded" for post in Post.objects.all()})
        listed = self.client.get("/admin/blog/post/?pgfeed_state=failed").context["cl"].result_list
        self.assertEqual([post.pk for post in listed], [failed.pk])
        failed.title = "Now a title"
        failed.save()
        response = self.client.post("/admin/blog/post/", {"action": "pgfeed_reembed_selected",
                                                          "_selected_action": [failed.pk]}, follow=True)
        self.assertContains(response, "1 posts embedded again")
        self.assertTrue(stored_text_matches(failed))

    def test_drain_embeds_an_async_feeds_queue_inside_the_test(self):
        sql("SELECT pgfeed.alter_feed('posts', mode => 'async')")  # rolled back with the test
        new = Post.objects.create(author=self.reader, title="Mulch", body="Mulch keeps the soil moist.")
        self.assertNotIn(new.pk, feed_ids())
        totals = drain("posts")
        self.assertEqual((totals.embedded, totals.failed), (1, 0))
        self.assertIn(new.pk, feed_ids())
        self.assertTrue(stored_text_matches(new))


def pgfeed_command(*arguments):
    """manage.py pgfeed ...: (exit code, what it printed)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            call_command("pgfeed", *arguments)
            code = 0
        except SystemExit as exit:
            code = exit.code
    return code, out.getvalue()


class CommandTests(TransactionTestCase):
    """manage.py pgfeed on the test database: its own connections see what the tests committed."""

    def status(self):
        code, out = pgfeed_command("status", "--json")
        (feed,) = [row for row in json.loads(out) if row["feed"] == "posts"]
        return code, feed

    def test_status_worker_retry_and_reembed(self):
        sql("SELECT pgfeed.alter_feed('posts', mode => 'async')")
        posts = make_posts()
        empty = Post.objects.create(author=posts["garden"][0].author, title="", body="")
        code, status = self.status()
        self.assertEqual((code, status["pending"], status["embedded"]), (0, 9, 0))

        code, out = pgfeed_command("worker", "--drain", "--quiet")
        self.assertEqual(code, 0)
        code, status = self.status()
        self.assertEqual((code, status["pending"], status["embedded"], status["failed"]), (1, 0, 8, 1))  # the empty one
        self.assertTrue(all(stored_text_matches(post) for topic in posts.values() for post in topic))

        self.assertEqual(pgfeed_command("retry", "posts"), (0, "1 items queued again; `pgfeed worker` embeds them\n"))
        self.assertEqual(self.status()[1]["pending"], 1)
        empty.title = "Leaf mould"
        empty.save()  # fixed: embedded by the next worker
        self.assertEqual(pgfeed_command("worker", "--drain", "--quiet"), (0, "1 embedded, 0 failed, in 1 batches\n"))
        code, status = self.status()
        self.assertEqual((code, status["pending"], status["embedded"], status["failed"]), (0, 0, 9, 0))
        self.assertTrue(stored_text_matches(empty))

        self.assertEqual(pgfeed_command("reembed", "posts", "--force", "--quiet"), (0, "9 items embedded\n"))
        sql("SELECT pgfeed.alter_feed('posts', mode => 'sync')")

    def test_flush_leaves_the_feed_empty(self):
        sql("SELECT pgfeed.alter_feed('posts', mode => 'async')")
        make_posts()
        self.assertEqual(self.status()[1]["pending"], 8)
        call_command("flush", interactive=False, verbosity=0)
        code, status = self.status()
        self.assertEqual((code, status["items"], status["pending"], status["interactions"]), (0, 0, 0, 0))
        sql("SELECT pgfeed.alter_feed('posts', mode => 'sync')")
