"""OpenTelemetry: the spans and metrics the client emits, and the stock spans it hides.

Expected names and attributes are the HTTP client semantic conventions' (url.full,
server.address, http.request.resend_count, error.type ...) and the issue's
``tencent_chat.*`` ones, written out here rather than read from the code.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from opentelemetry.trace import SpanKind, StatusCode

import tencent_chat_robots._telemetry as telemetry_module
from tencent_chat_robots import (
    APIConnectionError,
    NotRoomMemberError,
    RawResponse,
    TencentChat,
    __version__,
)
from tencent_chat_robots.testing import FakeTencentChat

from .conftest import OTel, ScriptedTransport, fail, ok

ROOM_ADD = "room_engine_http_srv/add_robot"


def _sent_random(transport: ScriptedTransport, index: int) -> int:
    return int(transport.sent[index].params["random"])


def _by_kind(otel: OTel, kind: SpanKind) -> list[Any]:
    return [span for span in otel.spans() if span.kind == kind]


async def test_the_call_span_names_the_priority_class(
    otel: OTel, make_chat: Callable[..., TencentChat]
) -> None:
    async with make_chat(ScriptedTransport(ok())) as chat:
        await chat.with_options(priority="bulk").add_robot_to_room("room-1", "@RBT#001")
    (call,) = _by_kind(otel, SpanKind.INTERNAL)
    assert call.attributes["tencent_chat.priority"] == "bulk"


async def test_a_call_is_an_internal_span_with_one_client_span_per_attempt(
    otel: OTel, make_chat: Callable[..., TencentChat], no_backoff: None
) -> None:
    transport = ScriptedTransport(fail(70500, "busy"), ok(RequestId="req-2"))
    async with make_chat(transport, rate_limit=190) as chat:
        result = await chat.add_robot_to_room("room-1", "@RBT#001")

    (call,) = _by_kind(otel, SpanKind.INTERNAL)
    first, second = sorted(_by_kind(otel, SpanKind.CLIENT), key=lambda span: span.start_time)
    assert call.name == "tencent_chat add_robot_to_room"
    assert call.instrumentation_scope.name == "tencent_chat_robots"
    assert call.instrumentation_scope.version == __version__
    assert call.attributes["tencent_chat.endpoint"] == ROOM_ADD
    assert call.attributes["tencent_chat.priority"] == "interactive"
    assert call.attributes["tencent_chat.random"] == _sent_random(transport, 1) == result.random
    assert call.attributes["tencent_chat.request_id"] == "req-2"
    assert call.status.status_code == StatusCode.UNSET
    for attempt in (first, second):
        assert attempt.name == "POST"
        assert attempt.parent.span_id == call.context.span_id
        assert attempt.context.trace_id == call.context.trace_id
        assert attempt.attributes["http.request.method"] == "POST"
        assert attempt.attributes["server.address"] == "adminapisgp.im.qcloud.com"
        assert attempt.attributes["server.port"] == 443
        assert attempt.attributes["http.response.status_code"] == 200
        assert attempt.attributes["tencent_chat.endpoint"] == ROOM_ADD
        assert 0 <= attempt.attributes["tencent_chat.permit_wait"] < 60  # seconds

    assert "http.request.resend_count" not in first.attributes
    assert first.attributes["error.type"] == "70500"
    assert first.attributes["tencent_chat.error_code"] == 70500
    assert first.status.status_code == StatusCode.ERROR
    assert first.attributes["tencent_chat.random"] == _sent_random(transport, 0)

    assert second.attributes["http.request.resend_count"] == 1
    assert "error.type" not in second.attributes
    assert second.attributes["tencent_chat.request_id"] == "req-2"
    assert second.attributes["tencent_chat.random"] == _sent_random(transport, 1)
    url = second.attributes["url.full"]
    assert url.startswith(f"https://adminapisgp.im.qcloud.com/v4/{ROOM_ADD}?")
    query = parse_qs(urlsplit(url).query)
    assert query["usersig"] == ["REDACTED"]
    assert query["random"] == [str(_sent_random(transport, 1))]
    assert query["sdkappid"] == ["1400000000"]


async def test_a_failed_call_marks_its_span_with_the_error(
    otel: OTel, make_chat: Callable[..., TencentChat]
) -> None:
    transport = ScriptedTransport(fail(100005, "not a member", RequestId="req-9"))
    async with make_chat(transport) as chat:
        with pytest.raises(NotRoomMemberError) as caught:
            await chat.add_robot_to_room("room-1", "@RBT#001")

    (call,) = _by_kind(otel, SpanKind.INTERNAL)
    assert call.status.status_code == StatusCode.ERROR
    assert call.attributes["error.type"] == "100005"
    assert call.attributes["tencent_chat.error_code"] == 100005
    assert call.attributes["tencent_chat.request_id"] == "req-9"
    assert call.attributes["tencent_chat.random"] == caught.value.random
    assert [event.name for event in call.events] == ["exception"]
    assert call.events[0].attributes["exception.type"].endswith("NotRoomMemberError")
    assert "100005" in call.status.description


async def test_a_transport_fault_has_its_class_as_error_type_and_no_status(
    otel: OTel, make_chat: Callable[..., TencentChat]
) -> None:
    transport = ScriptedTransport(APIConnectionError("connection failed: reset"))
    async with make_chat(transport, max_retries=0) as chat:
        with pytest.raises(APIConnectionError):
            await chat.get_all_robots()
    (attempt,) = _by_kind(otel, SpanKind.CLIENT)
    assert attempt.attributes["error.type"] == "APIConnectionError"
    assert "http.response.status_code" not in attempt.attributes
    (call,) = _by_kind(otel, SpanKind.INTERNAL)
    assert call.name == "tencent_chat get_all_robots"


async def test_a_gateway_page_has_its_status_as_error_type(
    otel: OTel, make_chat: Callable[..., TencentChat]
) -> None:
    transport = ScriptedTransport(RawResponse(502, b"<html>bad gateway</html>"))
    async with make_chat(transport, max_retries=0) as chat:
        with pytest.raises(Exception):  # noqa: B017, PT011 - the class is not the point
            await chat.delete_robot("@RBT#001")
    (attempt,) = _by_kind(otel, SpanKind.CLIENT)
    assert attempt.attributes["http.response.status_code"] == 502
    assert attempt.attributes["error.type"] == "502"


async def test_an_answer_that_is_not_the_envelope_has_the_class_as_error_type(
    otel: OTel, make_chat: Callable[..., TencentChat]
) -> None:
    transport = ScriptedTransport(RawResponse(200, b"<html>maintenance</html>"))
    async with make_chat(transport, max_retries=0) as chat:
        with pytest.raises(Exception):  # noqa: B017, PT011 - the class is not the point
            await chat.delete_robot("@RBT#001")
    (attempt,) = _by_kind(otel, SpanKind.CLIENT)
    assert attempt.attributes["http.response.status_code"] == 200
    assert attempt.attributes["error.type"] == "BadResponseError"


async def test_metrics_duration_permit_wait_and_calls_by_outcome(
    otel: OTel, make_chat: Callable[..., TencentChat], no_backoff: None
) -> None:
    transport = ScriptedTransport(fail(70500), ok(), fail(100005))
    async with make_chat(transport, rate_limit=190) as chat:
        await chat.add_robot_to_room("room-1", "@RBT#001")
        with pytest.raises(NotRoomMemberError):
            await chat.add_robot_to_room("room-1", "@RBT#001")

    durations = otel.points("http.client.request.duration")
    by_error = {point.attributes.get("error.type"): point for point in durations}
    assert set(by_error) == {"70500", None, "100005"}
    assert all(point.count == 1 for point in durations)
    ok_point = by_error[None]
    assert 0 <= ok_point.sum < 60  # seconds, from a clock read at the attempt's start
    assert ok_point.attributes["tencent_chat.endpoint"] == ROOM_ADD
    assert ok_point.attributes["http.request.method"] == "POST"
    assert ok_point.attributes["server.address"] == "adminapisgp.im.qcloud.com"
    assert ok_point.attributes["server.port"] == 443
    assert ok_point.attributes["http.response.status_code"] == 200
    # The conventions' advisory buckets.
    assert list(ok_point.explicit_bounds) == [
        0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10
    ]  # fmt: skip

    (waits,) = otel.points("tencent_chat.permit.wait_duration")
    assert waits.count == 3
    assert dict(waits.attributes) == {"tencent_chat.endpoint": ROOM_ADD}
    # Seconds, finely below one: most permits come at once or within milliseconds.
    assert list(waits.explicit_bounds)[:6] == [0, 0.001, 0.0025, 0.005, 0.01, 0.025]

    calls = {
        (point.attributes["tencent_chat.outcome"], point.attributes.get("error.type")): point.value
        for point in otel.points("tencent_chat.calls")
    }
    assert calls == {("ok", None): 1, ("error", "100005"): 1}
    assert all(
        point.attributes["tencent_chat.endpoint"] == ROOM_ADD
        for point in otel.points("tencent_chat.calls")
    )
    # The client's instruments (the callback receiver's, made if its tests ran first in
    # this process, are its own tests' business).
    client_instruments = {
        name: described
        for name, described in otel.described.items()
        if not name.startswith("tencent_chat.callback")
    }
    assert client_instruments == {
        "http.client.request.duration": ("s", "Duration of HTTP client requests."),
        "tencent_chat.permit.wait_duration": (
            "s",
            "Time an attempt waited for its rate permit, per endpoint.",
        ),
        "tencent_chat.calls": ("{call}", "Calls finished, by endpoint and outcome."),
    }


async def test_the_stock_http_spans_of_its_requests_are_suppressed(otel: OTel) -> None:
    from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    fake = FakeTencentChat()
    aiohttp_instrumentor, httpx_instrumentor = (
        AioHttpClientInstrumentor(),
        HTTPXClientInstrumentor(),
    )
    aiohttp_instrumentor.instrument()
    httpx_instrumentor.instrument()
    try:
        async with fake.serve() as base_url, httpx.AsyncClient() as client:
            credentials: dict[str, Any] = {"admin": fake.admin, "base_url": base_url}
            async with TencentChat(fake.sdkappid, fake.secret_key, **credentials) as chat:
                await chat.get_all_robots()
            async with TencentChat(
                fake.sdkappid, fake.secret_key, http_client=client, **credentials
            ) as chat:
                await chat.get_all_robots()
            # The instrumentations are live: a request of the application's own is traced.
            await client.get(f"{base_url}/elsewhere")
    finally:
        aiohttp_instrumentor.uninstrument()
        httpx_instrumentor.uninstrument()

    spans = otel.spans()
    stock = [span for span in spans if span.instrumentation_scope.name != "tencent_chat_robots"]
    # (Stock instrumentations name the URL http.url or url.full, by semconv opt-in.)
    urls = [span.attributes.get("url.full", span.attributes.get("http.url")) for span in stock]
    assert urls == [f"{base_url}/elsewhere"]
    ours = [span for span in spans if span.kind == SpanKind.CLIENT and span not in stock]
    assert len(ours) == 2
    assert all("usersig=REDACTED" in span.attributes["url.full"] for span in ours)


async def test_the_environment_variable_turns_spans_and_metrics_off(
    otel: OTel, make_chat: Callable[..., TencentChat], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_PYTHON_INSTRUMENTATION_TENCENT_CHAT_ROBOTS_ENABLED", "false")
    async with make_chat(ScriptedTransport(ok())) as chat:
        await chat.create_robot("@RBT#001")
    assert otel.spans() == []
    assert otel.points("tencent_chat.calls") == []
    assert otel.points("http.client.request.duration") == []


async def test_without_opentelemetry_installed_the_client_runs_without_it(
    otel: OTel, make_chat: Callable[..., TencentChat], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(telemetry_module, "otel_context", None)
    transport = ScriptedTransport(ok())
    async with make_chat(transport) as chat:
        assert chat._sender.telemetry is None
        result = await chat.create_robot("@RBT#001")
    assert result.random == _sent_random(transport, 0)
    assert otel.spans() == []


_PRIVATE_PROVIDER_PROGRAM = """
import asyncio
from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from tencent_chat_robots import TencentChat
from tencent_chat_robots import __version__
from tencent_chat_robots.testing import FakeTencentChat

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
# The instrumentation gets a provider of its own; no global provider is ever set.
AioHttpClientInstrumentor().instrument(tracer_provider=provider)

