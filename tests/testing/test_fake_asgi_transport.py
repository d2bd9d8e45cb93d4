"""ASGIAppTransport: the SDK's Transport protocol served by an ASGI app in-process."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tencent_chat_robots._exceptions import APIConnectionError, APITimeoutError
from tencent_chat_robots._transport import RawResponse
from tencent_chat_robots.testing import FAKE_BASE_URL, ASGIAppTransport, FakeTencentChat

CREATE = "openim_robot_http_svc/create_robot"


def url(fake: FakeTencentChat, endpoint: str = CREATE) -> str:
    return (
        f"{FAKE_BASE_URL}/v4/{endpoint}?sdkappid={fake.sdkappid}&identifier={fake.admin}"
        f"&usersig={fake.usersig()}&random=12345&contenttype=json"
    )


async def test_round_trip_through_the_fake(fake) -> None:
    transport = ASGIAppTransport(fake.app)
    response = await transport.post(url(fake), b'{"UserID": "@RBT#1"}', timeout=5)
    assert isinstance(response, RawResponse)
    assert response.status_code == 200
    assert json.loads(response.content) == {"ActionStatus": "OK", "ErrorCode": 0, "ErrorInfo": ""}
    assert fake.robots == ["@RBT#1"]
    assert fake.calls[0].body == {"UserID": "@RBT#1"}


async def test_scope_and_body_are_well_formed() -> None:
    seen: dict[str, Any] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen["scope"] = scope
        seen["request"] = await receive()
        await send({"type": "http.response.start", "status": 201, "headers": []})
        await send({"type": "http.response.body", "body": b"he", "more_body": True})
        await send({"type": "http.response.body", "body": b"llo"})
        seen["after"] = await receive()

    transport = ASGIAppTransport(app)
    target = "https://example.com:8443/v4/svc/cmd?a=1&b=%2A"
    response = await transport.post(target, b"[1]", timeout=5)
    assert response == RawResponse(status_code=201, content=b"hello")
    scope = seen["scope"]
    assert scope["type"] == "http"
    assert scope["method"] == "POST"
    assert scope["scheme"] == "https"
    assert scope["path"] == "/v4/svc/cmd"
    assert scope["query_string"] == b"a=1&b=%2A"
    assert scope["server"] == ("example.com", 8443)
    headers = dict(scope["headers"])
    assert headers[b"content-type"] == b"application/json"
    assert headers[b"content-length"] == b"3"
    assert headers[b"host"] == b"example.com:8443"
    assert seen["request"] == {"type": "http.request", "body": b"[1]", "more_body": False}
    assert seen["after"] == {"type": "http.disconnect"}


async def test_bad_gateway_is_a_plain_response(fake) -> None:
    fake.bad_gateway_next(CREATE)
    response = await ASGIAppTransport(fake.app).post(url(fake), b"{}", timeout=5)
    assert response.status_code == 502
    assert b"<html>" in response.content


@pytest.mark.parametrize("after_processing", [False, True])
async def test_dropped_connection_raises_connection_error(fake, after_processing: bool) -> None:
    fake.drop_next(CREATE, after_processing=after_processing)
    transport = ASGIAppTransport(fake.app)
    with pytest.raises(APIConnectionError) as caught:
        await transport.post(url(fake), b'{"UserID": "@RBT#1"}', timeout=5)
    assert not isinstance(caught.value, APITimeoutError)
    assert caught.value.endpoint == CREATE
    assert fake.robots == (["@RBT#1"] if after_processing else [])


async def test_timeout_raises_timeout_error(fake) -> None:
    fake.latency = 5.0
    transport = ASGIAppTransport(fake.app)
    with pytest.raises(APITimeoutError) as caught:
        await transport.post(url(fake), b'{"UserID": "@RBT#1"}', timeout=0.05)
    assert isinstance(caught.value, APIConnectionError)
    # The request reached the server before the client gave up.
    assert fake.robots == ["@RBT#1"]


async def test_app_without_complete_answer_is_a_connection_error() -> None:
    async def silent(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})

    with pytest.raises(APIConnectionError, match="no complete answer"):
        await ASGIAppTransport(silent).post("http://x/v4/a/b", b"{}", timeout=5)


async def test_other_app_exceptions_propagate() -> None:
    async def broken(scope: Any, receive: Any, send: Any) -> None:
        raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        await ASGIAppTransport(broken).post("http://x/v4/a/b", b"{}", timeout=5)


async def test_closed_transport_refuses(fake) -> None:
    transport = ASGIAppTransport(fake.app)
    await transport.aclose()
    with pytest.raises(APIConnectionError, match="closed"):
        await transport.post(url(fake), b"{}", timeout=5)
    assert fake.calls == []
