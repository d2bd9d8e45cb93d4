"""The errors that end a call when its client closes or its bulk run stops, word for
word (``_lifecycle.ending_error`` is the one place that says so), and the Sentry
scrubber's registration and edges: what the mutation run (``nox -s mutation``) found
untested."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tencent_chat_robots import (
    BulkStoppedError,
    ClientClosedError,
    Endpoint,
    TencentChat,
)

from .conftest import SDKAPPID, SECRET_KEY, ScriptedTransport, fail
from .test_bulk import Wire, chat_on, rooms, settle
from .test_closing import GatedTransport

ROOM = Endpoint.ROOM_ADD_ROBOT
DELETE = Endpoint.DELETE_ROBOT


def _chat(transport: Any, **options: Any) -> TencentChat:
    return TencentChat(SDKAPPID, SECRET_KEY, base_url="http://h", transport=transport, **options)


async def test_a_call_on_a_closed_client_says_to_make_a_new_one() -> None:
    chat = _chat(ScriptedTransport())
    await chat.aclose()
    with pytest.raises(ClientClosedError) as caught:
        await chat.delete_robot("@RBT#1")
    assert str(caught.value) == (
        f"the client was closed; {DELETE} was not sent (make a new TencentChat)"
    )
    assert caught.value.endpoint == DELETE
    assert caught.value.request_sent is False


async def test_a_call_waiting_for_its_permit_at_close_was_pending_and_not_sent() -> None:
    class NeverGrants:
        async def acquire(self, key: str) -> None:
            await asyncio.Event().wait()

    chat = _chat(ScriptedTransport(), limiter=NeverGrants())
    call = asyncio.ensure_future(chat.delete_robot("@RBT#1"))
    await asyncio.sleep(0)
    await chat.aclose()
    with pytest.raises(ClientClosedError) as caught:
        await call
    assert str(caught.value) == (
        f"the client was closed while {DELETE} was pending; the request was not sent"
    )
    assert caught.value.endpoint == DELETE


async def test_a_call_on_the_wire_at_close_may_have_reached_the_server() -> None:
    transport = GatedTransport()
    chat = _chat(transport)
    call = asyncio.ensure_future(chat.delete_robot("@RBT#1"))
    await transport.wait_on_wire(1)
    await chat.aclose(timeout=0)
    with pytest.raises(ClientClosedError) as caught:
        await call
    assert str(caught.value) == (
        f"the client was closed while {DELETE} was pending; the request may have reached the server"
    )
    assert caught.value.request_sent is True


async def test_calls_a_stop_ends_say_the_run_was_stopped_and_name_their_endpoint() -> None:
    wire = Wire(hold=True)
    async with chat_on(wire, max_in_flight=3) as chat:  # bulk may hold 2 of 3
        run = chat.bulk(rooms(), concurrency=6)
        outcomes: list[Any] = []

        async def consume() -> None:
            async for outcome in run:
                outcomes.append(outcome)

        consumer = asyncio.create_task(consume())
        await wire.until_on_wire(2)
        await settle()
        run.stop()
        await settle()
        wire.release_all()
        await consumer
    stopped = [o.error for o in outcomes if not o.ok]
    assert stopped
    for error in stopped:
        assert isinstance(error, BulkStoppedError)
        assert error.endpoint == ROOM
        assert str(error) == (
            f"the bulk run was stopped while {ROOM} was pending; the request was not sent"
        )


async def test_a_stopped_runs_failed_call_says_it_is_not_retried() -> None:
    wire = Wire(hold=True, answer=lambda room: fail(10002, "busy"))
    async with chat_on(wire) as chat:
        run = chat.bulk(rooms(1), concurrency=1)
        iterator = aiter(run)
        pending = asyncio.ensure_future(anext(iterator))
        await wire.until_on_wire(1)
        run.stop()
        wire.release_all()
        outcome = await pending
    error = outcome.error
    assert isinstance(error, BulkStoppedError)
    assert str(error).startswith(f"the bulk run was stopped; {ROOM} is not retried after: ")
    assert error.endpoint == ROOM


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"concurrency": 0}, r"^concurrency must be"),
        ({"concurrency": 10_001}, r"^concurrency must be"),
        ({"concurrency": 2.5}, r"^concurrency must be"),
        ({"total": -1}, r"^total must be"),
        ({"total": 1.5}, r"^total must be"),
    ],
)
async def test_bulk_refuses_a_concurrency_or_total_out_of_range(
    options: dict[str, Any], match: str
) -> None:
    from tencent_chat_robots import ValidationError

    async with chat_on(Wire()) as chat:
        with pytest.raises(ValidationError, match=match):
            chat.bulk(rooms(1), **options)


async def test_bulk_takes_the_bounds_of_concurrency_and_total() -> None:
    async with chat_on(Wire()) as chat:
        assert chat.bulk(rooms(1), concurrency=10_000).total is None
        assert chat.bulk(rooms(1), concurrency=1, total=0).total == 0
        assert chat.bulk(rooms(), total=7).total == 7
        assert chat.bulk(list(rooms(3))).total == 3


async def test_bulk_refuses_what_is_no_iterable_naming_its_type() -> None:
    from tencent_chat_robots import ValidationError

    async with chat_on(Wire()) as chat:
        with pytest.raises(ValidationError) as caught:
            chat.bulk(42)  # type: ignore[arg-type]
    assert str(caught.value) == "calls must be an iterable or async iterable of Call, got int"


async def test_a_bulk_runs_repr_shows_its_progress_and_whether_it_stopped() -> None:
    async with chat_on(Wire()) as chat:
        run = chat.bulk(rooms(1))
        assert repr(run) == ("<BulkRun taken=0 done=0 succeeded=0 failed=0 in_flight=0 workers=0>")
        run.stop()
        assert repr(run) == (
            "<BulkRun taken=0 done=0 succeeded=0 failed=0 in_flight=0 workers=0 stopped>"
        )


def test_a_bulk_run_counts_its_calls_in_a_retrys_backoff_while_they_wait() -> None:
    from ._virtual_time import VirtualClockLoop, run_virtual
    from .conftest import ok

    async def main(loop: VirtualClockLoop) -> list[int]:
        answers = iter([fail(10002), ok()])
        failed = asyncio.Event()

        def answer(room: str) -> Any:
            result = next(answers)
            if result["ErrorCode"]:
                loop.call_soon(failed.set)
            return result

        seen: list[int] = []
        async with chat_on(Wire(answer=answer)) as chat:
            run = chat.bulk(rooms(1), concurrency=1)
            iterator = aiter(run)
            pending = asyncio.ensure_future(anext(iterator))
            await failed.wait()
            await asyncio.sleep(0.05)  # virtual: inside the 0.125-0.25 s backoff
            seen.append(run._group.backing_off)
            outcome = await pending
            assert outcome.ok
            seen.append(run._group.backing_off)
        return seen

    assert run_virtual(main) == [1, 0]


async def test_an_item_read_after_a_stop_is_not_sent_and_says_so() -> None:
    """The stream itself stops the run while the worker reads the next item: that item
    is never started."""
    from tencent_chat_robots import Call

    wire = Wire()
    async with chat_on(wire) as chat:
        runs: list[Any] = []

        async def stream() -> Any:
            yield Call.add_robot_to_room("r0", "@RBT#001")
            runs[0].stop()
            yield Call.add_robot_to_room("r1", "@RBT#001")

        run = chat.bulk(stream(), concurrency=1)
        runs.append(run)
        outcomes = [outcome async for outcome in run]
    assert [o.index for o in outcomes] == [0, 1]
    assert outcomes[0].ok
    assert outcomes[1].call == Call.add_robot_to_room("r1", "@RBT#001")
    error = outcomes[1].error
    assert isinstance(error, BulkStoppedError)
    assert str(error) == f"the bulk run was stopped; {ROOM} was not sent"
    assert error.endpoint == ROOM
    assert wire.sent == ["r0"]


async def test_a_close_hook_unregistered_is_not_called_and_unregistering_twice_is_harmless() -> (
    None
):
    from tencent_chat_robots._lifecycle import Lifecycle

    lifecycle = Lifecycle()
    called: list[str] = []
    unregister = lifecycle.on_close(lambda: called.append("gone"))
    lifecycle.on_close(lambda: called.append("kept"))
    unregister()
    unregister()
    await lifecycle.aclose(0)
    assert called == ["kept"]


class CancelsItsCaller:
    """A user's transport that cancels the task calling it (a bug of its own)."""

    def __init__(self) -> None:
        self.sent = 0

    async def post(self, url: str, content: bytes, *, timeout: float) -> Any:
        self.sent += 1
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        await asyncio.sleep(0)
        raise AssertionError("not reached: the task was cancelled")

    async def aclose(self) -> None:
        pass


