"""``tencent-chat-robots demo``: bulk robot provisioning against the embedded fake server.

It shows what the SDK is for: thousands of calls, one ``chat.bulk`` run per phase, each
endpoint paced under its documented rate (200/s; 100/s for live rooms), injected
internal errors absorbed by retries; and, between provisioning and clean-up, robots
answering simulated users (``_conversation``).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from typing import Any

import attrs
import click
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from .._calls import Call
from .._client import TencentChat
from .._constants import DEFAULT_RATE_LIMIT
from .._endpoints import BY_PATH, ENDPOINTS, Endpoint, EndpointSpec
from .._limiter import RateLimiter
from ..testing import FakeTencentChat
from ._context import (
    console,
    drive,
    error_console,
    options_of,
    print_json,
    progress_bar,
    run,
)
from ._conversation import converse, count_streamed
from ._stats import RunStats

__all__ = ["demo"]

ROBOTS = 20  # the documented maximum per app
PER_LIVE_ROOM = 3  # the documented maximum of robots in a live room


@attrs.frozen
class Plan:
    """The rooms, live groups and live rooms the fake gets, and each phase's calls."""

    robots: list[str]
    rooms: list[str]
    groups: list[str]
    live_rooms: list[str]
    phases: dict[str, list[Call[Any]]]


