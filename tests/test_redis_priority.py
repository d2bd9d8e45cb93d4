"""Priority classes in the Redis-shared limiter: interactive first, bulk turns, deadlines.

Processes are limiters of their own on one fakeredis (one token, one client each),
timed on the virtual-clock loop that Redis's clock follows (see test_redis_limiter.py).
The bulk line's rules in the script itself are tested in test_redis_script.py.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import os
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import fakeredis
import pytest
from fakeredis.aioredis import FakeAsyncRedisConnection

from tencent_chat_robots import QueueTimeoutError, RedisRateLimiter, ValidationError
from tencent_chat_robots._redis_script import GRACE, HORIZON
from tencent_chat_robots.testing import FakeTencentChat

from ._virtual_time import VirtualClockLoop
from .test_redis_limiter import (
    KEY,
    SDKAPPID,
    SECOND_US,
    close,
    hook_script,
    limiter_on,
    most_in_closed_window,
    nobody_waits,
    record_grants,
    run_fleet,
)


def count_calls(limiter: RedisRateLimiter) -> list[str]:
    """Record the class of each of ``limiter``'s script calls ("pause" for a pause)."""
    calls: list[str] = []

    async def counting(kind: str, call: Callable[[], Awaitable[Any]]) -> Any:
        calls.append(kind)
        return await call()

    hook_script(limiter, counting)
    return calls


async def schedule_of(server: fakeredis.FakeServer, limiter: RedisRateLimiter) -> Any:
    """The endpoint's schedule in Redis (its hash), read by a client of the test's."""
    client = fakeredis.FakeAsyncRedis(server=server)
    try:
        return await client.hgetall(limiter.redis_key(KEY))
    finally:
        await client.aclose()


# --- processes on a virtual clock -----------------------------------------------------


def test_an_interactive_call_does_not_wait_behind_bulk_backlogs_anywhere() -> None:
    """Three processes with 400 bulk calls each; a fourth, and one of the three itself,
    make an interactive call every 0.1 s. Each waits at most a few intervals; the fleet
    sustains the rate at about one script call per start, within the bound."""

    async def main(server: fakeredis.FakeServer, loop: VirtualClockLoop) -> Any:
        bulk = [limiter_on(server, rate=100) for _ in range(3)]
        web = limiter_on(server, rate=100)
        grants: list[float] = []
        for limiter in [*bulk, web]:
            record_grants(limiter, grants)
        counted = [count_calls(limiter) for limiter in [*bulk, web]]
        waits: dict[str, list[float]] = {"other process": [], "same process": []}

        async def interactive(limiter: RedisRateLimiter, label: str) -> None:
            for _ in range(25):
                await asyncio.sleep(0.1)
                began = loop.time()
                await limiter.acquire(KEY)  # interactive, by default
                waits[label].append(loop.time() - began)

        backlog = [
            asyncio.ensure_future(b.acquire(KEY, priority="bulk")) for b in bulk for _ in range(400)
        ]
        await asyncio.gather(
            interactive(web, "other process"), interactive(bulk[0], "same process")
        )
        for task in backlog:
            task.cancel()
        await asyncio.gather(*backlog, return_exceptions=True)
        await close(web, *bulk)
        return waits, grants, sum(len(c) for c in counted)

    waits, grants, calls = run_fleet(main)
    for label, observed in waits.items():
        assert len(observed) == 25, label
        assert max(observed) <= (HORIZON + 1) * 0.01 + 1e-6, label
    assert most_in_closed_window(grants, SECOND_US) <= 100
    assert len(grants) >= 0.97 * 100 * 2.5
    assert calls <= 1.1 * len(grants)


def test_interactive_callers_queued_in_one_process_go_before_its_bulk_ones() -> None:
    """One process, 100 bulk calls queued, then 10 interactive ones at once: the ten all
    start before any bulk call queued after them, apart from bulk starts already booked."""

    async def main(server: fakeredis.FakeServer, loop: VirtualClockLoop) -> list[str]:
        limiter = limiter_on(server, rate=100)
        order: list[str] = []

        async def one(priority: Any) -> None:
            await limiter.acquire(KEY, priority=priority)
            order.append(priority)

        backlog = [asyncio.ensure_future(one("bulk")) for _ in range(100)]
        await asyncio.sleep(0.105)
        await asyncio.gather(*(one("interactive") for _ in range(10)))
        await asyncio.gather(*backlog)
        await close(limiter)
        return order

    order = run_fleet(main)
    first_interactive = order.index("interactive")
    last_interactive = len(order) - 1 - order[::-1].index("interactive")
    # At most the bulk starts booked before the interactive calls came (within the horizon).
    assert order[first_interactive : last_interactive + 1].count("bulk") == 0
    assert first_interactive <= 12 + HORIZON


