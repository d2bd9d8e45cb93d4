"""``tencent-chat-robots bench``: a load benchmark of one endpoint through the SDK.

All calls are gathered at once; the client's limiter paces them. The numbers come from
``on_attempt`` (per try, so retries count), the report goes to the terminal, to a JSON
file and, with matplotlib installed, to a PNG plot next to it.
"""

from __future__ import annotations

import asyncio
import collections
import datetime
import json
import math
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import attrs
import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from .._client import Endpoint, TencentChat
from .._constants import DEFAULT_MAX_IN_FLIGHT, DEFAULT_RATE_LIMIT, DOCUMENTED_RATE_LIMIT
from .._models import AttemptRecord
from ..testing import FakeTencentChat
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
from ._plot import PlotUnavailable, write_plot
from ._stats import max_in_window, percentile

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
_ROBOT_CALLS = ("create_robot", "delete_robot")
_ROOM_CALLS = ("room_add_robot", "room_delete_robot")
_GROUP_CALLS = ("live_group_add_robots", "live_group_del_robots")

# The fake's generated objects: every call valid, and distinct where the server keeps state.
_FAKE_ROBOTS = 20  # the documented maximum per app
_PER_ROOM = 10  # the documented maximum of robots in one room
_PER_GROUP_CALL = 4  # robots named by each live-group call

PERCENTILES = (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))
_INSTALL_HINT = "pip install 'tencent-chat-robots[bench]'"


