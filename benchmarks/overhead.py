"""Overhead and ceiling: what the SDK costs per call against raw HTTP clients.

The same call (``get_all_robots``, body ``{}``) is made with the limiter off through
three clients: ``TencentChat(rate_limit=None)`` on its default aiohttp transport, and
raw posts of identical requests (UserSig signed once up front, a fresh ``random`` per
call) through a plain ``aiohttp.ClientSession`` (the floor) and a plain
``httpx.AsyncClient``. The fake server (no rate limit) runs in a process of its own,
so the CPU measured (``time.process_time`` of this process over a run, divided by the
calls) is the client's alone. Each client is warmed up first; then, at concurrency 1,
10 and 50 (a semaphore per run), the clients take turns (A B C A B C ...) for several
rounds so that drift of the machine falls on all of them alike. Reported: medians over
the rounds of calls/s and CPU per call, and the SDK's CPU per call as a ratio of each
raw client's (median of the per-round ratios). httpx costs several times more per
call, so its runs make fewer calls; every figure is per call or per second. The fake
server's CPU per call is shown too (Linux), since calls/s is bounded by whichever of
the two processes runs out of CPU first: CPU per call is the steadier figure on a
shared machine, calls/s the one that moves with it.

OpenTelemetry: the SDK client runs as a user's would, with ``opentelemetry-api``
installed and no provider set (the no-op default); a fourth client, the same SDK with
its telemetry taken out, shows what that costs. A last phase sets the OpenTelemetry
SDK's tracer and meter providers (spans and metrics recorded, exported nowhere) and
measures the two SDK clients again, in turn, at the highest concurrency.

    python benchmarks/overhead.py [--quick]
"""

from __future__ import annotations

import asyncio
import gc
import math
import multiprocessing
import os
import random
import statistics
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import aiohttp
import httpx

from _harness import FakeProcess, median, quick_flag, write_result
from tencent_chat_robots import Endpoint

CONCURRENCY = (1, 10, 50)
HEADERS = {"Content-Type": "application/json"}
BODY = b"{}"
WARM_UP = 200

SDK, AIOHTTP, HTTPX = "tencent-chat-robots", "raw aiohttp", "raw httpx"
NO_OTEL = "tencent-chat-robots without OpenTelemetry"

# Targets from the issue.
MIN_CALLS_PER_SECOND = 2000  # SDK at concurrency 50, one process
MAX_CPU_VS_AIOHTTP = 1.5  # SDK CPU per call / raw aiohttp's
MAX_CPU_VS_HTTPX = 1.0  # SDK CPU per call / raw httpx's (must be below)
MAX_OTEL_NOOP = 1.10  # CPU per call with opentelemetry-api and no provider / without it

Call = Callable[[], Awaitable[object]]


async def _clients(fake: FakeProcess, stack: AsyncExitStack) -> dict[str, Call]:
    """One zero-argument call per client, each making one complete request."""
    chat = await stack.enter_async_context(fake.client(rate_limit=None))
    bare = await stack.enter_async_context(fake.client(rate_limit=None))
    bare._sender.telemetry = None  # as if opentelemetry-api were not installed
    session = await stack.enter_async_context(aiohttp.ClientSession())
    # httpx keeps only 20 idle connections by default; at concurrency 50 it would then
    # reconnect all the time, which is not what a careful user would measure.
    pool = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    client = await stack.enter_async_context(httpx.AsyncClient(limits=pool, timeout=30))
    url = fake.signed_url(Endpoint.GET_ALL_ROBOTS)
    getrandbits = random.getrandbits

    async def sdk() -> object:
        return await chat.get_all_robots()

    async def sdk_without_otel() -> object:
        return await bare.get_all_robots()

    async def raw_aiohttp() -> object:
        async with session.post(f"{url}{getrandbits(32)}", data=BODY, headers=HEADERS) as r:
            if r.status != 200:
                raise RuntimeError(f"HTTP {r.status}")
            return await r.read()

    async def raw_httpx() -> object:
        r = await client.post(f"{url}{getrandbits(32)}", content=BODY, headers=HEADERS)
        if r.status_code != 200:
            raise RuntimeError(f"HTTP {r.status_code}")
        return r.content

    return {SDK: sdk, NO_OTEL: sdk_without_otel, AIOHTTP: raw_aiohttp, HTTPX: raw_httpx}


async def _drive(call: Call, calls: int, concurrency: int) -> None:
    """``calls`` calls, at most ``concurrency`` at once."""
    slots = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with slots:
            await call()

    await asyncio.gather(*(one() for _ in range(calls)))


def _server_cpu() -> float | None:
    """CPU seconds used so far by the fake server's process (Linux only; else None)."""
    try:
        (server,) = multiprocessing.active_children()
        stat = Path(f"/proc/{server.pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    fields = stat.rsplit(")", 1)[1].split()  # the name in parentheses may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


