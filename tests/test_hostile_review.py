"""Defects a hostile review found in the redesign, each pinned by a test."""

from __future__ import annotations

import asyncio
import logging
import pickle
import sys
import traceback
from typing import Any

import httpx
import pytest

from tencent_chat_robots import (
    Call,
    ClientClosedError,
    RateLimiter,
    RequestError,
    TencentChat,
    TencentChatError,
    ValidationError,
)
from tencent_chat_robots._redact import redact

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup

from .conftest import SDKAPPID, SECRET_KEY, ScriptedTransport, fail, ok


def _chat(transport: Any, **options: Any) -> TencentChat:
    return TencentChat(SDKAPPID, SECRET_KEY, base_url="http://h", transport=transport, **options)


class _CancelledUnderTheCall:
    """A user's transport awaiting a future that another task cancels."""

    def __init__(self, poisoned: set[int]) -> None:
        self.poisoned = poisoned
        self.calls = 0

    async def post(self, url: str, content: bytes, *, timeout: float) -> Any:
        self.calls += 1
        if self.calls in self.poisoned:
            shared: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            asyncio.get_running_loop().call_soon(shared.cancel)
            await shared
        return await ScriptedTransport(ok()).post(url, content, timeout=timeout)

    async def aclose(self) -> None:
        return None


@pytest.mark.parametrize("ordered", [False, True])
async def test_a_cancellation_under_one_call_of_a_bulk_run_costs_that_item_only(
    ordered: bool,
) -> None:
    chat = _chat(_CancelledUnderTheCall({3}), rate_limit=None, max_retries=0)
    calls = [Call.delete_robot(f"@RBT#{i}") for i in range(10)]
    async with chat:
        outcomes = [o async for o in chat.bulk(calls, ordered=ordered, concurrency=2)]
    assert sorted(o.index for o in outcomes) == list(range(10))  # no item lost, no hang
    failed = [o for o in outcomes if not o.ok]
    assert len(failed) == 1
    assert isinstance(failed[0].error, TencentChatError)


async def test_a_cancellation_under_a_single_call_is_no_cancellation_of_its_caller() -> None:
    chat = _chat(_CancelledUnderTheCall({1}), rate_limit=None, max_retries=0)
    task = asyncio.current_task()
    assert task is not None
    # Only a task that counts its cancellations (3.11+, or a backport's) can tell.
    if callable(getattr(task, "cancelling", None)):
        with pytest.raises(RequestError, match="cancellation was raised under the call"):
            await chat.delete_robot("@RBT#1")
        assert task.cancelling() == 0
    else:
        with pytest.raises(asyncio.CancelledError):
            await chat.delete_robot("@RBT#1")
    await chat.aclose()


class _Hostile:
    """An item of a bulk run whose every attribute raises."""

    def __getattr__(self, name: str) -> Any:
        raise KeyError(name)


async def test_an_item_that_is_no_call_fails_alone_whatever_its_attributes_do() -> None:
    async with _chat(ScriptedTransport(), rate_limit=None) as chat:
        outcomes = [o async for o in chat.bulk([_Hostile(), Call.get_all_robots()])]
    by_index = {o.index: o for o in outcomes}
    assert isinstance(by_index[0].error, ValidationError)
    assert by_index[1].ok


class _QuotingTransport:
    """A user's transport whose error carries the signed URL in its arguments."""

    def __init__(self, make: Any) -> None:
        self.make = make

    async def post(self, url: str, content: bytes, *, timeout: float) -> Any:
        raise self.make(url)

    async def aclose(self) -> None:
        return None


class _PostFailed(Exception):
    pass


@pytest.mark.parametrize(
    "make",
    [
        lambda url: _PostFailed("refused", url),  # the URL as an argument (repr hides it)
        lambda url: httpx.ConnectError("refused", request=httpx.Request("POST", url)),
    ],
)
async def test_a_foreign_error_holding_the_signed_url_anywhere_is_scrubbed(make: Any) -> None:
    chat = _chat(_QuotingTransport(make), rate_limit=None, max_retries=0)
    with pytest.raises(RequestError) as caught:
        await chat.get_all_robots()
    usersig = chat._sender._usersig.current()
    error = caught.value
    for link in (error, error.__cause__):
        assert usersig not in str(getattr(link, "__dict__", "")) + repr(getattr(link, "args", ""))
    assert usersig.encode() not in pickle.dumps(error)


