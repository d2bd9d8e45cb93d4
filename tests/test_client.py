"""The client as a whole: configuration, the request loop, envelopes, errors and retries."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tencent_chat_robots import (
    ERROR_CODES,
    APIConnectionError,
    APIError,
    APITimeoutError,
    AttemptRecord,
    AuthenticationError,
    BadResponseError,
    Endpoint,
    InternalServerError,
    InvalidParameterError,
    RateLimiter,
    RateLimitError,
    RawResponse,
    Region,
    TencentChat,
    TencentChatError,
    ValidationError,
    verify_usersig,
)
from tencent_chat_robots.testing import FakeTencentChat

from ._virtual_time import VirtualClockLoop, max_in_window, run_virtual
from .conftest import ADMIN, SDKAPPID, SECRET_KEY, ScriptedTransport, fail, ok

MakeChat = Callable[..., TencentChat]


# -- configuration ---------------------------------------------------------------------


def test_missing_credentials_are_refused_at_construction(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TENCENT_CHAT_SDKAPPID", "TENCENT_CHAT_SECRET_KEY", "TENCENT_CHAT_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValidationError, match="sdkappid is required"):
        TencentChat(secret_key="k")
    with pytest.raises(ValidationError, match="secret key is required"):
        TencentChat(1400000000)
    with pytest.raises(ValidationError, match="sdkappid must be an integer"):
        TencentChat("abc", "k")
    with pytest.raises(ValidationError, match="not both"):
        TencentChat(1400000000, "k", usersig="sig")


def test_configuration_falls_back_to_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TENCENT_CHAT_BASE_URL", raising=False)
    monkeypatch.setenv("TENCENT_CHAT_SDKAPPID", "1400000001")
    monkeypatch.setenv("TENCENT_CHAT_SECRET_KEY", "from-env")
    monkeypatch.setenv("TENCENT_CHAT_ADMIN", "ops")
    monkeypatch.setenv("TENCENT_CHAT_REGION", "frankfurt")
    chat = TencentChat()
    assert chat.sdkappid == 1400000001
    assert chat.admin == "ops"
    assert chat.region is Region.FRANKFURT
    assert chat.base_url == "https://adminapiger.im.qcloud.com"


def test_unknown_region_is_a_clear_error() -> None:
    with pytest.raises(ValidationError, match="unknown region 'mars'"):
        TencentChat(1400000000, "k", region="mars")


def test_regions_cover_the_documented_domains() -> None:
    assert {r.value for r in Region} == {
        "console.tim.qq.com",
        "adminapisgp.im.qcloud.com",
        "adminapikr.im.qcloud.com",
        "adminapiger.im.qcloud.com",
        "adminapiusa.im.qcloud.com",
        "adminapiidn.im.qcloud.com",
        "adminapijpn.im.qcloud.com",
        "adminapiind.im.qcloud.com",
    }
    assert Region.parse("Silicon Valley") is Region.SILICON_VALLEY
    assert Region.parse("adminapisgp.im.qcloud.com") is Region.SINGAPORE


def test_default_pacing_is_190_per_endpoint() -> None:
    chat = TencentChat(1400000000, "k")
    assert isinstance(chat.limiter, RateLimiter)
    assert chat.rate_limit == 190
    assert TencentChat(1400000000, "k", rate_limit=None).limiter is None


# -- the request on the wire -----------------------------------------------------------


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


# -- envelopes and typed errors --------------------------------------------------------


@pytest.mark.parametrize(("code", "cls"), sorted(ERROR_CODES.items()))
async def test_each_documented_code_raises_its_class(
    make_chat: MakeChat, code: int, cls: type[APIError], no_backoff: None
) -> None:
    transport = ScriptedTransport(fail(code, "vendor says no", RequestId="Id-abc"))
    chat = make_chat(transport, max_retries=0, usersig="fixed")
    with pytest.raises(cls) as caught:
        await chat.add_robot_to_room("room-1", "@RBT#1")
    assert type(caught.value) is cls
    assert caught.value.code == code
    assert caught.value.info == "vendor says no"
    assert caught.value.request_id == "Id-abc"
    assert caught.value.endpoint == "room_engine_http_srv/add_robot"


async def test_unknown_code_raises_plain_api_error_keeping_the_code(make_chat: MakeChat) -> None:
    chat = make_chat(ScriptedTransport(fail(91234, "new")))
    with pytest.raises(APIError) as caught:
        await chat.delete_robot("@RBT#1")
    assert type(caught.value) is APIError
    assert caught.value.code == 91234
    assert caught.value.request_id is None


def test_the_code_table_matches_the_issue() -> None:
    expected = {
        InternalServerError: {10002, 100001, 60008, 70169, 70500},
        RateLimitError: {60007, 60011, 60018, 60019, 70050},
        InvalidParameterError: {10004, 100002, 10015, 60002, 60003, 70402},
    }
    for cls, codes in expected.items():
        assert codes <= {code for code, c in ERROR_CODES.items() if c is cls}
    assert {10001, 60004, 60005, 60006, 60012, 60016, 60021, 70052} | set(range(70001, 70021)) <= {
        code for code, c in ERROR_CODES.items() if c is AuthenticationError
    }


@pytest.mark.parametrize(
    ("answer", "match"),
    [
        (RawResponse(502, b"<html><body><h1>502 Bad Gateway</h1></body></html>"), "HTTP 502"),
        (RawResponse(200, b"<html>maintenance</html>"), "not the documented JSON envelope"),
        (RawResponse(200, b"[1, 2]"), "not the documented JSON envelope"),
        (RawResponse(200, b'{"ActionStatus": "OK"}'), "not the documented JSON envelope"),
        (RawResponse(200, b'{"ErrorCode": "0", "ActionStatus": "OK"}'), "JSON envelope"),
        (RawResponse(200, b'{"ErrorCode": 0, "ActionStatus": "FAIL"}'), "ActionStatus 'FAIL'"),
        (RawResponse(200, b'{"ErrorCode": 0, "ActionStatus": "OK", "Robot_Account": "x"}'), "type"),
        (RawResponse(200, b'{"ErrorCode":0,"ActionStatus":"OK","Robot_Account":[1]}'), "type"),
        (RawResponse(200, b"[" * 100_000), "not the documented JSON envelope"),
        (RawResponse(200, b"\xff\xfe{}"), "not the documented JSON envelope"),
    ],
)
async def test_bad_responses_raise_bad_response_error(
    make_chat: MakeChat, answer: RawResponse, match: str, no_backoff: None
) -> None:
    chat = make_chat(ScriptedTransport(answer), max_retries=0)
    with pytest.raises(BadResponseError, match=match) as caught:
        await chat.get_all_robots()
    assert caught.value.status_code == answer.status_code
    assert caught.value.endpoint == Endpoint.GET_ALL_ROBOTS


async def test_bad_response_excerpt_is_short_printable_and_redacted(make_chat: MakeChat) -> None:
    page = b"<html>\x00\x07 proxy error for /v4/x?usersig=SECRETSIG&random=1 " + b"x" * 5000
    chat = make_chat(ScriptedTransport(RawResponse(503, page)), max_retries=0)
    with pytest.raises(BadResponseError) as caught:
        await chat.get_all_robots()
    excerpt = caught.value.excerpt
    assert len(excerpt) <= 200
    assert excerpt.isprintable()
    assert "SECRETSIG" not in excerpt
    assert "usersig=REDACTED" in excerpt


async def test_results_carry_request_id_and_ignore_unknown_keys(make_chat: MakeChat) -> None:
    transport = ScriptedTransport(ok(RequestId="Id-52f0-O-Seq-1", SomethingNew={"a": 1}))
    result = await make_chat(transport).add_robot_to_room("room-1", "@RBT#1")
    assert result.request_id == "Id-52f0-O-Seq-1"
    result = await make_chat(ScriptedTransport(ok())).create_robot("@RBT#1")
    assert result.request_id is None


# -- retries ---------------------------------------------------------------------------


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


# -- ownership -------------------------------------------------------------------------


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


def test_all_errors_share_one_base() -> None:
    for cls in {*ERROR_CODES.values(), ValidationError, APIConnectionError, BadResponseError}:
        assert issubclass(cls, TencentChatError)
    assert issubclass(ValidationError, ValueError)


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


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"sdkappid": 1.9}, "sdkappid must be an integer"),
        ({"sdkappid": True}, "sdkappid must be an integer"),
        ({"timeout": "5"}, "timeout must be a number"),
        ({"timeout": 0}, "timeout must be a number >= 0.001"),
        ({"rate_limit": "190"}, "rate_limit must be a number"),
        ({"rate_limit": 0.5}, "rate_limit must be a number >= 1"),
        ({"max_retries": 1.5}, "max_retries must be a whole number"),
        ({"max_in_flight": 0}, "max_in_flight must be a whole number >= 1"),
        ({"admin": 123}, "admin must be a non-empty string"),
        ({"secret_key": b"k"}, "secret_key must be a non-empty string"),
        ({"base_url": "localhost:8000"}, "base_url must look like https://host"),
        ({"base_url": "ftp://example.com"}, "base_url must look like"),
        ({"base_url": "http://[::1"}, "not a valid URL"),
        ({"base_url": "http://h:99999"}, "not a valid URL"),
        ({"base_url": "https://h/?usersig=x"}, "must not carry a query"),
        ({"region": 5}, "region must be a Region"),
    ],
)
def test_bad_settings_are_refused_at_construction(kwargs: dict[str, Any], match: str) -> None:
    settings: dict[str, Any] = {"sdkappid": 1400000000, "secret_key": "k", **kwargs}
    with pytest.raises(ValidationError, match=match):
        TencentChat(**settings)


def test_explicit_region_is_not_overridden_by_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TENCENT_CHAT_BASE_URL", "http://elsewhere.example")
    chat = TencentChat(1400000000, "k", region=Region.SINGAPORE)
    assert chat.base_url == "https://adminapisgp.im.qcloud.com"
    assert TencentChat(1400000000, "k").base_url == "http://elsewhere.example"


def test_in_flight_requests_fit_the_httpx_pool() -> None:
    """With a user's httpx client, no request waits for a connection after its permit."""
    client = httpx.AsyncClient(limits=httpx.Limits(max_connections=21))
    chat = TencentChat(1400000000, "k", http_client=client)
    assert chat.max_in_flight == 3  # 21 connections shared by 7 endpoints
    assert TencentChat(1400000000, "k").max_in_flight == 256  # aiohttp: no pool cap


def test_star_import_needs_no_optional_extra() -> None:
    import tencent_chat_robots

    assert "RedisRateLimiter" not in tencent_chat_robots.__all__
    assert tencent_chat_robots.RedisRateLimiter.__name__ == "RedisRateLimiter"
