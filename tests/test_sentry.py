"""Sentry, initialised with its defaults, never carries one of this client's secrets."""

from __future__ import annotations

import asyncio
import sys
import types
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote

import aiohttp
import httpx
import pytest
import sentry_sdk
import sentry_sdk.scope
from sentry_sdk._types import AnnotatedValue  # Sentry's marker for a trimmed value
from sentry_sdk.envelope import Envelope
from sentry_sdk.integrations.aiohttp import create_trace_config
from sentry_sdk.transport import Transport

from tencent_chat_robots import _sentry
from tencent_chat_robots._auth import UserSigProvider
from tencent_chat_robots._redact import Secret
from tencent_chat_robots._sentry import install_if_loaded, scrub_event, strip_sentry_tracing

from .conftest import ADMIN, SDKAPPID, SECRET_KEY

DSN = "http://public@127.0.0.1:9/1"  # never dialled: the transport below keeps envelopes


class Captured(Transport):
    """A Sentry transport keeping envelopes in memory; also records raw breadcrumbs."""

    def __init__(self) -> None:
        super().__init__()
        self.envelopes: list[Envelope] = []
        self.raw_breadcrumbs: list[dict[str, Any]] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        self.envelopes.append(envelope)

    def before_breadcrumb(self, crumb: dict[str, Any], hint: Any) -> dict[str, Any]:
        self.raw_breadcrumbs.append(crumb)
        return crumb

    def text(self) -> str:
        """Everything that would have gone over the wire."""
        return b"".join(envelope.serialize() for envelope in self.envelopes).decode()

    def events(self) -> list[Any]:
        return [e for env in self.envelopes if (e := env.get_event()) is not None]

    def transactions(self) -> list[Any]:
        return [e for env in self.envelopes if (e := env.get_transaction_event()) is not None]


@pytest.fixture
def start_sentry() -> Iterator[Callable[..., Captured]]:
    """``start(**options)``: a real ``sentry_sdk.init`` with default integrations."""

    def start(**options: Any) -> Captured:
        transport = Captured()
        sentry_sdk.init(
            dsn=DSN, transport=transport, before_breadcrumb=transport.before_breadcrumb, **options
        )
        install_if_loaded()  # what the SDK does before each request
        return transport

    with sentry_sdk.isolation_scope():  # breadcrumbs, extra and contexts stay in this test
        yield start
    sentry_sdk.get_client().close()
    sentry_sdk.get_global_scope().set_client(None)


@pytest.fixture
def signer() -> UserSigProvider:
    # Held by the test: the registry of live secrets is weak.
    return UserSigProvider(sdkappid=SDKAPPID, admin=ADMIN, secret_key=Secret(SECRET_KEY))


