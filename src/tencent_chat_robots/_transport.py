"""The transport seam: send one POST, get its status and body; and its two adapters.

The default adapter drives a pooled ``aiohttp.ClientSession`` (several times cheaper per
call than plain httpx); the other wraps any ``httpx.AsyncClient`` a user brings, with
its proxies and settings. Both turn transport faults into the SDK's own exceptions and
keep the UserSig out of what they chain; their errors name the endpoint and the cause
in plain words, never the query string. Every request says who sends it in its
``User-Agent``.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from functools import cache
from typing import Protocol
from urllib.parse import urlsplit

import aiohttp
import attrs
import httpx
from aiohttp.http_exceptions import HttpProcessingError
from yarl import URL

from ._exceptions import APIConnectionError, APITimeoutError, ClientClosedError, RequestError
from ._redact import install_httpx_log_filter, redact, shows_secret
from ._sentry import strip_sentry_tracing

__all__ = ["AiohttpTransport", "HttpxTransport", "RawResponse", "Transport", "pool_size"]

_JSON_HEADERS = {"Content-Type": "application/json"}
_KEPT_TIMEOUTS = 8  # distinct aiohttp.ClientTimeout objects an AiohttpTransport keeps
# What an httpx.AsyncClient sends unless its user set a User-Agent of their own.
_HTTPX_DEFAULT_AGENT = f"python-httpx/{httpx.__version__}"


@cache
def _user_agent(library: str, version: str) -> str:
    """``tencent-chat-robots/<version> Python/<x.y.z> <library>/<version>``.

    As SDKs do: a server's (or a proxy's) logs then show which SDK and stack sent a
    request, which support needs to tell a client bug from a server one.
    """
    from . import __version__  # here, not at the top: the package imports this module

    python = ".".join(map(str, sys.version_info[:3]))
    return f"tencent-chat-robots/{__version__} Python/{python} {library}/{version}"


def _size(content: bytes) -> str:
    return f"<{len(content)} bytes>"


@attrs.frozen(slots=True)
class RawResponse:
    """What a transport hands back: the HTTP status and the body bytes.

    Its repr shows the body's size only: an error page may echo the signed URL, and
    error trackers repr every local variable.
    """

    status_code: int
    content: bytes = attrs.field(repr=_size)


class Transport(Protocol):
    """Sends one POST and returns its status and body; the SDK's only door to the network.

    Implementations raise :class:`APIConnectionError` (or :class:`APITimeoutError`) for
    faults below HTTP, and must not put the URL's query string in what they raise.
    """

    async def post(self, url: str, content: bytes, *, timeout: float) -> RawResponse: ...

    async def aclose(self) -> None: ...


def pool_size(transport: object) -> int | None:
    """How many requests ``transport`` can have on the wire at once (``None``: no cap)."""
    size = getattr(transport, "max_connections", None)
    return size if isinstance(size, int) and size > 0 else None


class _Scrubbed(Exception):
    """Stands in for a transport error whose text carried the UserSig."""


# How far down an exception chain scrubbing reads; a longer chain is cut there.
_CHAIN_DEPTH = 64


def _scrub(err: BaseException, depth: int = 0, seen: set[int] | None = None) -> BaseException:
    """``err`` made safe to chain: no URL with a UserSig in its text, request or causes.

    Its traceback goes too, with its causes': the frames of aiohttp and httpx hold the
    URL in local variables, which error trackers and ``capture_locals`` record.
    """
    seen = set() if seen is None else seen
    if id(err) in seen:  # a chain that loops back on itself: already scrubbed
        return err
    seen.add(id(err))
    err.__traceback__ = None
    if isinstance(err, httpx.RequestError):
        try:
            request = err.request
        except RuntimeError:  # httpx raises this when no request was attached
            pass
        else:
            err.request = httpx.Request(request.method, redact(str(request.url)))
    _redact_notes(err)
    if shows_secret(_shown(err)):
        return _Scrubbed(f"{type(err).__name__}: {redact(_text(err, str))}")
    if depth < _CHAIN_DEPTH:
        for inner in getattr(err, "exceptions", ()):  # an ExceptionGroup's members
            if isinstance(inner, BaseException):
                _scrub(inner, depth + 1, seen)  # in place: members cannot be replaced
        if err.__cause__ is not None:
            err.__cause__ = _scrub(err.__cause__, depth + 1, seen)
        if err.__context__ is not None:
            err.__context__ = _scrub(err.__context__, depth + 1, seen)
    else:  # cut here, rather than chain what was not read
        err.__cause__ = err.__context__ = None
        err.__suppress_context__ = True
    return err


def _shown(err: BaseException) -> str:
    """All of ``err`` that a tool may print or pickle: its text, its arguments and its
    attributes. Strings are read as plain text: a :class:`SignedURL` hides its value
    from ``repr`` but not from ``str`` or pickle."""
    parts = [_text(err, str), _text(err, repr)]
    for value in (*err.args, *getattr(err, "__dict__", {}).values()):
        parts.append(str.__str__(value) if isinstance(value, str) else _text(value, repr))
    return " ".join(parts)


def _text(value: object, show: Callable[[object], str]) -> str:
    """``show(value)``, or a placeholder if a user's ``__str__``/``__repr__`` fails (it
    must not turn the scrubbing of an error into an error of its own)."""
    try:
        return show(value)
    except Exception:
        return f"<{type(value).__name__} that cannot be shown>"


def _redact_notes(err: BaseException) -> None:
    # Notes (PEP 678) are printed with the traceback and kept in OpenTelemetry's
    # exception events.
    notes = getattr(err, "__notes__", None)
    if isinstance(notes, list):
        redacted = [redact(note) if isinstance(note, str) else note for note in notes]
        setattr(err, "__notes__", redacted)  # noqa: B010 - not declared on Python 3.10


# asyncio.TimeoutError is its own class before Python 3.11.
_TIMEOUTS = (TimeoutError, asyncio.TimeoutError, httpx.TimeoutException)


# Faults before a connection existed: the server cannot have seen the request.
_NOT_SENT: tuple[type[BaseException], ...] = (
    aiohttp.ClientConnectorError,
    getattr(aiohttp, "ConnectionTimeoutError", aiohttp.ClientConnectorError),  # aiohttp 3.10+
    httpx.ConnectError,
    httpx.ConnectTimeout,
)


_CONNECT_TIMEOUTS = (
    httpx.ConnectTimeout,
    getattr(aiohttp, "ConnectionTimeoutError", httpx.ConnectTimeout),  # aiohttp 3.10+
)
# Plain words for aiohttp's body faults: their own texts read like an HTTP answer
# ("<ContentLengthError: 400, message=...>", where 400 is the parser's code).
_PLAIN_FAULTS = {
    "ClientPayloadError": "response body incomplete or malformed",
    "ContentLengthError": "response body shorter than its Content-Length",
    "TransferEncodingError": "response body's chunked encoding cut off or malformed",
    "ContentEncodingError": "response body could not be decompressed",
    "DecompressSizeError": "response body too large once decompressed",
}
_DETAIL_LIMIT = 200  # characters of a fault's own text kept in a message


def _where(url: str) -> tuple[str, str]:
    """``(host, endpoint)`` of ``url`` for an error text: never its query (the UserSig)
    nor a proxy's ``user:password@``; the endpoint is the path after ``/v4/``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "the server", "the request"
    host = parts.netloc.rpartition("@")[2] or "the server"
    return host, parts.path.rpartition("/v4/")[2] or parts.path or "the request"