def test_the_bulk_line_shares_fairly_among_many_processes() -> None:
    """Eight processes, 0.1 to 0.8 ms from Redis, each with a bulk backlog: each gets
    within 10% of an even share of two seconds' starts, at about a call per start."""

    async def main(server: fakeredis.FakeServer, loop: VirtualClockLoop) -> Any:
        limiters = [limiter_on(server, rate=190) for _ in range(8)]
        for n, limiter in enumerate(limiters, 1):

            async def delayed(_: str, call: Callable[[], Awaitable[Any]], n: int = n) -> Any:
                await asyncio.sleep(n / 10_000)
                return await call()

            hook_script(limiter, delayed)
        counted = [count_calls(limiter) for limiter in limiters]
        starts: list[tuple[float, int]] = []

        async def one(n: int) -> None:
            await limiters[n].acquire(KEY, priority="bulk")
            starts.append((loop.time(), n))

        t0 = loop.time()
        tasks = [asyncio.ensure_future(one(n)) for n in range(8) for _ in range(100)]
        await asyncio.sleep(2.0)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await close(*limiters)
        in_two_seconds = [n for t, n in starts if t < t0 + 2.0]
        return collections.Counter(in_two_seconds), sum(len(c) for c in counted), len(starts)

    shares, calls, started = run_fleet(main)
    assert sum(shares.values()) >= 0.97 * 190 * 2
    assert min(shares.values()) >= 0.9 * max(shares.values())
    assert calls <= 1.1 * started + 8


def test_deadlines_raise_at_once_when_the_start_is_plainly_too_late() -> None:
    """Paused for 0.5 s: an interactive call with 0.2 s to spare is refused at once with
    the wait it would have had, and books nothing; one with 0.6 s waits and starts."""

    async def main(server: fakeredis.FakeServer, loop: VirtualClockLoop) -> None:
        limiter = limiter_on(server, rate=100)
        await limiter.pause(KEY, 0.5)
        state = await schedule_of(server, limiter)
        began = loop.time()
        for priority in ("interactive", "bulk"):
            with pytest.raises(QueueTimeoutError) as raised:
                await limiter.acquire(KEY, priority=priority, deadline=began + 0.2)  # type: ignore[arg-type]
            assert raised.value.predicted_wait == pytest.approx(0.5, abs=0.011)
            assert raised.value.endpoint == KEY
        assert loop.time() == began
        assert await schedule_of(server, limiter) == {
            **state,
            b"qh": b"1",
            b"qt": b"1",  # the bulk caller joined the line and left it
        }
        await limiter.acquire(KEY, deadline=began + 0.6)
        assert loop.time() - began == pytest.approx(0.5, abs=0.011)
        await close(limiter)

    run_fleet(main)


def test_callers_queued_ahead_are_counted_before_asking_redis() -> None:
    """Ten interactive callers queued at 10/s: the eleventh, with 0.5 s to spare, is
    told at once that the ten ahead need about 0.9 s of starts (a burst of two aside)."""

    async def main(server: fakeredis.FakeServer, loop: VirtualClockLoop) -> None:
        limiter = limiter_on(server, rate=10)
        calls = count_calls(limiter)
        ahead = [asyncio.ensure_future(limiter.acquire(KEY)) for _ in range(10)]
        await asyncio.sleep(0)
        asked = len(calls)
        with pytest.raises(QueueTimeoutError) as raised:
            await limiter.acquire(KEY, deadline=loop.time() + 0.5)
        # At least the ten ahead (a burst of two aside); more once the head holds its
        # booked start, depending on whether its answer is in yet.
        assert raised.value.predicted_wait is not None
        assert raised.value.predicted_wait >= 0.9 - 1e-9
        assert len(calls) == asked  # Redis was not asked for it
        await asyncio.gather(*ahead)
        await close(limiter)

    run_fleet(main)


