"""``tencent-chat-robots bench``: a load benchmark of one endpoint through the SDK.

The calls are one ``chat.bulk`` run (the client's limiter paces them); the numbers come
from ``RunStats``: ``on_attempt`` per try (so retries count) and each call's outcome.
The report goes to the terminal, to a JSON file and, with matplotlib installed, to a PNG
plot next to it. :class:`Workload` also makes the calls of ``benchmarks/``.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import inspect
import json
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from .._bulk import BulkOutcome
from .._calls import Call
from .._constants import DEFAULT_RATE_LIMIT
from .._endpoints import BY_METHOD, BY_PATH, EndpointSpec
from .._endpoints import ENDPOINTS as TABLE
from .._exceptions import RateLimitError, ValidationError
from .._limiter import RateLimiter
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

__all__ = ["ENDPOINTS", "FAKE_ROBOTS", "Workload", "bench"]

# Short names of earlier versions (the vendor's command, prefixed by the service for
# rooms and live groups), still accepted; the names are now the API's method names.
_FORMER_NAMES = {
    "room_add_robot": "add_robot_to_room",
    "room_delete_robot": "remove_robot_from_room",
    "live_group_add_robots": "add_robots_to_live_group",
    "live_group_del_robots": "remove_robots_from_live_group",
}
# APIs left out: each call changes a message sent before, which the bench cannot name.
UNBENCHED = ("modify_c2c_message", "modify_group_message")
# What --endpoint takes, to the API's path: each row's method name, then former names.
ENDPOINTS: dict[str, str] = {
    **{spec.method: spec.path for spec in TABLE if spec.method not in UNBENCHED},
    **{former: BY_METHOD[method].path for former, method in _FORMER_NAMES.items()},
}

# The fake's generated objects: every call valid, and distinct where the server keeps state.
FAKE_ROBOTS = tuple(f"@RBT#bench{i:02d}" for i in range(20))  # the documented maximum per app
_CALLS_PER_CONTAINER = 10  # calls naming one room (or live group, or live room)

_INSTALL_HINT = "pip install 'tencent-chat-robots[bench]'"


@attrs.frozen
class _Kind:
    """A kind of container robots are placed in: a command group (``spec.cli[0]``)."""

    option: str  # the bench option naming existing ones on a real server
    capacity: int  # robots the fake's containers get (a room's limit; a live group: a few)
    prefix: str  # of the fake's generated ids
    create: Callable[[FakeTencentChat, str], None]
    fill: Callable[[FakeTencentChat, str, list[str]], None]  # robots in, without a call


def _add_room_members(fake: FakeTencentChat, room: str, robots: list[str]) -> None:
    for robot in robots:
        fake.add_room_member(room, robot)


def _create_chat_group(fake: FakeTencentChat, group: str) -> None:
    fake.create_group(group, "Public")


def _nothing_to_fill(fake: FakeTencentChat, container: str, robots: list[str]) -> None:
    pass  # a message needs no robot in its recipient


_KINDS = {
    "room": _Kind("--room", 10, "bench-room-", FakeTencentChat.create_room, _add_room_members),
    # The message APIs: robots send to users (one-to-one) and to ordinary groups.
    "message": _Kind(
        "--user", len(FAKE_ROBOTS), "bench-user-", FakeTencentChat.create_user, _nothing_to_fill
    ),
    "group-message": _Kind(
        "--chat-group", 4, "@GRP#bench-", _create_chat_group, FakeTencentChat.add_group_members
    ),
    "group": _Kind(
        "--live-group",
        4,
        "@TGS#bench-",
        FakeTencentChat.create_live_group,
        FakeTencentChat.add_live_group_members,
    ),
    "live-room": _Kind(
        "--live-room",
        3,
        "bench-live-",
        FakeTencentChat.create_live_room,
        FakeTencentChat.add_live_room_robots,
    ),
}


def _message_to(user: str, robot: str, i: int) -> Call[Any]:
    return Call.send_c2c_message(robot, user, f"bench message {i}")


def _message_in(group: str, robot: str, i: int) -> Call[Any]:
    return Call.send_group_message(group, f"bench message {i}", from_account=robot)


def _one_piece_stream(user: str, robot: str, i: int) -> Call[Any]:
    # Each call a whole stream (its first piece finishes it): no call waits for another.
    return Call.send_stream_chunk(robot, user, f"bench chunk {i}", finish=True)


# The message APIs' calls: (container, robot, i) to the call; the robot is the sender.
_MESSAGES: dict[str, Callable[[str, str, int], Call[Any]]] = {
    "send_c2c_message": _message_to,
    "send_group_message": _message_in,
    "send_stream_chunk": _one_piece_stream,
}


@functools.cache
def _robot_argument(method: str) -> str | None:
    """How the ``Call`` constructor names robots: ``"one"``, ``"all"`` (a list), or None."""
    if method in _MESSAGES:
        return "one"  # the sender, beside the recipient (a container)
    signature = inspect.signature(getattr(Call, method))
    positional = [p for p in signature.parameters.values() if p.kind is p.POSITIONAL_OR_KEYWORD]
    # A container (room, live group, live room) comes first; robots last.
    robots = positional[1:] if _KINDS.get(BY_METHOD[method].cli[0]) else positional
    if not robots:
        return None
    # Annotations are kept as text (postponed evaluation): "str", or "Sequence[str]".
    return "one" if robots[-1].annotation in ("str", str) else "all"


@attrs.frozen
class Workload:
    """The objects the calls name (only those the API takes); ``call(i)`` the i-th call."""

    name: str  # as given to --endpoint
    robots: tuple[str, ...] = ()
    containers: tuple[str, ...] = ()  # rooms, live groups or live rooms

    @classmethod
    def generated(cls, name: str, calls: int, robots: Sequence[str] = FAKE_ROBOTS) -> Workload:
        """Objects for ``calls`` calls of ``name`` that a fake given them by :meth:`arrange`
        accepts in any order: ``robots`` (as many as a container takes) and containers of
        10 calls each, named after the API's verb, so that the workloads of several APIs
        can share one fake."""
        workload = cls(name)
        if _robot_argument(workload.spec.method) is None:
            robots = ()
        kind = workload.kind
        if kind is None:
            return attrs.evolve(workload, robots=tuple(robots))
        verb = workload.spec.cli[1]
        count = math.ceil(calls / _CALLS_PER_CONTAINER)
        containers = tuple(f"{kind.prefix}{verb}-{k:05d}" for k in range(count))
        return attrs.evolve(workload, robots=tuple(robots[: kind.capacity]), containers=containers)

    @property
    def spec(self) -> EndpointSpec:
        return BY_PATH[ENDPOINTS[self.name]]

    @property
    def kind(self) -> _Kind | None:
        return _KINDS.get(self.spec.cli[0])

    @property
    def distinct_calls(self) -> int:
        """How many calls there are before they repeat."""
        one = _robot_argument(self.spec.method) == "one"
        return max(1, len(self.containers)) * (len(self.robots) if one else 1)

    def call(self, i: int) -> Call[Any]:
        """The API's ``Call`` constructor with the i-th objects."""
        factory: Callable[..., Call[Any]] = getattr(Call, self.spec.method)
        robots = _robot_argument(self.spec.method)
        args: list[object] = []
        if self.containers:
            # One robot a call: robots cycle fastest, so calls fill a room, then the next.
            turn = i // len(self.robots) if robots == "one" else i
            args.append(self.containers[turn % len(self.containers)])
        if robots == "one":
            args.append(self.robots[i % len(self.robots)])
        elif robots == "all":  # every call names them all
            args.append(self.robots)
        message = _MESSAGES.get(self.spec.method)
        if message is not None:  # (recipient, sender, i)
            recipient, sender = args
            return message(str(recipient), str(sender), i)
        return factory(*args)

    def calls(self, n: int) -> Iterator[Call[Any]]:
        """The first ``n`` calls, each made when it is asked for."""
        return (self.call(i) for i in range(n))

    def arrange(self, fake: FakeTencentChat) -> None:
        """Make every object exist on the fake (a removal finds what it removes)."""
        verb = self.spec.cli[1]
        for robot in self.robots if verb != "create" else ():
            fake.create_robot(robot)
        kind = self.kind
        if kind is None:
            return
        for container in self.containers:
            kind.create(fake, container)
            if verb == "remove":
                kind.fill(fake, container, list(self.robots))


