"""The rate limiter's guarantee, proved on a virtual clock, plus one real-time check."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tencent_chat_robots import RateLimiter

from ._virtual_time import VirtualClockLoop, max_in_window, run_virtual

KEY = "openim_robot_http_svc/get_all_robots"


async def _gather_starts(limiter: RateLimiter, loop: VirtualClockLoop, n: int) -> list[float]:
    starts: list[float] = []

    async def one() -> None:
        await limiter.acquire(KEY)
        starts.append(loop.time())

    await asyncio.gather(*(one() for _ in range(n)))
    return starts


def _min_spread_of_three(times: list[float]) -> float:
    """Shortest span holding three consecutive starts: the burst test."""
    ordered = sorted(times)
    return min(ordered[i + 2] - ordered[i] for i in range(len(ordered) - 2))


def test_cold_start_never_exceeds_rate_and_sustains_it() -> None:
    async def main(loop: VirtualClockLoop) -> list[float]:
        return await _gather_starts(RateLimiter(190), loop, 1000)

    starts = run_virtual(main)
    assert len(starts) == 1000
    assert max_in_window(starts) <= 190
    sustained = (len(starts) - 1) / (max(starts) - min(starts))
    assert sustained >= 0.98 * 190
    # A burst of two at most: three starts never share one pacing interval.
    assert _min_spread_of_three(starts) >= 1 / 190 - 1e-9


def test_idle_gap_does_not_refill_a_burst() -> None:
    async def main(loop: VirtualClockLoop) -> list[float]:
        limiter = RateLimiter(100)
        first = await _gather_starts(limiter, loop, 250)
        await asyncio.sleep(3.7)
        second = await _gather_starts(limiter, loop, 250)
        return first + second

    starts = run_virtual(main)
    assert max_in_window(starts) <= 100
    assert _min_spread_of_three(starts) >= 1 / 100 - 1e-9


def test_event_loop_stall_does_not_release_a_burst() -> None:
    async def main(loop: VirtualClockLoop) -> list[float]:
        limiter = RateLimiter(50)

        async def staller() -> None:
            for _ in range(5):
                await asyncio.sleep(0.73)
                loop.stall(0.4)  # CPU-bound work: time passes, no timer runs

        task = asyncio.ensure_future(staller())
        starts = await _gather_starts(limiter, loop, 300)
        await task
        return starts

    starts = run_virtual(main)
    assert max_in_window(starts) <= 50
    assert _min_spread_of_three(starts) >= 1 / 50 - 1e-9


def test_waiters_are_served_first_come_first_served() -> None:
    async def main(loop: VirtualClockLoop) -> list[int]:
        limiter = RateLimiter(20)
        order: list[int] = []

        async def one(i: int) -> None:
            await limiter.acquire(KEY)
            order.append(i)

        tasks = []
        for i in range(200):
            tasks.append(asyncio.ensure_future(one(i)))
            if i % 7 == 0:
                await asyncio.sleep(0.013)  # newcomers keep arriving while others wait
        await asyncio.gather(*tasks)
        return order

    assert run_virtual(main) == list(range(200))


def test_cancelled_waiters_leave_the_limiter_consistent() -> None:
    async def main(loop: VirtualClockLoop) -> tuple[list[float], int]:
        limiter = RateLimiter(10)
        starts: list[float] = []

        async def one() -> None:
            await limiter.acquire(KEY)
            starts.append(loop.time())

        tasks = [asyncio.ensure_future(one()) for _ in range(60)]
        await asyncio.sleep(0.55)  # some granted, one sleeping at the head, the rest queued
        cancelled = 0
        for task in tasks[::3]:
            if not task.done():
                task.cancel()
                cancelled += 1
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert sum(isinstance(r, asyncio.CancelledError) for r in results) == cancelled
        starts += await _gather_starts(limiter, loop, 30)  # still serves afterwards
        return starts, cancelled

    starts, cancelled = run_virtual(main)
    assert cancelled > 10
    assert len(starts) == 60 - cancelled + 30
    assert max_in_window(starts) <= 10


def test_one_timer_serves_a_key_however_many_wait() -> None:
    """Waiting is O(1) per acquisition: queued callers wait on futures, one timer serves them."""
    pending: set[asyncio.TimerHandle] = set()
    most = 0
    armed = 0

    async def main(loop: VirtualClockLoop) -> list[float]:
        real_call_later = loop.call_later

        def counting_call_later(delay: float, callback: Any, *args: Any) -> asyncio.TimerHandle:
            nonlocal most, armed

            def fired() -> None:
                pending.discard(handle)
                callback(*args)

            handle = real_call_later(delay, fired)
            armed += 1
            pending.difference_update([h for h in pending if h.cancelled()])
            pending.add(handle)
            most = max(most, len(pending))
            return handle

        loop.call_later = counting_call_later  # type: ignore[method-assign]
        return await _gather_starts(RateLimiter(1000), loop, 20_000)

    starts = run_virtual(main)
    assert len(starts) == 20_000
    assert most == 1
    assert armed <= 20_000 + 2


def test_keys_have_separate_budgets() -> None:
    async def main(loop: VirtualClockLoop) -> dict[str, list[float]]:
        limiter = RateLimiter(30)
        starts: dict[str, list[float]] = {"a": [], "b": []}

        async def one(key: str) -> None:
            await limiter.acquire(key)
            starts[key].append(loop.time())

        await asyncio.gather(*(one(k) for _ in range(90) for k in ("a", "b")))
        return starts

    starts = run_virtual(main)
    for times in starts.values():
        assert len(times) == 90
        assert max_in_window(times) <= 30
    # Both keys ran side by side: the whole run took about 3 s, not 6.
    assert max(starts["a"] + starts["b"]) - min(starts["a"] + starts["b"]) < 3.5


@settings(max_examples=40, deadline=None)
@given(
    rate=st.integers(min_value=1, max_value=400),
    burst=st.integers(min_value=1, max_value=4),
    arrivals=st.lists(
        st.tuples(st.floats(min_value=0, max_value=2.5), st.integers(min_value=1, max_value=120)),
        min_size=1,
        max_size=6,
    ),
    stalls=st.lists(st.floats(min_value=0.001, max_value=1.5), max_size=3),
)
def test_bound_holds_for_any_arrival_pattern(
    rate: int, burst: int, arrivals: list[tuple[float, int]], stalls: list[float]
) -> None:
    async def main(loop: VirtualClockLoop) -> list[float]:
        limiter = RateLimiter(rate, burst=burst)
        starts: list[float] = []

        async def one() -> None:
            await limiter.acquire(KEY)
            starts.append(loop.time())

        async def staller() -> None:
            for stall in stalls:
                await asyncio.sleep(0.31)
                loop.stall(stall)

        tasks = [asyncio.ensure_future(staller())]
        for gap, count in arrivals:
            await asyncio.sleep(gap)
            tasks += [asyncio.ensure_future(one()) for _ in range(count)]
        await asyncio.gather(*tasks)
        return starts

    starts = run_virtual(main)
    assert len(starts) == sum(count for _, count in arrivals)
    assert max_in_window(starts) <= rate
    _assert_more_than_a_second_apart(starts, rate)


def _assert_more_than_a_second_apart(starts: list[float], rate: int) -> None:
    """Start k + rate comes more than a second (and a millisecond) after start k.

    Exactly one second apart, both can fall in one closed second at the server.
    """
    ordered = sorted(starts)
    gaps = [later - earlier for earlier, later in zip(ordered, ordered[rate:], strict=False)]
    assert all(gap > 1.001 for gap in gaps), min(gaps)


def test_a_saturated_key_never_puts_rate_plus_one_starts_in_a_closed_second() -> None:
    async def main(loop: VirtualClockLoop) -> list[float]:
        return await _gather_starts(RateLimiter(10, burst=10), loop, 100)

    starts = run_virtual(main)
    _assert_more_than_a_second_apart(starts, 10)
    assert (len(starts) - 1) / (max(starts) - min(starts)) >= 0.98 * 10  # still sustained


def test_rejects_nonsense_configuration() -> None:
    with pytest.raises(ValueError, match="rate"):
        RateLimiter(float("inf"))
    with pytest.raises(ValueError, match="rate"):
        RateLimiter(0)
    with pytest.raises(ValueError, match="burst"):
        RateLimiter(10, burst=0)


async def test_real_time_pacing_with_wide_margin() -> None:
    """On the real clock: 75 starts at 50/s cannot take under ~0.5 s, nor bunch."""
    limiter = RateLimiter(50)
    starts: list[float] = []

    async def one() -> None:
        await limiter.acquire(KEY)
        starts.append(time.monotonic())

    began = time.monotonic()
    await asyncio.gather(*(one() for _ in range(75)))
    elapsed = time.monotonic() - began
    assert max_in_window(starts) <= 50
    assert 1.0 <= elapsed < 10.0


def test_pause_holds_every_waiter_back_then_resumes_paced() -> None:
    async def main(loop: VirtualClockLoop) -> tuple[float, list[float]]:
        limiter = RateLimiter(100)
        await _gather_starts(limiter, loop, 10)
        paused_at = loop.time()
        await limiter.pause(KEY, 1.5)
        return paused_at, await _gather_starts(limiter, loop, 50)

    paused_at, starts = run_virtual(main)
    assert min(starts) >= paused_at + 1.5
    assert _min_spread_of_three(starts) >= 1 / 100 - 1e-9


def test_high_rates_get_a_wider_burst_and_keep_the_bound() -> None:
    """At thousands per second a timer cannot fire every interval; the burst makes up."""
    assert RateLimiter(190).burst == 2
    assert RateLimiter(5000).burst == 10

    async def main(loop: VirtualClockLoop) -> list[float]:
        limiter = RateLimiter(5000, rates={KEY: 5000})  # named: above its documented rate

        async def staller() -> None:
            for _ in range(200):  # the loop keeps waking 1 ms late, as a busy one does
                await asyncio.sleep(0.01)
                loop.stall(0.001)

        task = asyncio.ensure_future(staller())
        starts = await _gather_starts(limiter, loop, 12_000)
        await task
        return starts

    starts = run_virtual(main)
    assert max_in_window(starts) <= 5000
    assert (len(starts) - 1) / (max(starts) - min(starts)) >= 0.98 * 5000


def test_one_per_second_means_one_start_in_any_second() -> None:
    """The smallest rate keeps the guarantee too, though its burst is two."""

    async def main(loop: VirtualClockLoop) -> list[float]:
        return await _gather_starts(RateLimiter(1), loop, 6)

    starts = run_virtual(main)
    assert max_in_window(starts) <= 1
    _assert_more_than_a_second_apart(starts, 1)


def test_above_share_names_the_first_api_paced_above_95_percent_of_its_documented_rate() -> None:
    # create_robot is the table's first row, documented at 200/s: 95% of it is 190.
    risky = RateLimiter(191).above_share()
    assert risky is not None
    assert (risky[0].method, risky[1]) == ("create_robot", 191.0)
    assert RateLimiter(190).above_share() is None
    # An API named in rates is paced as asked: not counted, however close.
    assert RateLimiter(190, rates={"add_robot_to_room": 199}).above_share() is None
