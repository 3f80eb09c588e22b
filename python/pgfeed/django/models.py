"""The admin's entry for pgfeed's feeds (pgfeed.django.admin).

``Feed`` has no table and no migration: nothing ever reads or writes one. The admin renders its page from
``pgfeed.status()`` and calls ``pgfeed.retry()`` and ``pgfeed.reembed()`` itself; the model is only what Django's
admin lists on its index (a section "pgfeed" with a row "Feeds"), and what its permissions hang on:
``pgfeed.view_feed`` (see the page) and ``pgfeed.manage_feed`` (retry and re-embed, there and on the content
models of ``FeedAdminMixin``). ``migrate`` makes those two permissions, as for any model; superusers have them.
"""

from __future__ import annotations

from django.db import models


class Feed(models.Model):
    """A feed of the database, as ``pgfeed.status()`` shows it to Django's database role."""

    name = models.TextField(primary_key=True)

    class Meta:
        managed = False  # no table: pgfeed's own catalog is the truth, read through its public functions
        db_table = "pgfeed_feed_has_no_table"
        default_permissions = ("view",)
        permissions = [("manage_feed", "Can retry and re-embed feeds")]

    def __str__(self) -> str:
        return self.name
