"""The Redis-shared limiter against fakeredis (with Lua), through its public seams.

Each limiter is one process of a fleet, on a Redis client of its own (``from_url`` with
fakeredis's connection). Its Redis calls are watched or broken through its ``script``
(a wrapper put in its place, :func:`hook_script`). Timing between processes (who gets
which start, late wakers, hung Redis) runs on a virtual-clock event loop that Redis's
clock follows; the rest of the queueing, fault and fallback behaviour runs on real time,
kept short. Bounds are checked on the grant times the script reports, which are exact in
Redis's clock: a caller starts a little after its grant, and that latency is the only
slack between the two. The script itself is tested through its binding in
test_redis_script.py.
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
from fakeredis.aioredis import FakeAsyncRedisConnection
from redis.exceptions import AuthenticationError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError

from tencent_chat_robots import (
    AttemptRecord,
    Endpoint,
    LimiterUnavailableError,
    PausableLimiter,
    QueueTimeoutError,
    RateLimitError,
    RedisRateLimiter,
    TencentChatError,
    ValidationError,
)
from tencent_chat_robots.testing import FakeTencentChat

from ._virtual_time import VirtualClockLoop, run_virtual

T = TypeVar("T")

KEY = "openim_robot_http_svc/get_all_robots"
SDKAPPID = 1400000000
SECOND_US = 1_000_000

# A script call made through hook_script: "interactive", "bulk" or "pause", and the call.
Around = Callable[[str, Callable[[], Awaitable[Any]]], Awaitable[Any]]


@pytest.fixture
def server() -> fakeredis.FakeServer:
    return fakeredis.FakeServer()


@pytest.fixture
async def redis(server: fakeredis.FakeServer) -> AsyncIterator[fakeredis.FakeAsyncRedis]:
    client = fakeredis.FakeAsyncRedis(server=server)
    yield client
    await client.aclose()


def limiter_on(server: fakeredis.FakeServer, **options: Any) -> RedisRateLimiter:
    """A limiter with a Redis client of its own, like one process of the fleet; its
    ``aclose`` closes that client."""
    options.setdefault("rate", 50)
    options.setdefault("sdkappid", SDKAPPID)
    return RedisRateLimiter.from_url(
        "redis://fakeredis", connection_class=FakeAsyncRedisConnection, server=server, **options
    )


async def close(*limiters: RedisRateLimiter) -> None:
    for limiter in limiters:
        await limiter.aclose()


class ScriptHook:
    """Put in place of a limiter's ``script``: each call goes through ``around``."""

    def __init__(self, script: Any, around: Around) -> None:
        self.script, self.around = script, around

    def __getattr__(self, name: str) -> Any:  # sha, token
        return getattr(self.script, name)

    async def ask(self, key: str, pace: Any, **options: Any) -> Any:
        kind = "bulk" if options.get("bulk") else "interactive"
        return await self.around(kind, lambda: self.script.ask(key, pace, **options))

    async def pause(self, key: str, pace: Any, seconds: float) -> None:
        await self.around("pause", lambda: self.script.pause(key, pace, seconds))


def hook_script(limiter: RedisRateLimiter, around: Around) -> None:
    """Route each of ``limiter``'s Redis calls through ``around(kind, call)``."""
    limiter.script = ScriptHook(limiter.script, around)  # type: ignore[assignment]


def record_replies(limiter: RedisRateLimiter, replies: list[Any]) -> None:
    """Append every reply to ``limiter``'s asks."""

    async def recording(kind: str, call: Callable[[], Awaitable[Any]]) -> Any:
        reply = await call()
        if kind != "pause":
            replies.append(reply)
        return reply

    hook_script(limiter, recording)


def record_grants(limiter: RedisRateLimiter, grants: list[float]) -> None:
    """Append the Redis time (µs) of every start the script grants ``limiter``.

    A booked start counts from the moment it is booked: if its caller wakes too late and
    gives it up, it stays recorded (as in Redis's ring), so there may be a few more
    grants than starts.
    """

    async def recording(kind: str, call: Callable[[], Awaitable[Any]]) -> Any:
        reply = await call()
        if kind != "pause" and reply.granted:
            grants.append(reply.start_us)
        return reply

    hook_script(limiter, recording)


def nobody_waits(limiter: RedisRateLimiter, key: str = KEY) -> bool:
    """No caller of ``key`` is queued in this process: ``predicted_wait`` owes an interval
    for each one queued beyond the burst, here filled up by ``also_ahead``."""
    also_ahead = limiter.burst - 1
    wait = limiter.predicted_wait(key, priority="bulk", also_ahead=also_ahead, deadline=math.inf)
    return wait == 0


