"""Put robots in rooms from a SQLite table, resumably: a rerun does only what is not done.

The table ``placements`` holds one row per (room_id, robot). Rows are read lazily, a page
at a time (memory stays flat for millions of rows), and streamed into ``chat.bulk``,
which paces the calls under Tencent's rate limit; each outcome is written back to the
row (``status``: ``pending``, ``done`` or ``failed``, with ``error``), committed in
batches. A rerun picks up every row that is not ``done``: rows never reached, rows that
failed (fixed since, perhaps), and rows whose call was cut short. Adding a robot that
is already in the room is harmless, so redoing a row whose outcome was not recorded
(the process was killed between two commits) changes nothing.

Ctrl-C (or SIGTERM) stops the run: no new call starts, the calls on the wire finish and
are recorded, and what finished is committed; a second Ctrl-C ends the calls on the
wire too. The exit code is 0 when every row is done, 1 when some failed, 130 when
interrupted.

Run it against Tencent (from a clone: ``pip install .``)::

    TENCENT_CHAT_SDKAPPID=1400000000 TENCENT_CHAT_SECRET_KEY=... TENCENT_CHAT_ADMIN=... \\
    python examples/provision_from_sqlite.py --db placements.db

where ``placements.db`` has a table ``placements (room_id TEXT, robot TEXT)`` (the
``status``, ``error`` and ``updated_at`` columns are added if missing). To try it on the
embedded fake server, with no credentials (it creates the table's rooms and robots)::

    python examples/provision_from_sqlite.py --db demo.db --create-demo-db 5000
    python examples/provision_from_sqlite.py --db demo.db --fake    # Ctrl-C, then again

``--rate N`` paces the calls at N a second (default 190), to leave room for a web
service sharing the app's budget. ``tests/test_examples_services.py`` runs it against
the fake.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sqlite3
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

from tencent_chat_robots import (
    DEFAULT_RATE_LIMIT,
    BulkOutcome,
    BulkStoppedError,
    Call,
    ClientClosedError,
    TencentChat,
    ValidationError,
)

TABLE = "placements"
PAGE = 500  # rows read per query
COMMIT_EVERY = 200  # outcomes per transaction: a kill loses at most these (redone next run)
ITEM_DEADLINE = 30.0  # seconds for one call, waits and retries included
DEMO_ROBOT = "@RBT#demo"
EXIT_INTERRUPTED = 130


# -- the table ----------------------------------------------------------------------------


def open_db(path: str) -> sqlite3.Connection:
    """The database, with the ``placements`` table and its outcome columns."""
    conn = sqlite3.connect(path)
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {TABLE} ("
        " room_id TEXT NOT NULL, robot TEXT NOT NULL, PRIMARY KEY (room_id, robot))"
    )
    columns = {row[1] for row in conn.execute(f"PRAGMA table_info({TABLE})")}
    for column, declaration in (
        ("status", "TEXT NOT NULL DEFAULT 'pending'"),
        ("error", "TEXT"),
        ("updated_at", "REAL"),
    ):
        if column not in columns:  # a table of your own: the outcome columns are added
            conn.execute(f"ALTER TABLE {TABLE} ADD COLUMN {column} {declaration}")
    conn.commit()
    return conn


def create_demo_db(conn: sqlite3.Connection, rows: int) -> None:
    """``rows`` placements of ``@RBT#demo`` in rooms ``room-00001``... (kept if present)."""
    conn.executemany(
        f"INSERT OR IGNORE INTO {TABLE} (room_id, robot) VALUES (?, ?)",
        ((f"room-{i:05d}", DEMO_ROBOT) for i in range(1, rows + 1)),
    )
    conn.commit()


