"""The ASGI shell over :meth:`RobotCallbacks.dispatch`: HTTP callbacks and the lifespan.

Only ``POST`` (else 405). The body is read chunk by chunk and reading stops past
``max_body`` (413, the rest unread, the connection closed). The query string must decode
(ASCII, percent-escapes of UTF-8) and name no parameter twice: which of two ``Sign`` or
``SdkAppid`` values counts is exactly the ambiguity a forger looks for, so it is a 400.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from .._exceptions import TencentChatError
from .._redact import redact
from ._verify import Refusal

if TYPE_CHECKING:
    from ._answers import Answer
    from ._receiver import RobotCallbacks

__all__ = ["serve"]

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_MAX_FIELDS = 64  # Tencent sends seven; more is someone else


async def serve(receiver: RobotCallbacks, scope: Message, receive: Receive, send: Send) -> None:
    """Serve one ASGI connection of ``scope["type"]`` http or lifespan."""
    kind = scope.get("type")
    if kind == "http":
        await _http(receiver, scope, receive, send)
    elif kind == "lifespan":
        await _lifespan(receiver, receive, send)
    elif kind == "websocket":  # mounted under a path a client may open a socket on
        await receive()  # websocket.connect
        await send({"type": "websocket.close", "code": 1008})
    else:  # what the ASGI spec asks of an app given a scope type it does not know
        raise TencentChatError(f"RobotCallbacks does not serve ASGI {kind!r} connections")


async def _http(receiver: RobotCallbacks, scope: Message, receive: Receive, send: Send) -> None:
    if scope.get("method") != "POST":
        refusal = Refusal(405, "method", "only POST is accepted")
        await _send(send, receiver._refuse_request(refusal), {"allow": "POST"})
        return
    too_large = Refusal(413, "too_large", "the body is too large")
    close = {"connection": "close"}  # the rest of the body is left unread
    if _declared_length(scope) > receiver.max_body:
        await _send(send, receiver._refuse_request(too_large), close)
        return
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message.get("type") == "http.disconnect":
            return  # nobody to answer
        chunk = bytes(message.get("body", b""))
        size += len(chunk)
        if size > receiver.max_body:
            await _send(send, receiver._refuse_request(too_large), close)
            return
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    query = _query(scope)
    if isinstance(query, Refusal):
        await _send(send, receiver._refuse_request(query))
        return
    await _send(send, await receiver.dispatch(query, b"".join(chunks)))


def _declared_length(scope: Message) -> int:
    for name, value in scope.get("headers", ()):
        if bytes(name).lower() == b"content-length" and bytes(value).isdigit():
            # More digits than any body has: not for int() to chew on.
            return int(value) if len(value) <= 18 else 10**18
    return 0


def _query(scope: Message) -> dict[str, str] | Refusal:
    try:
        pairs = parse_qsl(
            bytes(scope.get("query_string", b"")).decode("ascii"),
            keep_blank_values=True,
            encoding="utf-8",
            errors="strict",
            max_num_fields=_MAX_FIELDS,
        )
    except ValueError:  # not ASCII, an escape of no UTF-8, too many fields
        return Refusal(400, "query", "the query string is malformed")
    query = dict(pairs)
    if len(query) != len(pairs):
        return Refusal(400, "query", "a query parameter is given twice")
    return query


async def _send(send: Send, answer: Answer, extra: dict[str, str] | None = None) -> None:
    status, headers, body = answer
    fields = {**headers, **(extra or {}), "content-length": str(len(body))}
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (name.encode("latin-1"), value.encode("latin-1")) for name, value in fields.items()
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receiver: RobotCallbacks, receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message.get("type") == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message.get("type") == "lifespan.shutdown":
            try:
                await receiver.aclose()
            except Exception as error:
                failed = {"type": "lifespan.shutdown.failed", "message": redact(str(error))}
                await send(failed)
                return
            await send({"type": "lifespan.shutdown.complete"})
            return
