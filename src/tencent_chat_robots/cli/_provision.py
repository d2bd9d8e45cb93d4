"""``tencent-chat-robots provision PLAN``: create robots and place them, from a JSON or CSV file.

The plan is checked whole before the first call, so a typo costs nothing. Then two bulk
runs: the robots' creations, then their placements, streamed from the plan file (a
change to the file during the run stops it: reported, exit 2). Every item's outcome is
counted (and with ``--journal`` written down as it comes, for ``--resume``); the report
names the first few of each kind and counts the rest. SIGINT or SIGTERM stops a run in
good order: nothing new starts, calls already sent finish (a second signal cancels
them), and the report still comes.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import attrs
import click
from rich.console import Console
from rich.progress import Progress
from rich.text import Text

from .._bulk import BulkOutcome, BulkRun
from .._calls import Call
from .._client import TencentChat
from .._constants import MAX_ROBOTS_PER_APP
from .._exceptions import LimiterUnavailableError, ValidationError
from ._context import (
    ChatOptions,
    console,
    drive,
    error_console,
    exit_with,
    options_of,
    progress_bar,
    run,
)
from ._journal import Earlier, Fingerprint, Journal, JournalError, reason_of
from ._plan import Plan, PlanError, load_plan
from ._report import Report, print_json_report, print_report
from ._signals import Interrupted, command_signals, signals_to

__all__ = ["Report", "provision"]


def _calls(n: int) -> str:
    return f"{n} call" if n == 1 else f"{n} calls"


@attrs.define
class _Runner:
    """Feeds a plan's items to bulk runs; journals and counts their outcomes."""

    chat: TencentChat
    plan: Plan
    report: Report
    earlier: Earlier
    journal: Journal | None
    progress: Progress
    uncreated: set[str] = attrs.Factory(set)  # robots whose creation failed in this run
    _current: BulkRun | None = None
    _asking: asyncio.Future[list[str]] | None = None  # get_all_robots, before the run
    _index_of: dict[int, int] = attrs.Factory(dict)  # item of the bulk run -> plan index

    async def phase(self, title: str, items: Iterable[tuple[int, Call[Any]]], total: int) -> None:
        """Run ``items`` (plan index, call) in one bulk run."""
        self._index_of.clear()
        self._current = self.chat.bulk(self._feed(items), total=total)
        await drive(self._current, self.progress, title, self._on_outcome)

    async def robots_fit(self, robot_limit: int) -> bool:
        """Whether the app can hold the plan's robots (counted first with get_all_robots).

        If not, the report ends the run. A signal while it asks lets the answer come
        (and no call starts after it); a second one abandons it: False, either way.
        """
        asking = self._asking = asyncio.ensure_future(self.chat.get_all_robots())
        try:
            await asyncio.wait({asking})
        except BaseException:
            asking.cancel()
            raise
        finally:
            self._asking = None
        if asking.cancelled() or self.report.interrupted:
            return False
        existing = set(asking.result())  # the call's error, if it failed
        plan = self.plan
        new = [call for call in plan.creates if dict(call.arguments)["user_id"] not in existing]
        if len(existing) + len(new) <= robot_limit:
            return True
        self.report.end(
            "RobotLimitError",
            f"the plan creates {len(new)} new robots and the app has {len(existing)} already:"
            f" {len(existing) + len(new)}, over the {robot_limit} an app may have (the"
            " documented maximum is 20; --robot-limit N if Tencent raised it for the app)."
            " Nothing was sent.",
        )
        return False

    def _feed(self, items: Iterable[tuple[int, Call[Any]]]) -> Iterator[Call[Any]]:
        # The bulk run takes an item when a worker is free for it: the "started" line is
        # written then, before the call can go out. Items are taken one at a time, in
        # order, so the n-th item taken is the bulk run's index n.
        for position, (index, call) in enumerate(items):
            if self.journal is not None:
                try:
                    self.journal.started(index)
                except OSError as err:
                    self._journal_failed(err)
                    return  # not journaled, so not sent
            self._index_of[position] = index
            yield call

    def _on_outcome(self, outcome: BulkOutcome[Any]) -> None:
        index = self._index_of.pop(outcome.index)
        call: Call[Any] = outcome.call
        if self.journal is not None:
            try:
                self.journal.finished(index, call, outcome.error)
            except OSError as err:
                self._journal_failed(err)
        self.report.record(index, call, outcome.error)
        if outcome.error is not None and call.method == "create_robot":
            self.uncreated.add(dict(call.arguments)["user_id"])
        if isinstance(outcome.error, LimiterUnavailableError):
            # Every call after it would fail the same way, each a failure to redo.
            self.report.end(
                "LimiterUnavailableError",
                f"the shared rate limiter is unavailable ({outcome.error}): the run was"
                " stopped; carry it on once Redis answers again",
            )
            if self._current is not None:
                self._current.stop()

    def _journal_failed(self, err: OSError) -> None:
        """The journal cannot be written: stop the run (calls sent finish), report why."""
        assert self.journal is not None
        self.report.end(
            "JournalError",
            f"cannot write the journal {self.journal.path}: {reason_of(err)}; the run"
            " was stopped (the calls then in flight finished, and are not all in it: a"
            " --resume counts them as perhaps sent and sends them again)",
        )
        self.journal = None
        if self._current is not None:
            self._current.stop()

    def on_signal(self, sig: signal.Signals) -> None:
        """The first signal stops the run (and the next phase); the next cancels what is sent."""
        current, asking = self._current, self._asking
        in_flight = current.in_flight if current is not None else int(asking is not None)
        if self.report.interrupted:
            if current is not None:
                current.cancel()
            elif asking is not None:
                asking.cancel()
            message = f"{sig.name} again: cancelling {_calls(in_flight)} in flight"
        else:
            self.report.interrupted = sig.name
            if current is not None:
                current.stop()
            message = (
                f"{sig.name}: starting no new calls; waiting for {_calls(in_flight)} in flight"
                " (signal again to cancel them)"
            )
        error_console.print(message, style="yellow", soft_wrap=True)


