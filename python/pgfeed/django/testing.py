"""Helpers for a project's tests.

In a ``TestCase`` every test runs in a transaction that is rolled back, and an async feed's triggers only queue
the work, which no worker outside can see: ``drain()`` does it inside the test's transaction.

    from pgfeed.django.testing import drain

    def test_feed_shows_new_posts(self):
        Post.objects.create(title="Tomatoes", body="...")
        drain()
        self.assertEqual(feed_queryset(Post, "posts", None)[0].title, "Tomatoes")
"""

from __future__ import annotations

from django.db import DEFAULT_DB_ALIAS, connections

from pgfeed.worker import Totals


def drain(feed: str | None = None, using: str = DEFAULT_DB_ALIAS, batch: int = 64) -> Totals:
    """Embeds every queued item (of ``feed``, or of every feed), and stores the profiles and like counts a worker
    would, in the current transaction of the ``using`` connection. Items that fail are kept as failed, as a worker
    keeps them (their retries wait for their time: they are not retried here)."""
    totals = Totals()
    with connections[using].cursor() as cursor:
        while True:
            cursor.execute("SELECT * FROM pgfeed.work(%s, %s)", [feed, batch])
            rows = cursor.fetchall()
            if not rows:
                return totals
            for row in rows:
                totals.add(row)
