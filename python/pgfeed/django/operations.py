"""Migration operations: pgfeed set up by ``migrate``, in the test database Django creates too.

    from pgfeed.django.operations import AttachContent, AttachInteractions, CreateFeed, InstallPgfeed

    operations = [
        InstallPgfeed(),
        CreateFeed("posts", mode="async"),
        AttachContent("posts", model="blog.Post", text=["title", "body"], created_at="created_at",
                      condition=Q(status="published"), filter_columns=["lang"], group_column="author"),
        AttachInteractions("posts", model="blog.Like", user="user", item="post", created_at="created_at"),
    ]

Names are the models' and fields' (``user`` is the column ``user_id``), resolved from the migration state, so
that a migration keeps meaning what it meant when it was written. pgfeed keeps its own catalog: these operations
change no model state. Like pgfeed's SQL functions they need a superuser (InstallPgfeed says what to run once
if the migrating role is not one).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db.migrations.exceptions import IrreversibleError
from django.db.migrations.operations.base import Operation
from django.db.models import Q
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

import pgfeed
from pgfeed.calls import ALTER_SETTINGS, FEED_SETTINGS, call, check_settings
from pgfeed.django.database import conninfo


def column(model, field: str) -> str:
    """A field's column: Django's name for it (``user``, ``pk``), or the column itself (``user_id``)."""
    return (model._meta.pk if field == "pk" else model._meta.get_field(field)).column


class PgfeedOperation(Operation):
    reduces_to_sql = True  # (sqlmigrate shows the calls)

    def state_forwards(self, app_label, state) -> None:
        """pgfeed's catalog is the database's: no model changes."""

    def run(self, schema_editor, statement: tuple[str, list]) -> None:
        schema_editor.execute(*statement)


class InstallPgfeed(PgfeedOperation):
    """Installs pgfeed, or upgrades it to this package's version; nothing if that version is installed, so a role
    that is not a superuser migrates once a superuser has installed it. Reversing it leaves pgfeed in place (other
    apps' feeds live in it) unless ``uninstall=True``."""

    reduces_to_sql = False

    def __init__(self, uninstall: bool = False) -> None:
        self.uninstall = uninstall

    def deconstruct(self):
        return self.__class__.__name__, [], {"uninstall": True} if self.uninstall else {}

    def describe(self) -> str:
        return f"Install pgfeed {pgfeed.__version__}"

    def database_forwards(self, app_label, schema_editor, from_state, to_state) -> None:
        with schema_editor.connection.cursor() as cursor:
            cursor.execute("SELECT to_regprocedure('pgfeed.version()') IS NOT NULL, rolsuper, quote_ident(rolname) "
                           "FROM pg_roles WHERE rolname = current_user")
            installed, superuser, role = cursor.fetchone()
            if installed:  # (a query naming pgfeed.version() fails to parse without the schema)
                cursor.execute("SELECT pgfeed.version()")
                installed = cursor.fetchone()[0]
        if installed == pgfeed.__version__:
            return
        if not superuser:
            raise pgfeed.InstallError(one_time_step(schema_editor.connection, installed, role))
        pgfeed.install(schema_editor.connection.connection)

    def database_backwards(self, app_label, schema_editor, from_state, to_state) -> None:
        if self.uninstall:
            pgfeed.uninstall(schema_editor.connection.connection)


def one_time_step(connection, installed: str | None, role: str) -> str:
    """What a superuser runs once so that the migrating role installs nothing and manages its own feeds: the
    install, with the connection's libpq string (the usual superuser's name, no password) and the role let
    manage feeds; and the same in the template Django makes test databases from."""
    params = conninfo_to_dict(conninfo(connection.alias))
    for setting in ("password", "client_encoding"):  # (Django sets the encoding: noise in a command to copy)
        params.pop(setting, None)
    template = connection.settings_dict.get("TEST", {}).get("TEMPLATE") or "template1"
    install = "pgfeed install --dsn {!r} --feed-admin " + role
    return (f"pgfeed {pgfeed.__version__} is not installed in this database ({installed or 'none is'}), and "
            f"installing needs a superuser; one runs, once:\n"
            f"    {install.format(make_conninfo(**{**params, 'user': 'postgres'}))}\n"
            f"and, so that the test databases Django makes from {template} have it too:\n"
            f"    {install.format(make_conninfo(**{**params, 'user': 'postgres', 'dbname': template}))}\n"
            "then migrate again")


class CreateFeed(PgfeedOperation):
    """pgfeed.create_feed(name, **settings); reversed: pgfeed.drop_feed(name)."""

    def __init__(self, name: str, **settings: Any) -> None:
        check_settings("CreateFeed", settings, FEED_SETTINGS)
        self.name, self.settings = name, settings

    def deconstruct(self):
        return self.__class__.__name__, [self.name], self.settings

    def describe(self) -> str:
        return f"Create feed {self.name}"

    def database_forwards(self, app_label, schema_editor, from_state, to_state) -> None:
        self.run(schema_editor, call("create_feed", [self.name], self.settings))

    def database_backwards(self, app_label, schema_editor, from_state, to_state) -> None:
        self.run(schema_editor, call("drop_feed", [self.name], {}))


class AlterFeed(PgfeedOperation):
    """pgfeed.alter_feed(name, **settings); reversible if ``reverse`` gives the settings to go back to."""

    def __init__(self, name: str, reverse: dict | None = None, **settings: Any) -> None:
        check_settings("AlterFeed", {**settings, **(reverse or {})}, ALTER_SETTINGS)
        self.name, self.reverse, self.settings = name, reverse, settings
        self.reversible = reverse is not None

    def deconstruct(self):
        return self.__class__.__name__, [self.name], {**self.settings, **({"reverse": self.reverse} if self.reverse else {})}

    def describe(self) -> str:
        return f"Alter feed {self.name}"

    def database_forwards(self, app_label, schema_editor, from_state, to_state) -> None:
        self.run(schema_editor, call("alter_feed", [self.name], self.settings))

    def database_backwards(self, app_label, schema_editor, from_state, to_state) -> None:
        self.run(schema_editor, call("alter_feed", [self.name], self.reverse))


class DropFeed(PgfeedOperation):
    """pgfeed.drop_feed(name): its triggers and data go, the tables stay. Not reversible (the vectors are gone)."""

    reversible = False

    def __init__(self, name: str) -> None:
        self.name = name

    def deconstruct(self):
        return self.__class__.__name__, [self.name], {}

    def describe(self) -> str:
        return f"Drop feed {self.name}"

    def database_forwards(self, app_label, schema_editor, from_state, to_state) -> None:
        self.run(schema_editor, call("drop_feed", [self.name], {}))


class Attach(PgfeedOperation):
    """What the attach operations share: a model of the migration state, detached when reversed."""

    required: tuple[str, ...] = ()  # the keyword arguments a migration file always spells out
    optional: tuple[str, ...] = ()  # those it spells out when given
    backfill = True

    def __init__(self, feed: str, model: str) -> None:
        self.feed, self.model = feed, model

    def deconstruct(self):
        kwargs = {"model": self.model, **{key: getattr(self, key) for key in self.required}}
        kwargs.update({key: getattr(self, key) for key in self.optional if getattr(self, key) is not None})
        if not self.backfill:
            kwargs["backfill"] = False
        return self.__class__.__name__, [self.feed], kwargs

    def model_of(self, state):
        return state.apps.get_model(self.model)

    def table(self, schema_editor, model) -> str:
        return schema_editor.quote_name(model._meta.db_table)

    def detach(self, schema_editor, state) -> None:
        self.run(schema_editor, call("detach", [self.feed, self.table(schema_editor, self.model_of(state))], {}))

    def database_backwards(self, app_label, schema_editor, from_state, to_state) -> None:
        self.detach(schema_editor, from_state)


class Detach(Attach):
    """pgfeed.detach(feed, the model's table): its triggers and pgfeed's data of it go. With an attach operation
    after it, the fix for a renamed or removed field a feed reads (pgfeed.E001). Not reversible."""

    reversible = False

    def describe(self) -> str:
        return f"Detach {self.model} from feed {self.feed}"

    def database_forwards(self, app_label, schema_editor, from_state, to_state) -> None:
        self.detach(schema_editor, from_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state) -> None:
        raise IrreversibleError(f"{self.describe()} cannot be reversed: attach it again")


def sql_literal(value: Any) -> str:
    return sql.Literal(value).as_string()


# the lookups a condition may use, as SQL (with a literal of the value)
LOOKUPS = {"exact": "=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def condition_sql(model, q: Q, quote) -> str:
    """A Q object of lookups on the model's own fields (exact, gt, gte, lt, lte, in, isnull; joined with &, | and
    ~) as the SQL condition pgfeed evaluates over a row, values as literals."""
    parts = []
    for child in q.children:
        if isinstance(child, Q):
            parts.append(f"({condition_sql(model, child, quote)})")
            continue
        lookup, value = child
        field, _, kind = lookup.partition("__")
        name = quote(column(model, field))
        value = getattr(value, "pk", value)
        if kind in ("", *LOOKUPS) and value is not None:
            parts.append(f"{name} {LOOKUPS[kind or 'exact']} {sql_literal(value)}")
        elif kind in ("", "exact", "isnull"):
            parts.append(f"{name} IS {'' if value or kind != 'isnull' else 'NOT '}NULL")
        elif kind == "in":
            parts.append(f"{name} IN ({', '.join(sql_literal(getattr(v, 'pk', v)) for v in value)})")
        else:
            raise ValueError(f"condition: lookup {lookup!r} is not one pgfeed translates (exact, gt, gte, lt, lte, in, "
                             "isnull on the model's own fields); write the condition in SQL instead")
    sql_text = f" {q.connector} ".join(parts)
    return f"NOT ({sql_text})" if q.negated else sql_text


class AttachContent(Attach):
    """pgfeed.attach_content over a model: ``text`` a list of fields (joined with spaces, NULLs skipped) or an SQL
    expression; ``condition`` a Q object (``Q(status="published")``), a dict of fields and values (ANDed
    equalities) or an SQL expression;
    ``filter_columns`` and ``group_column`` fields. Reversed: detached.

    ``again=True`` attaches the feed's own table again, with its fields as they are after a RenameField or
    RemoveField (pgfeed.E001): the feed's definition changes in place, items whose text did not change keep their
    vectors, and what the triggers missed meanwhile is caught up. That is not reversible."""

    required = ("text", "created_at")
    optional = ("condition", "filter_columns", "group_column")

    def __init__(self, feed: str, model: str, text: Sequence[str] | str, created_at: str,
                 condition: Q | dict[str, Any] | str | None = None, filter_columns: Sequence[str] | None = None,
                 group_column: str | None = None, backfill: bool = True, again: bool = False) -> None:
        super().__init__(feed, model)
        self.text, self.created_at, self.condition = text, created_at, condition
        self.filter_columns, self.group_column, self.backfill = filter_columns, group_column, backfill
        self.again = again
        self.reversible = not again

    def deconstruct(self):
        name, args, kwargs = super().deconstruct()
        return name, args, {**kwargs, "again": True} if self.again else kwargs

    def describe(self) -> str:
        return f"Attach {self.model} to feed {self.feed}{' again' if self.again else ''}"

    def database_backwards(self, app_label, schema_editor, from_state, to_state) -> None:
        if self.again:
            raise IrreversibleError(f"{self.describe()} cannot be reversed: the feed's definition before it is gone")
        super().database_backwards(app_label, schema_editor, from_state, to_state)

    def database_forwards(self, app_label, schema_editor, from_state, to_state) -> None:
        model = self.model_of(to_state)
        quote = schema_editor.quote_name
        text = self.text if isinstance(self.text, str) else \
            f"concat_ws(' ', {', '.join(quote(column(model, f)) for f in self.text)})"
        condition = self.condition if isinstance(self.condition, str | None) else \
            condition_sql(model, Q(**self.condition) if isinstance(self.condition, dict) else self.condition, quote)
        self.run(schema_editor, call(
            "attach_content", [self.feed, self.table(schema_editor, model), model._meta.pk.column, text,
                               column(model, self.created_at)],
            {"condition": condition, "backfill": self.backfill,
             "filter_columns": None if self.filter_columns is None else [column(model, f) for f in self.filter_columns],
             "group_column": None if self.group_column is None else column(model, self.group_column)}))


class AttachInteractions(Attach):
    """pgfeed.attach_interactions over a model of likes: ``user`` and ``item`` fields (a foreign key's name
    gives its column), ``weight`` or ``weight_expression`` (SQL over a row). Reversed: detached."""

    function = "attach_interactions"
    required = ("user", "item")
    optional = ("created_at", "weight", "weight_expression")

    def __init__(self, feed: str, model: str, user: str, item: str, created_at: str | None = None,
                 weight: float | None = None, weight_expression: str | None = None, backfill: bool = True) -> None:
        super().__init__(feed, model)
        self.user, self.item, self.created_at, self.backfill = user, item, created_at, backfill
        self.weight, self.weight_expression = weight, weight_expression

    def describe(self) -> str:
        return f"Attach {self.model} to feed {self.feed} ({self.function})"

    def options(self) -> dict[str, Any]:
        return {"weight": self.weight, "weight_expression": self.weight_expression}

    def database_forwards(self, app_label, schema_editor, from_state, to_state) -> None:
        model = self.model_of(to_state)
        self.run(schema_editor, call(
            self.function, [self.feed, self.table(schema_editor, model), column(model, self.user), column(model, self.item)],
            {"created_at_column": None if self.created_at is None else column(model, self.created_at),
             "backfill": self.backfill, **self.options()}))


class AttachImpressions(AttachInteractions):
    """pgfeed.attach_impressions over a model of what was shown to whom: ``user``, ``item``, ``created_at``
    fields. Reversed: detached."""

    function = "attach_impressions"

    def __init__(self, feed: str, model: str, user: str, item: str, created_at: str | None = None,
                 backfill: bool = True) -> None:
        super().__init__(feed, model, user, item, created_at, backfill=backfill)

    def options(self) -> dict[str, Any]:
        return {}
