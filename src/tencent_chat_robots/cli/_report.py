"""The report of a ``provision`` run: every item of the plan counted, the first few named.

With ``--json`` every failure, skip and cancellation is listed: they are kept in a
temporary file as they come (memory does not grow with them) and streamed into the
one JSON object at the end.
"""

from __future__ import annotations

import heapq
import itertools
import json
import shlex
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any, Generic, TypeVar

import attrs
from rich.text import Text

from .._calls import Call
from .._exceptions import BulkStoppedError, TencentChatError
from ._context import console
from ._journal import reason_of

__all__ = ["INTERRUPTED", "Report", "label", "print_json_report", "print_report"]

T = TypeVar("T")

# The exit code after a stopping signal, SIGTERM too: the shell's for Ctrl-C (128 + SIGINT).
INTERRUPTED = 130
FIRST = 20  # failures, skips, cancellations named in the text report; the rest counted
LISTS = ("failures", "skips", "cancellations")


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
        return (entry for _, entry in self.indexed())

    def indexed(self) -> Iterator[tuple[int, T]]:
        """``(index, entry)``, in plan order."""
        return ((-index, entry) for index, _, entry in sorted(self._heap, reverse=True))


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
    # What ended the run early, exit code 2: (its class, its message).
    error: tuple[str, str] | None = None
    journal: Path | None = None
    plan: Path | None = None
    resumed: bool = False
    # What was under way before any call ("the plan was read"): an interruption then
    # leaves nothing sent and no item counted (None: the plan's items are counted).
    reading: str | None = None
    warnings: tuple[str, ...] = ()
    # With --json: every listed entry, a JSON line each ([list name, entry]).
    _all: IO[bytes] | None = None

    def keep_all(self) -> None:
        """List every failure, skip and cancellation (for --json), not only the first few."""
        self._all = tempfile.TemporaryFile()  # noqa: SIM115 - kept until the report is out

    def end(self, kind: str, message: str) -> None:
        """The run ends early for ``message`` (an error of class ``kind``): exit code 2."""
        if self.error is None:
            self.error = (kind, message)

    def _list(self, name: str, index: int, entry: dict[str, object]) -> None:
        if self._all is not None:
            line = json.dumps([name, {"index": index, **entry}], ensure_ascii=False)
            try:
                self._all.write(line.encode("utf-8", "backslashreplace") + b"\n")
            except OSError as err:  # a full temporary disk: the first few still listed
                self._all.close()
                self._all = None
                self.warnings = (
                    *self.warnings,
                    f"the lists name only the first {FIRST} of each kind: the full lists"
                    f" could not be kept ({reason_of(err)})",
                )

    def listed(self, name: str) -> Iterator[Mapping[str, object]]:
        """Every entry of list ``name`` (as they came), or the first few in plan order."""
        if self._all is None:
            yield from _first(self, name)
            return
        self._all.seek(0)
        for line in self._all:
            kind, entry = json.loads(line)
            if kind == name:
                yield entry

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
                self._list("cancellations", index, {"item": label(call)})
            # else stopped before it was sent: counted as not started
        else:
            self.failed += 1
            self.errors[type(error).__name__] += 1
            self.failures.add(index, (label(call), error))
            self._list("failures", index, _failure(label(call), error))

    def skip(self, index: int, item: str, robots: list[str]) -> None:
        """Item ``index`` is skipped whole, with no call: ``robots`` were not created."""
        self.skipped += 1
        if len(robots) == 1:
            reason = f"robot {robots[0]} was not created"
        else:
            reason = f"robots {', '.join(robots)} were not created"
        self.skips.add(index, (item, reason))
        self._list("skips", index, {"item": item, "reason": reason})

    def leave_out(self, index: int, item: str, robot: str) -> None:
        """``robot`` is left out of item ``index``, a live group's call that still goes."""
        self.left_out += 1
        reason = f"robot {robot} was not created; left out of the group's call"
        self.skips.add(index, (item, reason))
        self._list("skips", index, {"item": item, "reason": reason})

    @property
    def exit_code(self) -> int:
        if self.error is not None:
            return 2
        if self.interrupted:
            return INTERRUPTED
        return 1 if self.failed or self.skipped or self.left_out or self.not_started else 0

    def as_dict(self) -> dict[str, object]:
        """The counts and facts of the JSON report (its lists: :meth:`listed`)."""
        code = self.exit_code
        error = None
        if self.error is not None:
            error = {"class": self.error[0], "code": None, "message": self.error[1]}
        return {
            "ok": code == 0,
            "exit_code": code,
            "items": None if self.reading else self.items,
            "succeeded_earlier": self.succeeded_earlier,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "skipped": self.skipped,
            "not_started": None if self.reading else self.not_started,
            "cancelled": self.cancelled,
            "left_out": self.left_out,
            "unfinished_earlier": self.unfinished_earlier,
            "errors": dict(self.errors.most_common()),
            "interrupted": self.interrupted,
            "error": error,
            "journal": None if self.journal is None else str(self.journal),
            "warnings": list(self.warnings),
        }


def _first(report: Report, name: str) -> Iterator[Mapping[str, object]]:
    """The first few entries of list ``name``, in the shape :meth:`Report.listed` gives."""
    if name == "failures":
        for index, (item, error) in report.failures.indexed():
            yield {"index": index, **_failure(item, error)}
    elif name == "skips":
        for index, (item, reason) in report.skips.indexed():
            yield {"index": index, "item": item, "reason": reason}
    else:
        for index, item in report.cancellations.indexed():
            yield {"index": index, "item": item}


def print_json_report(report: Report) -> None:
    """The report as one JSON object on stdout, its lists streamed from where they are kept."""
    out = sys.stdout
    out.write("{")
    for key, value in report.as_dict().items():
        out.write(f"\n  {json.dumps(key)}: {json.dumps(value, ensure_ascii=False)},")
    for n, name in enumerate(LISTS):
        out.write(f"\n  {json.dumps(name)}: [")
        separator = "\n    "
        for entry in report.listed(name):
            out.write(separator + json.dumps(entry, ensure_ascii=False))
            separator = ",\n    "
        out.write("\n  ]" if separator != "\n    " else "]")
        out.write("," if n < len(LISTS) - 1 else "\n}\n")
    out.flush()


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
    if report.reading:
        console.print(
            Text.assemble(
                ("provision:", "bold red"),
                f" interrupted by {report.interrupted} while {report.reading}: nothing sent",
            ),
            soft_wrap=True,
        )
        return
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
    if report.exit_code != 0 and report.plan is not None:
        console.print(_how_to_carry_on(report.plan, report.journal), soft_wrap=True)


def _how_to_carry_on(plan: Path, journal: Path | None) -> str:
    if journal is None:
        return (
            "To carry on, run it again (every item is sent again: those already done"
            " succeed again); with --journal FILE a later run can resume instead."
        )
    return (
        f"To carry on (what is done is not sent again): tencent-chat-robots provision"
        f" {_quoted(plan)} --resume {_quoted(journal)}"
    )


def _quoted(path: Path) -> str:
    return shlex.quote(str(path))
