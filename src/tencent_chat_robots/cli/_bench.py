"""``tencent-chat-robots bench``: a load benchmark of one endpoint through the SDK.

The calls are one ``chat.bulk`` run (the client's limiter paces them); the numbers come
from ``RunStats``: ``on_attempt`` per try (so retries count) and each call's outcome.
The report goes to the terminal, to a JSON file and, with matplotlib installed, to a PNG
plot next to it.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs
import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from .._bulk import BulkOutcome
from .._calls import METHODS, Call, Endpoint
from .._constants import DEFAULT_RATE_LIMIT, DOCUMENTED_RATE_LIMIT
from .._exceptions import ValidationError
from .._waiters import slots_for_bulk
from ..testing import FakeTencentChat
from ._context import (
    ChatOptions,
    console,
    drive,
    error_console,
    exit_with,
    options_of,
    print_json,
    progress_bar,
    run,
)
from ._plot import PlotUnavailable, plot_report
from ._stats import RunStats

__all__ = ["ENDPOINTS", "bench"]

# Short names (the vendor's command names, prefixed by the service for rooms and groups).
ENDPOINTS = {
    "create_robot": Endpoint.CREATE_ROBOT,
    "get_all_robots": Endpoint.GET_ALL_ROBOTS,
    "delete_robot": Endpoint.DELETE_ROBOT,
    "room_add_robot": Endpoint.ROOM_ADD_ROBOT,
    "room_delete_robot": Endpoint.ROOM_DELETE_ROBOT,
    "live_group_add_robots": Endpoint.LIVE_GROUP_ADD_ROBOTS,
    "live_group_del_robots": Endpoint.LIVE_GROUP_DEL_ROBOTS,
}
_ROOM_CALLS = ("room_add_robot", "room_delete_robot")
_GROUP_CALLS = ("live_group_add_robots", "live_group_del_robots")

# The fake's generated objects: every call valid, and distinct where the server keeps state.
_FAKE_ROBOTS = 20  # the documented maximum per app
_PER_ROOM = 10  # the documented maximum of robots in one room
_PER_GROUP_CALL = 4  # robots named by each live-group call

_INSTALL_HINT = "pip install 'tencent-chat-robots[bench]'"


@attrs.frozen
class Workload:
    """The objects the calls name (only those the endpoint takes); ``call(i)`` the i-th call."""

    short: str
    robots: tuple[str, ...] = ()
    rooms: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()

    def call(self, i: int) -> Call[Any]:
        """The endpoint's ``Call`` constructor with the i-th objects."""
        factory: Callable[..., Call[Any]] = getattr(Call, METHODS[ENDPOINTS[self.short]])
        if self.rooms:  # robots cycle fastest: consecutive calls fill a room, then the next
            room = self.rooms[(i // len(self.robots)) % len(self.rooms)]
            return factory(room, self.robots[i % len(self.robots)])
        if self.groups:  # every call names all the robots
            return factory(self.groups[i % len(self.groups)], self.robots)
        return factory(self.robots[i % len(self.robots)]) if self.robots else factory()

    def arrange(self, fake: FakeTencentChat) -> None:
        """Make every object exist on the fake (a delete finds what it deletes)."""
        for robot in self.robots if self.short != "create_robot" else ():
            fake.create_robot(robot)
        for room in self.rooms:
            fake.create_room(room)
            for robot in self.robots if self.short == "room_delete_robot" else ():
                fake.add_room_member(room, robot)
        for group in self.groups:
            fake.create_live_group(group)
            if self.short == "live_group_del_robots":
                fake.add_live_group_members(group, list(self.robots))


def _fake_workload(short: str, calls: int) -> Workload:
    robots = tuple(f"@RBT#bench{i:02d}" for i in range(_FAKE_ROBOTS))
    containers = math.ceil(calls / _PER_ROOM)
    if short in _ROOM_CALLS:
        rooms = tuple(f"bench-room-{k:05d}" for k in range(containers))
        return Workload(short, robots=robots[:_PER_ROOM], rooms=rooms)
    if short in _GROUP_CALLS:
        groups = tuple(f"@TGS#bench{k:05d}" for k in range(containers))
        return Workload(short, robots=robots[:_PER_GROUP_CALL], groups=groups)
    return Workload(short, robots=robots if short != "get_all_robots" else ())


def _given_workload(
    short: str, robots: Sequence[str], rooms: Sequence[str], groups: Sequence[str]
) -> Workload:
    """The objects named by --robot/--room/--group; a usage error if some are missing."""
    needed = {
        "--robot": short != "get_all_robots",
        "--room": short in _ROOM_CALLS,
        "--group": short in _GROUP_CALLS,
    }
    given = {"--robot": robots, "--room": rooms, "--group": groups}
    missing = [name for name, need in needed.items() if need and not given[name]]
    if missing:
        raise click.UsageError(
            f"--endpoint {short} needs {' and '.join(missing)}"
            " (naming existing objects on a real server)"
        )
    workload = Workload(
        short,
        robots=tuple(robots) if needed["--robot"] else (),
        rooms=tuple(rooms) if needed["--room"] else (),
        groups=tuple(groups) if needed["--group"] else (),
    )
    try:  # each named object in a call: a malformed id is refused before the run
        for i in range(len(workload.robots) * max(1, len(workload.rooms)) + len(workload.groups)):
            workload.call(i)
    except ValidationError as err:
        raise click.UsageError(str(err)) from None
    return workload


def _result_paths(out_dir: Path, short: str, started_at: datetime.datetime) -> tuple[Path, Path]:
    """``bench-<endpoint>-<timestamp>.json`` and ``.png``, never overwriting an earlier run."""
    stem = f"bench-{short}-{started_at:%Y%m%d-%H%M%S}"
    candidate, n = stem, 1
    while (out_dir / f"{candidate}.json").exists() or (out_dir / f"{candidate}.png").exists():
        n += 1
        candidate = f"{stem}-{n}"
    return out_dir / f"{candidate}.json", out_dir / f"{candidate}.png"


def _summary(report: dict[str, Any]) -> Table:
    latency, arrived = report["latency_ms"], report["max_per_second_arrived"]
    errors = ", ".join(f"{name} {n}" for name, n in report["errors"].items()) or "none"
    attempt_errors = ", ".join(f"{name} {n}" for name, n in report["attempt_errors"].items())
    table = Table.grid(padding=(0, 2))
    table.title = (
        f"bench {report['endpoint']}: {report['calls']} calls on {report['server']}"
        f" in {report['elapsed_seconds']:.2f} s"
    )
    table.title_justify = "left"
    table.add_column(style="bold")
    table.add_column()
    rows = {
        "throughput": f"{report['throughput_calls_per_second']:.1f} calls/s",
        "latency": f"p50 {latency['p50']:.1f} ms · p90 {latency['p90']:.1f} ms · "
        f"p99 {latency['p99']:.1f} ms (per attempt; max {latency['max']:.1f} ms)",
        "failed calls": f"{report['failed']} ({errors})" if report["failed"] else "0",
        "retries": f"{report['retries']}"
        + (f" (attempt errors: {attempt_errors})" if attempt_errors else ""),
        "max in 1 s": f"{report['max_per_second']} sent (client pace {report['rate_limit']:g}/s)"
        + (
            f", {arrived} arrived (server limit {DOCUMENTED_RATE_LIMIT}/s)"
            if arrived is not None
            else ""
        ),
        "workers": f"{report['concurrency']} (--concurrency)"
        if report["concurrency"]
        else f"up to {report['workers_max']} (sized by chat.bulk)",
    }
    for name, value in rows.items():
        table.add_row(name, value)
    return table


async def _run_bench(
    options: ChatOptions,
    workload: Workload,
    fake: FakeTencentChat | None,
    calls: int,
    concurrency: int | None,
    base_url: str | None,
) -> dict[str, Any]:
    """The calls as one bulk run, with a progress bar; the report."""
    endpoint = ENDPOINTS[workload.short]
    rate_limit = options.rate_limit or DEFAULT_RATE_LIMIT
    out: Console = error_console if options.json_output else console
    started_at = datetime.datetime.now().astimezone()
    stats = RunStats()
    # N workers, and as many requests on the wire: no worker waits for a slot. The
    # bulk run's calls may hold all of the client's slots but a reserve: it takes more.
    settings: dict[str, Any] = {"on_attempt": stats.record_attempt}
    if concurrency is not None:
        settings["max_in_flight"] = slots_for_bulk(concurrency)
    async with contextlib.AsyncExitStack() as stack:
        if fake is None:
            chat = options.client(**settings, **({"base_url": base_url} if base_url else {}))
            server = chat.base_url
            note = ("Benchmarking ", (server, "bold"), " (a real server: only your named objects)")
        else:
            url = await stack.enter_async_context(fake.serve())
            server = "the embedded fake server"
            note = ("Fake Tencent Chat server on ", (url, "bold"), f" (SDKAppID {fake.sdkappid})")
            keys = {"sdkappid": fake.sdkappid, "secret_key": fake.secret_key, "admin": fake.admin}
            chat = options.client(**settings, **keys, base_url=url)
        out.print(Text.assemble(*note), soft_wrap=True)
        bulk_run = chat.bulk(
            (workload.call(i) for i in range(calls)), concurrency=concurrency, total=calls
        )
        most = 0

        def on_outcome(outcome: BulkOutcome[Any]) -> None:
            nonlocal most
            most = max(most, bulk_run.workers)
            stats.record_outcome(outcome)

        async with chat:
            with progress_bar(out) as progress:
                began = time.monotonic()
                await drive(bulk_run, progress, f"{workload.short} ×{calls}", on_outcome)
                elapsed = time.monotonic() - began
        arrived = None if fake is None else fake.max_arrivals_in_window(endpoint)
    row = stats.of(endpoint).as_dict()
    return {
        **row,
        "endpoint": workload.short,
        "path": endpoint,
        "server": server,
        "started_at": started_at.isoformat(timespec="seconds"),
        "elapsed_seconds": round(elapsed, 3),
        "throughput_calls_per_second": round(row["calls"] / elapsed, 1) if elapsed > 0 else 0.0,
        "rate_limit": rate_limit,
        "documented_rate_limit": DOCUMENTED_RATE_LIMIT,
        "concurrency": concurrency,
        "workers_max": most,
        "max_per_second_arrived": arrived,
        "samples": stats.of(endpoint).samples(),
    }


def _write_results(report: dict[str, Any], out_dir: Path, out: Console) -> tuple[Path, Path | None]:
    """The JSON file, then the plot next to it (None without matplotlib: a hint instead)."""
    json_path, png_path = _result_paths(
        out_dir, report["endpoint"], datetime.datetime.fromisoformat(report["started_at"])
    )
    try:
        json_path.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    except OSError as err:
        exit_with(f"cannot write {json_path}: {err}")
    try:
        plot_report(png_path, report)
    except PlotUnavailable:
        out.print(f"No plot: matplotlib is not installed ({_INSTALL_HINT}).", soft_wrap=True)
        return json_path, None
    except OSError as err:
        exit_with(f"cannot write {png_path}: {err} (the report is in {json_path})")
    return json_path, png_path


@click.command()
@click.option(
    "--endpoint",
    "short",
    required=True,
    type=click.Choice(list(ENDPOINTS)),
    metavar="NAME",
    help="The endpoint to load (listed above).",
)
@click.option(
    "--calls", default=1000, show_default=True, type=click.IntRange(1, 100_000), help="N calls."
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 10_000),
    help="Calls in progress at once: the bulk run's workers (the client's max_in_flight"
    " lets them all be on the wire). Default: the pool chat.bulk sizes from the rate and"
    " latency.",
)
@click.option(
    "--base-url", help="A real server (or a proxy, a fake-server) to load; as the global option."
)
@click.option("--robot", "robots", multiple=True, help="Real server: an existing robot (repeat).")
@click.option("--room", "rooms", multiple=True, help="Real server: an existing room (repeat).")
@click.option(
    "--group", "groups", multiple=True, help="Real server: an existing live group (repeat)."
)
@click.option(
    "--out",
    "out_dir",
    default="bench-results",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for bench-<endpoint>-<timestamp>.json and .png.",
)
@click.pass_context
def bench(
    ctx: click.Context,
    short: str,
    calls: int,
    concurrency: int | None,
    base_url: str | None,
    robots: tuple[str, ...],
    rooms: tuple[str, ...],
    groups: tuple[str, ...],
    out_dir: Path,
) -> None:
    """Load one endpoint with N calls in one bulk run, and report how it went.

    \b
    Endpoints: create_robot, get_all_robots, delete_robot, room_add_robot,
    room_delete_robot, live_group_add_robots, live_group_del_robots.

    By default the calls go to an embedded fake server on loopback, which first gets
    valid objects for every call (20 robots; rooms of 10 robots; live groups with 4
    robots named per call). With --base-url or credentials (global options or
    TENCENT_CHAT_* variables) the calls go to that server instead and name the
    objects you give: --robot for every endpoint but get_all_robots (robots cycle,
    live-group calls name them all), --room for room_*, --group for live_group_*.
    They must already exist. Against a real server only repeatable calls make sense:
    get_all_robots, create_robot of an existing robot, room_add_robot of a member,
    live_group_add_robots; the delete endpoints really delete (room_delete_robot
    fails after the first call). --robot/--room/--group also work on the fake, to
    rehearse.

    Pace: the global --rate-limit (default 190/s); the documented limit is 200/s.
    Reports throughput, latency p50/p90/p99 per attempt, errors by class, retries, the
    workers of the run and the most requests started in any sliding second; writes a
    JSON file and a PNG plot (needs matplotlib: the [bench] extra) to --out. Exit code
    0 when every call succeeded, 1 otherwise.
    """
    options = options_of(ctx)
    # Find out now, not after the run, that the results cannot be written.
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        exit_with(f"cannot create {out_dir}: {err}", code=2)
    if not os.access(out_dir, os.W_OK):
        exit_with(f"cannot write to {out_dir}", code=2)
    fake: FakeTencentChat | None = None
    if base_url or options.base_url or options.sdkappid or options.secret_key:
        workload = _given_workload(short, robots, rooms, groups)
    else:
        fake = FakeTencentChat()
        named = robots or rooms or groups
        workload = (
            _given_workload(short, robots, rooms, groups) if named else _fake_workload(short, calls)
        )
        try:
            workload.arrange(fake)
        except ValueError as err:
            raise click.UsageError(f"the fake server refuses the named objects: {err}") from None
    report = run(_run_bench(options, workload, fake, calls, concurrency, base_url))
    json_path, png_path = _write_results(
        report, out_dir, error_console if options.json_output else console
    )
    if options.json_output:
        summary = {key: value for key, value in report.items() if key != "samples"}
        print_json(
            {**summary, "json_file": str(json_path), "plot_file": png_path and str(png_path)}
        )
    else:
        console.print(_summary(report))
        console.print(
            f"Wrote {json_path}" + (f" and {png_path}" if png_path else ""),
            soft_wrap=True,
        )
    raise SystemExit(0 if report["failed"] == 0 else 1)
