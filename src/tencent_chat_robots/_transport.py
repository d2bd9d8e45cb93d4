"""The transport seam: send one POST, get its status and body; and its two adapters.

The default adapter drives a pooled ``aiohttp.ClientSession`` (several times cheaper per
call than plain httpx); the other wraps any ``httpx.AsyncClient`` a user brings, with
its proxies and settings. Both turn transport faults into the SDK's own exceptions and
keep the UserSig out of what they chain.
"""

from __future__ import annotations

import asyncio
from contextlib import AbstractAsyncContextManager
from typing import Protocol

import aiohttp
import attrs
import httpx
from yarl import URL

from ._exceptions import APIConnectionError, APITimeoutError, ClientClosedError, RequestError
from ._redact import install_httpx_log_filter, redact, shows_secret
from ._sentry import strip_sentry_tracing

__all__ = ["AiohttpTransport", "HttpxTransport", "RawResponse", "Transport", "pool_size"]

_JSON_HEADERS = {"Content-Type": "application/json"}


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


def _scrub(err: BaseException, depth: int = 0) -> BaseException:
    """``err`` made safe to chain: no URL with a UserSig in its text, request or causes.

    Its traceback goes too, with its causes': the frames of aiohttp and httpx hold the
    URL in local variables, which error trackers and ``capture_locals`` record.
    """
    err.__traceback__ = None
    if isinstance(err, httpx.RequestError):
        try:
            request = err.request
        except RuntimeError:  # httpx raises this when no request was attached
            pass
        else:
            err.request = httpx.Request(request.method, redact(str(request.url)))
    _redact_notes(err)
    if shows_secret(f"{err!s} {err!r}"):
        return _Scrubbed(f"{type(err).__name__}: {redact(str(err))}")
    if depth < 8:  # an exception chain can loop back on itself
        if err.__cause__ is not None:
            err.__cause__ = _scrub(err.__cause__, depth + 1)
        if err.__context__ is not None:
            err.__context__ = _scrub(err.__context__, depth + 1)
    return err


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


def _connection_error(err: BaseException) -> APIConnectionError:
    detail = redact(str(err)) or type(err).__name__
    sent = not isinstance(err, _NOT_SENT)
    if isinstance(err, _TIMEOUTS):
        return APITimeoutError(f"request timed out ({detail})", request_sent=sent)
    return APIConnectionError(f"connection failed: {detail}", request_sent=sent)


def _failure(err: BaseException, faults: tuple[type[BaseException], ...]) -> BaseException:
    """What ``post`` raises for ``err`` from its HTTP library; raise it outside the except.

    A transport fault (one of ``faults``) becomes :class:`APIConnectionError`. Anything
    else (a cancellation, Ctrl-C, an error of a user's httpx hook or mock) goes on as it
    is, but cut off below the transport, whose frames hold the signed URL; unless its
    text shows a secret: then it becomes a :class:`RequestError` (not retried). What is
    chained is scrubbed.
    """
    if isinstance(err, faults):
        failure: BaseException = _connection_error(err)
    elif isinstance(err, Exception) and shows_secret(f"{err!s} {err!r}"):
        detail = redact(str(err)) or "no details"
        failure = RequestError(f"the HTTP library failed: {type(err).__name__}: {detail}")
    else:
        _redact_notes(err)
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
        self._session = aiohttp.ClientSession(
            connector=connector, headers=_JSON_HEADERS, skip_auto_headers=("User-Agent",)
        )
        strip_sentry_tracing(self._session)  # Sentry's spans and breadcrumbs record the URL
        return self._session

    async def post(self, url: str, content: bytes, *, timeout: float) -> RawResponse:
        session = self._session or self._open()
        client_timeout = self._timeouts.get(timeout)
        if client_timeout is None:
            client_timeout = self._timeouts[timeout] = aiohttp.ClientTimeout(total=timeout)
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
            failure = _failure(err, _AIOHTTP_FAULTS)
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
        install_httpx_log_filter()

    async def post(self, url: str, content: bytes, *, timeout: float) -> RawResponse:
        if self._client.is_closed:  # else httpx raises a bare RuntimeError
            raise _closed("the httpx.AsyncClient given as http_client=")
        failure: BaseException
        try:
            response = await self._client.post(
                url,
                content=content,
                headers=_JSON_HEADERS,
                # Waiting for a pooled connection is not the server being slow.
                timeout=httpx.Timeout(timeout, pool=None),
            )
            return RawResponse(response.status_code, response.content)
        except BaseException as err:
            failure = _failure(err, _HTTPX_FAULTS)
        url = ""  # as in AiohttpTransport.post
        raise failure

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()
