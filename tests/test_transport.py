"""Both transport adapters against real loopback sockets."""

from __future__ import annotations

import httpx
import pytest

from tencent_chat_robots import (
    AiohttpTransport,
    APIConnectionError,
    APITimeoutError,
    BadResponseError,
    HttpxTransport,
    TencentChat,
)

from ._servers import loopback_server, refused_url

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
