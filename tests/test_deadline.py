"""``deadline``: the most a whole call may take, waits, attempts and backoff included.

On the virtual clock, through transports that answer as told or never; one short real
check over a socket that never answers, with a wide margin.
"""

from __future__ import annotations

import asyncio
import math
import socket
import time
from typing import Any

import pytest

from tencent_chat_robots import (
    APITimeoutError,
    Call,
    DeadlineExceededError,
    InternalServerError,
    QueueTimeoutError,
    RawResponse,
    RequestError,
    TencentChat,
    ValidationError,
)
from tencent_chat_robots import _retry as retry_module

from ._virtual_time import VirtualClockLoop, run_virtual
from .conftest import SDKAPPID, SECRET_KEY, OTel, ScriptedTransport, fail, ok


def _chat(transport: Any, **options: Any) -> TencentChat:
    options.setdefault("rate_limit", None)
    return TencentChat(SDKAPPID, SECRET_KEY, base_url="http://h", transport=transport, **options)


class Silent:
    """A server that never answers: each attempt waits out its timeout, as aiohttp's would."""

    def __init__(self, loop: VirtualClockLoop) -> None:
        self.loop = loop
        self.sent: list[tuple[float, float]] = []  # (when, the attempt's timeout)

    async def post(self, url: str, content: bytes, *, timeout: float) -> RawResponse:
        self.sent.append((self.loop.time(), timeout))
        await asyncio.sleep(timeout)
        raise APITimeoutError(f"no answer within {timeout}s", request_sent=True)

    async def aclose(self) -> None:
        pass


class Timed(ScriptedTransport):
    """A scripted transport noting when each request left (virtual time)."""

    def __init__(self, loop: VirtualClockLoop, *answers: Any) -> None:
        super().__init__(*answers)
        self.loop = loop
        self.times: list[float] = []

    async def post(self, url: str, content: bytes, *, timeout: float) -> RawResponse:
        self.times.append(self.loop.time())
        return await super().post(url, content, timeout=timeout)


def test_a_server_that_never_answers_fails_the_call_at_its_deadline() -> None:
    """The issue's first target: deadline=1.0, max_retries=3, timeout=10."""

    async def main(loop: VirtualClockLoop) -> tuple[float, Silent, DeadlineExceededError]:
        silent = Silent(loop)
        async with _chat(silent, max_retries=3, timeout=10, deadline=1.0) as chat:
            started = loop.time()
            with pytest.raises(DeadlineExceededError) as raised:
                await chat.add_robot_to_room("room-1", "@RBT#1")
            return loop.time() - started, silent, raised.value

    took, silent, error = run_virtual(main)
    assert took == pytest.approx(1.0)
    assert silent.sent == [(pytest.approx(1000.0, abs=1e-6), pytest.approx(1.0))]  # cut to 1.0
    assert error.request_sent is True  # the attempt went unanswered
    assert error.deadline == 1.0
    assert error.endpoint == "room_engine_http_srv/add_robot"
    assert error.random is not None  # the attempt's, for support
    # The transport's cut timeout and the client's own fence end at the same instant:
    # either may be the one that ends the attempt.
    assert str(error) in (
        "room_engine_http_srv/add_robot did not finish within its deadline of 1s:"
        " the attempt got no answer in the 1.000s left",
        "room_engine_http_srv/add_robot did not finish within its deadline of 1s:"
        " no answer came before it",
    )


class Overrunning:
    """A user's transport that ignores its timeout (or a server trickling bytes past it)."""

    def __init__(self, loop: VirtualClockLoop, takes: float) -> None:
        self.loop, self.takes = loop, takes
        self.sent = 0

    async def post(self, url: str, content: bytes, *, timeout: float) -> RawResponse:
        self.sent += 1
        await asyncio.sleep(self.takes)
        return RawResponse(200, b'{"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":""}')

    async def aclose(self) -> None:
        pass


def test_the_client_keeps_the_deadline_when_the_transport_overruns_its_timeout() -> None:
    async def main(loop: VirtualClockLoop) -> tuple[float, DeadlineExceededError, int]:
        transport = Overrunning(loop, takes=3.0)
        async with _chat(transport, max_retries=3, timeout=10, deadline=1.0) as chat:
            started = loop.time()
            with pytest.raises(DeadlineExceededError) as raised:
                await chat.delete_robot("@RBT#1")
            return loop.time() - started, raised.value, transport.sent

    took, error, sent = run_virtual(main)
    assert took == pytest.approx(1.0)
    assert sent == 1
    assert error.request_sent is True
    assert str(error).endswith("no answer came before it")


