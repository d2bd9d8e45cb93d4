"""OpenTelemetry: a span per call, a child span per HTTP attempt, and three metrics.

Active when ``opentelemetry-api`` is installed (extra ``otel``); emits through the
global tracer and meter providers, so it costs next to nothing until the application
sets them. ``OTEL_PYTHON_INSTRUMENTATION_TENCENT_CHAT_ROBOTS_ENABLED=false`` turns the
spans and metrics off. Either way every request is sent with OpenTelemetry's
suppress-HTTP-instrumentation key set: the stock aiohttp and httpx instrumentations
would otherwise export the URL, whose query carries the UserSig.

Attribute names follow the HTTP client semantic conventions; the SDK's own are under
``tencent_chat.``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from time import monotonic as _clock
from time import perf_counter as _now
from typing import Any
from urllib.parse import urlsplit

from ._exceptions import APIError, BadResponseError, RequestError
from ._lifecycle import PendingCall
from ._logs import logger
from ._observers import CallObserver
from ._redact import redact

try:
    from opentelemetry import context as otel_context
    from opentelemetry import metrics, trace
    from opentelemetry.context import _SUPPRESS_HTTP_INSTRUMENTATION_KEY
except ImportError:  # the optional extra is not installed
    otel_context = None  # type: ignore[assignment]
else:
    # What the API hands out until the application sets a provider: the calls then
    # skip building spans and attributes that would go nowhere.
    from opentelemetry.metrics import _internal as _metrics_internal

    _UNSET_TRACING = trace.ProxyTracerProvider
    # Private to the API; should it go, every call measures (isinstance of () is false).
    _UNSET_METRICS: tuple[type[Any], ...] = tuple(
        cls
        for cls in (getattr(_metrics_internal, "_ProxyMeterProvider", None),)
        if isinstance(cls, type)
    )

__all__ = ["ENV_ENABLED", "CallTrace", "Telemetry", "make_telemetry", "mark_failed"]

ENV_ENABLED = "OTEL_PYTHON_INSTRUMENTATION_TENCENT_CHAT_ROBOTS_ENABLED"
_SCOPE = "tencent_chat_robots"
# The HTTP client semantic conventions' advisory buckets for request duration.
_DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10]
# A permit is mostly instant, else a share of a second per caller queued ahead.
_WAIT_BUCKETS = [0, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]
_DEFAULT_PORTS = {"http": 80, "https": 443}
# While no provider is set, how often (seconds) to look whether one was set since.
_LOOK_AGAIN_EVERY = 1.0


def make_telemetry(
    base_url: str, operations: Mapping[str, str], shown_url: Callable[[str, int], str]
) -> Telemetry | None:
    """A :class:`Telemetry` if ``opentelemetry-api`` is installed, else ``None``.

    ``operations`` names each endpoint's method (``add_robot_to_room``): the call span's
    name. ``shown_url(endpoint, random)`` is a request's URL with its UserSig redacted.
    """
    if otel_context is None:
        return None
    emit = os.environ.get(ENV_ENABLED, "true").strip().lower() != "false"
    return Telemetry(base_url, operations, shown_url, emit=emit)


def error_type(error: BaseException) -> str:
    """``error.type`` of the conventions: the vendor code, the HTTP status, or the class."""
    if isinstance(error, APIError):
        return str(error.code)
    if isinstance(error, BadResponseError) and error.status_code != 200:
        return str(error.status_code)
    return type(error).__name__


class Telemetry:
    """The tracer and instruments of one client, and what every span of it shares."""

    def __init__(
        self,
        base_url: str,
        operations: Mapping[str, str],
        shown_url: Callable[[str, int], str],
        *,
        emit: bool,
    ) -> None:
        from . import __version__

        parts = urlsplit(base_url)  # its userinfo, if any, never goes into an attribute
        self.emit = emit
        self.operations = operations
        self.shown_url = shown_url
        self.server: dict[str, Any] = {
            "server.address": parts.hostname or "",
            "server.port": parts.port or _DEFAULT_PORTS.get(parts.scheme, 443),
        }
        self.tracer = trace.get_tracer(_SCOPE, __version__)
        meter = metrics.get_meter(_SCOPE, __version__)
        self.duration = meter.create_histogram(
            "http.client.request.duration",
            unit="s",
            description="Duration of HTTP client requests.",
            explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
        )
        self.permit_wait = meter.create_histogram(
            "tencent_chat.permit.wait_duration",
            unit="s",
            description="Time an attempt waited for its rate permit, per endpoint.",
            explicit_bucket_boundaries_advisory=_WAIT_BUCKETS,
        )
        self.calls = meter.create_counter(
            "tencent_chat.calls",
            unit="{call}",
            description="Calls finished, by endpoint and outcome.",
        )
        self.tracing = self.measuring = False
        self.look_again_at = -math.inf

    def look_again(self) -> None:
        """Ask the API whether the application set a tracer or a meter provider.

        Asking costs two environment look-ups while none is set, so calls ask at most
        once a second (``look_again_at``); a provider once set stays (the API lets a
        global provider be set once).
        """
        self.tracing = not isinstance(trace.get_tracer_provider(), _UNSET_TRACING)
        self.measuring = not isinstance(metrics.get_meter_provider(), _UNSET_METRICS)
        forever = self.tracing and self.measuring
        self.look_again_at = math.inf if forever else _clock() + _LOOK_AGAIN_EVERY


class CallTrace(CallObserver):
    """One call: its INTERNAL span (when tracing), parent of its attempts' CLIENT spans.

    During an attempt the context that hides the request from the stock HTTP
    instrumentations is attached; it is detached when the attempt ends.
    """

    __slots__ = (
        "attempt_span",
        "endpoint",
        "measure",
        "permit_wait",
        "sent_at",
        "span",
        "telemetry",
        "token",
    )

    def __init__(self, telemetry: Telemetry, endpoint: str, priority: str) -> None:
        self.telemetry = telemetry
        self.endpoint = endpoint
        self.span: trace.Span | None = None
        self.attempt_span: trace.Span | None = None
        self.token: object = None
        self.permit_wait: float | None = None
        self.sent_at = 0.0
        if telemetry.emit and telemetry.look_again_at <= _clock():
            telemetry.look_again()
        self.measure = telemetry.emit and telemetry.measuring
        if telemetry.emit and telemetry.tracing:
            name = telemetry.operations.get(endpoint, endpoint)
            try:
                self.span = telemetry.tracer.start_span(
                    f"tencent_chat {name}",
                    kind=trace.SpanKind.INTERNAL,
                    attributes={
                        "tencent_chat.endpoint": endpoint,
                        "tencent_chat.priority": priority,
                    },
                )
            except Exception:
                _failed("starting a call's span")

    def attempt_started(self, call: PendingCall, attempt: int, permit_wait: float | None) -> None:
        """Open the attempt's CLIENT span and hide the request from other instrumentations."""
        self.permit_wait = permit_wait
        self.attempt_span = None
        context = otel_context.get_current()
        if self.span is not None:
            # What is known before sending goes in at the start, where samplers see it.
            random = call.random or 0
            starting: dict[str, Any] = {
                "http.request.method": "POST",
                **self.telemetry.server,
                "url.full": self.telemetry.shown_url(self.endpoint, random),
                "tencent_chat.endpoint": self.endpoint,
                "tencent_chat.random": random,
            }
            if attempt > 1:
                starting["http.request.resend_count"] = attempt - 1
            if permit_wait is not None:
                starting["tencent_chat.permit_wait"] = permit_wait
            parent = trace.set_span_in_context(self.span, context)
            try:
                self.attempt_span = self.telemetry.tracer.start_span(
                    "POST", parent, kind=trace.SpanKind.CLIENT, attributes=starting
                )
                context = trace.set_span_in_context(self.attempt_span, context)
            except Exception:
                _failed("starting an attempt's span")
        context = otel_context.set_value(_SUPPRESS_HTTP_INSTRUMENTATION_KEY, True, context)
        self.token = otel_context.attach(context)
        self.sent_at = _now() if self.measure else 0.0

    def attempt_ended(
        self,
        call: PendingCall,
        attempt: int,
        started: float,
        outcome: BaseException | None,
        request_id: str | None,
    ) -> None:
        """Detach the context; close the attempt's span with what it ended with."""
        if self.token is None:
            return
        otel_context.detach(self.token)  # type: ignore[arg-type]
        self.token = None
        if self.measure or self.attempt_span is not None:
            try:
                self._attempt_done(outcome, request_id)
            except Exception:
                _failed("ending an attempt's span")

    def _attempt_done(self, error: BaseException | None, request_id: str | None) -> None:
        status = _status_code(error)
        if self.measure:
            telemetry = self.telemetry
            measured: dict[str, Any] = {
                "http.request.method": "POST",
                **telemetry.server,
                "tencent_chat.endpoint": self.endpoint,
            }
            if status is not None:
                measured["http.response.status_code"] = status
            if error is not None:
                measured["error.type"] = error_type(error)
            telemetry.duration.record(_now() - self.sent_at, measured)
            if self.permit_wait is not None:
                by_endpoint = {"tencent_chat.endpoint": self.endpoint}
                telemetry.permit_wait.record(self.permit_wait, by_endpoint)
        if self.attempt_span is not None:
            ending = {"http.response.status_code": status, "tencent_chat.request_id": request_id}
            _end(self.attempt_span, ending, error)

    def call_ended(
        self, call: PendingCall, outcome: BaseException | None, request_id: str | None
    ) -> None:
        """Close the call's span; count the call by its outcome."""
        if self.measure or self.span is not None:
            try:
                self._call_done(outcome, call.random, request_id)
            except Exception:
                _failed("ending a call's span")

    def _call_done(
        self, error: BaseException | None, random: int | None, request_id: str | None
    ) -> None:
        if self.measure:
            attributes: dict[str, Any] = {"tencent_chat.endpoint": self.endpoint}
            if error is not None:
                attributes["tencent_chat.outcome"] = "error"
                attributes["error.type"] = error_type(error)
            else:
                attributes["tencent_chat.outcome"] = "ok"
            self.telemetry.calls.add(1, attributes)
        if self.span is not None:
            ending = {"tencent_chat.random": random, "tencent_chat.request_id": request_id}
            _end(self.span, ending, error, record_exception=True)


