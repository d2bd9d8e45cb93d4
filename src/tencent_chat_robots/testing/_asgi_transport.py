"""An SDK :class:`Transport` that calls an ASGI app in-process: no sockets, no httpx."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

import anyio

from .._exceptions import APIConnectionError, APITimeoutError
from .._transport import RawResponse
from ._app import ASGIApp, Message
from ._faults import ConnectionDropped

__all__ = ["ASGIAppTransport"]


class ASGIAppTransport:
    """Implements the SDK transport protocol by awaiting ``app`` directly.

    :class:`ConnectionDropped` from the app, or an app that ends without a complete
    answer, becomes :class:`APIConnectionError`; passing ``timeout`` becomes
    :class:`APITimeoutError`. Any other exception from the app is a bug and propagates.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._closed = False

    # The Transport protocol fixes the ``timeout`` parameter; it is enforced with fail_after.
    async def post(self, url: str, content: bytes, *, timeout: float) -> RawResponse:  # noqa: ASYNC109
        parts = urlsplit(url)
        endpoint = parts.path.removeprefix("/v4/")
        if self._closed:
            raise APIConnectionError("transport is closed", endpoint=endpoint)
        host = parts.hostname or "localhost"
        port = parts.port or (443 if parts.scheme == "https" else 80)
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": parts.scheme or "http",
            "path": unquote(parts.path),
            "raw_path": parts.path.encode("ascii", "replace"),
            "query_string": parts.query.encode("ascii", "replace"),
            "root_path": "",
            "headers": [
                (b"host", parts.netloc.encode("ascii", "replace")),
                (b"content-type", b"application/json"),
                (b"content-length", str(len(content)).encode()),
            ],
            "client": ("127.0.0.1", 50000),
            "server": (host, port),
        }
        request_sent = False
        response_done = anyio.Event()
        status = 0
        chunks: list[bytes] = []

        async def receive() -> Message:
            nonlocal request_sent
            if not request_sent:
                request_sent = True
                return {"type": "http.request", "body": content, "more_body": False}
            # After the request, the only news is the client going away.
            await response_done.wait()
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    response_done.set()

        try:
            with anyio.fail_after(timeout):
                await self.app(scope, receive, send)
        except TimeoutError as err:
            raise APITimeoutError(f"no answer within {timeout} s", endpoint=endpoint) from err
        except ConnectionDropped as err:
            raise APIConnectionError("server closed the connection", endpoint=endpoint) from err
        if not response_done.is_set():
            raise APIConnectionError("server sent no complete answer", endpoint=endpoint)
        return RawResponse(status_code=status, content=b"".join(chunks))

    async def aclose(self) -> None:
        self._closed = True
