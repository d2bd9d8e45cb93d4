"""``tencent-chat-robots provision PLAN``: create robots and place them, from a JSON or CSV file.

A plan is parsed and checked whole before the first call, so a typo costs nothing;
during the run every call's outcome is kept and reported, none is dropped.
"""

from __future__ import annotations

import csv
import functools
import io
import json
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import anyio
import attrs
import click
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from .._client import TencentChat
from .._exceptions import TencentChatError, ValidationError
from .._models import CreateRobotRequest
from ._context import console, error_console, exit_with, options_of, print_json, run

__all__ = ["PlanError", "RobotPlan", "load_plan", "provision"]

PROFILE_FIELDS = ("nick", "face_url", "self_signature")
LIST_FIELDS = ("rooms", "live_groups")
FIELDS = ("user_id", *PROFILE_FIELDS, *LIST_FIELDS)


class PlanError(Exception):
    """The plan file is malformed; the message names the file and the place."""


@attrs.frozen
class RobotPlan:
    """One robot of a plan: its profile (already checked by the SDK) and where it goes."""

    request: CreateRobotRequest
    rooms: tuple[str, ...] = ()
    live_groups: tuple[str, ...] = ()

    @property
    def user_id(self) -> str:
        return self.request.user_id


# --- reading a plan ---------------------------------------------------------------------


def _id_list(value: Iterable[object], where: str) -> tuple[str, ...]:
    """Room or group ids: non-blank strings, duplicates dropped (adding twice is a no-op)."""
    ids: dict[str, None] = {}
    for index, item in enumerate(value):
        if not isinstance(item, str) or not item.strip():
            raise PlanError(f"{where}[{index}]: must be a non-empty string, got {item!r}")
        ids[item] = None
    return tuple(ids)


def _robot(fields: dict[str, Any], where: str) -> RobotPlan:
    """Build one robot from already-typed fields, with the SDK's rules for the profile."""
    if fields.get("user_id") is None:
        raise PlanError(f"{where}: user_id is required")
    profile = {name: fields.get(name) for name in PROFILE_FIELDS}
    try:
        request = CreateRobotRequest(fields["user_id"], **profile)
    except ValidationError as err:
        raise PlanError(f"{where}: {err}") from None
    return RobotPlan(
        request,
        rooms=_id_list(fields.get("rooms") or (), f"{where}.rooms"),
        live_groups=_id_list(fields.get("live_groups") or (), f"{where}.live_groups"),
    )


def _json_robot(entry: object, where: str) -> RobotPlan:
    if not isinstance(entry, dict):
        raise PlanError(f"{where}: must be an object, got {type(entry).__name__}")
    unknown = sorted(set(entry) - set(FIELDS))
    if unknown:
        raise PlanError(
            f"{where}: unknown field(s) {', '.join(unknown)}; known: {', '.join(FIELDS)}"
        )
    for name in LIST_FIELDS:
        value = entry.get(name)
        # A bare string would otherwise be walked character by character.
        if value is not None and not isinstance(value, list):
            raise PlanError(f"{where}.{name}: must be a list, got {type(value).__name__}")
    return _robot(entry, where)


def _parse_json(text: str) -> list[RobotPlan]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise PlanError(f"not valid JSON: {err}") from None
    if not isinstance(data, dict):
        raise PlanError(f'must be a JSON object {{"robots": [...]}}, got {type(data).__name__}')
    if "robots" not in data:
        raise PlanError('missing key "robots"')
    unknown = sorted(set(data) - {"robots"})
    if unknown:
        raise PlanError(f'unknown key(s) {", ".join(map(repr, unknown))}; only "robots" is known')
    entries = data["robots"]
    if not isinstance(entries, list):
        raise PlanError(f"robots: must be a list, got {type(entries).__name__}")
    return [_json_robot(entry, f"robots[{i}]") for i, entry in enumerate(entries)]


