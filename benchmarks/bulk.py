"""Bulk runs: ``chat.bulk(calls)`` over long streams, against gather, at 190/s, and resumed.

Every call is ``room_engine_http_srv/add_robot``, built lazily by a generator:
``Call.add_robot_to_room(f"room-{i % 10_000}", robot i % 10)``. The fake server has those
10,000 rooms and 10 robots; a room gets its robot on the first pass and later passes add
a member already in (answered as a success), so every call is valid at any size. The
fake runs on a thread of this process; each client runs in a fresh process of its own
(spawned per run), so that the client's figures are its own and its memory peak starts
from its baseline every time.

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
4. Resume after SIGKILL: ``tencent-chat-robots provision PLAN --journal FILE`` on a plan of
   2 robots x 3,000 rooms (``--quick``: 2 x 150) at the default 190/s against the fake
   (200/s), killed with SIGKILL once the fake has received a share of the placements
   drawn at random (10-30%, 40-60%, 70-90% in turn) and the journal is past its header,
   then ``provision PLAN --resume FILE`` (with ``--json``). From the fake's state and call
   log: placements missing (must be 0), placements received (answered 0) more than once,
   against the resumed run's count of items started but never finished (duplicates must
   not exceed it). Skipped, with the reason in the JSON, while ``provision`` has no
   ``--journal``/``--resume``.

Scenarios 1 to 3 give medians of 3 runs (``--quick``: 1); 4 is repeated 3 times
(``--quick``: 1). ``--calls N`` is a medium trial of the full mode: sizes 10,000,
min(N, 50,000) and N, gather at min(N, 50,000), everything once; written to
``results/quick/bulk-calls-N.json``.

    python benchmarks/bulk.py [--quick | --calls N]
"""

from __future__ import annotations

import argparse
import array
import asyncio
import collections
import csv
import gc
import json
import multiprocessing
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from _harness import machine, quick_flag, write_result
from tencent_chat_robots import Call, Endpoint

ENDPOINT = Endpoint.ROOM_ADD_ROBOT
SDKAPPID = 1400000000
SECRET_KEY = "bulk-benchmark-secret-key"
ADMIN = "administrator"
ROBOTS = [f"@RBT#bulk{i}" for i in range(10)]
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
_CEILING = 64  # the runner's adaptive pool at most (_bulk._MAX_WORKERS)

# Targets from issue 11.
MAX_GROWTH_RATIO = 1.2  # RSS growth, largest size / 10,000
MAX_GROWTH_MB = 50.0
MAX_CPU_RATIO = 0.7  # CPU per call, runner / gather
MIN_SUSTAINED_SHARE = 0.98  # of 190/s
RESUME_ROBOTS = 2


def _calls(n: int) -> Iterator[Call[Any]]:
    """``n`` room adds, built one at a time as the consumer asks."""
    for i in range(n):
        yield Call.add_robot_to_room(f"room-{i % ROOMS}", ROBOTS[i % len(ROBOTS)])


# -- the fake server, on a thread of this process ------------------------------------------


