"""Many processes, one app limit: does a fleet sharing a Redis limiter stay under 200/s?

Four worker processes (``spawn``: fresh interpreters, as on separate hosts) each gather
500 calls of one endpoint through ``TencentChat(limiter=RedisRateLimiter(...))`` at the
default 190/s, all sharing one redis-server (started here from PATH on a free port).
The fake server runs in a process of its own and counts arrivals. Reported: the most
arrivals in any sliding second at the server (its limit is 200), the 60007 refusals,
the fleet's combined sustained rate, and the Redis script calls per granted start.
For comparison, the most starts granted in any second by Redis's clock (exact by
construction) and sent in any second by the workers' clocks (one monotonic clock per host).

    python benchmarks/multiprocess_limit.py [--quick]
"""

from __future__ import annotations

import asyncio
import multiprocessing
import shutil
import socket
import subprocess
import time
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from typing import Any

import redis

from _harness import (
    ADMIN,
    SDKAPPID,
    SECRET_KEY,
    FakeProcess,
    max_in_window,
    quick_flag,
    write_result,
)
from tencent_chat_robots import DEFAULT_RATE_LIMIT, Endpoint, TencentChat
from tencent_chat_robots._redis_limiter import RedisRateLimiter

WORKERS = 4
ENDPOINT = Endpoint.GET_ALL_ROBOTS
RATE = DEFAULT_RATE_LIMIT


async def _worker(
    redis_url: str, base_url: str, calls: int, go: Event, out: Queue[Any]
) -> dict[str, Any]:
    sends: list[float] = []
    grants: list[int] = []
    limiter = RedisRateLimiter.from_url(redis_url, rate=RATE, sdkappid=SDKAPPID)
    ask = limiter._ask

    async def recording_ask(key: str, pause_us: int) -> Any:
        reply = await ask(key, pause_us)
        if reply.granted:
            grants.append(reply.redis_time)  # µs of Redis TIME: the one clock of the fleet
        return reply

    limiter._ask = recording_ask  # type: ignore[method-assign]
    async with (
        limiter,
        TencentChat(
            SDKAPPID,
            SECRET_KEY,
            admin=ADMIN,
            base_url=base_url,
            limiter=limiter,
            max_retries=0,  # a refusal must show, not be retried away
            on_attempt=lambda record: sends.append(record.started),
        ) as chat,
    ):
        await chat.get_all_robots()  # connections warm before the clock starts
        out.put("ready")
        await asyncio.to_thread(go.wait)
        sends.clear()
        grants.clear()
        results = await asyncio.gather(
            *(chat.get_all_robots() for _ in range(calls)), return_exceptions=True
        )
    errors = [r for r in results if isinstance(r, BaseException)]
    # loop.time() is time.monotonic(): one clock for every process on the host.
    return {
        "ok": len(results) - len(errors),
        "errors": len(errors),
        "sends": sends,
        "grants": grants,
    }


def _run_worker(redis_url: str, base_url: str, calls: int, go: Event, out: Queue[Any]) -> None:
    out.put(asyncio.run(_worker(redis_url, base_url, calls, go, out)))


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


def main() -> None:
    calls = 100 if quick_flag() else 500
    port = _free_port()
    server = _start_redis(port)
    redis_url = f"redis://127.0.0.1:{port}"
    ctx = multiprocessing.get_context("spawn")
    go = ctx.Event()
    out: Any = ctx.Queue()
    try:
        with FakeProcess() as fake:
            workers = [
                ctx.Process(target=_run_worker, args=(redis_url, fake.base_url, calls, go, out))
                for _ in range(WORKERS)
            ]
            for worker in workers:
                worker.start()
            assert [out.get(timeout=120) for _ in workers] == ["ready"] * WORKERS
            fake.reset()
            scripts_before = _script_calls(port)
            began = time.perf_counter()
            go.set()
            tallies = [out.get(timeout=600) for _ in workers]
            seconds = time.perf_counter() - began
            for worker in workers:
                worker.join(30)
            stats = fake.stats()[ENDPOINT]
            script_calls = _script_calls(port) - scripts_before
    finally:
        server.kill()
        server.wait()

    arrivals, codes = stats["arrivals"], stats["codes"]
    sends = [t for tally in tallies for t in tally["sends"]]
    grants = [t for tally in tallies for t in tally["grants"]]
    total = WORKERS * calls
    sustained = (len(arrivals) - 1) / (max(arrivals) - min(arrivals))
    summary = {
        "processes x calls": f"{WORKERS} x {calls} ({ENDPOINT})",
        "limiter rate (shared)": f"{RATE}/s",
        "most grants in any second (Redis clock)": max_in_window(grants, 1_000_000),
        "most arrivals in any second at the server": max_in_window(arrivals),
        "most sends in any second (client clocks)": max_in_window(sends),
        "60007 refusals": codes.count(60007),
        "failed calls (any error)": sum(tally["errors"] for tally in tallies),
        "combined sustained rate": f"{sustained:.1f}/s ({sustained / RATE:.1%} of {RATE})",
        "Redis script calls per start": round(script_calls / total, 2),
        "seconds": round(seconds, 2),
    }
    targets = {
        "never more than 200 in a second at the server": {
            "value": max_in_window(arrivals),
            "met": max_in_window(arrivals) <= 200,
        },
        "no 60007": {"value": codes.count(60007), "met": codes.count(60007) == 0},
        "sustained >= 95% of the rate": {
            "value": round(sustained, 1),
            "met": sustained >= 0.95 * RATE,
        },
    }
    for key, value in summary.items():
        print(f"{key:>44}: {value}")
    write_result(
        "multiprocess_limit",
        {"quick": quick_flag(), "summary": summary, "targets": targets},
    )


def _script_calls(port: int) -> int:
    client = redis.Redis(port=port)
    try:
        stats: dict[str, Any] = client.info("commandstats")
    finally:
        client.close()
    calls: int = stats.get("cmdstat_evalsha", {}).get("calls", 0)
    return calls


if __name__ == "__main__":
    main()