def _given_workload(
    name: str, robots: Sequence[str], containers: Mapping[str, Sequence[str]]
) -> Workload:
    """The objects named by --robot and by the container options (``containers``, by
    option); a usage error if the API needs some that are not given."""
    workload = Workload(name)
    kind = workload.kind
    wanted: dict[str, tuple[str, ...]] = {}
    if _robot_argument(workload.spec.method) is not None:
        wanted["--robot"] = tuple(robots)
    if kind is not None:
        wanted[kind.option] = tuple(containers.get(kind.option, ()))
    missing = [option for option, named in wanted.items() if not named]
    if missing:
        raise click.UsageError(
            f"--endpoint {name} needs {' and '.join(missing)}"
            " (naming existing objects on a real server)"
        )
    workload = attrs.evolve(
        workload,
        robots=wanted.get("--robot", ()),
        containers=wanted[kind.option] if kind else (),
    )
    try:  # each named object in a call: a malformed id is refused before the run
        for i in range(workload.distinct_calls):
            workload.call(i)
    except ValidationError as err:
        raise click.UsageError(str(err)) from None
    return workload


def _result_paths(out_dir: Path, name: str, started_at: datetime.datetime) -> tuple[Path, Path]:
    """``bench-<endpoint>-<timestamp>.json`` and ``.png``, never overwriting an earlier run."""
    stem = f"bench-{name}-{started_at:%Y%m%d-%H%M%S}"
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
        "max in 1 s": f"{report['max_per_second']} sent (client pace {report['pace']:g}/s)"
        + (
            f", {arrived} arrived (server limit {report['documented_rate_limit']}/s)"
            if arrived is not None
            else ""
        ),
        "rate-limited": f"{report['rate_limit_errors']} attempts (60007)",
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
    endpoint = workload.spec.path
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
        limiter = chat.limiter
        pace = limiter.rate_for(endpoint) if isinstance(limiter, RateLimiter) else rate_limit
        bulk_run = chat.bulk(workload.calls(calls), concurrency=concurrency, total=calls)
        most = 0

        def on_outcome(outcome: BulkOutcome[Any]) -> None:
            nonlocal most
            most = max(most, bulk_run.workers)
            stats.record_outcome(outcome)

        async with chat:
            with progress_bar(out) as progress:
                began = time.monotonic()
                await drive(bulk_run, progress, f"{workload.name} ×{calls}", on_outcome)
                elapsed = time.monotonic() - began
        arrivals = None if fake is None else fake.arrivals(endpoint)
    of_endpoint = stats.of(endpoint)
    row = of_endpoint.as_dict()
    samples = of_endpoint.samples(arrivals)
    peaks = _peaks(samples)
    return {
        **row,
        "endpoint": workload.name,
        "path": endpoint,
        "server": server,
        "started_at": started_at.isoformat(timespec="seconds"),
        "elapsed_seconds": round(elapsed, 3),
        "throughput_calls_per_second": round(row["calls"] / elapsed, 1) if elapsed > 0 else 0.0,
        "rate_limit": rate_limit,  # --rate-limit, in terms of the 200/s APIs
        "pace": pace,  # what the client paced this endpoint at
        "documented_rate_limit": workload.spec.documented_rate,
        "concurrency": concurrency,
        "workers_max": most,
        "max_per_second_arrived": None if peaks["arrived"] is None else peaks["arrived"]["most"],
        "rate_limit_errors": of_endpoint.attempt_errors[RateLimitError.__name__],
        "sliding_second": {"documented_rate": workload.spec.documented_rate, **peaks},
        "samples": samples,
    }