def _underlying(err: BaseException) -> BaseException:
    """The fault to name: aiohttp wraps its parser's error (the cause) in a
    ClientPayloadError or ClientResponseError, and the OS error in a ClientConnectorError."""
    fault: BaseException = err
    if isinstance(err, (aiohttp.ClientPayloadError, aiohttp.ClientResponseError)):
        for _ in range(4):  # aiohttp may wrap it twice; a chain may loop
            if not isinstance(fault.__cause__, HttpProcessingError):
                break
            fault = fault.__cause__
    elif isinstance(err, aiohttp.ClientConnectorError) and _own_text(err.os_error):
        fault = err.os_error
    return fault


def _own_text(fault: BaseException) -> str:
    if isinstance(fault, (HttpProcessingError, aiohttp.ClientResponseError)):
        # Their str() leads with the parser's code (400), which reads as the server's.
        return f"malformed response: {fault.message}"
    if isinstance(fault, OSError) and isinstance(fault.strerror, str) and fault.strerror:
        return fault.strerror  # without the "[Errno 111]" of its str()
    return str(fault)


def _cause(err: BaseException) -> tuple[str, str]:
    """``(class name, short description)`` of the fault behind ``err``, redacted."""
    fault = _underlying(err)
    name = type(fault).__name__
    text = _PLAIN_FAULTS.get(name) or _own_text(fault)
    # Redacted before it is cut, so that no cut leaves a piece too short to recognise.
    line = redact(text).strip().partition("\n")[0].rstrip(":. ")
    if len(line) > _DETAIL_LIMIT:
        line = line[:_DETAIL_LIMIT] + "..."
    return name, line


