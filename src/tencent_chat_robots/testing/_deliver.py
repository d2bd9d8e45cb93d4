"""Delivering the fake's callbacks to the app's webhook, as Tencent Chat does (section 1).

Each callback is a ``POST`` of the event's JSON body to
``{url}?SdkAppid=&CallbackCommand=&contenttype=json&ClientIP=&OptPlatform=`` and, when a
token is set, ``&Sign=&RequestTime=``, ``Sign`` being ``hex(sha256(token +
RequestTime))`` and ``RequestTime`` the wall clock's Unix seconds when it is sent. The
target is a URL (a keep-alive ``httpx.AsyncClient``) or an ASGI app (called in-process
through ``httpx.ASGITransport``).

What counts as delivered: HTTP 200 with a JSON body, within ``timeout`` (Chat's 2 s).
A time-out, a connection failure, another status or a body that is not JSON is a failed
callback, recorded as such. The answer's ``ErrorCode`` is not looked at (the pages: "the
result is ignored"). Failed callbacks are not retried unless ``retry_on_timeout`` says
how many times to send a timed-out one again (at once, same body and ``MsgKey``, a fresh
``RequestTime``): Chat's retry is a console option whose schedule is not documented.
``ClientIP`` is always ``127.0.0.1``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import anyio
import httpx

from ._app import ASGIApp
from ._records import CallbackEvent

__all__ = ["CLIENT_IP", "DEFAULT_CALLBACK_TIMEOUT", "Deliverer", "Delivery", "callback_sign"]

CLIENT_IP = "127.0.0.1"
DEFAULT_CALLBACK_TIMEOUT = 2.0  # "Chat waits 2 seconds for the answer"
_ASGI_BASE = "http://callback.app.invalid"


def callback_sign(token: str, request_time: int | str) -> str:
    """``Sign``: 64 lower-case hex characters of sha256(token + RequestTime)."""
    return hashlib.sha256(f"{token}{request_time}".encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Delivery:
    """One attempt at delivering a callback, and what came back.

    ``outcome``: ``"ok"`` (HTTP 200 with JSON), ``"timeout"``, ``"http_status"`` (another
    status), ``"not_json"`` (200 but not JSON) or ``"connection_error"``. ``status`` is
    ``None`` when nothing came back; ``answer`` the parsed JSON answer, or ``None``.
    ``attempt`` counts from 1 (more with ``retry_on_timeout``); ``elapsed`` is seconds.
    """

    command: str
    url: str
    query: dict[str, str]
    body: dict[str, Any]
    status: int | None
    answer: Any
    outcome: str
    attempt: int
    elapsed: float

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"


@dataclass(frozen=True, slots=True)
class _Target:
    url: str
    client: httpx.AsyncClient
    token: str | None
    timeout: float
    retries: int


class Deliverer:
    """The app's registered callback, the deliveries made to it, and those under way."""

    def __init__(
        self, *, sdkappid: int, lock: threading.Lock, wall_clock: Callable[[], float]
    ) -> None:
        self.sdkappid = sdkappid
        self.lock = lock
        self.wall_clock = wall_clock
        self.deliveries: list[Delivery] = []
        self._target: _Target | None = None
        self._clients: list[httpx.AsyncClient] = []
        self._tasks: set[asyncio.Task[list[Delivery]]] = set()
        # Called after each attempt is recorded (in the event loop).
        self.after_delivery: Callable[[], None] | None = None

    @property
    def has_target(self) -> bool:
        return self._target is not None

    def set_target(
        self,
        target: str | ASGIApp | None,
        *,
        token: str | None,
        path: str,
        timeout: float,
        retry_on_timeout: int,
    ) -> None:
        if target is None:
            self._target = None
            return
        if token is not None and not isinstance(token, str):
            raise TypeError("token must be a string or None")
        if not timeout > 0:
            raise ValueError("timeout must be positive")
        if isinstance(retry_on_timeout, bool) or not isinstance(retry_on_timeout, int):
            raise TypeError("retry_on_timeout must be a whole number")
        if retry_on_timeout < 0:
            raise ValueError("retry_on_timeout must not be negative")
        if isinstance(target, str):
            if not target.startswith(("http://", "https://")):
                raise ValueError("a callback URL starts with http:// or https://")
            if path != "/":
                raise ValueError("path is for an ASGI app; put it in the URL")
            url = target
            client = httpx.AsyncClient(timeout=timeout)
        elif callable(target):
            if not path.startswith("/"):
                raise ValueError("path must start with /")
            url = _ASGI_BASE + path
            transport = httpx.ASGITransport(
                app=target, raise_app_exceptions=False, client=(CLIENT_IP, 40000)
            )
            client = httpx.AsyncClient(transport=transport, timeout=timeout)
        else:
            raise TypeError("the callback target is a URL string or an ASGI app")
        self._clients.append(client)
        self._target = _Target(url, client, token, timeout, retry_on_timeout)

    def schedule(self, events: Iterable[CallbackEvent]) -> None:
        """Deliver ``events`` in the background (called in the event loop, lock not held)."""
        target = self._target
        if target is None:
            return  # no callback URL set: Chat has nowhere to call
        loop = asyncio.get_running_loop()
        for event in events:
            task = loop.create_task(self._deliver(target, event, None))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def deliver(
        self, event: CallbackEvent, *, request_time: int | None = None
    ) -> list[Delivery]:
        """Deliver ``event`` now; every attempt (one, more on time-outs if asked)."""
        target = self._target
        if target is None:
            raise RuntimeError("no callback is set: call fake.set_callback(url_or_app) first")
        return await self._deliver(target, event, request_time)

    async def wait_idle(self) -> None:
        """Wait until no background delivery is under way (new ones included)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def aclose(self) -> None:
        """Cancel background deliveries and close the HTTP clients."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        clients, self._clients = self._clients, []
        self._target = None
        for client in clients:
            await client.aclose()

    async def _deliver(
        self, target: _Target, event: CallbackEvent, request_time: int | None
    ) -> list[Delivery]:
        attempts: list[Delivery] = []
        for attempt in range(1, target.retries + 2):
            delivery = await self._attempt(target, event, request_time, attempt)
            attempts.append(delivery)
            with self.lock:
                self.deliveries.append(delivery)
            if self.after_delivery is not None:
                self.after_delivery()
            if delivery.outcome != "timeout":
                break
        return attempts

    async def _attempt(
        self, target: _Target, event: CallbackEvent, request_time: int | None, attempt: int
    ) -> Delivery:
        query = {
            "SdkAppid": str(self.sdkappid),
            "CallbackCommand": event.command,
            "contenttype": "json",
            "ClientIP": CLIENT_IP,
            "OptPlatform": event.platform,
        }
        if target.token is not None:
            sent_at = str(int(self.wall_clock()) if request_time is None else request_time)
            query["Sign"] = callback_sign(target.token, sent_at)
            query["RequestTime"] = sent_at
        joiner = "&" if "?" in target.url else "?"
        url = f"{target.url}{joiner}{urlencode(query)}"
        content = _encode(event.body)
        status: int | None = None
        answer: Any = None
        started = time.perf_counter()
        try:
            with anyio.fail_after(target.timeout):
                response = await target.client.post(
                    url, content=content, headers={"content-type": "application/json"}
                )
        except (TimeoutError, httpx.TimeoutException):
            outcome = "timeout"
        except httpx.HTTPError:
            outcome = "connection_error"
        else:
            status = response.status_code
            try:
                answer = json.loads(response.content)
            except ValueError:
                outcome = "http_status" if status != 200 else "not_json"
            else:
                outcome = "ok" if status == 200 else "http_status"
        elapsed = time.perf_counter() - started
        return Delivery(
            event.command, url, query, event.body, status, answer, outcome, attempt, elapsed
        )


def _encode(body: dict[str, Any]) -> bytes:
    try:
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    except UnicodeEncodeError:  # a lone surrogate: sent escaped, as JSON allows
        return json.dumps(body, separators=(",", ":")).encode()
