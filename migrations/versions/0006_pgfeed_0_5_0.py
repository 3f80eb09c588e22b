"""pgfeed 0.5.0: feeds managed by roles that are not superusers (pgfeed.grant_admin; each feed has an owner);
the Django admin and REST pagination

Revision ID: 0006_pgfeed_0_5_0
Revises: 0005_pgfeed_0_4_1
Create Date: 2026-11-26
"""

from alembic import op

import pgfeed

revision = "0006_pgfeed_0_5_0"
down_revision = "0005_pgfeed_0_4_1"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pgfeed.install(op.get_bind().connection.dbapi_connection)


def downgrade() -> None:
    """The bundle does not run backwards: going below 0.5.0 leaves 0.5.0 installed, and the revisions
    below remove it."""