def not_done(conn: sqlite3.Connection, page: int = PAGE) -> Iterator[tuple[int, str, str]]:
    """``(rowid, room_id, robot)`` of every row not done, in rowid order, lazily.

    ``page`` rows per query, each query starting after the last rowid read (keyset
    pagination), rather than one cursor read with ``fetchmany`` for the whole run: the
    same connection writes the outcomes meanwhile, and SQLite does not define what a
    pending SELECT sees of rows changed under it. So memory stays at one page, each row
    is read once, and no read holds a lock across the commits.
    """
    last = 0
    while True:
        rows = conn.execute(
            f"SELECT rowid, room_id, robot FROM {TABLE}"
            " WHERE status != 'done' AND rowid > ? ORDER BY rowid LIMIT ?",
            (last, page),
        ).fetchmany(page)
        if not rows:
            return
        yield from rows
        last = rows[-1][0]


def table_counts(conn: sqlite3.Connection) -> Counter[str]:
    return Counter(dict(conn.execute(f"SELECT status, count(*) FROM {TABLE} GROUP BY status")))


class Outcomes:
    """Each row's outcome, written back ``commit_every`` at a time (one transaction)."""

    def __init__(self, conn: sqlite3.Connection, commit_every: int) -> None:
        self.conn = conn
        self.commit_every = commit_every
        self.counts: Counter[str] = Counter()
        self._batch: list[tuple[str, str | None, float, int]] = []

    def record(self, rowid: int, status: str, error: str | None = None) -> None:
        self._batch.append((status, error, time.time(), rowid))
        self.counts[status] += 1
        if len(self._batch) >= self.commit_every:
            self.commit()

    def commit(self) -> None:
        if self._batch:
            self.conn.executemany(
                f"UPDATE {TABLE} SET status = ?, error = ?, updated_at = ? WHERE rowid = ?",
                self._batch,
            )
            self.conn.commit()
            self._batch.clear()


def _row_outcome(outcome: BulkOutcome[Any]) -> tuple[str, str | None]:
    """The row's ``(status, error)`` for one call's outcome."""
    error = outcome.error
    if error is None:
        return "done", None
    if isinstance(error, (BulkStoppedError, ClientClosedError)):
        # Not done: the next run does it (again, if it had reached Tencent: harmless).
        sent = "may have been sent" if error.request_sent else "not sent"
        return "pending", f"stopped ({sent})"
    return "failed", f"{type(error).__name__}: {error}"  # the SDK's texts hold no secret


# -- the run ------------------------------------------------------------------------------


@contextlib.contextmanager
def _signals_to(handler: Callable[[], object]) -> Iterator[None]:
    """SIGINT and SIGTERM call ``handler`` in the running loop (where the loop can take
    signals: not on Windows, where Ctrl-C cancels the run instead; its outcomes are
    still recorded)."""
    loop = asyncio.get_running_loop()
    taken: list[tuple[signal.Signals, Any]] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous = signal.getsignal(sig)
        try:
            loop.add_signal_handler(sig, handler)
        except (NotImplementedError, RuntimeError, ValueError):
            continue
        taken.append((sig, previous))
    try:
        yield
    finally:
        for sig, previous in taken:
            loop.remove_signal_handler(sig)
            if previous is not None:
                signal.signal(sig, previous)


