"""The admission gate's words, the rates table's keys, the failed attempt's span and a
close during a retry's backoff: what the mutation run (``nox -s mutation``) found
untested. On the virtual clock."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry.trace import SpanKind

from tencent_chat_robots import (
    ClientClosedError,
    Endpoint,
    NotRoomMemberError,
    QueueTimeoutError,
    RateLimiter,
    TencentChat,
    ValidationError,
)

from ._virtual_time import VirtualClockLoop, run_virtual
from .conftest import SDKAPPID, SECRET_KEY, OTel, ScriptedTransport, fail, ok
from .test_mutation_limiter import HeldTransport

DELETE = Endpoint.DELETE_ROBOT


def _chat(transport: Any, **options: Any) -> TencentChat:
    return TencentChat(SDKAPPID, SECRET_KEY, base_url="http://h", transport=transport, **options)


def test_a_call_that_gets_no_slot_in_time_says_so() -> None:
    async def main(loop: VirtualClockLoop) -> QueueTimeoutError:
        transport = HeldTransport()
        async with _chat(transport, rate_limit=None, max_in_flight=1) as chat:
            holder = asyncio.ensure_future(chat.delete_robot("@RBT#1"))
            await asyncio.sleep(0)
            with pytest.raises(QueueTimeoutError) as caught:
                await chat.with_options(max_wait=0.5).delete_robot("@RBT#2")
            transport.release.set()
            await holder
        return caught.value

    error = run_virtual(main)
    assert str(error) == f"{DELETE} was not sent: no in-flight slot in time (max_wait=0.5s)"
    assert error.endpoint == DELETE


class BrokenPause:
    async def acquire(self, key: str) -> None:
        pass

    async def pause(self, key: str, seconds: float) -> None:
        raise RuntimeError("the limiter's own bug")


def test_a_limiter_that_fails_to_pause_is_logged_and_the_call_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def main(loop: VirtualClockLoop) -> int:
        transport = ScriptedTransport(fail(60007, "too fast"), ok())
        async with _chat(transport, limiter=BrokenPause()) as chat:
            await chat.delete_robot("@RBT#1")
        return len(transport.sent)

    with caplog.at_level(logging.ERROR, logger="tencent_chat_robots"):
        assert run_virtual(main) == 2
    messages = [r.getMessage() for r in caplog.records if r.exc_info]
    assert messages == [f"the limiter failed to pause {DELETE} after a refusal for frequency"]


def test_rates_take_keys_of_the_users_own_with_a_slash_but_not_bare_words() -> None:
    assert RateLimiter(10, rates={"mine/key": 5}).rate_for("mine/key") == 5
    with pytest.raises(ValidationError) as caught:
        RateLimiter(10, rates={"nokey": 5})
    assert str(caught.value) == (
        "rates: 'nokey' names no API: use a method name such as 'add_robot_to_room'"
        " or a path such as 'room_engine_http_srv/add_robot'"
    )
    # A client's own rate_limit names documented APIs only.
    with pytest.raises(ValidationError, match="names no API"):
        _chat(ScriptedTransport(), rate_limit={"mine/key": 5})


async def test_only_the_call_span_records_the_exception_not_the_attempts(
    otel: OTel, make_chat: Callable[..., TencentChat]
) -> None:
    transport = ScriptedTransport(fail(100005, "not a member"))
    async with make_chat(transport) as chat:
        with pytest.raises(NotRoomMemberError):
            await chat.add_robot_to_room("room-1", "@RBT#001")
    (call,) = [s for s in otel.spans() if s.kind == SpanKind.INTERNAL]
    (attempt,) = [s for s in otel.spans() if s.kind == SpanKind.CLIENT]
    assert [event.name for event in call.events] == ["exception"]
    assert list(attempt.events) == []


def test_a_call_closed_during_its_retrys_backoff_was_answered_and_not_sent_again() -> None:
    async def main(loop: VirtualClockLoop) -> ClientClosedError:
        failed = asyncio.Event()
        chat = _chat(
            ScriptedTransport(fail(10002), ok()), rate_limit=None, on_attempt=lambda _: failed.set()
        )
        call = asyncio.ensure_future(chat.delete_robot("@RBT#1"))
        await failed.wait()
        await chat.aclose()
        with pytest.raises(ClientClosedError) as caught:
            await call
        return caught.value

    error = run_virtual(main)
    assert str(error) == (
        f"the client was closed while {DELETE} was pending; the request was answered with an"
        " error and not sent again"
    )
    assert error.endpoint == DELETE
    assert error.request_sent is False


_FAILS_AT_START: Any = None


async def test_a_span_processor_failing_at_an_attempts_start_does_not_fail_the_call(
    otel: OTel, make_chat: Callable[..., TencentChat], caplog: pytest.LogCaptureFixture
) -> None:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import SpanProcessor

    class FailsAtStart(SpanProcessor):
        """Fails in on_start of an attempt's span while switched on (a provider's
        processors stay installed)."""

        on = False

        def on_start(self, span: Any, parent_context: Any = None) -> None:
            if self.on and span.kind == SpanKind.CLIENT:
                raise RuntimeError("processor bug")

    global _FAILS_AT_START
    if _FAILS_AT_START is None:
        _FAILS_AT_START = FailsAtStart()
        trace.get_tracer_provider().add_span_processor(_FAILS_AT_START)  # type: ignore[attr-defined]
    _FAILS_AT_START.on = True
    try:
        async with make_chat(ScriptedTransport(ok(RequestId="r-1"))) as chat:
            result = await chat.add_robot_to_room("room-1", "@RBT#001")
    finally:
        _FAILS_AT_START.on = False
    assert result.request_id == "r-1"
    failures = [r.getMessage() for r in caplog.records if "OpenTelemetry failed" in r.getMessage()]
    assert failures == ["OpenTelemetry failed starting an attempt's span; the call goes on"]


_FAILS_AT_CALL_START: Any = None


async def test_a_span_processor_failing_at_a_calls_start_does_not_fail_the_call(
    otel: OTel, make_chat: Callable[..., TencentChat], caplog: pytest.LogCaptureFixture
) -> None:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import SpanProcessor

    class FailsAtCallStart(SpanProcessor):
        on = False

        def on_start(self, span: Any, parent_context: Any = None) -> None:
            if self.on and span.kind == SpanKind.INTERNAL:
                raise RuntimeError("processor bug")

    global _FAILS_AT_CALL_START
    if _FAILS_AT_CALL_START is None:
        _FAILS_AT_CALL_START = FailsAtCallStart()
        trace.get_tracer_provider().add_span_processor(_FAILS_AT_CALL_START)  # type: ignore[attr-defined]
    _FAILS_AT_CALL_START.on = True
    try:
        async with make_chat(ScriptedTransport(ok(RequestId="r-1"))) as chat:
            result = await chat.add_robot_to_room("room-1", "@RBT#001")
    finally:
        _FAILS_AT_CALL_START.on = False
    assert result.request_id == "r-1"
    failures = [r.getMessage() for r in caplog.records if "OpenTelemetry failed" in r.getMessage()]
    assert failures == ["OpenTelemetry failed starting a call's span; the call goes on"]


async def test_a_base_url_with_a_trailing_slash_and_an_admin_with_a_slash_make_one_url() -> None:
    transport = ScriptedTransport()
    async with TencentChat(
        SDKAPPID, SECRET_KEY, admin="ops/admin", base_url="http://h/", transport=transport
    ) as chat:
        await chat.delete_robot("@RBT#1")
    [sent] = transport.sent
    assert sent.url.startswith(f"http://h/v4/{DELETE}?sdkappid={SDKAPPID}&identifier=ops%2Fadmin&")
