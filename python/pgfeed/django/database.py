"""The libpq connection string of a DATABASES alias, for what connects on its own (a worker, the installer)."""

from __future__ import annotations

import psycopg
from django.db import connections
from psycopg.conninfo import make_conninfo


def conninfo(alias: str) -> str:
    """The parameters Django's backend would connect with (OPTIONS included), less those that are Django's or
    psycopg's own."""
    keywords = {option.keyword.decode() for option in psycopg.pq.Conninfo.get_defaults()}
    params = connections[alias].get_connection_params()
    return make_conninfo(**{key: value for key, value in params.items() if key in keywords and value not in (None, "")})