async def _measure(call: Call, calls: int, concurrency: int) -> dict[str, float | None]:
    gc.collect()
    wall, cpu, server_before = time.perf_counter(), time.process_time(), _server_cpu()
    await _drive(call, calls, concurrency)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    server_after = _server_cpu()
    server = None
    if server_before is not None and server_after is not None:
        server = round((server_after - server_before) / calls * 1e6, 1)
    return {
        "calls": calls,
        "seconds": round(wall, 3),
        "calls_per_second": round(calls / wall, 1),
        "cpu_us_per_call": round(cpu / calls * 1e6, 1),
        # The fake's side of the same calls, to tell whose CPU bounds calls/s.
        "server_cpu_us_per_call": server,
    }


async def _benchmark(fake: FakeProcess, rounds: int, calls: dict[str, int]) -> list[dict[str, Any]]:
    """Every measured run: per concurrency, warm-ups, then the clients in turn per round."""
    runs = []
    async with AsyncExitStack() as stack:
        clients = await _clients(fake, stack)
        for concurrency in CONCURRENCY:
            for call in clients.values():  # opens the connections this concurrency needs
                await _drive(call, WARM_UP, concurrency)
            for number in range(rounds):
                for name, call in clients.items():
                    fake.reset()  # the fake's call log is not ours to grow without end
                    result = await _measure(call, calls[name], concurrency)
                    runs.append(
                        {"concurrency": concurrency, "round": number, "client": name, **result}
                    )
    return runs


async def _with_providers(fake: FakeProcess, rounds: int, calls: int) -> dict[str, Any]:
    """The SDK with OpenTelemetry's SDK providers set, against the SDK without telemetry."""
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.trace import TracerProvider

    trace.set_tracer_provider(TracerProvider())
    metrics.set_meter_provider(MeterProvider())
    concurrency = max(CONCURRENCY)
    cpu: dict[str, list[float]] = {SDK: [], NO_OTEL: []}
    async with AsyncExitStack() as stack:
        clients = await _clients(fake, stack)
        for name in cpu:
            await _drive(clients[name], WARM_UP, concurrency)
        for _ in range(rounds):
            for name, per_call in cpu.items():
                fake.reset()
                per_call.append(
                    (await _measure(clients[name], calls, concurrency))["cpu_us_per_call"]
                )
    return {
        "concurrency": concurrency,
        "cpu_us_per_call": {name: statistics.median(values) for name, values in cpu.items()},
        "cpu_providers_on_over_none": round(
            statistics.median(_ratio(a, b) for a, b in zip(cpu[SDK], cpu[NO_OTEL], strict=True)), 3
        ),
    }


def _ratio(a: float, b: float) -> float:
    return round(a / b, 3) if b else math.inf


def _aggregate(runs: list[dict[str, Any]], rounds: int) -> dict[str, Any]:
    """Per concurrency: medians per client, and the SDK's per-round CPU ratios."""
    table: dict[str, Any] = {}
    for concurrency in CONCURRENCY:
        at = [r for r in runs if r["concurrency"] == concurrency]
        per_client = {}
        for name in (SDK, NO_OTEL, AIOHTTP, HTTPX):
            mine = [r for r in at if r["client"] == name]
            per_client[name] = {
                figure: median(mine, figure)
                for figure in ("calls_per_second", "cpu_us_per_call", "server_cpu_us_per_call")
            }
        cpu = {(r["client"], r["round"]): r["cpu_us_per_call"] for r in at}
        table[str(concurrency)] = {
            "clients": per_client,
            "cpu_sdk_over_aiohttp": round(
                statistics.median(_ratio(cpu[SDK, n], cpu[AIOHTTP, n]) for n in range(rounds)), 3
            ),
            "cpu_sdk_over_httpx": round(
                statistics.median(_ratio(cpu[SDK, n], cpu[HTTPX, n]) for n in range(rounds)), 3
            ),
            "cpu_otel_noop_over_none": round(
                statistics.median(_ratio(cpu[SDK, n], cpu[NO_OTEL, n]) for n in range(rounds)), 3
            ),
            "calls_per_second_sdk_over_aiohttp": _ratio(
                per_client[SDK]["calls_per_second"], per_client[AIOHTTP]["calls_per_second"]
            ),
        }
    return table


def _us(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f} µs"


def _print(table: dict[str, Any]) -> None:
    print(f"conc | {'client':<20} |  calls/s | CPU µs/call | fake server µs/call")
    for concurrency, row in table.items():
        for name, numbers in row["clients"].items():
            print(
                f"{concurrency:>4} | {name:<20} | {numbers['calls_per_second']:>8.0f}"
                f" | {numbers['cpu_us_per_call']:>11.1f}"
                f" | {_us(numbers['server_cpu_us_per_call']):>19}"
            )
        print(
            f"{concurrency:>4} | SDK CPU/call: {row['cpu_sdk_over_aiohttp']:.2f}x raw aiohttp,"
            f" {row['cpu_sdk_over_httpx']:.2f}x raw httpx,"
            f" {row['cpu_otel_noop_over_none']:.2f}x without OpenTelemetry"
        )