def sustained(times: list[int] | list[float]) -> float:
    """Starts per second from the first to the last (µs timestamps)."""
    return (len(times) - 1) * SECOND_US / (max(times) - min(times))


def most_in_closed_window(times: list[int] | list[float], window: float) -> int:
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


class RedisClock:
    """Stands in for the ``time`` module fakeredis reads ``TIME`` from."""

    def __init__(self) -> None:
        self.now_us = 1_700_000_000 * SECOND_US

    def time(self) -> float:
        return self.now_us / SECOND_US


@contextmanager
def redis_clock() -> Iterator[RedisClock]:
    """fakeredis's clock, moved only by the test."""
    clock = RedisClock()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fakeredis_server, "time", clock)
        yield clock


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
    await close(one, other_app)


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
        await limiter.aclose()
        return order

    assert run_fleet(main) == list(range(300))


def test_only_the_head_of_the_queue_talks_to_redis() -> None:
    """On the virtual clock: a late waker re-asks, and a loaded machine makes late
    wakers, which is not what this counts."""

    async def main(server: fakeredis.FakeServer, loop: VirtualClockLoop) -> tuple[int, int]:
        limiter = limiter_on(server, rate=2000)
        calls = 0
        in_flight = 0
        most_in_flight = 0

        async def counting(_: str, call: Callable[[], Awaitable[Any]]) -> Any:
            nonlocal calls, in_flight, most_in_flight
            calls += 1
            in_flight += 1
            most_in_flight = max(most_in_flight, in_flight)
            try:
                return await call()
            finally:
                in_flight -= 1

        hook_script(limiter, counting)
        await asyncio.gather(*(limiter.acquire(KEY) for _ in range(2_000)))
        await limiter.aclose()
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
    await close(*limiters)
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
    await close(refused, other)
    assert grants[0] >= seconds * SECOND_US + micros + 300_000


async def test_client_pauses_the_shared_schedule_after_a_frequency_refusal(
    server: fakeredis.FakeServer, redis: fakeredis.FakeAsyncRedis
) -> None:
    fake = FakeTencentChat()
    limiter = limiter_on(server, rate=190, sdkappid=fake.sdkappid)
    async with limiter, fake.client(limiter=limiter) as chat:
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
    async with limiter_on(server, rate=100) as limiter:
        await limiter.acquire(KEY)
        await redis.script_flush()
        assert await redis.script_exists(limiter.script.sha) == [False]
        await limiter.acquire(KEY)
        assert await redis.script_exists(limiter.script.sha) == [True]


# --- each key at its own rate ---------------------------------------------------------


def test_each_key_is_paced_at_its_own_rate() -> None:
    """``rate=190``: a 200/s API at 190, a 100/s live-room API at 95 (the same share of
    its own), an API named in ``rates`` at its rate, a key of one's own at 190. Two
    seconds of calls of each, from a process of its own."""
    calls = {Endpoint.LIVE_ROOM_ADD_ROBOT: 190, KEY: 380, Endpoint.ROOM_ADD_ROBOT: 100}

    async def main(server: fakeredis.FakeServer, loop: VirtualClockLoop) -> Any:
        processes = {
            key: limiter_on(server, rate=190, rates={"add_robot_to_room": 50}) for key in calls
        }
        grants: dict[str, list[float]] = {key: [] for key in calls}
        for key, process in processes.items():
            record_grants(process, grants[key])
        await asyncio.gather(
            *(process.acquire(key) for key, process in processes.items() for _ in range(calls[key]))
        )
        rates = {key: process.rate_for(key) for key, process in processes.items()}
        rates["svc/mine"] = processes[KEY].rate_for("svc/mine")
        await close(*processes.values())
        return grants, rates

    grants, rates = run_fleet(main)
    assert rates == {
        Endpoint.LIVE_ROOM_ADD_ROBOT: 95,
        KEY: 190,
        Endpoint.ROOM_ADD_ROBOT: 50,
        "svc/mine": 190,
    }
    for key, granted in grants.items():
        assert len(granted) >= calls[key]
        assert most_in_closed_window(granted, SECOND_US) <= rates[key], key
        assert sustained(granted) >= 0.97 * rates[key], key