def _failed(doing: str) -> None:
    # A failure of OpenTelemetry (a span processor's, say) must not fail the call.
    logger.exception("OpenTelemetry failed %s; the call goes on", doing)


def _status_code(error: BaseException | None) -> int | None:
    if error is None or isinstance(error, APIError):
        return 200  # a vendor error code comes in a 200 answer
    if isinstance(error, BadResponseError):
        return error.status_code
    return None


def _end(
    span: trace.Span,
    ending: dict[str, Any],
    error: BaseException | None,
    *,
    record_exception: bool = False,
) -> None:
    """End ``span`` with the ``ending`` attributes that are known, and the failure if any."""
    if span.is_recording():
        span.set_attributes({name: value for name, value in ending.items() if value is not None})
        if error is not None:
            mark_failed(span, error)
            if record_exception and isinstance(error, RequestError):
                span.record_exception(error)
    span.end()


def mark_failed(span: trace.Span, error: BaseException) -> None:
    span.set_attribute("error.type", error_type(error))
    if isinstance(error, APIError):
        span.set_attribute("tencent_chat.error_code", error.code)
        if error.request_id is not None:
            span.set_attribute("tencent_chat.request_id", error.request_id)
    # Redacted: a bulk run ends with whatever ended it (the caller's own generator's
    # error, say), not only with the SDK's errors, whose text already is.
    span.set_status(trace.Status(trace.StatusCode.ERROR, redact(str(error))))