def _creates(plan: Plan, earlier: Earlier) -> list[tuple[int, Call[Any]]]:
    return [(index, c) for index, c in enumerate(plan.creates) if not earlier.done[index]]


def _placements(
    plan: Plan,
    earlier: Earlier,
    added: dict[int, set[str]],
    uncreated: set[str],
    report: Report,
) -> Iterator[tuple[int, Call[Any]]]:
    """The placement items still to do, lazily: room adds, then a call per live group.

    ``added``: the robots each group's calls of earlier runs added. An item whose
    robots are all in ``uncreated`` is reported skipped, with no call; a group's call
    that goes leaves out its robots in ``uncreated``, each reported left out.
    """
    index = len(plan.creates)
    for room, robot in plan.room_placements():
        if not earlier.done[index]:
            if robot in uncreated:
                report.skip(index, f"room add {room} {robot}", [robot])
            else:
                yield index, _room_add(plan, room, robot)
        index += 1
    # One call per group with all its robots: robots per app are few (20 by default),
    # and each call counts against the endpoint's 200/s.
    for group, robots in plan.live_groups.items():
        if not earlier.done[index]:
            wanted = [robot for robot in robots if robot not in added.get(index, ())]
            ready = [robot for robot in wanted if robot not in uncreated]
            if ready:
                for robot in wanted:
                    if robot in uncreated:
                        report.leave_out(index, f"group add {group} {robot}", robot)
                yield index, Call.add_robots_to_live_group(group, ready)
            else:
                report.skip(index, f"group add {group} {' '.join(wanted)}", wanted)
        index += 1


def _room_add(plan: Plan, room: str, robot: str) -> Call[Any]:
    """The call of a room placement read in the second pass (checked in the first)."""
    try:
        return Call.add_robot_to_room(room, robot)
    except ValidationError as err:  # it was valid when the plan was checked
        raise plan.changed(f"room add {room} {robot}: {err}") from None


def _added_to_groups(plan: Plan, earlier: Earlier) -> dict[int, set[str]]:
    """The robots that earlier runs added to each live group, by the group's item index.

    A group's call leaves out the robots not created yet, so its item is done only once
    every robot of the group was in a call that succeeded. Settles ``earlier`` too: an
    item done in full is not counted unfinished (whatever start line came after). A
    success line that is not a call of its group for the group's robots is refused.
    """
    added: dict[int, set[str]] = {}
    first = plan.items - len(plan.live_groups)
    for index, (group, robots) in enumerate(plan.live_groups.items(), start=first):
        done: set[str] = set()
        for key in earlier.ok_keys.get(index, ()):
            try:
                call = Call.from_key(key)
                arguments = dict(call.arguments)
            except (ValidationError, TypeError, ValueError):
                call, arguments = None, {}
            named = set(arguments.get("robot_accounts", ()))
            if (
                call is None
                or call.method != "add_robots_to_live_group"
                or arguments.get("group_id") != group
                or not named.issubset(robots)
            ):
                raise earlier.refused(index, key, f"adds {', '.join(robots)} to live group {group}")
            done.update(named)
        added[index] = done
        earlier.done.set(index, done.issuperset(robots))
    earlier.unfinished.clear(earlier.done)
    return added