def _peaks(samples: Mapping[str, list[Any]]) -> dict[str, dict[str, float] | None]:
    """The most requests in any sliding second, started and arrived, and where that second
    ends (seconds from the first start); ``arrived`` None without the server's times."""
    peaks: dict[str, dict[str, float] | None] = {}
    for name, times, counts in (
        ("started", "start_s", "in_second"),
        ("arrived", "arrival_s", "arrived_in_second"),
    ):
        if counts not in samples:
            peaks[name] = None
            continue
        most = max(samples[counts], default=0)
        at = samples[times][samples[counts].index(most)] if most else 0.0
        peaks[name] = {"most": most, "ends_at_s": at}
    return peaks


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
    "name",
    required=True,
    type=click.Choice(list(ENDPOINTS)),
    metavar="NAME",
    help="The API to load, by its method name: "
    + ", ".join(spec.method for spec in TABLE if spec.method not in UNBENCHED)
    + " (or a former name: "
    + ", ".join(_FORMER_NAMES)
    + "). Not "
    + " nor ".join(UNBENCHED)
    + ": each call changes a message sent before.",
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
    "--live-group", "groups", multiple=True, help="Real server: an existing live group (repeat)."
)
# The option's name before it matched the other commands' (--live-group of fake-server).
@click.option("--group", "former_groups", multiple=True, hidden=True)
@click.option(
    "--live-room",
    "live_rooms",
    multiple=True,
    help="Real server: an existing live room (repeat).",
)
@click.option(
    "--user", "users", multiple=True, help="Real server: an existing user to message (repeat)."
)
@click.option(
    "--chat-group",
    "chat_groups",
    multiple=True,
    help="Real server: an existing group (not a live group) to message (repeat).",
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
    name: str,
    calls: int,
    concurrency: int | None,
    base_url: str | None,
    robots: tuple[str, ...],
    rooms: tuple[str, ...],
    groups: tuple[str, ...],
    former_groups: tuple[str, ...],
    live_rooms: tuple[str, ...],
    users: tuple[str, ...],
    chat_groups: tuple[str, ...],
    out_dir: Path,
) -> None:
    """Load one API (--endpoint) with N calls in one bulk run, and report how it went.

    By default the calls go to an embedded fake server on loopback, which first gets
    valid objects for every call (20 robots; rooms of 10 robots; live groups with 4
    robots named per call; live rooms of 3; users and groups the robots message).
    With --base-url or credentials (global options or TENCENT_CHAT_* variables) the
    calls go to that server instead and name the objects you give: --robot for every
    API that names robots (robots cycle; live-group and live-room calls name them all;
    a message's sender), --room for rooms, --live-group for live groups, --live-room
    for live rooms, --user and --chat-group for the users and groups messages go to.
    They must already exist, and messages are really sent. Against a real server only
    repeatable calls make sense: the list APIs, create_robot of an existing robot,
    adding robots already in; removals really remove (remove_robot_from_room fails
    after the first call). The same options also work on the fake, to rehearse.

    Pace: the global --rate-limit (default 190/s) for the 200/s APIs, the same share of
    their own rate for the others (95/s for the 100/s live-room APIs).
    Reports throughput, latency p50/p90/p99 per attempt, errors by class, retries, the
    workers of the run, the most requests started (and, on the fake, arrived) in any
    sliding second, and the rate-limit errors; writes a JSON file and a PNG plot (the
    requests in the sliding second ending at each instant against the API's documented
    rate, and the latencies; needs matplotlib: the [bench] extra) to --out. Exit code 0
    when every call succeeded, 1 otherwise.
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
    containers = {
        "--room": rooms,
        "--live-group": groups + former_groups,
        "--live-room": live_rooms,
        "--user": users,
        "--chat-group": chat_groups,
    }
    if base_url or options.base_url or options.sdkappid or options.secret_key:
        workload = _given_workload(name, robots, containers)
    else:
        fake = FakeTencentChat()
        named = robots or any(containers.values())
        workload = (
            _given_workload(name, robots, containers) if named else Workload.generated(name, calls)
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