@attrs.frozen
class Workload:
    """The objects the calls name; ``args(i)`` is the i-th call's arguments."""

    short: str
    robots: tuple[str, ...] = ()
    rooms: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()

    def args(self, i: int) -> tuple[Any, ...]:
        if self.short in _ROBOT_CALLS:
            return (self.robots[i % len(self.robots)],)
        if self.short in _ROOM_CALLS:
            # Robots cycle fastest, so consecutive calls fill one room, then the next.
            room = self.rooms[(i // len(self.robots)) % len(self.rooms)]
            return (room, self.robots[i % len(self.robots)])
        if self.short in _GROUP_CALLS:
            return (self.groups[i % len(self.groups)], list(self.robots))
        return ()

    def arrange(self, fake: FakeTencentChat, calls: int) -> None:
        """Make every object exist on the fake (a delete finds what it deletes)."""
        if self.short != "create_robot":
            for robot in self.robots:
                fake.create_robot(robot)
        for room in self.rooms:
            fake.create_room(room)
        for group in self.groups:
            fake.create_live_group(group)
        if self.short == "room_delete_robot":
            for i in range(min(calls, len(self.rooms) * len(self.robots))):
                fake.add_room_member(*self.args(i))
        if self.short == "live_group_del_robots":
            for group in self.groups:
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
    return Workload(
        short,
        robots=tuple(robots) if needed["--robot"] else (),
        rooms=tuple(rooms) if needed["--room"] else (),
        groups=tuple(groups) if needed["--group"] else (),
    )


def _caller(chat: TencentChat, short: str) -> Callable[..., Awaitable[object]]:
    callers: dict[str, Callable[..., Awaitable[object]]] = {
        "create_robot": chat.create_robot,
        "get_all_robots": chat.get_all_robots,
        "delete_robot": chat.delete_robot,
        "room_add_robot": chat.add_robot_to_room,
        "room_delete_robot": chat.remove_robot_from_room,
        "live_group_add_robots": chat.add_robots_to_live_group,
        "live_group_del_robots": chat.remove_robots_from_live_group,
    }
    return callers[short]


@attrs.define
class _Recorder:
    """Attempts (from ``on_attempt``) and call outcomes."""

    attempts: list[AttemptRecord] = attrs.Factory(list)
    errors: collections.Counter[str] = attrs.Factory(collections.Counter)
    succeeded: int = 0

    def record_call(self, error: BaseException | None) -> None:
        if error is None:
            self.succeeded += 1
        else:
            self.errors[type(error).__name__] += 1


def _report(
    recorder: _Recorder,
    *,
    short: str,
    calls: int,
    elapsed: float,
    server: str,
    rate_limit: float,
    concurrency: int,
    arrived_max: int | None,
    started_at: datetime.datetime,
) -> dict[str, Any]:
    attempts = sorted(recorder.attempts, key=lambda a: a.started)
    starts = [a.started for a in attempts]
    latencies = [a.elapsed * 1000 for a in attempts]
    origin = starts[0] if starts else 0.0
    attempt_errors = collections.Counter(
        type(a.error).__name__ for a in attempts if a.error is not None
    )
    return {
        "endpoint": short,
        "path": ENDPOINTS[short],
        "server": server,
        "started_at": started_at.isoformat(timespec="seconds"),
        "calls": calls,
        "succeeded": recorder.succeeded,
        "failed": calls - recorder.succeeded,
        "attempts": len(attempts),
        "retries": sum(1 for a in attempts if a.attempt > 1),
        "errors": dict(recorder.errors),
        "attempt_errors": dict(attempt_errors),
        "elapsed_seconds": round(elapsed, 3),
        "throughput_calls_per_second": round(calls / elapsed, 1) if elapsed > 0 else 0.0,
        "rate_limit": rate_limit,
        "documented_rate_limit": DOCUMENTED_RATE_LIMIT,
        "concurrency": concurrency,
        "max_per_second": max_in_window(starts),
        "max_per_second_arrived": arrived_max,
        "latency_ms": {
            **{name: round(percentile(latencies, q), 2) for name, q in PERCENTILES},
            "min": round(min(latencies, default=0.0), 2),
            "mean": round(sum(latencies) / len(latencies), 2) if latencies else 0.0,
            "max": round(max(latencies, default=0.0), 2),
        },
        "samples": {
            "start_s": [round(t - origin, 4) for t in starts],
            "latency_ms": [round(ms, 3) for ms in latencies],
            "attempt": [a.attempt for a in attempts],
        },
    }


def _result_paths(out_dir: Path, short: str, started_at: datetime.datetime) -> tuple[Path, Path]:
    """``bench-<endpoint>-<timestamp>.json`` and ``.png``, never overwriting an earlier run."""
    stem = f"bench-{short}-{started_at:%Y%m%d-%H%M%S}"
    candidate, n = stem, 1
    while (out_dir / f"{candidate}.json").exists() or (out_dir / f"{candidate}.png").exists():
        n += 1
        candidate = f"{stem}-{n}"
    return out_dir / f"{candidate}.json", out_dir / f"{candidate}.png"


def _summary(report: dict[str, Any]) -> Table:
    latency = report["latency_ms"]
    errors = ", ".join(f"{name} {n}" for name, n in report["errors"].items()) or "none"
    attempt_errors = ", ".join(f"{name} {n}" for name, n in report["attempt_errors"].items())
    arrived = report["max_per_second_arrived"]
    table = Table.grid(padding=(0, 2))
    table.title = (
        f"bench {report['endpoint']}: {report['calls']} calls on {report['server']}"
        f" in {report['elapsed_seconds']:.2f} s"
    )
    table.title_justify = "left"
    table.add_column(style="bold")
    table.add_column()
    table.add_row("throughput", f"{report['throughput_calls_per_second']:.1f} calls/s")
    table.add_row(
        "latency",
        f"p50 {latency['p50']:.1f} ms · p90 {latency['p90']:.1f} ms · "
        f"p99 {latency['p99']:.1f} ms (per attempt; max {latency['max']:.1f} ms)",
    )
    table.add_row("failed calls", f"{report['failed']} ({errors})" if report["failed"] else "0")
    table.add_row(
        "retries",
        f"{report['retries']}" + (f" (attempt errors: {attempt_errors})" if attempt_errors else ""),
    )
    table.add_row(
        "max in 1 s",
        f"{report['max_per_second']} sent (client pace {report['rate_limit']:g}/s)"
        + (
            f", {arrived} arrived (server limit {DOCUMENTED_RATE_LIMIT}/s)"
            if arrived is not None
            else ""
        ),
    )
    return table


async def _measure(
    chat: TencentChat, recorder: _Recorder, workload: Workload, calls: int, out: Console
) -> float:
    """Gather the calls, with a progress bar; the seconds they took in all."""
    async with chat:
        call = _caller(chat, workload.short)
        with progress_bar(out) as progress:
            task = progress.add_task(f"{workload.short} ×{calls}", total=calls)

            async def one(i: int) -> None:
                error: BaseException | None = None
                try:
                    await call(*workload.args(i))
                except Exception as err:  # counted and reported, never lost
                    error = err
                recorder.record_call(error)
                progress.advance(task)

            began = time.monotonic()
            await asyncio.gather(*(one(i) for i in range(calls)))
            return time.monotonic() - began


async def _run_bench(
    *,
    options: ChatOptions,
    workload: Workload,
    fake: FakeTencentChat | None,
    calls: int,
    concurrency: int,
    base_url: str | None,
) -> dict[str, Any]:
    short = workload.short
    rate_limit = options.rate_limit or DEFAULT_RATE_LIMIT
    out: Console = error_console if options.json_output else console
    started_at = datetime.datetime.now().astimezone()
    recorder = _Recorder()
    arrived_max: int | None = None

    if fake is None:
        overrides: dict[str, Any] = {"max_in_flight": concurrency}
        if base_url:
            overrides["base_url"] = base_url
        chat = options.client(**overrides, on_attempt=recorder.attempts.append)
        server = chat.base_url
        out.print(
            Text.assemble(
                "Benchmarking ", (server, "bold"), " (a real server: only your named objects)"
            ),
            soft_wrap=True,
        )
        elapsed = await _measure(chat, recorder, workload, calls, out)
    else:
        async with fake.serve() as fake_url:
            server = "the embedded fake server"
            out.print(
                Text.assemble(
                    "Fake Tencent Chat server on ",
                    (fake_url, "bold"),
                    f" (SDKAppID {fake.sdkappid})",
                )
            )
            chat = TencentChat(
                fake.sdkappid,
                fake.secret_key,
                admin=fake.admin,
                base_url=fake_url,
                rate_limit=rate_limit,
                max_in_flight=concurrency,
                on_attempt=recorder.attempts.append,
            )
            elapsed = await _measure(chat, recorder, workload, calls, out)
            arrived_max = fake.max_arrivals_in_window(ENDPOINTS[short])

    return _report(
        recorder,
        short=short,
        calls=calls,
        elapsed=elapsed,
        server=server,
        rate_limit=rate_limit,
        concurrency=concurrency,
        arrived_max=arrived_max,
        started_at=started_at,
    )


def _write_results(report: dict[str, Any], out_dir: Path, out: Console) -> tuple[Path, Path | None]:
    """The JSON file, then the plot next to it (None without matplotlib: a hint instead)."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        exit_with(f"cannot create {out_dir}: {err}")
    json_path, png_path = _result_paths(
        out_dir, report["endpoint"], datetime.datetime.fromisoformat(report["started_at"])
    )
    try:
        json_path.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    except OSError as err:
        exit_with(f"cannot write {json_path}: {err}")
    samples = report["samples"]
    try:
        write_plot(
            png_path,
            title=(
                f"bench {report['endpoint']} on {report['server']}: {report['calls']} calls, "
                f"{report['throughput_calls_per_second']:.1f} calls/s, {report['failed']} failed"
            ),
            offsets=samples["start_s"],
            retried=[n > 1 for n in samples["attempt"]],
            latencies_ms=samples["latency_ms"],
            percentiles_ms={name: report["latency_ms"][name] for name, _ in PERCENTILES},
            rate_limit=report["rate_limit"],
            documented_limit=DOCUMENTED_RATE_LIMIT,
        )
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
    default=DEFAULT_MAX_IN_FLIGHT,
    show_default=True,
    type=click.IntRange(min=1),
    help="Requests on the wire at once (the SDK's max_in_flight).",
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
    concurrency: int,
    base_url: str | None,
    robots: tuple[str, ...],
    rooms: tuple[str, ...],
    groups: tuple[str, ...],
    out_dir: Path,
) -> None:
    """Load one endpoint with N calls gathered at once, and report how it went.

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
    Reports throughput, latency p50/p90/p99 per attempt, errors by class, retries and
    the most requests started in any sliding second; writes a JSON file and a PNG
    plot (needs matplotlib: the [bench] extra) to --out. Exit code 0 when every
    call succeeded, 1 otherwise.
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
            workload.arrange(fake, calls)
        except ValueError as err:
            raise click.UsageError(f"the fake server refuses the named objects: {err}") from None
    report = run(
        _run_bench(
            options=options,
            workload=workload,
            fake=fake,
            calls=calls,
            concurrency=concurrency,
            base_url=base_url,
        )
    )
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
