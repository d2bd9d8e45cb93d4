"""Acceptance: the secret key and the admin UserSig never reach Sentry, OpenTelemetry,
logs, or the frame locals a traceback records.

Tencent takes the admin UserSig in the query string (``usersig=...``), so any tool that
records a request URL, or the local variables of a frame holding one, copies it into a
third-party system. Each test runs one call through a loopback server, captures what
one tool recorded, and searches every captured byte for the secret key and every
UserSig the server received: raw, percent-encoded, and their first 40 characters (a
truncated copy). The matrix is failure kind x credential x transport x tool.

The test's own frames must hold no secret: the secrets are module constants (globals,
not frame locals), and the objects the test keeps (the server's record, the client)
have reprs that show none.

The loopback server speaks HTTP over plain asyncio streams, not ``aiohttp.web``: an
``aiohttp.web`` server in this process would itself be recorded by Sentry's aiohttp
integration (its server transactions carry the query string it received) and would log
the request lines on the ``aiohttp`` loggers, finds that are the test's, not the SDK's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import pickle
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any
from urllib.parse import quote

import attrs
import httpx
import pytest
import sentry_sdk
import sentry_sdk.transport
import structlog.tracebacks
from opentelemetry import trace
from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.trace import Status, StatusCode

from tencent_chat_robots import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    BadResponseError,
    InternalServerError,
    NotFoundError,
    TencentChat,
    TencentChatError,
    ValidationError,
    generate_usersig,
)

from ._leak_search import RAW, SecretSet, find_secrets, leak_report
from .conftest import ADMIN, SDKAPPID, SECRET_KEY, OTel

pytestmark = pytest.mark.usefixtures("no_backoff")

# -- the secrets: module constants, never frame locals ---------------------------------

KEY = SECRET_KEY
# A lone surrogate cannot be encoded; the random hex before it is what a find shows.
SURROGATE_KEY = os.urandom(24).hex() + "\ud800"
FIXED_USERSIG = generate_usersig(SDKAPPID, SECRET_KEY, ADMIN)
SENTRY_DSN = "http://public@127.0.0.1:9/1"


def secrets_sent_to(server: LoopbackServer | None) -> SecretSet:
    """The module's secrets, and every UserSig ``server`` received."""
    secrets = SecretSet()
    secrets.add("secret key", KEY)
    secrets.add("surrogate secret key", SURROGATE_KEY)
    secrets.add("fixed UserSig", FIXED_USERSIG)
    for number, usersig in enumerate(server.usersigs() if server else [], start=1):
        secrets.add(f"UserSig sent #{number}", usersig)
    return secrets


def assert_no_leak(tool: str, captured: object, server: LoopbackServer | None) -> None:
    finds = find_secrets(captured, secrets_sent_to(server))
    assert not finds, leak_report(tool, finds)


# -- the loopback server -----------------------------------------------------------------

WARM_UP_PATH = "/v4/openim_robot_http_svc/get_all_robots"


@attrs.define(repr=False)
class LoopbackServer:
    """What the server received: each request's target (path and query)."""

    failure: str
    base_url: str = ""
    targets: list[str] = attrs.field(factory=list)

    def __repr__(self) -> str:  # pytest's frames hold it: no query strings in here
        return f"LoopbackServer({self.failure!r}, {len(self.targets)} requests)"

    def usersigs(self) -> list[str]:
        """Every distinct ``usersig`` value received, exactly as sent."""
        found: list[str] = []
        for target in self.targets:
            for pair in target.partition("?")[2].split("&"):
                name, _, value = pair.partition("=")
                if name == "usersig" and value not in found:
                    found.append(value)
        return found

    def failing_call_requests(self) -> int:
        return sum(not target.startswith(WARM_UP_PATH + "?") for target in self.targets)


# An answer: the bytes to write back, or None to close the connection unanswered.
Answer = Callable[[str, asyncio.Event], Awaitable[bytes | None]]


def _http(status: str, body: bytes, content_type: str = "application/json") -> bytes:
    head = f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


def _envelope(code: int, info: str = "", **fields: Any) -> bytes:
    status = "OK" if code == 0 else "FAIL"
    body = {"ActionStatus": status, "ErrorCode": code, "ErrorInfo": info, "RequestId": "rid-1"}
    return _http("200 OK", json.dumps({**body, **fields}).encode())


async def answer_ok(target: str, released: asyncio.Event) -> bytes | None:
    return _envelope(0)


