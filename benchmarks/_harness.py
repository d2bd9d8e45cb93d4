"""Shared by the benchmark scripts: the fake server in a process of its own, the calls
(``bench``'s :class:`Workload`, so that every call is valid), medians over repeats, GC
pauses, and writing results."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib
import inspect
import json
import multiprocessing
import os
import platform
import statistics
import sys
import time
import traceback
from collections.abc import Iterable, Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from tencent_chat_robots import Call, Endpoint, generate_usersig
from tencent_chat_robots._endpoints import BY_PATH
from tencent_chat_robots._models import converter
from tencent_chat_robots.cli._bench import ENDPOINTS as BENCH_NAMES
from tencent_chat_robots.cli._bench import Workload

__all__ = [
    "ADMIN",
    "LOADED",
    "RESULTS",
    "SDKAPPID",
    "SECRET_KEY",
    "STABLE_ROBOTS",
    "FakeProcess",
    "GcPauses",
    "Workload",
    "every_endpoint",
    "machine",
    "median",
    "quick_flag",
    "raw_body",
    "write_result",
]

RESULTS = Path(__file__).resolve().parent / "results"
SDKAPPID = 1400000000
SECRET_KEY = "benchmark-secret-key"
ADMIN = "administrator"

# Ten robots stay valid for rooms and groups; ten others are created and deleted by the
# robot APIs, so an app never holds more than the documented 20.
STABLE_ROBOTS = tuple(f"@RBT#stable{i:02d}" for i in range(10))
CHURN_ROBOTS = tuple(f"@RBT#churn{i:02d}" for i in range(10))


# Every API ``bench`` loads: all but the two that change a message sent before.
LOADED = tuple(path for path in Endpoint.ALL if BY_PATH[path].method in BENCH_NAMES)


def every_endpoint(calls: int) -> dict[str, Workload]:
    """Per API path (of ``LOADED``), a workload of ``calls`` calls; all of them valid on
    one fake in any order."""
    churn = (Endpoint.CREATE_ROBOT, Endpoint.DELETE_ROBOT)
    return {
        path: Workload.generated(
            BY_PATH[path].method, calls, CHURN_ROBOTS if path in churn else STABLE_ROBOTS
        )
        for path in LOADED
    }


def raw_body(call: Call[Any]) -> dict[str, Any]:
    """The JSON body of ``call`` with the vendor's keys, for the raw HTTP clients."""
    body: dict[str, Any] = converter.unstructure(call.body)
    return body


def _serve_fake(conn: Connection, options: dict[str, Any], workloads: list[Workload]) -> None:
    from tencent_chat_robots.testing import FakeTencentChat

    fake = FakeTencentChat(
        sdkappid=SDKAPPID, secret_key=SECRET_KEY, admin=ADMIN, max_robots_per_room=20, **options
    )
    for workload in workloads:
        workload.arrange(fake)

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
                elif isinstance(command, tuple) and command[0] == "call":
                    try:
                        conn.send(("ok", await _call(fake, command[1], command[2])))
                    except Exception:
                        conn.send(("error", traceback.format_exc()))

    asyncio.run(main())


async def _call(fake: Any, target: str, kwargs: dict[str, Any]) -> Any:
    """``module:function``'s ``function(fake, **kwargs)``, awaited if it is a coroutine."""
    module, _, name = target.partition(":")
    result = getattr(importlib.import_module(module), name)(fake, **kwargs)
    return await result if inspect.isawaitable(result) else result


class FakeProcess:
    """The fake server on a loopback port, in a separate process (its CPU is not ours).

    ``arrange``: workloads whose objects the fake gets first; ``options`` go to
    ``FakeTencentChat``.
    """

    def __init__(self, *, arrange: Iterable[Workload] = (), **options: Any) -> None:
        self._options = options
        self._workloads = list(arrange)
        self.base_url = ""

    def __enter__(self) -> FakeProcess:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(
            target=_serve_fake, args=(child, self._options, self._workloads), daemon=True
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

    def call(self, target: str, **kwargs: Any) -> Any:
        """Run ``function(fake, **kwargs)`` (``target`` is ``"module:function"``, a module
        the fake's process can import, e.g. one of ``benchmarks/``) in the fake's process
        and event loop, awaited if it is a coroutine, while the fake keeps serving; its
        (picklable) result. RuntimeError, with the traceback, if it raised."""
        self._conn.send(("call", target, kwargs))
        status, result = self._conn.recv()
        if status != "ok":
            raise RuntimeError(f"{target} failed in the fake's process:\n{result}")
        return result

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


def median(runs: Sequence[Any], path: str = "", *, places: int = 3) -> Any:
    """The median over ``runs`` of the figure at ``path`` (keys joined by dots; "" the
    runs themselves), a float rounded to ``places``; of dicts, each key's; None if no
    run has one."""
    values = []
    for run in runs:
        for key in path.split(".") if path else ():
            run = run[key]
        values.append(run)
    return _median(values, places)


def _median(values: list[Any], places: int) -> Any:
    known = [value for value in values if value is not None]
    if not known:
        return None
    if isinstance(known[0], dict):
        return {key: _median([value.get(key) for value in known], places) for key in known[0]}
    middle = statistics.median(known)
    return round(middle, places) if isinstance(middle, float) else middle


class GcPauses:
    """The garbage collector's pauses while in ``with`` (a cause of event-loop lag with
    many calls pending), counted in place: measuring them makes no garbage."""

    def __init__(self) -> None:
        self.collections = 0
        self.seconds = 0.0
        self.longest = 0.0
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            pause = time.perf_counter() - self._started
            self.collections += 1
            self.seconds += pause
            self.longest = max(self.longest, pause)

    def __enter__(self) -> GcPauses:
        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self)

    def report(self) -> dict[str, float]:
        return {
            "collections": self.collections,
            "seconds": round(self.seconds, 3),
            "max_ms": round(self.longest * 1e3, 1),
        }


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "date": time.strftime("%Y-%m-%d"),
    }


def write_result(name: str, data: dict[str, Any], *, aside: bool | None = None) -> Path:
    """Write ``benchmarks/results/NAME.json`` (with the machine noted) and say where.

    Runs set ``aside`` (by default ``--quick`` ones) go to ``results/quick/``, so that a
    smoke test or a trial never replaces the published numbers.
    """
    folder = RESULTS / "quick" if (quick_flag() if aside is None else aside) else RESULTS
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **data}, indent=2) + "\n")
    print(f"wrote {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")
    return path


def quick_flag() -> bool:
    """``--quick``: a few seconds, for CI's smoke test."""
    return "--quick" in sys.argv[1:]
