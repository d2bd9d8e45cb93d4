"""Closing a client with calls pending, and a client met by a second event loop.

From ``aclose()`` on, no request starts: waiting calls raise ``ClientClosedError`` at
once, requests on the wire get the grace period and are then cancelled.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import warnings
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tencent_chat_robots import (
    AiohttpTransport,
    APIConnectionError,
    ClientClosedError,
    Endpoint,
    RawResponse,
    TencentChat,
    TencentChatError,
)
from tencent_chat_robots.testing import FakeTencentChat

from ._servers import fake_in_thread
from ._virtual_time import VirtualClockLoop, run_virtual
from .conftest import SDKAPPID, SECRET_KEY, ScriptedTransport, fail, ok

MakeChat = Callable[..., TencentChat]


def test_close_ends_calls_waiting_for_a_permit_and_sends_nothing_more() -> None:
    """The issue's case: 20 calls at 10/s, closed after 0.35 s."""

    async def main(loop: VirtualClockLoop) -> tuple[list[Any], list[float], float, bool]:
        sends: list[float] = []

        def answer(_: Any) -> dict[str, Any]:
            sends.append(loop.time())
            return ok()

        transport = ScriptedTransport(answer=answer)
        chat = TencentChat(SDKAPPID, SECRET_KEY, base_url="http://h", rate_limit=10)
        chat._transport = chat._sender._transport = transport  # owned, so aclose closes it
        calls = asyncio.gather(
            *(chat.delete_robot("@RBT#1") for _ in range(20)), return_exceptions=True
        )
        await asyncio.sleep(0.35)
        began = loop.time()
        await chat.aclose()
        closed_at = loop.time()
        results = await calls
        assert closed_at == began  # nothing was on the wire: no grace to wait out
        await asyncio.sleep(5)  # anything still scheduled would send now
        return results, sends, closed_at, transport.closed

    results, sends, closed_at, transport_closed = run_virtual(main)
    assert all(t <= closed_at for t in sends)
    succeeded = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, BaseException)]
    assert len(succeeded) == len(sends) == 5  # at 0.0 twice (a burst of two), 0.1, 0.2, 0.3
    assert len(refused) == 15
    for error in refused:
        assert type(error) is ClientClosedError
        assert error.endpoint == Endpoint.DELETE_ROBOT
        assert error.request_sent is False
    assert transport_closed


class GatedTransport(ScriptedTransport):
    """Holds each request on the wire until ``release`` is set (or forever)."""

    def __init__(self, *answers: Any) -> None:
        super().__init__(*answers)
        self.release = asyncio.Event()
        self.on_wire = 0
        self.cancelled = 0
        self._arrived = asyncio.Condition()

    async def wait_on_wire(self, count: int) -> None:
        """Return once ``count`` requests are held on the wire."""
        async with self._arrived:
            await self._arrived.wait_for(lambda: self.on_wire >= count)

    async def post(self, url: str, content: bytes, *, timeout: float) -> RawResponse:
        self.on_wire += 1
        async with self._arrived:
            self._arrived.notify_all()
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.on_wire -= 1
        return await super().post(url, content, timeout=timeout)


def test_requests_on_the_wire_get_the_grace_then_are_cancelled(make_chat: MakeChat) -> None:
    async def main(loop: VirtualClockLoop) -> None:
        transport = GatedTransport()
        chat = make_chat(transport)
        calls = asyncio.gather(
            *(chat.delete_robot("@RBT#1") for _ in range(3)), return_exceptions=True
        )
        await transport.wait_on_wire(3)
        began = loop.time()
        await chat.aclose(timeout=2.0)
        assert loop.time() - began == pytest.approx(2.0)
        results = await calls
        assert transport.cancelled == 3
        for error in results:
            assert type(error) is ClientClosedError
            assert error.request_sent is True  # the server may have acted on it
            assert "may have reached the server" in str(error)

    run_virtual(main)


