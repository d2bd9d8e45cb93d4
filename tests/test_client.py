"""The client's behaviour: requests on the wire, the retry loop, pacing, closing, ownership."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tencent_chat_robots import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AttemptRecord,
    AuthenticationError,
    BadResponseError,
    Endpoint,
    InternalServerError,
    NotRoomMemberError,
    RawResponse,
    TencentChat,
    TencentChatError,
    verify_usersig,
)
from tencent_chat_robots.testing import FakeTencentChat

from ._virtual_time import VirtualClockLoop, max_in_window, run_virtual
from .conftest import ADMIN, SDKAPPID, SECRET_KEY, ScriptedTransport, fail, ok

MakeChat = Callable[..., TencentChat]


async def test_every_call_carries_the_documented_query(make_chat: MakeChat) -> None:
    transport = ScriptedTransport(ok(Robot_Account=[]))
    async with make_chat(transport) as chat:
        await chat.get_all_robots()
        await chat.get_all_robots()
    first, second = transport.sent
    assert first.path == "/v4/openim_robot_http_svc/get_all_robots"
    assert first.url.startswith("https://adminapisgp.im.qcloud.com/v4/")
    assert set(first.params) == {"sdkappid", "identifier", "usersig", "random", "contenttype"}
    assert first.params["sdkappid"] == str(SDKAPPID)
    assert first.params["identifier"] == ADMIN
    assert first.params["contenttype"] == "json"
    verify_usersig(
        first.params["usersig"], sdkappid=SDKAPPID, secret_key=SECRET_KEY, identifier=ADMIN
    )
    assert 0 <= int(first.params["random"]) <= 4294967295
    assert first.params["random"] != second.params["random"]
    # The UserSig is generated once and reused.
    assert first.params["usersig"] == second.params["usersig"]
    assert first.body == {}


async def test_admin_identifier_is_percent_encoded(make_chat: MakeChat) -> None:
    transport = ScriptedTransport()
    chat = TencentChat(
        SDKAPPID, SECRET_KEY, admin="ops&x=1", base_url="http://h", transport=transport
    )
    await chat.delete_robot("@RBT#1")
    assert transport.sent[0].params["identifier"] == "ops&x=1"
    assert "x" not in transport.sent[0].params


async def test_fixed_usersig_is_sent_as_given(make_chat: MakeChat) -> None:
    transport = ScriptedTransport()
    chat = TencentChat(SDKAPPID, usersig="fixed-sig", base_url="http://h", transport=transport)
    await chat.delete_robot("@RBT#1")
    assert transport.sent[0].params["usersig"] == "fixed-sig"


def test_limiter_waiting_is_not_part_of_the_timeout() -> None:
    """Calls queued behind the limiter far longer than ``timeout`` still succeed."""

    async def main(loop: VirtualClockLoop) -> float:
        fake = FakeTencentChat()
        # The fake's in-process transport enforces the timeout around each request.
        chat = fake.client(rate_limit=2, timeout=0.5, max_retries=0)
        began = loop.time()
        await asyncio.gather(*(chat.get_all_robots() for _ in range(6)))
        return loop.time() - began

    assert run_virtual(main) >= 2.0  # the last call waited four timeouts for its permit


@pytest.mark.parametrize("code", [10002, 100001, 60008, 70500])
async def test_internal_errors_are_retried_until_success(
    make_chat: MakeChat, code: int, no_backoff: None
) -> None:
    transport = ScriptedTransport(fail(code), fail(code), ok(Robot_Account=["@RBT#1"]))
    assert await make_chat(transport).get_all_robots() == ["@RBT#1"]
    assert len(transport.sent) == 3


async def test_max_retries_counts_retries_after_the_first_attempt(
    make_chat: MakeChat, no_backoff: None
) -> None:
    transport = ScriptedTransport(fail(10002))
    with pytest.raises(InternalServerError):
        await make_chat(transport, max_retries=2).get_all_robots()
    assert len(transport.sent) == 3
    transport = ScriptedTransport(fail(10002))
    with pytest.raises(InternalServerError):
        await make_chat(transport, max_retries=0).get_all_robots()
    assert len(transport.sent) == 1


@pytest.mark.parametrize("code", [10004, 10008, 100004, 10010, 60010, 70009])
async def test_final_errors_reach_the_server_exactly_once(
    make_chat: MakeChat, code: int, no_backoff: None
) -> None:
    transport = ScriptedTransport(fail(code))
    with pytest.raises(APIError):
        await make_chat(transport, max_retries=5).create_robot("@RBT#1")
    assert len(transport.sent) == 1


@pytest.mark.parametrize(
    "fault",
    [
        APIConnectionError("connection failed: reset"),
        APITimeoutError("request timed out"),
        RawResponse(502, b"bad gateway"),
        RawResponse(503, b"unavailable"),
        RawResponse(504, b"timeout"),
    ],
)
async def test_transport_faults_and_gateway_pages_are_retried(
    make_chat: MakeChat, fault: Any, no_backoff: None
) -> None:
    transport = ScriptedTransport(fault, ok())
    await make_chat(transport).delete_robot("@RBT#1")
    assert len(transport.sent) == 2


async def test_other_http_statuses_are_not_retried(make_chat: MakeChat, no_backoff: None) -> None:
    transport = ScriptedTransport(RawResponse(404, b"not found"))
    with pytest.raises(BadResponseError):
        await make_chat(transport).delete_robot("@RBT#1")
    assert len(transport.sent) == 1


async def test_exhausted_connection_retries_raise_the_typed_error(
    make_chat: MakeChat, no_backoff: None
) -> None:
    transport = ScriptedTransport(APITimeoutError("request timed out"))
    with pytest.raises(APITimeoutError) as caught:
        await make_chat(transport, max_retries=1).delete_robot("@RBT#1")
    assert caught.value.endpoint == Endpoint.DELETE_ROBOT
    assert len(transport.sent) == 2


def test_rate_limit_refusals_wait_at_least_a_second_and_backoff_grows() -> None:
    """On the virtual clock, with the real backoff: the pauses between attempts."""

    async def main(loop: VirtualClockLoop) -> tuple[list[float], list[float]]:
        times: list[float] = []

        def answer_60007(_: Any) -> dict[str, Any]:
            times.append(loop.time())
            return fail(60007) if len(times) < 3 else ok()

        internal: list[float] = []

        def answer_10002(_: Any) -> dict[str, Any]:
            internal.append(loop.time())
            return fail(10002)

        chat = TencentChat(
            SDKAPPID,
            SECRET_KEY,
            base_url="http://h",
            rate_limit=None,
            transport=ScriptedTransport(answer=answer_60007),
        )
        await chat.delete_robot("@RBT#1")
        chat = TencentChat(
            SDKAPPID,
            SECRET_KEY,
            base_url="http://h",
            rate_limit=None,
            max_retries=3,
            transport=ScriptedTransport(answer=answer_10002),
        )
        with pytest.raises(InternalServerError):
            await chat.delete_robot("@RBT#1")
        return times, internal

    times, internal = run_virtual(main)
    assert len(times) == 3
    assert all(later - earlier >= 1.0 for earlier, later in itertools.pairwise(times))
    gaps = [later - earlier for earlier, later in itertools.pairwise(internal)]
    assert len(gaps) == 3
    assert all(gap > 0 for gap in gaps)
    assert gaps[2] > gaps[0]  # 0.25 s doubled twice, jittered within its upper half


async def test_expired_usersig_is_renewed_and_retried_once(make_chat: MakeChat) -> None:
    transport = ScriptedTransport(fail(70001, "expired"), ok())
    chat = make_chat(transport, max_retries=0)
    await chat.delete_robot("@RBT#1")
    assert len(transport.sent) == 2
    verify_usersig(
        transport.sent[1].params["usersig"],
        sdkappid=SDKAPPID,
        secret_key=SECRET_KEY,
        identifier=ADMIN,
    )

    transport = ScriptedTransport(fail(70001, "expired"))
    with pytest.raises(AuthenticationError) as caught:
        await make_chat(transport, max_retries=3).delete_robot("@RBT#1")
    assert caught.value.code == 70001
    assert len(transport.sent) == 2  # renewed once; a second 70001 is final


async def test_expired_fixed_usersig_is_not_retried() -> None:
    transport = ScriptedTransport(fail(70001, "expired"))
    chat = TencentChat(SDKAPPID, usersig="fixed", base_url="http://h", transport=transport)
    with pytest.raises(AuthenticationError):
        await chat.delete_robot("@RBT#1")
    assert len(transport.sent) == 1


def test_retries_take_a_rate_permit_each() -> None:
    """Every attempt counts against the endpoint's budget, retries included."""

    async def main(loop: VirtualClockLoop) -> list[float]:
        sends: list[float] = []
        calls = 0

        def answer(_: Any) -> dict[str, Any]:
            nonlocal calls
            calls += 1
            sends.append(loop.time())
            return fail(10002) if calls <= 100 else ok()  # each call's first attempt fails

        chat = TencentChat(
            SDKAPPID,
            SECRET_KEY,
            base_url="http://h",
            rate_limit=20,
            transport=ScriptedTransport(answer=answer),
        )
        await asyncio.gather(*(chat.delete_robot("@RBT#1") for _ in range(100)))
        return sends

    sends = run_virtual(main)
    assert len(sends) == 200
    assert max_in_window(sends) <= 20


