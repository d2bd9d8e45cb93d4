"""Many processes, one app limit: what does sharing it through Redis cost, and is it fair?

Worker processes (``spawn``: fresh interpreters, as on separate hosts) call one endpoint
through ``TencentChat(limiter=RedisRateLimiter.from_url(url, rate=190))`` (no
``sdkappid``: the client binds it), all sharing one redis-server (started here from PATH
on a free port). The fake server runs in a process of its own and counts arrivals.

* Fleets of 2, 4, 8 and 16 processes, each with a bulk backlog (``priority="bulk"``)
  larger than the run can serve. Measured over the steady part of the run (from 0.5 s
  after the start): Redis script calls per start, the fleet's client CPU per start (each
  worker's ``time.process_time()``, summed), each process's share of the starts
  (min/max), and the sustained rate at the server; over the whole run, the most
  arrivals in any sliding second (the server's limit is 200) and the 60007 refusals.
  The same fleet again with each process paced alone at its share (no Redis): the CPU
  difference is what sharing costs per start, apart from the HTTP call itself.
* Priority: three processes with 3,000-call bulk backlogs, and a fourth making one
  interactive call every 0.2 s; its wait for the rate permit (from the call to the
  permit) as p50/p99/max, with the same fleet measures.

Full runs report the median of three repeats of each. ``--baseline FILE`` measures
another ``_redis_limiter.py`` (e.g. ``git show HEAD~1:src/tencent_chat_robots/
_redis_limiter.py``) in its place, one class only, and writes nothing.

    python benchmarks/multiprocess_limit.py [--quick] [--baseline FILE]
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import math
import multiprocessing
import shutil
import socket
import subprocess
import sys
import time
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from typing import Any

import redis

from _harness import ADMIN, SDKAPPID, SECRET_KEY, FakeProcess, median, quick_flag, write_result
from tencent_chat_robots import DEFAULT_RATE_LIMIT, Endpoint, TencentChat
from tencent_chat_robots.testing import max_in_window, percentile

ENDPOINT = Endpoint.GET_ALL_ROBOTS
RATE = DEFAULT_RATE_LIMIT
WARM = 0.5  # s after the start before measuring: every backlog queued, turns settled
FLEETS = (2, 4) if quick_flag() else (2, 4, 8, 16)
FLEET_SECONDS = 2.0 if quick_flag() else 5.0  # measured, after WARM
PRIORITY_SECONDS = 5.0 if quick_flag() else 20.0
INTERACTIVE_EVERY = 0.2
BULK_BACKLOG = 3_000
REPEATS = 1 if quick_flag() else 3


def _baseline_file() -> str | None:
    args = sys.argv[1:]
    return args[args.index("--baseline") + 1] if "--baseline" in args else None


def _limiter(redis_url: str, baseline: str | None) -> Any:
    if baseline is None:
        from tencent_chat_robots import RedisRateLimiter

        return RedisRateLimiter.from_url(redis_url, rate=RATE)
    # Loaded as a module of the package, so that its relative imports resolve.
    spec = importlib.util.spec_from_file_location("tencent_chat_robots._baseline", baseline)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.RedisRateLimiter.from_url(redis_url, rate=RATE, sdkappid=SDKAPPID)


async def _worker(
    role: dict[str, Any], redis_url: str, base_url: str, go: Event, out: Queue[Any]
) -> dict[str, Any]:
    """Put ``"ready"``, wait for ``go``, run ``role`` for its seconds; return the tally."""
    sends: list[float] = []
    permit_waits: list[float] = []
    local_rate = role.get("local_rate")
    # Without Redis (local_rate): each process paced alone at its share, the same work
    # otherwise; the difference in CPU is what sharing costs.
    limiter = contextlib.nullcontext() if local_rate else _limiter(redis_url, role["baseline"])
    async with (
        limiter,
        TencentChat(
            SDKAPPID,
            SECRET_KEY,
            admin=ADMIN,
            base_url=base_url,
            limiter=None if local_rate else limiter,
            rate_limit=local_rate,
            priority=role["priority"],
            max_retries=0,  # a refusal must show, not be retried away
            on_attempt=lambda record: sends.append(record.started),
        ) as chat,
    ):
        bound: Any = chat.limiter
        script_calls: list[float] = []
        if not local_rate:
            script = bound.script

            class CountingScript:  # the limiter's seam for what it asks Redis
                def __getattr__(self, name: str) -> Any:
                    return getattr(script, name)

                async def ask(self, *args: Any, **kwargs: Any) -> Any:
                    script_calls.append(time.monotonic())
                    return await script.ask(*args, **kwargs)

            bound.script = CountingScript()
        acquire = bound.acquire

        async def timed_acquire(key: str, **kwargs: Any) -> None:
            began = time.monotonic()
            await acquire(key, **kwargs)
            permit_waits.append(time.monotonic() - began)

        bound.acquire = timed_acquire
        await chat.get_all_robots()  # connections warm, script loaded
        out.put("ready")
        await asyncio.to_thread(go.wait)
        began = time.monotonic()  # loop.time(): one monotonic clock for the whole host
        sends.clear()
        script_calls.clear()
        permit_waits.clear()
        tasks: list[asyncio.Future[Any]] = []
        if role["interactive_every"]:
            tasks.append(asyncio.ensure_future(_every(chat, role["interactive_every"])))
        else:
            tasks += [asyncio.ensure_future(chat.get_all_robots()) for _ in range(role["calls"])]
        await asyncio.sleep(began + WARM - time.monotonic())
        cpu = time.process_time()
        await asyncio.sleep(began + WARM + role["seconds"] - time.monotonic())
        cpu = time.process_time() - cpu
        for task in tasks:
            task.cancel()  # the backlog left: not needed
        results = await asyncio.gather(*tasks, return_exceptions=True)
    measured = (began + WARM, began + WARM + role["seconds"])
    return {
        "starts": sum(measured[0] <= t < measured[1] for t in sends),
        "script_calls": sum(measured[0] <= t < measured[1] for t in script_calls),
        "cpu": cpu,
        "permit_waits": permit_waits,
        "errors": sum(
            isinstance(r, BaseException) and not isinstance(r, asyncio.CancelledError)
            for r in results
        ),
        "began": began,
        "index": role["index"],
    }


async def _every(chat: TencentChat, seconds: float) -> None:
    """One interactive call every ``seconds``, each on its own: a web request's."""
    calls: list[asyncio.Task[Any]] = []
    try:
        while True:
            calls.append(asyncio.ensure_future(chat.get_all_robots()))
            await asyncio.sleep(seconds)
    finally:
        for call in calls:
            call.cancel()


