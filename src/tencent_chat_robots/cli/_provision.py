"""``tencent-chat-robots provision PLAN``: create robots and place them, from a JSON or CSV file.

A plan is parsed and checked whole before the first call, so a typo costs nothing;
during the run every call's outcome is kept and reported, none is dropped. SIGINT or
SIGTERM stops a run in good order: nothing new starts, calls already sent finish (a
second signal cancels them), and the report still comes, naming what was not started.
"""

from __future__ import annotations

import functools
import signal
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import attrs
import click
from rich.console import Console
from rich.progress import Progress
from rich.text import Text

from .._client import TencentChat
from .._constants import DEFAULT_RATE_LIMIT
from .._exceptions import TencentChatError
from .._models import CreateRobotRequest
from ._context import (
    ChatOptions,
    console,
    error_console,
    exit_with,
    options_of,
    print_json,
    progress_bar,
    run,
)
from ._plan import PlanError, RobotPlan, load_plan
from ._signals import Interrupted, command_signals, signals_to
from ._steps import Outcome, Result, StepRunner

__all__ = ["Report", "provision"]

# The exit code after a stopping signal, SIGTERM too: the shell's for Ctrl-C (128 + SIGINT).
INTERRUPTED = 130


@attrs.frozen
class Step:
    """One call of the plan; ``label`` names it in the report."""

    label: str
    call: Callable[[], Awaitable[object]]


@attrs.define
class Report:
    """Every step's outcome: succeeded, failed (with the error), skipped (with why),
    not started or cancelled (after a signal, which ``interrupted`` names)."""

    succeeded: list[str] = attrs.Factory(list)
    failed: list[tuple[str, TencentChatError]] = attrs.Factory(list)
    skipped: list[tuple[str, str]] = attrs.Factory(list)
    not_started: list[str] = attrs.Factory(list)
    cancelled: list[str] = attrs.Factory(list)
    interrupted: str | None = None

    def record(self, steps: Sequence[Step], results: Sequence[Result]) -> None:
        """Add a batch's results in plan order, not completion order, so that reports compare."""
        for step, result in zip(steps, results, strict=True):
            if result is Outcome.SUCCEEDED:
                self.succeeded.append(step.label)
            elif result is Outcome.NOT_STARTED:
                self.not_started.append(step.label)
            elif result is Outcome.CANCELLED:
                self.cancelled.append(step.label)
            else:
                self.failed.append((step.label, result))

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return INTERRUPTED
        return 1 if self.failed or self.skipped else 0

    def as_dict(self) -> dict[str, object]:
        return {
            "succeeded": len(self.succeeded),
            "failed": [
                {"item": item, "error": type(err).__name__, "message": str(err)}
                for item, err in self.failed
            ],
            "skipped": [{"item": item, "reason": reason} for item, reason in self.skipped],
            "not_started": [{"item": item} for item in self.not_started],
            "cancelled": [{"item": item} for item in self.cancelled],
            "interrupted": self.interrupted,
        }


async def _run_steps(
    runner: StepRunner, steps: Sequence[Step], report: Report, progress: Progress, title: str
) -> None:
    """Run ``steps`` concurrently (the client paces them), recording each outcome."""
    if not steps:
        return
    task = progress.add_task(title, total=len(steps))
    results = await runner.run([step.call for step in steps], lambda: progress.advance(task))
    report.record(steps, results)


def _create_label(user_id: str) -> str:
    return f"create {user_id}"


def _create_step(chat: TencentChat, request: CreateRobotRequest) -> Step:
    call = functools.partial(
        chat.create_robot,
        request.user_id,
        nick=request.nick,
        face_url=request.face_url,
        self_signature=request.self_signature,
    )
    return Step(_create_label(request.user_id), call)


def _placement_steps(
    chat: TencentChat, plans: Sequence[RobotPlan], uncreated: set[str], report: Report
) -> list[Step]:
    """Room adds (one per room and robot) and live group adds (one per group).

    Robots in ``uncreated`` (their creation failed) are left out and reported as skipped.
    """
    steps: list[Step] = []
    groups: dict[str, list[str]] = {}
    for plan in plans:
        robot = plan.user_id
        for room_id in plan.rooms:
            label = f"room add {room_id} {robot}"
            if robot in uncreated:
                report.skipped.append((label, f"robot {robot} was not created"))
            else:
                steps.append(Step(label, functools.partial(chat.add_robot_to_room, room_id, robot)))
        for group_id in plan.live_groups:
            if robot in uncreated:
                label = f"group add {group_id} {robot}"
                report.skipped.append((label, f"robot {robot} was not created"))
            else:
                groups.setdefault(group_id, []).append(robot)
    # One call per group with all its robots: robots per app are few (20 by default),
    # and each call counts against the endpoint's 200/s.
    for group_id, robots in groups.items():
        label = f"group add {group_id} {' '.join(robots)}"
        steps.append(
            Step(label, functools.partial(chat.add_robots_to_live_group, group_id, robots))
        )
    return steps