def _phase(err: BaseException) -> str:
    """What a time-out interrupted."""
    if isinstance(err, _CONNECT_TIMEOUTS):
        return "could not connect"
    if isinstance(err, httpx.WriteTimeout):
        return "request not fully sent"
    if isinstance(err, httpx.PoolTimeout):
        return "no free connection"
    return "no answer"


def _connection_error(err: BaseException, url: str, timeout: float) -> APIConnectionError:
    host, endpoint = _where(url)
    name, detail = _cause(err)
    sent = not isinstance(err, _NOT_SENT)
    if isinstance(err, _TIMEOUTS):
        cause = f"{name}: {detail}" if detail else name
        message = f"{endpoint} timed out after {timeout:g}s ({_phase(err)}; {cause})"
        return APITimeoutError(redact(message), request_sent=sent)
    cause = f"{detail} ({name})" if detail else name
    message = f"connection to {host} failed for {endpoint}: {cause}"
    return APIConnectionError(redact(message), request_sent=sent)


def _failure(
    err: BaseException,
    faults: tuple[type[BaseException], ...],
    url: str = "",
    timeout: float = 0.0,
) -> BaseException:
    """What ``post`` raises for ``err`` from its HTTP library; raise it outside the except.

    A transport fault (one of ``faults``) becomes :class:`APIConnectionError`, naming
    ``url``'s endpoint (and ``timeout`` if it timed out). Anything else (a cancellation,
    Ctrl-C, an error of a user's httpx hook or mock) goes on as it is, but cut off below
    the transport, whose frames hold the signed URL; unless its text shows a secret:
    then it becomes a :class:`RequestError` (not retried). What is chained is scrubbed.
    """
    if isinstance(err, faults):
        failure: BaseException = _connection_error(err, url, timeout)
    elif isinstance(err, Exception) and shows_secret(_shown(err)):
        detail = redact(_text(err, str)) or "no details"
        where = f" for {_where(url)[1]}" if url else ""  # no url: a bulk item's error
        failure = RequestError(f"the HTTP library failed{where}: {type(err).__name__}: {detail}")
    else:
        _redact_notes(err)
        for inner in getattr(err, "exceptions", ()):  # an ExceptionGroup's members
            if isinstance(inner, BaseException):
                _scrub(inner, 1)
        for link in ("__cause__", "__context__"):
            if getattr(err, link) is not None:
                setattr(err, link, _scrub(getattr(err, link)))
        return err.with_traceback(None)
    failure.__cause__ = _scrub(err)
    return failure


_AIOHTTP_FAULTS = (aiohttp.ClientError, asyncio.TimeoutError, OSError)
_HTTPX_FAULTS = (httpx.RequestError,)  # transport faults and undecodable bodies


def _closed(what: str) -> ClientClosedError:
    return ClientClosedError(f"{what} is closed; nothing was sent")


async def _exchange(request: AbstractAsyncContextManager[aiohttp.ClientResponse]) -> RawResponse:
    # Its own frame, so that the response (whose repr shows the URL) is no local of
    # ``post``'s, whose frame error trackers record.
    async with request as response:
        return RawResponse(response.status, await response.read())


