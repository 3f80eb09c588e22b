"""System checks of the databases pgfeed is installed in (run by migrate, and by check --database ALIAS).

- pgfeed.E002: the database's pgfeed is not this package's version.
- pgfeed.W001: a sync feed written through connections closed after each request: each new connection's
  backend loads the model (seconds, hundreds of MB) on its first write to the content table.
"""

from __future__ import annotations

from django.core.checks import Error, Tags, Warning, register
from django.db import DatabaseError, connections

import pgfeed


@register(Tags.database)
def check_databases(app_configs=None, databases=None, **kwargs) -> list:
    messages = []
    for alias in databases or []:
        connection = connections[alias]
        if connection.vendor != "postgresql":
            continue
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT to_regprocedure('pgfeed.version()') IS NOT NULL")
                if not cursor.fetchone()[0]:
                    continue  # not installed there (yet): nothing to check
                cursor.execute("SELECT pgfeed.version()")
                installed = cursor.fetchone()[0]
                cursor.execute("SELECT name FROM pgfeed.feed_config WHERE mode = 'sync' ORDER BY name")
                sync_feeds = [name for (name,) in cursor.fetchall()]
        except DatabaseError:
            continue  # unreachable, or not readable by this role: Django's own checks say what they can
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
