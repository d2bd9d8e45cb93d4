"""A short Redis blip on a real redis-server: ``CLIENT PAUSE 800`` in the middle of a run.

800 ms is longer than the limiter's 0.5 s time-out and shorter than its 1 s retry budget.
The fleet is two limiters in this test process, each with a Redis client (and connection
pool) of its own, so Redis sees two processes' worth of clients; one process keeps every
start on one clock and lets the test start the second "process" right after the pause.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest
from redis.asyncio import Redis

from tencent_chat_robots import Endpoint, RedisRateLimiter

from .._virtual_time import max_in_window
from ..test_redis_limiter import most_in_closed_window, record_grants
from .conftest import RedisServer

KEY = Endpoint.GET_ALL_ROBOTS
RATE = 40
CALLS = 200  # queued per process: more than the run lets start
PAUSE_MS = 800
BEFORE_PAUSE = 20  # starts before the pause
SETTLE = 1.0  # s after the pause from which every sliding second is checked
AFTER_PAUSE = 100  # starts checked so (2.5 s at the shared rate), then the run ends
# Starts follow their grants by a round trip to Redis or a timer's lateness; 20 ms of
# slack keeps the client-side check about the schedule, not about the machine's load.
# (A fleet pacing 20/s locally on top of 40/s on Redis puts about 60 in such a window.)
SLACK = 0.02


@pytest.mark.parametrize(
    ("fallback", "second_starts"),
    [("error", "together"), ("local", "together"), ("local", "after-the-pause")],
)
async def test_a_client_pause_fails_no_call_and_keeps_the_shared_limit(
    redis_server: RedisServer,
    caplog: pytest.LogCaptureFixture,
    fallback: Any,
    second_starts: str,
) -> None:
    """Two processes x 200 calls queued at a shared 40/s; Redis pauses every client for
    0.8 s after the 20th start. No call fails, no process leaves the shared limit, and
    no sliding second holds more than 40 starts: on Redis's clock over the whole run,
    and on the client's clock from a second after the pause on, also when the second
    process only starts once the pause is over (it used to run on Redis at the full rate
    while the first went on pacing locally: 61 starts in a second)."""
    caplog.set_level(logging.WARNING, logger="tencent_chat_robots")
    limiters = [
        RedisRateLimiter.from_url(
            redis_server.url,
            rate=RATE,
            sdkappid=1400000000,
            fallback=fallback,
            fleet_size=2 if fallback == "local" else None,
        )
        for _ in range(2)
    ]
    grants: list[float] = []
    for limiter in limiters:
        record_grants(limiter, grants)
    starts: list[float] = []
    tasks: list[asyncio.Task[None]] = []
    pause_now = asyncio.Event()
    done = asyncio.Event()  # enough starts after the pause, or nothing left to start
    pause_end = float("inf")
    second_started = False

    def queue_calls(limiter: RedisRateLimiter) -> None:
        for _ in range(CALLS):
            task = asyncio.ensure_future(one(limiter))
            task.add_done_callback(lambda _: all(t.done() for t in tasks) and done.set())
            tasks.append(task)

    async def one(limiter: RedisRateLimiter) -> None:
        nonlocal second_started
        await limiter.acquire(KEY)
        now = time.monotonic()
        starts.append(now)
        if len(starts) == BEFORE_PAUSE:
            pause_now.set()
        if now >= pause_end and not second_started:
            second_started = True
            queue_calls(limiters[1])
        if sum(t >= pause_end + SETTLE for t in starts) >= AFTER_PAUSE:
            done.set()

    admin = Redis.from_url(redis_server.url)
    try:
        queue_calls(limiters[0])
        if second_starts == "together":
            second_started = True
            queue_calls(limiters[1])
        await asyncio.wait_for(pause_now.wait(), 10)
        await admin.client_pause(PAUSE_MS)
        # Redis started the pause before answering: this is at or after its end.
        pause_end = time.monotonic() + PAUSE_MS / 1000
        await asyncio.wait_for(done.wait(), 30)
    finally:
        for task in tasks:
            task.cancel()  # the calls still queued: not failed, just not needed
        await asyncio.gather(*tasks, return_exceptions=True)
        await admin.aclose()
        for limiter in limiters:
            await limiter.aclose()

    failed = [t.exception() for t in tasks if not t.cancelled() and t.exception()]
    assert failed == []
    assert second_started
    after = [t for t in starts if t >= pause_end + SETTLE]
    assert len(after) >= AFTER_PAUSE
    # The pause did make script calls fail (time out), so the retries were exercised...
    assert any(limiter.health.failed_tries for limiter in limiters)
    # ...and absorbed: no process ever fell back.
    assert not any("unavailable" in r.getMessage() for r in caplog.records)
    assert most_in_closed_window(grants, 1_000_000) <= RATE
    assert max_in_window(after, 1.0 - SLACK) <= RATE
