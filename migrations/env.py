"""Alembic environment: connects with psycopg 3 to the database given by
`-x dsn=...` or $PGFEED_DSN, and runs the pgfeed revisions in one transaction."""

import os

import psycopg
from alembic import context
from sqlalchemy import create_engine, pool

dsn = context.get_x_argument(as_dictionary=True).get("dsn") or os.environ.get("PGFEED_DSN", "")
engine = create_engine("postgresql+psycopg://", creator=lambda: psycopg.connect(dsn), poolclass=pool.NullPool)

with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=None,
                      version_table=context.config.get_main_option("version_table"))
    with context.begin_transaction():
        context.run_migrations()
