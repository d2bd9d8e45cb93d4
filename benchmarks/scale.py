"""Scale: many calls gathered at once on one client, and how the costs grow with their number.

For each size (1,000, 10,000 and 50,000 calls; ``--quick``: 500 and 2,000), that
many ``get_all_robots`` calls are started at once with ``asyncio.gather`` on one
``TencentChat`` paced at ``rate = size / 2`` per second (so pacing alone would take
about two seconds), against the fake server (no rate limit) in a process of its own.
The SDK bounds what is on the wire with ``max_in_flight`` (256 per endpoint; the rest
wait for a slot), and its aiohttp connector has no connection limit. ``max_retries=0``
so that every time-out or pool error surfaces as an exception, counted by class.

Each size is run twice on a warmed-up client. The timed pass reports wall time, CPU
per call (``time.process_time`` / calls), the garbage collector's pauses, and
event-loop lag: a ticker task sleeps 10 ms at a time and records how late it wakes
(p50, p99, max). The memory pass runs the same gather under ``tracemalloc`` (started
after imports and warm-up; it slows everything down about threefold, which is why it
is a pass of its own) and reports the peak of traced memory during the gather divided
by the calls. The limiter is also measured alone: the same number of tasks gathered on
``RateLimiter(rate).acquire``, CPU / acquisitions. Growth is the largest size's figure over the
smallest's; the summary also gives CPU per acquisition over the middle size's, the one
at the same pacing regime.

    python benchmarks/scale.py [--quick]
"""

from __future__ import annotations

import asyncio
import collections
import gc
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from typing import Any

from _harness import FakeProcess, GcPauses, quick_flag, write_result
from tencent_chat_robots import Endpoint, RateLimiter, TencentChat
from tencent_chat_robots.testing import percentile

TICK = 0.010  # the lag ticker's period, seconds
WARM_UP = 300

# Targets from the issue.
MAX_ACQUIRE_GROWTH = 1.3  # CPU per limiter acquisition, largest size / smallest


GET_ALL = Endpoint.GET_ALL_ROBOTS


def _rate(size: int) -> int:
    """Pacing such that ``size`` starts take about two seconds."""
    # --quick only checks that the script still runs: pace it four times faster.
    return max(1, size * 2 if quick_flag() else size // 2)


async def _ticker(lags: list[float]) -> None:
    """Sleep ``TICK`` over and over; record how late each wake-up is."""
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + TICK
        await asyncio.sleep(TICK)
        lags.append(loop.time() - due)


async def _gather(size: int, call: Callable[[], Awaitable[object]]) -> collections.Counter[str]:
    """``size`` calls at once; the exceptions they raised, counted by class."""
    outcomes = await asyncio.gather(*(call() for _ in range(size)), return_exceptions=True)
    return collections.Counter(type(o).__name__ for o in outcomes if isinstance(o, BaseException))


async def _timed_pass(chat: TencentChat, size: int) -> dict[str, Any]:
    lags: list[float] = []
    ticker = asyncio.create_task(_ticker(lags))
    await asyncio.sleep(TICK * 2)  # the ticker is running before the calls start
    gc.collect()
    with GcPauses() as gc_pauses:
        wall, cpu = time.perf_counter(), time.process_time()
        errors = await _gather(size, chat.get_all_robots)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    ticker.cancel()
    return {
        "seconds": round(wall, 2),
        "calls_per_second": round(size / wall),
        "cpu_us_per_call": round(cpu / size * 1e6, 1),
        "lag_ms": {
            "p50": round(percentile(lags, 0.5) * 1e3, 2),
            "p99": round(percentile(lags, 0.99) * 1e3, 2),
            "max": round(max(lags, default=0.0) * 1e3, 2),
            "ticks": len(lags),
        },
        "gc": gc_pauses.report(),
        "errors": dict(errors),
    }


async def _memory_pass(chat: TencentChat, size: int) -> dict[str, Any]:
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        wall = time.perf_counter()
        errors = await _gather(size, chat.get_all_robots)
        wall = time.perf_counter() - wall
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    return {
        "seconds": round(wall, 2),
        "peak_kib": round(peak / 1024),
        "bytes_per_pending_call": round(peak / size),
        "errors": dict(errors),
    }


async def _sdk(fake: FakeProcess, size: int) -> dict[str, Any]:
    # Named: an API is paced above its documented rate only if named.
    async with fake.client(rate_limit={GET_ALL: _rate(size)}, max_retries=0) as chat:
        await asyncio.gather(*(chat.get_all_robots() for _ in range(WARM_UP)))
        timed = await _timed_pass(chat, size)
        fake.reset()  # the fake's call log is not ours to grow without end
        memory = await _memory_pass(chat, size)
        fake.reset()
    return {**timed, "memory": memory}


async def _limiter_alone(size: int) -> dict[str, Any]:
    key = GET_ALL
    limiter = RateLimiter(_rate(size), rates={key: _rate(size)})
    await asyncio.gather(*(limiter.acquire("warm-up") for _ in range(10)))
    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(limiter.acquire(key) for _ in range(size)))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {
        "seconds": round(wall, 2),
        "acquisitions_per_second": round(size / wall),
        "cpu_us_per_acquisition": round(cpu / size * 1e6, 2),
    }


