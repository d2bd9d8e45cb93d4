"""OpenTelemetry for callbacks: a span per callback, a child span per handler, three metrics.

As the client's (``_telemetry``): active when ``opentelemetry-api`` is installed, through
the global providers, off when ``OTEL_PYTHON_INSTRUMENTATION_TENCENT_CHAT_ROBOTS_ENABLED``
is ``false``. The web framework owns the SERVER span, so a callback's span is INTERNAL,
under it. Spans carry the command, the robot and the outcome, never the token, the Sign
or the message's text.
"""

from __future__ import annotations

import contextlib
import os
import traceback
from collections.abc import Iterator
from time import perf_counter
from typing import Any

from .. import _telemetry
from .._logs import logger
from .._redact import redact

try:
    from opentelemetry import metrics, trace
except ImportError:  # the optional extra is not installed
    trace = None  # type: ignore[assignment]

__all__ = ["CallbackTelemetry", "CallbackTrace", "HandlerTrace", "make_callback_telemetry"]

_SCOPE = "tencent_chat_robots"
COMMAND = "tencent_chat.callback.command"
OUTCOME = "tencent_chat.callback.outcome"
REASON = "tencent_chat.callback.refusal"
ROBOT = "tencent_chat.robot"
HANDLER_OUTCOME = "tencent_chat.handler.outcome"
# An acknowledgement takes milliseconds; a signal's handler up to its deadline (< 2 s).
_ACK_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 1.5, 2]
_HANDLER_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]


def make_callback_telemetry() -> CallbackTelemetry | None:
    """A :class:`CallbackTelemetry` if OpenTelemetry is installed and not turned off."""
    # The client's switch: tests that take OpenTelemetry away take it from both.
    if trace is None or getattr(_telemetry, "otel_context", None) is None:
        return None
    if os.environ.get(_telemetry.ENV_ENABLED, "true").strip().lower() == "false":
        return None
    return CallbackTelemetry()


class CallbackTelemetry:
    """The tracer and instruments every callback of one receiver shares."""

    def __init__(self) -> None:
        from .. import __version__

        self.tracer = trace.get_tracer(_SCOPE, __version__)
        meter = metrics.get_meter(_SCOPE, __version__)
        self.callbacks = meter.create_counter(
            "tencent_chat.callbacks",
            unit="{callback}",
            description="Callbacks received, by command and outcome.",
        )
        self.ack_duration = meter.create_histogram(
            "tencent_chat.callback.ack.duration",
            unit="s",
            description="Time from a callback's arrival to its answer.",
            explicit_bucket_boundaries_advisory=_ACK_BUCKETS,
        )
        self.handler_duration = meter.create_histogram(
            "tencent_chat.callback.handler.duration",
            unit="s",
            description="Time a callback's handler ran, by command and outcome.",
            explicit_bucket_boundaries_advisory=_HANDLER_BUCKETS,
        )


def _failed(doing: str) -> None:
    # A failure of OpenTelemetry (a span processor's, say) must not fail the callback.
    logger.exception("OpenTelemetry failed %s; the callback goes on", doing)


class CallbackTrace:
    """One callback's span and measures; without telemetry every method does nothing."""

    __slots__ = ("command", "robot", "span", "started", "telemetry")

    def __init__(self, telemetry: CallbackTelemetry | None, command: str) -> None:
        self.telemetry = telemetry
        self.command = command
        self.robot: str | None = None
        self.started = perf_counter()
        self.span: Any = None
        if telemetry is not None:
            try:
                self.span = telemetry.tracer.start_span(
                    f"tencent_chat callback {command}",
                    kind=trace.SpanKind.INTERNAL,
                    attributes={COMMAND: command},
                )
            except Exception:
                _failed("starting a callback's span")

    def identify(self, command: str, robot: str | None) -> None:
        """Name the callback by its verified command and robot."""
        self.command, self.robot = command, robot
        if self.span is not None and self.span.is_recording():
            self.span.update_name(f"tencent_chat callback {command}")
            self.span.set_attribute(COMMAND, command)
            if robot is not None:
                self.span.set_attribute(ROBOT, robot)

    @contextlib.contextmanager
    def current(self) -> Iterator[None]:
        """Make the callback's span current: a handler task made inside inherits it."""
        if self.span is None:
            yield
            return
        with trace.use_span(self.span, record_exception=False, set_status_on_exception=False):
            yield

    def end(self, outcome: str, reason: str | None) -> None:
        """End the span and count the callback with its outcome (and refusal reason)."""
        if self.telemetry is None:
            return
        try:
            measured = {COMMAND: self.command, OUTCOME: outcome}
            self.telemetry.callbacks.add(1, measured)
            self.telemetry.ack_duration.record(perf_counter() - self.started, measured)
            if self.span is not None:
                self.span.set_attribute(OUTCOME, outcome)
                if reason is not None:
                    self.span.set_attribute(REASON, reason)
                if outcome == "error":
                    self.span.set_status(trace.Status(trace.StatusCode.ERROR, "internal error"))
                self.span.end()
        except Exception:
            _failed("ending a callback's span")

    def handler(self) -> HandlerTrace:
        """The trace of this callback's handler, to start inside the handler's task."""
        return HandlerTrace(self.telemetry, self.command, self.robot)


class HandlerTrace:
    """A handler's run: a child span of the callback's (through the task's context),
    current while the handler runs."""

    __slots__ = ("command", "robot", "span", "started", "telemetry")

    def __init__(self, telemetry: CallbackTelemetry | None, command: str, robot: str | None):
        self.telemetry = telemetry
        self.command = command
        self.robot = robot
        self.span: Any = None
        self.started = 0.0

    def start(self) -> None:
        self.started = perf_counter()
        if self.telemetry is None:
            return
        attributes = {COMMAND: self.command}
        if self.robot is not None:
            attributes[ROBOT] = self.robot
        try:
            self.span = self.telemetry.tracer.start_span(
                f"tencent_chat handle {self.command}",
                kind=trace.SpanKind.INTERNAL,
                attributes=attributes,
            )
        except Exception:
            _failed("starting a handler's span")

    @contextlib.contextmanager
    def current(self) -> Iterator[None]:
        """Make the handler's span current: the handler's own spans are its children."""
        if self.span is None:
            yield
            return
        with trace.use_span(
            self.span, end_on_exit=False, record_exception=False, set_status_on_exception=False
        ):
            yield

    def end(self, outcome: str, error: BaseException | None = None) -> None:
        """End the span with ``outcome`` (ok, error, timeout, cancelled); measure the run."""
        if self.telemetry is None or not self.started:
            return
        try:
            measured = {COMMAND: self.command, HANDLER_OUTCOME: outcome}
            self.telemetry.handler_duration.record(perf_counter() - self.started, measured)
            if self.span is None:
                return
            self.span.set_attribute(HANDLER_OUTCOME, outcome)
            if error is not None:
                # The handler's message and traceback may quote a secret: redacted.
                message = redact(str(error))
                stack = "".join(traceback.format_exception(type(error), error, error.__traceback__))
                self.span.record_exception(
                    error,
                    attributes={
                        "exception.message": message,
                        "exception.stacktrace": redact(stack),
                    },
                )
                self.span.set_attribute("error.type", type(error).__qualname__)
                self.span.set_status(trace.Status(trace.StatusCode.ERROR, message))
            elif outcome != "ok":
                self.span.set_status(trace.Status(trace.StatusCode.ERROR, outcome))
            self.span.end()
        except Exception:
            _failed("ending a handler's span")
