"""Secrets (the secret key, the admin UserSig) never reach reprs, errors or log records."""

from __future__ import annotations

import asyncio
import logging
import pickle
import re
import traceback
from collections.abc import Callable, Iterator
from urllib.parse import quote

import httpx
import pytest
import respx

from tencent_chat_robots import (
    AiohttpTransport,
    APIConnectionError,
    APIError,
    BadResponseError,
    ClientClosedError,
    InternalServerError,
    RawResponse,
    RequestError,
    TencentChat,
    ValidationError,
)
from tencent_chat_robots._models import GetAllRobotsRequest, GetAllRobotsResponse
from tencent_chat_robots._options import CallOptions
from tencent_chat_robots._redact import Secret, SignedURL

from ._servers import loopback_server, refused_url
from .conftest import SDKAPPID, SECRET_KEY, ScriptedTransport, fail, ok

_LEAKED_USERSIG = re.compile(r"usersig=(?!REDACTED)[^&\s]+", re.IGNORECASE)


def _chain(err: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    stack = [err]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        stack += [e for e in (current.__cause__, current.__context__) if e is not None]


def _assert_clean(text: str, usersig: str) -> None:
    assert SECRET_KEY not in text
    assert usersig not in text
    assert not _LEAKED_USERSIG.search(text), text


def _assert_chain_clean(error: BaseException, usersig: str) -> None:
    """Every exception chained to ``error``, and any httpx request it carries, is clean."""
    for err in _chain(error):
        _assert_clean(f"{err!s} {err!r}", usersig)
        if isinstance(err, httpx.RequestError):
            _assert_clean(str(err.request.url), usersig)


def _current_usersig(chat: TencentChat) -> str:
    return chat._sender._usersig.current()


@pytest.fixture
def every_log_record(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)  # the root logger: every library's records propagate here
    for name in ("httpx", "httpcore", "hpack", "aiohttp", "tencent_chat_robots", "asyncio"):
        caplog.set_level(logging.DEBUG, logger=name)  # restored after the test
    return caplog


def _all_logged_text(caplog: pytest.LogCaptureFixture) -> str:
    parts = []
    for record in caplog.records:
        parts.append(record.getMessage())
        if record.exc_info:
            parts.append("".join(traceback.format_exception(*record.exc_info)))
    return "\n".join(parts)


def test_client_repr_hides_key_and_signature() -> None:
    chat = TencentChat(SDKAPPID, SECRET_KEY, base_url="http://h")
    _assert_clean(repr(chat) + str(chat) + repr(chat._sender._usersig), _current_usersig(chat))


async def test_httpx_request_logs_are_redacted(every_log_record: pytest.LogCaptureFixture) -> None:
    async with httpx.AsyncClient() as client:
        chat = TencentChat(
            SDKAPPID, SECRET_KEY, base_url="https://h", http_client=client, rate_limit=None
        )
        with respx.mock() as router:
            router.post(url__startswith="https://h/v4/").mock(
                side_effect=[
                    httpx.Response(200, json=fail(10002)),
                    httpx.Response(200, json=fail(10002)),
                    httpx.Response(200, json={"ActionStatus": "OK", "ErrorCode": 0}),
                ]
            )
            await chat.delete_robot("@RBT#1")
    text = _all_logged_text(every_log_record)
    assert "HTTP Request: POST https://h/v4/openim_robot_http_svc/delete_robot" in text
    assert "usersig=REDACTED" in text
    assert "retrying openim_robot_http_svc/delete_robot" in text
    _assert_clean(text, _current_usersig(chat))


async def test_chained_httpx_connect_error_carries_no_signature(
    every_log_record: pytest.LogCaptureFixture,
) -> None:
    async with httpx.AsyncClient() as client:
        chat = TencentChat(
            SDKAPPID, SECRET_KEY, base_url=refused_url(), http_client=client, max_retries=1
        )
        with pytest.raises(APIConnectionError) as caught:
            await chat.get_all_robots()
    usersig = _current_usersig(chat)
    _assert_chain_clean(caught.value, usersig)
    formatted = "".join(traceback.format_exception(caught.value))
    _assert_clean(formatted, usersig)
    _assert_clean(_all_logged_text(every_log_record), usersig)


async def test_aiohttp_path_logs_and_errors_are_clean(
    every_log_record: pytest.LogCaptureFixture,
) -> None:
    async with (
        loopback_server() as (base, _),
        TencentChat(SDKAPPID, SECRET_KEY, base_url=base, max_retries=0) as chat,
    ):
        with pytest.raises(BadResponseError) as caught:
            await chat.get_all_robots()  # 404 page from the loopback server
    async with TencentChat(SDKAPPID, SECRET_KEY, base_url=refused_url(), max_retries=0) as chat:
        with pytest.raises(APIConnectionError) as refused:
            await chat.get_all_robots()
    usersig = _current_usersig(chat)
    for err in [*_chain(caught.value), *_chain(refused.value)]:
        _assert_clean(f"{err!s} {err!r}", usersig)
    _assert_clean("".join(traceback.format_exception(refused.value)), usersig)
    _assert_clean(_all_logged_text(every_log_record), usersig)


async def test_error_pages_echoing_the_url_are_redacted(
    every_log_record: pytest.LogCaptureFixture,
) -> None:
    def echo(request: object) -> RawResponse:
        return RawResponse(502, f"<html>upstream failed for {request.url}</html>".encode())  # type: ignore[attr-defined]

    transport = ScriptedTransport(answer=echo)
    chat = TencentChat(
        SDKAPPID, SECRET_KEY, base_url="http://h", transport=transport, max_retries=1
    )
    with pytest.raises(BadResponseError) as caught:
        await chat.delete_robot("@RBT#1")
    assert "upstream failed" in caught.value.excerpt
    usersig = _current_usersig(chat)
    _assert_clean(f"{caught.value!s} {caught.value!r} {caught.value.excerpt}", usersig)
    _assert_clean(_all_logged_text(every_log_record), usersig)


def test_api_errors_print_code_endpoint_and_request_id() -> None:
    err = InternalServerError(10002, "Internal error", request_id="Id-1", endpoint="a/b")
    assert str(err) == "error 10002 from a/b: Internal error (request id Id-1)"
    assert "code=10002" in repr(err)


async def test_undecodable_httpx_body_is_typed_and_carries_no_signature() -> None:
    async with httpx.AsyncClient() as client:
        chat = TencentChat(
            SDKAPPID, SECRET_KEY, base_url="https://h", http_client=client, max_retries=0
        )
        with respx.mock() as router:
            router.post(url__startswith="https://h/v4/").mock(
                return_value=httpx.Response(
                    200,
                    headers={"Content-Encoding": "gzip"},
                    stream=httpx.ByteStream(b"not gzip at all"),  # decoded only when read
                )
            )
            with pytest.raises(APIConnectionError) as caught:
                await chat.get_all_robots()
    usersig = _current_usersig(chat)
    _assert_chain_clean(caught.value, usersig)


def test_percent_encoded_signatures_and_server_text_are_redacted() -> None:
    from tencent_chat_robots._base_client import parse_envelope

    echoed = b'{"ErrorCode": 70009, "ActionStatus": "FAIL", "ErrorInfo": "bad usersig=SIG123&x"}'
    with pytest.raises(APIError) as caught:
        parse_envelope(RawResponse(200, echoed), "a/b")
    assert "SIG123" not in str(caught.value)
    assert "SIG123" not in caught.value.info
    page = b"<a href='/v4/a/b?usersig%3DSIG456%26random%3D1'>retry</a>"
    with pytest.raises(BadResponseError) as bad:
        parse_envelope(RawResponse(502, page), "a/b")
    assert "SIG456" not in bad.value.excerpt


async def test_a_broken_answer_on_aiohttp_chains_no_signature() -> None:
    """aiohttp's ClientResponseError for a malformed answer names the signed URL."""
    transport = AiohttpTransport()
    async with loopback_server() as (base, _):
        url = f"{base}/v4/broken/x?sdkappid=1&usersig=SIG-SECRET-123&random=1"
        with pytest.raises(APIConnectionError) as caught:
            await transport.post(url, b"{}", timeout=5)
        await transport.aclose()
    _assert_chain_clean(caught.value, "SIG-SECRET-123")
    assert caught.value.__cause__ is not None  # the cause is kept, scrubbed
    assert "usersig=REDACTED" in str(caught.value) + str(caught.value.__cause__)


def _fault_with_chain(*causes: BaseException) -> httpx.RequestError:
    """An httpx fault caused by ``causes[0]``, itself caused by ``causes[1]``, and so on."""
    fault: BaseException = httpx.ReadError("read failed")
    top = fault
    for cause in causes:
        fault.__cause__ = cause
        fault = cause
    return top  # type: ignore[return-value]


async def _post_failing_with(fault: BaseException) -> APIConnectionError:
    from tencent_chat_robots import HttpxTransport

    def handler(request: httpx.Request) -> httpx.Response:
        raise fault

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        with pytest.raises(APIConnectionError) as caught:
            await HttpxTransport(client).post(
                "http://h/v4/a/b?sdkappid=1&usersig=SIG-SECRET-9&random=1", b"{}", timeout=5
            )
    return caught.value


async def test_a_long_chained_cause_is_scrubbed_to_its_end_and_kept() -> None:
    deepest = OSError("proxy refused http://h/v4/a/b?usersig=SIG-SECRET-9&random=1")
    links = [RuntimeError(f"layer {i}") for i in range(7)]
    error = await _post_failing_with(_fault_with_chain(*links, deepest))
    _assert_chain_clean(error, "SIG-SECRET-9")
    chain = [error.__cause__]
    while chain[-1] is not None:
        chain.append(chain[-1].__cause__)
    assert [str(e) for e in chain[1:-2]] == [f"layer {i}" for i in range(7)]
    replaced = chain[-2]
    # The scrubbed stand-in still says what failed, minus the signature.
    assert "OSError" in str(replaced)
    assert "proxy refused http://h/v4/a/b?usersig=REDACTED&random=1" in str(replaced)


async def test_a_chain_that_loops_back_on_itself_is_scrubbed_and_ends() -> None:
    """Libraries that re-raise can leave cycles through both ``__cause__`` and
    ``__context__``; scrubbing must end and keep the links."""
    top = httpx.ReadError("read failed")
    middle = RuntimeError("middle")
    side = RuntimeError("side")
    secret = OSError("reset while sending /v4/a/b?usersig=SIG-SECRET-9")
    top.__cause__, middle.__cause__ = middle, top  # a cycle of causes
    top.__context__, side.__context__ = side, top  # a cycle of contexts
    middle.__context__ = secret
    error = await _post_failing_with(top)
    _assert_chain_clean(error, "SIG-SECRET-9")
    assert error.__cause__ is top
    assert (top.__cause__, top.__context__) == (middle, side)
    assert (middle.__cause__, side.__context__) == (top, top)
    assert "usersig=REDACTED" in str(middle.__context__)


async def test_a_chained_httpx_error_keeps_its_request_url_redacted() -> None:
    error = await _post_failing_with(httpx.ReadError("read failed"))
    cause = error.__cause__
    assert isinstance(cause, httpx.ReadError)
    assert str(cause.request.url) == "http://h/v4/a/b?sdkappid=1&usersig=REDACTED&random=1"
    assert cause.request.method == "POST"


def test_the_httpx_log_filter_is_installed_once_on_the_httpx_logger(
    monkeypatch: pytest.MonkeyPatch, every_log_record: pytest.LogCaptureFixture
) -> None:
    """As in a fresh process: httpx's own logger has no filter until a transport exists."""
    from tencent_chat_robots import HttpxTransport

    httpx_logger = logging.getLogger("httpx")
    monkeypatch.setattr(httpx_logger, "filters", [])
    client = httpx.AsyncClient()
    HttpxTransport(client)
    HttpxTransport(client)
    assert len(httpx_logger.filters) == 1
    httpx_logger.info("HTTP Request: %s %s", "POST", "https://h/v4/a/b?usersig=SIG-SECRET-9&x=1")
    assert every_log_record.records[-1].getMessage() == (
        "HTTP Request: POST https://h/v4/a/b?usersig=REDACTED&x=1"
    )


def test_a_raw_response_shows_its_size_not_its_body() -> None:
    # An error page may echo the signed URL; tracebacks with locals repr the response.
    from tencent_chat_robots import RawResponse

    response = RawResponse(502, b"<a href='/v4/x?usersig=abc'>retry</a>")
    assert repr(response) == "RawResponse(status_code=502, content=<37 bytes>)"


def _with_locals(error: BaseException) -> str:
    """The whole chain as a traceback that records every frame's local variables."""
    summary = traceback.TracebackException.from_exception(error, capture_locals=True)
    return "".join(summary.format())


def _assert_no_secret(text: str, usersig: str) -> None:
    # Exact values and a truncated copy (locals name things like can_renew_usersig=False,
    # so the usersig= pattern of _assert_clean would misfire here).
    for secret in (SECRET_KEY, usersig, quote(usersig, safe="")):
        assert secret[:40] not in text


async def test_no_frame_of_an_echoing_error_page_holds_the_signature() -> None:
    def echo(request: object) -> RawResponse:
        return RawResponse(502, f"<a href='{request.url}'>retry</a>".encode())  # type: ignore[attr-defined]

    chat = TencentChat(
        SDKAPPID, SECRET_KEY, base_url="http://h", transport=ScriptedTransport(answer=echo)
    )
    with pytest.raises(BadResponseError) as caught:
        await chat.delete_robot("@RBT#1")
    text = _with_locals(caught.value)
    assert "parse_envelope" in text  # the frames are there, with their locals
    _assert_no_secret(text, _current_usersig(chat))


async def test_no_frame_of_a_failed_aiohttp_request_holds_the_signature() -> None:
    async with (
        loopback_server() as (base, _),
        TencentChat(SDKAPPID, SECRET_KEY, base_url=base, max_retries=0) as chat,
    ):
        del _  # the server's record: this frame is in the traceback searched below
        chat._sender._prefix = f"{base}/v4/broken/"  # an answer aiohttp cannot parse
        with pytest.raises(APIConnectionError) as caught:
            await chat._sender.request(
                "x", GetAllRobotsRequest(), GetAllRobotsResponse, CallOptions()
            )
    cause = caught.value.__cause__
    assert cause is not None
    assert cause.__traceback__ is None  # aiohttp's frames hold the URL
    text = _with_locals(caught.value)
    assert "usersig=REDACTED" in text  # the transport's own frame is kept, its URL redacted
    _assert_no_secret(text, _current_usersig(chat))


async def test_no_frame_of_a_failed_httpx_request_holds_the_signature() -> None:
    async with httpx.AsyncClient() as client:
        chat = TencentChat(
            SDKAPPID, SECRET_KEY, base_url=refused_url(), http_client=client, max_retries=0
        )
        with pytest.raises(APIConnectionError) as caught:
            await chat.get_all_robots()
    assert caught.value.__cause__ is not None
    assert caught.value.__cause__.__traceback__ is None  # httpx's frames hold the request
    _assert_no_secret(_with_locals(caught.value), _current_usersig(chat))


async def test_no_frame_of_a_call_cut_off_by_close_holds_the_signature() -> None:
    async with loopback_server() as (base, seen):
        chat = TencentChat(SDKAPPID, SECRET_KEY, base_url=base)
        chat._sender._prefix = f"{base}/v4/slow/"  # answers only when the server stops
        call = asyncio.ensure_future(
            chat._sender.request("x", GetAllRobotsRequest(), GetAllRobotsResponse, CallOptions())
        )
        await seen.wait_for(1)
        del seen  # the server's record: this frame is in the traceback searched below
        await chat.aclose(timeout=0)
        with pytest.raises(ClientClosedError) as caught:
            await call
    assert caught.value.request_sent
    assert caught.value.__context__ is None  # the cancellation is not chained
    _assert_no_secret(_with_locals(caught.value), _current_usersig(chat))


def test_no_frame_of_a_failed_construction_holds_the_key() -> None:
    with pytest.raises(ValidationError) as caught:
        TencentChat(SDKAPPID, SECRET_KEY, timeout=0)
    text = _with_locals(caught.value)
    assert "secret_key = Secret('********')" in text
    assert SECRET_KEY not in text


def test_a_signed_url_is_a_plain_string_with_a_redacted_repr() -> None:
    url = SignedURL("https://h/v4/a/b?sdkappid=1&usersig=s3cr3t&random=1")
    assert url == "https://h/v4/a/b?sdkappid=1&usersig=s3cr3t&random=1"
    assert isinstance(url, str)
    assert repr(url) == "'https://h/v4/a/b?sdkappid=1&usersig=REDACTED&random=1'"
    assert repr(Secret("s3cr3t")) == str(Secret("s3cr3t")) == "Secret('********')"
    with pytest.raises(TypeError, match="a Secret cannot be pickled"):
        pickle.dumps(Secret("s3cr3t"))


# -- Every redaction also knows the live secrets, in any wrapping ----------------------


@pytest.mark.parametrize(
    "wrap",
    [
        lambda sig: f'{{"params": {{"usersig": "{sig}"}}}}',  # an echo service's JSON
        lambda sig: f"usersig\\u003d{sig}",  # Gson's escaped '='
        lambda sig: f"usersig&#61;{sig}",  # an HTML entity
        lambda sig: f"usersig%253D{quote(quote(sig, safe=''), safe='')}",  # encoded twice
        lambda sig: f"token {sig[7:61]} rejected",  # a parser's window of raw bytes
    ],
    ids=["json", "gson", "html-entity", "double-encoded", "cut"],
)
async def test_an_error_page_showing_the_signature_in_any_form_is_redacted(
    wrap: Callable[[str], str],
) -> None:
    chat = TencentChat(
        SDKAPPID,
        SECRET_KEY,
        base_url="http://h",
        max_retries=0,
        transport=ScriptedTransport(
            answer=lambda request: RawResponse(502, wrap(request.params["usersig"]).encode())
        ),
    )
    with pytest.raises(BadResponseError) as caught:
        await chat.delete_robot("@RBT#1")
    assert "REDACTED" in caught.value.excerpt
    _assert_no_secret(caught.value.excerpt + repr(caught.value), _current_usersig(chat))


async def test_error_info_naming_the_signature_is_redacted_everywhere(
    every_log_record: pytest.LogCaptureFixture, no_backoff: None
) -> None:
    chat = TencentChat(SDKAPPID, SECRET_KEY, base_url="http://h", max_retries=1, rate_limit=None)
    usersig = _current_usersig(chat)
    chat._transport = transport = ScriptedTransport(fail(70001, f"UserSig {usersig} expired"))
    chat._sender._transport = transport
    with pytest.raises(APIError) as caught:
        await chat.delete_robot("@RBT#1")
    assert caught.value.info == "UserSig REDACTED expired"
    text = f"{caught.value} {caught.value!r} {pickle.dumps(caught.value)!r}"
    _assert_no_secret(text + _all_logged_text(every_log_record), usersig)


def test_a_cut_piece_of_a_live_secret_is_redacted_and_other_text_is_not() -> None:
    from tencent_chat_robots._redact import redact

    key = Secret("k" * 8 + "0123456789abcdefghijklmnopqrstuvwxyz" + "z" * 8)
    inside = key.reveal()[5:35]
    assert redact(f"window [{inside}] end") == "window [REDACTED] end"
    assert redact(f"x={key.reveal()}&y=1") == "x=REDACTED&y=1"
    assert redact("an ordinary 0123456789 sentence") == "an ordinary 0123456789 sentence"


def test_the_http2_header_encoder_logs_are_redacted_too(
    every_log_record: pytest.LogCaptureFixture,
) -> None:
    from tencent_chat_robots import HttpxTransport

    HttpxTransport(httpx.AsyncClient())
    logging.getLogger("hpack.hpack").debug(
        "Adding %s to the header table", (b":path", b"/v4/a/b?usersig=SIG-SECRET-7&random=1")
    )
    (record,) = [r for r in every_log_record.records if r.name == "hpack.hpack"]
    assert "SIG-SECRET-7" not in record.getMessage()
    assert "usersig=REDACTED" in record.getMessage()


async def test_tracebacks_that_slice_long_strings_get_no_piece_of_the_url() -> None:
    import structlog.tracebacks

    async with httpx.AsyncClient() as client:
        for http_client in (None, client):
            chat = TencentChat(
                SDKAPPID, SECRET_KEY, base_url=refused_url(), max_retries=0, http_client=http_client
            )
            with pytest.raises(APIConnectionError) as caught:
                await chat.get_all_robots()
            await chat.aclose()
            # rich and structlog cut strings longer than this by slicing (a plain str).
            transform = structlog.tracebacks.ExceptionDictTransformer(
                show_locals=True, locals_max_string=300
            )
            error = caught.value
            stacks = transform((type(error), error, error.__traceback__))
            _assert_no_secret(repr(stacks), _current_usersig(chat))


class _HookBug(Exception):
    """An error of a user's own httpx hook: the caller's to catch by its type."""


async def test_an_error_of_a_user_hook_goes_on_as_it_is_without_the_library_frames() -> None:
    def hook(request: httpx.Request) -> None:
        raise _HookBug("my hook failed")

    async with httpx.AsyncClient(event_hooks={"request": [hook]}) as client:
        chat = TencentChat(SDKAPPID, SECRET_KEY, base_url="http://h", http_client=client)
        with pytest.raises(_HookBug) as caught:
            await chat.get_all_robots()
    files = [frame.filename for frame in traceback.extract_tb(caught.value.__traceback__)]
    # Cut below the request layer: httpx's frames hold the URL.
    assert files[-1].endswith("_base_client.py")
    assert not any("httpx" in name for name in files)
    _assert_no_secret(_with_locals(caught.value), _current_usersig(chat))


async def test_an_error_of_a_user_hook_quoting_the_url_becomes_a_request_error() -> None:
    def hook(request: httpx.Request) -> None:
        raise _HookBug(f"refusing {request.url}")

    async with httpx.AsyncClient(event_hooks={"request": [hook]}) as client:
        chat = TencentChat(SDKAPPID, SECRET_KEY, base_url="http://h", http_client=client)
        with pytest.raises(RequestError) as caught:
            await chat.get_all_robots()
    assert "_HookBug: refusing http://h/v4/" in str(caught.value)
    assert not caught.value.retryable
    _assert_no_secret(_with_locals(caught.value), _current_usersig(chat))


def test_generating_a_signature_with_an_unencodable_key_does_not_quote_it() -> None:
    from tencent_chat_robots import generate_usersig

    key = "0123456789abcdef0123456789abcdef\ud800"
    with pytest.raises(ValueError, match="not valid Unicode") as caught:
        generate_usersig(SDKAPPID, key, "administrator")
    assert key[:20] not in f"{caught.value!r} {pickle.dumps(caught.value)!r}"
    assert caught.value.__context__ is None


def test_a_proxy_password_in_base_url_is_not_in_the_repr() -> None:
    chat = TencentChat(SDKAPPID, SECRET_KEY, base_url="https://gateway:hunter2@proxy.example")
    assert "hunter2" not in repr(chat)
    assert "base_url='https://REDACTED:REDACTED@proxy.example'" in repr(chat)


def test_a_live_key_with_a_lone_surrogate_does_not_break_redaction() -> None:
    from tencent_chat_robots._redact import redact

    broken = Secret("0123456789abcdef0123456789\ud800")  # as a failed construction keeps it
    assert redact("x 0123456789abcdef0123456789\ud800 y") == "x REDACTED y"
    assert redact("usersig=abc&random=1") == "usersig=REDACTED&random=1"
    del broken


def test_every_form_and_piece_of_a_live_secret_is_redacted() -> None:
    from tencent_chat_robots._redact import redact

    short = Secret("A" * 30)
    longer = Secret("A" * 30 + "B" * 12)  # the short one is its prefix: longest wins
    slashed = Secret("abc/def+ghi=" * 3)
    assert redact("x " + "A" * 30 + "B" * 12 + " y") == "x REDACTED y"
    assert redact(quote(slashed.reveal(), safe="")) == "REDACTED"  # '/' encoded too
    piece = slashed.reveal()[2:24]
    gap = "z" * 25
    # Two pieces in one run of the alphabet: each replaced, the rest kept.
    assert redact(f"<{piece}{gap}{piece}>") == f"<REDACTED{gap}REDACTED>"
    del short, longer, slashed


def test_without_userinfo_hides_a_user_alone_and_a_password_with_an_at() -> None:
    from tencent_chat_robots._redact import without_userinfo

    assert without_userinfo("https://token@proxy.example/p") == (
        "https://REDACTED:REDACTED@proxy.example/p"
    )
    assert without_userinfo("https://u:p@ss@proxy.example") == (
        "https://REDACTED:REDACTED@proxy.example"
    )
    assert without_userinfo("https://proxy.example:8443") == "https://proxy.example:8443"


async def test_a_hook_errors_chained_causes_are_scrubbed() -> None:
    def hook(request: httpx.Request) -> None:
        try:
            raise OSError(f"proxy refused {request.url}")
        except OSError as cause:
            raise _HookBug("my hook failed") from cause

    async with httpx.AsyncClient(event_hooks={"request": [hook]}) as client:
        chat = TencentChat(SDKAPPID, SECRET_KEY, base_url="http://h", http_client=client)
        with pytest.raises(_HookBug) as caught:
            await chat.get_all_robots()
    assert caught.value.__cause__ is not None
    assert "usersig=REDACTED" in str(caught.value.__cause__)
    _assert_no_secret(_with_locals(caught.value), _current_usersig(chat))


def test_a_signature_signed_anew_is_redacted_at_once() -> None:
    from tencent_chat_robots._auth import UserSigProvider
    from tencent_chat_robots._redact import redact

    now = [1_700_000_000.0]
    provider = UserSigProvider(
        sdkappid=SDKAPPID, admin="a", secret_key=Secret(SECRET_KEY), clock=lambda: now[0]
    )
    first = provider.current()
    assert redact(f"sig {first}") == "sig REDACTED"
    now[0] += 86400  # past its half-life: signed anew
    renewed = provider.current()
    assert renewed != first
    assert redact(f"sig {renewed}") == "sig REDACTED"  # the cached matcher was rebuilt


async def test_notes_on_a_transport_error_are_redacted() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        error = httpx.ConnectError("refused", request=request)
        # As add_note() (3.11+) would.
        error.__notes__ = [f"query was {request.url.query.decode()}"]  # type: ignore[attr-defined]
        raise error

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        chat = TencentChat(
            SDKAPPID, SECRET_KEY, base_url="http://h", http_client=client, max_retries=0
        )
        with pytest.raises(APIConnectionError) as caught:
            await chat.get_all_robots()
    (note,) = caught.value.__cause__.__notes__  # type: ignore[union-attr]
    assert note.startswith("query was sdkappid=")  # the note is kept, redacted
    assert "usersig=REDACTED" in note
    text = "".join(traceback.format_exception(caught.value))
    _assert_no_secret(text + note + _with_locals(caught.value), _current_usersig(chat))


async def test_an_ok_answer_echoing_the_signature_in_a_wrong_field_holds_it_in_no_frame() -> None:
    chat = TencentChat(
        SDKAPPID,
        SECRET_KEY,
        base_url="http://h",
        transport=ScriptedTransport(answer=lambda request: ok(RequestId={"k": request.url})),
    )
    with pytest.raises(BadResponseError) as caught:
        await chat.delete_robot("@RBT#1")
    assert caught.value.__cause__ is not None  # cattrs' reason is kept, without frames
    _assert_no_secret(_with_locals(caught.value), _current_usersig(chat))


async def test_a_huge_error_info_is_kept_to_its_first_two_thousand_characters() -> None:
    chat = TencentChat(
        SDKAPPID,
        SECRET_KEY,
        base_url="http://h",
        max_retries=0,
        transport=ScriptedTransport(fail(100004, "x" * 100_000)),
    )
    with pytest.raises(APIError) as caught:
        await chat.delete_robot("@RBT#1")
    assert caught.value.info == "x" * 2000


@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        ("can_renew_usersig=True", "can_renew_usersig=True"),  # a longer name: no secret
        ("RetryState(CAN_RENEW_USERSIG=False)", "RetryState(CAN_RENEW_USERSIG=False)"),
        ("adminUserSig=abc", "adminUserSig=abc"),
        ("usersig=abc&random=1", "usersig=REDACTED&random=1"),  # the start of the text
        ("/v4/a/b?usersig=abc", "/v4/a/b?usersig=REDACTED"),
        ("?sdkappid=1&UserSig=abc&x=1", "?sdkappid=1&UserSig=REDACTED&x=1"),
        ("signed with usersig=abc", "signed with usersig=REDACTED"),
        ("<a href='/v4/a/b?usersig%3Dabc'>", "<a href='/v4/a/b?usersig%3DREDACTED'>"),
        # A URL encoded whole (a login page's next=): the & is %26, still a separator.
        (
            "next=%2Fv4%2Fa%3Fsdkappid%3D1%26usersig%3Dabc",
            "next=%2Fv4%2Fa%3Fsdkappid%3D1%26usersig%3DREDACTED",
        ),
    ],
)
def test_usersig_is_a_parameter_only_where_its_name_starts(text: str, redacted: str) -> None:
    from tencent_chat_robots._redact import redact, shows_secret

    assert redact(text) == redacted
    assert shows_secret(text) is (text != redacted)