def _growth(large: dict[str, Any], small: dict[str, Any]) -> dict[str, float]:
    """One size's figures over another's, for each cost."""

    def ratio(pick: Callable[[dict[str, Any]], float]) -> float:
        a, b = pick(large), pick(small)
        return round(a / b, 2) if b else float("inf")

    return {
        "bytes_per_pending_call": ratio(lambda r: r["sdk"]["memory"]["bytes_per_pending_call"]),
        "cpu_per_call": ratio(lambda r: r["sdk"]["cpu_us_per_call"]),
        "cpu_per_acquisition": ratio(lambda r: r["limiter"]["cpu_us_per_acquisition"]),
        "lag_p50": ratio(lambda r: r["sdk"]["lag_ms"]["p50"]),
        "lag_p99": ratio(lambda r: r["sdk"]["lag_ms"]["p99"]),
        "lag_max": ratio(lambda r: r["sdk"]["lag_ms"]["max"]),
    }


def _print(size: int, run: dict[str, Any]) -> None:
    sdk, limiter, lag = run["sdk"], run["limiter"], run["sdk"]["lag_ms"]
    print(
        f"{size:>6,} calls at {run['rate_limit']:>6,}/s | {sdk['seconds']:>5.2f} s"
        f" | {sdk['calls_per_second']:>5}/s | CPU {sdk['cpu_us_per_call']:>5.0f} µs/call"
        f" | {sdk['memory']['bytes_per_pending_call']:>5} B/pending call"
        f" | lag p50/p99/max {lag['p50']}/{lag['p99']}/{lag['max']} ms"
        f" | GC {sdk['gc']['seconds']} s | errors {sdk['errors'] or 'none'}"
    )
    print(
        f"{'':>6} limiter alone | {limiter['seconds']:>5.2f} s"
        f" | {limiter['acquisitions_per_second']:>5}/s"
        f" | CPU {limiter['cpu_us_per_acquisition']:>5.1f} µs/acquisition"
    )


def _summary(runs: dict[int, dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The headline numbers and the issue's targets."""
    sizes = sorted(runs)
    top, largest = f"{sizes[-1]:,}", runs[sizes[-1]]
    growth = _growth(largest, runs[sizes[0]])
    ratio_name = f"{sizes[-1]:,}/{sizes[0]:,}"
    errors = collections.Counter[str]()
    for run in runs.values():
        errors.update(run["sdk"]["errors"])
        errors.update(run["sdk"]["memory"]["errors"])
    pool_errors = sum(n for name, n in errors.items() if "Timeout" in name or "Connection" in name)
    sdk, limiter = largest["sdk"], largest["limiter"]
    summary: dict[str, Any] = {
        "calls gathered at once (rate limit: calls / 2 per second)": " / ".join(
            f"{s:,}" for s in sizes
        ),
        f"memory per pending call at {top}": f"{sdk['memory']['bytes_per_pending_call']:,} B",
        f"CPU per call at {top}": f"{sdk['cpu_us_per_call']:.0f} µs",
        f"calls/s at {top}": sdk["calls_per_second"],
        f"CPU per limiter acquisition at {top} (limiter alone)": (
            f"{limiter['cpu_us_per_acquisition']:.1f} µs"
        ),
        f"limiter alone: acquisitions/s at {top} (rate {largest['rate_limit']:,}/s)": (
            limiter["acquisitions_per_second"]
        ),
        f"event-loop lag p50 / p99 / max at {top}": (
            "{p50} / {p99} / {max} ms".format(**sdk["lag_ms"])
        ),
        f"GC pauses at {top}: total / longest": (
            f"{sdk['gc']['seconds']} s / {sdk['gc']['max_ms']} ms"
        ),
        f"growth {ratio_name}: memory per pending call": growth["bytes_per_pending_call"],
        f"growth {ratio_name}: CPU per call": growth["cpu_per_call"],
        f"growth {ratio_name}: CPU per acquisition": growth["cpu_per_acquisition"],
        f"growth {ratio_name}: lag p99": growth["lag_p99"],
    }
    if len(sizes) > 2:
        # The smallest size is paced (the loop idles between starts); the two largest
        # both go faster than the limiter can, so they compare like with like.
        middle = _growth(largest, runs[sizes[-2]])
        name = f"growth {top}/{sizes[-2]:,}"
        summary[f"{name}: CPU per call"] = middle["cpu_per_call"]
        summary[f"{name}: CPU per acquisition"] = middle["cpu_per_acquisition"]
    summary["exceptions (all sizes)"] = ", ".join(f"{k}: {n}" for k, n in errors.items()) or "none"
    targets = {
        f"flat CPU per limiter acquisition ({ratio_name} ≤ {MAX_ACQUIRE_GROWTH})": {
            "value": growth["cpu_per_acquisition"],
            "met": growth["cpu_per_acquisition"] <= MAX_ACQUIRE_GROWTH,
        },
        "no pool or time-out errors": {"value": pool_errors, "met": pool_errors == 0},
    }
    return summary, targets


def main() -> None:
    quick = quick_flag()
    sizes = (500, 2_000) if quick else (1_000, 10_000, 50_000)
    began = time.perf_counter()
    runs: dict[int, dict[str, Any]] = {}
    with FakeProcess(rate_limit=None) as fake:
        for size in sizes:
            sdk = asyncio.run(_sdk(fake, size))
            limiter = asyncio.run(_limiter_alone(size))
            runs[size] = {"rate_limit": _rate(size), "sdk": sdk, "limiter": limiter}
            _print(size, runs[size])
    summary, targets = _summary(runs)
    for name, target in targets.items():
        print(f"target {name}: {target['value']} ({'met' if target['met'] else 'MISSED'})")
    write_result(
        "scale",
        {
            "quick": quick,
            "seconds": round(time.perf_counter() - began, 1),
            "summary": summary,
            "targets": targets,
            "growth": {
                f"{sizes[-1]}/{size}": _growth(runs[sizes[-1]], runs[size]) for size in sizes[:-1]
            },
            "sizes": {str(size): run for size, run in runs.items()},
        },
    )


if __name__ == "__main__":
    main()