async def provision(
    conn: sqlite3.Connection,
    chat: TencentChat,
    *,
    commit_every: int = COMMIT_EVERY,
    item_deadline: float = ITEM_DEADLINE,
    page: int = PAGE,
    log: Callable[[str], object] = print,
) -> bool:
    """Make the call of every row not done and record its outcome; whether it ran to
    the end (``False``: interrupted)."""
    outcomes = Outcomes(conn, commit_every)
    rows: dict[int, int] = {}  # a bulk item's index -> its rowid, while the call runs
    to_do = conn.execute(f"SELECT count(*) FROM {TABLE} WHERE status != 'done'").fetchone()[0]

    def calls() -> Iterator[Call[Any]]:
        index = 0
        for rowid, room_id, robot in not_done(conn, page):
            try:
                call = Call.add_robot_to_room(room_id, robot)
            except ValidationError as error:  # a bad id: this row fails, the run goes on
                outcomes.record(rowid, "failed", f"ValidationError: {error}")
                continue
            rows[index] = rowid
            index += 1
            yield call

    run = chat.bulk(calls(), total=to_do, deadline=item_deadline)
    interrupts = 0

    def interrupted() -> None:
        nonlocal interrupts
        interrupts += 1
        if interrupts == 1:
            log("stopping: the calls on the wire finish (Ctrl-C again to end them too)")
            run.stop()
        else:
            run.cancel()

    started = time.monotonic()
    log(f"{to_do} rows to do")
    with _signals_to(interrupted):
        try:
            async with run:  # on the way out: cancelled, and its workers waited for
                async for outcome in run:
                    outcomes.record(rows.pop(outcome.index), *_row_outcome(outcome))
                    handled = outcomes.counts.total()
                    if handled % 1000 == 0:
                        log(f"{handled}/{to_do} ({outcomes.counts['failed']} failed)")
        finally:
            # Left early (an error, a cancellation): the outcomes not iterated over.
            for outcome in run.undelivered:
                outcomes.record(rows.pop(outcome.index), *_row_outcome(outcome))
            outcomes.commit()
    took = time.monotonic() - started
    counts = outcomes.counts
    log(
        f"this run: {counts['done']} done, {counts['failed']} failed,"
        f" {counts['pending']} stopped, {to_do - counts.total()} not reached, in {took:.1f} s"
    )
    return interrupts == 0


def _fake_client(conn: sqlite3.Connection, rate: float) -> tuple[TencentChat, Any]:
    """A client of the embedded fake server, which has the table's rooms and robots."""
    from tencent_chat_robots.testing import FakeTencentChat

    fake = FakeTencentChat(error_rate=0.01)  # a few internal errors: retried by the SDK
    for (robot,) in conn.execute(f"SELECT DISTINCT robot FROM {TABLE}"):
        with contextlib.suppress(ValueError):  # not a valid robot id: its rows fail
            fake.create_robot(robot)
    for (room_id,) in conn.execute(f"SELECT DISTINCT room_id FROM {TABLE}"):
        fake.create_room(room_id)
    return fake.client(rate_limit=rate), fake


async def _main(args: argparse.Namespace, conn: sqlite3.Connection) -> int:
    if args.fake:
        chat, _ = _fake_client(conn, args.rate)
    else:
        # The app's settings come from TENCENT_CHAT_SDKAPPID, _SECRET_KEY, _ADMIN, ...
        chat = TencentChat(rate_limit=args.rate)
    async with chat:
        finished = await provision(
            conn, chat, commit_every=args.commit_every, item_deadline=args.item_deadline
        )
    counts = table_counts(conn)
    print(f"table: {counts['done']} done, {counts['failed']} failed, {counts['pending']} pending")
    if not finished:
        return EXIT_INTERRUPTED
    return 0 if counts["done"] == counts.total() else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", required=True, metavar="PATH", help="the SQLite database")
    parser.add_argument(
        "--create-demo-db",
        type=int,
        metavar="N",
        help=f"add N demo rows (rooms room-00001..., robot {DEMO_ROBOT}) to the table and exit",
    )
    parser.add_argument("--fake", action="store_true", help="run on the embedded fake server")
    parser.add_argument("--rate", type=float, default=DEFAULT_RATE_LIMIT, help="calls a second")
    parser.add_argument("--commit-every", type=int, default=COMMIT_EVERY, metavar="N")
    parser.add_argument("--item-deadline", type=float, default=ITEM_DEADLINE, metavar="S")
    args = parser.parse_args(argv)
    conn = open_db(args.db)
    try:
        if args.create_demo_db is not None:
            create_demo_db(conn, args.create_demo_db)
            print(f"{args.db}: {sum(table_counts(conn).values())} rows")
            return 0
        try:
            return asyncio.run(_main(args, conn))
        except ValidationError as error:  # a missing or malformed setting
            print(f"error: {error}", file=sys.stderr)
            return 2
    finally:
        conn.close()


if __name__ == "__main__":
    sys.exit(main())