@asynccontextmanager
async def plain_server() -> AsyncIterator[str]:
    """A loopback HTTP server Sentry does not see (it traces aiohttp's own web server,
    whose transactions would carry the query string the test sends)."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        for line in head.lower().split(b"\r\n"):
            if line.startswith(b"content-length:"):
                await reader.readexactly(int(line.partition(b":")[2]))
        body = b'{"ActionStatus": "OK", "ErrorCode": 0, "ErrorInfo": ""}'
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    async with server:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"


def signed_url(base_url: str, usersig: str) -> str:
    return (
        f"{base_url}/v4/ok/ok?sdkappid={SDKAPPID}&identifier={ADMIN}"
        f"&usersig={usersig}&random=42&contenttype=json"
    )


def assert_free_of(text: str, *secrets: str) -> None:
    for secret in secrets:
        for form in (secret, quote(secret, safe=""), secret[:16]):
            assert form not in text


# Installing the processor


def test_installed_once_however_often_called(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sentry_sdk.scope, "global_event_processors", [])
    monkeypatch.setattr(_sentry, "_installed", False)

    for _ in range(5):
        install_if_loaded()

    assert sentry_sdk.scope.global_event_processors == [scrub_event]


def test_waits_until_sentry_is_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sentry_sdk.scope, "global_event_processors", [])
    monkeypatch.setattr(_sentry, "_installed", False)
    monkeypatch.delitem(sys.modules, "sentry_sdk")

    install_if_loaded()
    assert sentry_sdk.scope.global_event_processors == []

    monkeypatch.setitem(sys.modules, "sentry_sdk", sentry_sdk)
    install_if_loaded()
    assert sentry_sdk.scope.global_event_processors == [scrub_event]


def test_a_sentry_without_the_expected_api_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_sentry, "_installed", False)
    monkeypatch.setitem(sys.modules, "sentry_sdk", types.ModuleType("sentry_sdk"))
    monkeypatch.setitem(sys.modules, "sentry_sdk.scope", types.ModuleType("sentry_sdk.scope"))
    before = list(sentry_sdk.scope.global_event_processors)

    install_if_loaded()  # finds no add_global_event_processor: does nothing, raises nothing

    assert sentry_sdk.scope.global_event_processors == before
    assert _sentry._installed  # and does not search again on the next request


def test_it_moves_behind_processors_registered_after_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """sentry_sdk.init() after the client's first call adds its integrations' processors
    (one adds sys.argv, which may hold a --secret-key) after the scrubber."""

    def later(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
        return event

    monkeypatch.setattr(sentry_sdk.scope, "global_event_processors", [])
    monkeypatch.setattr(_sentry, "_installed", False)
    install_if_loaded()
    sentry_sdk.scope.add_global_event_processor(later)

    install_if_loaded()  # the next request's check

    assert sentry_sdk.scope.global_event_processors == [later, scrub_event]


def test_it_moves_behind_processors_added_on_either_side(monkeypatch: pytest.MonkeyPatch) -> None:
    def before(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
        return event

    def after(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
        return event

    monkeypatch.setattr(sentry_sdk.scope, "global_event_processors", [before])
    monkeypatch.setattr(_sentry, "_installed", False)
    install_if_loaded()
    sentry_sdk.scope.add_global_event_processor(after)
    install_if_loaded()
    assert sentry_sdk.scope.global_event_processors == [before, after, scrub_event]


def test_it_is_registered_again_if_taken_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sentry_sdk.scope, "global_event_processors", [])
    monkeypatch.setattr(_sentry, "_installed", False)
    install_if_loaded()
    sentry_sdk.scope.global_event_processors.clear()  # say, by a test helper of the app's
    install_if_loaded()
    assert sentry_sdk.scope.global_event_processors == [scrub_event]


def test_an_older_sentry_with_the_function_at_its_top_is_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    added: list[Any] = []
    old = types.ModuleType("sentry_sdk")
    old.add_global_event_processor = added.append  # type: ignore[attr-defined]
    monkeypatch.setattr(_sentry, "_installed", False)
    monkeypatch.setitem(sys.modules, "sentry_sdk", old)
    monkeypatch.setitem(sys.modules, "sentry_sdk.scope", None)  # importing it fails

    install_if_loaded()

    assert added == [scrub_event]


def test_the_sdks_own_aiohttp_session_carries_no_sentry_tracing(
    start_sentry: Callable[..., Captured],
) -> None:
    from tencent_chat_robots import AiohttpTransport

    start_sentry()

    async def open_session() -> list[Any]:
        transport = AiohttpTransport()
        session = transport._open()
        configs = list(session._trace_configs)
        await transport.aclose()
        return configs

    configs = asyncio.run(open_session())
    handlers = [handler for config in configs for handler in config.on_request_start]
    assert not [handler for handler in handlers if handler.__module__.startswith("sentry_sdk")]


async def test_a_late_init_still_scrubs_what_its_integrations_add(
    start_sentry: Callable[..., Captured], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tencent_chat_robots import RawResponse, TencentChat

    class Answering:
        async def post(self, url: str, content: bytes, *, timeout: float) -> RawResponse:
            return RawResponse(200, b'{"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":""}')

        async def aclose(self) -> None:
            pass

    monkeypatch.setattr(sys, "argv", ["provision", "--secret-key", SECRET_KEY, "plan.json"])
    async with TencentChat(SDKAPPID, SECRET_KEY, transport=Answering()) as chat:
        await chat.delete_robot("@RBT#001")  # the scrubber registers here...
        sentry = start_sentry()  # ...and the argv integration's processor after it
        await chat.delete_robot("@RBT#001")
        sentry_sdk.capture_message("later")
    [event] = sentry.events()
    assert event["extra"]["sys.argv"] == ["provision", "--secret-key", "[Filtered]", "plan.json"]


async def test_a_late_init_is_scrubbed_before_any_further_request(
    start_sentry: Callable[..., Captured], monkeypatch: pytest.MonkeyPatch
) -> None:
    """No request runs between sentry_sdk.init() and the event: the scrubber still runs
    after the processors that init added (it is on Sentry's global scope too)."""
    monkeypatch.setattr(sys, "argv", ["provision", f"--secret-key={SECRET_KEY}"])
    signer = UserSigProvider(sdkappid=SDKAPPID, admin=ADMIN, secret_key=Secret(SECRET_KEY))
    sentry = start_sentry()
    processors = sentry_sdk.scope.global_event_processors
    # As if the scrubber had registered before init added its own processors.
    monkeypatch.setattr(
        sentry_sdk.scope,
        "global_event_processors",
        [scrub_event, *(p for p in processors if p is not scrub_event)],
    )
    sentry_sdk.capture_message("later")
    [event] = sentry.events()
    assert event["extra"]["sys.argv"] == ["provision", "--secret-key=[Filtered]"]
    del signer


def test_a_failed_construction_is_scrubbed_from_the_callers_frame(
    start_sentry: Callable[..., Captured], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tencent_chat_robots import TencentChat, ValidationError

    sentry = start_sentry()
    # As in an application whose client never made a call: the construction registers.
    monkeypatch.setattr(
        sentry_sdk.scope,
        "global_event_processors",
        [p for p in sentry_sdk.scope.global_event_processors if p is not scrub_event],
    )
    monkeypatch.setattr(_sentry, "_installed", False)

    def connect(tencent_key: str) -> None:
        TencentChat(SDKAPPID, tencent_key, timeout=0)

    try:
        connect(SECRET_KEY)
    except ValidationError:
        sentry_sdk.capture_exception()
    [event] = sentry.events()
    frames = event["exception"]["values"][0]["stacktrace"]["frames"]
    [caller] = [frame for frame in frames if frame["function"] == "connect"]
    assert caller["vars"]["tencent_key"] == "'[Filtered]'"
    assert_free_of(sentry.text(), SECRET_KEY)


# Error events


async def test_error_event_carries_no_secret(
    start_sentry: Callable[..., Captured], signer: UserSigProvider
) -> None:
    sentry = start_sentry()
    usersig = signer.current()
    async with plain_server() as base_url:
        url = signed_url(base_url, usersig)
        async with aiohttp.ClientSession() as session:
            await session.post(url)
            await session.post(f"{base_url}/v4/ok/ok?page=2")  # someone else's request
        async with httpx.AsyncClient() as client:
            await client.post(url)
    sentry_sdk.set_extra("request_url", url)
    sentry_sdk.set_context("tencent", {"signature": usersig, "key": SECRET_KEY})

    def send(signed: str) -> None:
        raise RuntimeError(f"refused, key {SECRET_KEY} sig {usersig}")

    try:
        send(url)
    except RuntimeError:
        sentry_sdk.capture_exception()

    # Sentry recorded the signed requests (aiohttp's and httpx's) as breadcrumbs...
    signed_crumbs = [
        c for c in sentry.raw_breadcrumbs if usersig in c.get("data", {}).get("http.query", "")
    ]
    assert len(signed_crumbs) == 2
    # ...and none of it is sent.
    assert_free_of(sentry.text(), usersig, SECRET_KEY)
    [event] = sentry.events()
    [theirs] = [c for c in sentry.raw_breadcrumbs if c["data"].get("http.query") == "page=2"]
    assert theirs["data"]["url"] == f"{base_url}/v4/ok/ok"
    http_crumbs = [c for c in event["breadcrumbs"]["values"] if c.get("type") == "http"]
    assert [c["data"] for c in http_crumbs] == [theirs["data"]]
    [exception] = event["exception"]["values"]
    assert exception["value"] == "refused, key [Filtered] sig [Filtered]"
    frame = exception["stacktrace"]["frames"][-1]
    assert frame["function"] == "send"
    assert "usersig=[Filtered]&random=42" in frame["vars"]["signed"]
    assert "usersig=[Filtered]&random=42" in event["extra"]["request_url"]
    assert event["contexts"]["tencent"] == {"signature": "[Filtered]", "key": "[Filtered]"}


async def test_transaction_spans_carry_no_secret(
    start_sentry: Callable[..., Captured], signer: UserSigProvider
) -> None:
    sentry = start_sentry(traces_sample_rate=1.0)
    usersig = signer.current()
    async with plain_server() as base_url:
        url = signed_url(base_url, usersig)
        with sentry_sdk.start_transaction(name="handler"):
            async with aiohttp.ClientSession() as session:
                await session.post(url)
            with sentry_sdk.start_span(op="tencent", name=f"POST {url}") as span:
                span.set_data("signature", usersig)

    assert_free_of(sentry.text(), usersig, SECRET_KEY)
    [transaction] = sentry.transactions()
    spans = {span["op"]: span for span in transaction["spans"]}
    query = f"sdkappid={SDKAPPID}&identifier={ADMIN}&usersig=[Filtered]&random=42&contenttype=json"
    assert spans["http.client"]["data"]["http.query"] == query
    assert spans["tencent"]["description"] == f"POST {base_url}/v4/ok/ok?{query}"
    assert spans["tencent"]["data"]["signature"] == "[Filtered]"


def test_recent_usersigs_and_truncated_copies_are_filtered() -> None:
    now = [1_700_000_000.0]
    signer = UserSigProvider(
        sdkappid=SDKAPPID, admin=ADMIN, secret_key=Secret(SECRET_KEY), clock=lambda: now[0]
    )
    old = signer.current()
    now[0] += 86_400  # past half the lifetime: the next request signs anew
    new = signer.current()
    assert old != new
    event = {
        "message": f"old {old} new {new}",
        # Cut where Sentry's max_value_length may cut, without a usersig= to recognise.
        "extra": {"cut": f"x={old[:40]}...", "key": f"'{SECRET_KEY[:20]}..."},
    }

    scrubbed = scrub_event(event, {})

    assert scrubbed == {
        "message": "old [Filtered] new [Filtered]",
        "extra": {"cut": "x=[Filtered]...", "key": "'[Filtered]..."},
    }


def test_unrelated_breadcrumbs_survive_untouched(signer: UserSigProvider) -> None:
    usersig = signer.current()
    ours = {"type": "http", "data": {"url": "https://x/v4/a/b", "http.query": f"usersig={usersig}"}}
    encoded = {"type": "http", "data": {"url": f"https://x/?sig={quote(usersig, safe='')}"}}
    theirs = {"type": "http", "data": {"url": "https://pay.example/", "http.query": "id=7"}}
    log = {"category": "app", "message": f"signed with {usersig}"}
    crumbs = [ours, encoded, theirs, log]
    event = {"breadcrumbs": {"values": crumbs}}

    scrubbed = scrub_event(event, {})

    kept = scrubbed["breadcrumbs"]["values"]
    assert kept[0] is theirs
    assert kept[1] == {"category": "app", "message": "signed with [Filtered]"}
    assert len(kept) == 2
    # The breadcrumbs are the scope's own objects: copied where changed, never edited.
    assert crumbs == [ours, encoded, theirs, log]
    assert log["message"] == f"signed with {usersig}"


def test_percent_encoded_secrets_are_filtered() -> None:
    # A fixed UserSig with a "*" early on: its encoded form shares no 16-character prefix.
    usersig = "eJy*" + "A" * 60
    fixed = UserSigProvider(sdkappid=SDKAPPID, admin=ADMIN, usersig=Secret(usersig))
    event = {"message": f"GET /v4/a/b?sig={quote(usersig, safe='')}&random=1"}

    assert scrub_event(event, {}) == {"message": "GET /v4/a/b?sig=[Filtered]&random=1"}
    assert fixed.current() == usersig


def test_keys_containers_and_object_reprs_are_scrubbed(signer: UserSigProvider) -> None:
    usersig = signer.current()

    class Request:
        def __repr__(self) -> str:
            return f"<Request POST https://x/v4/a/b?usersig={usersig}>"

    class BrokenRepr:
        def __repr__(self) -> str:
            raise ValueError("no repr")

    cyclic: dict[str, Any] = {"signature": usersig}
    cyclic["self"] = cyclic
    broken = BrokenRepr()
    event = {
        "extra": {
            usersig: "as a key",
            "pair": ("ok", usersig),
            "set": frozenset({usersig}),
            "body": f"usersig={usersig}".encode(),
            "request": Request(),
            "broken": broken,
            "cyclic": cyclic,
            "number": 3,
        }
    }

    extra = scrub_event(event, {})["extra"]

    assert extra == {
        "[Filtered]": "as a key",
        "pair": ("ok", "[Filtered]"),
        "set": ["[Filtered]"],
        "body": "usersig=[Filtered]",
        "request": "<Request POST https://x/v4/a/b?usersig=[Filtered]>",
        "broken": broken,
        "cyclic": {"signature": "[Filtered]", "self": "<cyclic>"},
        "number": 3,
    }
    assert cyclic["signature"] == usersig  # the original is left as it was


def test_annotated_values_are_scrubbed(signer: UserSigProvider) -> None:
    usersig = signer.current()
    event = {"request": {"data": AnnotatedValue(f"sig={usersig}", {"len": 999})}}

    data = scrub_event(event, {})["request"]["data"]

    assert data == AnnotatedValue("sig=[Filtered]", {"len": 999})


def test_a_part_that_cannot_be_scrubbed_is_dropped(signer: UserSigProvider) -> None:
    usersig = signer.current()

    class Unreadable(dict):  # type: ignore[type-arg]
        def items(self) -> Any:
            raise RuntimeError("cannot be read")

    event = {"message": f"sig {usersig}", "extra": Unreadable(sig=usersig)}

    assert scrub_event(event, {}) == {"message": "sig [Filtered]"}


# Sentry's trace config on the SDK's own session


async def _note(session: Any, ctx: Any, params: aiohttp.TraceRequestStartParams) -> None:
    """A request-start handler that is not Sentry's."""


async def test_strip_removes_sentrys_trace_config_only(
    start_sentry: Callable[..., Captured],
    signer: UserSigProvider,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sentry = start_sentry(traces_sample_rate=1.0)
    # Without the event processor: the stripped session alone must keep the URL out.
    monkeypatch.setattr(
        sentry_sdk.scope,
        "global_event_processors",
        [p for p in sentry_sdk.scope.global_event_processors if p is not scrub_event],
    )
    seen: list[str] = []

    async def record(session: Any, ctx: Any, params: aiohttp.TraceRequestStartParams) -> None:
        seen.append(str(params.url))

    theirs = aiohttp.TraceConfig()
    theirs.on_request_start.append(record)
    plain = aiohttp.TraceConfig()
    usersig = signer.current()
    async with plain_server() as base_url:
        url = signed_url(base_url, usersig)
        with sentry_sdk.start_transaction(name="handler"):
            async with aiohttp.ClientSession(trace_configs=[theirs, plain]) as session:
                assert len(session.trace_configs) == 3  # Sentry's patch added its own
                strip_sentry_tracing(session)
                assert session.trace_configs == [theirs, plain]
                await session.post(url)
        sentry_sdk.capture_message("after the request")

    assert seen == [url]
    assert not [c for c in sentry.raw_breadcrumbs if c.get("type") == "http"]
    [transaction] = sentry.transactions()
    assert transaction["spans"] == []
    assert_free_of(sentry.text(), usersig)


async def test_strip_keeps_a_config_sentry_only_shares() -> None:
    sentrys = create_trace_config()
    shared = aiohttp.TraceConfig()
    shared.on_request_start.append(sentrys.on_request_start[0])
    shared.on_request_start.append(_note)
    async with aiohttp.ClientSession(trace_configs=[sentrys, shared]) as session:
        strip_sentry_tracing(session)
        assert shared in session.trace_configs
        assert sentrys not in session.trace_configs


def test_strip_tolerates_other_session_shapes() -> None:
    sentrys, theirs = create_trace_config(), aiohttp.TraceConfig()
    frozen = types.SimpleNamespace(_trace_configs=(sentrys, theirs))

    strip_sentry_tracing(frozen)  # type: ignore[arg-type]
    strip_sentry_tracing(types.SimpleNamespace())  # type: ignore[arg-type]

    assert frozen._trace_configs == (theirs,)


def test_what_holds_no_secret_is_passed_on_as_it_is(signer: UserSigProvider) -> None:
    extra = {"count": 5, "ratio": 0.5, "flag": True, "note": "plain"}
    shared = ["x", "y"]
    event = {"extra": extra, "contexts": {"a": shared, "b": shared}}

    scrubbed = scrub_event(event, {})

    assert scrubbed["extra"] is extra  # copied only where something changed
    assert scrubbed["extra"]["count"] == 5  # numbers stay numbers
    assert scrubbed["contexts"]["a"] is shared
    assert scrubbed["contexts"]["b"] is shared  # seen twice is no cycle


def test_undecodable_bytes_are_scrubbed_too(signer: UserSigProvider) -> None:
    usersig = signer.current()
    event = {"extra": {"raw": b"\xff " + usersig.encode()}}
    assert scrub_event(event, {}) == {"extra": {"raw": "\ufffd [Filtered]"}}


def test_a_breadcrumb_that_is_no_mapping_does_not_cost_the_others(signer: UserSigProvider) -> None:
    ours = {"type": "http", "data": {"url": "http://h/v4/a/b", "http.query": "usersig=abc"}}
    theirs = {"type": "http", "data": {"url": "http://other/", "http.query": "page=2"}}
    event = {"breadcrumbs": {"values": ["odd", ours, theirs]}}
    assert scrub_event(event, {}) == {"breadcrumbs": {"values": ["odd", theirs]}}


def test_a_name_ending_in_usersig_is_no_secret(signer: UserSigProvider) -> None:
    """A frame's RetryState shows can_renew_usersig=True: a setting, not the UserSig."""
    state = "RetryState(endpoint='a/b', attempt=2, can_renew_usersig=True)"
    extra = {"state": state, "flags": {"can_renew_usersig": "False"}}
    event = {
        "extra": extra,
        "message": f"{state} after POST /v4/a/b?sdkappid=1&usersig={signer.current()}&x=1",
    }

    scrubbed = scrub_event(event, {})

    assert scrubbed["extra"] is extra  # nothing in it changed
    assert scrubbed["message"] == f"{state} after POST /v4/a/b?sdkappid=1&usersig=[Filtered]&x=1"