def _calls(n: int) -> str:
    return f"{n} call" if n == 1 else f"{n} calls"


def _stopper(runner: StepRunner, report: Report) -> Callable[[signal.Signals], None]:
    """The signal handler of a run: the first signal stops it, the next cancel what is sent."""

    def on_signal(sig: signal.Signals) -> None:
        in_flight = runner.in_flight
        if runner.stopped:
            runner.cancel()
            message = f"{sig.name} again: cancelling {_calls(in_flight)} in flight"
        else:
            report.interrupted = sig.name
            runner.stop()
            message = (
                f"{sig.name}: starting no new calls; waiting for {_calls(in_flight)} in flight"
                " (signal again to cancel them)"
            )
        error_console.print(message, style="yellow", soft_wrap=True)

    return on_signal


async def _execute(
    chat: TencentChat, runner: StepRunner, plans: Sequence[RobotPlan], out: Console
) -> Report:
    report = Report()
    with signals_to(_stopper(runner, report)), progress_bar(out, 32) as progress:
        async with chat:
            creates = [_create_step(chat, plan.request) for plan in plans]
            await _run_steps(runner, creates, report, progress, "Creating robots")
            failed = {label for label, _ in report.failed}
            uncreated = {p.user_id for p in plans if _create_label(p.user_id) in failed}
            # Only a signal leaves a creation not started or cancelled, and then no
            # placement starts either: those robots' placements are reported not started.
            placements = _placement_steps(chat, plans, uncreated, report)
            await _run_steps(runner, placements, report, progress, "Adding to rooms and groups")
    return report


def _print_report(report: Report) -> None:
    counts = (
        f"{len(report.succeeded)} succeeded, {len(report.failed)} failed, "
        f"{len(report.skipped)} skipped"
    )
    if report.interrupted:
        counts = (
            f"interrupted by {report.interrupted}: {counts}, "
            f"{len(report.not_started)} not started, {len(report.cancelled)} cancelled"
        )
    style = "bold green" if report.exit_code == 0 else "bold red"
    console.print(Text.assemble(("provision:", style), " ", counts), soft_wrap=True)
    sections = (
        ("failed:", [f"{item}: {type(err).__name__}: {err}" for item, err in report.failed]),
        ("skipped:", [f"{item}: {reason}" for item, reason in report.skipped]),
        ("not started:", report.not_started),
        ("cancelled (sent, so perhaps done):", report.cancelled),
    )
    for heading, lines in sections:
        if lines:
            console.print(heading)
            for line in lines:
                console.print(f"  {line}", soft_wrap=True)


@click.command(short_help="Create robots and place them, from a JSON or CSV plan.")
@click.argument(
    "plan_path", metavar="PLAN", type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.pass_context
def provision(ctx: click.Context, plan_path: Path) -> None:
    """Create robots and add them to rooms and live groups, as PLAN says.

    PLAN is a .json or .csv file (with another extension, the content decides).

    \b
    JSON:
      {"robots": [{"user_id": "@RBT#001", "nick": "Helper",
                   "face_url": "https://...", "self_signature": "...",
                   "rooms": ["room-1"], "live_groups": ["@TGS#abc"]}]}

    \b
    CSV (only user_id is required; ids in a list cell separated by ";"):
      user_id,nick,face_url,self_signature,rooms,live_groups
      @RBT#001,Helper,,,room-1;room-2,@TGS#abc

    The whole plan is checked first: a malformed plan exits 2 before any call.
    Then every robot is created, and each is added to its rooms (one call per room)
    and live groups (one call per group for all its robots); a robot whose creation
    failed is skipped there. Failed and skipped items are listed at the end, and the
    exit code is 1 if there are any.

    Ctrl-C (or SIGTERM) starts no new call and waits for those already sent; a second
    one cancels them. The report then also lists what was not started (and what was
    cancelled: sent, so perhaps done), and the exit code is 130.
    """
    options = options_of(ctx)
    # From the start until the report is written, a signal never ends the command
    # without one: before the run it stops everything, during it see _stopper.
    with command_signals():
        try:
            report = _provision(options, plan_path)
        except Interrupted as interrupted:
            report = Report()  # nothing was sent
            report.interrupted = interrupted.signal.name
        if options.json_output:
            print_json(report.as_dict())
        else:
            _print_report(report)
    raise SystemExit(report.exit_code)


def _provision(options: ChatOptions, plan_path: Path) -> Report:
    try:
        plans = load_plan(plan_path)
    except PlanError as err:
        exit_with(str(err), code=2)
    runner = StepRunner(options.rate_limit or DEFAULT_RATE_LIMIT)
    chat = options.client(limiter=runner.limiter)
    # With --json, stdout carries only the JSON document; progress goes to stderr.
    out = error_console if options.json_output else console
    return run(_execute(chat, runner, plans, out))