def test_without_a_deadline_a_slow_transport_is_waited_for() -> None:
    async def main(loop: VirtualClockLoop) -> float:
        async with _chat(Overrunning(loop, takes=3.0), timeout=1.0) as chat:
            started = loop.time()
            await chat.delete_robot("@RBT#1")
            return loop.time() - started

    assert run_virtual(main) == pytest.approx(3.0)  # the fence is only the deadline's


def test_a_shared_limiters_pause_after_60007_does_not_hold_the_call_past_its_deadline(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class HangingPause:
        """A shared limiter whose pause never returns (its Redis hangs)."""

        async def acquire(self, key: str) -> None:
            pass

        async def pause(self, key: str, seconds: float) -> None:
            await asyncio.Event().wait()

    async def main(loop: VirtualClockLoop) -> float:
        transport = ScriptedTransport(fail(60007))
        async with _chat(transport, limiter=HangingPause(), deadline=0.3) as chat:
            started = loop.time()
            with pytest.raises(DeadlineExceededError):
                await chat.delete_robot("@RBT#1")
            return loop.time() - started

    assert run_virtual(main) == pytest.approx(0.3)
    assert "cut short by the call's deadline" in caplog.text


def test_an_attempt_with_less_than_a_millisecond_left_is_not_sent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(retry_module, "backoff", lambda attempt, **_: 0.4995)

    async def main(loop: VirtualClockLoop) -> tuple[int, str]:
        transport = ScriptedTransport(fail(10002))
        async with _chat(transport, max_retries=3, deadline=0.5) as chat:
            with pytest.raises(DeadlineExceededError) as raised:
                await chat.delete_robot("@RBT#1")
        return len(transport.sent), str(raised.value)

    sent, message = run_virtual(main)
    assert sent == 1  # the retry would have had 0.5 ms: not sent
    assert message.endswith("no time was left for an attempt")


def test_a_server_answering_10002_every_time_fails_within_the_deadline_sending_nothing_after() -> (
    None
):
    async def main(loop: VirtualClockLoop) -> tuple[float, list[float], DeadlineExceededError]:
        transport = Timed(loop, fail(10002))
        async with _chat(transport, max_retries=3, timeout=10, deadline=1.0) as chat:
            started = loop.time()
            with pytest.raises(DeadlineExceededError) as raised:
                await chat.create_robot("@RBT#1")
            return loop.time() - started, [t - started for t in transport.times], raised.value

    took, sent_at, error = run_virtual(main)
    assert took <= 1.0
    assert len(sent_at) >= 2  # it did retry while time was left
    assert all(at < 1.0 for at in sent_at)
    assert error.request_sent is False  # every attempt was answered
    assert isinstance(error.__cause__, InternalServerError)
    assert "a retry after InternalServerError would start past it" in str(error)


def test_a_backoff_that_would_end_past_the_deadline_is_not_slept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(retry_module, "backoff", lambda attempt, **_: 0.8)

    async def main(loop: VirtualClockLoop) -> tuple[float, int]:
        transport = ScriptedTransport(fail(10002), ok())
        async with _chat(transport, max_retries=3, deadline=0.5) as chat:
            started = loop.time()
            with pytest.raises(DeadlineExceededError):
                await chat.delete_robot("@RBT#1")
            return loop.time() - started, len(transport.sent)

    took, sent = run_virtual(main)
    assert took == pytest.approx(0.0, abs=1e-6)  # raised at once, not after 0.8 s or 0.5 s
    assert sent == 1


def test_a_backoff_that_fits_is_slept_and_the_retry_gets_what_is_left(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(retry_module, "backoff", lambda attempt, **_: 0.3)

    async def main(loop: VirtualClockLoop) -> list[tuple[float, float]]:
        silent = Silent(loop)
        async with _chat(silent, max_retries=3, timeout=0.4, deadline=1.0) as chat:
            with pytest.raises(DeadlineExceededError):
                await chat.delete_robot("@RBT#1")
        return [(round(at - 1000.0, 6), round(timeout, 6)) for at, timeout in silent.sent]

    # 0.0-0.4 timed out (its own timeout: retried), backoff to 0.7, then 0.3 left.
    assert run_virtual(main) == [(0.0, 0.4), (0.7, 0.3)]


def test_an_attempt_that_fits_keeps_its_own_timeout_and_a_call_in_time_succeeds() -> None:
    async def main(loop: VirtualClockLoop) -> list[float]:
        transport = ScriptedTransport(ok())
        async with _chat(transport, timeout=3.0, deadline=5.0) as chat:
            await chat.delete_robot("@RBT#1")
        return [request.timeout for request in transport.sent]

    assert run_virtual(main) == [3.0]


def test_no_permit_before_the_deadline_is_a_deadline_error_and_nothing_is_sent() -> None:
    async def main(loop: VirtualClockLoop) -> tuple[float, DeadlineExceededError, int]:
        transport = ScriptedTransport()
        async with _chat(transport, rate_limit=1) as chat:
            await chat.delete_robot("@RBT#1")  # the one permit of this second
            started = loop.time()
            with pytest.raises(DeadlineExceededError) as raised:
                await chat.with_options(deadline=0.5).delete_robot("@RBT#2")
            return loop.time() - started, raised.value, len(transport.sent)

    took, error, sent = run_virtual(main)
    assert took <= 0.5
    assert sent == 1
    assert error.request_sent is False
    assert isinstance(error.__cause__, QueueTimeoutError)
    assert "no slot or rate permit came before it" in str(error)


def test_a_max_wait_shorter_than_the_deadline_is_still_a_queue_timeout() -> None:
    async def main(loop: VirtualClockLoop) -> QueueTimeoutError:
        async with _chat(ScriptedTransport(), rate_limit=1) as chat:
            await chat.delete_robot("@RBT#1")
            with pytest.raises(QueueTimeoutError) as raised:
                await chat.with_options(max_wait=0.2, deadline=0.9).delete_robot("@RBT#2")
            return raised.value

    error = run_virtual(main)
    assert not isinstance(error, DeadlineExceededError)
    assert error.max_wait == 0.2


def test_a_timeout_not_cut_by_the_deadline_is_retried_as_before() -> None:
    async def main(loop: VirtualClockLoop) -> int:
        timed_out = APITimeoutError("no answer", request_sent=True)
        transport = ScriptedTransport(timed_out, ok())
        async with _chat(transport, max_retries=2, timeout=0.1, deadline=60) as chat:
            await chat.delete_robot("@RBT#1")
        return len(transport.sent)

    assert run_virtual(main) == 2


def test_each_bulk_item_has_the_deadline_and_views_set_or_clear_it() -> None:
    async def main(loop: VirtualClockLoop) -> tuple[list[Any], float | None, float | None]:
        silent = Silent(loop)
        async with _chat(silent, timeout=10, deadline=30) as chat:
            calls = [Call.delete_robot(f"@RBT#{i}") for i in range(3)]
            outcomes = [o async for o in chat.bulk(calls, deadline=0.25)]
            cleared = chat.with_options(deadline=None).options
            kept = chat.with_options(timeout=5).options
        assert cleared is not None
        assert kept is not None
        return [o.error for o in outcomes], cleared.deadline, kept.deadline

    errors, cleared, kept = run_virtual(main)
    assert all(isinstance(e, DeadlineExceededError) and e.deadline == 0.25 for e in errors)
    assert (cleared, kept) == (None, 30)


@pytest.mark.parametrize("bad", [0, -1, math.nan, math.inf, True, "1", 86_401])
def test_a_bad_deadline_is_refused_before_anything_is_sent(bad: Any) -> None:
    with pytest.raises(ValidationError, match="deadline"):
        _chat(ScriptedTransport(), deadline=bad)
    with pytest.raises(ValidationError, match="deadline"):
        _chat(ScriptedTransport()).with_options(deadline=bad)
    with pytest.raises(ValidationError, match="deadline"):
        _chat(ScriptedTransport()).bulk([], deadline=bad)


def test_the_call_span_records_the_deadline_error(otel: OTel) -> None:
    async def main(loop: VirtualClockLoop) -> None:
        async with _chat(Silent(loop), deadline=0.5) as chat:
            with pytest.raises(DeadlineExceededError):
                await chat.delete_robot("@RBT#1")

    run_virtual(main)
    spans = {span.name: span for span in otel.spans()}
    call_span = spans["tencent_chat delete_robot"]
    assert call_span.attributes["error.type"] == "DeadlineExceededError"
    attempt = next(
        s for s in otel.spans() if s.parent and s.parent.span_id == call_span.context.span_id
    )
    assert attempt.attributes["error.type"] == "DeadlineExceededError"


def test_it_is_a_request_error_and_pickles() -> None:
    import pickle

    error = DeadlineExceededError("x", endpoint="e", deadline=1.0, request_sent=True)
    copy = pickle.loads(pickle.dumps(error))
    assert isinstance(copy, RequestError)
    assert (copy.endpoint, copy.deadline, copy.request_sent) == ("e", 1.0, True)
    assert not copy.retryable


async def test_over_a_real_socket_that_never_answers_it_ends_near_the_deadline() -> None:
    """Real time, wide margin: the precise figure is measured, not asserted."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)  # accepted by the kernel, never answered
    port = listener.getsockname()[1]
    try:
        async with TencentChat(
            SDKAPPID,
            SECRET_KEY,
            base_url=f"http://127.0.0.1:{port}",
            max_retries=3,
            timeout=10,
            deadline=0.3,
        ) as chat:
            started = time.perf_counter()
            with pytest.raises(DeadlineExceededError):
                await chat.delete_robot("@RBT#1")
            took = time.perf_counter() - started
    finally:
        listener.close()
    assert 0.29 <= took < 1.5


def test_a_deadline_shorter_than_max_wait_is_what_refuses_the_wait() -> None:
    async def main(loop: VirtualClockLoop) -> tuple[float, BaseException]:
        async with _chat(ScriptedTransport(), rate_limit=1) as chat:
            await chat.delete_robot("@RBT#1")
            started = loop.time()
            with pytest.raises(RequestError) as raised:
                await chat.with_options(max_wait=0.9, deadline=0.5).delete_robot("@RBT#2")
            return loop.time() - started, raised.value

    took, error = run_virtual(main)
    assert isinstance(error, DeadlineExceededError)
    assert took <= 0.5


class EarlyTimeout:
    """A transport whose own timeout fires (just) before the client's fence would."""

    def __init__(self) -> None:
        self.timeouts: list[float] = []

    async def post(self, url: str, content: bytes, *, timeout: float) -> RawResponse:
        self.timeouts.append(timeout)
        await asyncio.sleep(timeout * 0.99)
        raise APITimeoutError(f"no answer within {timeout}s", request_sent=True)

    async def aclose(self) -> None:
        pass


def test_a_transport_giving_up_early_on_its_own_is_retried_not_a_deadline_error() -> None:
    """Its own connect timeout, say, long before the deadline: retried as without one."""

    class ConnectTimeoutFirst(Timed):
        async def post(self, url: str, content: bytes, *, timeout: float) -> RawResponse:
            if not self.times:
                self.times.append(self.loop.time())
                await asyncio.sleep(0.05)
                raise APITimeoutError("connect timed out after 0.05s", request_sent=False)
            return await super().post(url, content, timeout=timeout)

    async def main(loop: VirtualClockLoop) -> int:
        transport = ConnectTimeoutFirst(loop, ok())
        async with _chat(transport, max_retries=2, timeout=10, deadline=9.0) as chat:
            await chat.delete_robot("@RBT#1")
        return len(transport.times)

    assert run_virtual(main) == 2


def test_a_timeout_cut_by_the_deadline_is_a_deadline_error_that_may_have_been_sent() -> None:
    async def main(loop: VirtualClockLoop) -> DeadlineExceededError:
        async with _chat(EarlyTimeout(), max_retries=3, timeout=10, deadline=1.0) as chat:
            with pytest.raises(DeadlineExceededError) as raised:
                await chat.delete_robot("@RBT#1")
            return raised.value

    error = run_virtual(main)
    assert error.request_sent is True
    assert isinstance(error.__cause__, APITimeoutError)
    assert str(error) == (
        "openim_robot_http_svc/delete_robot did not finish within its deadline of 1s:"
        " the attempt got no answer in the 1.000s left"
    )