def test_predicted_wait_counts_this_processs_queues_and_the_clients_slot_waiters() -> None:
    async def main(server: fakeredis.FakeServer, loop: VirtualClockLoop) -> None:
        limiter = limiter_on(server, rate=10)
        deadline = loop.time() + 60
        assert limiter.predicted_wait(KEY, priority="bulk", deadline=deadline) == 0
        # Slot waiters ahead, a burst of two aside: the seventh start is 0.5 s away.
        assert limiter.predicted_wait(
            KEY, priority="bulk", also_ahead=6, deadline=deadline
        ) == pytest.approx(0.5)
        # Four interactive and three bulk callers queued, Redis holding the heads' calls
        # (so that neither holds a booked start yet).
        answer = asyncio.Event()

        async def held(_: str, call: Callable[[], Awaitable[Any]]) -> Any:
            await answer.wait()
            return await call()

        hook_script(limiter, held)
        queued = [asyncio.ensure_future(limiter.acquire(KEY)) for _ in range(4)]
        queued += [asyncio.ensure_future(limiter.acquire(KEY, priority="bulk")) for _ in range(3)]
        await asyncio.sleep(0)
        # Bulk callers wait behind both classes; interactive ones only behind their own.
        waits = [
            limiter.predicted_wait(KEY, priority=p, also_ahead=1, deadline=deadline)
            for p in ("interactive", "bulk")
        ]
        assert waits == pytest.approx([0.4, 0.7])
        answer.set()
        await asyncio.gather(*queued)
        assert nobody_waits(limiter)
        # An interactive head holding a start 1 s ahead (after a pause), three behind it:
        # the others come after it.
        other = "svc/other"
        await limiter.pause(other, 1.0)
        queued = [asyncio.ensure_future(limiter.acquire(other)) for _ in range(4)]
        await asyncio.sleep(0.01)
        assert limiter.predicted_wait(
            other, priority="interactive", deadline=deadline
        ) == pytest.approx(0.99 + 4 * 0.1)
        await asyncio.gather(*queued)
        await close(limiter)

    run_fleet(main)


def test_a_deadline_passing_while_waiting_raises_and_leaves_the_queue_usable() -> None:
    """Redis hangs: the caller's deadline (0.2 s) comes before the time-out (0.5 s).
    It raises with no prediction; the callers behind it and later ones carry on."""

    async def main(server: fakeredis.FakeServer, loop: VirtualClockLoop) -> None:
        limiter = limiter_on(server, rate=100, timeout=0.5)
        hang = True

        async def hanging(_: str, call: Callable[[], Awaitable[Any]]) -> Any:
            if hang:
                await asyncio.sleep(10)
            return await call()

        hook_script(limiter, hanging)
        began = loop.time()
        for priority in ("interactive", "bulk"):
            with pytest.raises(QueueTimeoutError) as raised:
                await limiter.acquire(KEY, priority=priority, deadline=loop.time() + 0.2)  # type: ignore[arg-type]
            assert raised.value.predicted_wait is None
        assert loop.time() - began == pytest.approx(0.4)
        hang = False
        await limiter.acquire(KEY)
        await limiter.acquire(KEY, priority="bulk")
        assert nobody_waits(limiter)
        await close(limiter)

    run_fleet(main)


@pytest.mark.parametrize("cancel_after", [0.0, 0.0001, 0.003, 0.02, 0.05])
@pytest.mark.parametrize("priority", ["interactive", "bulk"])
def test_cancelling_a_caller_at_any_point_stalls_no_one_for_longer_than_the_grace(
    priority: str, cancel_after: float
) -> None:
    """A process's only caller is cancelled at various points (queued, asking Redis,
    sleeping to its booked start or to its turn) while two other processes have bulk
    backlogs; the process then asks again. Nobody waits longer than the grace, the
    rate holds, and the process's queues are empty and usable."""

    async def main(server: fakeredis.FakeServer, loop: VirtualClockLoop) -> Any:
        others = [limiter_on(server, rate=50) for _ in range(2)]
        limiter = limiter_on(server, rate=50)
        grants: list[float] = []
        for each in [*others, limiter]:
            record_grants(each, grants)
        starts: list[float] = []

        async def one(each: RedisRateLimiter) -> None:
            await each.acquire(KEY, priority="bulk")
            starts.append(loop.time())

        backlog = [asyncio.ensure_future(one(each)) for each in others for _ in range(60)]
        await asyncio.sleep(0.3)
        # An interactive caller books at once, so each cancelled one may lose a start;
        # bulk ones hold the process's place in the line, one entry for them all.
        victims_per_round = 1 if priority == "interactive" else 3
        for _ in range(3):  # cancelled, three times in a row
            victims = [
                asyncio.ensure_future(limiter.acquire(KEY, priority=priority))  # type: ignore[arg-type]
                for _ in range(victims_per_round)
            ]
            await asyncio.sleep(cancel_after)
            for victim in victims:
                victim.cancel()
            await asyncio.gather(*victims, return_exceptions=True)
        began = loop.time()
        await limiter.acquire(KEY, priority=priority)  # type: ignore[arg-type]
        waited = loop.time() - began
        await asyncio.gather(*backlog)
        empty = nobody_waits(limiter)
        await close(limiter, *others)
        return waited, starts, grants, empty

    waited, starts, grants, empty = run_fleet(main)
    assert empty
    assert waited <= GRACE + 0.1  # its turn in a line of three at most, after the grace
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert max(gaps) <= GRACE
    assert most_in_closed_window(grants, SECOND_US) <= 50