def _plan(rooms: int, groups: int, live_rooms: int, per_room: int, per_group_call: int) -> Plan:
    """The calls of each phase, spreading robots evenly."""
    robots = [f"@RBT#demo{i:02d}" for i in range(ROBOTS)]
    room_ids = [f"demo-room-{i:04d}" for i in range(rooms)]
    group_ids = [f"@TGS#demo{i:04d}" for i in range(groups)]
    live_room_ids = [f"demo-live-{i:04d}" for i in range(live_rooms)]
    room_members = {
        room: [robots[(i * per_room + j) % ROBOTS] for j in range(per_room)]
        for i, room in enumerate(room_ids)
    }
    room_adds = [
        Call.add_robot_to_room(room, robot)
        for room, members in room_members.items()
        for robot in members
    ]
    group_adds = [
        Call.add_robots_to_live_group(group, robots[k : k + per_group_call])
        for group in group_ids
        for k in range(0, ROBOTS, per_group_call)
    ]
    room_removals = [
        Call.remove_robot_from_room(room, robot)
        for room in room_ids[: max(1, rooms // 5)]
        for robot in room_members[room]
    ]
    group_removals = [
        Call.remove_robots_from_live_group(group, robots)
        for group in group_ids[: max(1, groups // 5)]
    ]
    # A live room's robots are placed in one call; a fifth of the rooms are emptied
    # again, and the others listed (in the same phase: never a room being emptied).
    live_room_robots = {
        room: [robots[(i * PER_LIVE_ROOM + j) % ROBOTS] for j in range(PER_LIVE_ROOM)]
        for i, room in enumerate(live_room_ids)
    }
    live_room_adds = [
        Call.add_robots_to_live_room(room, members) for room, members in live_room_robots.items()
    ]
    emptied = max(1, live_rooms // 5)
    live_room_removals = [
        Call.remove_robots_from_live_room(room, live_room_robots[room])
        for room in live_room_ids[:emptied]
    ]
    live_room_lists = [Call.get_live_room_robots(room) for room in live_room_ids[emptied:]]
    create: list[Call[Any]] = [
        Call.create_robot(robot, nick=f"Demo {robot[-2:]}", self_signature="at your service")
        for robot in robots
    ]
    delete: list[Call[Any]] = [Call.delete_robot(robot) for robot in robots]
    return Plan(
        robots,
        room_ids,
        group_ids,
        live_room_ids,
        {
            "create": create,
            "provision": _spread(room_adds, group_adds, live_room_adds, [Call.get_all_robots()]),
            "cleanup": _spread(room_removals, group_removals, live_room_removals, live_room_lists),
            "delete": delete,
        },
    )


def _spread(*streams: list[Call[Any]]) -> list[Call[Any]]:
    """The streams merged evenly, each one's calls spread over the whole list.

    A bulk run takes its calls in order: spread out, every endpoint is paced at once.
    """
    keyed = [
        ((i + 0.5) / len(calls), n, i) for n, calls in enumerate(streams) for i in range(len(calls))
    ]
    return [streams[n][i] for _, n, i in sorted(keyed)]


def _label(spec: EndpointSpec) -> str:
    """The endpoint by the API's method name, ``add_robots_to_live_room``: the name the
    client, ``Call``, ``rates=``, ``bench --endpoint`` and the command line all take."""
    return spec.method


def _summary_table(stats: RunStats, fake: FakeTencentChat, elapsed: float) -> Table:
    # Fits an 80-column terminal, the longest method name included: light borders, one
    # space between columns, short headers explained in the caption.
    table = Table(
        title=f"Demo summary ({elapsed:.1f} s)",
        title_justify="left",
        caption="API: by its method name; sent/recv: most requests in any second at the "
        "client / at the server; rate: sustained calls/s; latency per attempt in ms",
        caption_justify="left",
        box=box.SIMPLE_HEAD,
        padding=0,
        show_edge=False,
    )
    table.add_column("API", no_wrap=True)
    for column in ("calls", "sent", "recv", "rate", "retries"):
        table.add_column(column, justify="right")
    table.add_column("errors")
    table.add_column("p50", justify="right")
    table.add_column("p99", justify="right")
    for spec in ENDPOINTS:
        row = stats.endpoints.get(spec.path)
        if row is None:
            continue
        latency = row.latency_ms()
        errors = ", ".join(f"{name} {n}" for name, n in row.errors.items()) or "-"
        table.add_row(
            _label(spec),
            str(row.calls),
            str(row.max_per_second),
            str(fake.max_arrivals_in_window(spec.path)),
            f"{row.sustained_rate:.0f}" if len(row.starts) > DEFAULT_RATE_LIMIT else "-",
            str(row.retries),
            errors,
            f"{latency['p50']:.1f}",
            f"{latency['p99']:.1f}",
        )
    return table


def _paces(chat: TencentChat) -> dict[int, float]:
    """The client's pace for each documented rate (190/s for 200/s, 95/s for 100/s)."""
    limiter = chat.limiter
    assert isinstance(limiter, RateLimiter)  # the demo's client is made with a rate_limit
    return {spec.documented_rate: limiter.rate_for(spec.path) for spec in ENDPOINTS}


def _verdict(stats: RunStats, paces: dict[int, float]) -> Text:
    total = sum(row.calls for row in stats.endpoints.values())
    retries = sum(row.retries for row in stats.endpoints.values())
    verdict = (
        ("every call succeeded", "bold green")
        if stats.failed == 0
        else (f"{stats.failed} calls failed", "bold red")
    )
    pacing = ", ".join(
        f"{pace:g}/s where the server allows {limit}/s" for limit, pace in paces.items()
    )
    return Text.assemble(
        f"{total} calls, {retries} retries absorbed, ",
        verdict,
        f"; the client's pace per endpoint: {pacing}.",
    )


async def _run_demo(
    *,
    rooms: int,
    groups: int,
    live_rooms: int,
    error_rate: float,
    seed: int,
    rate_limit: float,
    json_output: bool,
    users: int,
) -> int:
    fake = FakeTencentChat(error_rate=error_rate, seed=seed)
    plan = _plan(rooms, groups, live_rooms, per_room=min(10, ROBOTS), per_group_call=4)
    for room in plan.rooms:
        fake.create_room(room)
    for group in plan.groups:
        fake.create_live_group(group)
    for live_room in plan.live_rooms:
        fake.create_live_room(live_room)
    # A few scripted faults on top of the random ones, so every run shows retries.
    fake.fail_next(Endpoint.CREATE_ROBOT, 10002, times=2)
    fake.fail_next(Endpoint.ROOM_ADD_ROBOT, 100001, times=3)
    fake.bad_gateway_next(Endpoint.LIVE_GROUP_ADD_ROBOTS, times=2)
    fake.fail_next(Endpoint.LIVE_ROOM_ADD_ROBOT, 100001, times=2)

    stats = RunStats()
    out: Console = error_console if json_output else console
    phases: Sequence[tuple[str, str]] = (
        ("create", "Creating the robots"),
        ("provision", "Adding robots to rooms, groups, live rooms"),
        # Then users talk to the robots (the conversation phase), before:
        ("cleanup", "Taking some off again, listing live rooms"),
        ("delete", "Deleting the robots"),
    )
    began = time.monotonic()
    async with fake.serve() as base_url:
        out.print(
            Text.assemble(
                "Fake Tencent Chat server on ", (base_url, "bold"), f" (SDKAppID {fake.sdkappid})"
            )
        )
        async with TencentChat(
            fake.sdkappid,
            fake.secret_key,
            admin=fake.admin,
            base_url=base_url,
            rate_limit=rate_limit,
            on_attempt=functools.partial(count_streamed, stats),
        ) as chat:
            paces = _paces(chat)
            with progress_bar(out, 44) as progress:
                # One bulk run per phase: each phase needs the one before it done.
                for key, title in phases:
                    if key == "cleanup":  # the robots are in place: they talk first
                        talk = progress.add_task("Users talking to the robots", total=None)
                        conversation = await converse(
                            chat,
                            fake,
                            plan.robots,
                            users=users,
                            on_answer=progress.advance,
                            task=talk,
                            on_call=stats.record_call,
                            seed=seed,
                        )
                        progress.update(talk, total=conversation.answers)
                    calls = chat.bulk(plan.phases[key])
                    await drive(calls, progress, title, stats.record_outcome)
    elapsed = time.monotonic() - began

    if json_output:
        print_json(
            {
                "elapsed_seconds": round(elapsed, 2),
                "failed_calls": stats.failed,
                "conversation": conversation.as_dict(),
                "endpoints": [
                    {
                        "method": _label(BY_PATH[path]),
                        **row.as_dict(),
                        "max_per_second_arrived": fake.max_arrivals_in_window(path),
                        "documented_rate": BY_PATH[path].documented_rate,
                        "pace": paces[BY_PATH[path].documented_rate],
                    }
                    for path, row in stats.endpoints.items()
                ],
            }
        )
    else:
        console.print(_summary_table(stats, fake, elapsed))
        console.print(conversation.table())
        for sender, text in conversation.excerpt:
            console.print(Text.assemble("  ", (sender, "bold"), ": ", text))
        for wrong in conversation.wrong:
            error_console.print(Text(wrong, style="red"))
        console.print(_verdict(stats, paces))
    return 0 if stats.failed == 0 and conversation.ok else 1


@click.command()
@click.option("--rooms", default=150, show_default=True, type=click.IntRange(1, 100_000))
@click.option(
    "--live-groups", "groups", default=75, show_default=True, type=click.IntRange(1, 100_000)
)
@click.option(
    "--live-rooms",
    "live_rooms",
    default=60,
    show_default=True,
    type=click.IntRange(1, 100_000),
    help="TUILiveKit live rooms, three robots each.",
)
@click.option(
    "--error-rate",
    default=0.005,
    show_default=True,
    type=click.FloatRange(0, 0.5),
    help="Share of calls the fake fails with an internal error.",
)
@click.option("--seed", default=7, show_default=True, help="Seed of the injected faults.")
@click.option(
    "--users",
    default=40,
    show_default=True,
    type=click.IntRange(2, 10_000),
    help="Simulated users talking to the robots, three messages each.",
)
@click.pass_context
def demo(
    ctx: click.Context,
    rooms: int,
    groups: int,
    live_rooms: int,
    error_rate: float,
    seed: int,
    users: int,
) -> None:
    """Provision 20 robots into many rooms, live groups and live rooms on an embedded fake,
    and let simulated users talk to them.

    Starts the fake Tencent Chat server on loopback (no credentials needed), then makes
    thousands of calls in bulk runs (chat.bulk) with injected internal errors. Between
    provisioning and clean-up, users message the robots: the fake delivers signed
    callbacks (some twice, one stale, one from a robot) to a RobotCallbacks receiver whose
    handlers answer as the robot. Ends with a table per endpoint and the conversation's
    counts. Exit code 0 when every call succeeded and every message got one answer.
    """
    options = options_of(ctx)
    code = run(
        _run_demo(
            rooms=rooms,
            groups=groups,
            live_rooms=live_rooms,
            error_rate=error_rate,
            seed=seed,
            rate_limit=options.rate_limit or DEFAULT_RATE_LIMIT,
            json_output=options.json_output,
            users=users,
        )
    )
    raise SystemExit(code)