def _run_worker(
    role: dict[str, Any], redis_url: str, base_url: str, go: Event, out: Queue[Any]
) -> None:
    out.put(asyncio.run(_worker(role, redis_url, base_url, go, out)))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _start_redis(port: int) -> subprocess.Popen[bytes]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not on PATH (apt-get install redis-server)")
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)
    deadline = time.monotonic() + 10
    while True:  # poll until it answers: the only readiness signal it gives
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise
            time.sleep(0.01)
    client.close()
    return process


def _script_calls(port: int) -> int:
    client = redis.Redis(port=port)
    try:
        stats: dict[str, Any] = client.info("commandstats")
    finally:
        client.close()
    return sum(stats.get(f"cmdstat_{c}", {}).get("calls", 0) for c in ("evalsha", "eval"))


def _run(roles: list[dict[str, Any]]) -> dict[str, Any]:
    """One run: a fresh Redis and fake server, one worker process per role."""
    roles = [{**role, "index": index} for index, role in enumerate(roles)]
    port = _free_port()
    server = _start_redis(port)
    redis_url = f"redis://127.0.0.1:{port}"
    ctx = multiprocessing.get_context("spawn")
    go = ctx.Event()
    out: Any = ctx.Queue()
    try:
        with FakeProcess() as fake:
            workers = [
                ctx.Process(target=_run_worker, args=(role, redis_url, fake.base_url, go, out))
                for role in roles
            ]
            for worker in workers:
                worker.start()
            assert [out.get(timeout=120) for _ in workers] == ["ready"] * len(workers)
            fake.reset()
            scripts_before = _script_calls(port)
            go.set()
            # In the order they finish: put back in the roles' order.
            tallies = sorted((out.get(timeout=600) for _ in workers), key=lambda t: t["index"])
            for worker in workers:
                worker.join(30)
            stats = fake.stats()[ENDPOINT]
            script_calls_whole_run = _script_calls(port) - scripts_before
    finally:
        server.kill()
        server.wait()

    seconds = roles[0]["seconds"]
    began = min(tally["began"] for tally in tallies)
    arrivals = stats["arrivals"]
    measured = [t for t in arrivals if began + WARM <= t < began + WARM + seconds]
    starts = sum(tally["starts"] for tally in tallies)
    bulk = [tally["starts"] for tally, role in zip(tallies, roles, strict=True) if role["calls"]]
    interactive_waits = [
        wait
        for tally, role in zip(tallies, roles, strict=True)
        if role["interactive_every"]
        for wait in tally["permit_waits"]
    ]
    result = {
        # Counted by the workers over the measured part, and by Redis over the whole run.
        "script_calls_per_start": sum(t["script_calls"] for t in tallies) / max(1, starts),
        "script_calls_per_start_redis": script_calls_whole_run / max(1, len(arrivals)),
        "fleet_cpu_ms_per_start": 1000 * sum(t["cpu"] for t in tallies) / max(1, starts),
        "share_min_max": min(bulk) / max(bulk) if bulk and max(bulk) else 0.0,
        "sustained_rate": len(measured) / seconds,
        "max_arrivals_in_any_second": max_in_window(arrivals),
        "refusals_60007": stats["codes"].count(60007),
        "failed_calls": sum(t["errors"] for t in tallies),
    }
    if interactive_waits:
        result["interactive_wait_ms"] = {
            "calls": len(interactive_waits),
            "p50": 1000 * percentile(interactive_waits, 0.5),
            "p99": 1000 * percentile(interactive_waits, 0.99),
            "max": 1000 * max(interactive_waits),
        }
    return result