def test_ten_thousand_gathered_calls_all_complete_within_the_limit() -> None:
    async def main(loop: VirtualClockLoop) -> tuple[list[float], int]:
        sends: list[float] = []

        def answer(_: Any) -> dict[str, Any]:
            sends.append(loop.time())
            return ok(Robot_Account=[])

        transport = ScriptedTransport(answer=answer)
        chat = TencentChat(
            SDKAPPID, SECRET_KEY, base_url="http://h", rate_limit=2000, transport=transport
        )
        results = await asyncio.gather(*(chat.get_all_robots() for _ in range(10_000)))
        return sends, len(results)

    sends, completed = run_virtual(main)
    assert completed == 10_000
    assert len(sends) == 10_000
    assert max_in_window(sends) <= 2000


async def test_requests_in_flight_per_endpoint_are_bounded(make_chat: MakeChat) -> None:
    in_flight = 0
    most = 0
    gate = asyncio.Event()
    full = asyncio.Event()

    class SlowTransport(ScriptedTransport):
        async def post(self, url: str, content: bytes, *, timeout: float) -> RawResponse:
            nonlocal in_flight, most
            in_flight += 1
            most = max(most, in_flight)
            if in_flight == 7:
                full.set()
            await gate.wait()
            in_flight -= 1
            return await super().post(url, content, timeout=timeout)

    chat = make_chat(SlowTransport(), max_in_flight=7)
    tasks = [asyncio.ensure_future(chat.delete_robot("@RBT#1")) for _ in range(30)]
    await full.wait()
    # Let every other task run up to wherever it blocks: none may get past the slots.
    for _ in range(20):
        await asyncio.sleep(0)
    assert most == 7
    gate.set()
    await asyncio.gather(*tasks)
    assert most == 7