def test_a_request_answered_within_the_grace_succeeds_and_close_returns_then(
    make_chat: MakeChat,
) -> None:
    async def main(loop: VirtualClockLoop) -> None:
        transport = GatedTransport()
        chat = make_chat(transport)
        call = asyncio.ensure_future(chat.delete_robot("@RBT#1"))
        await transport.wait_on_wire(1)
        loop.call_later(0.5, transport.release.set)
        began = loop.time()
        await chat.aclose(timeout=5.0)
        assert loop.time() - began == pytest.approx(0.5)
        assert (await call).request_id is None
        assert len(transport.sent) == 1

    run_virtual(main)


def test_a_failure_answered_within_the_grace_is_not_retried(make_chat: MakeChat) -> None:
    async def main(loop: VirtualClockLoop) -> None:
        transport = GatedTransport(fail(10002), ok())
        chat = make_chat(transport)
        call = asyncio.ensure_future(chat.delete_robot("@RBT#1"))
        await transport.wait_on_wire(1)
        loop.call_later(0.5, transport.release.set)
        await chat.aclose(timeout=5.0)
        with pytest.raises(ClientClosedError, match="not retried") as caught:
            await call
        assert caught.value.__cause__ is not None
        assert getattr(caught.value.__cause__, "code", None) == 10002
        assert len(transport.sent) == 1

    run_virtual(main)


def test_a_call_in_its_backoff_ends_at_once() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        failed = asyncio.Event()
        transport = ScriptedTransport(fail(10002), ok())
        chat = TencentChat(
            SDKAPPID,
            SECRET_KEY,
            base_url="http://h",
            rate_limit=None,
            transport=transport,
            on_attempt=lambda _: failed.set(),
        )
        call = asyncio.ensure_future(chat.delete_robot("@RBT#1"))
        await failed.wait()
        await asyncio.sleep(0.01)  # into the 0.125-0.25 s backoff
        began = loop.time()
        await chat.aclose()
        with pytest.raises(ClientClosedError):
            await call
        assert loop.time() == began
        await asyncio.sleep(10)
        assert len(transport.sent) == 1

    run_virtual(main)


def test_calls_waiting_for_an_in_flight_slot_end_at_once() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        transport = GatedTransport()
        chat = TencentChat(
            SDKAPPID,
            SECRET_KEY,
            base_url="http://h",
            rate_limit=None,
            transport=transport,
            max_in_flight=1,
        )
        calls = [asyncio.ensure_future(chat.delete_robot("@RBT#1")) for _ in range(5)]
        await transport.wait_on_wire(1)
        closing = asyncio.ensure_future(chat.aclose(timeout=3.0))
        for waiting in calls[1:]:
            with pytest.raises(ClientClosedError):
                await waiting
        assert loop.time() == 1000.0  # before any of the grace had passed
        transport.release.set()
        await closing
        await calls[0]
        assert len(transport.sent) == 1

    run_virtual(main)


async def test_a_caller_cancelling_its_own_call_still_gets_cancelled_error() -> None:
    transport = GatedTransport()
    chat = TencentChat(SDKAPPID, SECRET_KEY, base_url="http://h", transport=transport)
    call = asyncio.ensure_future(chat.delete_robot("@RBT#1"))
    await transport.wait_on_wire(1)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    await chat.aclose()


async def test_a_cancelled_close_still_leaves_nothing_running() -> None:
    transport = GatedTransport()
    chat = TencentChat(SDKAPPID, SECRET_KEY, base_url="http://h", transport=transport)
    call = asyncio.ensure_future(chat.delete_robot("@RBT#1"))
    await transport.wait_on_wire(1)
    closing = asyncio.ensure_future(chat.aclose(timeout=60))
    await asyncio.sleep(0.01)
    closing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await closing
    with pytest.raises(ClientClosedError):
        await call
    assert transport.on_wire == 0


async def test_calls_after_close_raise_and_a_closed_transport_never_reopens() -> None:
    fake = FakeTencentChat()
    async with fake.serve() as base_url:
        chat = TencentChat(fake.sdkappid, fake.secret_key, admin=fake.admin, base_url=base_url)
        await chat.get_all_robots()
        await chat.aclose()
        with pytest.raises(ClientClosedError, match="closed"):
            await chat.get_all_robots()
        transport = chat._transport
        assert isinstance(transport, AiohttpTransport)
        with pytest.raises(ClientClosedError):
            await transport.post(f"{base_url}/v4/x", b"{}", timeout=1)
        assert transport._session is None
    assert len(fake.calls) == 1