async def answer_not_found(target: str, released: asyncio.Event) -> bytes | None:
    return _envelope(100004, "room does not exist")


async def answer_bad_gateway(target: str, released: asyncio.Event) -> bytes | None:
    page = "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
    return _http("502 Bad Gateway", page.encode(), "text/html")


async def answer_bad_gateway_echoing(target: str, released: asyncio.Event) -> bytes | None:
    # A proxy's error page that echoes the request: as text, and percent-encoded in a link.
    page = (
        f"<html><h1>502 Bad Gateway</h1><p>POST {target}</p>"
        f'<a href="/retry?next={quote(target, safe="")}">retry</a></html>'
    )
    return _http("502 Bad Gateway", page.encode(), "text/html")


async def answer_nothing_and_drop(target: str, released: asyncio.Event) -> bytes | None:
    return None


async def answer_never(target: str, released: asyncio.Event) -> bytes | None:
    await released.wait()  # the server shuts down first
    return None


async def answer_usersig_expired(target: str, released: asyncio.Event) -> bytes | None:
    return _envelope(70001, "usersig expired")


async def answer_internal_error(target: str, released: asyncio.Event) -> bytes | None:
    return _envelope(100001, "internal server error")


async def _read_request(reader: asyncio.StreamReader) -> str | None:
    """The target of the next request on the connection; None when the client is gone."""
    try:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        length = 0
        for line in head.split("\r\n")[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        await reader.readexactly(length)
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    return head.split(" ", 2)[1]


@contextlib.asynccontextmanager
async def serve(failure: str, answer: Answer) -> AsyncIterator[LoopbackServer]:
    """Serve on loopback: the warm-up endpoint answers OK, every other one ``answer``."""
    record = LoopbackServer(failure)
    released = asyncio.Event()
    connections: dict[asyncio.Task[Any], asyncio.StreamWriter] = {}

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        connections[task] = writer
        try:
            while (target := await _read_request(reader)) is not None:
                record.targets.append(target)
                if target.startswith(WARM_UP_PATH + "?"):
                    response: bytes | None = _envelope(0, Robot_Account=["@RBT#1"])
                else:
                    response = await answer(target, released)
                if response is None:
                    break
                writer.write(response)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()
            connections.pop(task, None)

    server = await asyncio.start_server(connection, "127.0.0.1", 0)
    record.base_url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        yield record
    finally:
        server.close()
        released.set()
        for writer in connections.values():
            writer.close()  # an idle keep-alive connection: its reader sees the end
        await asyncio.gather(*connections, return_exceptions=True)
        await server.wait_closed()


# -- failure kinds ------------------------------------------------------------------------


class AppError(Exception):
    """The application's own failure right after a successful call."""


def _app_error_after(chat: TencentChat, result: object) -> AppError:
    # Its frame holds the client and the call's result, as an application's would.
    try:
        raise AppError(f"the app failed after the call returned {result!r}")
    except AppError as err:
        return err


def _add_robot(chat: TencentChat) -> Awaitable[object]:
    return chat.add_robot_to_room("room-1", "@RBT#1")


def _add_robot_invalid(chat: TencentChat) -> Awaitable[object]:
    return chat.add_robot_to_room("", "bad")


@attrs.frozen
class Failure:
    """How the server answers the call under test, the call, and what it must raise."""

    answer: Answer
    call: Callable[[TencentChat], Awaitable[object]]
    raises: type[BaseException]
    requests: int  # requests of the failing call reaching the server (secret-key client)
    timeout: float = 5.0
    max_retries: int = 1  # every transient failure is tried twice
    requests_with_fixed_usersig: int | None = None  # if not ``requests``


FAILURES = {
    "success": Failure(answer_ok, _add_robot, AppError, 1),
    "vendor_error": Failure(answer_not_found, _add_robot, NotFoundError, 1),
    "bad_gateway_html": Failure(answer_bad_gateway, _add_robot, BadResponseError, 2),
    "gateway_page_echoing_url": Failure(
        answer_bad_gateway_echoing, _add_robot, BadResponseError, 2
    ),
    "dropped_connection": Failure(answer_nothing_and_drop, _add_robot, APIConnectionError, 2),
    # Not retried: each attempt waits the whole timeout. The server runs in the test's own
    # event loop, so a loop stalled past the timeout (a loaded CI machine stalled 0.2 s)
    # would end the call before the server read it: 1 s keeps the request counted.
    "timeout": Failure(answer_never, _add_robot, APITimeoutError, 1, timeout=1.0, max_retries=0),
    # A secret-key client signs anew and retries once; a fixed UserSig cannot be renewed.
    "expired_usersig": Failure(
        answer_usersig_expired, _add_robot, AuthenticationError, 2, requests_with_fixed_usersig=1
    ),
    "retried_internal_error": Failure(answer_internal_error, _add_robot, InternalServerError, 2),
    "invalid_call": Failure(answer_ok, _add_robot_invalid, ValidationError, 0),
}


async def outcome(chat: TencentChat, failure: Failure) -> BaseException:
    """The SDK's error, or the app's own right after a successful call."""
    try:
        # Only the call under test gets the failure's timeout: the calls before it must
        # succeed, and a 0.2 s connect on a loaded machine may not.
        result = await failure.call(chat.with_options(timeout=failure.timeout))
    except TencentChatError as err:
        return err
    return _app_error_after(chat, result)


@contextlib.asynccontextmanager
async def open_chat(
    base_url: str, credential: str, transport: str, failure: Failure
) -> AsyncIterator[TencentChat]:
    async with contextlib.AsyncExitStack() as stack:
        http_client = None
        if transport == "httpx":
            http_client = await stack.enter_async_context(httpx.AsyncClient())
        chat = TencentChat(
            SDKAPPID,
            KEY if credential == "secret_key" else None,
            usersig=FIXED_USERSIG if credential == "usersig" else None,
            admin=ADMIN,
            base_url=base_url,
            http_client=http_client,
            max_retries=failure.max_retries,
        )
        stack.push_async_callback(chat.aclose)
        yield chat


# Construction failures: module-level functions, so no frame holds a secret in a local.
def _zero_timeout(http_client: httpx.AsyncClient | None) -> TencentChat:
    return TencentChat(sdkappid=SDKAPPID, secret_key=KEY, timeout=0, http_client=http_client)


def _surrogate_key(http_client: httpx.AsyncClient | None) -> TencentChat:
    return TencentChat(sdkappid=SDKAPPID, secret_key=SURROGATE_KEY, http_client=http_client)


def _key_and_usersig(http_client: httpx.AsyncClient | None) -> TencentChat:
    return TencentChat(SDKAPPID, KEY, usersig=FIXED_USERSIG, http_client=http_client)


CONSTRUCTIONS = {
    "zero_timeout": _zero_timeout,
    "surrogate_key": _surrogate_key,
    "key_and_usersig": _key_and_usersig,
}


def construction_error(construction: str, transport: str) -> ValidationError:
    http_client = httpx.AsyncClient() if transport == "httpx" else None
    try:
        CONSTRUCTIONS[construction](http_client)
    except ValidationError as err:
        return err
    raise AssertionError(f"{construction}: TencentChat(...) did not raise ValidationError")


def exception_chain(err: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    stack = [err]
    while stack:
        current = stack.pop()
        if id(current) not in seen:
            seen.add(id(current))
            yield current
            stack += [e for e in (current.__cause__, current.__context__) if e is not None]


# -- the tools ------------------------------------------------------------------------------


class Tool:
    """One tool watching a call: ``watch()`` wraps it, ``capture(err)`` records the error,
    ``collected()`` is everything the tool recorded, as a tree to search."""

    name = "tool"

    @contextlib.contextmanager
    def watch(self) -> Iterator[None]:
        yield

    def after_first_call(self) -> None:
        """Called once the client has made its first (successful) call."""

    def capture(self, err: BaseException) -> None:
        raise NotImplementedError

    def capture_while_open(self, err: BaseException) -> None:
        """Called with the error while the client is still open (a long-lived client)."""
        self.capture(err)

    def capture_after_close(self, err: BaseException) -> None:
        """Called once the error has left ``async with TencentChat(...)``."""

    def collected(self) -> object:
        raise NotImplementedError

    def __repr__(self) -> str:  # pytest's frames hold it
        return f"<{self.name}>"


class MemorySentryTransport(sentry_sdk.transport.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.envelopes: list[Any] = []

    def capture_envelope(self, envelope: Any) -> None:
        self.envelopes.append(envelope)


class SentryTool(Tool):
    """Sentry with its default integrations (aiohttp, httpx, logging, stdlib...)."""

    def __init__(
        self, name: str, *, late: bool = False, after_close: bool = False, **options: Any
    ) -> None:
        self.name = name
        self.late = late
        self.after_close = after_close
        self.options = options
        self.transport = MemorySentryTransport()
        self.scopes = contextlib.ExitStack()
        if not late:
            self._init()  # as a web service does: before any client exists

    def _init(self) -> None:
        sentry_sdk.init(dsn=SENTRY_DSN, transport=self.transport, **self.options)

    def _enter(self) -> None:
        scope = self.scopes.enter_context(sentry_sdk.isolation_scope())
        scope.clear_breadcrumbs()  # nothing from earlier tests
        self.scopes.enter_context(sentry_sdk.start_transaction(name="t"))

    @contextlib.contextmanager
    def watch(self) -> Iterator[None]:
        with self.scopes:
            if not self.late:
                self._enter()
            yield

    def after_first_call(self) -> None:
        if self.late:
            self._init()
            self._enter()

    def capture(self, err: BaseException) -> None:
        sentry_sdk.capture_exception(err)

    def capture_while_open(self, err: BaseException) -> None:
        if not self.after_close:
            self.capture(err)

    def capture_after_close(self, err: BaseException) -> None:
        if self.after_close:
            self.capture(err)

    def collected(self) -> object:
        sentry_sdk.flush()
        envelopes = [
            {
                "headers": envelope.headers,
                "items": [
                    {
                        "type": item.type,
                        "headers": item.headers,
                        "payload": item.payload.json
                        if item.payload.json is not None
                        else item.get_bytes(),
                    }
                    for item in envelope.items
                ],
            }
            for envelope in self.transport.envelopes
        ]
        assert envelopes, "Sentry sent nothing: the search would be vacuous"
        raw = [envelope.serialize() for envelope in self.transport.envelopes]
        return {"envelopes": envelopes, RAW: raw}

    def close(self) -> None:
        sentry_sdk.get_client().close()
        sentry_sdk.get_global_scope().set_client(None)


@pytest.fixture
def sentry_traced() -> Iterator[SentryTool]:
    tool = SentryTool("sentry (traces_sample_rate=1.0)", traces_sample_rate=1.0)
    yield tool
    tool.close()


@pytest.fixture
def sentry_default() -> Iterator[SentryTool]:
    tool = SentryTool("sentry (defaults, no tracing)")
    yield tool
    tool.close()


@pytest.fixture
def sentry_after_close() -> Iterator[SentryTool]:
    tool = SentryTool(
        "sentry (capture after the client closed)", after_close=True, traces_sample_rate=1.0
    )
    yield tool
    tool.close()


@pytest.fixture
def sentry_late() -> Iterator[SentryTool]:
    tool = SentryTool("sentry (init after the first call)", late=True, traces_sample_rate=1.0)
    yield tool
    tool.close()


class OTelTool(Tool):
    """OpenTelemetry's SDK with the stock aiohttp-client and httpx instrumentations."""

    name = "opentelemetry"

    def __init__(self, sdk: OTel) -> None:
        self.sdk = sdk
        self.span: Any = None

    @contextlib.contextmanager
    def watch(self) -> Iterator[None]:
        with trace.get_tracer("app").start_as_current_span("t") as span:
            self.span = span
            yield

    def capture(self, err: BaseException) -> None:
        self.span.record_exception(err)
        self.span.set_status(Status(StatusCode.ERROR, f"{type(err).__name__}: {err}"))

    def collected(self) -> object:
        spans = self.sdk.spans()
        data = self.sdk.reader.get_metrics_data()  # what this test measured (since reset)
        assert spans, "no span was recorded: the search would be vacuous"
        return {
            "spans": [
                {
                    "name": span.name,
                    "attributes": dict(span.attributes or {}),
                    "events": [
                        {"name": event.name, "attributes": dict(event.attributes or {})}
                        for event in span.events
                    ],
                    "links": [dict(link.attributes or {}) for link in span.links],
                    "status": span.status.description,
                    "resource": dict(span.resource.attributes),
                }
                for span in spans
            ],
            "metrics": [
                {
                    "name": metric.name,
                    "resource": dict(resource_metrics.resource.attributes),
                    "points": [
                        {
                            "attributes": dict(point.attributes or {}),
                            "exemplars": [
                                dict(exemplar.filtered_attributes or {})
                                for exemplar in getattr(point, "exemplars", None) or ()
                            ],
                        }
                        for point in metric.data.data_points
                    ],
                }
                for resource_metrics in (data.resource_metrics if data else [])
                for scope_metrics in resource_metrics.scope_metrics
                for metric in scope_metrics.metrics
            ],
            RAW: [span.to_json() for span in spans] + [data.to_json() if data else ""],
        }


@pytest.fixture
def opentelemetry(otel: OTel) -> Iterator[OTelTool]:
    """conftest's ``otel``: the process's global providers (set once), reset for this test."""
    # Before the client exists: aiohttp's instrumentation hooks sessions made from now on.
    AioHttpClientInstrumentor().instrument()
    HTTPXClientInstrumentor().instrument()
    yield OTelTool(otel)
    HTTPXClientInstrumentor().uninstrument()
    AioHttpClientInstrumentor().uninstrument()


class TracebackLocalsTool(Tool):
    """``traceback.TracebackException(capture_locals=True)``: every frame's locals, chained."""

    name = "traceback (capture_locals=True)"
    tree: object = None

    def capture(self, err: BaseException) -> None:
        whole = traceback.TracebackException.from_exception(err, capture_locals=True)
        chain = []
        for exc in exception_chain(err):
            summary = traceback.TracebackException.from_exception(exc, capture_locals=True)
            frames = [
                {"function": frame.name, "line": frame.line, "locals": frame.locals}
                for frame in summary.stack
            ]
            chain.append({"type": type(exc).__name__, "frames": frames})
        self.tree = {"chain": chain, RAW: "".join(whole.format())}

    def collected(self) -> object:
        return self.tree


@pytest.fixture
def traceback_locals() -> TracebackLocalsTool:
    return TracebackLocalsTool()


class StructlogLocalsTool(Tool):
    """structlog's ``ExceptionDictTransformer(show_locals=True)``, as a JSON renderer shows it."""

    name = "structlog (show_locals=True)"
    tree: object = None

    def capture(self, err: BaseException) -> None:
        # No truncation: a secret cut off at 80 characters by luck is still a leak.
        transform = structlog.tracebacks.ExceptionDictTransformer(
            show_locals=True, locals_max_string=100_000
        )
        stacks = transform((type(err), err, err.__traceback__))
        self.tree = {
            "stacks": stacks,
            RAW: {"json": json.dumps(stacks, default=str), "repr": repr(stacks)},
        }

    def collected(self) -> object:
        return self.tree


@pytest.fixture
def structlog_locals() -> StructlogLocalsTool:
    return StructlogLocalsTool()


class ErrorObjectTool(Tool):
    """The error itself: repr, str, args, ``vars()`` of each chained one, and its pickle."""

    name = "the error object"
    tree: object = None

    def capture(self, err: BaseException) -> None:
        self.tree = {
            "chain": [
                {
                    "type": type(exc).__name__,
                    "repr": repr(exc),
                    "str": str(exc),
                    "args": repr(exc.args),
                    "vars": {name: repr(value) for name, value in vars(exc).items()},
                }
                for exc in exception_chain(err)
            ],
            "pickle": pickle.dumps(err),
        }

    def collected(self) -> object:
        return self.tree


@pytest.fixture
def error_object() -> ErrorObjectTool:
    return ErrorObjectTool()


class LogsTool(Tool):
    """Every record of every logger at DEBUG, and the app logging the error with exc_info."""

    name = "logging (DEBUG, every logger)"

    def __init__(self, caplog: pytest.LogCaptureFixture) -> None:
        self.caplog = caplog
        caplog.set_level(logging.DEBUG)  # the root logger: every library's records reach it
        for name in ("httpx", "httpcore", "aiohttp", "asyncio", "tencent_chat_robots"):
            caplog.set_level(logging.DEBUG, logger=name)

    def capture(self, err: BaseException) -> None:
        logging.getLogger("app").error("the call failed: %s", err, exc_info=err)

    def collected(self) -> object:
        formatter = logging.Formatter()
        return {
            "records": [
                {
                    "logger": record.name,
                    "message": record.getMessage(),
                    "exception": formatter.formatException(record.exc_info)
                    if record.exc_info
                    else "",
                    "fields": {name: repr(value) for name, value in vars(record).items()},
                }
                for record in self.caplog.records
            ]
        }


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> LogsTool:
    return LogsTool(caplog)


# Tools that capture an error (each one a fixture above); the call tests add three more.
ERROR_TOOLS = [
    "sentry_traced",
    "sentry_default",
    "traceback_locals",
    "structlog_locals",
    "error_object",
    "logs",
]
CALL_TOOLS = [*ERROR_TOOLS, "sentry_after_close", "sentry_late", "opentelemetry"]


@pytest.fixture
def tool(request: pytest.FixtureRequest) -> Tool:
    """The tool fixture named by the test's parameter."""
    found = request.getfixturevalue(request.param)
    assert isinstance(found, Tool)
    return found


@pytest.fixture
async def server(request: pytest.FixtureRequest) -> AsyncIterator[LoopbackServer]:
    """A loopback server answering as the failure kind named by the test's parameter."""
    async with serve(request.param, FAILURES[request.param].answer) as running:
        yield running


# -- the matrix ---------------------------------------------------------------------------


def _call_cases() -> Iterator[Any]:
    for failure in FAILURES:
        for credential in ("secret_key", "usersig"):
            if failure == "timeout" and credential == "usersig":
                continue  # the slowest case; the fixed UserSig meets every other kind
            for transport in ("aiohttp", "httpx"):
                for name in CALL_TOOLS:
                    yield pytest.param(
                        failure,
                        credential,
                        transport,
                        name,
                        id=f"{failure}-{credential}-{transport}-{name}",
                    )


@pytest.mark.parametrize(
    ("server", "credential", "transport", "tool"), list(_call_cases()), indirect=["server", "tool"]
)
async def test_call_leaks_no_secret(
    server: LoopbackServer, credential: str, transport: str, tool: Tool
) -> None:
    failure = FAILURES[server.failure]
    with tool.watch():
        async with open_chat(server.base_url, credential, transport, failure) as chat:
            assert await chat.get_all_robots() == ["@RBT#1"]  # the client has sent a UserSig
            tool.after_first_call()
            err = await outcome(chat, failure)
            tool.capture_while_open(err)
        tool.capture_after_close(err)
    assert isinstance(err, failure.raises), repr(err)
    expected = failure.requests
    if credential == "usersig" and failure.requests_with_fixed_usersig is not None:
        expected = failure.requests_with_fixed_usersig
    assert server.failing_call_requests() == expected
    assert server.usersigs(), "no UserSig reached the server: nothing to search for"
    assert_no_leak(tool.name, tool.collected(), server)


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
@pytest.mark.parametrize("tool", ERROR_TOOLS, indirect=True)
@pytest.mark.parametrize("construction", list(CONSTRUCTIONS))
def test_construction_leaks_no_secret(construction: str, tool: Tool, transport: str) -> None:
    with tool.watch():
        err = construction_error(construction, transport)
        tool.capture(err)
    assert_no_leak(tool.name, tool.collected(), None)


@pytest.mark.parametrize("construction", list(CONSTRUCTIONS))
def test_half_made_client_can_be_shown(construction: str) -> None:
    """A tracker shows ``self`` of the ``__init__`` that failed: its repr must work."""
    err = construction_error(construction, "aiohttp")
    formatted = "".join(
        traceback.TracebackException.from_exception(err, capture_locals=True).format()
    )
    half_made = [
        frame.f_locals["self"]
        for frame, _ in traceback.walk_tb(err.__traceback__)
        if frame.f_code.co_name == "__init__"
        and isinstance(frame.f_locals.get("self"), TencentChat)
    ]
    assert len(half_made) == 1, "no frame of TencentChat.__init__ in the traceback"
    shown = repr(half_made[0])
    assert shown.startswith("TencentChat("), shown
    assert_no_leak("repr of a half-made client", {"repr": shown, "traceback": formatted}, None)


PLANTED = "eJyrVipJrSjJzEtXsjIwMDQ2MzLTUcpOLUnNA*Aj-9Yz_" * 3  # a UserSig-like string


def test_the_search_finds_every_form_and_masks_it() -> None:
    """The search itself: a planted copy in each form is found where it is, never shown."""
    secrets = SecretSet()
    secrets.add("planted", PLANTED)
    captured = {
        "frames": [{"function": "post", "vars": {"url": f"/v4/x?usersig={PLANTED}&random=1"}}],
        "link": f"/retry?next={quote('usersig=' + PLANTED, safe='')}",
        "truncated": PLANTED[:50] + "...",
        "body": f"<p>{PLANTED}</p>".encode(),
        RAW: f"all of it again: {PLANTED}",
    }
    finds = find_secrets(captured, secrets)
    assert [(find.path, find.form) for find in finds] == [
        ("frames[0](post).vars.url", "raw"),
        ("link", "percent-encoded"),
        ("truncated", "first 40 chars"),
        ("body", "raw"),
    ]
    report = leak_report("a tool", finds)
    assert PLANTED[:40] not in report
    assert "usersig=<planted>&random=1" in report
