"""Both transport adapters against real loopback sockets."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from aiohttp import web

import tencent_chat_robots
from tencent_chat_robots import (
    AiohttpTransport,
    APIConnectionError,
    APITimeoutError,
    BadResponseError,
    ClientClosedError,
    HttpxTransport,
    TencentChat,
)
from tencent_chat_robots._transport import pool_size

from ._servers import loopback_server, refused_url
from .conftest import RespxChat

QUERY = "?sdkappid=1&identifier=a&usersig=SIG&random=1&contenttype=json"


@pytest.fixture(params=["aiohttp", "httpx"])
async def transport(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    if request.param == "aiohttp":
        adapter = AiohttpTransport()
        yield adapter
        await adapter.aclose()
    else:
        async with httpx.AsyncClient() as client:
            yield HttpxTransport(client)


async def test_post_returns_status_and_body_over_keep_alive(transport) -> None:  # type: ignore[no-untyped-def]
    async with loopback_server() as (base, seen):
        for _ in range(3):
            response = await transport.post(f"{base}/v4/ok/ok{QUERY}", b'{"a":1}', timeout=5)
            assert response.status_code == 200
            assert b'"ErrorCode": 0' in response.content
        assert [r.query_string for r in seen] == [QUERY[1:]] * 3
        assert seen[0].headers["Content-Type"] == "application/json"
        assert seen[0].body == b'{"a":1}'


async def test_gateway_page_comes_back_as_a_status(transport) -> None:  # type: ignore[no-untyped-def]
    async with loopback_server() as (base, _):
        response = await transport.post(f"{base}/v4/bad/gateway{QUERY}", b"{}", timeout=5)
    assert response.status_code == 502
    assert b"Bad Gateway" in response.content


async def test_refused_connection_is_api_connection_error(transport) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(APIConnectionError) as caught:
        await transport.post(f"{refused_url()}/v4/ok/ok{QUERY}", b"{}", timeout=5)
    assert not isinstance(caught.value, APITimeoutError)


async def test_dropped_connection_is_api_connection_error(transport) -> None:  # type: ignore[no-untyped-def]
    async with loopback_server() as (base, _):
        with pytest.raises(APIConnectionError):
            await transport.post(f"{base}/v4/drop/x{QUERY}", b"{}", timeout=5)


async def test_slow_answer_is_api_timeout_error(transport) -> None:  # type: ignore[no-untyped-def]
    async with loopback_server() as (base, _):
        with pytest.raises(APITimeoutError):
            await transport.post(f"{base}/v4/slow/x{QUERY}", b"{}", timeout=0.2)


async def test_default_client_runs_on_aiohttp_against_a_real_server() -> None:
    async with loopback_server() as (base, seen):
        chat = TencentChat(1400000000, "key", base_url=base)
        assert isinstance(chat._transport, AiohttpTransport)
        # The server only knows /v4/ok/ok; a 404 HTML page is a typed error, not a crash.
        with pytest.raises(BadResponseError) as caught:
            await chat.get_all_robots()
        assert caught.value.status_code == 404
        await chat.aclose()
        await chat.aclose()  # closing twice is harmless
    assert seen[0].path == "/v4/openim_robot_http_svc/get_all_robots"


async def test_own_aiohttp_session_is_closed_by_aclose() -> None:
    adapter = AiohttpTransport()
    async with loopback_server() as (base, _):
        await adapter.post(f"{base}/v4/ok/ok{QUERY}", b"{}", timeout=5)
        session = adapter._session
        assert session is not None
        await adapter.aclose()
        assert session.closed


@pytest.mark.parametrize(
    ("fault", "timed_out", "sent"),
    [
        (httpx.ConnectError("connection refused"), False, False),
        (httpx.ConnectTimeout("connect timed out"), True, False),
        (httpx.ReadTimeout("read timed out"), True, True),
        (httpx.RemoteProtocolError("peer closed the connection"), False, True),
    ],
)
async def test_transport_faults_say_whether_the_server_may_have_seen_the_request(
    fault: httpx.RequestError, timed_out: bool, sent: bool
) -> None:
    """Only a connection that was never made proves the request went nowhere."""

    def handler(request: httpx.Request) -> httpx.Response:
        raise fault

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        with pytest.raises(APIConnectionError) as caught:
            await HttpxTransport(client).post(f"http://h/v4/ok/ok{QUERY}", b"{}", timeout=5)
    assert isinstance(caught.value, APITimeoutError) is timed_out
    assert caught.value.request_sent is sent
    assert str(fault) in str(caught.value)  # the cause stays readable in the message


async def test_aiohttp_faults_say_whether_the_server_may_have_seen_the_request() -> None:
    adapter = AiohttpTransport()
    with pytest.raises(APIConnectionError) as refused:
        await adapter.post(f"{refused_url()}/v4/ok/ok{QUERY}", b"{}", timeout=5)
    async with loopback_server() as (base, _):
        with pytest.raises(APIConnectionError) as dropped:
            await adapter.post(f"{base}/v4/drop/x{QUERY}", b"{}", timeout=5)
        with pytest.raises(APITimeoutError) as slow:
            await adapter.post(f"{base}/v4/slow/x{QUERY}", b"{}", timeout=0.2)
    await adapter.aclose()
    assert refused.value.request_sent is False
    assert dropped.value.request_sent is True
    assert slow.value.request_sent is True
    # aiohttp's time-out has no text of its own: the message still names what happened.
    assert "TimeoutError" in str(slow.value)


async def test_a_closed_transport_says_so_and_sends_nothing() -> None:
    adapter = AiohttpTransport()
    await adapter.aclose()
    async with loopback_server() as (base, seen):
        with pytest.raises(ClientClosedError, match="this transport is closed; nothing was sent"):
            await adapter.post(f"{base}/v4/ok/ok{QUERY}", b"{}", timeout=5)
    assert seen == []
    async with httpx.AsyncClient() as client:
        pass
    with pytest.raises(
        ClientClosedError, match=r"the httpx\.AsyncClient given as http_client= is closed"
    ):
        await HttpxTransport(client).post(f"http://h/v4/ok/ok{QUERY}", b"{}", timeout=5)


async def test_the_default_aiohttp_pool_has_no_cap_unless_given_one() -> None:
    """README: the SDK's own aiohttp session has no connection cap; the client bounds
    requests in flight per endpoint itself."""
    async with loopback_server() as (base, _):
        for cap, expected in ((None, 0), (8, 8)):  # aiohttp's limit 0 means unlimited
            adapter = AiohttpTransport(max_connections=cap)
            assert pool_size(adapter) == cap
            await adapter.post(f"{base}/v4/ok/ok{QUERY}", b"{}", timeout=5)
            assert adapter._session is not None
            assert adapter._session.connector is not None
            assert adapter._session.connector.limit == expected
            await adapter.aclose()


async def test_a_redirect_comes_back_as_a_status_and_is_not_followed() -> None:
    """Following it would resend the signed URL, UserSig included, wherever it points."""
    hits: list[str] = []

    async def moved(request: web.Request) -> web.Response:
        hits.append(request.path)
        raise web.HTTPFound("/v4/ok/ok")

    app = web.Application()
    app.router.add_post("/v4/moved/x", moved)
    app.router.add_route("*", "/v4/ok/ok", moved)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    adapter = AiohttpTransport()
    try:
        response = await adapter.post(
            f"http://127.0.0.1:{port}/v4/moved/x{QUERY}", b"{}", timeout=5
        )
    finally:
        await adapter.aclose()
        await runner.cleanup()
    assert response.status_code == 302
    assert hits == ["/v4/moved/x"]


async def test_an_httpx_client_is_closed_only_by_its_owner() -> None:
    """README: the SDK never closes a client it did not create."""
    async with httpx.AsyncClient() as client:
        await HttpxTransport(client).aclose()
        assert not client.is_closed
        await HttpxTransport(client, owns_client=True).aclose()
        assert client.is_closed


async def test_an_httpx_client_without_a_readable_pool_counts_as_the_default_100() -> None:
    """README: each endpoint gets max_connections // 15 requests, 6 with httpx's 100."""
    mocked = httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(200)))
    async with mocked:
        assert pool_size(HttpxTransport(mocked)) == 100
        assert TencentChat(1400000000, "key", http_client=mocked).max_in_flight == 6