def _csv_rows(text: str) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, cells) per non-blank data row, after checking the header."""
    # strict: an unterminated quote is an error, not a robot named '@RBT#x,'.
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header = [name.strip() for name in next(reader, [])]
    if not header:
        raise PlanError("empty CSV: expected a header row")
    unknown = [name for name in header if name not in FIELDS]
    if unknown:
        raise PlanError(
            f"unknown column(s) {', '.join(map(repr, unknown))}; known: {', '.join(FIELDS)}"
        )
    if "user_id" not in header:
        raise PlanError("missing column 'user_id'")
    if len(set(header)) != len(header):
        raise PlanError("a column appears twice in the header")
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            raise PlanError(f"line {reader.line_num}: not valid CSV ({err})") from None
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) > len(header):
            raise PlanError(
                f"line {reader.line_num}: {len(cells)} cells, but the header has {len(header)}"
            )
        # Short rows leave the trailing optional columns empty, as spreadsheets write them.
        yield reader.line_num, dict(zip(header, cells, strict=False))


def _parse_csv(text: str) -> list[RobotPlan]:
    plans = []
    for line, cells in _csv_rows(text):
        fields: dict[str, Any] = {
            name: value.strip() or None for name, value in cells.items() if name not in LIST_FIELDS
        }
        for name in LIST_FIELDS:
            # Only ";" separates: an id may contain spaces.
            cell = cells.get(name, "")
            fields[name] = [item.strip() for item in cell.split(";") if item.strip()]
        plans.append(_robot(fields, f"line {line}"))
    return plans


def _looks_like_json(path: Path, text: str) -> bool:
    suffix = path.suffix.lower()
    if suffix in (".json", ".csv"):
        return suffix == ".json"
    return text.lstrip().startswith(("{", "["))


def _check_unique(plans: Sequence[RobotPlan]) -> None:
    seen: set[str] = set()
    for plan in plans:
        if plan.user_id in seen:
            raise PlanError(f"robot {plan.user_id} is listed twice")
        seen.add(plan.user_id)


def load_plan(path: Path) -> list[RobotPlan]:
    """Read and check a plan file; :class:`PlanError` says what is wrong and where."""
    try:
        # utf-8-sig: spreadsheets often save CSV with a byte-order mark.
        text = path.read_text(encoding="utf-8-sig")
        plans = _parse_json(text) if _looks_like_json(path, text) else _parse_csv(text)
        if not plans:
            raise PlanError("the plan lists no robots")
        _check_unique(plans)
    except PlanError as err:
        raise PlanError(f"{path}: {err}") from None
    except csv.Error as err:
        raise PlanError(f"{path}: not valid CSV: {err}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise PlanError(f"{path}: cannot read the plan: {err}") from None
    return plans


# --- running a plan ---------------------------------------------------------------------


@attrs.frozen
class Step:
    """One call of the plan; ``label`` names it in the report."""

    label: str
    call: Callable[[], Awaitable[object]]


@attrs.define
class Report:
    """Every step's outcome: succeeded, failed (with the error) or skipped (with why)."""

    succeeded: list[str] = attrs.Factory(list)
    failed: list[tuple[str, TencentChatError]] = attrs.Factory(list)
    skipped: list[tuple[str, str]] = attrs.Factory(list)

    def as_dict(self) -> dict[str, object]:
        return {
            "succeeded": len(self.succeeded),
            "failed": [
                {"item": item, "error": type(err).__name__, "message": str(err)}
                for item, err in self.failed
            ],
            "skipped": [{"item": item, "reason": reason} for item, reason in self.skipped],
        }


async def _run_steps(steps: Sequence[Step], report: Report, progress: Progress, title: str) -> None:
    """Run ``steps`` concurrently (the client paces them), recording each outcome."""
    if not steps:
        return
    task = progress.add_task(title, total=len(steps))
    errors: list[TencentChatError | None] = [None] * len(steps)

    async def one(index: int) -> None:
        try:
            await steps[index].call()
        except TencentChatError as err:  # kept for the report; other errors are bugs
            errors[index] = err
        progress.advance(task)

    async with anyio.create_task_group() as tg:
        for index in range(len(steps)):
            tg.start_soon(one, index)
    # Recorded in plan order, not completion order, so that reports of two runs compare.
    for step, error in zip(steps, errors, strict=True):
        if error is None:
            report.succeeded.append(step.label)
        else:
            report.failed.append((step.label, error))


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
    chat: TencentChat, plans: Sequence[RobotPlan], created: set[str], report: Report
) -> list[Step]:
    """Room adds (one per room and robot) and live group adds (one per group).

    Robots whose creation failed are left out and reported as skipped.
    """
    steps: list[Step] = []
    groups: dict[str, list[str]] = {}
    for plan in plans:
        robot = plan.user_id
        for room_id in plan.rooms:
            label = f"room add {room_id} {robot}"
            if robot in created:
                steps.append(Step(label, functools.partial(chat.add_robot_to_room, room_id, robot)))
            else:
                report.skipped.append((label, f"robot {robot} was not created"))
        for group_id in plan.live_groups:
            if robot in created:
                groups.setdefault(group_id, []).append(robot)
            else:
                label = f"group add {group_id} {robot}"
                report.skipped.append((label, f"robot {robot} was not created"))
    # One call per group with all its robots: robots per app are few (20 by default),
    # and each call counts against the endpoint's 200/s.
    for group_id, robots in groups.items():
        label = f"group add {group_id} {' '.join(robots)}"
        steps.append(
            Step(label, functools.partial(chat.add_robots_to_live_group, group_id, robots))
        )
    return steps


async def _execute(chat: TencentChat, plans: Sequence[RobotPlan], out: Console) -> Report:
    report = Report()
    with Progress(
        TextColumn("{task.description:<32}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=out,
    ) as progress:
        async with chat:
            creates = [_create_step(chat, plan.request) for plan in plans]
            await _run_steps(creates, report, progress, "Creating robots")
            done = set(report.succeeded)
            created = {p.user_id for p in plans if _create_label(p.user_id) in done}
            placements = _placement_steps(chat, plans, created, report)
            await _run_steps(placements, report, progress, "Adding to rooms and groups")
    return report


def _print_report(report: Report) -> None:
    counts = (
        f"{len(report.succeeded)} succeeded, {len(report.failed)} failed, "
        f"{len(report.skipped)} skipped"
    )
    style = "bold red" if report.failed or report.skipped else "bold green"
    console.print(f"[{style}]provision:[/] {counts}")
    if report.failed:
        console.print("failed:")
        for item, err in report.failed:
            console.print(
                f"  {escape(item)}: {type(err).__name__}: {escape(str(err))}", soft_wrap=True
            )
    if report.skipped:
        console.print("skipped:")
        for item, reason in report.skipped:
            console.print(f"  {escape(item)}: {escape(reason)}", soft_wrap=True)


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
    """
    options = options_of(ctx)
    try:
        plans = load_plan(plan_path)
    except PlanError as err:
        exit_with(str(err), code=2)
    chat = options.client()
    # With --json, stdout carries only the JSON document; progress goes to stderr.
    out = error_console if options.json_output else console
    report = run(_execute(chat, plans, out))
    if options.json_output:
        print_json(report.as_dict())
    else:
        _print_report(report)
    raise SystemExit(1 if report.failed or report.skipped else 0)