def test_pending_calls_at_close_leak_no_session_over_real_sockets() -> None:
    """Real aiohttp over loopback, as a web service shutting down with calls queued."""
    fake = FakeTencentChat()

    async def main() -> list[Any]:
        answered = 0
        three_answered = asyncio.Event()

        def count(_: object) -> None:
            nonlocal answered
            answered += 1
            if answered == 3:
                three_answered.set()

        chat = TencentChat(
            fake.sdkappid,
            fake.secret_key,
            admin=fake.admin,
            base_url=base_url,
            rate_limit=10,
            on_attempt=count,
        )
        calls = asyncio.gather(*(chat.get_all_robots() for _ in range(20)), return_exceptions=True)
        await three_answered.wait()
        await chat.aclose()
        after_close = len(fake.calls)
        results = await calls
        await asyncio.sleep(0.3)  # three more permits' worth of time
        assert len(fake.calls) == after_close
        return results

    with fake_in_thread(fake) as base_url, warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        results = asyncio.run(main())
        gc.collect()
    closed = [r for r in results if isinstance(r, ClientClosedError)]
    assert len(closed) == 20 - len(fake.calls)
    assert len(closed) >= 15


async def test_a_closed_user_httpx_client_is_a_typed_error() -> None:
    client = httpx.AsyncClient(
        transport=httpx.MockTransport(lambda r: httpx.Response(200, json=ok()))
    )
    chat = TencentChat(SDKAPPID, SECRET_KEY, base_url="http://h", http_client=client)
    await client.aclose()
    with pytest.raises(ClientClosedError, match="http_client"):
        await chat.delete_robot("@RBT#1")


def test_a_second_event_loop_is_a_typed_error_and_opens_no_session() -> None:
    fake = FakeTencentChat()
    with fake_in_thread(fake) as base_url:
        chat = TencentChat(fake.sdkappid, fake.secret_key, admin=fake.admin, base_url=base_url)
        transport = chat._transport
        assert isinstance(transport, AiohttpTransport)

        async def first_run() -> list[str]:
            robots = await chat.get_all_robots()
            # Sockets left open when a loop ends leak whatever anyone does later; this
            # test is about what the SDK does on the second loop, so drop them here.
            assert transport._session is not None
            await transport._session.connector.close()  # type: ignore[union-attr]
            return robots

        assert asyncio.run(first_run()) == []
        first_session = transport._session
        with pytest.raises(TencentChatError, match="another event loop") as caught:
            asyncio.run(chat.get_all_robots())
        assert "now closed" in str(caught.value)
        assert transport._session is first_session  # nothing new opened on the second loop
        with warnings.catch_warnings():
            warnings.simplefilter("error", ResourceWarning)
            asyncio.run(chat.aclose())
            gc.collect()
        assert transport._session is None
    assert len(fake.calls) == 1


async def test_a_close_inside_a_callers_own_timeout_is_still_a_closed_error() -> None:
    """The close's cancellation is taken back, so the caller's timeout is not confused."""
    transport = GatedTransport()
    chat = TencentChat(SDKAPPID, SECRET_KEY, base_url="http://h", transport=transport)
    call = asyncio.ensure_future(asyncio.wait_for(chat.delete_robot("@RBT#1"), timeout=30))
    await transport.wait_on_wire(1)
    await chat.aclose(timeout=0)
    with pytest.raises(ClientClosedError):
        await call
    # And a caller's own timeout is still a timeout, with the client open.
    other = TencentChat(SDKAPPID, SECRET_KEY, base_url="http://h", transport=GatedTransport())
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(other.delete_robot("@RBT#1"), timeout=0.01)
    await other.aclose(timeout=0)


def test_two_closes_at_once_both_return_when_the_calls_are_done(make_chat: MakeChat) -> None:
    async def main(loop: VirtualClockLoop) -> None:
        transport = GatedTransport()
        chat = make_chat(transport)
        call = asyncio.ensure_future(chat.delete_robot("@RBT#1"))
        await transport.wait_on_wire(1)
        loop.call_later(1.0, transport.release.set)
        began = loop.time()
        await asyncio.gather(chat.aclose(timeout=5.0), chat.aclose(timeout=5.0))
        assert loop.time() - began == pytest.approx(1.0)  # neither waited out its grace
        await call

    run_virtual(main)


