"""pgfeed 0.1.0: the bundle as of this release

Each pgfeed release adds a revision whose upgrade runs the installer; the
installer applies the SQL bundle's new run-once migrations and refreshes its
definitions, so the SQL in sql/ stays the one source of truth.

Revision ID: 0001_pgfeed_0_1_0
Revises:
Create Date: 2026-11-21
"""

from alembic import op

import pgfeed

revision = "0001_pgfeed_0_1_0"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    pgfeed.install(op.get_bind().connection.dbapi_connection)


def downgrade() -> None:
    pgfeed.uninstall(op.get_bind().connection.dbapi_connection)
