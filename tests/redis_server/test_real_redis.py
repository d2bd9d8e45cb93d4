"""The shared limiter on a real redis-server: a fleet of processes, crashes, restarts."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import time
from typing import Any

import pytest

from tencent_chat_robots import (
    AttemptRecord,
    Endpoint,
    LimiterUnavailableError,
    RedisRateLimiter,
)
from tencent_chat_robots.testing import FakeTencentChat

from .._servers import fake_in_thread
from ..test_redis_limiter import most_in_closed_window, record_grants
from ._fleet import run_worker
from .conftest import RedisServer

KEY = Endpoint.GET_ALL_ROBOTS
WORKERS = 4
CALLS = 200
RATE = 190


def test_a_fleet_of_processes_stays_under_the_apps_limit(redis_server: RedisServer) -> None:
    """4 processes x 200 calls of one endpoint, one Redis: the server never refuses."""
    fake = FakeTencentChat()
    ctx = multiprocessing.get_context("spawn")
    go = ctx.Event()
    out: Any = ctx.Queue()
    with fake_in_thread(fake) as base_url:
        options = {
            "redis_url": redis_server.url,
            "rate": RATE,
            "sdkappid": fake.sdkappid,
            "secret_key": fake.secret_key,
            "admin": fake.admin,
            "base_url": base_url,
        }
        workers = [
            ctx.Process(target=run_worker, args=(options, CALLS, go, out)) for _ in range(WORKERS)
        ]
        for worker in workers:
            worker.start()
        try:
            readiness = [out.get(timeout=60) for _ in workers]
            assert readiness == ["ready"] * WORKERS
            fake.reset_calls()  # count the saturated run only, not the warm-up calls
            go.set()
            tallies = [out.get(timeout=60) for _ in workers]
        finally:
            for worker in workers:
                worker.join(timeout=30)
    assert tallies == [{"ok": CALLS, "errors": 0}] * WORKERS
    codes = [call.error_code for call in fake.calls]
    assert len(codes) == WORKERS * CALLS
    assert 60007 not in codes
    assert fake.max_arrivals_in_window(KEY) <= 200
    arrivals = fake.arrivals(KEY)
    combined = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0])
    assert combined >= 0.95 * RATE


async def test_a_redis_crash_fails_calls_clearly_and_a_restart_recovers(
    redis_server: RedisServer,
) -> None:
    fake = FakeTencentChat()
    half_done = asyncio.Event()
    done = 0

    def count(record: AttemptRecord) -> None:
        nonlocal done
        done += record.error is None
        if done == 100:
            half_done.set()

    # cooldown=0: every call asks Redis again, so the restart is noticed at once.
    limiter = RedisRateLimiter.from_url(
        redis_server.url, rate=100, sdkappid=fake.sdkappid, timeout=0.5, cooldown=0
    )
    async with limiter, fake.client(limiter=limiter, on_attempt=count) as chat:
        calls = asyncio.gather(*(chat.get_all_robots() for _ in range(300)), return_exceptions=True)
        await half_done.wait()
        redis_server.kill()
        killed_at = time.monotonic()
        results = await calls
        # Nothing hangs: the head calls for its 1 s retry budget (refused at once each
        # time), then every call left fails with it.
        assert time.monotonic() - killed_at < 2.0
        failed = [r for r in results if isinstance(r, BaseException)]
        assert 100 <= len(results) - len(failed) < 300
        assert failed
        assert all(isinstance(r, LimiterUnavailableError) for r in failed)
        assert len(fake.calls) == len(results) - len(failed)  # failed calls sent nothing

        redis_server.start()  # same port, empty: the script cache is gone too
        grants: list[float] = []
        record_grants(limiter, grants)
        await asyncio.gather(*(chat.get_all_robots() for _ in range(30)))
    assert len(grants) >= 30
    stats = redis_server.client().info("commandstats")
    assert stats["cmdstat_evalsha"]["failed_calls"] >= 1  # NOSCRIPT once...
    assert stats["cmdstat_script|load"]["calls"] >= 1  # ...then loaded again


async def test_local_fallback_keeps_the_fleet_working_through_an_outage(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="tencent_chat_robots")
    fake = FakeTencentChat()
    half_done = asyncio.Event()
    done = 0

    def count(record: AttemptRecord) -> None:
        nonlocal done
        done += record.error is None
        if done == 100:
            half_done.set()

    limiter = RedisRateLimiter.from_url(
        redis_server.url,
        rate=RATE,
        sdkappid=fake.sdkappid,
        fallback="local",
        fleet_size=2,
        cooldown=0.2,
    )
    async with limiter, fake.client(limiter=limiter, on_attempt=count) as chat:
        calls = asyncio.gather(*(chat.get_all_robots() for _ in range(400)))
        await half_done.wait()
        redis_server.kill()
        await calls  # every call succeeds: paced locally at 95/s while Redis is down
        assert any("fleet_size 2" in r.getMessage() for r in caplog.records)

        redis_server.start()
        await asyncio.sleep(limiter.cooldown)  # the documented wait before Redis is tried
        await chat.get_all_robots()
    assert any("answers again" in r.getMessage() for r in caplog.records)
    assert redis_server.client().exists(limiter.redis_key(KEY)) == 1
    codes = [call.error_code for call in fake.calls]
    assert codes == [0] * 401
    assert fake.max_arrivals_in_window(KEY) <= 200


async def test_a_stopped_redis_fails_every_queued_call_within_one_retry_budget(
    redis_server: RedisServer,
) -> None:
    """SIGSTOP: connections accepted, nothing answered. cooldown=0 tries Redis on every
    call, yet the 50 callers queued behind the one asking fail with it, not in turn."""
    limiter = RedisRateLimiter.from_url(
        redis_server.url, rate=100, sdkappid=1, timeout=0.3, cooldown=0, retry_budget=0.4
    )
    async with limiter:
        await limiter.acquire(KEY)  # connected, script loaded
        redis_server.stop()
        try:
            began = time.monotonic()
            results = await asyncio.gather(
                *(limiter.acquire(KEY) for _ in range(50)), return_exceptions=True
            )
            elapsed = time.monotonic() - began
        finally:
            redis_server.resume()
        assert all(isinstance(r, LimiterUnavailableError) for r in results)
        # The head's budget of 0.4 s, and at most its last call's time-out of 0.3 s: not
        # 50 budgets (nor the 50 time-outs it was before retries).
        assert 0.4 <= elapsed < 1.0
        await limiter.acquire(KEY)  # answered again: back to the shared limit


def test_the_script_runs_on_real_redis_exactly(redis_server: RedisServer) -> None:
    """Real Redis is Lua 5.1 with its own number conversions: the bound, in its clock."""

    async def main() -> list[float]:
        limiters = [
            RedisRateLimiter.from_url(redis_server.url, rate=50, sdkappid=1) for _ in range(3)
        ]
        grants: list[float] = []
        for limiter in limiters:
            record_grants(limiter, grants)
        await asyncio.gather(*(limiter.acquire(KEY) for limiter in limiters for _ in range(40)))
        for limiter in limiters:
            await limiter.aclose()
        return grants

    grants = asyncio.run(main())
    assert len(grants) >= 120  # more if a late waker gave up its booked start
    # Grants k and k + 50 more than a second apart, even in Redis's µs arithmetic.
    assert most_in_closed_window(grants, 1_000_000) <= 50
    assert (len(grants) - 1) * 1e6 / (max(grants) - min(grants)) >= 0.95 * 50
