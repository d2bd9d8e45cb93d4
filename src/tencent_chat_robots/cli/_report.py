"""The report of a ``provision`` run: every item of the plan counted, the first few named."""

from __future__ import annotations

import heapq
import itertools
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Generic, TypeVar

import attrs
from rich.text import Text

from .._calls import Call
from .._exceptions import BulkStoppedError, TencentChatError
from ._context import console

__all__ = ["INTERRUPTED", "Report", "label", "print_report"]

T = TypeVar("T")

# The exit code after a stopping signal, SIGTERM too: the shell's for Ctrl-C (128 + SIGINT).
INTERRUPTED = 130
FIRST = 20  # failures, skips, cancellations named in the report; the rest only counted


def label(call: Call[Any]) -> str:
    """How the report names an item."""
    arguments = dict(call.arguments)
    if call.method == "create_robot":
        return f"create {arguments['user_id']}"
    if call.method == "add_robot_to_room":
        return f"room add {arguments['room_id']} {arguments['robot_account']}"
    return f"group add {arguments['group_id']} {' '.join(arguments['robot_accounts'])}"


class First(Generic[T]):
    """The first ``FIRST`` entries in plan order, in whatever order they come: a bounded heap."""

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, T]] = []  # (-index, -arrival, entry): a max-heap
        self._arrivals = itertools.count()

    def add(self, index: int, entry: T) -> None:
        heapq.heappush(self._heap, (-index, -next(self._arrivals), entry))
        if len(self._heap) > FIRST:
            heapq.heappop(self._heap)  # the latest in plan order

    def __iter__(self) -> Iterator[T]:
        return (entry for _, _, entry in sorted(self._heap, reverse=True))


@attrs.define
class Report:
    """The whole plan's items, counted; the first ``FIRST`` of each kind by name.

    Items are the robots' creations, the room placements and the live-group calls.
    Each item is in exactly one count: ``succeeded_earlier``, ``succeeded``,
    ``failed``, ``skipped``, ``cancelled`` or ``not_started``, which add up to
    ``items``. ``skipped`` counts the items no call was made for because their robots
    were not created: a room placement, or a live group's call when none of the robots
    it still had to add was created. A live group's call that goes for its other
    robots is an item like any other; the robots it leaves out are counted apart, in
    ``left_out``, and named among the skips. ``not_started`` is whatever no other
    count holds, after a signal or a changed plan.
    """

    items: int = 0
    succeeded_earlier: int = 0  # by the runs a resumed journal records
    unfinished_earlier: int = 0  # started by them, never finished: perhaps sent
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0  # sent, then cancelled by a second signal: perhaps done
    skipped: int = 0  # items: no call made, their robots not created
    left_out: int = 0  # robots left out of live-group calls that went for others
    errors: Counter[str] = attrs.Factory(Counter)
    failures: First[tuple[str, TencentChatError]] = attrs.Factory(First)
    skips: First[tuple[str, str]] = attrs.Factory(First)
    cancellations: First[str] = attrs.Factory(First)
    interrupted: str | None = None
    error: str | None = None  # what ended the run early, exit code 2 (a changed plan)
    journal: Path | None = None
    resumed: bool = False

    @property
    def not_started(self) -> int:
        return (
            self.items
            - self.succeeded_earlier
            - self.succeeded
            - self.failed
            - self.cancelled
            - self.skipped
        )

    def record(self, index: int, call: Call[Any], error: TencentChatError | None) -> None:
        if error is None:
            self.succeeded += 1
        elif isinstance(error, BulkStoppedError):
            if error.request_sent:
                self.cancelled += 1
                self.cancellations.add(index, label(call))
            # else stopped before it was sent: counted as not started
        else:
            self.failed += 1
            self.errors[type(error).__name__] += 1
            self.failures.add(index, (label(call), error))

    def skip(self, index: int, item: str, robots: list[str]) -> None:
        """Item ``index`` is skipped whole, with no call: ``robots`` were not created."""
        self.skipped += 1
        if len(robots) == 1:
            reason = f"robot {robots[0]} was not created"
        else:
            reason = f"robots {', '.join(robots)} were not created"
        self.skips.add(index, (item, reason))

    def leave_out(self, index: int, item: str, robot: str) -> None:
        """``robot`` is left out of item ``index``, a live group's call that still goes."""
        self.left_out += 1
        reason = f"robot {robot} was not created; left out of the group's call"
        self.skips.add(index, (item, reason))

    @property
    def exit_code(self) -> int:
        if self.error is not None:
            return 2
        if self.interrupted:
            return INTERRUPTED
        return 1 if self.failed or self.skipped or self.left_out or self.not_started else 0

    def as_dict(self) -> dict[str, object]:
        return {
            "items": self.items,
            "succeeded_earlier": self.succeeded_earlier,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "skipped": self.skipped,
            "not_started": self.not_started,
            "cancelled": self.cancelled,
            "left_out": self.left_out,
            "unfinished_earlier": self.unfinished_earlier,
            "errors": dict(self.errors.most_common()),
            "failures": [_failure(item, error) for item, error in self.failures],
            "skips": [{"item": item, "reason": reason} for item, reason in self.skips],
            "cancellations": [{"item": item} for item in self.cancellations],
            "interrupted": self.interrupted,
            "error": self.error,
            "journal": None if self.journal is None else str(self.journal),
        }