def test_the_bound_holds_with_both_classes_and_pauses_across_processes() -> None:
    async def main(server: fakeredis.FakeServer, loop: VirtualClockLoop) -> list[float]:
        limiters = [limiter_on(server, rate=40) for _ in range(3)]
        grants: list[float] = []
        for limiter in limiters:
            record_grants(limiter, grants)

        async def pauses() -> None:
            for _ in range(3):
                await asyncio.sleep(0.7)
                await limiters[2].pause(KEY, 0.3)

        await asyncio.gather(
            *(limiters[0].acquire(KEY, priority="bulk") for _ in range(60)),
            *(limiters[1].acquire(KEY) for _ in range(30)),
            *(limiters[1].acquire(KEY, priority="bulk") for _ in range(30)),
            *(limiters[2].acquire(KEY, priority=p) for p in ("bulk", "interactive") * 15),  # type: ignore[arg-type]
            pauses(),
        )
        await close(*limiters)
        return grants

    grants = run_fleet(main)
    assert len(grants) >= 150  # more if a late waker gave up its booked start
    assert most_in_closed_window(grants, SECOND_US) <= 40


def test_a_bulk_caller_that_wakes_late_gives_up_its_start_and_still_gets_one() -> None:
    async def main(server: fakeredis.FakeServer, loop: VirtualClockLoop) -> None:
        limiter = limiter_on(server, rate=10)
        grants: list[float] = []
        record_grants(limiter, grants)
        t0 = loop.time()
        await asyncio.gather(*(limiter.acquire(KEY, priority="bulk") for _ in range(3)))
        assert loop.time() - t0 == pytest.approx(0.1)  # a burst of two, then 0.1 s

        async def stall() -> None:
            await asyncio.sleep(0.05)
            loop.stall(0.1)  # the next booked start, at 0.2 s, is missed by 50 ms

        await asyncio.gather(limiter.acquire(KEY, priority="bulk"), stall())
        assert len(grants) == 5  # the lost one, and the one after it
        assert loop.time() - t0 == pytest.approx(0.3)
        await close(limiter)

    run_fleet(main)


# --- an app for the limiter -----------------------------------------------------------


async def test_a_limiter_without_sdkappid_is_bound_by_the_client(
    server: fakeredis.FakeServer, redis: fakeredis.FakeAsyncRedis
) -> None:
    shared = RedisRateLimiter(fakeredis.FakeAsyncRedis(server=server), rate=100)
    with pytest.raises(ValidationError, match="sdkappid"):
        await shared.acquire(KEY)
    with pytest.raises(ValidationError, match="sdkappid"):
        await shared.pause(KEY, 1.0)
    fake = FakeTencentChat()
    async with fake.client(limiter=shared) as one, fake.client(limiter=shared) as two:
        assert one.limiter is two.limiter is shared.for_app(fake.sdkappid)
        await asyncio.gather(one.get_all_robots(), two.get_all_robots())
    assert await redis.keys("*") == [f"tencent-chat-robots:{fake.sdkappid}:{KEY}".encode()]
    bound = shared.for_app(fake.sdkappid)
    assert bound.for_app(fake.sdkappid) is bound
    assert shared.for_app(1400000009) is not bound
    with pytest.raises(ValidationError, match=rf"{fake.sdkappid}.*1400000009"):
        bound.for_app(1400000009)
    with pytest.raises(ValidationError, match="sdkappid"):
        shared.for_app(0)


