"""Bulk runs: ``chat.bulk(calls)`` over long streams, against gather, and at 190/s.

Every call is ``room_engine_http_srv/add_robot``, built lazily (``bench``'s
``Workload``): call i adds robot i % 10 to room (i // 10) % 10,000. The fake server has
those 10,000 rooms and 10 robots; the first 100,000 calls fill the rooms and later ones
add a member already in (answered as a success), so every call is valid at any size. The
fake runs in a process of its own (``_harness.FakeProcess``); each client runs in a fresh
process of its own (spawned per run), so that the client's figures are its own and its
memory peak starts from its baseline every time.

1. Memory and lag against size, through the runner: N calls (10,000, 50,000, 200,000 and
   1,000,000; ``--quick``: 1,000 and 5,000) through ``chat.bulk`` with the limiter fast
   (``rate_limit={ENDPOINT: FAST}``, 4,000/s; the fake has no limit), so that a million calls take a
   few minutes and the run measures the client.
   Per run, after a warm-up of 300 calls and ``gc.collect()``: peak RSS growth (the
   kernel's high-water mark ``VmHWM``, reset through ``/proc/self/clear_refs`` at the
   baseline, less the baseline ``VmRSS``), RSS retained after the run, event-loop lag (a
   ticker sleeping 1 ms at a time records how late it wakes, into a preallocated
   histogram so that measuring does not grow the heap: p50 / p99 / max), CPU per call
   (``time.process_time`` of the client process / calls; the ticker's own cost
   included), the garbage collector's pauses (``gc.callbacks``), wall time, calls/s,
   and that every item got exactly one outcome and all were ok.
2. ``asyncio.gather`` at 50,000 (``--quick``: 5,000) for contrast: the same calls as
   ``gather(*(chat.call(c) for c in calls))``, one task each, the same measures.
3. Sustained rate at the default 190/s: 3,800 calls (20 s; ``--quick``: 380) through
   the runner of a default client, against the fake at the documented limit (200/s,
   refusing past it with 60007). From the fake's arrival times: calls/s from the first
   arrival to the last, the most arrivals in any sliding second, and the 60007 refusals.

Each scenario gives medians of 3 runs (``--quick``: 1). ``--calls N`` is a medium trial
of the full mode: sizes 10,000, min(N, 50,000) and N, gather at min(N, 50,000),
everything once; written to ``results/quick/bulk-calls-N.json``. (That a run killed
outright and resumed loses nothing is a test: ``tests/cli/test_resume_after_kill.py``.)

    python benchmarks/bulk.py [--quick | --calls N]
"""

from __future__ import annotations

import argparse
import array
import asyncio
import collections
import gc
import multiprocessing
import time
from multiprocessing.connection import Connection
from typing import Any

from _harness import (
    ADMIN,
    SDKAPPID,
    SECRET_KEY,
    FakeProcess,
    GcPauses,
    Workload,
    median,
    quick_flag,
    write_result,
)
from tencent_chat_robots import Endpoint
from tencent_chat_robots.testing import max_in_window

ENDPOINT = Endpoint.ROOM_ADD_ROBOT
ROBOTS = tuple(f"@RBT#bulk{i}" for i in range(10))
ROOMS = 10_000
RATE = 190  # the SDK's default
LAG_P99_MS = 8  # the target for the runner's event-loop lag
FAST = 4000  # calls/s: the limiter of the long runs, fast enough for 10^6 in minutes
SERVER_LIMIT = 200  # the documented limit, which the fake enforces

TICK = 0.001  # the lag ticker's sleep, seconds
BUCKET = 1e-5  # the lag histogram's resolution, seconds
BUCKETS = 200_000  # up to 2 s; a longer lag lands in the last bucket (max is kept apart)
SAMPLE_EVERY = 0.05  # seconds between two RSS / pool-size samples
WARM_UP = 300