class AiohttpTransport:
    """Default transport: one pooled keep-alive ``aiohttp.ClientSession``.

    ``max_connections`` caps the pool (``None``: no cap; the client bounds requests in
    flight per endpoint itself, so no request waits here for a connection).
    """

    def __init__(self, *, max_connections: int | None = None) -> None:
        self.max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}
        self._closed = False

    def _open(self) -> aiohttp.ClientSession:
        # Made on first use because a session binds to the running event loop; never
        # made again once closed, so a late caller cannot leak a new one.
        if self._closed:
            raise _closed("this transport")
        connector = aiohttp.TCPConnector(limit=self.max_connections or 0, keepalive_timeout=30)
        headers = {**_JSON_HEADERS, "User-Agent": _user_agent("aiohttp", aiohttp.__version__)}
        self._session = aiohttp.ClientSession(connector=connector, headers=headers)
        strip_sentry_tracing(self._session)  # Sentry's spans and breadcrumbs record the URL
        return self._session

    async def post(self, url: str, content: bytes, *, timeout: float) -> RawResponse:
        session = self._session or self._open()
        client_timeout = self._timeouts.get(timeout)
        if client_timeout is None:
            client_timeout = aiohttp.ClientTimeout(total=timeout)
            # The settings' few timeouts are kept; a deadline cuts each attempt's to a
            # value of its own, and keeping those would grow without end.
            if len(self._timeouts) < _KEPT_TIMEOUTS:
                self._timeouts[timeout] = client_timeout
        failure: BaseException
        try:
            # encoded=True: the client built the query itself, so yarl need not re-quote it.
            return await _exchange(
                session.post(
                    URL(url, encoded=True),
                    data=content,
                    timeout=client_timeout,
                    allow_redirects=False,
                )
            )
        except BaseException as err:
            failure = _failure(err, _AIOHTTP_FAULTS, url, timeout)
        # A traceback keeps this frame's last locals. The URL's repr is redacted, but
        # rich's and structlog's tracebacks cut a long string by slicing it (a plain str).
        url = ""
        # Raised outside the except block so the original is not kept as __context__.
        raise failure

    async def aclose(self) -> None:
        self._closed = True
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()


_HTTPX_DEFAULT_POOL = 100  # httpx.Limits() default max_connections


def _httpx_pool_size(client: httpx.AsyncClient) -> int | None:
    # httpx has no public accessor for its pool size; read httpcore's, else assume the
    # default. Knowing it lets the client keep requests from queueing for a connection
    # after their rate permit was taken.
    pool = getattr(getattr(client, "_transport", None), "_pool", None)
    size = getattr(pool, "_max_connections", _HTTPX_DEFAULT_POOL)
    return size if isinstance(size, int) else None


class HttpxTransport:
    """Transport over an ``httpx.AsyncClient``; closes it only if ``owns_client``.

    ``max_connections`` is the client's pool size (read from it, or httpx's default of
    100): the client keeps no more requests than that on the wire at once.
    """

    def __init__(self, client: httpx.AsyncClient, *, owns_client: bool = False) -> None:
        self._client = client
        self._owns_client = owns_client
        self.max_connections = _httpx_pool_size(client)
        self._headers_with_agent = {
            **_JSON_HEADERS,
            "User-Agent": _user_agent("httpx", httpx.__version__),
        }
        install_httpx_log_filter()

    def _headers(self) -> dict[str, str]:
        # Per request, not on the client: a client passed in is the user's, and a
        # User-Agent they set on it (now or later) is theirs to keep; httpx's is replaced.
        configured = self._client.headers.get("User-Agent")
        if configured is None or configured == _HTTPX_DEFAULT_AGENT:
            return self._headers_with_agent
        return _JSON_HEADERS

    async def post(self, url: str, content: bytes, *, timeout: float) -> RawResponse:
        if self._client.is_closed:  # else httpx raises a bare RuntimeError
            raise _closed("the httpx.AsyncClient given as http_client=")
        failure: BaseException
        try:
            response = await self._client.post(
                url,
                content=content,
                headers=self._headers(),
                # Waiting for a pooled connection is not the server being slow.
                timeout=httpx.Timeout(timeout, pool=None),
            )
            return RawResponse(response.status_code, response.content)
        except BaseException as err:
            failure = _failure(err, _HTTPX_FAULTS, url, timeout)
        url = ""  # as in AiohttpTransport.post
        raise failure

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()


def foreign_failure(err: Exception, endpoint: str) -> BaseException:
    """What the request loop raises for an error a transport let through (a user's own
    transport's, or a bug in one): scrubbed as the built-in transports scrub theirs."""
    return _failure(err, (), f"/v4/{endpoint}")