async def test_an_item_whose_worker_is_cancelled_from_inside_its_call_still_gets_an_outcome() -> (
    None
):
    from tencent_chat_robots import TencentChatError

    transport = CancelsItsCaller()
    async with _chat(transport, rate_limit=None) as chat:
        run = chat.bulk(rooms(1), concurrency=1)
        outcomes = [outcome async for outcome in run]
    [outcome] = outcomes
    assert outcome.index == 0
    assert outcome.call == next(rooms(1))
    assert isinstance(outcome.error, TencentChatError)
    assert str(outcome.error) == (
        "the call of item 0 ended without an outcome (its worker was cancelled)"
    )
    assert run.done == run.failed == 1


async def test_an_item_that_is_no_call_fails_with_its_index_and_type() -> None:
    from tencent_chat_robots import ValidationError

    async with chat_on(Wire()) as chat:
        outcomes = [outcome async for outcome in chat.bulk([42])]
    [outcome] = outcomes
    assert (outcome.index, outcome.call) == (0, 42)
    assert isinstance(outcome.error, ValidationError)
    assert str(outcome.error) == "expected a Call, got int"


class SlowWire:
    """Answers every request after 0.1 s (virtual)."""

    async def post(self, url: str, content: bytes, *, timeout: float) -> Any:
        from tencent_chat_robots import RawResponse

        await asyncio.sleep(0.1)
        return RawResponse(200, b'{"ActionStatus": "OK", "ErrorCode": 0, "ErrorInfo": ""}')

    async def aclose(self) -> None:
        pass