# Targets from issue 11.
MAX_GROWTH_RATIO = 1.2  # RSS growth, largest size / 10,000
MAX_GROWTH_MB = 50.0
MAX_CPU_RATIO = 0.7  # CPU per call, runner / gather
MIN_SUSTAINED_SHARE = 0.98  # of 190/s

# The calls and the fake's objects: see the module's docstring.
WORKLOAD = Workload(
    "add_robot_to_room", robots=ROBOTS, containers=tuple(f"room-{i}" for i in range(ROOMS))
)


# -- one measured client run, in a process of its own ----------------------------------------


def _proc_status() -> dict[str, int]:
    """``VmRSS`` and ``VmHWM`` of this process, in bytes (Linux)."""
    values: dict[str, int] = {}
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(("VmRSS:", "VmHWM:")):
                name, kib, _ = line.split()
                values[name.rstrip(":")] = int(kib) * 1024
    return values


def _reset_peak() -> bool:
    """Reset the kernel's RSS high-water mark to the current RSS (Linux 4.0+)."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as clear:
            clear.write("5")
    except OSError:
        return False
    return True


class _Probe:
    """Event-loop lag, GC pauses, RSS and pool-size samples, in storage allocated up front."""

    def __init__(self) -> None:
        self.lags = array.array("q", bytes(8 * BUCKETS))  # zero-filled and resident now
        self.lags[0] = 1  # touch: pages are mapped before the baseline
        self.lags[0] = 0
        self.ticks = 0
        self.max_lag = 0.0
        self.rss_max = 0
        self.workers_max = 0
        self.run: Any = None  # the BulkRun, when there is one

    async def tick(self) -> None:
        loop = asyncio.get_running_loop()
        lags, last = self.lags, BUCKETS - 1
        next_sample = loop.time()
        while True:
            due = loop.time() + TICK
            await asyncio.sleep(TICK)
            lag = max(0.0, loop.time() - due)
            lags[min(int(lag / BUCKET), last)] += 1
            if lag > self.max_lag:
                self.max_lag = lag
            self.ticks += 1
            if loop.time() >= next_sample:
                next_sample = loop.time() + SAMPLE_EVERY
                self.sample()

    def sample(self) -> None:
        self.rss_max = max(self.rss_max, _proc_status()["VmRSS"])
        if self.run is not None:
            self.workers_max = max(self.workers_max, self.run.workers)

    def lag_ms(self, fraction: float) -> float:
        """The lag under which ``fraction`` of the ticks woke (a bucket's upper edge)."""
        rank = max(1, int(fraction * self.ticks + 0.999999))
        seen = 0
        for bucket, count in enumerate(self.lags):
            seen += count
            if seen >= rank:
                return round((bucket + 1) * BUCKET * 1e3, 2)
        return round(self.max_lag * 1e3, 2)


async def _through_runner(
    chat: Any, n: int, probe: _Probe | None, pending: bytearray, concurrency: int | None
) -> dict[str, Any]:
    """``n`` calls through ``chat.bulk``; ``pending`` (one byte per item, all 1) is cleared
    as each item's outcome comes, so that a second outcome, or none, shows."""
    twice = 0
    errors: collections.Counter[str] = collections.Counter()
    run = chat.bulk(WORKLOAD.calls(n), total=n, concurrency=concurrency)
    if probe is not None:
        probe.run = run
    async for outcome in run:
        if not pending[outcome.index]:
            twice += 1
        pending[outcome.index] = 0
        if outcome.error is not None:
            errors[type(outcome.error).__name__] += 1
    missing = pending.count(1)
    return {
        "outcomes": n - missing + twice,
        "items_without_outcome": missing,
        "items_with_two_outcomes": twice,
        "failed": sum(errors.values()),
        "errors": dict(errors),
    }


async def _through_gather(
    chat: Any, n: int, probe: _Probe | None, pending: bytearray, concurrency: int | None
) -> dict[str, Any]:
    """``n`` calls gathered at once, a task each."""
    results = await asyncio.gather(
        *(chat.call(c) for c in WORKLOAD.calls(n)), return_exceptions=True
    )
    errors = collections.Counter(type(r).__name__ for r in results if isinstance(r, BaseException))
    return {
        "outcomes": len(results),
        "items_without_outcome": n - len(results),
        "items_with_two_outcomes": 0,
        "failed": sum(errors.values()),
        "errors": dict(errors),
    }


async def _measure(spec: dict[str, Any]) -> dict[str, Any]:
    from tencent_chat_robots import TencentChat

    n, mode = spec["calls"], spec["mode"]
    through = _through_runner if mode == "runner" else _through_gather
    # FAST is far above the API's documented 200/s: it must be named to be paced so.
    rate = spec["rate_limit"]
    options = {} if rate == "default" else {"rate_limit": {ENDPOINT: rate}}
    async with TencentChat(
        SDKAPPID, SECRET_KEY, admin=ADMIN, base_url=spec["base_url"], **options
    ) as chat:
        concurrency = None  # the runner sizes its own pool
        if spec["warm_up"]:
            await through(chat, spec["warm_up"], None, bytearray(b"\x01") * spec["warm_up"], None)
        pending = bytearray(b"\x01") * n if mode == "runner" else bytearray()
        probe = _Probe()
        gc.collect()
        baseline = _proc_status()["VmRSS"]
        peak_reset = _reset_peak()
        ticker = asyncio.create_task(probe.tick())
        await asyncio.sleep(0.01)  # the ticker runs before the calls start
        with GcPauses() as pauses:
            wall, cpu = time.perf_counter(), time.process_time()
            try:
                counts = await through(chat, n, probe, pending, concurrency)
            finally:
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                ticker.cancel()
        probe.sample()
        status = _proc_status()
        peak = status["VmHWM"] if peak_reset else probe.rss_max
        gc.collect()
        retained = _proc_status()["VmRSS"] - baseline
    mib = 1024 * 1024
    return {
        "calls": n,
        "mode": mode,
        **counts,
        "all_ok": counts["outcomes"] == n and counts["failed"] == 0,
        "seconds": round(wall, 2),
        "calls_per_second": round(n / wall),
        "cpu_us_per_call": round(cpu / n * 1e6, 1),
        "rss_baseline_mb": round(baseline / mib, 1),
        "rss_growth_mb": round((peak - baseline) / mib, 2),
        "rss_retained_mb": round(retained / mib, 2),
        "peak_from": "VmHWM reset at the baseline" if peak_reset else "VmRSS sampled",
        "lag_ms": {
            "p50": probe.lag_ms(0.5),
            "p99": probe.lag_ms(0.99),
            "max": round(probe.max_lag * 1e3, 2),
            "ticks": probe.ticks,
        },
        "gc": pauses.report(),
        "workers_max": probe.workers_max if mode == "runner" else None,
    }


def _client_main(conn: Connection, spec: dict[str, Any]) -> None:
    try:
        conn.send(asyncio.run(_measure(spec)))
    except BaseException as err:
        conn.send({"crashed": f"{type(err).__name__}: {err}"})
        raise


def _client_run(spec: dict[str, Any]) -> dict[str, Any]:
    """One measured run in a fresh process; its figures."""
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    process = context.Process(target=_client_main, args=(child, spec), daemon=True)
    process.start()
    child.close()
    try:
        result: dict[str, Any] = parent.recv()
    except EOFError:
        result = {"crashed": f"the client process ended with code {process.exitcode}"}
    process.join(30)
    if "crashed" in result:
        raise RuntimeError(f"client run {spec['mode']} x {spec['calls']}: {result['crashed']}")
    return result


# -- medians -----------------------------------------------------------------------------------


MEDIANS = (
    "seconds",
    "calls_per_second",
    "cpu_us_per_call",
    "rss_growth_mb",
    "rss_retained_mb",
    "rss_baseline_mb",
    "lag_ms.p50",
    "lag_ms.p99",
    "lag_ms.max",
    "gc.collections",
    "gc.seconds",
    "gc.max_ms",
)


def _medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The median of each figure over the runs, plus whether every run was all ok."""
    out: dict[str, Any] = {path: median(runs, path) for path in MEDIANS}
    out["all_ok"] = all(run["all_ok"] for run in runs)
    workers = [run["workers_max"] for run in runs if run["workers_max"] is not None]
    out["workers_max"] = max(workers) if workers else None
    return out


def _measured(size: int, mode: str, base_url: str, repeats: int) -> dict[str, Any]:
    runs = []
    for number in range(repeats):
        spec = {
            "base_url": base_url,
            "mode": mode,
            "calls": size,
            "rate_limit": FAST,
            "warm_up": WARM_UP,
        }
        run = _client_run(spec)
        runs.append(run)
        lag = run["lag_ms"]
        print(
            f"{mode:>6} {size:>9,} calls (run {number + 1}/{repeats}) | {run['seconds']:>6.1f} s"
            f" | {run['calls_per_second']:>5}/s | CPU {run['cpu_us_per_call']:>6.1f} µs/call"
            f" | RSS +{run['rss_growth_mb']} MB peak, +{run['rss_retained_mb']} MB after"
            f" | lag p50/p99/max {lag['p50']}/{lag['p99']}/{lag['max']} ms"
            f" | GC {run['gc']['seconds']} s ({run['gc']['collections']})"
            f" | workers {run['workers_max']} | ok {run['outcomes'] - run['failed']:,}/{size:,}"
            f"{' ' + str(run['errors']) if run['errors'] else ''}",
            flush=True,
        )
    return {"runs": runs, "median": _medians(runs)}


# -- 3. sustained 190/s ---------------------------------------------------------------------------


def _sustained(calls: int, repeats: int) -> dict[str, Any]:
    runs = []
    # The fake at its documented limit, refusing past it.
    with FakeProcess(arrange=[WORKLOAD]) as fake:
        for number in range(repeats):
            fake.reset()
            time.sleep(1.1)  # the server's one-second windows drain
            spec = {
                "base_url": fake.base_url,
                "mode": "runner",
                "calls": calls,
                "rate_limit": "default",
                "warm_up": 0,
            }
            client = _client_run(spec)
            stats = fake.stats()[ENDPOINT]
            arrivals, codes = stats["arrivals"], stats["codes"]
            span = arrivals[-1] - arrivals[0] if len(arrivals) > 1 else 0.0
            rate = (len(arrivals) - 1) / span if span else 0.0
            run = {
                "calls": calls,
                "client_all_ok": client["all_ok"],
                "client_errors": client["errors"],
                "workers_max": client["workers_max"],
                "arrivals": len(arrivals),
                "seconds_first_to_last": round(span, 3),
                "calls_per_second": round(rate, 2),
                "share_of_190": round(rate / RATE, 4),
                "max_arrivals_in_any_second": max_in_window(arrivals),
                "refused_60007": codes.count(60007),
                "other_codes": dict(collections.Counter(c for c in codes if c not in (0, 60007))),
                "lag_ms": client["lag_ms"],
                "cpu_us_per_call": client["cpu_us_per_call"],
            }
            runs.append(run)
            print(
                f"190/s run {number + 1}/{repeats}: {run['calls_per_second']}/s first to last"
                f" arrival ({run['share_of_190']:.1%} of 190) | most in a second"
                f" {run['max_arrivals_in_any_second']} | 60007: {run['refused_60007']}"
                f" | workers {run['workers_max']} | all ok {run['client_all_ok']}",
                flush=True,
            )
    return {
        "runs": runs,
        "median": {
            "calls_per_second": median(runs, "calls_per_second"),
            "share_of_190": median(runs, "share_of_190", places=4),
        },
        "max_arrivals_in_any_second": max(r["max_arrivals_in_any_second"] for r in runs),
        "refused_60007": sum(r["refused_60007"] for r in runs),
        "all_ok": all(r["client_all_ok"] for r in runs),
    }


# -- the summary -----------------------------------------------------------------------------------


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    if args.quick:
        return {
            "sizes": [1_000, 5_000],
            "repeats": 1,
            "gather_calls": 5_000,
            "sustained_calls": 380,
        }
    if args.calls:
        return {
            "sizes": sorted({10_000, min(args.calls, 50_000), args.calls}),
            "repeats": 1,
            "gather_calls": min(args.calls, 50_000),
            "sustained_calls": 20 * RATE,
        }
    return {
        "sizes": [10_000, 50_000, 200_000, 1_000_000],
        "repeats": 3,
        "gather_calls": 50_000,
        "sustained_calls": 20 * RATE,
    }


def _row(
    measure: str,
    runner: Any,
    gather: Any = "",
    target: str = "",
    met: bool | None = None,
) -> dict[str, Any]:
    return {"measure": measure, "runner": runner, "gather": gather, "target": target, "met": met}


def _table(
    sizes: dict[int, dict[str, Any]],
    gather_size: int,
    gather: dict[str, Any],
    sustained: dict[str, Any],
) -> list[dict[str, Any]]:
    """The performance page's rows: measure, runner, gather, target, met."""
    ordered = sorted(sizes)
    smallest, largest = ordered[0], ordered[-1]
    rows = []
    for size in ordered:
        growth = sizes[size]["median"]["rss_growth_mb"]
        rows.append(
            _row(
                f"peak RSS growth over baseline, {size:,} calls",
                f"{growth} MB",
                f"{gather['median']['rss_growth_mb']} MB" if size == gather_size else "",
                f"≤ {MAX_GROWTH_MB:g} MB",
                growth <= MAX_GROWTH_MB,
            )
        )
    small = sizes[smallest]["median"]["rss_growth_mb"]
    big = sizes[largest]["median"]["rss_growth_mb"]
    ratio = round(big / small, 2) if small > 0 else float("inf")
    rows.append(
        _row(
            f"RSS growth {largest:,} ÷ {smallest:,}",
            ratio,
            "",
            f"≤ {MAX_GROWTH_RATIO:g}",
            ratio <= MAX_GROWTH_RATIO,
        )
    )
    if largest > smallest:
        # Bytes of peak RSS per call beyond the smallest run: flat memory shows as ~0.
        slope = (big - small) * 1024 * 1024 / (largest - smallest)
        rows.append(
            _row(f"RSS growth per extra call, {smallest:,} to {largest:,}", f"{slope:.2f} B")
        )
    at = sizes.get(gather_size, sizes[largest])["median"]
    at_size = gather_size if gather_size in sizes else largest
    g = gather["median"]
    rows.append(
        _row(
            f"event-loop lag p50 / p99 / max, {at_size:,} calls",
            f"{at['lag_ms.p50']} / {at['lag_ms.p99']} / {at['lag_ms.max']} ms",
            f"{g['lag_ms.p50']} / {g['lag_ms.p99']} / {g['lag_ms.max']} ms",
            f"p99 ≤ {LAG_P99_MS} ms",
            at["lag_ms.p99"] <= LAG_P99_MS,
        )
    )
    if at_size != largest:
        top = sizes[largest]["median"]
        rows.append(
            _row(
                f"event-loop lag p50 / p99 / max, {largest:,} calls",
                f"{top['lag_ms.p50']} / {top['lag_ms.p99']} / {top['lag_ms.max']} ms",
                "",
                f"p99 ≤ {LAG_P99_MS} ms",
                top["lag_ms.p99"] <= LAG_P99_MS,
            )
        )
    cpu_ratio = round(at["cpu_us_per_call"] / g["cpu_us_per_call"], 2)
    rows.append(
        _row(
            f"CPU per call, {at_size:,} calls",
            f"{at['cpu_us_per_call']} µs",
            f"{g['cpu_us_per_call']} µs",
        )
    )
    rows.append(
        _row(
            "CPU per call, runner ÷ gather",
            cpu_ratio,
            "",
            f"≤ {MAX_CPU_RATIO:g}",
            cpu_ratio <= MAX_CPU_RATIO,
        )
    )
    rows.append(
        _row(
            f"GC pauses, total (collections), {at_size:,} calls",
            f"{at['gc.seconds']} s ({at['gc.collections']})",
            f"{g['gc.seconds']} s ({g['gc.collections']})",
        )
    )
    rows.append(
        _row(
            f"calls/s, {at_size:,} calls (paced at {FAST:,}/s)",
            at["calls_per_second"],
            g["calls_per_second"],
        )
    )
    every_ok = all(s["median"]["all_ok"] for s in sizes.values()) and g["all_ok"]
    rows.append(
        _row(
            "each item exactly one outcome, all ok",
            "yes" if all(s["median"]["all_ok"] for s in sizes.values()) else "no",
            "yes" if g["all_ok"] else "no",
            "every size",
            every_ok,
        )
    )
    share = sustained["median"]["share_of_190"]
    rows.append(
        _row(
            "sustained rate at the default 190/s (first to last arrival)",
            f"{sustained['median']['calls_per_second']}/s ({share:.1%})",
            "",
            f"≥ {MIN_SUSTAINED_SHARE:.0%}",
            share >= MIN_SUSTAINED_SHARE and sustained["all_ok"],
        )
    )
    worst = sustained["max_arrivals_in_any_second"]
    rows.append(
        _row(
            "most arrivals in any second at the server",
            worst,
            "",
            f"≤ {SERVER_LIMIT}",
            worst <= SERVER_LIMIT,
        )
    )
    refused = sustained["refused_60007"]
    rows.append(_row("60007 refusals", refused, "", "0", refused == 0))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="seconds, for CI's smoke test")
    parser.add_argument("--calls", type=int, help="a medium trial: sizes 10,000 and CALLS")
    args = parser.parse_args()
    args.quick = args.quick or quick_flag()
    s = _settings(args)
    began = time.perf_counter()

    sizes: dict[int, dict[str, Any]] = {}
    # Pacing off on both sides; the fake keeps only its latest records.
    with FakeProcess(arrange=[WORKLOAD], rate_limit=None, keep_history=1000) as fake:
        for size in s["sizes"]:
            sizes[size] = _measured(size, "runner", fake.base_url, s["repeats"])
        gather = _measured(s["gather_calls"], "gather", fake.base_url, s["repeats"])
    sustained = _sustained(s["sustained_calls"], s["repeats"])

    table = _table(sizes, s["gather_calls"], gather, sustained)
    for row in table:
        met = "" if row["met"] is None else (" met" if row["met"] else " MISSED")
        gathered = f" | gather {row['gather']}" if row["gather"] != "" else ""
        target = f" | target {row['target']}" if row["target"] else ""
        print(f"{row['measure']}: runner {row['runner']}{gathered}{target}{met}")
    workload = (
        f"{ENDPOINT} calls built lazily (10,000 rooms x 10 robots, re-adds answered ok),"
        f" runner sizes {' / '.join(f'{n:,}' for n in s['sizes'])} and gather at"
        f" {s['gather_calls']:,}, both paced at {FAST:,}/s;"
        f" {s['sustained_calls']:,} calls at the default"
        f" {RATE}/s against the documented {SERVER_LIMIT}/s; each client in a fresh process"
    )
    trial = bool(args.calls) and not args.quick  # beside the smoke runs, not the published
    write_result(
        f"bulk-calls-{args.calls}" if trial else "bulk",
        {
            "quick": args.quick,
            "settings": {**s, "rooms": ROOMS, "robots": len(ROBOTS), "warm_up": WARM_UP},
            "seconds": round(time.perf_counter() - began, 1),
            "summary": {"workload": workload},
            "table": table,
            "sizes": {str(size): run for size, run in sizes.items()},
            "gather": {"calls": s["gather_calls"], **gather},
            "sustained": sustained,
        },
        aside=args.quick or trial,
    )


if __name__ == "__main__":
    main()
