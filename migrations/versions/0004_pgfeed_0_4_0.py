"""pgfeed 0.4.0: pages (cursors), filters, a cap of items a group, impressions, exact ranking of small stores

Revision ID: 0004_pgfeed_0_4_0
Revises: 0003_pgfeed_0_3_0
Create Date: 2026-11-25
"""

from alembic import op

import pgfeed

revision = "0004_pgfeed_0_4_0"
down_revision = "0003_pgfeed_0_3_0"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pgfeed.install(op.get_bind().connection.dbapi_connection)


def downgrade() -> None:
    """The bundle's run-once migrations do not run backwards: going below 0.4.0
    leaves 0.4.0 installed, and the revision below removes it."""