def _failure(item: str, error: TencentChatError) -> dict[str, object]:
    entry: dict[str, object] = {"item": item, "error": type(error).__name__}
    code = getattr(error, "code", None)
    if code is not None:
        entry["code"] = code
    entry["message"] = str(error)
    return entry


def _print_section(heading: str, lines: list[str], count: int, more: str) -> None:
    if not count:
        return
    console.print(heading, soft_wrap=True)
    for line in lines:
        console.print(f"  {line}", soft_wrap=True)
    if count > len(lines):
        console.print(f"  and {count - len(lines)} more{more}", soft_wrap=True)


def print_report(report: Report) -> None:
    counts = f"{report.succeeded} succeeded, {report.failed} failed, {report.skipped} skipped"
    if report.resumed:
        counts = f"{report.succeeded_earlier} succeeded earlier, {counts}"
    if report.interrupted:
        counts = (
            f"interrupted by {report.interrupted}: {counts}, "
            f"{report.not_started} not started, {report.cancelled} cancelled"
        )
    elif report.not_started:
        counts = f"{counts}, {report.not_started} not started"
    counts = f"{counts} ({report.items} items)"  # the counts before add up to it
    style = "bold green" if report.exit_code == 0 else "bold red"
    console.print(Text.assemble(("provision:", style), " ", counts), soft_wrap=True)
    if report.left_out:
        console.print(
            f"robots left out of live-group calls (not created): {report.left_out}",
            soft_wrap=True,
        )
    if report.unfinished_earlier:
        console.print(
            f"started in an earlier run but never finished: {report.unfinished_earlier}"
            " (perhaps sent; re-sent now)",
            soft_wrap=True,
        )
    if report.journal is not None:
        in_journal = f"; the journal {report.journal} has them all"
    else:
        in_journal = " (--journal FILE keeps them all)"
    by_error = ", ".join(f"{name} {n}" for name, n in report.errors.most_common())
    _print_section(
        f"failed ({by_error}):",
        [f"{item}: {type(err).__name__}: {err}" for item, err in report.failures],
        report.failed,
        in_journal,
    )
    _print_section(
        "skipped, and left out of live-group calls:" if report.left_out else "skipped:",
        [f"{item}: {reason}" for item, reason in report.skips],
        report.skipped + report.left_out,  # an entry each
        "",
    )
    _print_section(
        "cancelled (sent, so perhaps done):",
        list(report.cancellations),
        report.cancelled,
        in_journal,
    )