class _FailingPause:
    def __init__(self, synchronous: bool) -> None:
        self.synchronous = synchronous

    async def acquire(
        self, key: str, *, priority: str = "interactive", deadline: float | None = None
    ) -> None:
        return None

    def predicted_wait(self, key: str, **_: Any) -> float:
        return 0.0

    async def pause(self, key: str, seconds: float) -> None:
        raise ConnectionError("the limiter's store is down")


async def test_a_limiter_failing_to_pause_leaves_the_refusal_retried_and_logged(
    caplog: pytest.LogCaptureFixture, no_backoff: None
) -> None:
    transport = ScriptedTransport(fail(60007, "too fast"), ok())
    with caplog.at_level(logging.ERROR, logger="tencent_chat_robots"):
        async with _chat(transport, limiter=_FailingPause(False)) as chat:
            await chat.delete_robot("@RBT#1")
    assert len(transport.sent) == 2  # retried as any refusal for frequency
    assert "failed to pause" in caplog.text


class _BrokenLimiter:
    async def acquire(self, key: str) -> None:
        raise ConnectionError("down")


async def test_a_limiter_failing_to_acquire_is_a_request_error_naming_the_endpoint() -> None:
    transport = ScriptedTransport()
    async with _chat(transport, limiter=_BrokenLimiter()) as chat:
        with pytest.raises(RequestError, match="was not sent: the limiter failed") as caught:
            await chat.delete_robot("@RBT#1")
    assert caught.value.endpoint == "openim_robot_http_svc/delete_robot"
    assert isinstance(caught.value.__cause__, ConnectionError)
    assert transport.sent == []


