"""What watches calls: the one interface the request loop tells, at fixed points.

The loop tells each observer of a call, in order: ``attempt_started`` and
``attempt_ended`` around every request sent, ``backoff`` around a retry's wait, and
``call_ended`` once. Telemetry (``_telemetry.CallTrace``), ``on_attempt``, the debug
log and a bulk run's pool sizing (``_bulk``) are observers; none can fail a call.
"""

from __future__ import annotations

from collections.abc import Callable

import anyio

from ._exceptions import TencentChatError
from ._lifecycle import PendingCall
from ._logs import logger
from ._models import AttemptRecord

__all__ = ["AttemptLog", "CallObserver", "OnAttempt"]


class CallObserver:
    """Watches calls; every method does nothing unless overridden."""

    __slots__ = ()

    def attempt_started(self, call: PendingCall, attempt: int, permit_wait: float | None) -> None:
        """Attempt ``attempt`` (from 1) of ``call`` is about to be sent with ``call.random``."""

    def attempt_ended(
        self,
        call: PendingCall,
        attempt: int,
        started: float,
        outcome: BaseException | None,
        request_id: str | None,
    ) -> None:
        """The attempt sent at ``started`` (event-loop time) ended with ``outcome``
        (``None``: an answer that passed; a cancellation is no vendor result)."""

    def backoff(self, waiting: bool) -> None:
        """A retry's backoff starts (``True``) or ends (``False``)."""

    def call_ended(
        self, call: PendingCall, outcome: BaseException | None, request_id: str | None
    ) -> None:
        """The call is over: ``outcome`` is what it raised, ``None`` if it succeeded."""


class OnAttempt(CallObserver):
    """``TencentChat(on_attempt=...)``: an :class:`AttemptRecord` after every try."""

    __slots__ = ("callback",)

    def __init__(self, callback: Callable[[AttemptRecord], object]) -> None:
        self.callback = callback

    def attempt_ended(
        self,
        call: PendingCall,
        attempt: int,
        started: float,
        outcome: BaseException | None,
        request_id: str | None,
    ) -> None:
        if outcome is not None and not isinstance(outcome, TencentChatError):
            return  # a cancellation is no attempt's result
        record = AttemptRecord(
            endpoint=call.endpoint,
            attempt=attempt,
            started=started,
            elapsed=anyio.current_time() - started,
            error=outcome,
            request_id=request_id,
            random=call.random,
        )
        try:
            self.callback(record)
        except Exception:
            # An observer's bug must not turn a successful call into a failed one.
            logger.exception("on_attempt callback failed for %s", call.endpoint)


class AttemptLog(CallObserver):
    """Each attempt's outcome at DEBUG level (added to a call only while DEBUG is on)."""

    __slots__ = ()

    def attempt_ended(
        self,
        call: PendingCall,
        attempt: int,
        started: float,
        outcome: BaseException | None,
        request_id: str | None,
    ) -> None:
        if outcome is not None and not isinstance(outcome, TencentChatError):
            return
        logger.debug(
            "%s attempt %d (random=%d): %s",
            call.endpoint,
            attempt,
            call.random,
            "OK" if outcome is None else f"{type(outcome).__name__}: {outcome}",
        )
