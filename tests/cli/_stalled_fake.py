"""The fake server keeping back its answers: the work is done, the client never hears of it."""

from __future__ import annotations

import asyncio
import queue
import threading
from contextlib import AbstractAsyncContextManager
from typing import Any

from tencent_chat_robots.testing import FakeTencentChat
from tencent_chat_robots.testing._app import Message, Receive, Scope, Send
from tencent_chat_robots.testing._serve import serve


class StalledFake(FakeTencentChat):
    """A :class:`FakeTencentChat` that, once told, keeps back its answers to one endpoint.

    A request answered after the first ``after`` of :meth:`stall` is done (its change
    made, its call logged) and announced on :attr:`stalled`, but its answer waits for
    :meth:`release`: as if the client were killed between the server's work and the
    answer.
    """

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.stalled: queue.Queue[str] = queue.Queue()
        self._lock = threading.Lock()
        self._endpoint: str | None = None
        self._answered = 0
        self._released = False
        self._gate: tuple[asyncio.AbstractEventLoop, asyncio.Event] | None = None

    def stall(self, endpoint: str, *, after: int) -> None:
        """Keep back the answers to ``endpoint`` after the first ``after`` of them."""
        with self._lock:
            self._endpoint, self._answered = endpoint, after

    def release(self) -> None:
        """Send every answer kept back, and keep none from now on."""
        with self._lock:
            self._released = True
            if self._gate is not None:
                loop, event = self._gate
                loop.call_soon_threadsafe(event.set)

    def serve(self, host: str = "127.0.0.1", port: int = 0) -> AbstractAsyncContextManager[str]:
        return serve(self, host, port)

    def _must_wait(self, endpoint: str) -> asyncio.Event | None:
        """What the answer to a request of ``endpoint`` waits for; None: nothing."""
        with self._lock:
            if self._released or endpoint != self._endpoint:
                return None
            if self._answered > 0:
                self._answered -= 1
                return None
            if self._gate is None:
                self._gate = (asyncio.get_running_loop(), asyncio.Event())
            return self._gate[1]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The served ASGI app: the fake's, with its answers kept back when told."""
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        endpoint = scope["path"].removeprefix("/v4/")

        async def answer(message: Message) -> None:
            # The first message of the answer: the fake has done the request's work.
            if message["type"] == "http.response.start":
                gate = self._must_wait(endpoint)
                if gate is not None:
                    self.stalled.put(endpoint)
                    await gate.wait()
            await send(message)

        return await self.app(scope, receive, answer)
