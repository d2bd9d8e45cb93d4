"""Work that outlives the request that started it (a bulk run) gets a trace of its own.

A task copies its creator's context, so a bulk run started in a request handler would
put every call span in that request's trace, long after its answer, and Sentry would
file the run's events under the request's transaction. :class:`Background` is a copy
of the context with, instead, a new root span linked to the caller's (OpenTelemetry's
pattern for work that outlives its trigger) and a Sentry scope of its own with no
span, a new trace and the transaction name ``tencent_chat.bulk``. Single awaited calls
are not touched: they stay in their caller's trace.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import sys
from collections.abc import Coroutine, Mapping
from typing import Any, TypeVar

from ._logs import logger
from ._telemetry import Telemetry, mark_failed

__all__ = ["Background"]

T = TypeVar("T")

SPAN_NAME = "tencent_chat.bulk"


class Background:
    """A context of its own for one run's tasks: :meth:`spawn` them, :meth:`end` it once."""

    __slots__ = ("_context", "_exits", "_span")

    def __init__(self, telemetry: Telemetry | None, attributes: Mapping[str, Any]) -> None:
        self._context = contextvars.copy_context()
        self._span: Any = None
        self._exits = contextlib.ExitStack()
        self._context.run(self._enter, telemetry, attributes)

    def spawn(self, coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """A task running ``coro`` in this context (``create_task(context=)`` is 3.11+)."""
        return self._context.run(asyncio.create_task, coro)

    def end(self, attributes: Mapping[str, Any], error: BaseException | None = None) -> None:
        """End the span with ``attributes`` (failed, if ``error`` ended the run) and give
        the scopes back; idempotent."""
        span, self._span = self._span, None
        try:
            self._context.run(self._exits.close)
            if span is not None:
                span.set_attributes(dict(attributes))
                if error is not None:
                    mark_failed(span, error)
                span.end()
        except Exception:  # telemetry must never break the run
            logger.exception("ending a bulk run's span failed")

    def _enter(self, telemetry: Telemetry | None, attributes: Mapping[str, Any]) -> None:
        try:
            if telemetry is not None:
                self._span = _root_span(telemetry, attributes)
            if "sentry_sdk" in sys.modules:  # never imported here
                self._exits.enter_context(_own_sentry_scope())
        except Exception:
            logger.exception("giving a bulk run a trace of its own failed")


def _root_span(telemetry: Telemetry, attributes: Mapping[str, Any]) -> Any:
    """A new trace's root span, linked to the caller's span, made current here."""
    from opentelemetry import context as otel_context
    from opentelemetry import trace

    telemetry.look_again()
    if not (telemetry.emit and telemetry.tracing):
        return None
    caller = trace.get_current_span().get_span_context()
    span = telemetry.tracer.start_span(
        SPAN_NAME,
        context=otel_context.Context(),  # no parent: a root
        kind=trace.SpanKind.INTERNAL,
        links=[trace.Link(caller)] if caller.is_valid else None,
        attributes=dict(attributes),
    )
    otel_context.attach(trace.set_span_in_context(span))  # this copy's only: never detached
    return span


@contextlib.contextmanager
def _own_sentry_scope() -> Any:
    # Entered only once the application imported it: looked up, never imported (an
    # optional dependency, with no stubs where the SDK is type-checked).
    sentry_sdk = sys.modules["sentry_sdk"]

    with sentry_sdk.isolation_scope() as isolation:
        current = sentry_sdk.get_current_scope()
        current.span = None  # not the request's transaction
        for scope in (isolation, current):
            scope.set_new_propagation_context()
            scope.set_transaction_name(SPAN_NAME)  # the forks kept the request's
        yield
