"""Priority classes and ``max_wait`` in the in-process limiter and the in-flight slots.

On the virtual clock: a waiting interactive caller gets the next start before any
waiting bulk caller, first come first served within a class, the sliding-second bound
holds for both together, cancellation leaves nothing stuck, and a deadline that cannot
be met is refused at once exactly when the permit would come after it.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import math
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tencent_chat_robots import QueueTimeoutError, RateLimiter, ValidationError
from tencent_chat_robots._limiter import _KeyLimiter
from tencent_chat_robots._waiters import InFlightSlots

from ._virtual_time import VirtualClockLoop, max_in_window, run_virtual

KEY = "room_engine_http_srv/add_robot"
EPS = 1e-6


class Recorder:
    """Who asked for a start when, and when each got it."""

    def __init__(self, limiter: RateLimiter, loop: VirtualClockLoop) -> None:
        self.limiter = limiter
        self.loop = loop
        self.joined: dict[str, float] = {}
        self.granted: dict[str, float] = {}
        self.order: list[str] = []

    async def ask(self, name: str, priority: str, deadline: float | None = None) -> None:
        self.joined[name] = self.loop.time()
        await self.limiter.acquire(KEY, priority=priority, deadline=deadline)  # type: ignore[arg-type]
        self.granted[name] = self.loop.time()
        self.order.append(name)


def test_waiting_interactive_callers_go_before_every_waiting_bulk_one() -> None:
    async def main(loop: VirtualClockLoop) -> list[str]:
        record = Recorder(RateLimiter(10), loop)
        bulk = [asyncio.ensure_future(record.ask(f"b{i}", "bulk")) for i in range(30)]
        await asyncio.sleep(0.35)  # bulk b0..b4 have started by now (two at once, then 0.1 apart)
        interactive = [asyncio.ensure_future(record.ask(f"i{i}", "interactive")) for i in range(5)]
        await asyncio.gather(*bulk, *interactive)
        return record.order

    order = run_virtual(main)
    started_before = ["b0", "b1", "b2", "b3", "b4"]
    assert order[:5] == started_before
    assert order[5:10] == [f"i{i}" for i in range(5)]  # the next five starts, in arrival order
    assert order[10:] == [f"b{i}" for i in range(5, 30)]  # then bulk, first come first served


def test_bulk_uses_every_start_interactive_leaves() -> None:
    """A trickle of interactive calls does not slow the bulk backlog beyond its own starts."""

    async def main(loop: VirtualClockLoop) -> tuple[list[float], float]:
        record = Recorder(RateLimiter(20), loop)
        began = loop.time()
        bulk = [asyncio.ensure_future(record.ask(f"b{i}", "bulk")) for i in range(200)]
        for i in range(10):
            await asyncio.sleep(0.5)
            await record.ask(f"i{i}", "interactive")
        await asyncio.gather(*bulk)
        return list(record.granted.values()), loop.time() - began

    starts, took = run_virtual(main)
    assert len(starts) == 210
    assert max_in_window(starts) <= 20
    # 210 starts at 20/s with the 2 ms window margin: no start was left unused.
    assert took < 210 / 20 * 1.01


@st.composite
def _arrivals(draw: st.DrawFn) -> list[tuple[float, str, float | None]]:
    """(arrival time, class, cancel after) for each caller."""
    count = draw(st.integers(1, 60))
    return [
        (
            draw(st.floats(0, 3, allow_nan=False)),
            draw(st.sampled_from(["interactive", "bulk"])),
            draw(st.one_of(st.none(), st.floats(0, 2, allow_nan=False))),
        )
        for _ in range(count)
    ]


@settings(max_examples=60, deadline=None)
@given(
    arrivals=_arrivals(),
    pauses=st.lists(st.tuples(st.floats(0, 3), st.floats(0.01, 1.5)), max_size=3),
    rate=st.sampled_from([3, 5, 10, 7.5]),
)
def test_classes_bound_and_cancellation_for_any_arrival_pattern(
    arrivals: list[tuple[float, str, float | None]],
    pauses: list[tuple[float, float]],
    rate: float,
) -> None:
    """The bound holds for both classes together; no bulk start while an interactive waits;
    FIFO within a class; cancelled callers leave nothing stuck."""

    async def main(loop: VirtualClockLoop) -> tuple[Recorder, list[str], float, float]:
        limiter = RateLimiter(rate)
        record = Recorder(limiter, loop)
        origin = loop.time()
        cancelled: list[str] = []

        async def caller(name: str, at: float, priority: str, cancel: float | None) -> None:
            await asyncio.sleep(at)
            task = asyncio.ensure_future(record.ask(name, priority))
            if cancel is None:
                await task
                return
            done, _ = await asyncio.wait([task], timeout=cancel)
            if not done:
                task.cancel()
                cancelled.append(name)
                with pytest.raises(asyncio.CancelledError):
                    await task

        async def pauser(at: float, seconds: float) -> None:
            await asyncio.sleep(at)
            await limiter.pause(KEY, seconds)

        await asyncio.gather(
            *(caller(f"c{n}", *arrival) for n, arrival in enumerate(arrivals)),
            *(pauser(*p) for p in pauses),
        )
        # Afterwards the key still serves both classes at the full rate.
        after = loop.time()
        await asyncio.gather(
            *(record.ask(f"late{n}", ("interactive", "bulk")[n % 2]) for n in range(2 * int(rate)))
        )
        return record, cancelled, after - origin, loop.time() - after

    record, cancelled, _, tail = run_virtual(main)
    starts = list(record.granted.values())
    assert max_in_window(starts) <= math.floor(rate)
    assert set(record.granted) | set(cancelled) == set(record.joined)
    assert tail <= 2 + 1.5 + 2 / rate  # not stalled by anything left behind
    priority = {f"c{n}": a[1] for n, a in enumerate(arrivals)}
    waiting = {name: (record.joined[name], record.granted[name]) for name in record.granted}
    for bulk, (_, bulk_at) in waiting.items():
        if priority.get(bulk) != "bulk":
            continue
        for other, (joined, granted) in waiting.items():
            if priority.get(other) == "interactive":
                assert not (joined < bulk_at - EPS and granted > bulk_at + EPS), (bulk, other)
    for a, (joined_a, granted_a) in waiting.items():
        for b, (joined_b, granted_b) in waiting.items():
            same_class = priority.get(a, "late") == priority.get(b, "late")
            if same_class and a in priority and joined_a < joined_b - EPS:
                assert granted_a <= granted_b + EPS, (a, b)


@settings(max_examples=150, deadline=None)
@given(
    interactive=st.integers(0, 25),
    bulk=st.integers(0, 25),
    newcomer=st.sampled_from(["interactive", "bulk"]),
    rate=st.sampled_from([3, 5, 10, 7.5]),
    pause=st.one_of(st.none(), st.floats(0.05, 2)),
    # Around the start it would get: the window margin alone moves it by 2 ms per second.
    offset=st.one_of(
        st.sampled_from([-0.05, -0.01, -0.003, -0.001, -1e-4, 1e-4, 0.001, 0.003, 0.01]),
        st.floats(-2, 2).filter(lambda x: abs(x) > 1e-4),
    ),
    late=st.floats(0, 0.5),
)
def test_max_wait_is_refused_at_once_exactly_when_the_permit_would_come_too_late(
    interactive: int,
    bulk: int,
    newcomer: str,
    rate: float,
    pause: float | None,
    offset: float,
    late: float,
) -> None:
    """Two runs of the same queue: without a deadline the newcomer starts at T; with
    one it raises at once iff T is after the deadline, and otherwise starts at T."""

    def run(deadline_after: float | None) -> tuple[float, float | None, BaseException | None]:
        async def main(loop: VirtualClockLoop) -> tuple[float, float | None, BaseException | None]:
            limiter = RateLimiter(rate)
            others = [
                asyncio.ensure_future(limiter.acquire(KEY, priority=p))  # type: ignore[arg-type]
                for p in ["interactive"] * interactive + ["bulk"] * bulk
            ]
            await asyncio.sleep(late)
            if pause is not None:
                await limiter.pause(KEY, pause)
            asked = loop.time()
            deadline = None if deadline_after is None else asked + deadline_after
            try:
                await limiter.acquire(KEY, priority=newcomer, deadline=deadline)  # type: ignore[arg-type]
            except QueueTimeoutError as err:
                error: BaseException | None = err
                started = None
                raised_after = loop.time() - asked
            else:
                error, started, raised_after = None, loop.time() - asked, 0.0
            await asyncio.gather(*others)
            return raised_after, started, error

        return run_virtual(main)

    _, free_start, _ = run(None)
    assert free_start is not None
    max_wait = free_start + offset
    if max_wait < 0:
        return
    raised_after, started, error = run(max_wait)
    if offset < 0:
        assert isinstance(error, QueueTimeoutError)
        assert raised_after == 0  # at once, before any time passed
        assert error.predicted_wait is not None
        assert max_wait < error.predicted_wait <= free_start + 1e-6
    else:
        assert error is None
        assert started == pytest.approx(free_start, abs=1e-6)


def test_a_cancelled_waiters_start_is_not_counted() -> None:
    async def main(loop: VirtualClockLoop) -> float:
        limiter = RateLimiter(10, burst=1)
        await limiter.acquire(KEY)  # at 0; the next start is allowed at 0.1
        waiter = asyncio.ensure_future(limiter.acquire(KEY))
        await asyncio.sleep(0.05)
        waiter.cancel()
        await asyncio.sleep(0.1)  # the timer fires at 0.1 with no one left to serve
        asked = loop.time()
        await limiter.acquire(KEY)
        return loop.time() - asked

    assert run_virtual(main) == 0


def test_a_waiter_pushed_past_its_deadline_raises_at_the_deadline_and_leaves_the_line_whole() -> (
    None
):
    async def main(loop: VirtualClockLoop) -> tuple[float, QueueTimeoutError, list[str]]:
        record = Recorder(RateLimiter(10), loop)
        first = [asyncio.ensure_future(record.ask(f"b{i}", "bulk")) for i in range(3)]
        await asyncio.sleep(0)
        asked = loop.time()
        # b0 and b1 started at once (a burst of two); b2 is owed 0.1 s, this one 0.2 s.
        late = asyncio.ensure_future(record.ask("late", "bulk", deadline=asked + 0.25))
        behind = asyncio.ensure_future(record.ask("behind", "bulk"))
        await asyncio.sleep(0.01)
        urgent = [asyncio.ensure_future(record.ask(f"i{i}", "interactive")) for i in range(3)]
        with pytest.raises(QueueTimeoutError) as caught:
            await late
        raised_at = loop.time() - asked
        await asyncio.gather(*first, behind, *urgent)
        return raised_at, caught.value, record.order

    raised_at, error, order = run_virtual(main)
    assert raised_at == pytest.approx(0.25)
    assert error.predicted_wait is None
    assert error.endpoint == KEY
    assert "late" not in order
    assert order == ["b0", "b1", "i0", "i1", "i2", "b2", "behind"]


def test_a_permit_due_exactly_at_the_deadline_is_in_time() -> None:
    async def main(loop: VirtualClockLoop) -> float:
        limiter = RateLimiter(10, burst=1)
        await limiter.acquire(KEY)
        asked = loop.time()
        await limiter.acquire(KEY, deadline=asked + 0.1)  # the next start is 0.1 s away
        return loop.time() - asked

    assert run_virtual(main) == pytest.approx(0.1)


def test_a_start_due_at_the_deadline_is_given_even_if_the_deadline_fires_first() -> None:
    """The deadline's timer may run before the timer granting that very start."""

    async def main(loop: VirtualClockLoop) -> float:
        limiter = RateLimiter(10, burst=1)
        await limiter.acquire(KEY)  # at 0
        ahead = asyncio.ensure_future(limiter.acquire(KEY))  # at 0.1
        await asyncio.sleep(0)
        asked = loop.time()
        # Its deadline timer is set now; the timer for 0.2 only when 0.1 is granted.
        await limiter.acquire(KEY, deadline=asked + 0.2)
        await ahead
        return loop.time() - asked

    assert run_virtual(main) == pytest.approx(0.2)


