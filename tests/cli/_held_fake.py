"""The fake server with a valve in front: the test can hold requests back and see them held."""

from __future__ import annotations

import asyncio
import queue
import threading
from contextlib import AbstractAsyncContextManager

from tencent_chat_robots.testing import FakeTencentChat
from tencent_chat_robots.testing._app import Receive, Scope, Send
from tencent_chat_robots.testing._serve import serve


class HeldFake(FakeTencentChat):
    """A :class:`FakeTencentChat` that, once told, holds requests of one endpoint unanswered.

    A held request has not reached the fake (its state does not change) until
    :meth:`release`; each one is announced on :attr:`held` as it arrives.
    """

    def __init__(self) -> None:
        super().__init__()
        self.held: queue.Queue[str] = queue.Queue()
        self._valve_lock = threading.Lock()
        self._endpoint: str | None = None
        self._let_through = 0
        self._at_most: int | None = None
        self._released = False
        self._open: tuple[asyncio.AbstractEventLoop, asyncio.Event] | None = None

    def hold(self, endpoint: str, *, after: int, at_most: int | None = None) -> None:
        """Hold the requests of ``endpoint`` after the first ``after`` (``at_most`` of them)."""
        with self._valve_lock:
            self._endpoint, self._let_through, self._at_most = endpoint, after, at_most

    def release(self) -> None:
        """Let every held request through, and hold none from now on."""
        with self._valve_lock:
            self._released = True
            if self._open is not None:
                loop, event = self._open
                loop.call_soon_threadsafe(event.set)

    def serve(self, host: str = "127.0.0.1", port: int = 0) -> AbstractAsyncContextManager[str]:
        return serve(self, host, port)

    def _must_hold(self, endpoint: str) -> asyncio.Event | None:
        """What a request of ``endpoint`` must wait for; None: nothing, it goes on."""
        with self._valve_lock:
            if self._released or endpoint != self._endpoint:
                return None
            if self._let_through > 0:
                self._let_through -= 1
                return None
            if self._at_most is not None:
                if self._at_most == 0:
                    return None
                self._at_most -= 1
            if self._open is None:
                self._open = (asyncio.get_running_loop(), asyncio.Event())
            return self._open[1]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The served ASGI app: the fake's, behind the valve."""
        if scope["type"] == "http":
            event = self._must_hold(scope["path"].removeprefix("/v4/"))
            if event is not None:
                self.held.put(scope["path"])
                await event.wait()
        await self.app(scope, receive, send)