async def test_httpx_requests_carry_the_timeout_but_never_wait_on_the_pool_against_it() -> None:
    """README: ``timeout`` covers one request on the wire; queueing is not part of it."""
    seen: list[dict[str, float | None]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.extensions["timeout"])
        return httpx.Response(200)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        await HttpxTransport(client).post(f"http://h/v4/ok/ok{QUERY}", b"{}", timeout=2.5)
    assert seen == [{"connect": 2.5, "read": 2.5, "write": 2.5, "pool": None}]


def test_a_pool_of_one_is_a_cap_and_zero_is_none() -> None:
    """aiohttp reads a limit of 0 as no limit at all."""
    assert pool_size(AiohttpTransport(max_connections=1)) == 1
    assert pool_size(AiohttpTransport(max_connections=0)) is None
    assert pool_size(object()) is None  # a transport of the user's own: nothing known


# -- Error texts: the endpoint, the limit and the cause, in plain words ----------------


@asynccontextmanager
async def raw_server(answer: bytes) -> AsyncIterator[str]:
    """A loopback server reading one request, writing ``answer`` as it is and closing."""

    async def respond(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        for line in head.lower().split(b"\r\n"):
            if line.startswith(b"content-length:"):
                await reader.readexactly(int(line.partition(b":")[2]))
        writer.write(answer)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(respond, "127.0.0.1", 0)
    async with server:
        yield f"127.0.0.1:{server.sockets[0].getsockname()[1]}"


CUT_SHORT = b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"ErrorCode":'
ADD_ROBOT = "room_engine_http_srv/add_robot"


async def test_a_body_cut_short_is_named_plainly_not_as_an_http_400() -> None:
    """aiohttp's own text, <ContentLengthError: 400, message=...>, reads as an HTTP 400."""
    adapter = AiohttpTransport()
    async with raw_server(CUT_SHORT) as host:
        with pytest.raises(APIConnectionError) as caught:
            await adapter.post(f"http://{host}/v4/{ADD_ROBOT}{QUERY}", b"{}", timeout=5)
    await adapter.aclose()
    assert str(caught.value) == (
        f"connection to {host} failed for {ADD_ROBOT}:"
        " response body shorter than its Content-Length (ContentLengthError)"
    )
    assert caught.value.request_sent is True
    assert caught.value.__cause__ is not None  # aiohttp's own error stays chained


async def test_a_body_cut_short_over_httpx_names_the_endpoint_and_the_fault() -> None:
    async with raw_server(CUT_SHORT) as host, httpx.AsyncClient() as client:
        with pytest.raises(APIConnectionError) as caught:
            await HttpxTransport(client).post(
                f"http://{host}/v4/{ADD_ROBOT}{QUERY}", b"{}", timeout=5
            )
    text = str(caught.value)
    assert text.startswith(f"connection to {host} failed for {ADD_ROBOT}: ")
    assert text.endswith(" (RemoteProtocolError)")


async def test_a_time_out_names_the_endpoint_and_the_seconds(transport) -> None:  # type: ignore[no-untyped-def]
    async with loopback_server() as (base, _):
        with pytest.raises(APITimeoutError) as caught:
            await transport.post(f"{base}/v4/slow/x{QUERY}", b"{}", timeout=0.2)
    name = "TimeoutError" if isinstance(transport, AiohttpTransport) else "ReadTimeout"
    assert str(caught.value) == f"slow/x timed out after 0.2s (no answer; {name})"


@pytest.mark.parametrize(
    ("fault", "text"),
    [
        (httpx.ConnectTimeout("connect timed out"), "could not connect; ConnectTimeout"),
        (httpx.WriteTimeout("write timed out"), "request not fully sent; WriteTimeout"),
        (httpx.ReadTimeout("read timed out"), "no answer; ReadTimeout"),
    ],
)
async def test_an_httpx_time_out_says_what_it_interrupted(
    fault: httpx.TimeoutException, text: str
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise fault

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        with pytest.raises(APITimeoutError) as caught:
            await HttpxTransport(client).post(f"http://h/v4/{ADD_ROBOT}{QUERY}", b"{}", timeout=10)
    assert str(caught.value) == f"{ADD_ROBOT} timed out after 10s ({text}: {fault})"


async def test_a_refused_connection_names_host_and_endpoint_not_query_or_password(
    transport,  # type: ignore[no-untyped-def]
) -> None:
    host = refused_url().removeprefix("http://")
    with pytest.raises(APIConnectionError) as caught:
        await transport.post(
            f"http://gateway:hunter2@{host}/prefix/v4/{ADD_ROBOT}{QUERY}", b"{}", timeout=5
        )
    text = str(caught.value)
    assert text.startswith(f"connection to {host} failed for {ADD_ROBOT}: ")
    for hidden in ("hunter2", "gateway", "?", "sdkappid", "SIG", "usersig"):
        assert hidden not in text
    assert caught.value.request_sent is False


# -- User-Agent ----------------------------------------------------------------------


def _agent(library: str, version: str) -> str:
    python = ".".join(map(str, sys.version_info[:3]))
    return (
        f"tencent-chat-robots/{tencent_chat_robots.__version__} Python/{python} {library}/{version}"
    )


async def test_every_request_says_which_sdk_and_stack_sent_it(transport) -> None:  # type: ignore[no-untyped-def]
    import aiohttp

    expected = (
        _agent("aiohttp", aiohttp.__version__)
        if isinstance(transport, AiohttpTransport)
        else _agent("httpx", httpx.__version__)
    )
    async with loopback_server() as (base, seen):
        for _ in range(2):
            await transport.post(f"{base}/v4/ok/ok{QUERY}", b"{}", timeout=5)
    assert [request.headers["User-Agent"] for request in seen] == [expected, expected]
    assert seen[0].headers["Content-Type"] == "application/json"


async def test_a_user_agent_set_on_the_users_httpx_client_is_kept() -> None:
    agents: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        agents.append(request.headers["User-Agent"])
        return httpx.Response(200)

    mocked = httpx.MockTransport(handler)
    async with httpx.AsyncClient(transport=mocked, headers={"User-Agent": "my-app/2"}) as client:
        adapter = HttpxTransport(client)
        await adapter.post(f"http://h/v4/ok/ok{QUERY}", b"{}", timeout=5)
        del client.headers["User-Agent"]  # none configured any more: the SDK's is sent
        await adapter.post(f"http://h/v4/ok/ok{QUERY}", b"{}", timeout=5)
        assert "User-Agent" not in client.headers  # the user's client is not changed
    assert agents == ["my-app/2", _agent("httpx", httpx.__version__)]


async def test_a_client_on_the_users_httpx_client_sends_the_sdks_user_agent(
    respx_chat: RespxChat,
) -> None:
    respx_chat.answer(ADD_ROBOT, {"ActionStatus": "OK", "ErrorCode": 0, "ErrorInfo": ""})
    await respx_chat.chat.add_robot_to_room("room-1", "@RBT#1")
    [call] = respx_chat.router.calls
    assert call.request.headers["User-Agent"] == _agent("httpx", httpx.__version__)