@pytest.fixture
def server() -> fakeredis.FakeServer:
    return fakeredis.FakeServer()


@pytest.fixture
async def redis(server: fakeredis.FakeServer) -> Any:
    client = fakeredis.FakeAsyncRedis(server=server)
    yield client
    await client.aclose()


async def test_from_url_without_sdkappid_closes_its_client_and_only_it(
    server: fakeredis.FakeServer,
) -> None:
    closed: list[str] = []

    class Connection(FakeAsyncRedisConnection):
        async def disconnect(self, *args: Any, **kwargs: Any) -> None:
            closed.append("connection")
            await super().disconnect(*args, **kwargs)

    shared = RedisRateLimiter.from_url(
        "redis://fakeredis", rate=100, connection_class=Connection, server=server
    )
    bound = shared.for_app(SDKAPPID)
    assert bound.sdkappid == SDKAPPID
    assert bound.settings == attrs.evolve(shared.settings, sdkappid=SDKAPPID)
    await bound.acquire(KEY)  # a connection of the shared client's pool
    await bound.aclose()
    assert closed == []
    async with shared:
        pass
    assert closed == ["connection"]


def test_priority_is_checked() -> None:
    async def main() -> None:
        limiter = limiter_on(fakeredis.FakeServer())
        with pytest.raises(ValidationError, match="priority"):
            await limiter.acquire(KEY, priority="urgent")  # type: ignore[arg-type]
        await close(limiter)

    asyncio.run(main())


def test_no_deadline_never_raises_even_far_behind() -> None:
    async def main(server: fakeredis.FakeServer, loop: VirtualClockLoop) -> float:
        limiter = limiter_on(server, rate=10)
        await limiter.pause(KEY, 30.0)
        began = loop.time()
        await asyncio.gather(limiter.acquire(KEY), limiter.acquire(KEY, priority="bulk"))
        await close(limiter)
        return loop.time() - began

    assert run_fleet(main) == pytest.approx(30.0, abs=0.2)


def test_a_start_booked_in_time_but_answered_too_late_is_refused_when_the_answer_comes() -> None:
    """The booking fits the deadline by Redis's clock; 4 ms of answer latency pushes it
    past: the caller learns at once rather than waiting out its max_wait."""

    async def main(server: fakeredis.FakeServer, loop: VirtualClockLoop) -> None:
        limiter = limiter_on(server, rate=10, burst=1)
        await limiter.acquire(KEY)  # the next start is 0.1 s away

        async def slow_answer(_: str, call: Callable[[], Awaitable[Any]]) -> Any:
            reply = await call()
            await asyncio.sleep(0.004)
            return reply

        hook_script(limiter, slow_answer)
        asked = loop.time()
        with pytest.raises(QueueTimeoutError) as raised:
            await limiter.acquire(KEY, deadline=asked + 0.1005)
        assert loop.time() - asked == pytest.approx(0.004)
        assert raised.value.predicted_wait == pytest.approx(0.1)
        await close(limiter)

    run_fleet(main)


def test_callers_behind_an_interactive_head_holding_a_far_booking_are_refused_at_once() -> None:
    async def main(server: fakeredis.FakeServer, loop: VirtualClockLoop) -> None:
        limiter = limiter_on(server, rate=10)
        await limiter.pause(KEY, 1.0)  # as after a 60007
        head = asyncio.ensure_future(limiter.acquire(KEY))  # booked about 1 s ahead
        await asyncio.sleep(0.01)
        asked = loop.time()
        with pytest.raises(QueueTimeoutError) as raised:
            await limiter.acquire(KEY, deadline=asked + 0.5)
        assert loop.time() == asked
        assert raised.value.predicted_wait is not None
        assert raised.value.predicted_wait > 0.9
        await head
        await close(limiter)

    run_fleet(main)


def test_a_process_forked_after_the_limiter_was_made_joins_the_line_as_itself(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    limiter = RedisRateLimiter(fakeredis.FakeAsyncRedis(), rate=10, sdkappid=SDKAPPID)
    parent = limiter.script.token
    assert limiter.script.token == parent
    monkeypatch.setattr(os, "getpid", lambda: -1)
    child = limiter.script.token
    assert child != parent
    assert limiter.script.token == child