async def test_user_http_client_is_never_closed() -> None:
    client = httpx.AsyncClient(
        transport=httpx.MockTransport(lambda r: httpx.Response(200, json=ok()))
    )
    async with TencentChat(SDKAPPID, SECRET_KEY, base_url="http://h", http_client=client) as chat:
        await chat.delete_robot("@RBT#1")
    assert not client.is_closed
    await client.aclose()


async def test_passed_transport_is_not_closed(make_chat: MakeChat) -> None:
    transport = ScriptedTransport()
    async with make_chat(transport):
        pass
    assert not transport.closed


async def test_on_attempt_reports_every_try_with_its_outcome(
    make_chat: MakeChat, no_backoff: None
) -> None:
    records: list[AttemptRecord] = []
    transport = ScriptedTransport(fail(100001, RequestId="Id-1"), ok(RequestId="Id-2"))
    chat = make_chat(transport, on_attempt=records.append)
    await chat.add_robot_to_room("room-1", "@RBT#1")
    assert [(r.attempt, r.request_id) for r in records] == [(1, "Id-1"), (2, "Id-2")]
    assert isinstance(records[0].error, InternalServerError)
    assert records[1].error is None
    assert all(r.endpoint == Endpoint.ROOM_ADD_ROBOT and r.elapsed >= 0 for r in records)


async def test_a_failing_observer_does_not_fail_the_call(make_chat: MakeChat) -> None:
    def broken(_: AttemptRecord) -> None:
        raise RuntimeError("observer bug")

    result = await make_chat(ScriptedTransport(ok()), on_attempt=broken).create_robot("@RBT#1")
    assert result.request_id is None


