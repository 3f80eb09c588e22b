"""`pgfeed worker`: drains the embedding queue.

Each batch is one call of pgfeed.work(), which claims queued items with
FOR UPDATE SKIP LOCKED and embeds them in PL/Python, in its own transaction:
any number of workers can run side by side, and a worker that dies mid-batch
leaves its batch to the others. With the queue idle, work() does a batch of a
model switch (alter_feed(model => ...)). When nothing is ready the worker waits for a
NOTIFY on channel pgfeed_queue (or the next retry time). The first SIGTERM
or SIGINT lets the batch in progress commit, then stops; a second one aborts
it (rolled back, so nothing is lost).
"""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass

import psycopg
from tqdm import tqdm

from pgfeed.connection import ConnOrDsn, connection

CHANNEL = "pgfeed_queue"


@dataclass
class Totals:
    batches: int = 0
    claimed: int = 0
    embedded: int = 0
    failed: int = 0

    def add(self, row: tuple) -> None:
        """A row of pgfeed.work(): (feed, claimed, embedded, failed)."""
        _, claimed, embedded, failed = row
        self.batches += 1
        self.claimed += claimed
        self.embedded += embedded
        self.failed += failed


class _Stop:
    """Turns the first SIGTERM/SIGINT into a request to stop after the batch."""

    def __init__(self) -> None:
        self.requested = False
        self._previous = {}

    def __enter__(self) -> _Stop:
        for signum in (signal.SIGTERM, signal.SIGINT):
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt  # second signal: abort the batch, it rolls back
        self.requested = True


def run(
    conn_or_dsn: ConnOrDsn,
    feed: str | None = None,
    batch: int = 64,
    drain: bool = False,
    poll: float = 5.0,
    progress: bool = True,
    threads: int | None = None,
) -> Totals:
    """Embed queued items until stopped (or, with ``drain``, until none is ready). ``threads`` caps the
    CPU threads the model runs on in the worker's backend (default: every core)."""
    totals = Totals()
    with connection(conn_or_dsn) as conn, _Stop() as stop:
        conn.autocommit = True
        if threads is not None:
            conn.execute("SELECT set_config('pgfeed.encoder_threads', %s, false)", [str(threads)])
        conn.execute(f"LISTEN {CHANNEL}")
        bar = tqdm(total=_queued(conn, feed), unit="item", desc="embedding", disable=not progress, dynamic_ncols=True)
        try:
            while not stop.requested:
                rows = conn.execute("SELECT * FROM pgfeed.work(%s, %s)", [feed, batch]).fetchall()
                for row in rows:
                    totals.add(row)
                    bar.update(row[1])
                    bar.set_postfix(embedded=totals.embedded, failed=totals.failed, refresh=False)
                if rows:
                    continue
                if drain:
                    break
                _wait(conn, poll, stop)
                bar.total = bar.n + _queued(conn, feed)
                bar.refresh()
        finally:
            bar.close()
    return totals


def _queued(conn: psycopg.Connection, feed: str | None) -> int:
    return conn.execute("SELECT pgfeed.queued(%s)", [feed]).fetchone()[0]


def _wait(conn: psycopg.Connection, seconds: float, stop: _Stop) -> None:
    """Until a notification, `seconds` (work waiting on a retry time) or a stop request."""
    deadline = time.monotonic() + seconds
    while not stop.requested and time.monotonic() < deadline:
        # short slices, so that a stop request is seen within a second
        for _ in conn.notifies(timeout=min(1.0, deadline - time.monotonic()), stop_after=1):
            return
