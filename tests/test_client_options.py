"""``with_options`` views and the per-call settings: priority, max_wait, timeout, retries.

A view is the same client with other settings: it shares connections, limiter and
lifecycle. Timing runs on the virtual clock through a scripted transport.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any
from unittest.mock import AsyncMock

import pytest

from tencent_chat_robots import (
    CallOptions,
    ClientClosedError,
    Endpoint,
    InternalServerError,
    QueueTimeoutError,
    RequestError,
    TencentChat,
    TencentChatError,
    ValidationError,
)

from ._virtual_time import VirtualClockLoop, run_virtual
from .conftest import SDKAPPID, SECRET_KEY, ScriptedTransport, SentRequest, fail, ok

ROOM = Endpoint.ROOM_ADD_ROBOT


def _chat(transport: Any, **options: Any) -> TencentChat:
    return TencentChat(SDKAPPID, SECRET_KEY, base_url="http://h", transport=transport, **options)


def test_a_view_changes_only_what_it_names_and_shares_the_rest() -> None:
    chat = _chat(ScriptedTransport(), max_wait=0.5, timeout=4.0, max_retries=2)
    bulk = chat.with_options(priority="bulk")
    assert bulk.options == CallOptions(priority="bulk", max_wait=0.5, timeout=4.0, max_retries=2)
    assert chat.options == CallOptions(max_wait=0.5, timeout=4.0, max_retries=2)  # untouched
    assert bulk._sender is chat._sender
    assert bulk.limiter is chat.limiter
    assert bulk.with_options(max_wait=None).options.max_wait is None  # None: no limit
    assert bulk.with_options(timeout=1.0).options.priority == "bulk"
    assert "priority='bulk'" in repr(bulk)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"priority": "urgent"}, "priority"),
        ({"priority": 0}, "priority"),
        ({"priority": []}, "priority"),
        ({"max_wait": -1}, "max_wait"),
        ({"max_wait": math.nan}, "max_wait"),
        ({"max_wait": math.inf}, "max_wait"),
        ({"max_wait": True}, "max_wait"),
        ({"max_wait": 86_401}, "^max_wait must be .* <= 86400"),
        ({"timeout": 0}, "timeout"),
        ({"max_retries": 1.5}, "max_retries"),
        ({"max_retries": -1}, "max_retries"),
    ],
)
def test_bad_settings_are_refused_by_the_constructor_and_by_views(
    options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        _chat(ScriptedTransport(), **options)
    with pytest.raises(ValidationError, match=message):
        _chat(ScriptedTransport()).with_options(**options)


def test_each_view_sends_with_its_own_timeout_and_retries() -> None:
    async def main(loop: VirtualClockLoop) -> tuple[list[SentRequest], list[SentRequest]]:
        patient = ScriptedTransport(fail(70500), fail(70500), ok(), fail(70500))
        async with _chat(patient, rate_limit=None, max_retries=0) as chat:
            await chat.with_options(max_retries=2, timeout=2.5).add_robot_to_room("r", "@RBT#1")
            with pytest.raises(InternalServerError):
                await chat.with_options(max_retries=0).add_robot_to_room("r", "@RBT#1")
        quick = ScriptedTransport(fail(70500))
        async with _chat(quick, rate_limit=None, max_retries=0) as chat:
            with pytest.raises(InternalServerError):
                await chat.add_robot_to_room("r", "@RBT#1")
        return patient.sent, quick.sent

    patient, quick = run_virtual(main)
    assert [r.timeout for r in patient[:3]] == [2.5, 2.5, 2.5]
    assert len(patient) == 3 + 1  # two retries, then one attempt of the retry-less view
    assert len(quick) == 1


def _urgent_behind_bulk(backlog: int, after: float, **options: Any) -> tuple[float, list[str]]:
    """How long an interactive call made ``after`` s behind ``backlog`` bulk calls waited,
    and the order the server saw the calls in."""

    async def main(loop: VirtualClockLoop) -> tuple[float, list[str]]:
        order: list[str] = []

        def answer(request: SentRequest) -> dict[str, Any]:
            order.append(request.body["RoomId"])
            return ok()

        async with _chat(ScriptedTransport(answer=answer), **options) as chat:
            bulk = chat.with_options(priority="bulk")
            calls = asyncio.gather(
                *(bulk.add_robot_to_room(f"b{i}", "@RBT#1") for i in range(backlog))
            )
            await asyncio.sleep(after)
            asked = loop.time()
            await chat.add_robot_to_room("urgent", "@RBT#1")
            waited = loop.time() - asked
            await calls
        return waited, order

    return run_virtual(main)


def test_an_interactive_view_overtakes_a_bulk_backlog_of_the_same_client() -> None:
    waited, order = _urgent_behind_bulk(50, 1.05, rate_limit=10)
    assert waited <= 0.1 + 1e-6  # the next start, not the 40 bulk calls still queued
    assert order.index("urgent") == 12  # b0..b11 went before it (two at once, then 10/s)


def test_interactive_calls_get_the_next_slot_when_bulk_calls_hold_them_all() -> None:
    """Bulk calls waiting for permits hold every in-flight slot; an interactive call
    does not queue behind the bulk calls waiting for one."""
    waited, order = _urgent_behind_bulk(20, 0.25, rate_limit=10, max_in_flight=2)
    # Bulk calls hold one slot (b4's, waiting for the start at 0.3); the other is kept
    # for interactive calls: the next start is the urgent call's, not b4's.
    assert waited == pytest.approx(0.05)
    assert order.index("urgent") == 4


def test_max_wait_raises_at_once_without_sending_and_is_not_retried() -> None:
    async def main(loop: VirtualClockLoop) -> tuple[QueueTimeoutError, float, int]:
        transport = ScriptedTransport()
        async with _chat(transport, rate_limit=10, max_retries=3) as chat:
            backlog = asyncio.gather(
                *(chat.add_robot_to_room(f"b{i}", "@RBT#1") for i in range(30))
            )
            await asyncio.sleep(0)
            sent_before = len(transport.sent)
            asked = loop.time()
            with pytest.raises(QueueTimeoutError) as caught:
                await chat.with_options(max_wait=0.5).add_robot_to_room("late", "@RBT#1")
            waited = loop.time() - asked
            sent = len(transport.sent) - sent_before
            await backlog
        return caught.value, waited, sent

    error, waited, sent = run_virtual(main)
    assert waited == 0
    assert sent == 0
    assert isinstance(error, RequestError)
    assert isinstance(error, TencentChatError)
    assert error.endpoint == ROOM
    assert error.max_wait == 0.5
    assert error.predicted_wait is not None
    assert error.predicted_wait > 2.5  # 28 calls owed ahead at 10/s
    assert error.request_sent is False
    assert error.random is None
    assert ROOM in str(error)
    assert "max_wait=0.5s" in str(error)
    assert not error.retryable


def test_a_retry_that_cannot_start_in_time_says_an_earlier_attempt_may_have_been_sent() -> None:
    async def main(loop: VirtualClockLoop) -> QueueTimeoutError:
        transport = ScriptedTransport(fail(70500), ok())
        async with _chat(transport, rate_limit=10, max_retries=3) as chat:
            view = chat.with_options(max_wait=0.2)

            async def flood_after_failure() -> None:
                await asyncio.sleep(0.01)  # the failure is in; its retry backs off
                await asyncio.gather(*(chat.add_robot_to_room("x", "@RBT#9") for _ in range(20)))

            flood = asyncio.ensure_future(flood_after_failure())
            with pytest.raises(QueueTimeoutError) as caught:
                await view.add_robot_to_room("r", "@RBT#1")
            await flood
        return caught.value

    error = run_virtual(main)
    assert error.request_sent is False  # an internal error is an answer: nothing unknown
    assert error.random is not None  # the first attempt's


class OneClassLimiter:
    """A user's limiter of the original protocol: acquire(key) only, slow."""

    def __init__(self) -> None:
        self.cancelled = 0

    async def acquire(self, key: str) -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise


def test_a_one_class_limiter_still_works_and_its_wait_is_cut_at_max_wait() -> None:
    async def main(loop: VirtualClockLoop) -> tuple[float, QueueTimeoutError, int, int]:
        limiter = OneClassLimiter()
        transport = ScriptedTransport()
        async with _chat(transport, limiter=limiter) as chat:
            asked = loop.time()
            with pytest.raises(QueueTimeoutError) as caught:
                await chat.with_options(max_wait=0.5, priority="bulk").delete_robot("@RBT#1")
            waited = loop.time() - asked
            await chat.delete_robot("@RBT#1")  # no max_wait: waits the limiter out
        return waited, caught.value, limiter.cancelled, len(transport.sent)

    waited, error, cancelled, sent = run_virtual(main)
    assert waited == pytest.approx(0.5)
    assert error.predicted_wait is None
    assert cancelled == 1
    assert sent == 1


class RecordingLimiter:
    """A limiter of the priority protocol that records what it is asked."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, str, float | None, float]] = []
        self.bound_to: list[int] = []

    async def acquire(
        self, key: str, *, priority: str = "interactive", deadline: float | None = None
    ) -> None:
        self.asked.append((key, priority, deadline, asyncio.get_running_loop().time()))

    def for_app(self, sdkappid: int) -> RecordingLimiter:
        self.bound_to.append(sdkappid)
        return self


def test_a_priority_limiter_is_told_the_class_and_deadline_and_bound_to_the_app() -> None:
    async def main(loop: VirtualClockLoop) -> RecordingLimiter:
        limiter = RecordingLimiter()
        async with _chat(ScriptedTransport(), limiter=limiter) as chat:
            await chat.with_options(priority="bulk", max_wait=0.25).delete_robot("@RBT#1")
            await chat.get_all_robots()
        return limiter

    limiter = run_virtual(main)
    assert limiter.bound_to == [SDKAPPID]
    (key, priority, deadline, at), (key2, priority2, deadline2, _) = limiter.asked
    assert (key, priority) == (Endpoint.DELETE_ROBOT, "bulk")
    assert deadline == pytest.approx(at + 0.25)
    assert (key2, priority2, deadline2) == (Endpoint.GET_ALL_ROBOTS, "interactive", None)


def test_closing_the_parent_ends_every_views_calls() -> None:
    async def main(loop: VirtualClockLoop) -> tuple[list[Any], bool, BaseException]:
        transport = ScriptedTransport()
        chat = _chat(transport, rate_limit=5)
        chat._owns_transport = True
        bulk = chat.with_options(priority="bulk")
        urgent = chat.with_options(max_wait=30)
        calls = asyncio.gather(
            *(bulk.delete_robot("@RBT#1") for _ in range(5)),
            *(urgent.delete_robot("@RBT#1") for _ in range(5)),
            return_exceptions=True,
        )
        await asyncio.sleep(0.1)
        await chat.aclose()
        results = await calls
        with pytest.raises(ClientClosedError) as caught:
            await bulk.delete_robot("@RBT#1")
        return results, transport.closed, caught.value

    results, closed, after = run_virtual(main)
    assert sum(isinstance(r, ClientClosedError) for r in results) == 8  # two started at once
    assert closed
    assert isinstance(after, ClientClosedError)


def test_max_wait_behind_a_full_slot_queue_is_refused_at_once() -> None:
    """Callers queued for in-flight slots ahead each owe a start before this one."""

    async def main(loop: VirtualClockLoop) -> tuple[QueueTimeoutError, float, int, float]:
        transport = ScriptedTransport()
        async with _chat(transport, rate_limit=10, max_in_flight=2) as chat:
            backlog = asyncio.gather(
                *(chat.add_robot_to_room(f"b{i}", "@RBT#1") for i in range(30))
            )
            await asyncio.sleep(0)
            sent_before = len(transport.sent)
            asked = loop.time()
            with pytest.raises(QueueTimeoutError) as caught:
                await chat.with_options(max_wait=2.0).add_robot_to_room("late", "@RBT#1")
            waited = loop.time() - asked
            sent = len(transport.sent) - sent_before
            # With room for the queue ahead, the same call waits its turn instead.
            asked = loop.time()
            await chat.with_options(max_wait=3.5).add_robot_to_room("patient", "@RBT#1")
            patient_waited = loop.time() - asked
            await backlog
        return caught.value, waited, sent, patient_waited

    error, waited, sent, patient_waited = run_virtual(main)
    assert waited == 0
    assert sent == 0
    assert error.predicted_wait is not None
    # b0 and b1 started at once; b2 and b3 hold the slots, waiting for their permits;
    # 26 wait for a slot. Its start is the 31st: at 3.006 s (the burst paid back by the
    # window rule). The prediction is a lower bound, computed no further than needed.
    assert error.predicted_wait is not None
    assert 2.0 < error.predicted_wait <= patient_waited
    assert "in-flight slot" in str(error)
    assert patient_waited == pytest.approx(3.006)


class ForwardingLimiter:
    """A wrapper of the original protocol that passes on whatever it is given."""

    def __init__(self) -> None:
        self.inner = OneClassLimiter()
        self.calls = 0

    async def acquire(self, key: str, *args: Any, **kwargs: Any) -> None:
        self.calls += 1
        if args or kwargs:
            raise TypeError("acquire() takes only the key")


def test_limiters_that_only_pass_keywords_on_are_used_in_one_class() -> None:
    async def main(loop: VirtualClockLoop) -> tuple[int, int]:
        wrapper, mock = ForwardingLimiter(), AsyncMock()
        for limiter in (wrapper, mock):
            async with _chat(ScriptedTransport(), limiter=limiter) as chat:
                assert chat.limiter is limiter  # no for_app on a mock's class
                await chat.with_options(priority="bulk").delete_robot("@RBT#1")
        return wrapper.calls, mock.acquire.await_count

    assert run_virtual(main) == (1, 1)


class FullLimiter:
    """A limiter of the priority protocol with a bounded queue of its own."""

    async def acquire(
        self, key: str, *, priority: str = "interactive", deadline: float | None = None
    ) -> None:
        raise QueueTimeoutError("queue full", endpoint=key)


def test_a_limiter_may_refuse_a_call_without_max_wait() -> None:
    async def main(loop: VirtualClockLoop) -> QueueTimeoutError:
        async with _chat(ScriptedTransport(), limiter=FullLimiter()) as chat:
            with pytest.raises(QueueTimeoutError) as caught:
                await chat.delete_robot("@RBT#1")
        return caught.value

    error = run_virtual(main)
    assert str(error) == f"{Endpoint.DELETE_ROBOT} was not sent: queue full"
    assert error.max_wait is None


class _OddText(str):
    """A str subclass with an equality and hash of its own."""

    def __eq__(self, other: object) -> bool:
        return True

    __hash__ = None  # type: ignore[assignment]


def test_priority_is_read_from_its_text_and_stored_plain() -> None:
    chat = _chat(ScriptedTransport())
    view = chat.with_options(priority=_OddText("bulk"))
    assert type(view.options.priority) is str
    assert view.options.priority == "bulk"
    assert view.options.rank == 1
    with pytest.raises(ValidationError, match="priority"):
        chat.with_options(priority=_OddText("urgent"))


def test_max_retries_is_bounded_at_one_hundred() -> None:
    """More than 100 retries is a mistake that would hold a call for hours: refused."""
    assert _chat(ScriptedTransport(), max_retries=100).options == CallOptions(max_retries=100)
    for make in (
        lambda: _chat(ScriptedTransport(), max_retries=101),
        lambda: _chat(ScriptedTransport()).with_options(max_retries=101),
        lambda: CallOptions(max_retries=101),
    ):
        with pytest.raises(ValidationError, match=r"^max_retries must be .* <= 100, got 101$"):
            make()


class _Seconds(float):
    pass


class _Count(int):
    pass


def test_a_view_stores_plain_numbers_whatever_subclass_it_was_given() -> None:
    view = _chat(ScriptedTransport()).with_options(
        max_wait=_Seconds(0.5), timeout=_Seconds(2.0), max_retries=_Count(2)
    )
    assert type(view.options.max_wait) is float
    assert type(view.options.timeout) is float
    assert type(view.options.max_retries) is int
    assert view.options == CallOptions(max_wait=0.5, timeout=2.0, max_retries=2)


@pytest.mark.parametrize(
    "options", [{"priority": "urgent"}, {"timeout": 0}, {"max_retries": 101}, {"max_wait": -1}]
)
def test_a_refused_setting_leaves_frames_whose_locals_can_be_shown(
    options: dict[str, Any],
) -> None:
    """Error trackers repr every local of every frame, the half-made CallOptions too."""
    import traceback

    with pytest.raises(ValidationError) as caught:
        _chat(ScriptedTransport(), **options)
    shown = traceback.TracebackException.from_exception(caught.value, capture_locals=True)
    assert "CallOptions(" in "".join(shown.format())