def test_a_close_during_the_backoff_after_an_unanswered_attempt_says_it_may_have_acted() -> None:
    async def main(loop: VirtualClockLoop) -> None:
        failed = asyncio.Event()
        transport = ScriptedTransport(APIConnectionError("dropped after sending"), ok())
        chat = TencentChat(
            SDKAPPID,
            SECRET_KEY,
            base_url="http://h",
            rate_limit=None,
            transport=transport,
            on_attempt=lambda _: failed.set(),
        )
        call = asyncio.ensure_future(chat.remove_robot_from_room("room-1", "@RBT#1"))
        await failed.wait()
        await chat.aclose()
        with pytest.raises(ClientClosedError) as caught:
            await call
        assert caught.value.request_sent is True
        assert caught.value.endpoint == "room_engine_http_srv/delete_robot"
        assert caught.value.random == int(transport.sent[0].params["random"])

    run_virtual(main)


async def test_a_call_cut_off_on_the_wire_carries_the_random_it_was_sent_with() -> None:
    urls: list[str] = []

    class Recording(GatedTransport):
        async def post(self, url: str, content: bytes, *, timeout: float) -> RawResponse:
            urls.append(url)
            return await super().post(url, content, timeout=timeout)

    transport = Recording()
    chat = TencentChat(SDKAPPID, SECRET_KEY, base_url="http://h", transport=transport)
    call = asyncio.ensure_future(chat.delete_robot("@RBT#1"))
    await transport.wait_on_wire(1)
    await chat.aclose(timeout=0)
    with pytest.raises(ClientClosedError) as caught:
        await call
    (url,) = urls
    assert caught.value.random == int(url.rpartition("&random=")[2].partition("&")[0])


async def test_a_close_cancelled_twice_still_ends_every_call_before_closing_the_transport() -> None:
    transport = GatedTransport()
    chat = TencentChat(SDKAPPID, SECRET_KEY, base_url="http://h", transport=transport)
    chat._owns_transport = True  # so that the close closes it, as it does its own
    call = asyncio.ensure_future(chat.delete_robot("@RBT#1"))
    await transport.wait_on_wire(1)
    closing = asyncio.ensure_future(chat.aclose(timeout=0))
    await asyncio.sleep(0)
    closing.cancel()
    await asyncio.sleep(0)
    closing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await closing
    assert call.done()
    assert transport.on_wire == 0
    assert transport.closed
    with pytest.raises(ClientClosedError):
        await call


def test_a_close_cut_short_by_its_caller_still_ends_every_call_before_returning() -> None:
    """A shutdown deadline around ``aclose()`` must not leave calls running behind it."""

    from anyio import move_on_after

    async def main(loop: VirtualClockLoop) -> tuple[bool, BaseException | None]:
        transport = GatedTransport()
        chat = TencentChat(SDKAPPID, SECRET_KEY, base_url="http://h", transport=transport)
        call = asyncio.ensure_future(chat.delete_robot("@RBT#1"))
        await transport.wait_on_wire(1)
        with move_on_after(1.0):  # shorter than the grace
            await chat.aclose(timeout=60)
        ended = call.done()
        return ended, call.exception() if ended else None

    ended, error = run_virtual(main)
    assert ended
    assert isinstance(error, ClientClosedError)
    assert error.request_sent is True


def test_a_second_event_loop_is_told_how_to_fix_it() -> None:
    chat = TencentChat(SDKAPPID, SECRET_KEY, base_url="http://h", transport=ScriptedTransport())
    first = asyncio.new_event_loop()
    try:
        first.run_until_complete(chat.delete_robot("@RBT#1"))
        with pytest.raises(TencentChatError) as open_first:
            asyncio.run(chat.delete_robot("@RBT#1"))
    finally:
        first.close()
    with pytest.raises(TencentChatError) as closed_first:
        asyncio.run(chat.delete_robot("@RBT#1"))
    advice = (
        "; a client serves one loop: create it inside the code that runs on it"
        " (one per asyncio.run())"
    )
    first_used = "this TencentChat was first used on another event loop"
    assert str(open_first.value) == first_used + advice
    assert str(closed_first.value) == first_used + " (now closed)" + advice


