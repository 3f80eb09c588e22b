"""The `pgfeed` command: install or upgrade the bundle, show status, reembed."""

from __future__ import annotations

import click
import psycopg

import pgfeed
from pgfeed.connection import connection

dsn_option = click.option(
    "--dsn", envvar="PGFEED_DSN", default="", show_default=False,
    help="libpq connection string or URL (default: $PGFEED_DSN, else the PG* environment)",
)


@click.group()
@click.version_option(pgfeed.__version__, prog_name="pgfeed")
def main() -> None:
    """Personalized content feeds inside PostgreSQL."""


@main.command()
@dsn_option
@click.option("--python-path", default=None,
              help="where the server's PL/Python imports pgfeed from (default: this environment's site-packages)")
def install(dsn: str, python_path: str | None) -> None:
    """Install pgfeed in a database, or upgrade it. Safe to re-run."""
    _install(dsn, python_path)


@main.command()
@dsn_option
@click.option("--python-path", default=None, help="as for install")
def upgrade(dsn: str, python_path: str | None) -> None:
    """Upgrade an installed pgfeed to this version (same as install)."""
    _install(dsn, python_path)


def _install(dsn: str, python_path: str | None) -> None:
    try:
        pgfeed.install(dsn, python_path=python_path)
    except (pgfeed.InstallError, psycopg.Error) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"pgfeed {pgfeed.__version__} installed")


@main.command()
@dsn_option
def status(dsn: str) -> None:
    """One line a feed: items, embedded, pending, failed, interactions, profiles."""
    columns = ["feed", "model", "items", "embedded", "pending", "failed", "interactions", "profiles"]
    with connection(dsn) as conn:
        rows = [[str(row[c]) for c in columns] for row in pgfeed.status(conn)]
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(columns)]
    for line in [columns, *rows]:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip())


@main.command()
@dsn_option
@click.argument("feed")
@click.option("--force", is_flag=True, help="re-embed every item, not only new, changed or failed ones")
def reembed(dsn: str, feed: str, force: bool) -> None:
    """Bring FEED's embeddings up to date with its content table."""
    with connection(dsn) as conn:
        count = conn.execute("SELECT pgfeed.reembed(%s, force => %s)", [feed, force]).fetchone()[0]
    click.echo(f"{count} items embedded")
