"""The ``random`` sent with each attempt, on results, errors and attempt records.

Tencent support traces a call by the ``random`` query parameter (doocs#126 asked for
exactly this), also when the answer carried no ``RequestId``.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tencent_chat_robots import (
    APIConnectionError,
    AttemptRecord,
    BadResponseError,
    NotFoundError,
    RequestError,
    TencentChat,
    ValidationError,
)

from .conftest import ScriptedTransport, fail, ok


def _randoms(transport: ScriptedTransport) -> list[int]:
    return [int(request.params["random"]) for request in transport.sent]


async def test_a_result_carries_the_random_of_the_attempt_that_was_answered(
    make_chat: Callable[..., TencentChat], no_backoff: None
) -> None:
    records: list[AttemptRecord] = []
    transport = ScriptedTransport(fail(70500), APIConnectionError("reset"), ok())
    async with make_chat(transport, on_attempt=records.append) as chat:
        result = await chat.add_robot_to_room("room-1", "@RBT#001")
    sent = _randoms(transport)
    assert len(set(sent)) == 3  # a fresh random per attempt
    assert result.random == sent[-1]
    assert [record.random for record in records] == sent


async def test_an_api_error_carries_the_random_of_the_last_attempt(
    make_chat: Callable[..., TencentChat], no_backoff: None
) -> None:
    transport = ScriptedTransport(fail(70500), fail(100004, "no such room"))
    async with make_chat(transport) as chat:
        with pytest.raises(NotFoundError) as caught:
            await chat.add_robot_to_room("room-1", "@RBT#001")
    assert caught.value.random == _randoms(transport)[-1]
    assert f"{caught.value.random}" not in str(caught.value)  # data, not message text


async def test_a_transport_error_carries_the_random_it_was_sent_with(
    make_chat: Callable[..., TencentChat],
) -> None:
    transport = ScriptedTransport(APIConnectionError("reset"))
    async with make_chat(transport, max_retries=0) as chat:
        with pytest.raises(APIConnectionError) as caught:
            await chat.delete_robot("@RBT#001")
    assert caught.value.random == _randoms(transport)[0]


async def test_a_call_refused_before_sending_has_no_random(
    make_chat: Callable[..., TencentChat],
) -> None:
    chat = make_chat(ScriptedTransport(ok()))
    await chat.aclose()
    with pytest.raises(Exception) as caught:  # noqa: PT011 - ClientClosedError, checked below
        await chat.delete_robot("@RBT#001")
    assert type(caught.value).__name__ == "ClientClosedError"
    assert caught.value.random is None  # type: ignore[attr-defined]


async def test_results_compare_equal_whatever_their_random(
    make_chat: Callable[..., TencentChat],
) -> None:
    async with make_chat(ScriptedTransport(ok())) as chat:
        first = await chat.delete_robot("@RBT#001")
        second = await chat.delete_robot("@RBT#001")
    assert first.random != second.random
    assert first == second


def test_repr_of_a_client_whose_construction_failed_half_way() -> None:
    chat = TencentChat.__new__(TencentChat)
    with pytest.raises(ValidationError):
        chat.__init__(1400000000, "key", timeout=0)  # type: ignore[misc]
    text = repr(chat)
    assert text.startswith("TencentChat(sdkappid=1400000000, admin='administrator'")
    assert "limiter=<unset>" in text


async def test_an_answer_with_fields_of_the_wrong_type_keeps_its_random_and_request_id(
    make_chat: Callable[..., TencentChat],
) -> None:
    transport = ScriptedTransport(ok(RequestId="req-7", Robot_Account="not a list"))
    async with make_chat(transport) as chat:
        with pytest.raises(BadResponseError) as caught:
            await chat.get_all_robots()
    assert caught.value.random == _randoms(transport)[0]
    assert caught.value.request_id == "req-7"


def test_an_error_pickled_before_random_existed_reads_it_as_none() -> None:
    from tencent_chat_robots._exceptions import _rebuild

    old = _rebuild(RequestError, ("failed",), {"message": "failed", "endpoint": "a/b"})
    assert old.random is None  # type: ignore[attr-defined]