def test_refusing_behind_a_thousand_waiters_costs_no_wait_and_no_walk() -> None:
    async def main(loop: VirtualClockLoop) -> tuple[float, QueueTimeoutError, int]:
        limiter = RateLimiter(190)
        queued = [asyncio.ensure_future(limiter.acquire(KEY)) for _ in range(1000)]
        await asyncio.sleep(0)
        asked = loop.time()
        with pytest.raises(QueueTimeoutError) as caught:
            await limiter.acquire(KEY, deadline=asked + 0.1)
        waited = loop.time() - asked
        for task in queued:
            task.cancel()
        await asyncio.gather(*queued, return_exceptions=True)
        return waited, caught.value, sum(limiter._keys[KEY]._line._live)

    waited, error, still_waiting = run_virtual(main)
    assert waited == 0
    assert error.predicted_wait is not None
    assert error.predicted_wait > 5
    assert still_waiting == 0


def test_unknown_priority_is_a_validation_error() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        with pytest.raises(ValidationError, match="priority"):
            await RateLimiter(10).acquire(KEY, priority="urgent")  # type: ignore[arg-type]

    run_virtual(main)


# -- in-flight slots ---------------------------------------------------------------------


async def _take_slot(slots: InFlightSlots, rank: int, deadline: float | None, key: str) -> None:
    if not slots.take(rank):
        await slots.wait(rank, deadline)