def _fleet_roles(
    processes: int, baseline: str | None, *, local: bool = False
) -> list[dict[str, Any]]:
    # Enough that no process runs dry before the end, whatever its share.
    calls = math.ceil(2 * RATE * (WARM + FLEET_SECONDS) / processes) + 50
    role = {
        "calls": calls,
        "interactive_every": 0,
        "priority": "bulk",
        "seconds": FLEET_SECONDS,
        "baseline": baseline,
        "local_rate": RATE / processes if local else None,
    }
    return [role] * processes


def _priority_roles(baseline: str | None) -> list[dict[str, Any]]:
    common = {"seconds": PRIORITY_SECONDS, "baseline": baseline}
    bulk = {**common, "calls": BULK_BACKLOG, "interactive_every": 0, "priority": "bulk"}
    interactive = {
        **common,
        "calls": 0,
        "interactive_every": INTERACTIVE_EVERY,
        "priority": "interactive",
    }
    return [bulk, bulk, bulk, interactive]


def _targets(fleets: dict[str, Any], priority: dict[str, Any]) -> dict[str, Any]:
    largest = fleets[str(max(FLEETS))]
    waits = priority["interactive_wait_ms"]
    checks = {
        f"{max(FLEETS)} processes: script calls per start <= 1.5": (
            largest["script_calls_per_start"],
            largest["script_calls_per_start"] <= 1.5,
        ),
        f"{max(FLEETS)} processes: fleet client CPU per start <= 1 ms": (
            largest["fleet_cpu_ms_per_start"],
            largest["fleet_cpu_ms_per_start"] <= 1.0,
        ),
        f"{max(FLEETS)} processes: share min/max >= 0.9": (
            largest["share_min_max"],
            largest["share_min_max"] >= 0.9,
        ),
        "every fleet: sustained >= 95% of the rate": (
            min(f["sustained_rate"] for f in fleets.values()),
            all(f["sustained_rate"] >= 0.95 * RATE for f in fleets.values()),
        ),
        "every run: never more than 200 in a second at the server": (
            max(f["max_arrivals_in_any_second"] for f in [*fleets.values(), priority]),
            all(f["max_arrivals_in_any_second"] <= 200 for f in [*fleets.values(), priority]),
        ),
        "every run: no 60007": (
            sum(f["refusals_60007"] for f in [*fleets.values(), priority]),
            all(f["refusals_60007"] == 0 for f in [*fleets.values(), priority]),
        ),
        "priority: interactive permit wait p99 <= 30 ms": (waits["p99"], waits["p99"] <= 30),
        "priority: combined >= 95% of the rate": (
            priority["sustained_rate"],
            priority["sustained_rate"] >= 0.95 * RATE,
        ),
        "priority: script calls per start <= 1.5": (
            priority["script_calls_per_start"],
            priority["script_calls_per_start"] <= 1.5,
        ),
    }
    return {name: {"value": value, "met": met} for name, (value, met) in checks.items()}