def test_a_rate_limit_refusal_pauses_the_whole_endpoint() -> None:
    """After a 60007 the other callers of that endpoint hold off too, not only the refused one."""

    async def main(loop: VirtualClockLoop) -> tuple[list[float], float]:
        sends: list[float] = []
        refused_at: list[float] = []

        def answer(_: Any) -> dict[str, Any]:
            sends.append(loop.time())
            if len(sends) == 5:
                refused_at.append(loop.time())
                return fail(60007)
            return ok()

        chat = TencentChat(
            SDKAPPID,
            SECRET_KEY,
            base_url="http://h",
            rate_limit=50,
            transport=ScriptedTransport(answer=answer),
        )
        await asyncio.gather(*(chat.delete_robot("@RBT#1") for _ in range(20)))
        return sends, refused_at[0]

    sends, refused_at = run_virtual(main)
    assert len(sends) == 21
    after = [t for t in sends if t > refused_at]
    assert len(after) == 16
    assert min(after) >= refused_at + 1.0


async def test_a_closed_client_refuses_calls(make_chat: MakeChat) -> None:
    transport = ScriptedTransport()
    chat = make_chat(transport)
    await chat.aclose()
    with pytest.raises(TencentChatError, match="closed"):
        await chat.delete_robot("@RBT#1")
    assert transport.sent == []


# -- outcome-aware retries -------------------------------------------------------------


async def test_a_removal_whose_answer_was_lost_is_settled_by_the_not_a_member_retry(
    no_backoff: None,
) -> None:
    """The connection drops after the server removed the robot; the retry hears 100005."""
    fake = FakeTencentChat()
    fake.create_robot("@RBT#1")
    fake.create_room("room-1")
    fake.add_room_member("room-1", "@RBT#1")
    fake.drop_next(Endpoint.ROOM_DELETE_ROBOT, after_processing=True)
    async with fake.client() as chat:
        result = await chat.remove_robot_from_room("room-1", "@RBT#1")
    assert result.settled_on_retry is True
    assert result.request_id is not None  # the answering retry's, for support
    assert fake.room_members("room-1") == []
    assert [(call.fault, call.error_code) for call in fake.calls] == [
        ("dropped", 0),
        (None, 100005),
    ]


async def test_a_first_not_a_member_answer_still_raises(no_backoff: None) -> None:
    fake = FakeTencentChat()
    fake.create_robot("@RBT#1")
    fake.create_room("room-1")
    async with fake.client() as chat:
        with pytest.raises(NotRoomMemberError):
            await chat.remove_robot_from_room("room-1", "@RBT#1")
        fake.fail_next(Endpoint.ROOM_DELETE_ROBOT, 100001)  # answered: nothing unknown
        with pytest.raises(NotRoomMemberError):
            await chat.remove_robot_from_room("room-1", "@RBT#1")


@pytest.mark.parametrize(
    "unanswered",
    [
        APIConnectionError("connection failed: reset"),
        APITimeoutError("request timed out"),
        RawResponse(504, b"gateway timeout"),
    ],
)
async def test_every_unanswered_kind_lets_not_a_member_settle(
    make_chat: MakeChat, unanswered: Any, no_backoff: None
) -> None:
    transport = ScriptedTransport(unanswered, fail(100005, RequestId="Id-7"))
    result = await make_chat(transport).remove_robot_from_room("room-1", "@RBT#1")
    assert (result.settled_on_retry, result.request_id) == (True, "Id-7")


async def test_a_refused_connection_proves_nothing_was_done(
    make_chat: MakeChat, no_backoff: None
) -> None:
    refused = APIConnectionError("connection failed: refused", request_sent=False)
    transport = ScriptedTransport(refused, fail(100005))
    with pytest.raises(NotRoomMemberError):
        await make_chat(transport).remove_robot_from_room("room-1", "@RBT#1")


async def test_other_results_are_never_marked_settled(make_chat: MakeChat) -> None:
    result = await make_chat(ScriptedTransport(ok())).remove_robot_from_room("r", "@RBT#1")
    assert result.settled_on_retry is False


def test_a_pause_that_lands_while_the_head_waiter_sleeps_is_honoured() -> None:
    """Answers take 50 ms, so the 60007 arrives while the next caller is asleep."""

    async def main(loop: VirtualClockLoop) -> tuple[list[float], float]:
        sends: list[float] = []
        refused_at: list[float] = []

        class SlowAnswers(ScriptedTransport):
            async def post(self, url: str, content: bytes, *, timeout: float) -> RawResponse:
                sends.append(loop.time())
                await asyncio.sleep(0.05)
                if len(sends) == 3:
                    refused_at.append(loop.time())
                    return RawResponse(200, json.dumps(fail(60007)).encode())
                return RawResponse(200, json.dumps(ok()).encode())

        chat = TencentChat(
            SDKAPPID, SECRET_KEY, base_url="http://h", rate_limit=10, transport=SlowAnswers()
        )
        await asyncio.gather(*(chat.delete_robot("@RBT#1") for _ in range(6)))
        return sends, refused_at[0]

    sends, refused_at = run_virtual(main)
    assert len(sends) == 7
    assert not [t for t in sends if refused_at < t < refused_at + 1.0]


