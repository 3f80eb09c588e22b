"""``manage.py pgfeed``: the pgfeed command line on a DATABASES alias.

    manage.py pgfeed install | status [--json] | reembed FEED | retry [FEED] | worker [--drain] [--database ALIAS]

Each subcommand is ``pgfeed``'s (see ``pgfeed --help``), connected with the alias's settings on a connection of
its own (a worker runs for hours, and stops after its batch on SIGTERM)."""

from __future__ import annotations

import argparse
import os
import sys

import click
from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS, connections

from pgfeed.cli import main
from pgfeed.django.database import conninfo


def database_option(database: str, arguments: list[str]) -> tuple[str, list[str]]:
    """--database given after the subcommand (manage.py pgfeed worker --database replica), taken out of its
    arguments: it is this command's option, not the subcommand's."""
    rest, given = [], iter(arguments)
    for argument in given:
        if argument == "--database":
            database = next(given, "")
        elif argument.startswith("--database="):
            database = argument.partition("=")[2]
        else:
            rest.append(argument)
    return database, rest


class Command(BaseCommand):
    help = "pgfeed's command line (install, status, reembed, retry, worker) on the database of a DATABASES alias"

    def add_arguments(self, parser) -> None:
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS, help="the DATABASES alias (default: default)")
        parser.add_argument("arguments", nargs=argparse.REMAINDER, help="a pgfeed subcommand and its options")

    def handle(self, *args, database: str, arguments: list[str], **options) -> None:
        database, arguments = database_option(database, arguments)
        if database not in connections:
            raise CommandError(f"no database alias {database!r} in DATABASES")
        previous = os.environ.get("PGFEED_DSN")
        os.environ["PGFEED_DSN"] = conninfo(database)  # every subcommand's --dsn defaults to it
        try:
            code = main.main(args=arguments or ["--help"], prog_name="manage.py pgfeed", standalone_mode=False)
        except click.ClickException as exc:  # bad usage, a database error: as Django reports a command's errors
            raise CommandError(exc.format_message()) from exc
        finally:
            if previous is None:
                os.environ.pop("PGFEED_DSN", None)
            else:
                os.environ["PGFEED_DSN"] = previous
        if isinstance(code, int) and code:
            sys.exit(code)  # status: 1 if a feed has failed items or a problem