def _slot_user(slots: InFlightSlots, order: list[str], name: str, rank: int) -> Any:
    async def use() -> None:
        await _take_slot(slots, rank, None, KEY)
        order.append(name)
        await asyncio.sleep(1)
        slots.release()

    return asyncio.ensure_future(use())


def test_a_freed_slot_goes_to_the_first_interactive_waiter() -> None:
    async def main(loop: VirtualClockLoop) -> list[str]:
        slots, order = InFlightSlots(1, KEY), []
        tasks = [_slot_user(slots, order, "holder", 1)]
        await asyncio.sleep(0)
        tasks += [_slot_user(slots, order, f"b{i}", 1) for i in range(2)]
        await asyncio.sleep(0)
        tasks += [_slot_user(slots, order, f"i{i}", 0) for i in range(2)]
        await asyncio.gather(*tasks)
        return order

    assert run_virtual(main) == ["holder", "i0", "i1", "b0", "b1"]


def test_a_slot_served_to_a_cancelled_waiter_passes_on_and_deadlines_expire() -> None:
    async def main(loop: VirtualClockLoop) -> tuple[list[str], float, int]:
        slots, order = InFlightSlots(1, KEY), []
        await _take_slot(slots, 1, None, KEY)
        doomed = asyncio.ensure_future(_take_slot(slots, 0, None, KEY))
        patient = _slot_user(slots, order, "patient", 1)
        await asyncio.sleep(0)
        asked = loop.time()
        with pytest.raises(QueueTimeoutError):
            await _take_slot(slots, 0, asked + 0.5, KEY)
        expired_after = loop.time() - asked
        slots.release()  # served to `doomed`, which is cancelled before it runs
        doomed.cancel()
        with pytest.raises(asyncio.CancelledError):
            await doomed
        await patient
        return order, expired_after, slots._in_use

    order, expired_after, free = run_virtual(main)
    assert order == ["patient"]
    assert expired_after == pytest.approx(0.5)
    assert free == 0  # nothing leaked or counted twice


