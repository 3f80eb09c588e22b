"""pgfeed 0.2.0: async embedding queue, index-driven feed, resumable reembed

Revision ID: 0002_pgfeed_0_2_0
Revises: 0001_pgfeed_0_1_0
Create Date: 2026-11-21
"""

from alembic import op

import pgfeed

revision = "0002_pgfeed_0_2_0"
down_revision = "0001_pgfeed_0_1_0"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pgfeed.install(op.get_bind().connection.dbapi_connection)


def downgrade() -> None:
    """The bundle's run-once migrations do not run backwards, so going below
    0.2.0 removes pgfeed (feeds, triggers, data); the revision below then has
    nothing left to remove. The user's tables are left as they were."""
    pgfeed.uninstall(op.get_bind().connection.dbapi_connection)