def _check_earlier(plan: Plan, earlier: Earlier) -> dict[int, set[str]]:
    """Refuse a journal whose success lines are not the plan's own items (before any call).

    Returns what :func:`_added_to_groups` gives (which refuses a group's line that is not
    its call).
    """
    added = _added_to_groups(plan, earlier)
    earlier.check(enumerate(call.key() for call in plan.creates))
    first = len(plan.creates)
    placements = enumerate(plan.room_placements(), start=first)
    earlier.check(
        (index, ["add_robot_to_room", room, robot]) for index, (room, robot) in placements
    )
    return added


async def _execute(
    chat: TencentChat,
    plan: Plan,
    earlier: Earlier,
    added: dict[int, set[str]],
    journal: Journal | None,
    report: Report,
    out: Console,
    robot_limit: int,
) -> None:
    report.succeeded_earlier = earlier.done.count()
    report.unfinished_earlier = earlier.unfinished.count()
    with progress_bar(out, 32) as progress:
        runner = _Runner(chat, plan, report, earlier, journal, progress)
        with signals_to(runner.on_signal):
            async with chat:
                creates = _creates(plan, earlier)
                if creates and not await runner.robots_fit(robot_limit):
                    return
                if creates:
                    await runner.phase("Creating robots", creates, len(creates))
                # Only a signal or a journal that cannot be written leaves a creation not
                # started or cancelled, and then no placement starts either.
                if report.interrupted or report.error:
                    return
                items = _placements(plan, earlier, added, runner.uncreated, report)
                await runner.phase("Adding to rooms and groups", items, _hint(plan, runner))


def _hint(plan: Plan, runner: _Runner) -> int:
    """The placement calls to make, for the progress bar (exact unless a group is skipped)."""
    done_creates = sum(runner.earlier.done[index] for index in range(len(plan.creates)))
    left = plan.items - len(plan.creates) - (runner.earlier.done.count() - done_creates)
    return left - sum(plan.rooms_per_robot.get(robot, 0) for robot in runner.uncreated)