def test_bulk_callers_leave_a_reserve_of_slots_to_interactive_ones() -> None:
    async def main(loop: VirtualClockLoop) -> tuple[list[str], list[float], int, int, int]:
        slots, order = InFlightSlots(32, KEY), []  # two are kept for interactive calls
        held: list[float] = []
        holding = {"bulk": 0, "all": 0}
        most = {"bulk": 0, "all": 0}

        async def use(name: str, rank: int) -> None:
            await _take_slot(slots, rank, None, KEY)
            order.append(name)
            held.append(loop.time())
            for kind in ("bulk", "all") if rank else ("all",):
                holding[kind] += 1
                most[kind] = max(most[kind], holding[kind])
            await asyncio.sleep(1)
            for kind in ("bulk", "all") if rank else ("all",):
                holding[kind] -= 1
            slots.release()

        tasks = [asyncio.ensure_future(use(f"b{i}", 1)) for i in range(40)]
        await asyncio.sleep(0.5)
        tasks += [asyncio.ensure_future(use(f"i{i}", 0)) for i in range(3)]
        await asyncio.gather(*tasks)
        return order, held, most["bulk"], most["all"], slots._in_use

    order, held, most_bulk, most_all, left = run_virtual(main)
    assert order[:30] == [f"b{i}" for i in range(30)]
    assert order[30:32] == ["i0", "i1"]  # at once, in the reserve
    assert held[30:32] == [1000.5, 1000.5]
    assert order[32] == "i2"  # the first slot freed, before the ten bulk callers waiting
    assert order[33:] == [f"b{i}" for i in range(30, 40)]
    assert (most_bulk, most_all, left) == (30, 32, 0)


