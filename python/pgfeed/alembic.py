"""alembic operations for SQLAlchemy projects: ``import pgfeed.alembic`` (in env.py, or the migration) registers

    op.create_feed("posts", mode="async")                          # reverse: drop_feed
    op.alter_feed("posts", max_per_group=2)
    op.attach_content("posts", "post", "id", "title || ' ' || body", "created_at", filter_columns=["lang"])
    op.attach_interactions("posts", "post_like", "user_id", "post_id", created_at_column="created_at")
    op.attach_impressions("posts", "post_view", "user_id", "post_id")
    op.detach_feed("posts", "post_like")                           # (a downgrade's step back from an attach)
    op.drop_feed("posts")

Each is the SQL function of its name, run in the migration's transaction. ``reverse()`` gives the step back
(create_feed and the attach operations), for a downgrade written as ``op.invoke(...reverse())``. Like the SQL
functions, they need a superuser.
"""

from __future__ import annotations

from typing import Any

from alembic.operations import MigrateOperation, Operations

from pgfeed.calls import ALTER_SETTINGS, FEED_SETTINGS, call, check_settings


class PgfeedCall(MigrateOperation):
    """One call of a pgfeed set-up function: its name, positional arguments and named ones."""

    function = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args, self.kwargs = list(args), kwargs

    @classmethod
    def invoke_for(cls, operations: Operations, *args: Any, **kwargs: Any) -> None:
        return operations.invoke(cls(*args, **kwargs))


def _run(operations: Operations, operation: PgfeedCall) -> None:
    statement, params = call(operation.function, operation.args, operation.kwargs)
    operations.get_bind().exec_driver_sql(statement, tuple(params))


def _register(name: str, function: str, cls: type[PgfeedCall]) -> None:
    """op.<name>(...) calls pgfeed.<function>(...)."""
    cls.function = function
    Operations.register_operation(name, "invoke_for")(cls)
    Operations.implementation_for(cls)(_run)


class CreateFeedOp(PgfeedCall):
    def __init__(self, name: str, **settings: Any) -> None:
        check_settings("create_feed", settings, FEED_SETTINGS)
        super().__init__(name, **settings)

    def reverse(self) -> PgfeedCall:
        return DropFeedOp(self.args[0])


class AlterFeedOp(PgfeedCall):
    def __init__(self, name: str, **settings: Any) -> None:
        check_settings("alter_feed", settings, ALTER_SETTINGS)
        super().__init__(name, **settings)


class DropFeedOp(PgfeedCall):
    """Not reversible: the feed's vectors and logs go with it."""


class DetachFeedOp(PgfeedCall):
    """detach(feed, source): a table's triggers and pgfeed's data of it go; without a source, every table's."""


class AttachOp(PgfeedCall):
    def reverse(self) -> PgfeedCall:
        return DetachFeedOp(self.args[0], self.args[1])


class AttachContentOp(AttachOp):
    pass


class AttachInteractionsOp(AttachOp):
    pass


class AttachImpressionsOp(AttachOp):
    pass


for _name, _function, _cls in (
        ("create_feed", "create_feed", CreateFeedOp), ("alter_feed", "alter_feed", AlterFeedOp),
        ("drop_feed", "drop_feed", DropFeedOp), ("detach_feed", "detach", DetachFeedOp),
        ("attach_content", "attach_content", AttachContentOp), ("attach_interactions", "attach_interactions", AttachInteractionsOp),
        ("attach_impressions", "attach_impressions", AttachImpressionsOp)):
    _register(_name, _function, _cls)
