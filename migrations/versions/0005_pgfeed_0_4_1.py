"""pgfeed 0.4.1: the most liked tier searched with a longer HNSW list (1% of its items, up to twice the feed's);
work() and the worker count the items they keep as failed; TRUNCATE of a content table clears its queue

Revision ID: 0005_pgfeed_0_4_1
Revises: 0004_pgfeed_0_4_0
Create Date: 2026-11-25
"""

from alembic import op

import pgfeed

revision = "0005_pgfeed_0_4_1"
down_revision = "0004_pgfeed_0_4_0"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pgfeed.install(op.get_bind().connection.dbapi_connection)


def downgrade() -> None:
    """The bundle does not run backwards: going below 0.4.1 leaves 0.4.1 installed, and the revisions
    below remove it."""