def test_a_slot_an_interactive_call_frees_goes_to_no_bulk_call_beyond_its_share() -> None:
    slots = InFlightSlots(4, KEY)  # one is kept for interactive calls
    assert [slots.take(1) for _ in range(4)] == [True, True, True, False]
    assert slots.take(0)

    async def main(loop: VirtualClockLoop) -> list[str]:
        order: list[str] = []

        async def bulk() -> None:
            await slots.wait(1, None)
            order.append("bulk")

        waiting = asyncio.ensure_future(bulk())
        await asyncio.sleep(0)
        slots.release()  # the interactive call's: the bulk caller still has its three
        await asyncio.sleep(0)
        order.append("interactive left")
        slots.release()  # a bulk call's: now the waiting one goes
        await waiting
        return order

    assert run_virtual(main) == ["interactive left", "bulk"]


def test_of_two_slots_one_is_kept_for_interactive_calls() -> None:
    slots = InFlightSlots(2, KEY)
    assert slots.take(1)
    assert not slots.take(1)
    assert slots.take(0)
    assert not slots.take(0)
    single = InFlightSlots(1, KEY)  # nothing to keep back: bulk calls could never run
    assert single.take(1)


async def test_a_slot_wait_that_runs_out_says_so() -> None:
    slots = InFlightSlots(1, KEY)
    assert slots.take(0)
    with pytest.raises(QueueTimeoutError, match="in-flight slot") as caught:
        await slots.wait(0, asyncio.get_running_loop().time() + 0.01)
    assert caught.value.endpoint == KEY


def _simulated_start(limiter: _KeyLimiter, now: float, ahead: int) -> float:
    """The start of the caller behind ``ahead`` others, one start at a time."""
    tat, starts = limiter._tat, collections.deque(limiter._starts, maxlen=limiter._starts.maxlen)
    start = now
    for _ in range(ahead + 1):
        start = max(start, tat - limiter._tolerance)
        if len(starts) == starts.maxlen:
            start = max(start, starts[0] + 1.002)
        tat = max(tat, start) + limiter._interval
        starts.append(start)
    return start