def main() -> None:
    baseline = _baseline_file()
    fleets: dict[str, Any] = {}
    for processes in FLEETS:
        runs = [_run(_fleet_roles(processes, baseline)) for _ in range(REPEATS)]
        fleets[str(processes)] = fleet = median(runs)
        alone = median([_run(_fleet_roles(processes, None, local=True)) for _ in range(REPEATS)])
        fleet["alone_cpu_ms_per_start"] = alone["fleet_cpu_ms_per_start"]
        fleet["sharing_cpu_ms_per_start"] = round(
            fleet["fleet_cpu_ms_per_start"] - alone["fleet_cpu_ms_per_start"], 3
        )
        print(f"{processes:>2} processes: {fleet}", flush=True)
    priority = median([_run(_priority_roles(baseline)) for _ in range(REPEATS)])
    print(f"priority: {priority}", flush=True)
    summary = {
        "fleet": f"N processes x a bulk backlog of {ENDPOINT}, shared {RATE}/s, "
        f"{FLEET_SECONDS:g} s measured",
        **{
            f"{n} processes: script calls / CPU ms per start / share min/max": (
                f"{f['script_calls_per_start']:.2f} / {f['fleet_cpu_ms_per_start']:.2f} / "
                f"{f['share_min_max']:.2f}"
            )
            for n, f in fleets.items()
        },
        **{
            f"{n} processes: fleet CPU ms per start, each paced alone (no Redis) / the "
            "difference, what sharing costs": (
                f"{f['alone_cpu_ms_per_start']:.2f} / {f['sharing_cpu_ms_per_start']:.2f}"
            )
            for n, f in fleets.items()
        },
        **{
            f"{n} processes: sustained / most at the server in a second / 60007": (
                f"{f['sustained_rate']:.1f}/s / {f['max_arrivals_in_any_second']} / "
                f"{f['refusals_60007']}"
            )
            for n, f in fleets.items()
        },
        "priority: 3 bulk backlogs + 1 interactive process (calls every "
        f"{INTERACTIVE_EVERY:g} s), {PRIORITY_SECONDS:g} s": (
            f"interactive permit wait p50 {priority['interactive_wait_ms']['p50']:.1f} ms, "
            f"p99 {priority['interactive_wait_ms']['p99']:.1f} ms, "
            f"max {priority['interactive_wait_ms']['max']:.1f} ms; "
            f"{priority['sustained_rate']:.1f}/s combined, "
            f"{priority['script_calls_per_start']:.2f} script calls per start"
        ),
        "repeats (medians)": REPEATS,
    }
    for key, value in summary.items():
        print(f"{key}: {value}")
    if baseline is not None:
        return  # a comparison, not the published numbers
    write_result(
        "multiprocess_limit",
        {
            "quick": quick_flag(),
            "summary": summary,
            "fleets": fleets,
            "priority": priority,
            "targets": _targets(fleets, priority),
        },
    )


if __name__ == "__main__":
    main()
