"""Accepting either a psycopg connection or a DSN."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

ConnOrDsn = psycopg.Connection | str


@contextmanager
def connection(conn_or_dsn: ConnOrDsn) -> Iterator[psycopg.Connection]:
    """Yield the given connection, or one opened (autocommit) and closed here."""
    if isinstance(conn_or_dsn, psycopg.Connection):
        yield conn_or_dsn
        return
    with psycopg.connect(conn_or_dsn, autocommit=True) as conn:
        yield conn
