"""The limiter's edges that the mutation run (``nox -s mutation``) found untested.

A user's limiter of a smaller protocol is completed by ``adapt_limiter``: its own
``predicted_wait`` refuses a late call at once, its ``pause`` hears of a refusal for
frequency, a one-class ``acquire(key)`` is cut at ``max_wait``. And the in-process
limiter's count of who is ahead of a newcomer, and its defaults. On the virtual clock.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest

from tencent_chat_robots import Endpoint, QueueTimeoutError, RateLimiter, TencentChat
from tencent_chat_robots._limiter import _KeyLimiter, adapt_limiter

from ._virtual_time import VirtualClockLoop, run_virtual
from .conftest import SDKAPPID, SECRET_KEY, ScriptedTransport, fail, ok

KEY = "room_engine_http_srv/add_robot"


def _chat(transport: Any, **options: Any) -> TencentChat:
    return TencentChat(SDKAPPID, SECRET_KEY, base_url="http://h", transport=transport, **options)


class HeldTransport(ScriptedTransport):
    """Answers nothing until ``release`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()

    async def post(self, url: str, content: bytes, *, timeout: float) -> Any:
        await self.release.wait()
        return await super().post(url, content, timeout=timeout)


class NotPredicting:
    """A one-class limiter whose ``predicted_wait`` is a plain value, not a method."""

    predicted_wait = 5.0

    async def acquire(self, key: str) -> None:
        pass


def test_a_predicted_wait_that_is_no_method_is_not_called() -> None:
    async def main(loop: VirtualClockLoop) -> int:
        transport = HeldTransport()
        async with _chat(transport, limiter=NotPredicting(), max_in_flight=1) as chat:
            holder = asyncio.ensure_future(chat.delete_robot("@RBT#1"))
            await asyncio.sleep(0)
            waiting = asyncio.ensure_future(chat.with_options(max_wait=1.0).delete_robot("@RBT#2"))
            await asyncio.sleep(0)
            transport.release.set()
            await asyncio.gather(holder, waiting)
        return len(transport.sent)

    assert run_virtual(main) == 2


class PredictingLimiter:
    """A one-class limiter that can say how long a permit would take."""

    def __init__(self, wait: float) -> None:
        self.wait = wait
        self.keys: list[str] = []
        self.predictions: list[tuple[str, str, int, float]] = []

    async def acquire(self, key: str) -> None:
        self.keys.append(key)

    def predicted_wait(self, key: str, *, priority: str, also_ahead: int, deadline: float) -> float:
        self.predictions.append((key, priority, also_ahead, deadline))
        return self.wait


def test_a_one_class_limiters_predicted_wait_refuses_a_late_call_at_once() -> None:
    """With every slot taken, a call whose permit its limiter says comes after max_wait
    is refused at once, with that wait; the limiter is asked with the call's class."""

    async def main(loop: VirtualClockLoop) -> tuple[Any, ...]:
        limiter, transport = PredictingLimiter(wait=5.0), HeldTransport()
        async with _chat(transport, limiter=limiter, max_in_flight=1) as chat:
            holder = asyncio.ensure_future(chat.delete_robot("@RBT#1"))
            await asyncio.sleep(0)
            asked = loop.time()
            with pytest.raises(QueueTimeoutError) as caught:
                await chat.with_options(max_wait=1.0, priority="bulk").delete_robot("@RBT#2")
            waited = loop.time() - asked
            transport.release.set()
            await holder
        return caught.value, waited, asked, limiter

    error, waited, asked, limiter = run_virtual(main)
    assert waited == 0
    assert error.predicted_wait == 5.0
    assert error.endpoint == Endpoint.DELETE_ROBOT
    [(key, priority, also_ahead, deadline)] = limiter.predictions
    assert (key, priority, also_ahead) == (Endpoint.DELETE_ROBOT, "bulk", 0)
    assert deadline == pytest.approx(asked + 1.0)
    assert limiter.keys == [Endpoint.DELETE_ROBOT]  # the refused call asked for no permit


def test_a_one_class_limiter_that_predicts_no_wait_lets_the_call_queue() -> None:
    async def main(loop: VirtualClockLoop) -> tuple[int, list[str]]:
        limiter, transport = PredictingLimiter(wait=0.0), HeldTransport()
        async with _chat(transport, limiter=limiter, max_in_flight=1) as chat:
            holder = asyncio.ensure_future(chat.delete_robot("@RBT#1"))
            await asyncio.sleep(0)
            waiting = asyncio.ensure_future(chat.with_options(max_wait=1.0).delete_robot("@RBT#2"))
            await asyncio.sleep(0.5)
            transport.release.set()
            await asyncio.gather(holder, waiting)
        return len(transport.sent), limiter.keys

    assert run_virtual(main) == (2, [Endpoint.DELETE_ROBOT] * 2)


class SlowOneClassLimiter:
    """A one-class limiter whose permit takes ten seconds; records the keys asked."""

    def __init__(self) -> None:
        self.keys: list[Any] = []

    async def acquire(self, key: str) -> None:
        self.keys.append(key)
        await asyncio.sleep(10)


def test_a_one_class_limiters_wait_cut_at_max_wait_says_so_for_the_endpoint() -> None:
    async def main(loop: VirtualClockLoop) -> tuple[QueueTimeoutError, list[Any]]:
        limiter = SlowOneClassLimiter()
        async with _chat(ScriptedTransport(), limiter=limiter) as chat:
            with pytest.raises(QueueTimeoutError) as caught:
                await chat.with_options(max_wait=0.5).delete_robot("@RBT#1")
        return caught.value, limiter.keys

    error, keys = run_virtual(main)
    assert str(error) == (
        f"{Endpoint.DELETE_ROBOT} was not sent: no rate permit in time (max_wait=0.5s)"
    )
    assert error.endpoint == Endpoint.DELETE_ROBOT
    assert keys == [Endpoint.DELETE_ROBOT]


class PausableOneClassLimiter:
    def __init__(self) -> None:
        self.keys: list[str] = []
        self.pauses: list[tuple[str, float]] = []

    async def acquire(self, key: str) -> None:
        self.keys.append(key)

    async def pause(self, key: str, seconds: float) -> None:
        self.pauses.append((key, seconds))


def test_a_one_class_limiter_with_pause_hears_of_a_refusal_for_frequency() -> None:
    async def main(loop: VirtualClockLoop) -> PausableOneClassLimiter:
        limiter = PausableOneClassLimiter()
        transport = ScriptedTransport(fail(60007, "too fast"), ok())
        async with _chat(transport, limiter=limiter) as chat:
            await chat.delete_robot("@RBT#1")
        return limiter

    limiter = run_virtual(main)
    assert limiter.pauses == [(Endpoint.DELETE_ROBOT, 1.0)]
    assert limiter.keys == [Endpoint.DELETE_ROBOT] * 2


class RankedLimiter:
    """Serves classes (takes priority and deadline) but neither predicts nor pauses."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, str, float | None]] = []

    async def acquire(
        self, key: str, *, priority: str = "interactive", deadline: float | None = None
    ) -> None:
        self.asked.append((key, priority, deadline))


def test_an_adapted_limiter_asks_in_the_interactive_class_unless_told_and_shows_the_users() -> None:
    async def main(loop: VirtualClockLoop) -> RankedLimiter:
        user = RankedLimiter()
        adapted = adapt_limiter(user)
        assert adapted is not user
        assert repr(adapted) == repr(user)
        await adapted.acquire(KEY)
        await adapted.acquire(KEY, priority="bulk", deadline=5.0)
        await adapted.pause(KEY, 1.0)  # nothing to tell: no error
        # Nothing to predict with: nothing is refused early.
        assert adapted.predicted_wait(KEY, priority="bulk", also_ahead=3, deadline=0.0) == 0.0
        return user

    assert run_virtual(main).asked == [(KEY, "interactive", None), (KEY, "bulk", 5.0)]


def test_a_full_limiter_is_used_as_it_is() -> None:
    limiter = RateLimiter(10)
    assert adapt_limiter(limiter) is limiter


def test_predicted_wait_defaults_to_an_interactive_caller_with_no_one_more_ahead() -> None:
    async def main(loop: VirtualClockLoop) -> tuple[float, float, float]:
        limiter = RateLimiter(10, burst=1)
        await limiter.acquire(KEY)  # the next start is 0.1 s away
        deadline = loop.time() + 5
        plain = limiter.predicted_wait(KEY, deadline=deadline)
        explicit = limiter.predicted_wait(
            KEY, priority="interactive", also_ahead=0, deadline=deadline
        )
        one_more = limiter.predicted_wait(KEY, also_ahead=1, deadline=deadline)
        return plain, explicit, one_more

    plain, explicit, one_more = run_virtual(main)
    assert plain == explicit == pytest.approx(0.1)
    assert one_more == pytest.approx(0.2)


def test_a_woken_bulk_caller_not_yet_started_is_counted_ahead_of_an_interactive_newcomer() -> None:
    """The start due now is the woken caller's, whatever the newcomer's class."""

    async def main(loop: VirtualClockLoop) -> tuple[QueueTimeoutError, float]:
        limiter = RateLimiter(10, burst=1)
        await limiter.acquire(KEY)  # the next start is 0.1 s away
        gate = loop.create_future()
        loop.call_at(loop.time() + 0.1, gate.set_result, None)
        woken = asyncio.ensure_future(limiter.acquire(KEY, priority="bulk"))
        await asyncio.sleep(0)

        async def newcomer() -> tuple[QueueTimeoutError, float]:
            await gate
            assert limiter._keys[KEY]._offered is not None
            wait = limiter.predicted_wait(KEY, deadline=loop.time() + 5)
            with pytest.raises(QueueTimeoutError) as caught:
                await limiter.acquire(KEY, deadline=loop.time() + 0.05)
            return caught.value, wait

        outcome = await asyncio.ensure_future(newcomer())
        await woken
        return outcome

    error, wait = run_virtual(main)
    assert error.predicted_wait == pytest.approx(0.1)
    assert wait == pytest.approx(0.1)


def test_a_woken_caller_of_the_newcomers_class_still_counts_after_a_pause() -> None:
    """A pause since the wake-up does not send a woken caller of the newcomer's class (or
    a higher one) behind it: it is still ahead."""

    async def main(loop: VirtualClockLoop) -> float:
        limiter = RateLimiter(10, burst=1)
        await limiter.acquire(KEY)
        gate = loop.create_future()
        loop.call_at(loop.time() + 0.1, gate.set_result, None)
        woken = asyncio.ensure_future(limiter.acquire(KEY))
        await asyncio.sleep(0)

        async def newcomer() -> float:
            await gate
            assert limiter._keys[KEY]._offered is not None
            await limiter.pause(KEY, 0.5)
            return limiter.predicted_wait(KEY, deadline=loop.time() + 5)

        wait = await asyncio.ensure_future(newcomer())
        await woken
        return wait

    # The pause holds every start for 0.5 s; the woken caller takes the first, the
    # newcomer the next, an interval later.
    assert run_virtual(main) == pytest.approx(0.6)


def test_the_timeout_of_a_waiter_names_the_key() -> None:
    error = _KeyLimiter(KEY, 10, 1, clock=lambda: 0.0).timed_out()
    assert str(error) == f"no rate permit for {KEY} in time"
    assert error.endpoint == KEY


def test_a_deadline_equal_to_the_cheap_bound_is_worked_out_with_the_logged_starts() -> None:
    """The cheap bound is at most the true start: a deadline exactly at it still needs the
    log of starts to tell whether the start is in time (here it is not)."""
    from .test_priority import _simulated_start

    limiter = _KeyLimiter(KEY, 3, 3, clock=lambda: 0.0)
    now = 0.0
    for gap in (0.15, 0.3):
        now += gap
        now += max(0.0, limiter.delay(now))
        limiter.grant(now)
    now += 0.45
    cheap = limiter.start_time(now, 10, deadline=-math.inf)
    true_start = _simulated_start(limiter, now, 10)
    assert cheap < true_start
    answer = limiter.start_time(now, 10, deadline=cheap)
    assert cheap < answer <= true_start + 1e-9


def test_a_start_offered_to_a_caller_cancelled_before_it_went_on_goes_to_the_next() -> None:
    async def main(loop: VirtualClockLoop) -> float:
        limiter = RateLimiter(10, burst=1)
        await limiter.acquire(KEY)  # the next start is 0.1 s away
        began = loop.time()
        # Set before the limiter's timer for the same instant: runs in that iteration
        # before the woken waiter's step.
        gate = loop.create_future()
        loop.call_at(loop.time() + 0.1, gate.set_result, None)
        first = asyncio.ensure_future(limiter.acquire(KEY))
        second = asyncio.ensure_future(limiter.acquire(KEY))
        await asyncio.sleep(0)
        await gate
        assert limiter._keys[KEY]._offered is not None
        first.cancel()
        await asyncio.wait_for(second, timeout=5)  # virtual: fails at once if never served
        assert first.cancelled()
        return loop.time() - began

    assert run_virtual(main) == pytest.approx(0.1)


@pytest.mark.parametrize("over", [0.0, 1e-9], ids=["exactly max_wait", "within the float slack"])
def test_a_permit_predicted_at_the_deadline_is_not_refused_at_once(over: float) -> None:
    """Late means after the deadline (give or take a nanosecond of float rounding)."""

    async def main(loop: VirtualClockLoop) -> tuple[int, list[Any]]:
        limiter, transport = PredictingLimiter(wait=0.0), HeldTransport()
        async with _chat(transport, limiter=limiter, max_in_flight=1) as chat:
            holder = asyncio.ensure_future(chat.delete_robot("@RBT#1"))
            await asyncio.sleep(0)
            now = loop.time()
            # The wait that puts the permit exactly at the deadline (plus ``over``).
            limiter.wait = (now + 1.0 + over) - now
            waiting = asyncio.ensure_future(chat.with_options(max_wait=1.0).delete_robot("@RBT#2"))
            await asyncio.sleep(0)
            transport.release.set()
            results = await asyncio.gather(holder, waiting, return_exceptions=True)
        return len(transport.sent), results

    sent, results = run_virtual(main)
    assert sent == 2
    assert not [r for r in results if isinstance(r, BaseException)]


def test_a_log_of_exactly_the_walk_limit_is_still_walked() -> None:
    """Up to 256 logged starts (rates up to 256/s) a start in doubt is worked out."""
    from .test_priority import _simulated_start

    limiter = _KeyLimiter(KEY, 256, 2, clock=lambda: 0.0)
    for n in range(256):
        limiter.grant(n / 256)
    cheap = limiter.start_time(1.0, 10, deadline=-math.inf)
    true_start = _simulated_start(limiter, 1.0, 10)
    between = (cheap + true_start) / 2
    assert limiter.start_time(1.0, 10, deadline=between) == pytest.approx(true_start)


class _NoSignature:
    """A callable whose signature cannot be read."""

    def __init__(self, keys: list[str]) -> None:
        self.keys = keys

    @property
    def __signature__(self) -> Any:
        raise ValueError("no signature")

    async def __call__(self, key: str) -> None:
        self.keys.append(key)


class UnreadableLimiter:
    def __init__(self) -> None:
        self.keys: list[str] = []
        self.acquire = _NoSignature(self.keys)


class PositionalKeyLimiter:
    """Takes the key positionally only, and the class and deadline by name."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, str]] = []

    async def acquire(self, key: str, /, *, priority: str, deadline: float | None) -> None:
        self.asked.append((key, priority))


def test_a_limiter_whose_acquire_shows_no_signature_is_used_in_one_class() -> None:
    async def main(loop: VirtualClockLoop) -> list[str]:
        limiter = UnreadableLimiter()
        async with _chat(ScriptedTransport(), limiter=limiter) as chat:
            await chat.with_options(priority="bulk").delete_robot("@RBT#1")
        return limiter.keys

    assert run_virtual(main) == [Endpoint.DELETE_ROBOT]


def test_a_limiter_taking_exactly_priority_and_deadline_by_name_is_told_the_class() -> None:
    async def main(loop: VirtualClockLoop) -> list[tuple[str, str]]:
        limiter = PositionalKeyLimiter()
        async with _chat(ScriptedTransport(), limiter=limiter) as chat:
            await chat.with_options(priority="bulk").delete_robot("@RBT#1")
        return limiter.asked

    assert run_virtual(main) == [(Endpoint.DELETE_ROBOT, "bulk")]


def test_a_permit_refused_at_once_says_when_it_would_have_come() -> None:
    async def main(loop: VirtualClockLoop) -> QueueTimeoutError:
        limiter = RateLimiter(10, burst=1)
        await limiter.acquire(KEY)  # the next start is 0.1 s away
        with pytest.raises(QueueTimeoutError) as caught:
            await limiter.acquire(KEY, deadline=loop.time() + 0.05)
        return caught.value

    error = run_virtual(main)
    assert str(error) == (
        f"the rate permit for {KEY} would come in 0.100s at the earliest, after the deadline"
    )
    assert error.endpoint == KEY


class _Text(str):
    """A str subclass: not a plain name, read as the options read it."""


def test_a_priority_given_as_a_str_subclass_is_read_by_its_text() -> None:
    async def main(loop: VirtualClockLoop) -> list[str]:
        limiter = RateLimiter(10, burst=1)
        order: list[str] = []
        await limiter.acquire(KEY)

        async def ask(name: str, priority: str) -> None:
            await limiter.acquire(KEY, priority=priority)  # type: ignore[arg-type]
            order.append(name)

        await asyncio.gather(ask("bulk", _Text("bulk")), ask("interactive", _Text("interactive")))
        return order

    assert run_virtual(main) == ["interactive", "bulk"]