async def test_rates_are_kept_by_from_url_and_for_app(server: fakeredis.FakeServer) -> None:
    shared = RedisRateLimiter.from_url(
        "redis://fakeredis",
        rate=100,
        rates={"add_robot_to_room": 50, "svc/mine": 7},
        connection_class=FakeAsyncRedisConnection,
        server=server,
    )
    async with shared:
        bound = shared.for_app(SDKAPPID)
        assert bound.rates == shared.rates == {Endpoint.ROOM_ADD_ROBOT: 50, "svc/mine": 7}
        assert [bound.rate_for(key) for key in (Endpoint.ROOM_ADD_ROBOT, "svc/mine", KEY)] == [
            50,
            7,
            100,
        ]
        assert repr(bound) == (
            "RedisRateLimiter(rate=100, rates={'room_engine_http_srv/add_robot': 50, "
            "'svc/mine': 7}, sdkappid=1400000000, prefix='tencent-chat-robots', "
            "fallback='error')"
        )
    with pytest.raises(ValidationError, match="rates"):
        limiter_on(server, rates={"no_such_api": 5})
    with pytest.raises(ValidationError, match=r"^rates\['add_robot_to_room'\]"):
        limiter_on(server, rates={"add_robot_to_room": 0.5})


def test_the_local_fallback_paces_each_key_at_its_share_of_its_own_rate() -> None:
    """``rate=950, fleet_size=4``, Redis down: each process paces a key at a quarter of
    the key's own pace: the live-room API's is capped at its documented 100/s (25/s
    here, not 950 / 4 / 2), a 200/s API's at 200 (50/s), a key of one's own at 237.5."""

    async def main(server: fakeredis.FakeServer, loop: VirtualClockLoop) -> list[float]:
        limiter = limiter_on(server, rate=950, fallback="local", fleet_size=4, retry_budget=0)
        server.connected = False
        took = []
        for key in (Endpoint.LIVE_ROOM_ADD_ROBOT, KEY, "svc/mine"):
            began = loop.time()
            await asyncio.gather(*(limiter.acquire(key) for _ in range(12)))
            took.append(loop.time() - began)
        await limiter.aclose()
        return took

    # A burst of two, then ten intervals.
    assert run_fleet(main) == pytest.approx([10 / 25, 10 / 50, 10 / 237.5], abs=1e-3)


# --- the fleet on a virtual clock: who gets which start -------------------------------


def farther_from_redis(limiter: RedisRateLimiter, seconds: float) -> None:
    """Each of ``limiter``'s script calls reaches Redis ``seconds`` later."""

    async def delayed(_: str, call: Callable[[], Awaitable[Any]]) -> Any:
        await asyncio.sleep(seconds)
        return await call()

    hook_script(limiter, delayed)


async def sleep0() -> None:
    await asyncio.sleep(0)


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
        await close(near, *others)
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
        replies: list[Any] = []
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
        assert [r.start_in for r in replies] == [pytest.approx(0.1)]
        # Waking 4 ms late, within the tolerance: the booked start is kept.
        assert await acquire(stall_at=0.15, until=0.204) == pytest.approx(0.204)
        assert [r.start_in for r in replies] == [pytest.approx(0.1)]
        # Booked for 0.3 s, waking at 0.35 s: given up, and the next free start booked.
        assert await acquire(stall_at=0.25, until=0.35) == pytest.approx(0.4)
        assert [r.granted for r in replies] == [True, True]
        assert [r.start_in for r in replies] == pytest.approx([0.096, 0.05])
        assert replies[1].start_us - replies[0].start_us == 100_000
        await limiter.aclose()

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

        async def hung(*_: Any) -> Any:
            await never.wait()

        hook_script(limiter, hung)
        began = loop.time()
        results = await asyncio.gather(
            *(limiter.acquire(KEY) for _ in range(20)), return_exceptions=True
        )
        await limiter.aclose()
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
        await limiter.aclose()
        return loop.time() - began

    assert run_fleet(main) == pytest.approx(0.25)


# --- blips and outages on a virtual clock: retries, then fallback per acquisition -----


def redis_blip(
    limiter: RedisRateLimiter, loop: VirtualClockLoop, start: float, end: float, *, hung: bool
) -> list[float]:
    """From loop time ``start`` to ``end``, Redis refuses ``limiter``'s script calls or
    (``hung``) holds each until ``end``, as ``CLIENT PAUSE`` does. Returns the times of the
    calls made meanwhile."""
    calls: list[float] = []

    async def blipping(_: str, call: Callable[[], Awaitable[Any]]) -> Any:
        now = loop.time()
        if start <= now < end:
            calls.append(now)
            if not hung:
                raise RedisConnectionError("Error 111 connecting to redis. Connection refused.")
            await asyncio.sleep(end - now)
        return await call()

    hook_script(limiter, blipping)
    return calls


def outage_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "unavailable" in r.getMessage()]