def _summary(
    table: dict[str, Any], otel_on: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The headline numbers and the issues' targets."""
    top = table[str(max(CONCURRENCY))]["clients"]
    sdk_rate = top[SDK]["calls_per_second"]
    worst_vs_aiohttp = max(row["cpu_sdk_over_aiohttp"] for row in table.values())
    worst_vs_httpx = max(row["cpu_sdk_over_httpx"] for row in table.values())
    worst_otel_noop = max(row["cpu_otel_noop_over_none"] for row in table.values())
    summary: dict[str, Any] = {
        "calls/s at concurrency 50 (SDK / raw aiohttp / raw httpx)": (
            f"{sdk_rate:.0f} / {top[AIOHTTP]['calls_per_second']:.0f}"
            f" / {top[HTTPX]['calls_per_second']:.0f}"
        ),
    }
    for concurrency, row in table.items():
        clients = row["clients"]
        summary[f"client CPU per call at concurrency {concurrency} (SDK / aiohttp / httpx)"] = (
            f"{clients[SDK]['cpu_us_per_call']:.0f} / {clients[AIOHTTP]['cpu_us_per_call']:.0f}"
            f" / {clients[HTTPX]['cpu_us_per_call']:.0f} µs"
        )
    summary["SDK CPU per call ÷ raw aiohttp's (worst concurrency)"] = worst_vs_aiohttp
    summary["SDK CPU per call ÷ raw httpx's (worst concurrency)"] = worst_vs_httpx
    # calls/s is bounded by whichever process runs out of CPU first: say which.
    summary["SDK calls/s its own CPU allows at concurrency 50 (1 / CPU per call)"] = round(
        1e6 / top[SDK]["cpu_us_per_call"]
    )
    summary["fake server CPU per SDK call at concurrency 50"] = _us(
        top[SDK]["server_cpu_us_per_call"]
    )
    summary["OpenTelemetry API, no provider: CPU per call ÷ without it (worst concurrency)"] = (
        worst_otel_noop
    )
    on = otel_on["cpu_us_per_call"]
    summary[
        "OpenTelemetry SDK providers on: CPU per call with / without, at concurrency"
        f" {otel_on['concurrency']}"
    ] = f"{on[SDK]:.0f} / {on[NO_OTEL]:.0f} µs ({otel_on['cpu_providers_on_over_none']}×)"
    targets = {
        f"≥ {MIN_CALLS_PER_SECOND:,} calls/s from one process (SDK, concurrency 50)": {
            "value": round(sdk_rate),
            "met": sdk_rate >= MIN_CALLS_PER_SECOND,
        },
        f"SDK CPU per call ≤ {MAX_CPU_VS_AIOHTTP}× raw aiohttp's (every concurrency)": {
            "value": worst_vs_aiohttp,
            "met": worst_vs_aiohttp <= MAX_CPU_VS_AIOHTTP,
        },
        "SDK CPU per call below raw httpx's (every concurrency)": {
            "value": worst_vs_httpx,
            "met": worst_vs_httpx < MAX_CPU_VS_HTTPX,
        },
        "OpenTelemetry API with no provider adds ≤ 10% CPU per call (every concurrency)": {
            "value": worst_otel_noop,
            "met": worst_otel_noop <= MAX_OTEL_NOOP,
        },
    }
    return summary, targets


def main() -> None:
    quick = quick_flag()
    rounds = 2 if quick else 5
    # httpx costs ~10x more per call: fewer of its calls keep its runs about as long.
    calls = {SDK: 2000, NO_OTEL: 2000, AIOHTTP: 2000, HTTPX: 500}
    if quick:
        calls = {SDK: 200, NO_OTEL: 200, AIOHTTP: 200, HTTPX: 100}

    began = time.perf_counter()
    with FakeProcess(rate_limit=None) as fake:
        runs = asyncio.run(_benchmark(fake, rounds, calls))
        # Last: OpenTelemetry refuses to unset a provider once set.
        otel_on = asyncio.run(_with_providers(fake, rounds, calls[SDK]))
    table = _aggregate(runs, rounds)
    summary, targets = _summary(table, otel_on)

    _print(table)
    for name, target in targets.items():
        print(f"target {name}: {target['value']} ({'met' if target['met'] else 'MISSED'})")
    write_result(
        "overhead",
        {
            "quick": quick,
            "rounds": rounds,
            "calls_per_run": calls,
            "warm_up_calls": WARM_UP,
            "seconds": round(time.perf_counter() - began, 1),
            "summary": summary,
            "targets": targets,
            "by_concurrency": table,
            "opentelemetry_providers_on": otel_on,
            "runs": runs,
        },
    )


if __name__ == "__main__":
    main()