@click.command(short_help="Create robots and place them, from a JSON or CSV plan.")
@click.argument(
    "plan_path", metavar="PLAN", type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option(
    "--journal",
    "journal_path",
    metavar="FILE",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write each item's outcome to FILE (new or empty) as it comes, for --resume.",
)
@click.option(
    "--resume",
    "resume_path",
    metavar="FILE",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Carry on the run FILE (its --journal) records: do what is not done, append to FILE.",
)
@click.option(
    "--robot-limit",
    default=MAX_ROBOTS_PER_APP,
    show_default=True,
    type=click.IntRange(min=1),
    help="Robots the app may have (documented: 20); a plan that would pass it is refused"
    " before any call.",
)
@click.pass_context
def provision(
    ctx: click.Context,
    plan_path: Path,
    journal_path: Path | None,
    resume_path: Path | None,
    robot_limit: int,
) -> None:
    """Create robots and add them to rooms and live groups, as PLAN says.

    PLAN is a .json or .csv file (with another extension, the content decides).

    \b
    CSV (only user_id is required; ids in a list cell separated by ";"):
      user_id,nick,face_url,self_signature,rooms,live_groups
      @RBT#001,Helper,,,room-1;room-2,@TGS#abc
      @RBT#001,,,,room-3,
      @RBT#002,,,,room-3,

    A robot may be on many rows: one placement per row suits a big plan. Its profile
    may be given on any of its rows, but not two different ways. A room listed twice
    for a robot on different rows costs one more call, nothing else.

    \b
    JSON (read whole: for small plans):
      {"robots": [{"user_id": "@RBT#001", "nick": "Helper",
                   "face_url": "https://...", "self_signature": "...",
                   "rooms": ["room-1"], "live_groups": ["@TGS#abc"]}]}

    The whole plan is checked first: a malformed plan exits 2 before any call. A CSV
    plan is then read again as the calls go, so memory does not grow with the rooms;
    the robots and the live groups' robot lists are kept in memory. Do not change the
    plan until the run ends: a change noticed stops the run, and the report of what
    was done is followed by the error (exit 2). Every robot is created, then added to
    its rooms (one call per room) and live groups (one call per group for all its
    robots). A robot whose creation failed is skipped there: its room placements are
    skipped, and it is left out of its groups' calls (a call none of whose robots was
    created is skipped). The report counts every item (robot creations, room
    placements, live-group calls) once: succeeded, failed, skipped, not started or
    cancelled (and succeeded earlier), adding up to the items; it counts the robots
    left out of live-group calls apart, lists the first 20 failures, skips (and robots
    left out) and cancellations (--json: all of them), and counts failures by error.
    A plan that would give the app more than --robot-limit robots is refused first.

    --journal FILE writes each item's outcome to FILE as it finishes (so a run killed
    outright loses at most the calls in flight); one run at a time holds FILE. --resume
    FILE carries on that run: what FILE records as done (each line checked against
    the plan first) is not done again, the rest is (failures too), FILE grows, and the
    report covers the plan across the runs, counting the calls an earlier run started
    and never finished (perhaps sent, so sent again).

    Ctrl-C (or SIGTERM) starts no new call and waits for those already sent; a second
    one cancels them. The report then also counts what was not started and lists
    what was cancelled (sent, so perhaps done).

    Exit codes: 0 all done; 1 failures, skips or robots left out; 2 bad usage, plan
    or journal (or the plan changed during the run, the journal could not be written,
    the robot limit); 130 interrupted.
    """
    options = options_of(ctx)
    report = Report(plan=plan_path)
    if options.json_output:
        report.keep_all()
    # From the start until the report is written, a signal never ends the command
    # without one: before the run it stops everything, during it see _Runner.on_signal.
    with command_signals():
        try:
            _provision(options, report, journal_path, resume_path, robot_limit)
        except Interrupted as interrupted:
            # Nothing was sent (report.reading says what was under way).
            report.interrupted = interrupted.signal.name
        if options.json_output:
            print_json_report(report)
        else:
            print_report(report)
        if report.error is not None:
            error_console.print(
                Text.assemble(("error:", "bold red"), " ", report.error[1]), soft_wrap=True
            )
    raise SystemExit(report.exit_code)


def _provision(
    options: ChatOptions,
    report: Report,
    journal_path: Path | None,
    resume_path: Path | None,
    robot_limit: int,
) -> None:
    """Check the plan, then run it; ``report`` is filled as it goes."""
    assert report.plan is not None
    if journal_path is not None and resume_path is not None:
        exit_with(
            "--journal and --resume do not go together: --resume FILE appends to FILE", code=2
        )
    report.reading = "the plan was read"
    try:
        plan = load_plan(report.plan)
    except PlanError as err:
        exit_with(str(err), code=2, error=err)
    for warning in plan.warnings:
        error_console.print(
            Text.assemble(("warning:", "bold yellow"), " ", warning), soft_wrap=True
        )
    report.warnings = plan.warnings
    chat = options.client()  # settings checked before a journal is started
    if resume_path is not None:
        report.reading = "the journal was read and checked against the plan"
    journal, earlier, added = _open_journal(plan, journal_path, resume_path)
    report.reading = None
    report.items, report.resumed = plan.items, resume_path is not None
    report.journal = None if journal is None else journal.path
    # With --json, stdout carries only the JSON document; progress goes to stderr.
    out = error_console if options.json_output else console
    try:
        run(_execute(chat, plan, earlier, added, journal, report, out, robot_limit))
    except PlanError as err:  # the plan file changed during the run
        # The calls made are reported (and journaled); the rest is not started.
        report.end("PlanError", str(err))
    finally:
        if journal is not None:
            journal.close()


def _open_journal(
    plan: Plan, journal_path: Path | None, resume_path: Path | None
) -> tuple[Journal | None, Earlier, dict[int, set[str]]]:
    """The journal to write to (``None``: none asked for), what it says was done, and the
    robots its runs added to each live group (see :func:`_added_to_groups`)."""
    try:
        if journal_path is None and resume_path is None:
            plan.check_unchanged()
            return None, Earlier.nothing(plan.items), {}
        # Read before the check: so it is of the plan that was checked, or the check fails.
        fingerprint = Fingerprint.of(plan.path)
        plan.check_unchanged()
        if journal_path is not None:
            journal = Journal.create(journal_path, fingerprint, plan.items)
            return journal, Earlier.nothing(plan.items), {}
        assert resume_path is not None
        first_group = plan.items - len(plan.live_groups)
        journal, earlier = Journal.resume(
            resume_path, fingerprint, plan.items, keys_from=first_group
        )
        try:
            added = _check_earlier(plan, earlier)
        except BaseException:
            journal.close()
            raise
        return journal, earlier, added
    except OSError as err:  # Fingerprint.of; the journal's own errors are JournalErrors
        exit_with(f"{plan.path}: cannot read the plan: {err}", code=2, error="PlanError")
    except (PlanError, JournalError) as err:
        exit_with(str(err), code=2, error=err)
