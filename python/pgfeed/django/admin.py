"""pgfeed in Django's admin (loaded by the admin's autodiscovery, as ``pgfeed.django`` is an installed app).

- The index gets a section "pgfeed" with a row "Feeds": a page of one row per feed, as ``pgfeed.status()``
  gives it to Django's database role (mode, model, items, embedded, pending, failed with the latest errors,
  profiles, problem), with the actions retry (``pgfeed.retry``) and re-embed (``pgfeed.reembed``).
- ``FeedAdminMixin`` gives a content model's admin an embedding-state column, a list filter by state and the
  action "re-embed selected" (``pgfeed.reembed_items``):

      @admin.register(Post)
      class PostAdmin(FeedAdminMixin, admin.ModelAdmin):
          pgfeed_feed = "posts"

Everything is read and done through pgfeed's public functions, with the rights of Django's database role:
``status()`` and ``item_status()`` need the feed granted to it (``pgfeed.grant_feed``; a feed's owner has it),
retry and re-embed the feed's owner or a superuser (pgfeed's SECURITY.md). The actions take POSTs (with
Django's CSRF check) from users with the permission ``pgfeed.manage_feed`` (superusers have it); the page needs
``pgfeed.view_feed`` or that one.

Why a model without a table (``pgfeed.django.models.Feed``): Django's admin lists on its index the models
registered with it, and a page of one's own reaches the index only through one, or by replacing the project's
``AdminSite`` or its ``admin/index.html``, which are the project's. ``Feed`` is unmanaged, so it needs no
migration (``makemigrations`` writes none for an app without migrations); its page never queries its table.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin.options import IS_POPUP_VAR
from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from django.db import DatabaseError, connections, router, transaction
from django.db.models import TextField
from django.db.models.expressions import RawSQL
from django.db.models.functions import Cast
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.html import format_html

from pgfeed.django.models import Feed

# item_status()'s states, as the admin names them
STATES = {"embedded": "embedded", "pending": "pending", "failed": "failed", "absent": "not in the feed"}
# key types pgfeed stores (item_status returns keys as text; a filter casts them back to the column's type)
KEY_TYPES = {"smallint", "integer", "bigint", "uuid"}

MANAGE_PERMISSION = "pgfeed.manage_feed"


def database_error(action: str, exc: DatabaseError) -> str:
    """What a failed call says (the server's message and hint, without its PL/pgSQL context), and what to do when
    the database role may not make it."""
    diag = getattr(exc.__cause__, "diag", None)
    said = diag.message_primary if diag and diag.message_primary else str(exc).strip()
    if diag and diag.message_hint:
        said += f" ({diag.message_hint})"
    message = f"{action} failed: {said}"
    if getattr(exc.__cause__, "sqlstate", None) == "42501":  # insufficient_privilege
        message += (" (Django's database role lacks the right: reading a feed needs SELECT pgfeed.grant_feed(feed, role); "
                    "retry and re-embed need the feed's owner or a superuser (pgfeed's SECURITY.md), who may also run "
                    "manage.py pgfeed retry or manage.py pgfeed reembed FEED)")
    return message


def call(using: str, sql: str, params: list) -> list[tuple]:
    """One pgfeed call's rows, in a savepoint: a failure leaves the request's transaction usable."""
    with transaction.atomic(using=using), connections[using].cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


@admin.register(Feed)
class FeedStatusAdmin(admin.ModelAdmin):
    """The page of one row per feed, and its actions. Registered on ``admin.site``; a project with a site of its
    own registers it there: ``site.register(Feed, FeedStatusAdmin)``."""

    latest_errors = 3  # errors shown under a feed's failed count
    status_template = "admin/pgfeed/feed/status.html"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.has_perm("pgfeed.view_feed") or self.has_manage_permission(request)

    def has_manage_permission(self, request) -> bool:
        return request.user.has_perm(MANAGE_PERMISSION)

    def get_urls(self):
        # only the page: there is no row to add, change, delete or show the history of
        name = f"{self.opts.app_label}_{self.opts.model_name}_changelist"
        return [path("", self.admin_site.admin_view(self.changelist_view), name=name)]

    def changelist_view(self, request, extra_context=None):
        if not self.has_view_permission(request):
            raise PermissionDenied
        if request.method == "POST":
            return self.feed_action(request)
        feeds, error = self.feeds(router.db_for_read(Feed))
        context = {
            **self.admin_site.each_context(request),
            "title": "Feeds",
            "subtitle": None,
            "opts": self.opts,
            "app_label": self.opts.app_label,
            "feeds": feeds,
            "error": error,
            "can_manage": self.has_manage_permission(request),
            **(extra_context or {}),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, self.status_template, context)

    def feeds(self, using: str) -> tuple[list[dict], str | None]:
        """status()'s rows, each with the latest errors of its failed items; or the error that kept them."""
        try:
            with transaction.atomic(using=using), connections[using].cursor() as cursor:
                cursor.execute("SELECT * FROM pgfeed.status()")
                columns = [column.name for column in cursor.description]
                feeds = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
        except DatabaseError as exc:
            return [], database_error("pgfeed.status()", exc)
        for feed in feeds:
            feed["errors"] = []
            if feed["failed"]:
                try:
                    feed["errors"] = [{"item_id": item_id, "error": error} for item_id, error in call(
                        using, "SELECT item_id, error FROM pgfeed.item_status(%s, NULL) WHERE state = 'failed' "
                               "ORDER BY greatest(embedded_at, queued_at) DESC NULLS LAST, item_id LIMIT %s",
                        [feed["feed"], self.latest_errors])]
                except DatabaseError as exc:
                    feed["errors"] = [{"item_id": None, "error": database_error("pgfeed.item_status()", exc)}]
        return feeds, None

    def feed_action(self, request):
        if not self.has_manage_permission(request):
            raise PermissionDenied
        feed, action = request.POST.get("feed"), request.POST.get("action")
        calls = {"retry": ("SELECT pgfeed.retry(%s)", "{} failed item(s) queued again"),
                 "reembed": ("SELECT pgfeed.reembed(%s)", "{} item(s) embedded")}
        if not feed or action not in calls:
            self.message_user(request, "Choose a feed and an action (retry or re-embed).", messages.ERROR)
            return HttpResponseRedirect(request.path)
        sql, done = calls[action]
        try:
            [(count,)] = call(router.db_for_write(Feed), sql, [feed])
        except DatabaseError as exc:
            self.message_user(request, database_error(f"Feed “{feed}”: {action}", exc), messages.ERROR)
        else:
            self.message_user(request, f"Feed “{feed}”: {done.format(count)}.", messages.SUCCESS)
        return HttpResponseRedirect(request.path)


class EmbeddingStateFilter(admin.SimpleListFilter):
    """The items of one state in the feed of a ``FeedAdminMixin`` admin. Pending and failed are read from the
    feed's queue and failed items alone; embedded and "not in the feed" ask for the keys of the rows listed."""

    title = "embedding"
    parameter_name = "pgfeed_state"

    def __init__(self, request, params, model, model_admin):
        self.feed = model_admin.pgfeed_feed
        super().__init__(request, params, model, model_admin)

    def lookups(self, request, model_admin):
        return list(STATES.items())

    def queryset(self, request, queryset):
        state = self.value()
        if state not in STATES:
            return queryset
        connection = connections[queryset.db]
        pk = queryset.model._meta.pk
        params: list = [self.feed]
        if state in ("pending", "failed"):
            ids = "NULL"
        else:
            keys = queryset.order_by().annotate(pgfeed_key=Cast("pk", TextField())).values("pgfeed_key")
            sql, key_params = keys.query.get_compiler(using=queryset.db).as_sql()
            ids = f"ARRAY({sql})"
            params += list(key_params)
        key_type = pk.db_type(connection)
        if key_type in KEY_TYPES:  # the key's own type: the rows are found by their index
            selected = RawSQL(f"SELECT s.item_id::{key_type} FROM pgfeed.item_status(%s, {ids}) AS s WHERE s.state = %s",
                              [*params, state])
            return queryset.filter(pk__in=selected)
        selected = RawSQL(f"SELECT s.item_id FROM pgfeed.item_status(%s, {ids}) AS s WHERE s.state = %s", [*params, state])
        return queryset.alias(pgfeed_key=Cast("pk", TextField())).filter(pgfeed_key__in=selected)


class FeedAdminMixin:
    """For the admin of a feed's content model: an embedding-state column (one ``pgfeed.item_status`` call a
    page), a list filter by state, and the action "re-embed selected" (``pgfeed.reembed_items``: embedded now in
    a sync feed, queued for the workers in an async one), for users with ``pgfeed.manage_feed``.

        class PostAdmin(FeedAdminMixin, admin.ModelAdmin):
            pgfeed_feed = "posts"
    """

    pgfeed_feed: str | None = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not self.pgfeed_feed:
            raise ImproperlyConfigured(f"{type(self).__name__}: set pgfeed_feed to the name of the feed of "
                                       f"{self.model._meta.label}")

    def get_list_display(self, request):
        return (*super().get_list_display(request), "pgfeed_state")

    def get_list_filter(self, request):
        return (*super().get_list_filter(request), EmbeddingStateFilter)

    def has_pgfeed_manage_permission(self, request) -> bool:
        return request.user.has_perm(MANAGE_PERMISSION)

    def get_actions(self, request):
        actions = super().get_actions(request)
        if self.actions is not None and IS_POPUP_VAR not in request.GET and self.has_pgfeed_manage_permission(request):
            func, name, description = self.get_action("pgfeed_reembed_selected")
            actions[name] = (func, name, description)
        return actions

    def get_changelist_instance(self, request):
        changelist = super().get_changelist_instance(request)
        rows = list(changelist.result_list)  # the page (its query's results are kept for the template)
        if rows:
            using = changelist.result_list.db
            try:
                states = {item_id: (state, error) for item_id, state, error in call(
                    using, "SELECT item_id, state, error FROM pgfeed.item_status(%s, %s::text[])",
                    [self.pgfeed_feed, [str(row.pk) for row in rows]])}
            except DatabaseError as exc:
                self.message_user(request, database_error(f"Feed “{self.pgfeed_feed}”: reading the embedding states", exc),
                                  messages.WARNING)
            else:
                for row in rows:
                    row._pgfeed_state = states.get(str(row.pk))
        return changelist

    @admin.display(description="embedding")
    def pgfeed_state(self, obj):
        state, error = getattr(obj, "_pgfeed_state", None) or (None, None)
        if state is None:
            return format_html('<span class="pgfeed-state" data-state="">?</span>')
        if error:
            return format_html('<span class="pgfeed-state" data-state="{}" title="{}">{}: {}</span>', state, error,
                               STATES[state], error if len(error) <= 80 else error[:79] + "…")
        return format_html('<span class="pgfeed-state" data-state="{}">{}</span>', state, STATES[state])

    @admin.action(description="Re-embed selected %(verbose_name_plural)s")
    def pgfeed_reembed_selected(self, request, queryset):
        keys = queryset.order_by().annotate(pgfeed_key=Cast("pk", TextField())).values("pgfeed_key")
        sql, params = keys.query.get_compiler(using=queryset.db).as_sql()
        try:
            [(count,)] = call(queryset.db, f"SELECT pgfeed.reembed_items(%s, ARRAY({sql}))", [self.pgfeed_feed, *params])
        except DatabaseError as exc:
            self.message_user(request, database_error(f"Feed “{self.pgfeed_feed}”: re-embedding", exc), messages.ERROR)
        else:
            self.message_user(request, f"Feed “{self.pgfeed_feed}”: {count} {self.opts.verbose_name_plural} embedded again "
                                       "or queued for the workers.", messages.SUCCESS)