@settings(max_examples=300, deadline=None)
@given(
    rate=st.sampled_from([1, 1.5, 2, 3, 5, 7.5, 10, 190]),
    burst=st.integers(1, 4),
    history=st.lists(st.floats(0, 0.6), max_size=40),
    paused=st.one_of(st.none(), st.floats(0, 2)),
    idle=st.floats(0, 1.5),
    ahead=st.integers(0, 700),
    offset=st.sampled_from([-1e-3, -1e-6, 1e-6, 1e-3, 0.3]),
)
def test_the_start_is_compared_with_a_deadline_exactly_whatever_the_history(
    rate: float,
    burst: int,
    history: list[float],
    paused: float | None,
    idle: float,
    ahead: int,
    offset: float,
) -> None:
    """The closed form tells a deadline just before the simulated start from one just
    after it, for any log of earlier starts, pause and queue length."""
    limiter = _KeyLimiter(KEY, rate, burst, clock=lambda: 0.0)
    now = 0.0
    for gap in history:  # earlier starts, each when the limiter allowed it (or later)
        now += gap
        now += max(0.0, limiter.delay(now))
        limiter.grant(now)
    if paused is not None:
        limiter.pause(now + paused)
    now += idle
    true_start = _simulated_start(limiter, now, ahead)
    deadline = true_start + offset
    answer = limiter.start_time(now, ahead, deadline)
    if offset < 0:
        assert deadline < answer <= true_start + 1e-9
    else:
        assert true_start - 1e-9 <= answer <= deadline


def test_a_long_queue_with_a_far_deadline_is_not_walked() -> None:
    walked = 0

    class CountingLog(collections.deque):  # type: ignore[type-arg]
        def __iter__(self) -> Any:
            nonlocal walked
            walked += 1
            return super().__iter__()

    limiter = _KeyLimiter(KEY, 190, 2, clock=lambda: 0.0)
    limiter._starts = CountingLog(limiter._starts, maxlen=190)
    for n in range(190):
        limiter.grant(n / 190)
    for ahead in (0, 1_000, 100_000):
        assert limiter.start_time(1.0, ahead, deadline=1e9) < 1e9  # plainly in time
        assert limiter.start_time(1.0, ahead, deadline=0.5) > 0.5  # plainly too late
    assert walked == 0


def test_a_waiter_cancelled_in_the_same_instant_as_a_release_holds_no_one_back() -> None:
    """Cancelled, it stops counting at once: a newcomer in that instant takes the slot."""

    async def main(loop: VirtualClockLoop) -> tuple[bool, int]:
        slots = InFlightSlots(1, KEY)
        assert slots.take(1)
        waiter = asyncio.ensure_future(_take_slot(slots, 1, None, KEY))
        await asyncio.sleep(0)
        waiter.cancel()  # its task runs its clean-up only in the next loop iteration
        slots.release()
        taken = slots.take(1)
        with pytest.raises(asyncio.CancelledError):
            await waiter
        return taken, slots._in_use

    assert run_virtual(main) == (True, 1)


def test_a_limiter_serves_a_second_event_loop_after_the_first_ended_with_waiters() -> None:
    limiter = RateLimiter(10)

    async def first(loop: VirtualClockLoop) -> None:
        queued = [asyncio.ensure_future(limiter.acquire(KEY)) for _ in range(5)]
        await asyncio.sleep(0.15)
        for task in queued:  # as asyncio.run() does to what is left when it ends
            task.cancel()
        await asyncio.gather(*queued, return_exceptions=True)

    async def second(loop: VirtualClockLoop) -> float:
        began = loop.time()
        for _ in range(3):
            await limiter.acquire(KEY)
        return loop.time() - began

    run_virtual(first)
    assert run_virtual(second) < 1


def test_timed_out_waiters_do_not_pile_up_while_their_class_is_starved() -> None:
    """Interactive calls take every start; bulk calls with max_wait time out, all along."""

    async def main(loop: VirtualClockLoop) -> tuple[int, int, int]:
        limiter = RateLimiter(50)
        most_kept = expired = 0

        async def interactive() -> None:
            while loop.time() < 1020:
                await limiter.acquire(KEY)

        async def bulk() -> None:
            nonlocal most_kept, expired
            while loop.time() < 1020:
                try:
                    await limiter.acquire(KEY, priority="bulk", deadline=loop.time() + 0.5)
                except QueueTimeoutError as err:
                    expired += err.predicted_wait is None
                    await asyncio.sleep(0.01)
                queue = limiter._keys[KEY]._line._queues[1]
                most_kept = max(most_kept, len(queue))

        await asyncio.gather(*(interactive() for _ in range(5)), *(bulk() for _ in range(20)))
        return most_kept, expired, sum(limiter._keys[KEY]._line._live)

    most_kept, expired, still_waiting = run_virtual(main)
    assert expired > 500
    assert most_kept <= 2 * 20 + 64  # bounded by those waiting, not by the time outs
    assert still_waiting == 0