async def main():
    fake = FakeTencentChat()
    async with fake.serve() as base_url:
        async with TencentChat(fake.sdkappid, fake.secret_key, base_url=base_url) as chat:
            await chat.get_all_robots()
        import aiohttp
        async with aiohttp.ClientSession() as session:
            await session.get(base_url + "/elsewhere")

asyncio.run(main())
print(len(exporter.get_finished_spans()))
"""


def test_requests_are_hidden_even_from_an_instrumentation_with_its_own_provider() -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", _PRIVATE_PROVIDER_PROGRAM],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1"]  # the application's own request only


async def test_url_full_hides_a_proxy_password_of_base_url(otel: OTel) -> None:
    transport = ScriptedTransport(ok())
    async with TencentChat(
        1400000000,
        "k" * 64,
        base_url="https://gateway:hunter2@proxy.example:8443",
        transport=transport,
    ) as chat:
        await chat.delete_robot("@RBT#001")
    assert transport.sent[0].url.startswith("https://gateway:hunter2@proxy.example:8443/v4/")
    (attempt,) = _by_kind(otel, SpanKind.CLIENT)
    url = attempt.attributes["url.full"]
    assert url.startswith("https://REDACTED:REDACTED@proxy.example:8443/v4/")
    assert attempt.attributes["server.address"] == "proxy.example"
    assert attempt.attributes["server.port"] == 8443


def _exploding_processor() -> Any:
    from opentelemetry.sdk.trace import SpanProcessor

    class Exploding(SpanProcessor):
        """A span processor whose on_end fails while switched on (it stays installed)."""

        on = False

        def on_end(self, span: Any) -> None:
            if self.on:
                raise RuntimeError("exporter bug")

    return Exploding()


_EXPLODING: Any = None


async def test_a_failing_span_processor_does_not_fail_the_call(
    otel: OTel, make_chat: Callable[..., TencentChat], caplog: pytest.LogCaptureFixture
) -> None:
    from opentelemetry import trace

    global _EXPLODING
    if _EXPLODING is None:  # a provider's processors cannot be removed: one, switched
        _EXPLODING = _exploding_processor()
        trace.get_tracer_provider().add_span_processor(_EXPLODING)  # type: ignore[attr-defined]
    _EXPLODING.on = True
    try:
        async with make_chat(ScriptedTransport(ok(RequestId="r-1"))) as chat:
            result = await chat.add_robot_to_room("room-1", "@RBT#001")
    finally:
        _EXPLODING.on = False
    assert result.request_id == "r-1"
    failures = [r.getMessage() for r in caplog.records if "OpenTelemetry failed" in r.getMessage()]
    assert failures == [
        "OpenTelemetry failed ending an attempt's span; the call goes on",
        "OpenTelemetry failed ending a call's span; the call goes on",
    ]


async def test_spans_nest_in_the_callers_and_the_request_runs_in_the_attempts(
    otel: OTel, make_chat: Callable[..., TencentChat]
) -> None:
    from opentelemetry import baggage, context, trace
    from opentelemetry.context import _SUPPRESS_HTTP_INSTRUMENTATION_KEY

    seen: list[Any] = []

    def answer(request: Any) -> Any:
        seen.append(
            (
                trace.get_current_span(),
                context.get_value(_SUPPRESS_HTTP_INSTRUMENTATION_KEY),
                baggage.get_baggage("tenant"),
            )
        )
        return ok()

    tracer = trace.get_tracer("the application")
    token = context.attach(baggage.set_baggage("tenant", "acme"))
    try:
        with tracer.start_as_current_span("handle request") as handler:
            async with make_chat(ScriptedTransport(answer=answer)) as chat:
                await chat.delete_robot("@RBT#001")
            assert trace.get_current_span() is handler  # the context was given back
            assert context.get_value(_SUPPRESS_HTTP_INSTRUMENTATION_KEY) is None
    finally:
        context.detach(token)
    (call,) = [s for s in _by_kind(otel, SpanKind.INTERNAL) if s.name != "handle request"]
    (attempt,) = _by_kind(otel, SpanKind.CLIENT)
    assert call.parent.span_id == handler.get_span_context().span_id
    [(current, suppressed, tenant)] = seen
    assert current.get_span_context().span_id == attempt.context.span_id
    assert suppressed is True
    assert tenant == "acme"  # the caller's context is kept, not replaced


async def test_a_cancelled_call_ends_its_spans_as_cancelled(otel: OTel) -> None:
    from .test_closing import GatedTransport

    transport = GatedTransport()
    chat = TencentChat(1400000000, "k" * 64, base_url="http://h", transport=transport)
    call = asyncio.ensure_future(chat.delete_robot("@RBT#001"))
    await transport.wait_on_wire(1)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    await chat.aclose()
    spans = {span.kind: span for span in otel.spans()}
    assert spans[SpanKind.CLIENT].attributes["error.type"] == "CancelledError"
    assert spans[SpanKind.INTERNAL].attributes["error.type"] == "CancelledError"


@pytest.mark.parametrize("unset", ["tracing", "metrics"])
async def test_spans_and_metrics_each_go_only_where_a_provider_is_set(
    otel: OTel,
    make_chat: Callable[..., TencentChat],
    monkeypatch: pytest.MonkeyPatch,
    unset: str,
) -> None:
    from opentelemetry import metrics, trace

    # As if the application had set only the other provider.
    if unset == "tracing":
        monkeypatch.setattr(telemetry_module, "_UNSET_TRACING", type(trace.get_tracer_provider()))
    else:
        unset_metrics = (type(metrics.get_meter_provider()),)
        monkeypatch.setattr(telemetry_module, "_UNSET_METRICS", unset_metrics)
    async with make_chat(ScriptedTransport(ok()), rate_limit=190) as chat:
        await chat.delete_robot("@RBT#001")
    spans, calls = otel.spans(), otel.points("tencent_chat.calls")
    durations = otel.points("http.client.request.duration")
    if unset == "tracing":
        assert spans == []
        assert [point.value for point in calls] == [1]
        assert [point.count for point in durations] == [1]
    else:
        assert sorted(span.kind.name for span in spans) == ["CLIENT", "INTERNAL"]
        assert calls == durations == []