def test_an_api_named_by_its_method_reports_its_own_rate() -> None:
    chat = TencentChat(SDKAPPID, SECRET_KEY, rate_limit={"add_robot_to_room": 950})
    assert chat.rate_for("add_robot_to_room") == 950
    assert chat.rate_for("add_robots_to_live_room") == 95
    assert RateLimiter(190).rate_for("get_live_room_robots") == 95


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"rate_limit": {"room_engine_http_srv/add_robot ": 50}}, "names no API"),
        (
            {"rate_limit": {"add_robot_to_room": 50, "room_engine_http_srv/add_robot": 60}},
            "named twice",
        ),
        ({"rate_limit": 50, "limiter": RateLimiter(10)}, "not both"),
        ({"rate_limit": {"get_all_robots": 5}, "limiter": RateLimiter(10)}, "not both"),
    ],
)
def test_rate_settings_that_would_be_ignored_are_refused(
    options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        TencentChat(SDKAPPID, SECRET_KEY, **options)


def test_a_limiter_with_no_built_in_pacing_beside_it_is_fine() -> None:
    limiter = RateLimiter(10)
    assert TencentChat(SDKAPPID, SECRET_KEY, limiter=limiter, rate_limit=None).limiter is limiter


def test_a_json_escaped_usersig_parameter_is_redacted() -> None:
    redacted = redact('"url":"x?a=1\\u0026usersig=eJySecret\\u0026b=2"')
    assert "eJySecret" not in redacted
    assert "\\u0026usersig=REDACTED" in redacted


def test_an_async_on_attempt_is_refused_at_construction() -> None:
    async def record(_: object) -> None:
        return None

    with pytest.raises(ValidationError, match="on_attempt must be a plain function"):
        TencentChat(SDKAPPID, SECRET_KEY, on_attempt=record)


async def test_a_close_in_the_backoff_after_an_answered_attempt_says_so() -> None:
    answered = asyncio.Event()
    transport = ScriptedTransport(fail(10002, "busy"))
    chat = _chat(transport, rate_limit=None, on_attempt=lambda record: answered.set())
    call = asyncio.ensure_future(chat.delete_robot("@RBT#1"))
    await answered.wait()  # resumed once the call waits out its backoff
    await chat.aclose()
    with pytest.raises(ClientClosedError) as caught:
        await call
    assert caught.value.request_sent is False
    assert "answered with an error and not sent again" in str(caught.value)


class _ClosingTransport:
    """A user's transport that closes the client it serves."""

    chat: TencentChat

    async def post(self, url: str, content: bytes, *, timeout: float) -> Any:
        await self.chat.aclose()
        raise AssertionError("not reached")

    async def aclose(self) -> None:
        return None


async def test_closing_a_client_from_inside_its_own_call_is_refused_not_a_deadlock() -> None:
    transport = _ClosingTransport()
    transport.chat = chat = _chat(transport, rate_limit=None, max_retries=0)
    with pytest.raises(TencentChatError) as caught:
        await asyncio.wait_for(chat.get_all_robots(), 5)  # a bound, not a synchronisation
    assert "cannot be closed from inside one of its own calls" in str(caught.value)
    assert not chat.closed
    await chat.aclose()


class _Unprintable:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


class _UsersOwnError(ValueError):
    pass


async def test_a_foreign_error_that_cannot_be_printed_is_still_scrubbed() -> None:
    chat = _chat(_QuotingTransport(lambda url: ValueError(_Unprintable(), url)), max_retries=0)
    with pytest.raises(RequestError) as caught:  # its arguments hold the signed URL
        await chat.get_all_robots()
    assert caught.value.__context__ is None
    assert chat._sender._usersig.current() not in str(caught.value)
    chat = _chat(_QuotingTransport(lambda url: _UsersOwnError(_Unprintable())), max_retries=0)
    with pytest.raises(_UsersOwnError) as plain:  # no secret anywhere: the user's own error
        await chat.get_all_robots()
    assert plain.value.__context__ is None


class _PredictionFails:
    """A priority limiter whose prediction raises (reached when max_wait is set and every
    in-flight slot is taken)."""

    async def acquire(
        self, key: str, *, priority: str = "interactive", deadline: float | None = None
    ) -> None:
        await asyncio.sleep(0)

    def predicted_wait(self, key: str, **_: Any) -> float:
        raise ValueError("limiter bug")

    async def pause(self, key: str, seconds: float) -> None:
        return None


async def test_a_limiter_failing_to_predict_is_a_request_error_naming_the_endpoint() -> None:
    release = asyncio.Event()

    async def held(request: Any) -> Any:
        await release.wait()
        return ok()

    class _Held(ScriptedTransport):
        async def post(self, url: str, content: bytes, *, timeout: float) -> Any:
            await release.wait()
            return await super().post(url, content, timeout=timeout)

    chat = _chat(_Held(), limiter=_PredictionFails(), max_in_flight=1)
    first = asyncio.ensure_future(chat.delete_robot("@RBT#1"))  # holds the only slot
    await asyncio.sleep(0)
    with pytest.raises(RequestError, match="was not sent: the limiter failed") as caught:
        await chat.with_options(max_wait=1.0).delete_robot("@RBT#2")
    assert isinstance(caught.value.__cause__, ValueError)
    release.set()
    await first
    await chat.aclose()


def _chained(depth: int, secret: str) -> BaseException:
    err: BaseException = ValueError(f"innermost {secret}")
    for level in range(depth):
        try:
            raise RuntimeError(f"wrapper {level}") from err
        except RuntimeError as wrapper:
            err = wrapper
    return err


class _ChainTransport:
    def __init__(self, make: Any) -> None:
        self.make = make

    async def post(self, url: str, content: bytes, *, timeout: float) -> Any:
        raise self.make(url)

    async def aclose(self) -> None:
        return None


async def test_a_long_foreign_chain_is_cut_where_its_scrubbing_stops() -> None:
    chat = _chat(_ChainTransport(lambda url: _chained(70, url)), max_retries=0)
    with pytest.raises(Exception) as caught:  # noqa: PT011 - the user's own type
        await chat.get_all_robots()
    usersig = chat._sender._usersig.current()
    text = "".join(traceback.format_exception(caught.value))
    assert usersig not in text


async def test_the_members_of_a_foreign_exception_group_lose_their_frames() -> None:
    def make(url: str) -> BaseException:
        def inner() -> None:
            full = str.__str__(url)  # a local holding the signed URL
            raise ValueError(f"upstream refused {len(full)}")

        try:
            inner()
        except ValueError as member:
            return BaseExceptionGroup("unhandled errors", [member])
        raise AssertionError

    chat = _chat(_ChainTransport(make), max_retries=0)
    with pytest.raises(BaseExceptionGroup) as caught:
        await chat.get_all_robots()
    assert all(member.__traceback__ is None for member in caught.value.exceptions)
