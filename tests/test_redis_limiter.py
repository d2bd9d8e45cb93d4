"""The Redis-shared limiter against fakeredis (with Lua): the script, then the client side.

The script's guarantee is proved on a Redis clock the tests move (fakeredis reads
``time.time()`` for ``TIME``). Timing between processes (who gets which start, late
wakers, hung Redis) runs on a virtual-clock event loop that Redis's clock follows; the
rest of the queueing, fault and fallback behaviour runs on real time, kept short.
Bounds are checked on the grant times the script reports, which are exact in Redis's
clock: a caller starts a little after its grant, and that latency is the only slack
between the two (see the module docstring).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import anyio
import fakeredis
import fakeredis.commands_mixins.server_mixin as fakeredis_server
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.exceptions import AuthenticationError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError

from tencent_chat_robots import (
    AttemptRecord,
    Endpoint,
    PausableLimiter,
    RateLimitError,
    TencentChatError,
)
from tencent_chat_robots._exceptions import ValidationError
from tencent_chat_robots._redis_limiter import (
    LimiterUnavailableError,
    RedisRateLimiter,
    _Reply,
)
from tencent_chat_robots._redis_script import SCRIPT as _SCRIPT
from tencent_chat_robots.testing import FakeTencentChat

from ._virtual_time import VirtualClockLoop, run_virtual

T = TypeVar("T")

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
    """Append the Redis time (µs) of every start the script grants ``limiter``.

    A booked start counts from the moment it is booked: if its caller wakes too late and
    gives it up, it stays recorded (as in Redis's ring), so there may be a few more
    grants than starts.
    """
    ask = limiter._ask

    async def spy(key: str, pause_us: int, **options: Any) -> _Reply:
        reply = await ask(key, pause_us, **options)
        if reply.granted:
            grants.append(reply.redis_time)
        return reply

    limiter._ask = spy  # type: ignore[method-assign]


def sustained(times: list[float]) -> float:
    """Starts per second from the first to the last (µs timestamps)."""
    return (len(times) - 1) * SECOND_US / (max(times) - min(times))


def most_in_closed_window(times: list[float], window: float) -> int:
    """The most timestamps in any interval ``[t, t + window]``, both ends included.

    A server counting arrivals may close its window at both ends; a limit of ``rate``
    holds for it only if starts ``k`` and ``k + rate`` are more than ``window`` apart.
    """
    ordered = sorted(times)
    best = 0
    start = 0
    for end, t in enumerate(ordered):
        while t - ordered[start] > window:
            start += 1
        best = max(best, end - start + 1)
    return best


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


def test_interactive_starts_are_booked_however_far_ahead() -> None:
    """10/s: a burst of two now, then each interactive ask is booked the next start, 0.1 s
    apart however far ahead, the ring holding the eleventh to 1.002 s; one that would
    miss its deadline is refused, booking nothing."""

    async def main(limiter: RedisRateLimiter, clock: RedisClock) -> None:
        client = limiter._client
        t0 = clock.now_us
        assert await limiter._ask(KEY, 0) == _Reply(True, 0, t0)
        assert await limiter._ask(KEY, 0) == _Reply(True, 0, t0)  # the burst of two
        for n in range(1, 9):  # other processes asking at the same instant
            assert await limiter._ask(KEY, 0) == _Reply(True, n / 10, t0 + n * 100_000)
        before = await client.hgetall(limiter.redis_key(KEY))
        # Redis's clock stands still meanwhile; the loop's deadline is as good as now.
        too_late = await limiter._ask(KEY, 0, deadline=anyio.current_time() + 0.95)
        assert too_late == _Reply(False, 1.002, t0, 0, too_late=True)
        assert await client.hgetall(limiter.redis_key(KEY)) == before
        in_time = await limiter._ask(KEY, 0, deadline=anyio.current_time() + 1.1)
        assert in_time == _Reply(True, 1.002, t0 + 1_002_000)

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
    assert grants[10] - grants[0] == SECOND_US + 2_000  # the ring's 2 ms of margin
    assert most_in_closed_window(grants, SECOND_US) == 10


@pytest.mark.parametrize(("rate", "burst"), [(10, 5), (40, 2), (190, 2), (7.5, 3)])
def test_no_two_grants_rate_apart_are_a_second_or_less_apart(rate: float, burst: int) -> None:
    """A server counting arrivals in a closed second must never see ``rate + 1``.

    Each ask lands exactly when the script said (the ring's boundary, to the µs), the
    case where grant ``k + rate`` used to be exactly one second after grant ``k``.
    """

    async def main(limiter: RedisRateLimiter, clock: RedisClock) -> list[float]:
        grants: list[float] = []
        while len(grants) < 3 * rate:
            reply = await limiter._ask(KEY, 0)
            if reply.granted:
                grants.append(reply.redis_time)
            clock.now_us += round(reply.wait * SECOND_US)
        return grants

    grants = run(main, rate=rate, burst=burst)
    n = int(rate)
    assert min(grants[i + n] - grants[i] for i in range(len(grants) - n)) > SECOND_US
    assert most_in_closed_window(grants, SECOND_US) == n
    assert sustained(grants) >= 0.99 * n  # the margin costs 0.1%


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
    assert most_in_closed_window(grants, SECOND_US) <= 190
    assert sustained(grants) >= 0.99 * 190


follow = st.tuples(st.just("follow"), st.integers(0, 3_000))  # ask when told, late by µs
idle = st.tuples(st.just("idle"), st.integers(0, 1_500_000))  # ask after any gap
other = st.tuples(st.just("other"), st.just(0))  # another process asks at the same instant
pause = st.tuples(st.just("pause"), st.integers(1, 2_000_000))


@settings(max_examples=30, deadline=None)
@given(
    rate=st.floats(min_value=1, max_value=60),
    burst=st.integers(min_value=1, max_value=4),
    steps=st.lists(st.one_of(follow, follow, follow, idle, other, pause), min_size=1, max_size=250),
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
            if kind != "other":
                told = round(reply.wait * SECOND_US)
            if reply.granted:
                assert reply.redis_time - round(reply.wait * SECOND_US) == clock.now_us
                grants.append(reply.redis_time)
        return grants

    grants = run(main, rate=rate, burst=burst)
    assert grants == sorted(grants)  # booked or not, recorded in time order
    assert most_in_closed_window(grants, SECOND_US) <= int(rate)
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


def test_waiters_are_served_first_come_first_served() -> None:
    """On the virtual clock: no stall, so no late waker re-queues behind the others."""

    async def main(server: fakeredis.FakeServer, loop: VirtualClockLoop) -> list[int]:
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
        await limiter._client.aclose()
        return order

    assert run_fleet(main) == list(range(300))


def test_only_the_head_of_the_queue_talks_to_redis() -> None:
    """On the virtual clock: a late waker re-asks, and a loaded machine makes late
    wakers, which is not what this counts."""

    async def main(server: fakeredis.FakeServer, loop: VirtualClockLoop) -> tuple[int, int]:
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
        await limiter._client.aclose()
        return calls, most_in_flight

    calls, most_in_flight = run_fleet(main)
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
    assert len(grants) >= 120  # more if a late waker gave up its booked start
    assert most_in_closed_window(grants, SECOND_US) <= 50
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


# --- the fleet on a virtual clock: who gets which start -------------------------------


class LoopRedisClock:
    """Redis's ``TIME`` follows the virtual event loop's clock."""

    def __init__(self, loop: VirtualClockLoop) -> None:
        self.loop = loop

    def time(self) -> float:
        return 1_700_000_000 + self.loop.time()


def run_fleet(main: Callable[[fakeredis.FakeServer, VirtualClockLoop], Awaitable[T]]) -> T:
    """Run ``main`` on a virtual-clock loop, with a fresh fakeredis on the same clock."""

    async def body(loop: VirtualClockLoop) -> T:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(fakeredis_server, "time", LoopRedisClock(loop))
            return await main(fakeredis.FakeServer(), loop)

    return run_virtual(body)


def farther_from_redis(limiter: RedisRateLimiter, seconds: float) -> None:
    """Each of ``limiter``'s script calls reaches Redis ``seconds`` later."""
    ask = limiter._ask

    async def delayed(key: str, pause_us: int, **options: Any) -> _Reply:
        await asyncio.sleep(seconds)
        return await ask(key, pause_us, **options)

    limiter._ask = delayed  # type: ignore[method-assign]


async def sleep0() -> None:
    await asyncio.sleep(0)


def record_replies(limiter: RedisRateLimiter, replies: list[_Reply]) -> None:
    ask = limiter._ask

    async def spy(key: str, pause_us: int, **options: Any) -> _Reply:
        reply = await ask(key, pause_us, **options)
        replies.append(reply)
        return reply

    limiter._ask = spy  # type: ignore[method-assign]


@pytest.mark.parametrize("farther", [1, 3])
def test_processes_farther_from_redis_get_their_share(farther: int) -> None:
    """One process next to Redis with 150 queued calls, others 2, 3, 4 ms away with 30.

    A refused ask used to book nothing, so every process asked again at the same
    instant and the nearest won: the others got nothing until its queue was empty.
    """

    async def main(server: fakeredis.FakeServer, loop: VirtualClockLoop) -> list[int]:
        near = limiter_on(server, rate=100)
        others = [limiter_on(server, rate=100) for _ in range(farther)]
        for n, limiter in enumerate(others, 1):
            farther_from_redis(limiter, (n + 1) / 1000)
        starts: list[tuple[float, int]] = []

        async def one(limiter: RedisRateLimiter, who: int) -> None:
            await limiter.acquire(KEY)
            starts.append((loop.time(), who))

        await asyncio.gather(
            *(one(near, 0) for _ in range(150)),
            *(one(limiter, n) for n, limiter in enumerate(others, 1) for _ in range(30)),
        )
        for limiter in [near, *others]:
            await limiter._client.aclose()
        return [who for _, who in starts[:100]]

    # The first 100 starts, a second's worth: the near process cannot have run out of
    # its 150 calls by then, so the shares below are the limiter's doing.
    first_second = run_fleet(main)
    for who in range(1, farther + 1):  # each at least 60% of an even share
        assert first_second.count(who) >= 0.6 * len(first_second) / (farther + 1)


def test_a_caller_that_wakes_late_gives_up_its_booked_start() -> None:
    """10/s: bookings 0.1 s apart; a stall past the 5 ms tolerance loses one."""

    async def main(server: fakeredis.FakeServer, loop: VirtualClockLoop) -> None:
        limiter = limiter_on(server, rate=10)
        replies: list[_Reply] = []
        record_replies(limiter, replies)

        async def stall(at: float, until: float) -> None:
            await asyncio.sleep(t0 + at - loop.time())
            loop.stall(t0 + until - loop.time())  # no timer runs meanwhile

        async def acquire(stall_at: float = 0, until: float = 0) -> float:
            """Acquire, the loop stalling from ``stall_at`` to ``until``; the start time."""
            stalling = asyncio.ensure_future(stall(stall_at, until) if stall_at else sleep0())
            replies.clear()
            await limiter.acquire(KEY)
            await stalling
            return loop.time() - t0

        t0 = loop.time()
        assert [await acquire(), await acquire()] == [0, 0]  # the burst of two
        assert await acquire() == pytest.approx(0.1)  # booked 0.1 s ahead, kept
        assert [r.wait for r in replies] == [pytest.approx(0.1)]
        # Waking 4 ms late, within the tolerance: the booked start is kept.
        assert await acquire(stall_at=0.15, until=0.204) == pytest.approx(0.204)
        assert [r.wait for r in replies] == [pytest.approx(0.1)]
        # Booked for 0.3 s, waking at 0.35 s: given up, and the next free start booked.
        assert await acquire(stall_at=0.25, until=0.35) == pytest.approx(0.4)
        assert [r.granted for r in replies] == [True, True]
        assert [r.wait for r in replies] == pytest.approx([0.096, 0.05])
        assert replies[1].redis_time - replies[0].redis_time == 100_000
        await limiter._client.aclose()

    run_fleet(main)


@pytest.mark.parametrize("fallback", ["error", "local"])
@pytest.mark.parametrize("cooldown", [0, 1.0])
@pytest.mark.parametrize("retry_budget", [0, 0.5])
def test_a_hung_redis_fails_every_queued_caller_within_one_retry_budget(
    retry_budget: float, cooldown: float, fallback: str
) -> None:
    """A Redis that accepts and never answers (SIGSTOP): the head calls again until the
    budget is spent, each call bounded by the time-out; the 19 behind it then fail (or
    fall back) at once, even with cooldown=0, instead of waiting out a time-out each."""

    async def main(
        server: fakeredis.FakeServer, loop: VirtualClockLoop
    ) -> tuple[float, list[BaseException | None]]:
        limiter = limiter_on(
            server,
            rate=100,
            timeout=0.3,
            cooldown=cooldown,
            retry_budget=retry_budget,
            fallback=fallback,
            fleet_size=1 if fallback == "local" else None,
        )
        never = asyncio.Event()

        async def hung(**_: Any) -> Any:
            await never.wait()

        limiter._script = hung  # type: ignore[assignment]
        began = loop.time()
        results = await asyncio.gather(
            *(limiter.acquire(KEY) for _ in range(20)), return_exceptions=True
        )
        await limiter._client.aclose()
        return loop.time() - began, results

    elapsed, results = run_fleet(main)
    # The last call starts before the budget is spent and may take its whole time-out.
    spent = (max(0.3, retry_budget), retry_budget + 0.3)
    if fallback == "error":
        assert all(isinstance(r, LimiterUnavailableError) for r in results)
    else:  # then paced locally at 100/s: two at once, 18 more 10 ms apart
        assert results == [None] * 20
        spent = (spent[0] + 0.18, spent[1] + 0.18)
    assert spent[0] - 1e-9 <= elapsed <= spent[1] + 1e-9


def test_pause_in_local_fallback_pauses_this_process() -> None:
    async def main(server: fakeredis.FakeServer, loop: VirtualClockLoop) -> float:
        # No retry budget: the pause this process applies must still be running when
        # Redis is given up on.
        limiter = limiter_on(server, rate=100, fallback="local", fleet_size=1, retry_budget=0)
        server.connected = False
        await limiter.pause(KEY, 0.25)  # no error: paused here, Redis not told
        began = loop.time()
        await limiter.acquire(KEY)
        await limiter._client.aclose()
        return loop.time() - began

    assert run_fleet(main) == pytest.approx(0.25)


# --- blips and outages on a virtual clock: retries, then fallback per acquisition -----


def redis_blip(
    limiter: RedisRateLimiter, loop: VirtualClockLoop, start: float, end: float, *, hung: bool
) -> list[float]:
    """From loop time ``start`` to ``end``, Redis refuses ``limiter``'s script calls or
    (``hung``) holds each until ``end``, as ``CLIENT PAUSE`` does. Returns the times of the
    calls made meanwhile."""
    script = limiter._script
    calls: list[float] = []

    async def blipping(**kwargs: Any) -> Any:
        now = loop.time()
        if start <= now < end:
            calls.append(now)
            if not hung:
                raise RedisConnectionError("Error 111 connecting to redis. Connection refused.")
            await asyncio.sleep(end - now)
        return await script(**kwargs)

    limiter._script = blipping  # type: ignore[assignment]
    return calls


def outage_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "unavailable" in r.getMessage()]


def test_one_failed_redis_call_fails_no_queued_call(caplog: pytest.LogCaptureFixture) -> None:
    """300 calls queued at 40/s; the 20th script call fails. It used to fail the 281
    callers queued behind it (``LimiterUnavailableError``, not retried)."""

    async def main(server: fakeredis.FakeServer, loop: VirtualClockLoop) -> Any:
        limiter = limiter_on(server, rate=40)
        script = limiter._script
        calls = 0

        async def failing_once(**kwargs: Any) -> Any:
            nonlocal calls
            calls += 1
            if calls == 20:
                raise RedisConnectionError("Connection reset by peer")
            return await script(**kwargs)

        limiter._script = failing_once  # type: ignore[assignment]
        starts: list[float] = []

        async def one() -> None:
            await limiter.acquire(KEY)
            starts.append(loop.time())

        results = await asyncio.gather(*(one() for _ in range(300)), return_exceptions=True)
        await limiter._client.aclose()
        return results, starts

    results, starts = run_fleet(main)
    assert results == [None] * 300
    assert most_in_closed_window(starts, 1.0) <= 40
    assert outage_warnings(caplog) == []


@pytest.mark.parametrize("fallback", ["error", "local"])
@pytest.mark.parametrize("hung", [False, True], ids=["refused-0.6s", "paused-0.8s"])
def test_a_blip_within_the_retry_budget_fails_nothing_and_keeps_the_shared_limit(
    hung: bool, fallback: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Two processes x 200 calls queued at a shared 40/s. At 1 s Redis refuses every
    call for 0.6 s, or holds every call for 0.8 s (``CLIENT PAUSE 800``: longer than the
    0.5 s time-out, shorter than the 1 s retry budget). Nothing fails, nobody leaves the
    shared limit, and only the heads of the queues call Redis meanwhile."""

    async def main(server: fakeredis.FakeServer, loop: VirtualClockLoop) -> Any:
        limiters = [
            limiter_on(
                server,
                rate=40,
                fallback=fallback,
                fleet_size=2 if fallback == "local" else None,
            )
            for _ in range(2)
        ]
        t0 = loop.time()
        blips = [
            redis_blip(limiter, loop, t0 + 1.0, t0 + (1.8 if hung else 1.6), hung=hung)
            for limiter in limiters
        ]
        starts: list[float] = []

        async def one(limiter: RedisRateLimiter) -> None:
            await limiter.acquire(KEY)
            starts.append(loop.time())

        results = await asyncio.gather(
            *(one(limiter) for limiter in limiters for _ in range(200)), return_exceptions=True
        )
        for limiter in limiters:
            await limiter._client.aclose()
        return results, starts, blips

    results, starts, blips = run_fleet(main)
    assert results == [None] * 400
    assert outage_warnings(caplog) == []
    assert most_in_closed_window(starts, 1.0) <= 40
    assert all(calls for calls in blips)
    # Each head's own calls (two when held, a few backed-off ones when refused), not
    # one per queued caller: the 199 behind each head waited for it.
    assert all(len(calls) <= (2 if hung else 8) for calls in blips)


@pytest.mark.parametrize("scenario", ["one-failure", "outage-then-newcomer"])
def test_after_a_fallback_the_next_acquisition_is_back_on_the_shared_limit(
    scenario: str,
) -> None:
    """Two processes sharing 40/s, ``fallback="local", fleet_size=2``. Once Redis is
    tried again (``cooldown`` after giving up) and answers, every acquisition, including
    the ones queued all along, is back on the shared limit.

    ``one-failure``: no retry budget, one failed call in the first process at 1 s. Its
    whole backlog used to stay at 20/s locally while the other ran at 40/s on Redis:
    60 starts a second (``[40, 60, 60, 60, 41, 20, ...]``) until the backlog drained.
    ``outage-then-newcomer``: Redis refuses the first process from 1 s to 2.5 s, longer
    than its retry budget; the second starts its calls at 2.5 s, on Redis at the full
    rate while the first used to go on pacing locally (61 starts in a second).
    """
    budget = 0.0 if scenario == "one-failure" else 1.0

    async def main(server: fakeredis.FakeServer, loop: VirtualClockLoop) -> Any:
        first, second = (
            limiter_on(server, rate=40, fallback="local", fleet_size=2, retry_budget=budget)
            for _ in range(2)
        )
        t0 = loop.time()
        failed_at: float | None = None
        if scenario == "one-failure":
            script = first._script

            async def failing_once(**kwargs: Any) -> Any:
                nonlocal failed_at
                if failed_at is None and loop.time() >= t0 + 1.0:
                    failed_at = loop.time() - t0
                    raise RedisConnectionError("Connection reset by peer")
                return await script(**kwargs)

            first._script = failing_once  # type: ignore[assignment]
        else:
            redis_blip(first, loop, t0 + 1.0, t0 + 2.5, hung=False)
        starts: list[float] = []

        async def one(limiter: RedisRateLimiter) -> None:
            await limiter.acquire(KEY)
            starts.append(loop.time() - t0)

        async def later(limiter: RedisRateLimiter) -> None:
            if scenario != "one-failure":
                await asyncio.sleep(t0 + 2.5 - loop.time())  # a virtual 2.5 s
            await asyncio.gather(*(one(limiter) for _ in range(200)))

        await asyncio.gather(*(one(first) for _ in range(200)), later(second))
        for limiter in (first, second):
            await limiter._client.aclose()
        if scenario == "one-failure":
            assert failed_at is not None
            return starts, failed_at
        # Given up a retry budget after the outage began (plus at most one booked
        # start's wait, 0.1 s, before the first failed call).
        return starts, 1.0 + budget + 0.1

    starts, given_up = run_fleet(main)
    # Redis is tried again a cooldown later, and answers; a caller that fell back just
    # before then starts up to one local interval (1/20 s) after it: 0.1 s with slack.
    back = given_up + 1.0 + 0.1
    assert len(starts) == 400
    assert most_in_closed_window([t for t in starts if t >= back], 1.0) <= 40


@pytest.mark.parametrize(
    "error",
    [
        ResponseError("ERR user_script:1: Script attempted to access nonexistent global"),
        AuthenticationError("invalid username-password pair or user is disabled."),
    ],
    ids=["script-error", "auth"],
)
def test_errors_that_are_not_transient_are_not_retried(error: Exception) -> None:
    async def main(server: fakeredis.FakeServer, loop: VirtualClockLoop) -> Any:
        limiter = limiter_on(server, rate=100)
        calls = 0

        async def broken(**_: Any) -> Any:
            nonlocal calls
            calls += 1
            raise error

        limiter._script = broken  # type: ignore[assignment]
        began = loop.time()
        results = await asyncio.gather(
            *(limiter.acquire(KEY) for _ in range(10)), return_exceptions=True
        )
        await limiter._client.aclose()
        return results, calls, loop.time() - began

    results, calls, elapsed = run_fleet(main)
    assert all(isinstance(r, LimiterUnavailableError) for r in results)
    assert results[0].__cause__ is error
    assert (calls, elapsed) == (1, 0)


def test_a_pause_reaches_the_fleet_through_a_blip(caplog: pytest.LogCaptureFixture) -> None:
    """After a 60007 the schedule must pause for every process, even if Redis refuses
    the first try: it used to be lost (logged) on the spot."""

    async def main(server: fakeredis.FakeServer, loop: VirtualClockLoop) -> float:
        refused, other = limiter_on(server, rate=100), limiter_on(server, rate=100)
        t0 = loop.time()
        redis_blip(refused, loop, t0, t0 + 0.3, hung=False)
        await refused.pause(KEY, 1.0)
        await other.acquire(KEY)
        for limiter in (refused, other):
            await limiter._client.aclose()
        return loop.time() - t0

    # The pause counts from when it reached Redis, at the end of the blip at the latest.
    assert run_fleet(main) >= 1.3
    assert not any("Could not pause" in r.getMessage() for r in caplog.records)


# --- faults ---------------------------------------------------------------------------


async def test_unreachable_redis_fails_every_waiter_together_with_a_typed_error(
    server: fakeredis.FakeServer,
) -> None:
    limiter = limiter_on(server, rate=100, retry_budget=0.2)
    server.connected = False
    began = time.monotonic()
    results = await asyncio.gather(
        *(limiter.acquire(KEY) for _ in range(100)), return_exceptions=True
    )
    # The head calls for the whole budget; the 99 behind it fail with it, not in turn.
    assert 0.2 <= time.monotonic() - began < 0.6
    assert all(isinstance(r, LimiterUnavailableError) for r in results)
    error = results[0]
    assert isinstance(error, TencentChatError)
    assert "Redis" in str(error)


async def test_pause_never_raises_for_redis(
    server: fakeredis.FakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    limiter = limiter_on(server, rate=100, retry_budget=0.1)
    server.connected = False
    caplog.set_level(logging.WARNING, logger="tencent_chat_robots")
    await limiter.pause(KEY, 1.0)  # Redis fails: logged, not raised
    await limiter.pause(KEY, 1.0)  # cooling down: the same
    lost = [r for r in caplog.records if "Could not pause" in r.getMessage()]
    assert len(lost) == 2
    assert all(r.levelno == logging.WARNING and KEY in r.getMessage() for r in lost)


async def test_a_frequency_refusal_is_reported_even_when_redis_cannot_be_paused(
    server: fakeredis.FakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    """The client pauses the limiter on 60007: Redis failing then must not hide the 60007."""
    fake = FakeTencentChat()
    limiter = limiter_on(server, rate=100, sdkappid=fake.sdkappid, retry_budget=0.1)
    ask = limiter._ask

    async def no_pause(key: str, pause_us: int, **options: Any) -> _Reply:
        if pause_us:
            raise RedisConnectionError("Redis went away")
        return await ask(key, pause_us, **options)

    limiter._ask = no_pause  # type: ignore[method-assign]
    attempts: list[AttemptRecord] = []
    fake.fail_next(Endpoint.GET_ALL_ROBOTS, 60007)
    async with fake.client(limiter=limiter, max_retries=0, on_attempt=attempts.append) as chat:
        with pytest.raises(RateLimitError):
            await chat.get_all_robots()
    assert [type(record.error) for record in attempts] == [RateLimitError]
    assert any("Could not pause" in r.getMessage() for r in caplog.records)


async def test_a_silent_redis_times_out_instead_of_hanging() -> None:
    """A server that accepts and never answers: each wait is bounded by ``timeout``."""
    connections: list[asyncio.StreamWriter] = []

    async def swallow(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)

    silent = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    limiter = RedisRateLimiter.from_url(
        f"redis://127.0.0.1:{port}", rate=100, sdkappid=SDKAPPID, timeout=0.2, retry_budget=0.3
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
    # The head's budget, its last call's time-out at most on top; the 49 behind it
    # fail with it, not 49 time-outs later.
    assert 0.3 <= elapsed < 1.0


async def test_the_client_fails_clearly_and_sends_nothing(server: fakeredis.FakeServer) -> None:
    fake = FakeTencentChat()
    limiter = limiter_on(server, rate=100, sdkappid=fake.sdkappid, retry_budget=0.1)
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
    limiter = limiter_on(
        server, rate=100, fallback="local", fleet_size=4, cooldown=0, retry_budget=0.1
    )
    server.connected = False
    caplog.set_level(logging.WARNING, logger="tencent_chat_robots")
    began = time.monotonic()
    await asyncio.gather(*(limiter.acquire(KEY) for _ in range(12)))
    # 25/s locally: a burst of 2, then 10 more 40 ms apart (100/s would take 0.1 s).
    assert time.monotonic() - began >= 0.1 + 0.39
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
    with pytest.raises(ValueError, match=r"rate / fleet_size must be at least 1 call per"):
        limiter_on(server, rate=10, fallback="local", fleet_size=20)


_BAD_NUMBERS = [
    *(("rate", v) for v in (math.inf, -math.inf, math.nan, 0.5, -1, "40")),
    *(("timeout", v) for v in (math.inf, math.nan, 0, -0.5)),
    *(("cooldown", v) for v in (math.inf, math.nan, -1)),
    *(("retry_budget", v) for v in (math.inf, math.nan, -0.1)),
    *(("burst", v) for v in (0, -1, 1.5, math.inf, math.nan, True)),
    *(("fleet_size", v) for v in (0, -2, 1.5, math.inf, math.nan)),
    *(("sdkappid", v) for v in (0, -1, 1.4e9)),
]


@pytest.mark.parametrize(("argument", "value"), _BAD_NUMBERS)
def test_rejects_numbers_out_of_range_or_not_finite_naming_the_argument(
    server: fakeredis.FakeServer, argument: str, value: object
) -> None:
    options: dict[str, Any] = {"rate": 50, "sdkappid": SDKAPPID}
    if argument == "fleet_size":
        options["fallback"] = "local"
    options[argument] = value
    with pytest.raises(ValidationError, match=rf"^{argument}\b") as raised:
        RedisRateLimiter(fakeredis.FakeAsyncRedis(server=server), **options)
    assert repr(value) in str(raised.value)
    with pytest.raises(ValidationError, match=rf"^{argument}\b"):
        RedisRateLimiter.from_url("redis://127.0.0.1:6379", **options)


# A stand-in for Redis's Lua API, as Redis 3.2-4.x behaves: a write after TIME (a
# non-deterministic command) is refused unless the script replicates its effects.
_LUA_REDIS = """
time_read, replicating, refuses_writes_after_time = false, false, true
redis = {}
function redis.replicate_commands() replicating = true; return true end
function redis.call(command, key, ...)
  if command == 'TIME' then time_read = true; return {'1700000000', '0'} end
  if command == 'HMGET' then return {false, false, false, false, false, false} end
  if command == 'HGET' then return false end
  if command == 'PTTL' then return -2 end
  if time_read and refuses_writes_after_time and not replicating then
    error('Write commands not allowed after non deterministic commands')
  end
  return 1
end
KEYS = {'k'}
ARGV = {'100000', '100000', '10', '1000000', '0', '300000', '100000', CLASS, '-1', 'tok', '0'}
"""


@pytest.mark.parametrize("priority", ["i", "b"], ids=["interactive", "bulk"])
def test_the_script_replicates_its_effects_on_old_redis(priority: str) -> None:
    lupa = pytest.importorskip("lupa.lua51")
    runtime = lupa.LuaRuntime()
    lua_redis = f"CLASS = '{priority}'" + _LUA_REDIS
    runtime.execute(lua_redis)
    assert list(runtime.execute(_SCRIPT).values()) == [1, 0, 1_700_000_000_000_000, 0]
    # Redis 5+ replicates effects anyway; should a later one drop the call, no matter.
    runtime.execute(lua_redis + "redis.replicate_commands = nil; refuses_writes_after_time = false")
    assert list(runtime.execute(_SCRIPT).values()) == [1, 0, 1_700_000_000_000_000, 0]
