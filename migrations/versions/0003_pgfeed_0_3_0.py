"""pgfeed 0.3.0: access per feed (grant_feed), owner-run text expressions, problems shown in status()

Revision ID: 0003_pgfeed_0_3_0
Revises: 0002_pgfeed_0_2_0
Create Date: 2026-11-25
"""

from alembic import op

import pgfeed

revision = "0003_pgfeed_0_3_0"
down_revision = "0002_pgfeed_0_2_0"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pgfeed.install(op.get_bind().connection.dbapi_connection)


def downgrade() -> None:
    """The bundle's run-once migrations do not run backwards: going below 0.3.0
    leaves 0.3.0 installed, and the revision below removes it."""
