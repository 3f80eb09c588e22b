"""System checks of the databases pgfeed is installed in (run by migrate, and by check --database ALIAS).

- pgfeed.E001: a feed reads a column its table's model has no field for (a RenameField or RemoveField), and no
  migration to apply attaches it again.
- pgfeed.E002: the database's pgfeed is not this package's version.
- pgfeed.W001: a sync feed written through connections closed after each request: each new connection's
  backend loads the model (seconds, hundreds of MB) on its first write to the content table.
"""

from __future__ import annotations

from django.core.checks import Error, Tags, Warning, register
from django.db import DatabaseError, connections

import pgfeed


def fetch(connection, query: str) -> list | None:
    """A query's rows, or None if the database cannot answer (unreachable, or not readable by this role: Django's
    own checks say what they can)."""
    try:
        with connection.cursor() as cursor:
            cursor.execute(query)
            return cursor.fetchall()
    except DatabaseError:
        return None


def installed_in(databases) -> list[tuple[str, object]]:
    """(alias, connection) of each PostgreSQL database asked for that has pgfeed."""
    return [(alias, connections[alias]) for alias in databases or []
            if connections[alias].vendor == "postgresql"
            and fetch(connections[alias], "SELECT to_regprocedure('pgfeed.version()') IS NOT NULL") == [(True,)]]


@register(Tags.database)
def check_databases(app_configs=None, databases=None, **kwargs) -> list:
    messages = []
    for alias, connection in installed_in(databases):
        version = fetch(connection, "SELECT pgfeed.version()")
        if version is None:
            continue
        installed = version[0][0]
        sync_feeds = [name for (name,) in fetch(connection, "SELECT name FROM pgfeed.feed_config WHERE mode = 'sync' "
                                                            "ORDER BY name") or []]
        if installed != pgfeed.__version__:
            messages.append(Error(
                f"database {alias!r} has pgfeed {installed}, this environment's package is {pgfeed.__version__}",
                hint=f"upgrade the database's: manage.py pgfeed --database {alias} install (as a superuser), or "
                     f"install the package of version {installed}",
                id="pgfeed.E002"))
        settings = connection.settings_dict
        first = sync_feeds[0].replace("'", "''") if sync_feeds else ""
        if sync_feeds and not settings.get("CONN_MAX_AGE") and not settings.get("OPTIONS", {}).get("pool"):
            messages.append(Warning(
                f"sync feed{'s' if len(sync_feeds) > 1 else ''} {', '.join(sync_feeds)} written through database "
                f"{alias!r}, whose connections close after each request (CONN_MAX_AGE 0, no pool): each new "
                "connection's first write loads the model in its backend (seconds)",
                hint="keep connections: CONN_MAX_AGE = 600 (with CONN_HEALTH_CHECKS = True) or OPTIONS {'pool': True}; "
                     f"or embed in workers: SELECT pgfeed.alter_feed('{first}', mode => 'async')",
                id="pgfeed.W001"))
    return messages


# the operation that attaches each kind of source again
ATTACH = {"content": "AttachContent", "interactions": "AttachInteractions", "impressions": "AttachImpressions"}

ATTACHED_COLUMNS = """
    SELECT f.name, c.relname, w.entry ->> 'name', 'content'
      FROM pgfeed.content_source s JOIN pgfeed.feed_config f USING (feed_id) JOIN pg_class c ON c.oid = s.source,
           jsonb_array_elements(s.watched) AS w(entry)
    UNION ALL
    SELECT f.name, c.relname, w.entry ->> 'name',
           CASE WHEN s.weight = 0 AND s.weight_expression IS NULL THEN 'impressions' ELSE 'interactions' END
      FROM pgfeed.interaction_source s JOIN pgfeed.feed_config f USING (feed_id) JOIN pg_class c ON c.oid = s.source,
           jsonb_array_elements(s.watched) AS w(entry)
"""


def pending_feeds(connection) -> set[str]:
    """Feeds that a migration not applied yet attaches, detaches, creates or drops: their fix is on its way."""
    from django.db.migrations.executor import MigrationExecutor

    from pgfeed.django.operations import Attach, CreateFeed, DropFeed

    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    return {getattr(operation, "feed", None) or operation.name
            for migration, backwards in plan if not backwards
            for operation in migration.operations if isinstance(operation, Attach | CreateFeed | DropFeed)}


@register(Tags.database)
def check_attached_fields(app_configs=None, databases=None, **kwargs) -> list:
    """pgfeed.E001: a column a feed reads that its table's model no longer has (a RenameField or RemoveField),
    unless a migration not applied yet attaches the feed again."""
    from django.apps import apps

    messages = []
    for _, connection in installed_in(databases):
        attached = fetch(connection, ATTACHED_COLUMNS) or []
        models = {}
        for model in apps.get_models():
            models.setdefault(model._meta.db_table, []).append(model)
        pending = None
        for feed, table, column, kind in attached:
            for model in models.get(table, []):
                if column in {field.column for field in model._meta.concrete_fields}:
                    continue
                if pending is None:
                    pending = pending_feeds(connection)
                if feed in pending:
                    continue
                label = model._meta.label
                fix = (f"AttachContent({feed!r}, model={label!r}, ..., again=True) with the fields as they are now; "
                       "items whose text did not change keep their vectors" if kind == "content" else
                       f"Detach({feed!r}, model={label!r}), then {ATTACH[kind]}({feed!r}, model={label!r}, ...) with "
                       "the fields as they are now; its likes are loaded again")
                messages.append(Error(
                    f"feed {feed!r} reads column {column!r} of table {table!r}, which model {label} has no field for "
                    "(renamed or removed?): once migrated, the feed stops following the table",
                    hint=f"in the migration that renames or removes the field, or a new one: {fix} "
                         "(pgfeed.django.operations)",
                    obj=model, id="pgfeed.E001"))
    return messages
