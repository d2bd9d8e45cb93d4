"""Shared by the benchmark scripts: the fake server in a process of its own, the
per-endpoint workload that keeps every call valid, and writing results."""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import os
import platform
import sys
import time
from collections.abc import Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from tencent_chat_robots import Call, Endpoint, generate_usersig

__all__ = ["RESULTS", "FakeProcess", "Workload", "machine", "write_result"]

RESULTS = Path(__file__).resolve().parent / "results"
SDKAPPID = 1400000000
SECRET_KEY = "benchmark-secret-key"
ADMIN = "administrator"

STABLE_ROBOTS = [f"@RBT#stable{i:02d}" for i in range(10)]
CHURN_ROBOTS = [f"@RBT#churn{i:02d}" for i in range(10)]


class Workload:
    """``n`` calls of each endpoint that the fake accepts whatever the order.

    Ten robots stay valid for rooms and groups; ten others are created and deleted by
    the robot endpoints, so an app never holds more than the documented 20.
    """

    def __init__(self, calls: int) -> None:
        self.size = calls
        rooms = range((calls + 9) // 10)
        self.room_adds = [(f"add-{r}", robot) for r in rooms for robot in STABLE_ROBOTS][:calls]
        self.room_dels = [(f"del-{r}", robot) for r in rooms for robot in STABLE_ROBOTS][:calls]
        self.groups = [f"@TGS#bench{g}" for g in range(calls)]
        # A live room holds at most three robots: one call per room, one robot each.
        self.live_adds = [f"live-add-{r}" for r in range(calls)]
        self.live_dels = [f"live-del-{r}" for r in range(calls)]
        self.live_gets = [f"live-get-{r % 10}" for r in range(calls)]

    def calls(self, endpoint: str) -> list[Call[Any]]:
        """``endpoint``'s calls, for the SDK: ``await chat.call(call)``."""
        n = self.size
        if endpoint == Endpoint.CREATE_ROBOT:
            return [Call.create_robot(CHURN_ROBOTS[i % 10]) for i in range(n)]
        if endpoint == Endpoint.GET_ALL_ROBOTS:
            return [Call.get_all_robots() for _ in range(n)]
        if endpoint == Endpoint.DELETE_ROBOT:
            return [Call.delete_robot(CHURN_ROBOTS[i % 10]) for i in range(n)]
        if endpoint == Endpoint.ROOM_ADD_ROBOT:
            return [Call.add_robot_to_room(r, m) for r, m in self.room_adds]
        if endpoint == Endpoint.ROOM_DELETE_ROBOT:
            return [Call.remove_robot_from_room(r, m) for r, m in self.room_dels]
        members = [STABLE_ROBOTS[0]]
        if endpoint == Endpoint.LIVE_GROUP_ADD_ROBOTS:
            return [Call.add_robots_to_live_group(g, members) for g in self.groups]
        if endpoint == Endpoint.LIVE_GROUP_DEL_ROBOTS:
            return [Call.remove_robots_from_live_group(g, members) for g in self.groups]
        if endpoint == Endpoint.LIVE_ROOM_ADD_ROBOT:
            return [Call.add_robots_to_live_room(r, members) for r in self.live_adds]
        if endpoint == Endpoint.LIVE_ROOM_DEL_ROBOT:
            return [Call.remove_robots_from_live_room(r, members) for r in self.live_dels]
        if endpoint == Endpoint.LIVE_ROOM_GET_ROBOT:
            return [Call.get_live_room_robots(r) for r in self.live_gets]
        raise ValueError(f"no workload for {endpoint}")

    def bodies(self, endpoint: str) -> list[dict[str, Any]]:
        """The same calls' JSON bodies, vendor keys, written by hand as a raw client would."""
        n = self.size
        if endpoint == Endpoint.CREATE_ROBOT:
            return [{"UserID": CHURN_ROBOTS[i % 10]} for i in range(n)]
        if endpoint == Endpoint.GET_ALL_ROBOTS:
            return [{} for _ in range(n)]
        if endpoint == Endpoint.DELETE_ROBOT:
            return [{"Robot_Account": CHURN_ROBOTS[i % 10]} for i in range(n)]
        if endpoint == Endpoint.ROOM_ADD_ROBOT:
            return [{"RoomId": r, "Member_Account": m} for r, m in self.room_adds]
        if endpoint == Endpoint.ROOM_DELETE_ROBOT:
            return [{"RoomId": r, "Member_Account": m} for r, m in self.room_dels]
        members = [STABLE_ROBOTS[0]]
        if endpoint in (Endpoint.LIVE_GROUP_ADD_ROBOTS, Endpoint.LIVE_GROUP_DEL_ROBOTS):
            return [{"GroupId": g, "Member_Account": members} for g in self.groups]
        if endpoint == Endpoint.LIVE_ROOM_ADD_ROBOT:
            return [{"RoomId": r, "RobotList_Account": members} for r in self.live_adds]
        if endpoint == Endpoint.LIVE_ROOM_DEL_ROBOT:
            return [{"RoomId": r, "RobotList_Account": members} for r in self.live_dels]
        if endpoint == Endpoint.LIVE_ROOM_GET_ROBOT:
            return [{"RoomId": r} for r in self.live_gets]
        raise ValueError(f"no workload for {endpoint}")

    def arrange(self, fake: Any) -> None:
        """Create the state the calls need, directly in the fake (no REST calls)."""
        for robot in STABLE_ROBOTS + CHURN_ROBOTS:
            fake.create_robot(robot)
        for room, _ in self.room_adds:
            fake.create_room(room)
        for room, robot in self.room_dels:
            fake.create_room(room)
            fake.add_room_member(room, robot)
        for group in self.groups:
            fake.create_live_group(group)
            fake.add_live_group_members(group, [STABLE_ROBOTS[0]])
        for room in self.live_adds:
            fake.create_live_room(room)
        for room in [*self.live_dels, *sorted(set(self.live_gets))]:
            fake.create_live_room(room)
            fake.add_live_room_robots(room, [STABLE_ROBOTS[0]])


def _serve_fake(conn: Connection, options: dict[str, Any], calls: int) -> None:
    from tencent_chat_robots.testing import FakeTencentChat

    fake = FakeTencentChat(
        sdkappid=SDKAPPID, secret_key=SECRET_KEY, admin=ADMIN, max_robots_per_room=20, **options
    )
    if calls:
        Workload(calls).arrange(fake)

    async def main() -> None:
        async with fake.serve() as base_url:
            conn.send(base_url)
            loop = asyncio.get_running_loop()
            while True:
                command = await loop.run_in_executor(None, conn.recv)
                if command == "stop":
                    conn.send("stopped")
                    return
                if command == "stats":
                    conn.send(
                        {
                            endpoint: {
                                "arrivals": fake.arrivals(endpoint),
                                "codes": [
                                    c.error_code for c in fake.calls if c.endpoint == endpoint
                                ],
                            }
                            for endpoint in Endpoint.ALL
                        }
                    )
                elif command == "reset":
                    fake.reset_calls()
                    conn.send("reset")

    asyncio.run(main())


class FakeProcess:
    """The fake server on a loopback port, in a separate process (its CPU is not ours)."""

    def __init__(self, *, calls: int = 0, **options: Any) -> None:
        self._options = options
        self._calls = calls
        self.base_url = ""

    def __enter__(self) -> FakeProcess:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(
            target=_serve_fake, args=(child, self._options, self._calls), daemon=True
        )
        self._process.start()
        if not self._conn.poll(60):
            raise RuntimeError("the fake server did not start")
        self.base_url = self._conn.recv()
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(OSError, EOFError):
            self._conn.send("stop")
            self._conn.poll(10)
        self._process.join(10)
        if self._process.is_alive():
            self._process.kill()

    def stats(self) -> dict[str, dict[str, list[Any]]]:
        """Per endpoint: arrival times (the fake's clock) and answered error codes."""
        self._conn.send("stats")
        result: dict[str, dict[str, list[Any]]] = self._conn.recv()
        return result

    def reset(self) -> None:
        self._conn.send("reset")
        self._conn.recv()

    def signed_url(self, endpoint: str) -> str:
        """The endpoint's URL for raw clients, signed; append the ``random`` number."""
        sig = generate_usersig(SDKAPPID, SECRET_KEY, ADMIN)
        return (
            f"{self.base_url}/v4/{endpoint}?sdkappid={SDKAPPID}&identifier={ADMIN}"
            f"&usersig={sig}&contenttype=json&random="
        )

    def client(self, **options: Any) -> Any:
        """A ``TencentChat`` pointed at this fake."""
        from tencent_chat_robots import TencentChat

        return TencentChat(SDKAPPID, SECRET_KEY, admin=ADMIN, base_url=self.base_url, **options)


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "date": time.strftime("%Y-%m-%d"),
    }


def write_result(name: str, data: dict[str, Any]) -> Path:
    """Write ``benchmarks/results/NAME.json`` (with the machine noted) and say where.

    ``--quick`` runs go to ``results/quick/`` so a smoke test never replaces the
    published numbers.
    """
    folder = RESULTS / "quick" if quick_flag() else RESULTS
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **data}, indent=2) + "\n")
    print(f"wrote {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")
    return path


def quick_flag() -> bool:
    """``--quick``: a few seconds, for CI's smoke test."""
    return "--quick" in sys.argv[1:]


@contextlib.contextmanager
def timed() -> Iterator[dict[str, float]]:
    """Wall and CPU seconds of the block, filled in when it ends."""
    out: dict[str, float] = {}
    wall, cpu = time.perf_counter(), time.process_time()
    yield out
    out["wall"] = time.perf_counter() - wall
    out["cpu"] = time.process_time() - cpu