def test_waiting_for_an_in_flight_slot_takes_no_rate_permit() -> None:
    """A permit taken before the slot would be spent later, in a clump with others."""

    async def main(loop: VirtualClockLoop) -> list[float]:
        sends: list[float] = []

        class FirstIsSlow(ScriptedTransport):
            async def post(self, url: str, content: bytes, *, timeout: float) -> RawResponse:
                sends.append(loop.time())
                if len(sends) == 1:
                    await asyncio.sleep(1.5)
                return RawResponse(200, json.dumps(ok()).encode())

        chat = TencentChat(
            SDKAPPID,
            SECRET_KEY,
            base_url="http://h",
            rate_limit=5,
            max_in_flight=1,
            transport=FirstIsSlow(),
        )
        await asyncio.gather(*(chat.delete_robot("@RBT#1") for _ in range(10)))
        return sends

    sends = run_virtual(main)
    assert len(sends) == 10
    assert max_in_window(sends) <= 5
    # Paced (a burst of at most two per interval), not a clump spending stored permits.
    assert all(c - a >= 0.2 - 1e-9 for a, c in zip(sends[1:], sends[3:], strict=False))


def test_on_attempt_times_each_try_on_the_event_loop_clock() -> None:
    async def main(loop: VirtualClockLoop) -> tuple[list[AttemptRecord], list[float]]:
        records: list[AttemptRecord] = []
        sends: list[float] = []

        class Slow(ScriptedTransport):
            async def post(self, url: str, content: bytes, *, timeout: float) -> RawResponse:
                sends.append(loop.time())
                await asyncio.sleep(0.25)
                return RawResponse(200, json.dumps(ok(Robot_Account=[])).encode())

        chat = TencentChat(
            SDKAPPID, SECRET_KEY, base_url="http://h", transport=Slow(), on_attempt=records.append
        )
        await asyncio.sleep(3.0)  # the clock is far from zero
        await chat.get_all_robots()
        return records, sends

    (record,), (sent,) = run_virtual(main)
    assert record.started == pytest.approx(sent)
    assert record.elapsed == pytest.approx(0.25)


async def test_a_failing_observer_is_logged_with_its_endpoint(
    make_chat: MakeChat, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(_: AttemptRecord) -> None:
        raise RuntimeError("observer bug")

    await make_chat(ScriptedTransport(ok()), on_attempt=broken).create_robot("@RBT#1")
    (record,) = [r for r in caplog.records if r.name == "tencent_chat_robots"]
    assert record.getMessage() == (
        "on_attempt callback failed for openim_robot_http_svc/create_robot"
    )
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], RuntimeError)


async def test_each_request_is_sent_with_the_configured_timeout(make_chat: MakeChat) -> None:
    transport = ScriptedTransport()
    await make_chat(transport, timeout=4.0).delete_robot("@RBT#1")
    assert [request.timeout for request in transport.sent] == [4.0]


async def test_retries_are_logged_as_warnings_naming_endpoint_error_and_attempt(
    make_chat: MakeChat, caplog: pytest.LogCaptureFixture, no_backoff: None
) -> None:
    """README: retries are logged as warnings on the tencent_chat_robots logger."""
    transport = ScriptedTransport(fail(10002, "busy, usersig=SIG-9"), ok())
    await make_chat(transport).delete_robot("@RBT#1")
    (record,) = [r for r in caplog.records if r.name == "tencent_chat_robots"]
    assert record.levelname == "WARNING"
    assert record.getMessage() == (
        "retrying openim_robot_http_svc/delete_robot after InternalServerError"
        " (attempt 1, waiting 0.00s): error 10002 from openim_robot_http_svc/delete_robot:"
        " busy, usersig=REDACTED"
    )


async def test_a_base_url_with_a_trailing_slash_gives_the_same_paths() -> None:
    transport = ScriptedTransport()
    chat = TencentChat(SDKAPPID, SECRET_KEY, base_url="https://proxy.example/", transport=transport)
    await chat.delete_robot("@RBT#1")
    assert transport.sent[0].url.startswith(
        "https://proxy.example/v4/openim_robot_http_svc/delete_robot?"
    )