def test_the_pool_is_the_rate_times_the_time_on_the_wire_with_headroom_and_spares() -> None:
    """20 calls a second, 0.1 s on the wire each: 20 * 0.1 * 3 (headroom) + 4 (spares)
    = 10 workers; 4 before any answer came."""
    from ._virtual_time import VirtualClockLoop, run_virtual

    async def main(loop: VirtualClockLoop) -> tuple[int, int]:
        async with _chat(SlowWire(), rate_limit=20) as chat:
            run = chat.bulk(rooms(200))
            seen: list[int] = []
            async for outcome in run:
                assert outcome.ok
                seen.append(run.workers)
                if loop.time() > 1001.5:
                    break
        return seen[0], seen[-1]

    first, later = run_virtual(main)
    assert (first, later) == (4, 10)


class Boom(BaseException):
    """Neither an Exception nor a cancellation: it ends the worker that meets it."""


class RaisesBoom:
    async def post(self, url: str, content: bytes, *, timeout: float) -> Any:
        raise Boom

    async def aclose(self) -> None:
        pass


async def test_an_item_whose_worker_an_error_stops_gets_an_outcome_and_the_error_is_raised() -> (
    None
):
    from tencent_chat_robots import TencentChatError

    outcomes: list[Any] = []

    async def consume(run: Any) -> None:
        async for outcome in run:
            outcomes.append(outcome)

    async with _chat(RaisesBoom(), rate_limit=None) as chat:
        with pytest.raises(Boom):
            await consume(chat.bulk(rooms(1), concurrency=1))
    [outcome] = outcomes
    assert isinstance(outcome.error, TencentChatError)
    assert str(outcome.error) == (
        "the call of item 0 ended without an outcome (its worker was stopped by an error)"
    )


async def test_an_async_stream_that_raises_ends_the_run_with_its_error_after_its_outcomes() -> None:
    from tencent_chat_robots import Call

    async def stream() -> Any:
        yield Call.add_robot_to_room("r0", "@RBT#001")
        raise LookupError("the plan is broken")

    outcomes: list[Any] = []

    async def consume(run: Any) -> None:
        async for outcome in run:
            outcomes.append(outcome)

    async with chat_on(Wire()) as chat:
        with pytest.raises(LookupError, match="the plan is broken"):
            await consume(chat.bulk(stream(), concurrency=1))
    assert [o.ok for o in outcomes] == [True]


async def test_a_second_iteration_is_refused_saying_what_to_do() -> None:
    from tencent_chat_robots import TencentChatError

    async with chat_on(Wire()) as chat:
        run = chat.bulk(rooms(1))
        assert len([o async for o in run]) == 1
        with pytest.raises(TencentChatError) as caught:
            aiter(run)
    assert str(caught.value) == "a bulk run is iterated once; call chat.bulk() again"


async def test_in_flight_counts_every_call_on_the_wire() -> None:
    wire = Wire(hold=True)
    async with chat_on(wire, max_in_flight=3) as chat:
        run = chat.bulk(rooms(2), concurrency=2)
        iterator = aiter(run)
        first = asyncio.ensure_future(anext(iterator))
        await wire.until_on_wire(2)
        assert run.in_flight == 2
        wire.release_all()
        await first
        rest = [outcome async for outcome in iterator]
    assert len(rest) == 1
    assert run.in_flight == 0


async def test_a_bug_under_a_bulk_call_fails_its_item_and_ends_the_run() -> None:
    from tencent_chat_robots import TencentChatError

    outcomes: list[Any] = []

    async def consume(run: Any) -> None:
        async for outcome in run:
            outcomes.append(outcome)

    transport = RaisesError(ZeroDivisionError("a bug"))
    async with _chat(transport, rate_limit=None) as chat:
        with pytest.raises(ZeroDivisionError):
            await consume(chat.bulk(rooms(1), concurrency=1))
    [outcome] = outcomes
    assert outcome.call == next(rooms(1))
    assert isinstance(outcome.error, TencentChatError)
    assert str(outcome.error) == "ZeroDivisionError under the call: a bug"


class RaisesError:
    def __init__(self, error: Exception) -> None:
        self.error = error

    async def post(self, url: str, content: bytes, *, timeout: float) -> Any:
        raise self.error

    async def aclose(self) -> None:
        pass