def test_loop_stalls_between_the_wake_up_and_the_start_do_not_crowd_a_second() -> None:
    """The start is counted when the caller goes on, not when it was woken."""
    worst = 0
    for seed in range(30):
        worst = max(worst, run_virtual(functools.partial(_stalled_run, random.Random(seed))))
    assert worst <= 5


async def _stalled_run(rnd: random.Random, loop: VirtualClockLoop) -> int:
    limiter = RateLimiter(5)
    went_on: list[float] = []

    async def caller() -> None:
        for _ in range(30):
            await limiter.acquire(KEY)
            went_on.append(loop.time())

    def hog() -> None:  # another task's CPU work blocks the loop now and then
        loop.stall(rnd.choice([0.0] * 20 + [0.3, 0.9, 1.1]))
        loop.call_later(rnd.choice([0, 0, 0.001, rnd.random() * 0.4]), hog)

    loop.call_later(0.05, hog)
    await asyncio.gather(*(caller() for _ in range(4)))
    return max_in_window(went_on)


def test_deadlines_are_event_loop_time_whatever_the_limiters_clock() -> None:
    async def main(loop: VirtualClockLoop) -> list[str]:
        limiter = RateLimiter(10, clock=lambda: loop.time() + 1e6)  # another time base
        ahead = [asyncio.ensure_future(limiter.acquire(KEY)) for _ in range(4)]
        await asyncio.sleep(0)
        outcomes = []
        for deadline in (loop.time() + 5, loop.time() + 0.05):
            try:
                await limiter.acquire(KEY, deadline=deadline)
                outcomes.append("started")
            except QueueTimeoutError as err:
                outcomes.append("refused at once" if err.predicted_wait else "expired")
        await asyncio.gather(*ahead)
        return outcomes

    assert run_virtual(main) == ["started", "refused at once"]


def test_a_caller_woken_but_not_yet_started_is_counted_ahead_of_a_newcomer() -> None:
    """Between the timer waking the first waiter and that waiter going on, a newcomer
    with too short a max_wait is still refused at once."""

    async def main(loop: VirtualClockLoop) -> QueueTimeoutError:
        limiter = RateLimiter(10, burst=1)
        await limiter.acquire(KEY)  # the next start is 0.1 s away
        # Set before the limiter's timer for the same instant: the newcomer's step runs
        # in that iteration before the woken waiter's.
        gate = loop.create_future()
        loop.call_at(loop.time() + 0.1, gate.set_result, None)
        woken = asyncio.ensure_future(limiter.acquire(KEY))
        await asyncio.sleep(0)

        async def newcomer() -> QueueTimeoutError:
            await gate
            assert limiter._keys[KEY]._offered is not None
            with pytest.raises(QueueTimeoutError) as caught:
                await limiter.acquire(KEY, deadline=loop.time() + 0.05)
            return caught.value

        error = await asyncio.ensure_future(newcomer())
        await woken
        return error

    error = run_virtual(main)
    assert error.predicted_wait == pytest.approx(0.1)


def test_a_long_log_of_starts_is_not_walked_and_a_start_in_doubt_counts_as_in_time() -> None:
    limiter = _KeyLimiter(KEY, 1000, 2, clock=lambda: 0.0)
    for n in range(1000):
        limiter.grant(n / 1000)
    cheap_bound = limiter.start_time(1.0, 1500, deadline=0.0)
    exact = _simulated_start(limiter, 1.0, 1500)
    assert cheap_bound < exact
    # A deadline between the cheap bound and the true start is not settled by walking
    # 1,000 logged starts: the start counts as in time.
    assert limiter.start_time(1.0, 1500, deadline=(cheap_bound + exact) / 2) <= exact
