"""The Redis-shared limiter against fakeredis (with Lua): the script, then the client side.

The script's guarantee is proved on a Redis clock the tests move (fakeredis reads
``time.time()`` for ``TIME``); the queueing, fault and fallback behaviour runs on real
time, kept short. Bounds are checked on the grant times the script reports, which are
exact in Redis's clock: a caller starts a little after its grant, and that latency is
the only slack between the two (see the module docstring).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import fakeredis
import fakeredis.commands_mixins.server_mixin as fakeredis_server
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tencent_chat_robots import Endpoint, PausableLimiter, TencentChatError
from tencent_chat_robots._redis_limiter import (
    LimiterUnavailableError,
    RedisRateLimiter,
    _Reply,
)
from tencent_chat_robots.testing import FakeTencentChat

from ._virtual_time import max_in_window

KEY = "openim_robot_http_svc/get_all_robots"
SDKAPPID = 1400000000
SECOND_US = 1_000_000


@pytest.fixture
def server() -> fakeredis.FakeServer:
    return fakeredis.FakeServer()


@pytest.fixture
async def redis(server: fakeredis.FakeServer) -> AsyncIterator[fakeredis.FakeAsyncRedis]:
    client = fakeredis.FakeAsyncRedis(server=server)
    yield client
    await client.aclose()


def limiter_on(server: fakeredis.FakeServer, **options: Any) -> RedisRateLimiter:
    """A limiter with a Redis client of its own, like one process of the fleet."""
    options.setdefault("rate", 50)
    options.setdefault("sdkappid", SDKAPPID)
    return RedisRateLimiter(fakeredis.FakeAsyncRedis(server=server), **options)


def record_grants(limiter: RedisRateLimiter, grants: list[float]) -> None:
    """Append the Redis time (µs) of every start the script grants ``limiter``."""
    ask = limiter._ask

    async def spy(key: str, pause_us: int) -> _Reply:
        reply = await ask(key, pause_us)
        if reply.granted:
            grants.append(reply.redis_time)
        return reply

    limiter._ask = spy  # type: ignore[method-assign]


def sustained(times: list[float]) -> float:
    """Starts per second from the first to the last (µs timestamps)."""
    return (len(times) - 1) * SECOND_US / (max(times) - min(times))


# --- the script, on a Redis clock the test moves --------------------------------------


class RedisClock:
    """Stands in for the ``time`` module fakeredis reads ``TIME`` from."""

    def __init__(self) -> None:
        self.now_us = 1_700_000_000 * SECOND_US

    def time(self) -> float:
        return self.now_us / SECOND_US


@contextmanager
def redis_clock() -> Iterator[RedisClock]:
    clock = RedisClock()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fakeredis_server, "time", clock)
        yield clock


def run(main: Callable[[RedisRateLimiter, RedisClock], Awaitable[Any]], **options: Any) -> Any:
    """Run ``main`` with a fresh fakeredis limiter whose Redis clock only moves when told."""

    async def body() -> Any:
        with redis_clock() as clock:
            limiter = limiter_on(fakeredis.FakeServer(), **options)
            try:
                return await main(limiter, clock)
            finally:
                await limiter._client.aclose()

    return asyncio.run(body())


def test_a_refused_ask_books_nothing_and_its_wait_is_exact() -> None:
    async def main(limiter: RedisRateLimiter, clock: RedisClock) -> None:
        client = limiter._client
        assert (await limiter._ask(KEY, 0)).granted
        assert (await limiter._ask(KEY, 0)).granted  # the burst of two
        before = await client.hgetall(limiter.redis_key(KEY))
        refused = await limiter._ask(KEY, 0)
        assert not refused.granted
        assert refused.wait == pytest.approx(0.1)
        assert await client.hgetall(limiter.redis_key(KEY)) == before
        clock.now_us += 100_000 - 1
        almost = await limiter._ask(KEY, 0)
        assert (almost.granted, almost.wait) == (False, 1e-6)
        clock.now_us += 1
        assert (await limiter._ask(KEY, 0)).granted

    run(main, rate=10)


def test_the_ring_caps_a_sliding_second_where_pacing_alone_would_not() -> None:
    """Burst 5 at 10/s: pacing allows an 11th start at 0.6 s, the ring holds it to 1 s."""

    async def main(limiter: RedisRateLimiter, clock: RedisClock) -> list[float]:
        grants: list[float] = []
        while len(grants) < 12:
            reply = await limiter._ask(KEY, 0)
            if reply.granted:
                grants.append(reply.redis_time)
            else:
                clock.now_us += round(reply.wait * SECOND_US)
        return grants

    grants = run(main, rate=10, burst=5)
    assert grants[10] - grants[0] == SECOND_US
    assert max_in_window(grants, SECOND_US) == 10


def test_late_wakers_still_sustain_the_rate() -> None:
    """Each caller asks 1 ms after it is told to: the burst absorbs it, nothing is lost."""

    async def main(limiter: RedisRateLimiter, clock: RedisClock) -> list[float]:
        grants: list[float] = []
        while len(grants) < 400:
            reply = await limiter._ask(KEY, 0)
            if reply.granted:
                grants.append(reply.redis_time)
            clock.now_us += round(reply.wait * SECOND_US) + 1_000
        return grants

    grants = run(main, rate=190)
    assert max_in_window(grants, SECOND_US) <= 190
    assert sustained(grants) >= 0.99 * 190


follow = st.tuples(st.just("follow"), st.integers(0, 3_000))  # ask when told, late by µs
idle = st.tuples(st.just("idle"), st.integers(0, 1_500_000))  # ask after any gap
pause = st.tuples(st.just("pause"), st.integers(1, 2_000_000))


@settings(max_examples=30, deadline=None)
@given(
    rate=st.floats(min_value=1, max_value=60),
    burst=st.integers(min_value=1, max_value=4),
    steps=st.lists(st.one_of(follow, follow, follow, idle, pause), min_size=1, max_size=250),
)
def test_the_script_bound_holds_for_any_pattern_of_asks(
    rate: float, burst: int, steps: list[tuple[str, int]]
) -> None:
    async def main(limiter: RedisRateLimiter, clock: RedisClock) -> list[float]:
        grants: list[float] = []
        told = 0
        for kind, amount in steps:
            if kind == "pause":
                await limiter._ask(KEY, amount)
                continue
            clock.now_us += told + amount if kind == "follow" else amount
            reply = await limiter._ask(KEY, 0)
            told = round(reply.wait * SECOND_US)
            if reply.granted:
                grants.append(reply.redis_time)
        return grants

    grants = run(main, rate=rate, burst=burst)
    assert max_in_window(grants, SECOND_US) <= int(rate)
    # Pacing: burst + 1 consecutive starts never share one interval.
    interval = math.ceil(SECOND_US / rate)
    assert all(grants[i + burst] - grants[i] >= interval for i in range(len(grants) - burst))


# --- keys ------------------------------------------------------------------------------


async def test_keys_are_namespaced_by_sdkappid_and_endpoint_and_expire(
    server: fakeredis.FakeServer, redis: fakeredis.FakeAsyncRedis
) -> None:
    one = limiter_on(server, rate=5, sdkappid=1400000001, prefix="pfx")
    other_app = limiter_on(server, rate=5, sdkappid=1400000002, prefix="pfx")
    grants: list[float] = []
    record_grants(other_app, grants)
    for _ in range(2):
        await one.acquire("svc/a")
        await one.acquire("svc/b")
    await other_app.acquire("svc/a")
    await other_app.acquire("svc/a")  # its own budget: the other app's burst is not spent
    assert sorted(await redis.keys("*")) == [
        b"pfx:1400000001:svc/a",
        b"pfx:1400000001:svc/b",
        b"pfx:1400000002:svc/a",
    ]
    assert grants[1] - grants[0] < 100_000  # no wait of 1/rate = 0.2 s
    # Kept as long as it matters (the last second of grants), then gone.
    assert 900 < await redis.pttl("pfx:1400000001:svc/a") <= 1_401
    await one.pause("svc/a", 5.0)
    assert 5_000 < await redis.pttl("pfx:1400000001:svc/a") <= 5_401


# --- one process: the queue ------------------------------------------------------------


async def test_waiters_are_served_first_come_first_served(server: fakeredis.FakeServer) -> None:
    limiter = limiter_on(server, rate=500)
    order: list[int] = []

    async def one(i: int) -> None:
        await limiter.acquire(KEY)
        order.append(i)

    tasks = []
    for i in range(300):
        tasks.append(asyncio.ensure_future(one(i)))
        if i % 7 == 0:
            await asyncio.sleep(0.003)  # newcomers keep arriving while others wait
    await asyncio.gather(*tasks)
    assert order == list(range(300))


async def test_only_the_head_of_the_queue_talks_to_redis(server: fakeredis.FakeServer) -> None:
    limiter = limiter_on(server, rate=2000)
    script = limiter._script
    calls = 0
    in_flight = 0
    most_in_flight = 0

    async def counting(**kwargs: Any) -> Any:
        nonlocal calls, in_flight, most_in_flight
        calls += 1
        in_flight += 1
        most_in_flight = max(most_in_flight, in_flight)
        try:
            return await script(**kwargs)
        finally:
            in_flight -= 1

    limiter._script = counting  # type: ignore[assignment]
    await asyncio.gather(*(limiter.acquire(KEY) for _ in range(2_000)))
    assert most_in_flight == 1
    # About one call per grant: each grant tells the next head how long to wait.
    assert calls <= 2_000 * 1.05


# --- the fleet ------------------------------------------------------------------------


async def test_the_bound_holds_across_processes_sharing_redis(
    server: fakeredis.FakeServer,
) -> None:
    """Three limiters (processes) on one Redis, saturating it together for about 2.4 s."""
    limiters = [limiter_on(server, rate=50) for _ in range(3)]
    grants: list[float] = []
    for limiter in limiters:
        record_grants(limiter, grants)
    await asyncio.gather(*(limiter.acquire(KEY) for limiter in limiters for _ in range(40)))
    assert len(grants) == 120
    assert max_in_window(grants, SECOND_US) <= 50
    assert sustained(grants) >= 0.95 * 50


async def test_pause_holds_back_every_process(
    server: fakeredis.FakeServer, redis: fakeredis.FakeAsyncRedis
) -> None:
    refused, other = limiter_on(server, rate=100), limiter_on(server, rate=100)
    assert isinstance(refused, PausableLimiter)
    grants: list[float] = []
    record_grants(other, grants)
    await refused.acquire(KEY)
    seconds, micros = await redis.time()
    await refused.pause(KEY, 0.3)
    await other.acquire(KEY)
    assert grants[0] >= seconds * SECOND_US + micros + 300_000


async def test_client_pauses_the_shared_schedule_after_a_frequency_refusal(
    server: fakeredis.FakeServer, redis: fakeredis.FakeAsyncRedis
) -> None:
    fake = FakeTencentChat()
    limiter = limiter_on(server, rate=190, sdkappid=fake.sdkappid)
    async with fake.client(limiter=limiter) as chat:
        await asyncio.gather(*(chat.get_all_robots() for _ in range(20)))
        fake.fail_next(Endpoint.GET_ALL_ROBOTS, 60007)
        seconds, micros = await redis.time()
        refused_at = seconds * SECOND_US + micros
        await chat.get_all_robots()  # refused once, paused, retried
    tat = int(await redis.hget(limiter.redis_key(KEY), "tat") or 0)
    assert tat >= refused_at + 1_000_000  # RATE_LIMITED_PAUSE pushed the schedule back
    assert [call.error_code for call in fake.calls].count(60007) == 1


async def test_noscript_after_a_flush_is_recovered(
    server: fakeredis.FakeServer, redis: fakeredis.FakeAsyncRedis
) -> None:
    limiter = limiter_on(server, rate=100)
    await limiter.acquire(KEY)
    await redis.script_flush()
    assert await redis.script_exists(limiter._script.sha) == [False]
    await limiter.acquire(KEY)
    assert await redis.script_exists(limiter._script.sha) == [True]


# --- faults ---------------------------------------------------------------------------


async def test_unreachable_redis_fails_every_waiter_at_once_with_a_typed_error(
    server: fakeredis.FakeServer,
) -> None:
    limiter = limiter_on(server, rate=100)
    server.connected = False
    began = time.monotonic()
    results = await asyncio.gather(
        *(limiter.acquire(KEY) for _ in range(100)), return_exceptions=True
    )
    assert time.monotonic() - began < 0.5
    assert all(isinstance(r, LimiterUnavailableError) for r in results)
    error = results[0]
    assert isinstance(error, TencentChatError)
    assert "Redis" in str(error)
    with pytest.raises(LimiterUnavailableError):
        await limiter.pause(KEY, 1.0)


async def test_a_silent_redis_times_out_instead_of_hanging() -> None:
    """A server that accepts and never answers: each wait is bounded by ``timeout``."""
    connections: list[asyncio.StreamWriter] = []

    async def swallow(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)

    silent = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    limiter = RedisRateLimiter.from_url(
        f"redis://127.0.0.1:{port}", rate=100, sdkappid=SDKAPPID, timeout=0.2
    )
    try:
        began = time.monotonic()
        results = await asyncio.gather(
            *(limiter.acquire(KEY) for _ in range(50)), return_exceptions=True
        )
        elapsed = time.monotonic() - began
    finally:
        await limiter.aclose()
        for writer in connections:
            writer.close()
        silent.close()
        await silent.wait_closed()
    assert all(isinstance(r, LimiterUnavailableError) for r in results)
    # One timeout for the head; the 49 behind it fail at once, not 49 timeouts later.
    assert 0.15 <= elapsed < 1.0


async def test_the_client_fails_clearly_and_sends_nothing(server: fakeredis.FakeServer) -> None:
    fake = FakeTencentChat()
    limiter = limiter_on(server, rate=100, sdkappid=fake.sdkappid)
    server.connected = False
    async with fake.client(limiter=limiter) as chat:
        with pytest.raises(LimiterUnavailableError):
            await chat.get_all_robots()
    assert fake.calls == []


async def test_local_fallback_paces_at_a_share_of_the_rate_and_warns(
    server: fakeredis.FakeServer,
    redis: fakeredis.FakeAsyncRedis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # cooldown=0: every acquisition tries Redis first, so recovery needs no waiting.
    limiter = limiter_on(server, rate=100, fallback="local", fleet_size=4, cooldown=0)
    server.connected = False
    caplog.set_level(logging.WARNING, logger="tencent_chat_robots")
    began = time.monotonic()
    await asyncio.gather(*(limiter.acquire(KEY) for _ in range(12)))
    # 25/s locally: a burst of 2, then 10 more 40 ms apart (100/s would take 0.1 s).
    assert time.monotonic() - began >= 0.39
    await limiter.pause(KEY, 0.01)  # no error while falling back
    outage = [r for r in caplog.records if "unavailable" in r.getMessage()]
    assert len(outage) == 1  # once per outage, not once per call
    assert "fleet_size 4" in outage[0].getMessage()

    server.connected = True
    await limiter.acquire(KEY)
    assert await redis.exists(limiter.redis_key(KEY)) == 1
    assert "answers again" in caplog.records[-1].getMessage()


# --- configuration and lifetime ------------------------------------------------------


def test_rejects_nonsense_configuration(server: fakeredis.FakeServer) -> None:
    with pytest.raises(ValueError, match="rate"):
        limiter_on(server, rate=0.5)
    with pytest.raises(ValueError, match="burst"):
        limiter_on(server, burst=0)
    with pytest.raises(ValueError, match="timeout"):
        limiter_on(server, timeout=0)
    with pytest.raises(ValueError, match="fallback"):
        limiter_on(server, fallback="ignore")
    with pytest.raises(ValueError, match="fleet_size"):
        limiter_on(server, fallback="local")


async def test_aclose_closes_only_a_client_it_created(redis: fakeredis.FakeAsyncRedis) -> None:
    owned = RedisRateLimiter.from_url("redis://127.0.0.1:1", rate=10, sdkappid=SDKAPPID)
    passed = RedisRateLimiter(redis, rate=10, sdkappid=SDKAPPID)
    closed: list[object] = []

    async def record_close() -> None:
        closed.append(owned._client)

    owned._client.aclose = record_close  # type: ignore[method-assign]
    async with owned, passed:
        pass
    assert closed == [owned._client]
    assert await redis.ping()  # the client passed in still works