class _Fake:
    """``FakeTencentChat`` served by uvicorn on a thread; the clients run in other processes.

    On a thread (not ``_harness.FakeProcess``) so that the benchmark reads the fake's whole
    call log (which room and robot each call named) and arranges rooms by name.
    """

    def __init__(
        self,
        *,
        rooms: Sequence[str],
        robots: Sequence[str],
        rate_limit: int | None,
        keep_history: int | None,
    ) -> None:
        from tencent_chat_robots.testing import FakeTencentChat

        self.fake = FakeTencentChat(
            sdkappid=SDKAPPID,
            secret_key=SECRET_KEY,
            admin=ADMIN,
            rate_limit=rate_limit,
            keep_history=keep_history,
        )
        for robot in robots:
            self.fake.create_robot(robot)
        for room in rooms:
            self.fake.create_room(room)
        self.base_url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> _Fake:
        ready = threading.Event()
        failure: list[BaseException] = []

        async def serve() -> None:
            self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
            async with self.fake.serve() as base_url:
                self.base_url = base_url
                ready.set()
                await self._stop.wait()

        def thread() -> None:
            try:
                asyncio.run(serve())
            except BaseException as err:  # reported by __enter__
                failure.append(err)
                ready.set()

        self._thread = threading.Thread(target=thread, name="fake-server", daemon=True)
        self._thread.start()
        if not ready.wait(60) or failure:
            raise RuntimeError(f"the fake server did not start: {failure}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)

    def room_add_codes(self) -> list[int | None]:
        return [c.error_code for c in self.fake.calls if c.endpoint == ENDPOINT]

    def room_adds(self) -> int:
        """Room adds received so far (the arrival history is kept whole here)."""
        return len(self.fake.arrivals(ENDPOINT))


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
        self.gc_count = 0
        self.gc_seconds = 0.0
        self.gc_max = 0.0
        self._gc_started = 0.0

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

    def on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            pause = time.perf_counter() - self._gc_started
            self.gc_count += 1
            self.gc_seconds += pause
            self.gc_max = max(self.gc_max, pause)


async def _through_runner(
    chat: Any, n: int, probe: _Probe | None, pending: bytearray, concurrency: int | None
) -> dict[str, Any]:
    """``n`` calls through ``chat.bulk``; ``pending`` (one byte per item, all 1) is cleared
    as each item's outcome comes, so that a second outcome, or none, shows."""
    twice = 0
    errors: collections.Counter[str] = collections.Counter()
    run = chat.bulk(_calls(n), total=n, concurrency=concurrency)
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
    results = await asyncio.gather(*(chat.call(c) for c in _calls(n)), return_exceptions=True)
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
        gc.callbacks.append(probe.on_gc)
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            counts = await through(chat, n, probe, pending, concurrency)
        finally:
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            gc.callbacks.remove(probe.on_gc)
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
        "gc": {
            "collections": probe.gc_count,
            "seconds": round(probe.gc_seconds, 3),
            "max_ms": round(probe.gc_max * 1e3, 1),
        },
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


def _pick(run: dict[str, Any], path: str) -> Any:
    value: Any = run
    for key in path.split("."):
        value = value[key]
    return value


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


def _median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The median of each figure over the runs, plus whether every run was all ok."""
    out: dict[str, Any] = {}
    for path in MEDIANS:
        value = statistics.median(_pick(run, path) for run in runs)
        out[path] = round(value, 3) if isinstance(value, float) else value
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
    return {"runs": runs, "median": _median(runs)}


# -- 3. sustained 190/s ---------------------------------------------------------------------------


def _sustained(calls: int, repeats: int) -> dict[str, Any]:
    runs = []
    rooms = [f"room-{i}" for i in range(min(calls, ROOMS))]
    with _Fake(rooms=rooms, robots=ROBOTS, rate_limit=SERVER_LIMIT, keep_history=None) as fake:
        for number in range(repeats):
            fake.fake.reset_calls()
            time.sleep(1.1)  # the server's one-second windows drain
            spec = {
                "base_url": fake.base_url,
                "mode": "runner",
                "calls": calls,
                "rate_limit": "default",
                "warm_up": 0,
            }
            client = _client_run(spec)
            arrivals = fake.fake.arrivals(ENDPOINT)
            codes = fake.room_add_codes()
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
                "max_arrivals_in_any_second": fake.fake.max_arrivals_in_window(ENDPOINT),
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
            "calls_per_second": statistics.median(r["calls_per_second"] for r in runs),
            "share_of_190": statistics.median(r["share_of_190"] for r in runs),
        },
        "max_arrivals_in_any_second": max(r["max_arrivals_in_any_second"] for r in runs),
        "refused_60007": sum(r["refused_60007"] for r in runs),
        "all_ok": all(r["client_all_ok"] for r in runs),
    }


# -- 4. resume after SIGKILL -----------------------------------------------------------------------


def _cli() -> list[str]:
    script = Path(sys.executable).with_name("tencent-chat-robots")
    if script.exists():
        return [str(script)]
    found = shutil.which("tencent-chat-robots")
    if found:
        return [found]
    return [sys.executable, "-c", "from tencent_chat_robots.cli import main; main()"]


def _resume_missing() -> str | None:
    """Why the resume scenario cannot run, or ``None`` if ``provision`` can journal."""
    try:
        done = subprocess.run(
            [*_cli(), "provision", "--help"], capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"cannot run tencent-chat-robots provision --help: {err}"
    missing = [flag for flag in ("--journal", "--resume") if flag not in done.stdout]
    if missing:
        return f"`tencent-chat-robots provision --help` lists no {' or '.join(missing)} yet"
    return None


def _write_plan(path: Path, rooms: Sequence[str], robots: Sequence[str]) -> None:
    """One placement per row (the form for big plans, read as the calls go)."""
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["user_id", "nick", "face_url", "self_signature", "rooms", "live_groups"])
        for room in rooms:
            for robot in robots:
                writer.writerow([robot, "", "", "", room, ""])


def _lines(path: Path) -> int:
    try:
        with path.open("rb") as journal:
            return sum(1 for _ in journal)
    except FileNotFoundError:
        return 0


# The resumed run's count of items started by the killed run and never finished: the
# report's key, or failing that (the report changed) a key with one of these in its name.
_IN_DOUBT_KEY = "unfinished_earlier"
_IN_DOUBT_KEYS = ("unfinished", "not_finished", "in_doubt", "in_flight", "uncertain")


def _reported_in_doubt(report: Any) -> tuple[int | None, str | None]:
    """The count of started-but-unfinished items in the report, and the key it was under."""
    if not isinstance(report, dict):
        return None, None
    if isinstance(report.get(_IN_DOUBT_KEY), int):
        return report[_IN_DOUBT_KEY], _IN_DOUBT_KEY
    for key, value in report.items():
        name = str(key).lower()
        if any(k in name for k in _IN_DOUBT_KEYS) and not isinstance(value, bool):
            if isinstance(value, int):
                return value, str(key)
            if isinstance(value, list):
                return len(value), str(key)
    return None, None


def _resume_once(
    number: int, rooms_per_robot: int, lo: float, hi: float, seed: int
) -> dict[str, Any]:
    rooms = [f"room-{i}" for i in range(rooms_per_robot)]
    robots = [f"@RBT#b{i}" for i in range(RESUME_ROBOTS)]
    placements = {(room, robot) for robot in robots for room in rooms}
    items = len(placements) + len(robots)
    rng = random.Random(seed + number)
    fraction = rng.uniform(lo, hi)
    with (
        tempfile.TemporaryDirectory(prefix="bulk-resume-") as folder,
        _Fake(rooms=rooms, robots=(), rate_limit=SERVER_LIMIT, keep_history=None) as fake,
    ):
        plan, journal = Path(folder) / "plan.csv", Path(folder) / "journal.jsonl"
        _write_plan(plan, rooms, robots)
        env = {
            **os.environ,
            "TENCENT_CHAT_SDKAPPID": str(SDKAPPID),
            "TENCENT_CHAT_SECRET_KEY": SECRET_KEY,
            "TENCENT_CHAT_ADMIN": ADMIN,
        }
        root = [*_cli(), "--base-url", fake.base_url]
        # Killed once the server has received that share of the placements (and the
        # journal has more than its header): progress as the server sees it, whatever
        # the journal's lines look like.
        kill_at = max(1, int(fraction * len(placements)))
        began = time.perf_counter()
        with (Path(folder) / "first.stderr").open("w+b") as stderr:
            first = subprocess.Popen(
                [*root, "provision", str(plan), "--journal", str(journal)],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
            while first.poll() is None:
                if fake.room_adds() >= kill_at and _lines(journal) > 1:
                    first.send_signal(signal.SIGKILL)
                    break
                time.sleep(0.005)
            first.wait()
            stderr.seek(0)
            first_stderr = stderr.read().decode(errors="replace")
        killed = first.returncode == -signal.SIGKILL
        killed_after = time.perf_counter() - began
        lines_at_kill = _lines(journal)
        time.sleep(0.2)  # what the killed process had sent is answered by now
        arrivals_before = fake.room_adds()
        second = subprocess.run(
            [*root, "--json", "provision", str(plan), "--resume", str(journal)],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        try:
            report: Any = json.loads(second.stdout)
        except ValueError:
            report = None
        in_doubt, key = _reported_in_doubt(report)
        received: collections.Counter[tuple[str, str]] = collections.Counter()
        refused = 0
        for call in fake.fake.calls:
            if call.endpoint != ENDPOINT or not isinstance(call.body, dict):
                continue
            if call.error_code == 60007:
                refused += 1
            if call.error_code == 0:
                received[(call.body.get("RoomId"), call.body.get("Member_Account"))] += 1
        members = {room: set(fake.fake.room_members(room)) for room in rooms}
    lost = sum(1 for room, robot in placements if robot not in members[room])
    twice = sum(1 for pair in placements if received[pair] > 1)
    result = {
        "items": items,
        "killed_at_share_of_placements_received": round(fraction, 3),
        "killed": killed,
        "killed_after_s": round(killed_after, 2),
        "journal_lines_at_kill": lines_at_kill,
        "room_adds_received_before_resume": arrivals_before,
        "resumed_exit_code": second.returncode,
        "placements_lost": lost,
        "placements_received_twice": twice,
        "extra_receipts": sum(max(0, received[pair] - 1) for pair in placements),
        "reported_started_unfinished": in_doubt,
        "reported_under_key": key,
        "refused_60007": refused,
        "duplicates_within_reported": in_doubt is not None and twice <= in_doubt,
    }
    if not killed:
        result["note"] = "the first run finished before the kill point: no kill happened"
        result["first_stderr_tail"] = first_stderr[-500:]
    if report is None:
        result["resumed_stdout_tail"] = second.stdout[-500:]
        result["resumed_stderr_tail"] = second.stderr[-500:]
    elif isinstance(report, dict):
        result["report_counts"] = {
            k: v for k, v in report.items() if isinstance(v, int) and not isinstance(v, bool)
        }
        if key is None:
            result["report_keys"] = sorted(report)
    return result


def _resume(rooms_per_robot: int, repeats: int) -> dict[str, Any]:
    missing = _resume_missing()
    if missing is not None:
        print(f"resume after SIGKILL: SKIPPED: {missing}", flush=True)
        return {"skipped": missing}
    # Each repeat kills in a different part of the run: early, middle, late.
    parts = [(0.1, 0.3), (0.4, 0.6), (0.7, 0.9)]
    runs = []
    for number in range(repeats):
        lo, hi = parts[number % len(parts)]
        run = _resume_once(number, rooms_per_robot, lo, hi, seed=11)
        runs.append(run)
        print(
            f"resume run {number + 1}/{repeats}: killed {run['killed']} after"
            f" {run['killed_after_s']} s ({run['journal_lines_at_kill']} journal lines) |"
            f" lost {run['placements_lost']} | received twice {run['placements_received_twice']}"
            f" | reported started-unfinished {run['reported_started_unfinished']}"
            f" ({run['reported_under_key']}) | resumed exit {run['resumed_exit_code']}",
            flush=True,
        )
    return {
        "runs": runs,
        "placements_lost": sum(r["placements_lost"] for r in runs),
        "all_killed": all(r["killed"] for r in runs),
        "duplicates_within_reported": all(r["duplicates_within_reported"] for r in runs),
    }


# -- the summary -----------------------------------------------------------------------------------


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    if args.quick:
        return {
            "sizes": [1_000, 5_000],
            "repeats": 1,
            "gather_calls": 5_000,
            "sustained_calls": 380,
            "resume_rooms_per_robot": 150,
            "resume_repeats": 1,
        }
    if args.calls:
        return {
            "sizes": sorted({10_000, min(args.calls, 50_000), args.calls}),
            "repeats": 1,
            "gather_calls": min(args.calls, 50_000),
            "sustained_calls": 20 * RATE,
            "resume_rooms_per_robot": 3_000,
            "resume_repeats": 1,
        }
    return {
        "sizes": [10_000, 50_000, 200_000, 1_000_000],
        "repeats": 3,
        "gather_calls": 50_000,
        "sustained_calls": 20 * RATE,
        "resume_rooms_per_robot": 3_000,
        "resume_repeats": 3,
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
    resume: dict[str, Any],
) -> list[dict[str, Any]]:
    """The README's rows: measure, runner, gather, target, met."""
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
    if "skipped" in resume:
        rows.append(_row("resume after SIGKILL", f"not measured: {resume['skipped']}"))
    else:
        lost = resume["placements_lost"]
        rows.append(_row("resume after SIGKILL: placements lost", lost, "", "0", lost == 0))
        pairs = ", ".join(
            f"{r['placements_received_twice']} ≤ {r['reported_started_unfinished']}"
            for r in resume["runs"]
        )
        rows.append(
            _row(
                "resume: placements received twice ≤ reported started-unfinished",
                pairs,
                "",
                "each run",
                resume["duplicates_within_reported"] and resume["all_killed"],
            )
        )
    return rows


def _write(args: argparse.Namespace, data: dict[str, Any]) -> None:
    if args.calls and not args.quick:
        # A trial: beside the smoke runs, never in place of the published numbers.
        folder = Path(__file__).resolve().parent / "results" / "quick"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"bulk-calls-{args.calls}.json"
        path.write_text(json.dumps({"machine": machine(), **data}, indent=2) + "\n")
        print(f"wrote {path}")
    else:
        write_result("bulk", data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="seconds, for CI's smoke test")
    parser.add_argument("--calls", type=int, help="a medium trial: sizes 10,000 and CALLS")
    args = parser.parse_args()
    args.quick = args.quick or quick_flag()
    s = _settings(args)
    began = time.perf_counter()

    sizes: dict[int, dict[str, Any]] = {}
    rooms = [f"room-{i}" for i in range(ROOMS)]
    # Pacing off on both sides; the fake keeps only its latest records (its memory is not ours).
    with _Fake(rooms=rooms, robots=ROBOTS, rate_limit=None, keep_history=1000) as fake:
        for size in s["sizes"]:
            sizes[size] = _measured(size, "runner", fake.base_url, s["repeats"])
        gather = _measured(s["gather_calls"], "gather", fake.base_url, s["repeats"])
    sustained = _sustained(s["sustained_calls"], s["repeats"])
    resume = _resume(s["resume_rooms_per_robot"], s["resume_repeats"])

    table = _table(sizes, s["gather_calls"], gather, sustained, resume)
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
        f" {RATE}/s against the documented {SERVER_LIMIT}/s; provision of {RESUME_ROBOTS} robots"
        f" x {s['resume_rooms_per_robot']:,} rooms killed and resumed;"
        f" each client in a fresh process"
    )
    _write(
        args,
        {
            "quick": args.quick,
            "settings": {**s, "rooms": ROOMS, "robots": len(ROBOTS), "warm_up": WARM_UP},
            "seconds": round(time.perf_counter() - began, 1),
            "summary": {"workload": workload},
            "table": table,
            "sizes": {str(size): run for size, run in sizes.items()},
            "gather": {"calls": s["gather_calls"], **gather},
            "sustained": sustained,
            "resume": resume,
        },
    )


if __name__ == "__main__":
    main()