async def test_a_close_landing_as_the_permit_is_granted_sends_nothing() -> None:
    """The permit comes back in the very step the client is closed: no request goes out."""
    transport = ScriptedTransport()
    closing: list[asyncio.Future[None]] = []

    class ClosesOnGrant:
        async def acquire(self, key: str) -> None:
            closing.append(asyncio.ensure_future(chat.aclose()))
            await asyncio.sleep(0)  # the close runs now, while this caller holds its permit

    chat = TencentChat(
        SDKAPPID, SECRET_KEY, base_url="http://h", transport=transport, limiter=ClosesOnGrant()
    )
    with pytest.raises(ClientClosedError, match="was not sent") as caught:
        await chat.delete_robot("@RBT#1")
    await closing[0]
    assert caught.value.endpoint == Endpoint.DELETE_ROBOT
    assert caught.value.request_sent is False
    assert transport.sent == []


async def test_a_callers_own_cancel_at_the_moment_of_close_stays_a_cancel() -> None:
    """Python 3.11+ counts cancellations, so the caller's own is not mistaken for the close's.

    3.10 cannot tell the two apart: there the call reports the close.
    """
    transport = GatedTransport()
    chat = TencentChat(
        SDKAPPID, SECRET_KEY, base_url="http://h", transport=transport, max_in_flight=1
    )
    on_wire = asyncio.ensure_future(chat.delete_robot("@RBT#1"))
    waiting = asyncio.ensure_future(chat.delete_robot("@RBT#1"))  # for the in-flight slot
    await transport.wait_on_wire(1)
    closing = asyncio.ensure_future(chat.aclose(timeout=0))
    await asyncio.sleep(0)  # the close has cancelled the waiting call; it has not run yet
    waiting.cancel()  # and now its caller cancels it too
    expected = asyncio.CancelledError if sys.version_info >= (3, 11) else ClientClosedError
    with pytest.raises(expected):
        await waiting
    await closing
    with pytest.raises(ClientClosedError):
        await on_wire


async def test_a_limiter_that_swallows_the_close_still_lets_nothing_through(
    make_chat: MakeChat,
) -> None:
    """A user's limiter that catches the cancellation and returns: the request stays unsent."""

    class SwallowsCancellation:
        async def acquire(self, key: str) -> None:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                return  # a buggy limiter: grants the permit anyway

    transport = ScriptedTransport()
    chat = make_chat(transport, limiter=SwallowsCancellation())
    call = asyncio.ensure_future(chat.delete_robot("@RBT#1"))
    await asyncio.sleep(0)  # the call is now waiting in the limiter
    await chat.aclose()
    with pytest.raises(ClientClosedError, match="was not sent") as caught:
        await call
    assert caught.value.endpoint == Endpoint.DELETE_ROBOT
    assert transport.sent == []


async def test_a_close_cancelled_while_it_drains_still_drains_then_says_so(
    make_chat: MakeChat,
) -> None:
    closing: list[asyncio.Future[None]] = []

    class CancelsTheCloseWhenCut(GatedTransport):
        # The Transport protocol's signature, timeout included.
        async def post(self, url: str, content: bytes, *, timeout: float) -> RawResponse:  # noqa: ASYNC109
            try:
                return await super().post(url, content, timeout=timeout)
            except asyncio.CancelledError:
                closing[0].cancel()  # the close is draining: cancel it right then
                raise

    transport = CancelsTheCloseWhenCut()
    chat = make_chat(transport)
    call = asyncio.ensure_future(chat.delete_robot("@RBT#1"))
    await transport.wait_on_wire(1)
    closing.append(asyncio.ensure_future(chat.aclose(timeout=0)))
    with pytest.raises(asyncio.CancelledError):
        await closing[0]
    assert call.done()
    with pytest.raises(ClientClosedError):
        await call
