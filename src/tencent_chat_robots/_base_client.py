"""The request loop: one call from a request body to a parsed result, retries included.

An attempt passes the endpoint's admission gate (an in-flight slot, then a rate
permit: ``_gate``), is signed with a fresh ``random``, sent (``_transport``) and read
(``_envelope``). After a failure the loop asks ``_retry.retry_decision`` and does what
it says; nothing else retries. Closing and stopping are decided in ``_lifecycle``; the
observers (telemetry, ``on_attempt``, logs, a bulk run) are told at fixed points
(``_observers``).

The signed URL never sits in a local variable: it is made inline, as the transport's
argument, because error trackers record every frame's locals. What the transport
raises has been scrubbed of it there, and a foreign error from a user's transport is
scrubbed here, once (``_transport.foreign_failure``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import sys
from collections.abc import Mapping
from typing import Any, TypeVar, cast
from urllib.parse import quote

import anyio

from ._auth import UserSigProvider
from ._endpoints import ENDPOINTS
from ._envelope import ENCODER, parse_envelope, structure
from ._exceptions import (
    APITimeoutError,
    BadResponseError,
    DeadlineExceededError,
    QueueTimeoutError,
    RateLimitError,
    RequestError,
    TencentChatError,
)
from ._gate import Gates
from ._lifecycle import CallScope, Lifecycle, PendingCall, tag
from ._limiter import FullLimiter
from ._logs import logger
from ._models import converter
from ._observers import AttemptLog, CallObserver
from ._options import CallOptions
from ._redact import REDACTED, SignedURL, redact, without_userinfo
from ._retry import RetryState, next_state, retry_decision
from ._sentry import install_if_loaded as install_sentry_scrubber
from ._telemetry import CallTrace, make_telemetry
from ._transport import Transport, foreign_failure

__all__ = ["RequestSender"]

T = TypeVar("T")

_ATTEMPT_LOG = AttemptLog()
_UNFENCED: Any = contextlib.nullcontext()  # reusable: no deadline to keep
# An attempt needs at least this long (s) to be worth sending before a deadline.
MIN_ATTEMPT = 0.001
# A transport's timeout that fired after this share of an attempt's deadline-cut timeout
# was the cut's doing (its timer may start a little before the client's clock reading).
CUT_TIMEOUT_USED = 0.98


class RequestSender:
    """Signs, admits, sends and retries requests for one app; shared by every endpoint."""

    def __init__(
        self,
        *,
        base_url: str,
        sdkappid: int,
        admin: str,
        usersig: UserSigProvider,
        transport: Transport,
        limiter: FullLimiter | None,
        max_in_flight: int,
        observers: tuple[CallObserver, ...] = (),
        operations: Mapping[str, str] | None = None,
    ) -> None:
        self._prefix = base_url.rstrip("/") + "/v4/"
        # What url.full shows: no user:password of a proxy's base_url either.
        self._shown_prefix = without_userinfo(base_url.rstrip("/")) + "/v4/"
        self._query_head = f"?sdkappid={sdkappid}&identifier={quote(admin, safe='')}&usersig="
        self._usersig = usersig
        self._transport = transport
        self._gates = Gates(max_in_flight, limiter, (spec.path for spec in ENDPOINTS))
        self._observers = observers
        self.lifecycle = Lifecycle()
        # ``operations`` names each endpoint's method, for span names.
        self.telemetry = make_telemetry(base_url, operations or {}, self.shown_url)

    @property
    def closed(self) -> bool:
        return self.lifecycle.closed

    def shown_url(self, endpoint: str, random_value: int) -> str:
        """A request's URL as telemetry may show it: the UserSig redacted."""
        return self._url(endpoint, REDACTED, random_value, self._shown_prefix)

    def _url(self, endpoint: str, usersig: str, random_value: int, prefix: str = "") -> str:
        return (
            f"{prefix or self._prefix}{endpoint}{self._query_head}{usersig}"
            f"&random={random_value}&contenttype=json"
        )

    async def request(
        self,
        endpoint: str,
        body: object,
        result_type: type[T],
        options: CallOptions,
        *,
        scope: CallScope | None = None,
        observer: CallObserver | None = None,
        also_paced: str | None = None,
    ) -> T:
        """POST ``body`` to ``endpoint`` and return the answer as ``result_type``.

        ``scope`` (a bulk run's) may stop the call; ``observer`` watches it too;
        ``also_paced`` is a second rate-limit key each attempt waits for (a group's).
        """
        call = self.lifecycle.start(endpoint, scope)
        if "sentry_sdk" in sys.modules:  # Sentry is never imported here
            install_sentry_scrubber()
        observers = self._observers
        if self.telemetry is not None:
            observers = (*observers, CallTrace(self.telemetry, endpoint, options.priority))
        if observer is not None:
            observers = (*observers, observer)
        if logger.isEnabledFor(logging.DEBUG):
            observers = (*observers, _ATTEMPT_LOG)
        outcome: BaseException | None = None
        result: Any = None
        try:
            payload = ENCODER.encode(converter.unstructure(body)).encode()
            result = await self._call(call, payload, result_type, options, observers, also_paced)
        except asyncio.CancelledError as cancelled:
            outcome = self.lifecycle.cancelled(call) or cancelled
            if outcome is cancelled:
                raise
        except BaseException as error:
            outcome = error
            raise
        finally:
            self.lifecycle.finish(call)
            request_id = getattr(result, "request_id", None) if outcome is None else None
            for watcher in observers:
                watcher.call_ended(call, outcome, request_id)
        if outcome is not None:
            # Raised outside the except block: the cancellation is no part of its story.
            raise outcome
        return cast(T, result)

    async def _call(
        self,
        call: PendingCall,
        payload: bytes,
        result_type: type[T],
        options: CallOptions,
        observers: tuple[CallObserver, ...],
        also_paced: str | None,
    ) -> T:
        state: RetryState | None = None  # made on the first failure: most calls never fail
        settled = False
        deadline = None if options.deadline is None else self._now() + options.deadline
        while True:
            try:
                data = await self._attempt(
                    call, payload, state, options, observers, also_paced, deadline
                )
                break
            except TencentChatError as error:
                if state is None:
                    state = RetryState(
                        call.endpoint,
                        retries_left=options.max_retries,
                        can_renew_usersig=self._usersig.can_renew,
                    )
                decision = retry_decision(error, state)
                if decision.settled and isinstance(error, RequestError):
                    data, settled = {"RequestId": error.request_id}, True
                    break
                if not decision.retry:
                    raise
                failed, state = state, next_state(state, error, decision)
                call.request_sent = state.maybe_processed
                self.lifecycle.check(call, after=error)
                if deadline is not None and self._now() + decision.delay >= deadline:
                    raise _past_deadline(
                        call, options, f"a retry after {type(error).__name__} would start past it"
                    ) from error
                logger.warning(
                    "retrying %s after %s (attempt %d, waiting %.2fs): %s",
                    call.endpoint,
                    type(error).__name__,
                    failed.attempt,
                    decision.delay,
                    redact(str(error)),
                )
                if decision.renew_usersig:
                    self._usersig.renew()
                await self._back_off(decision.delay, observers)
        # Structured in a frame that returns, and this frame lets go of the answer, for the
        # reason given in _envelope.
        result = structure(data, result_type, call.endpoint, call.random, settled=settled)
        data = {}
        if isinstance(result, BadResponseError):
            raise result
        return result

    def _now(self) -> float:
        loop = self.lifecycle.loop  # anyio.current_time() costs microseconds a call
        return anyio.current_time() if loop is None else loop.time()

    @staticmethod
    async def _back_off(delay: float, observers: tuple[CallObserver, ...]) -> None:
        for watcher in observers:
            watcher.backoff(True)
        try:
            await anyio.sleep(delay)
        finally:
            for watcher in observers:
                watcher.backoff(False)

    async def _attempt(
        self,
        call: PendingCall,
        payload: bytes,
        state: RetryState | None,
        options: CallOptions,
        observers: tuple[CallObserver, ...],
        also_paced: str | None,
        deadline: float | None,
    ) -> dict[str, Any]:
        number = 1 if state is None else state.attempt
        gate = self._gates[call.endpoint]
        # The deadline, not max_wait, is the bound of this wait (then its refusal says so).
        deadline_binds = deadline is not None and (
            options.max_wait is None or deadline <= self._now() + options.max_wait
        )
        try:
            permit_wait = await gate.enter(options, also_paced, deadline)
        except QueueTimeoutError as err:
            if call.ended_by is not None:  # closed or stopped in the same instant
                raise asyncio.CancelledError from None
            if deadline_binds:
                reason = "no slot or rate permit came before it"
                raise _past_deadline(call, options, reason) from err
            err.request_sent = call.request_sent
            raise tag(err, call) from None
        try:
            self.lifecycle.check(call)  # closed or stopped while this caller was resumed

            timeout = options.timeout
            started = self._now()
            if deadline is not None:
                timeout = min(timeout, deadline - started)
                if timeout < MIN_ATTEMPT:
                    raise _past_deadline(call, options, "no time was left for an attempt")
            call.random = random.getrandbits(32)
            for watcher in observers:
                watcher.attempt_started(call, number, permit_wait)
            call.on_wire = True
            outcome: BaseException | None = None
            data: dict[str, Any] = {}
            # The deadline is kept here too: a transport may overrun its timeout (aiohttp
            # rounds one of 5 s or more up to a whole second; httpx's bounds each read).
            fence = _UNFENCED if deadline is None else anyio.CancelScope(deadline=deadline)
            try:
                with fence:
                    response = await self._transport.post(
                        SignedURL(self._url(call.endpoint, self._usersig.current(), call.random)),
                        payload,
                        timeout=timeout,
                    )
                    data = parse_envelope(response, call.endpoint)
                if fence is not _UNFENCED and fence.cancelled_caught:
                    call.request_sent = True
                    raise _past_deadline(call, options, "no answer came before it")
            except TencentChatError as err:
                call.on_wire = False  # answered, or dropped: what follows is not the wire
                outcome = tag(err, call) if isinstance(err, RequestError) else err
                # The deadline's doing only if the attempt used about all the time it was
                # cut to: a transport may give up early on its own (a connect timeout),
                # and that attempt is retried as any other.
                if (
                    isinstance(err, APITimeoutError)
                    and timeout < options.timeout
                    and self._now() - started >= timeout * CUT_TIMEOUT_USED
                ):
                    call.request_sent = call.request_sent or err.request_sent
                    outcome = _past_deadline(
                        call, options, f"the attempt got no answer in the {timeout:.3f}s left"
                    )
                    raise outcome from err
                if isinstance(err, RateLimitError):
                    await gate.refused_for_rate(err.code, also_paced, until=deadline)
                raise
            except Exception as err:  # not the SDK's: a user's transport, or a bug in one
                outcome = foreign_failure(err, call.endpoint)  # raised below, unchained
                if isinstance(outcome, RequestError):
                    tag(outcome, call)
            except BaseException as err:  # cancelled: the call ends here
                outcome = err
                raise
            finally:
                call.on_wire = False
                if observers:
                    raw_id = (
                        outcome.request_id
                        if isinstance(outcome, RequestError)
                        else data.get("RequestId")
                    )
                    request_id = raw_id if isinstance(raw_id, str) else None
                    for watcher in observers:
                        watcher.attempt_ended(call, number, started, outcome, request_id)
        finally:
            gate.leave()
        if outcome is not None:
            raise outcome
        return data


def _past_deadline(call: PendingCall, options: CallOptions, reason: str) -> DeadlineExceededError:
    error = DeadlineExceededError(
        f"{call.endpoint} did not finish within its deadline of {options.deadline:g}s: {reason}",
        endpoint=call.endpoint,
        deadline=options.deadline,
        request_sent=call.request_sent,
    )
    tag(error, call)
    return error
