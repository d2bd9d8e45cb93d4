"""Servers on loopback: a tiny aiohttp app for transport tests, the fake in a thread."""

from __future__ import annotations

import asyncio
import contextlib
import queue
import re
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import attrs
import pytest
from aiohttp import web

from tencent_chat_robots import Region
from tencent_chat_robots.testing import FakeTencentChat

RELEASE = web.AppKey("release", asyncio.Event)


@attrs.frozen
class Seen:
    path: str
    query_string: str
    headers: dict[str, str]
    body: bytes


class Record(list[Seen]):
    """The requests a loopback server saw, in order; awaitable as they arrive."""

    def __init__(self) -> None:
        super().__init__()
        self._arrived = asyncio.Event()

    def append(self, seen: Seen) -> None:
        super().append(seen)
        self._arrived.set()

    async def wait_for(self, count: int) -> None:
        """Until ``count`` requests have arrived."""
        while len(self) < count:
            self._arrived.clear()
            await self._arrived.wait()


async def _ok(_: web.Request) -> web.Response:
    return web.json_response({"ActionStatus": "OK", "ErrorCode": 0, "ErrorInfo": ""})


async def _bad_gateway(_: web.Request) -> web.Response:
    return web.Response(status=502, text="<html><h1>502 Bad Gateway</h1></html>")


async def _slow(request: web.Request) -> web.Response:
    await request.app[RELEASE].wait()  # answers only when the server shuts down
    return await _ok(request)


async def _drop(request: web.Request) -> web.Response:
    assert request.transport is not None
    request.transport.close()  # the connection goes away mid-request
    await request.app[RELEASE].wait()
    return await _ok(request)


async def _broken(request: web.Request) -> web.Response:
    assert request.transport is not None
    # Not HTTP: aiohttp's client raises ClientResponseError, whose text names the URL.
    request.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: nope\r\n\r\n{}")
    request.transport.close()
    await request.app[RELEASE].wait()
    return await _ok(request)


@asynccontextmanager
async def loopback_server() -> AsyncIterator[tuple[str, Record]]:
    """Serve ``/v4/ok/ok``, ``/v4/bad/gateway``, ``/v4/slow/x``, ``/v4/drop/x`` and
    ``/v4/broken/x`` (an answer that is not HTTP); yield the base URL."""
    seen = Record()

    @web.middleware
    async def record(request: web.Request, handler):  # type: ignore[no-untyped-def]
        body = await request.read()
        seen.append(Seen(request.path, request.query_string, dict(request.headers), body))
        return await handler(request)

    app = web.Application(middlewares=[record])
    app[RELEASE] = asyncio.Event()
    app.router.add_post("/v4/ok/ok", _ok)
    app.router.add_post("/v4/bad/gateway", _bad_gateway)
    app.router.add_post("/v4/slow/x", _slow)
    app.router.add_post("/v4/drop/x", _drop)
    app.router.add_post("/v4/broken/x", _broken)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        app[RELEASE].set()
        await runner.cleanup()


def refused_url() -> str:
    """A loopback URL where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@contextlib.contextmanager
def fake_in_thread(fake: FakeTencentChat) -> Iterator[str]:
    """Serve ``fake`` over loopback from a thread of its own; yield its base URL.

    For code under test that runs its own event loop (``asyncio.run`` in a CLI or a
    README example) and so cannot share the test's.
    """
    ready: queue.Queue[str | BaseException] = queue.Queue()
    stop: asyncio.Event | None = None
    loop: asyncio.AbstractEventLoop | None = None

    async def serve() -> None:
        nonlocal stop, loop
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        try:
            async with fake.serve() as base_url:
                ready.put(base_url)
                await stop.wait()
        except BaseException as err:  # surfaced to the test thread below
            ready.put(err)

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    started = ready.get(timeout=30)
    if isinstance(started, BaseException):
        raise started
    try:
        yield started
    finally:
        assert loop is not None
        assert stop is not None
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=30)
        assert not thread.is_alive(), "the fake server did not stop"


@contextlib.contextmanager
def quickstart_fake(monkeypatch: pytest.MonkeyPatch, code: str) -> Iterator[FakeTencentChat]:
    """A quickstart's world on the fake, on loopback: the rooms and group it names, and its
    region's URL pointing there for the test."""
    rooms = re.search(r"range\((\d+)\)", code)
    assert rooms is not None
    fake = FakeTencentChat(sdkappid=1400000000, secret_key="...", admin="administrator")
    fake.create_room("room-test")
    fake.create_live_group("@TGS#a6I4ZUUGO")
    for i in range(int(rooms.group(1))):
        fake.create_room(f"room-{i}")
    with fake_in_thread(fake) as base_url:
        monkeypatch.setattr(Region, "base_url", property(lambda _: base_url))
        yield fake