def test_one_failed_redis_call_fails_no_queued_call(caplog: pytest.LogCaptureFixture) -> None:
    """300 calls queued at 40/s; the 20th script call fails. It used to fail the 281
    callers queued behind it (``LimiterUnavailableError``, not retried)."""

    async def main(server: fakeredis.FakeServer, loop: VirtualClockLoop) -> Any:
        limiter = limiter_on(server, rate=40)
        calls = 0

        async def failing_once(_: str, call: Callable[[], Awaitable[Any]]) -> Any:
            nonlocal calls
            calls += 1
            if calls == 20:
                raise RedisConnectionError("Connection reset by peer")
            return await call()

        hook_script(limiter, failing_once)
        starts: list[float] = []

        async def one() -> None:
            await limiter.acquire(KEY)
            starts.append(loop.time())

        results = await asyncio.gather(*(one() for _ in range(300)), return_exceptions=True)
        await limiter.aclose()
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
        await close(*limiters)
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

            async def failing_once(_: str, call: Callable[[], Awaitable[Any]]) -> Any:
                nonlocal failed_at
                if failed_at is None and loop.time() >= t0 + 1.0:
                    failed_at = loop.time() - t0
                    raise RedisConnectionError("Connection reset by peer")
                return await call()

            hook_script(first, failing_once)
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
        await close(first, second)
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

        async def broken(*_: Any) -> Any:
            nonlocal calls
            calls += 1
            raise error

        hook_script(limiter, broken)
        began = loop.time()
        results = await asyncio.gather(
            *(limiter.acquire(KEY) for _ in range(10)), return_exceptions=True
        )
        await limiter.aclose()
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
        await close(refused, other)
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
    await limiter.aclose()


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
    await limiter.aclose()


async def test_a_frequency_refusal_is_reported_even_when_redis_cannot_be_paused(
    server: fakeredis.FakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    """The client pauses the limiter on 60007: Redis failing then must not hide the 60007."""
    fake = FakeTencentChat()
    limiter = limiter_on(server, rate=100, sdkappid=fake.sdkappid, retry_budget=0.1)

    async def no_pause(kind: str, call: Callable[[], Awaitable[Any]]) -> Any:
        if kind == "pause":
            raise RedisConnectionError("Redis went away")
        return await call()

    hook_script(limiter, no_pause)
    attempts: list[AttemptRecord] = []
    fake.fail_next(Endpoint.GET_ALL_ROBOTS, 60007)
    async with (
        limiter,
        fake.client(limiter=limiter, max_retries=0, on_attempt=attempts.append) as chat,
    ):
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
    async with limiter, fake.client(limiter=limiter) as chat:
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
    await limiter.aclose()


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
    # Every key's share: the live-room APIs are paced at half of rate, 5/s here.
    with pytest.raises(ValueError, match=r"rate / fleet_size .* live_engine_http_srv/"):
        limiter_on(server, rate=10, fallback="local", fleet_size=8)
    with pytest.raises(ValueError, match=r"rate / fleet_size .* svc/mine"):
        limiter_on(server, rate=100, rates={"svc/mine": 3}, fallback="local", fleet_size=4)


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


def test_settings_are_read_only_and_shown_as_before(server: fakeredis.FakeServer) -> None:
    limiter = limiter_on(server, rate=190, fallback="local", fleet_size=2)
    assert (limiter.rate, limiter.burst, limiter.fleet_size) == (190, 2, 2)
    assert repr(limiter) == (
        "RedisRateLimiter(rate=190, sdkappid=1400000000, prefix='tencent-chat-robots', "
        "fallback='local')"
    )
    with pytest.raises(AttributeError, match="read-only"):
        limiter.rate = 400  # type: ignore[misc]
    assert limiter.rate == limiter.settings.rate == 190


async def test_keys_no_one_waits_for_are_dropped_and_their_pace_kept_in_redis(
    server: fakeredis.FakeServer,
) -> None:
    # One key per group messaged: 3,000 groups must not mean 3,000 entries for good.
    limiter = limiter_on(server, rate=190)
    try:
        for i in range(3000):
            await limiter.acquire(f"group_messages/g{i}")
        assert len(limiter._endpoints) < 1500
        # A dropped key's schedule lives on in Redis: after a burst of two, the next
        # start is 1/38 s away (a group's pace), though the key is made here anew.
        await limiter.acquire("group_messages/fresh")
        await limiter.acquire("group_messages/fresh")
        limiter._prune()
        assert "group_messages/fresh" not in limiter._endpoints
        with pytest.raises(QueueTimeoutError):
            await limiter.acquire("group_messages/fresh", deadline=anyio.current_time() + 0.005)
    finally:
        await close(limiter)
