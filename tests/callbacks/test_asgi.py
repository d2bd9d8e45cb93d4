"""The receiver as an ASGI app: alone, mounted in Starlette/FastAPI, and its lifespan."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.routing import Mount

from tencent_chat_robots import TencentChatError
from tencent_chat_robots.callbacks import RobotCallbacks

from ._helpers import OK, SDKAPPID, TOKEN, Clock, Recorder, c2c, encode, query, until


def make_bot(**options: Any) -> tuple[RobotCallbacks, Recorder]:
    bot = RobotCallbacks(SDKAPPID, token=TOKEN, clock=Clock(), **options)
    handler = Recorder()
    bot.on_c2c_message(handler)
    return bot, handler


def client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


async def test_a_callback_through_asgi_is_acknowledged_and_handled() -> None:
    bot, handler = make_bot()
    async with client(bot) as http:
        response = await http.post("/", params=query(), content=encode(c2c()))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == OK
    await bot.join()
    assert [event.text for event in handler.events] == ["hi"]
    assert handler.events[0].client_ip == "203.0.113.9"


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
async def test_only_post_is_accepted(method: str) -> None:
    bot, handler = make_bot()
    async with client(bot) as http:
        response = await http.request(method, "/", params=query(), content=encode(c2c()))
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert bot.stats["refused:method"] == 1
    assert handler.events == []


async def test_a_body_over_the_limit_is_refused_without_reading_the_rest() -> None:
    bot, handler = make_bot()
    chunks_read = 0

    async def two_mebibytes() -> AsyncIterator[bytes]:
        nonlocal chunks_read
        for _ in range(32):
            chunks_read += 1
            yield b" " * 65536

    async with client(bot) as http:
        response = await http.post("/", params=query(), content=two_mebibytes())
        assert response.status_code == 413
        assert response.json()["ErrorCode"] == 1
        assert chunks_read < 32
        # A declared length over the limit is refused before reading anything.
        big = b" " * (2 * 1024 * 1024)
        response = await http.post("/", params=query(), content=big)
        assert response.status_code == 413
        response = await http.post("/", params=query(), content=encode(c2c()))
        assert response.status_code == 200
    await bot.join()
    assert len(handler.events) == 1
    assert bot.stats["refused:too_large"] == 2


async def test_a_smaller_max_body_is_honoured() -> None:
    bot, _ = make_bot(max_body=100)
    async with client(bot) as http:
        response = await http.post("/", params=query(), content=encode(c2c()))
    assert response.status_code == 413


@pytest.mark.parametrize(
    "query_string",
    [
        urlencode(query()) + "&SdkAppid=1400000000",  # a parameter given twice
        urlencode(query()) + "&Sign=" + "0" * 64,
        urlencode(query()) + "&x=%ff",  # an escape of no UTF-8
        urlencode(query()) + "&" + "&".join(f"p{i}=1" for i in range(100)),
    ],
)
async def test_an_ambiguous_or_malformed_query_is_a_400(query_string: str) -> None:
    bot, handler = make_bot()
    async with client(bot) as http:
        response = await http.post("/?" + query_string, content=encode(c2c()))
    assert response.status_code == 400
    assert bot.stats["refused:query"] == 1
    assert handler.events == []


async def test_a_query_string_that_is_not_ascii_is_a_400() -> None:
    bot, _ = make_bot()
    sent: list[dict[str, Any]] = []
    messages = [{"type": "http.request", "body": encode(c2c()), "more_body": False}]

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "query_string": "SdkAppid=é".encode(), "headers": []}
    await bot(scope, receive, send)
    assert sent[0]["status"] == 400


async def test_a_client_that_disconnects_gets_nothing_and_nothing_is_handled() -> None:
    bot, handler = make_bot()
    messages = [
        {"type": "http.request", "body": b"{", "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "query_string": urlencode(query()).encode(),
        "headers": [],
    }
    await bot(scope, receive, send)
    assert sent == []
    assert handler.events == []


async def test_mounted_in_starlette() -> None:
    bot, handler = make_bot()
    app = Starlette(routes=[Mount("/tencent/callback", app=bot)])
    async with client(app) as http:
        # A mount's own path ends with a slash (Starlette redirects the bare one).
        response = await http.post("/tencent/callback/", params=query(), content=encode(c2c()))
    assert (response.status_code, response.json()) == (200, OK)
    await bot.join()
    assert len(handler.events) == 1


async def test_added_as_a_route_of_fastapi_at_its_exact_path() -> None:
    bot, handler = make_bot()
    app = FastAPI()
    app.add_route("/tencent/callback", bot)
    async with client(app) as http:
        response = await http.post("/tencent/callback", params=query(), content=encode(c2c()))
        refused = await http.post("/tencent/callback", params=query(token="x"), content=b"{}")
    assert (response.status_code, response.json()) == (200, OK)
    assert refused.status_code == 401
    await bot.join()
    assert len(handler.events) == 1


async def test_lifespan_startup_completes_and_shutdown_closes_the_receiver() -> None:
    bot, handler = make_bot()
    handler.gate = asyncio.Event()
    await bot.feed(c2c(), wait=False)
    await handler.started.wait()
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    sent: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    lifespan = asyncio.create_task(bot({"type": "lifespan"}, inbox.get, sent.put))
    await inbox.put({"type": "lifespan.startup"})
    assert await sent.get() == {"type": "lifespan.startup.complete"}
    assert not bot.closed
    await inbox.put({"type": "lifespan.shutdown"})
    await until(lambda: bot.closed)
    assert sent.empty()  # shutdown waits for the running handler
    handler.gate.set()
    assert await sent.get() == {"type": "lifespan.shutdown.complete"}
    await lifespan
    assert bot.stats["handler_ok"] == 1


async def test_a_websocket_is_closed_and_an_unknown_scope_raises() -> None:
    bot, _ = make_bot()
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await bot({"type": "websocket"}, receive, send)
    assert sent == [{"type": "websocket.close", "code": 1008}]
    with pytest.raises(TencentChatError):
        await bot({"type": "telepathy"}, receive, send)


async def test_the_readme_aiohttp_handler_over_dispatch() -> None:
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    bot, handler = make_bot()

    # As the README shows it.
    async def tencent_callback(request: web.Request) -> web.Response:
        status, headers, body = await bot.dispatch(request.query, await request.read())
        return web.Response(status=status, headers=headers, body=body)

    app = web.Application(client_max_size=bot.max_body)
    app.router.add_post("/tencent/callback", tencent_callback)

    async with TestClient(TestServer(app)) as http:
        response = await http.post("/tencent/callback", params=query(), data=encode(c2c()))
        assert response.status == 200
        assert response.headers["content-type"] == "application/json"
        assert await response.json() == OK
        refused = await http.post("/tencent/callback", params=query(token="x"), data=b"{}")
        assert refused.status == 401
    await bot.join()
    assert len(handler.events) == 1


async def test_the_documented_add_route_answers_the_bare_path_where_a_mount_redirects() -> None:
    bot, handler = make_bot()
    routed = FastAPI()
    routed.add_route("/tencent/callback", bot, methods=["POST"])  # as the docstring shows
    mounted = FastAPI()
    mounted.mount("/tencent/callback", bot)
    params = query()
    async with client(routed) as http:
        response = await http.post("/tencent/callback", params=params, content=encode(c2c()))
        assert (response.status_code, response.json()) == (200, OK)
        assert (await http.get("/tencent/callback", params=params)).status_code == 405
    async with client(mounted) as http:
        response = await http.post("/tencent/callback", params=params, content=encode(c2c("m")))
    # Why not a mount: a redirect is a failed callback, and it echoes the Sign.
    assert response.status_code == 307
    assert params["Sign"] in response.headers["location"]
    await bot.join()
    assert len(handler.events) == 1
