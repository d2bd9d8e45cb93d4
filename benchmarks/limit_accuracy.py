"""Limit accuracy: does any sliding second hold more requests of one endpoint than its limit?

All ten endpoints are saturated at once with ``asyncio.gather``, through several
clients side by side: this SDK (by default 95% of each documented rate: 190/s, and 95/s
for the live-room APIs documented at 100/s), a naive ``aiolimiter.AsyncLimiter(200,
1)`` in front of raw httpx, raw httpx with no limiter, and the same two over raw aiohttp
(plain httpx tops out below 200 calls/s on one core here, so on its own it would never
show what an unpaced client does to the server). The fake server runs in its own
process and counts arrivals; it runs twice, on plain loopback and with its
latency-spread setting (each arrival counted 5-50 ms after it was sent, as a network
would deliver it). Reported per client and endpoint: the most requests in any sliding second
at send time and at arrival, the sustained rate, and the 60007 refusals.

    python benchmarks/limit_accuracy.py [--quick]
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import aiolimiter
import httpx

from _harness import LOADED, FakeProcess, every_endpoint, quick_flag, raw_body, write_result
from tencent_chat_robots import Call, TencentChatError
from tencent_chat_robots._endpoints import BY_PATH
from tencent_chat_robots.testing import max_in_window

Calls = dict[str, list[Call[Any]]]  # per API path
# A network delivering each request 5-50 ms after it was sent: the fake counts every
# arrival up to 45 ms late (the constant 5 ms shifts every window alike, so it drops out).
SPREAD = 0.045
RAW_IN_FLIGHT = 64


async def _sdk(fake: FakeProcess, calls: Calls, sends: dict[str, list[float]]) -> None:
    def on_attempt(record: Any) -> None:
        sends[record.endpoint].append(record.started)

    # The fake answers 60007 past its limit; retrying those would hide them.
    async with fake.client(on_attempt=on_attempt, max_retries=0) as chat:

        async def one(call: Call[Any]) -> None:
            with contextlib.suppress(TencentChatError):  # counted at the server
                await chat.call(call)

        await asyncio.gather(*(one(call) for e in LOADED for call in calls[e]))


async def _raw(
    fake: FakeProcess,
    calls: Calls,
    sends: dict[str, list[float]],
    library: str,
    limiter_for: Callable[[], Any] | None,
) -> None:
    limits = {e: limiter_for() for e in LOADED} if limiter_for else {}
    # httpx's pool slows down quadratically with thousands of queued requests, so the
    # raw clients bound what is in flight, as a careful user would.
    in_flight = asyncio.Semaphore(RAW_IN_FLIGHT)
    async with _poster(library) as post:

        async def one(endpoint: str, url: str, body: dict[str, Any]) -> None:
            limiter = limits.get(endpoint)
            if limiter is not None:
                await limiter.acquire()
            async with in_flight:
                sends[endpoint].append(time.monotonic())
                await post(f"{url}{random.getrandbits(32)}", json.dumps(body).encode())

        await asyncio.gather(
            *(one(e, fake.signed_url(e), raw_body(call)) for e in LOADED for call in calls[e])
        )


@contextlib.asynccontextmanager
async def _poster(library: str) -> AsyncIterator[Callable[[str, bytes], Awaitable[bytes]]]:
    headers = {"Content-Type": "application/json"}
    if library == "httpx":
        pool = httpx.Limits(max_connections=RAW_IN_FLIGHT, max_keepalive_connections=RAW_IN_FLIGHT)
        async with httpx.AsyncClient(timeout=30, limits=pool) as client:

            async def post_httpx(url: str, body: bytes) -> bytes:
                return (await client.post(url, content=body, headers=headers)).content

            yield post_httpx
    else:
        async with aiohttp.ClientSession() as session:

            async def post_aiohttp(url: str, body: bytes) -> bytes:
                async with session.post(url, data=body, headers=headers) as response:
                    return await response.read()

            yield post_aiohttp


def _summary(
    sends: dict[str, list[float]], stats: dict[str, dict[str, list[Any]]]
) -> dict[str, Any]:
    rows = {}
    for endpoint in LOADED:
        arrivals = stats[endpoint]["arrivals"]
        codes = stats[endpoint]["codes"]
        span = (max(arrivals) - min(arrivals)) if len(arrivals) > 1 else 0.0
        rows[endpoint] = {
            "calls": len(codes),
            "max_per_second_sent": max_in_window(sends[endpoint]),
            "max_per_second_arrived": max_in_window(arrivals),
            "sustained_rate": round((len(arrivals) - 1) / span, 1) if span else 0.0,
            "refused_60007": codes.count(60007),
            "other_errors": sum(1 for c in codes if c not in (0, 60007)),
        }
    by_limit: dict[str, int] = {}
    for endpoint, row in rows.items():
        limit = str(BY_PATH[endpoint].documented_rate)
        by_limit[limit] = max(by_limit.get(limit, 0), row["max_per_second_arrived"])
    return {
        "endpoints": rows,
        "worst_arrived": max(r["max_per_second_arrived"] for r in rows.values()),
        "worst_arrived_by_limit": by_limit,  # documented limit -> most at the server
        "worst_sent": max(r["max_per_second_sent"] for r in rows.values()),
        "refused_60007": sum(r["refused_60007"] for r in rows.values()),
        "other_errors": sum(r["other_errors"] for r in rows.values()),
        "median_sustained_rate": statistics.median(r["sustained_rate"] for r in rows.values()),
    }


def _naive() -> aiolimiter.AsyncLimiter:
    return aiolimiter.AsyncLimiter(200, 1)


CLIENTS: dict[str, Callable[[FakeProcess, Calls, dict[str, list[float]]], Awaitable[None]]] = {
    "tencent-chat-robots (95% of each rate)": _sdk,
    "aiolimiter(200, 1) + httpx": lambda f, w, s: _raw(f, w, s, "httpx", _naive),
    "httpx, no limiter": lambda f, w, s: _raw(f, w, s, "httpx", None),
    "aiolimiter(200, 1) + aiohttp": lambda f, w, s: _raw(f, w, s, "aiohttp", _naive),
    "aiohttp, no limiter": lambda f, w, s: _raw(f, w, s, "aiohttp", None),
}


def main() -> None:
    calls = 30 if quick_flag() else 1000
    workloads = every_endpoint(calls)
    made = {path: list(workload.calls(calls)) for path, workload in workloads.items()}
    runs: dict[str, Any] = {}
    for network, spread in (("loopback", 0.0), ("jitter 5-50 ms", SPREAD)):
        with FakeProcess(arrange=workloads.values(), latency_spread=spread, seed=1) as fake:
            for name, client in CLIENTS.items():
                fake.reset()
                if not quick_flag():  # let the server's one-second windows drain
                    time.sleep(1.1)
                sends: dict[str, list[float]] = {e: [] for e in LOADED}
                began = time.perf_counter()
                asyncio.run(client(fake, made, sends))
                result = _summary(sends, fake.stats())
                result["seconds"] = round(time.perf_counter() - began, 2)
                runs[f"{network} / {name}"] = result
                print(
                    f"{network:>15} | {name:<28} | max/s at server {result['worst_arrived']:>4}"
                    f" | 60007: {result['refused_60007']:>5} | sustained"
                    f" {result['median_sustained_rate']:>6}/s | {result['seconds']} s"
                )
    write_result(
        "limit_accuracy",
        {"calls_per_endpoint": calls, "quick": quick_flag(), "runs": runs},
    )


if __name__ == "__main__":
    main()
