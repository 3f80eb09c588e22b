"""The `pgfeed` command: install or upgrade the bundle, show status, reembed, run workers."""

from __future__ import annotations

import json
from datetime import timedelta

import click
import psycopg
from tqdm import tqdm

import pgfeed
from pgfeed import installer
from pgfeed import worker as queue_worker
from pgfeed.connection import connection

dsn_option = click.option(
    "--dsn", envvar="PGFEED_DSN", default="", show_default=False,
    help="libpq connection string or URL (default: $PGFEED_DSN, else the PG* environment)",
)


class _Commands(click.Group):
    """Errors from the database or the installer end a command with one line (and PostgreSQL's hint), not a
    traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except psycopg.Error as exc:
            diag = exc.diag
            message = diag.message_primary or str(exc).strip().splitlines()[0]
            raise click.ClickException(message + (f" (hint: {diag.message_hint})" if diag.message_hint else "")) from exc
        except pgfeed.InstallError as exc:
            raise click.ClickException(str(exc)) from exc


@click.group(cls=_Commands)
@click.version_option(pgfeed.__version__, prog_name="pgfeed")
def main() -> None:
    """Personalized content feeds inside PostgreSQL."""


@main.command()
@dsn_option
@click.option("--python-path", default=None,
              help="where the server's PL/Python imports pgfeed from (default: the path set before, else this "
                   "environment's site-packages)")
@click.option("--feed-admin", "feed_admins", multiple=True, metavar="ROLE",
              help="let this role create feeds, manage its own and attach its own tables (repeatable): an "
                   "application that migrates as a role that is not a superuser")
@click.option("--show", is_flag=True, help="print what is installed and set, and change nothing")
def install(dsn: str, python_path: str | None, feed_admins: tuple[str, ...], show: bool) -> None:
    """Install pgfeed in a database, or upgrade it. Safe to re-run: settings not given are kept."""
    if show:
        for name, value in installer.settings(dsn).items():
            click.echo(f"{name}: {value}")
        return
    _install(dsn, python_path, feed_admins)


@main.command()
@dsn_option
@click.option("--python-path", default=None, help="as for install")
def upgrade(dsn: str, python_path: str | None) -> None:
    """Upgrade an installed pgfeed to this version (same as install)."""
    _install(dsn, python_path)


def _install(dsn: str, python_path: str | None, feed_admins: tuple[str, ...] = ()) -> None:
    pgfeed.install(dsn, python_path=python_path, feed_admins=feed_admins)
    click.echo(f"pgfeed {pgfeed.__version__} installed; python_path: {installer.settings(dsn)['python_path']}"
               + "".join(f"; {role} may manage feeds" for role in feed_admins))


@main.command()
@dsn_option
@click.option("--json", "as_json", is_flag=True, help="a JSON array of objects, one a feed (oldest_pending in seconds)")
@click.pass_context
def status(ctx: click.Context, dsn: str, as_json: bool) -> None:
    """One line a feed you may read: mode, model (and the one being switched to), items, embedded, pending,
    failed, oldest pending, interactions, profiles, profiles and like counts a worker has yet to store, and the
    problem that keeps it from following its tables. Exits with 1 if any feed has failed items or a problem
    (for monitoring)."""
    columns = ["feed", "mode", "model", "switching_to", "items", "embedded", "pending", "failed", "oldest_pending",
               "interactions", "profiles", "profiles_pending", "counts_pending", "problem"]
    with connection(dsn) as conn:
        feeds = pgfeed.status(conn)
    if as_json:
        click.echo(json.dumps([{c: row[c].total_seconds() if isinstance(row[c], timedelta) else row[c] for c in columns}
                               for row in feeds], indent=2))
    else:
        rows = [["" if row[c] is None else str(row[c]) for c in columns] for row in feeds]
        widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(columns)]
        for line in [columns, *rows]:
            click.echo("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())
    if any(row["failed"] or row["problem"] for row in feeds):
        ctx.exit(1)


@main.command()
@dsn_option
@click.argument("feed")
@click.option("--force", is_flag=True, help="re-embed every item, not only new, changed or failed ones")
@click.option("--restart", is_flag=True, help="start from the first row instead of resuming an interrupted run")
@click.option("--batch", default=512, show_default=True, help="content rows a transaction")
@click.option("--quiet", is_flag=True, help="no progress bar")
def reembed(dsn: str, feed: str, force: bool, restart: bool, batch: int, quiet: bool) -> None:
    """Bring FEED's embeddings up to date with its content table.

    Commits every batch; an interrupted run resumes where it stopped."""
    with connection(dsn) as conn:
        total = next((row["items"] for row in pgfeed.status(conn) if row["feed"] == feed), None)
        embedded, first = 0, True
        with tqdm(total=total, unit="row", desc=f"reembed {feed}", disable=quiet, dynamic_ncols=True) as bar:
            while True:
                rows, count, resumed_after = conn.execute(
                    "SELECT * FROM pgfeed.reembed_batch(%s, %s, restart => %s, force => %s)",
                    [feed, batch, first and restart, first and force]).fetchone()
                if first and resumed_after is not None:
                    bar.write(f"resuming after key {resumed_after}")
                    bar.total = None
                first = False
                if rows == 0:
                    break
                embedded += count
                bar.update(rows)
    click.echo(f"{embedded} items embedded")


@main.command()
@dsn_option
@click.option("--feed", default=None, help="only this feed's queue (default: every feed's)")
@click.option("--batch", default=64, show_default=True, help="items claimed a transaction")
@click.option("--drain", is_flag=True, help="exit once no work is ready instead of waiting for more")
@click.option("--poll", default=5.0, show_default=True, help="seconds between checks for retries when idle")
@click.option("--quiet", is_flag=True, help="no progress bar")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="CPU threads the model runs on in this worker's backend (default: every core); "
                   "for workers sharing a server's cores, cores / workers")
def worker(dsn: str, feed: str | None, batch: int, drain: bool, poll: float, quiet: bool, threads: int | None) -> None:
    """Embed queued items (async feeds, failed embeddings, model switches).

    Run as many as you like, on any machine; SIGTERM or Ctrl-C stops after the batch in progress."""
    totals = queue_worker.run(dsn, feed=feed, batch=batch, drain=drain, poll=poll, progress=not quiet, threads=threads)
    click.echo(f"{totals.embedded} embedded, {totals.failed} failed, in {totals.batches} batches")


@main.command()
@dsn_option
@click.argument("feed", required=False)
def retry(dsn: str, feed: str | None) -> None:
    """Queue failed items again (of FEED, or of every feed) with their attempts reset."""
    with connection(dsn) as conn:
        count = conn.execute("SELECT pgfeed.retry(%s)", [feed]).fetchone()[0]
    click.echo(f"{count} items queued again; `pgfeed worker` embeds them")


@main.command("export-model")
@click.argument("spec", default="all-MiniLM-L6-v2:onnx-int8")
def export_model(spec: str) -> None:
    """Build a packaged model's variant (default: the int8 ONNX export) from its shipped weights."""
    from pgfeed import encoders

    try:
        click.echo(f"{spec} built in {encoders.export_variant(spec)}")
    except encoders.ModelNotFound as exc:
        raise click.ClickException(str(exc)) from exc
