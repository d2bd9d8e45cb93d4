"""The request loop: one call from a request object to a parsed result.

Per attempt: take an in-flight slot for the endpoint, take a rate permit right before
sending (so waiting for either is not part of the timeout; both are waited for in the
call's priority class, within its ``max_wait``), sign, send, check the envelope. After a
failed attempt the loop asks ``_retry.retry_decision`` and does what it says; nothing
else retries.

Every call is registered with its caller's task, which :meth:`RequestSender.aclose`
cancels: at once for calls waiting (for a slot, a permit or a backoff), after a grace
period for requests on the wire. Either way the caller gets :class:`ClientClosedError`.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import math
import random
import weakref
from collections.abc import Awaitable, Callable
from time import perf_counter
from typing import Any, TypeVar, cast
from urllib.parse import quote

import anyio
import attrs
import cattrs

from ._auth import UserSigProvider
from ._constants import RATE_LIMITED_PAUSE
from ._exceptions import (
    BadResponseError,
    BulkStoppedError,
    ClientClosedError,
    QueueTimeoutError,
    RateLimitError,
    RequestError,
    TencentChatError,
    error_class_for,
)
from ._limiter import Limiter, PausableLimiter, serves_priorities
from ._logs import logger
from ._models import ActionResult, AttemptRecord, converter
from ._options import CallOptions
from ._redact import REDACTED, SignedURL, redact, without_userinfo
from ._retry import RetryState, next_state, retry_decision
from ._sentry import install_if_loaded as install_sentry_scrubber
from ._telemetry import AttemptTrace, CallTrace, Telemetry
from ._transport import RawResponse, Transport
from ._waiters import InFlightSlots

__all__ = ["CURRENT_GROUP", "CallGroup", "RequestSender", "stopped_error"]


T = TypeVar("T")


def _debugging() -> bool:
    return logger.isEnabledFor(logging.DEBUG)


_EXCERPT_CHARS = 200
_INFO_CHARS = 2000  # of a vendor ErrorInfo kept on the error (the documented ones are short)
# One encoder for every call: json.dumps with options builds a new one each time.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def _excerpt(content: bytes) -> str:
    text = content[: _EXCERPT_CHARS * 4].decode("utf-8", "replace")
    text = "".join(ch if ch.isprintable() else " " for ch in text[:_EXCERPT_CHARS])
    return redact(" ".join(text.split()))


def _bad_response(
    message: str, status_code: int, content: bytes, endpoint: str
) -> BadResponseError:
    return BadResponseError(
        message, status_code=status_code, excerpt=_excerpt(content), endpoint=endpoint
    )


def parse_envelope(response: RawResponse, endpoint: str) -> dict[str, Any]:
    """The JSON object of a successful answer; raise the typed error for any other."""
    # The body may echo the signed URL (a proxy's error page does): it is read in a
    # frame that returns, so that no frame of the traceback holds it in a local.
    outcome = _read_envelope(response, endpoint)
    if isinstance(outcome, TencentChatError):
        raise outcome
    return outcome


def _read_envelope(response: RawResponse, endpoint: str) -> dict[str, Any] | TencentChatError:
    status, content = response.status_code, response.content
    if status != 200:
        return _bad_response(f"HTTP {status} from {endpoint}", status, content, endpoint)
    try:
        data = json.loads(content)
    except (ValueError, RecursionError):  # RecursionError: absurdly nested JSON
        data = None
    code = data.get("ErrorCode") if isinstance(data, dict) else None
    # bool is an int subclass; a JSON true is not an error code.
    if not isinstance(data, dict) or type(code) is not int:
        message = f"answer from {endpoint} is not the documented JSON envelope"
        return _bad_response(message, status, content, endpoint)
    if code != 0:
        info = data.get("ErrorInfo")
        request_id = data.get("RequestId")
        return error_class_for(code)(
            code,
            # Capped: a broken upstream's megabytes would be scanned for secrets.
            redact(info[:_INFO_CHARS]) if isinstance(info, str) else "",
            request_id=request_id if isinstance(request_id, str) else None,
            endpoint=endpoint,
        )
    if data.get("ActionStatus") != "OK":
        message = (
            f"answer from {endpoint} has ErrorCode 0 but ActionStatus {data.get('ActionStatus')!r}"
        )
        return _bad_response(message, status, content, endpoint)
    return data


def _structure(
    data: dict[str, Any], result_type: type[T], endpoint: str, sent_random: int | None
) -> T | BadResponseError:
    """``data`` as ``result_type``, or the error saying its fields have the wrong type."""
    try:
        return converter.structure(data, result_type)
    except (cattrs.BaseValidationError, TypeError, ValueError) as err:
        failure = err
    message = f"answer from {endpoint} has fields of the wrong type"
    bad = _bad_response(message, 200, json.dumps(data).encode(), endpoint)
    bad.random = sent_random
    request_id = data.get("RequestId")
    bad.request_id = request_id if isinstance(request_id, str) else None
    bad.__cause__ = _without_frames(failure)  # cattrs' frames hold the answer
    return bad


def _without_frames(err: BaseException) -> BaseException:
    """``err`` and the errors it groups (cattrs groups one per field), without frames."""
    err.__traceback__ = None
    for inner in getattr(err, "exceptions", ()):
        if isinstance(inner, BaseException):
            _without_frames(inner)
    return err


class _PendingCall:
    """One call in progress, as :meth:`RequestSender.aclose` and a bulk run see it."""

    __slots__ = ("closed_it", "group", "on_wire", "random", "request_sent", "stopped_it", "task")

    def __init__(self, task: asyncio.Task[Any] | None, group: CallGroup | None) -> None:
        self.task = task  # the caller's task, which the call runs in
        self.group = group  # the bulk run making the call, if one is
        self.on_wire = False  # a request of this call is being sent or answered
        self.closed_it = False  # aclose() cancelled the task
        self.stopped_it = False  # its bulk run's stop cancelled the task (never both)
        # The server may have acted: an attempt went unanswered, or was cut off by aclose().
        self.request_sent = False
        self.random: int | None = None  # the ``random`` of the latest attempt sent

    def cancel(self, *, by_close: bool = True) -> None:
        """Cancel the caller's task, once, noting who did it."""
        if not (self.closed_it or self.stopped_it) and self.task is not None:
            self.closed_it, self.stopped_it = by_close, not by_close
            self.request_sent = self.request_sent or self.on_wire
            self.task.cancel()


class CallGroup:
    """The calls of one bulk run's workers, which the run stops together.

    A worker sets :data:`CURRENT_GROUP` to its run's group around each call, and the
    call joins the group. The request loop reports to it what sizes the run's worker
    pool: time on the wire and calls waiting out a retry's backoff.
    """

    __slots__ = (
        "__weakref__",
        "_older_min",
        "_samples",
        "_window_min",
        "backing_off",
        "calls",
        "on_close",
        "stopping",
    )

    _WINDOW = 256  # answers per window of the shortest time on the wire

    def __init__(self) -> None:
        self.calls: set[_PendingCall] = set()
        self.on_close: Callable[[], object] | None = None  # called when the client closes
        self.stopping = False  # no attempt starts from now on
        self.backing_off = 0
        self._older_min = self._window_min = math.inf
        self._samples = 0

    @property
    def wire_seconds(self) -> float:
        """The shortest time on the wire lately: the network's, without queueing.

        Not the mean: time waiting for a busy event loop to read the answer counts on
        the wire too, and a pool sized by it would grow the queue that made it.
        """
        shortest = min(self._older_min, self._window_min)
        return 0.0 if shortest == math.inf else shortest  # no answer yet: start small

    def stop(self, *, cancel_sent: bool) -> None:
        """End the calls not on the wire now (and, if ``cancel_sent``, those too)."""
        self.stopping = True
        for call in list(self.calls):
            if cancel_sent or not call.on_wire:
                call.cancel(by_close=False)

    def observe_wire(self, seconds: float) -> None:
        self._window_min = min(self._window_min, seconds)
        self._samples += 1
        if self._samples >= self._WINDOW:
            self._older_min, self._window_min, self._samples = self._window_min, math.inf, 0


CURRENT_GROUP: contextvars.ContextVar[CallGroup | None] = contextvars.ContextVar(
    "tencent_chat_robots_call_group", default=None
)


def _fate(request_sent: bool) -> str:
    """What an ended call's error says of its request."""
    return "may have reached the server" if request_sent else "was not sent"


def stopped_error(endpoint: str, request_sent: bool, what: str = "") -> BulkStoppedError:
    """The error of a call its bulk run stopped (``what``: when, if not before sending)."""
    return BulkStoppedError(
        f"the bulk run was stopped{what}; {endpoint} {_fate(request_sent)}",
        endpoint=endpoint,
        request_sent=request_sent,
    )


def _cancelled_by_others(task: asyncio.Task[Any] | None) -> bool:
    """Take back aclose()'s cancellation of ``task``; true if another one is pending.

    Python 3.11+ counts cancellations (``asyncio.timeout`` and task groups rely on the
    count); 3.10 cannot tell two apart, so there the close's reading wins.
    """
    uncancel = getattr(task, "uncancel", None)
    return uncancel is not None and uncancel() > 0


async def finish_despite_cancel(awaitable: Awaitable[object]) -> None:
    """Await ``awaitable`` to its end even if cancelled meanwhile, then re-raise that.

    For clean-up that must not be cut short (anyio's shielded scopes do not hold off a
    plain ``Task.cancel()``).
    """
    task = asyncio.ensure_future(awaitable)
    cancelled: asyncio.CancelledError | None = None
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError as err:
            cancelled = err
    task.result()
    if cancelled is not None:
        raise cancelled


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:  # another anyio backend: nothing loop-bound to check
        return None


class RequestSender:
    """Signs, paces, sends and retries requests for one app; shared by every endpoint."""

    def __init__(
        self,
        *,
        base_url: str,
        sdkappid: int,
        admin: str,
        usersig: UserSigProvider,
        transport: Transport,
        limiter: Limiter | None,
        max_in_flight: int,
        on_attempt: Callable[[AttemptRecord], object] | None = None,
        telemetry: Telemetry | None = None,
    ) -> None:
        self._prefix = base_url.rstrip("/") + "/v4/"
        # What url.full shows: no user:password of a proxy's base_url either.
        self._shown_prefix = without_userinfo(base_url.rstrip("/")) + "/v4/"
        self._query_head = f"?sdkappid={sdkappid}&identifier={quote(admin, safe='')}&usersig="
        self._usersig = usersig
        self._transport = transport
        self._limiter = limiter
        self._pausable = limiter if isinstance(limiter, PausableLimiter) else None
        self._ranked = limiter is not None and serves_priorities(limiter)
        predict = getattr(limiter, "predicted_wait", None) if self._ranked else None
        self._predict: Callable[..., float] | None = predict if callable(predict) else None
        self._max_in_flight = max_in_flight
        self._slots: dict[str, InFlightSlots] = {}
        self._on_attempt = on_attempt
        self._telemetry = telemetry
        self._pending: set[_PendingCall] = set()
        # The bulk runs using this sender, told when it closes (they may be waiting on
        # their own source, with no call pending).
        self.groups: weakref.WeakSet[CallGroup] = weakref.WeakSet()
        self._drained: anyio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.closed = False

    async def request(
        self, endpoint: str, body: object, result_type: type[T], options: CallOptions
    ) -> T:
        """POST ``body`` to ``endpoint`` and return the answer as ``result_type``."""
        if self.closed:
            raise ClientClosedError(
                f"this client was closed; {endpoint} was not sent (make a new TencentChat)",
                endpoint=endpoint,
            )
        self._check_loop()
        install_sentry_scrubber()  # once Sentry is imported: a flag test until then
        payload = _ENCODER.encode(converter.unstructure(body)).encode()
        # The caller's task is cancelled directly rather than through a cancel scope of
        # anyio's: a scope costs several microseconds on every call.
        group = CURRENT_GROUP.get()
        if group is not None and group.stopping:
            raise stopped_error(endpoint, False)
        call = _PendingCall(asyncio.current_task() if self._loop is not None else None, group)
        trace = (
            self._telemetry.start_call(endpoint, options.priority)
            if self._telemetry is not None
            else None
        )
        self._pending.add(call)
        if group is not None:
            group.calls.add(call)
        outcome: BaseException | None = None
        try:
            result = await self._call(endpoint, payload, result_type, options, call, trace)
        except asyncio.CancelledError as cancelled:
            outcome = self._closed_error(endpoint, call) or cancelled
            if outcome is cancelled:
                raise
        except BaseException as error:
            outcome = error
            raise
        finally:
            self._pending.discard(call)
            if group is not None:
                group.calls.discard(call)
            if not self._pending and self._drained is not None:
                self._drained.set()
            if trace is not None:
                request_id = getattr(result, "request_id", None) if outcome is None else None
                trace.finish(outcome, call.random, request_id)
        if outcome is not None:
            # Raised outside the except block: the cancellation is no part of its story.
            raise outcome
        return result

    def _closed_error(self, endpoint: str, call: _PendingCall) -> RequestError | None:
        """The error for a call that :meth:`aclose` or its bulk run cancelled; ``None`` if
        someone else did."""
        if not (call.closed_it or call.stopped_it) or _cancelled_by_others(call.task):
            return None
        if call.stopped_it:
            stopped = stopped_error(endpoint, call.request_sent, " while the call was pending")
            stopped.random = call.random
            return stopped
        error = ClientClosedError(
            f"the client was closed while {endpoint} was pending; the request"
            f" {_fate(call.request_sent)}",
            endpoint=endpoint,
            request_sent=call.request_sent,
        )
        error.random = call.random
        return error

    def _check_loop(self) -> None:
        loop = _running_loop()
        if self._loop is None:
            self._loop = loop
        elif loop is not self._loop:
            # Connections, locks and timers belong to the loop that made them; using them
            # from another loop fails deep inside the transport with no useful message.
            raise TencentChatError(
                "this TencentChat was first used on another event loop"
                f"{' (now closed)' if self._loop.is_closed() else ''}; a client serves one"
                " loop: create it inside the code that runs on it (one per asyncio.run())"
            )

    async def _call(
        self,
        endpoint: str,
        payload: bytes,
        result_type: type[T],
        options: CallOptions,
        call: _PendingCall,
        trace: CallTrace | None,
    ) -> T:
        state: RetryState | None = None  # made on the first failure: most calls never fail
        settled = False
        while True:
            try:
                number = state.attempt if state else 1
                data = await self._attempt(endpoint, payload, number, options, call, trace)
                break
            except TencentChatError as error:
                if state is None:
                    state = RetryState(
                        endpoint,
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
                if self.closed:
                    closed = ClientClosedError(
                        f"the client was closed; {endpoint} is not retried after: {error}",
                        endpoint=endpoint,
                        request_sent=state.maybe_processed,
                    )
                    closed.random = call.random
                    raise closed from error
                if call.group is not None and call.group.stopping:
                    stopped = stopped_error(endpoint, state.maybe_processed, f" after: {error}")
                    stopped.random = call.random
                    raise stopped from error
                logger.warning(
                    "retrying %s after %s (attempt %d, waiting %.2fs): %s",
                    endpoint,
                    type(error).__name__,
                    failed.attempt,
                    decision.delay,
                    redact(str(error)),
                )
                if decision.renew_usersig:
                    self._usersig.renew()
                if call.group is None:
                    await anyio.sleep(decision.delay)
                else:
                    call.group.backing_off += 1
                    try:
                        await anyio.sleep(decision.delay)
                    finally:
                        call.group.backing_off -= 1
        # Structured in a frame that returns, and this frame lets go of the answer, for the
        # reason given in parse_envelope.
        result = _structure(data, result_type, endpoint, call.random)
        data = {}
        if isinstance(result, BadResponseError):
            raise result
        if isinstance(result, ActionResult):
            # Only endpoints answering ActionResult settle (see _retry.ALREADY_DONE).
            return cast(T, attrs.evolve(result, random=call.random, settled_on_retry=settled))
        return result

    def _url(self, endpoint: str, usersig: str, random_value: int, prefix: str = "") -> str:
        return (
            f"{prefix or self._prefix}{endpoint}{self._query_head}{usersig}"
            f"&random={random_value}&contenttype=json"
        )

    async def _attempt(
        self,
        endpoint: str,
        payload: bytes,
        number: int,
        options: CallOptions,
        call: _PendingCall,
        trace: CallTrace | None,
    ) -> dict[str, Any]:
        deadline = None if options.max_wait is None else anyio.current_time() + options.max_wait
        slots = self._slots.get(endpoint)
        if slots is None:
            slots = self._slots[endpoint] = InFlightSlots(self._max_in_flight, endpoint)
        if not slots.take(options.rank):
            try:
                if deadline is not None and self._predict is not None:
                    self._refuse_if_late(endpoint, options, deadline, slots.ahead(options.rank))
                await slots.wait(options.rank, deadline)
            except QueueTimeoutError as err:
                raise self._queue_timeout(endpoint, err, options, call) from None
        try:
            permit_wait = None
            if self._limiter is not None:
                asked = perf_counter()
                await self._permit(endpoint, options, deadline, call)
                permit_wait = perf_counter() - asked
            if self.closed:  # closed while this caller was being resumed
                raise ClientClosedError(
                    f"the client was closed; {endpoint} was not sent", endpoint=endpoint
                )
            if call.group is not None and call.group.stopping:
                raise stopped_error(endpoint, call.request_sent)
            call.random = sent_random = random.getrandbits(32)
            attempt = None
            if trace is not None:
                attempt = trace.start_attempt(
                    number,
                    sent_random,
                    permit_wait,
                    lambda: self._url(endpoint, REDACTED, sent_random, self._shown_prefix),
                )
            timed = self._on_attempt is not None or call.group is not None
            started = anyio.current_time() if timed else 0.0
            call.on_wire = True
            outcome: BaseException | None = None
            data: dict[str, Any] = {}
            try:
                # The signed URL is made inline, as an argument: a local variable holding
                # it would be recorded by error trackers with this frame.
                response = await self._transport.post(
                    SignedURL(self._url(endpoint, self._usersig.current(), sent_random)),
                    payload,
                    timeout=options.timeout,
                )
                data = parse_envelope(response, endpoint)
            except TencentChatError as err:
                call.on_wire = False  # answered, or dropped: what follows is not the wire
                outcome = err
                if isinstance(err, RequestError):
                    err.random = sent_random
                    if err.endpoint is None:
                        err.endpoint = endpoint
                if isinstance(err, RateLimitError) and self._pausable is not None:
                    # Everyone sharing the limiter backs off, not only this caller.
                    await self._pausable.pause(endpoint, RATE_LIMITED_PAUSE)
                raise
            except BaseException as err:  # cancelled: the call ends here
                outcome = err
                raise
            finally:
                call.on_wire = False
                if call.group is not None:
                    call.group.observe_wire(anyio.current_time() - started)
                if attempt is not None or self._on_attempt is not None or _debugging():
                    self._attempt_done(
                        endpoint, number, sent_random, started, outcome, data, attempt
                    )
        finally:
            slots.release()
        return data

    async def _permit(
        self, endpoint: str, options: CallOptions, deadline: float | None, call: _PendingCall
    ) -> None:
        """Wait for the limiter's permit in the call's class, until ``deadline``."""
        limiter = self._limiter
        assert limiter is not None  # the caller's check
        try:
            if self._ranked:
                await limiter.acquire(  # type: ignore[call-arg]
                    endpoint, priority=options.priority, deadline=deadline
                )
            elif deadline is None:
                await limiter.acquire(endpoint)
            else:  # a limiter of the one-class protocol: the wait is cut off at the deadline
                with anyio.CancelScope(deadline=deadline) as scope:
                    await limiter.acquire(endpoint)
                if scope.cancelled_caught:
                    if call.closed_it or call.stopped_it:  # cancelled too, in the same instant
                        raise asyncio.CancelledError
                    raise QueueTimeoutError("no rate permit in time", endpoint=endpoint)
        except QueueTimeoutError as err:
            raise self._queue_timeout(endpoint, err, options, call) from None

    def _refuse_if_late(
        self, endpoint: str, options: CallOptions, deadline: float, slot_waiters: int
    ) -> None:
        """Raise at once if the callers queued for slots ahead owe more starts than fit.

        Each of them takes a start before this call does: a slot first (in class order),
        then a permit, queued ahead of it.
        """
        assert self._predict is not None  # the caller's check
        wait = self._predict(
            endpoint, priority=options.priority, also_ahead=slot_waiters, deadline=deadline
        )
        if anyio.current_time() + wait > deadline + 1e-9:
            raise QueueTimeoutError(
                f"the rate permit for {endpoint} would come in {wait:.3f}s at the earliest,"
                f" behind {slot_waiters} callers waiting for an in-flight slot",
                endpoint=endpoint,
                predicted_wait=wait,
            )

    @staticmethod
    def _queue_timeout(
        endpoint: str, err: QueueTimeoutError, options: CallOptions, call: _PendingCall
    ) -> QueueTimeoutError:
        """The caller's error for an attempt that could not start within ``max_wait``."""
        # A limiter may refuse a call with no max_wait (a queue of its own that is full).
        limit = "" if options.max_wait is None else f" (max_wait={options.max_wait:g}s)"
        error = QueueTimeoutError(
            f"{endpoint} was not sent: {err.message}{limit}",
            endpoint=endpoint,
            max_wait=options.max_wait,
            predicted_wait=err.predicted_wait,
            request_sent=call.request_sent,
        )
        error.random = call.random
        return error

    def _attempt_done(
        self,
        endpoint: str,
        number: int,
        sent_random: int,
        started: float,
        outcome: BaseException | None,
        data: dict[str, Any],
        attempt: AttemptTrace | None,
    ) -> None:
        """Tell the observers (span, ``on_attempt``, debug log) how an attempt ended."""
        raw_id = outcome.request_id if isinstance(outcome, RequestError) else data.get("RequestId")
        request_id = raw_id if isinstance(raw_id, str) else None
        if attempt is not None:
            attempt.finish(outcome, request_id)
        if outcome is not None and not isinstance(outcome, TencentChatError):
            return  # a cancellation is no attempt's result
        logger.debug(
            "%s attempt %d (random=%d): %s",
            endpoint,
            number,
            sent_random,
            "OK" if outcome is None else f"{type(outcome).__name__}: {outcome}",
        )
        if self._on_attempt is None:
            return
        record = AttemptRecord(
            endpoint=endpoint,
            attempt=number,
            started=started,
            elapsed=anyio.current_time() - started,
            error=outcome,
            request_id=request_id,
            random=sent_random,
        )
        try:
            self._on_attempt(record)
        except Exception:
            # An observer's bug must not turn a successful call into a failed one.
            logger.exception("on_attempt callback failed for %s", endpoint)

    async def aclose(self, grace: float) -> None:
        """Refuse new calls, end waiting ones now and those on the wire after ``grace`` s."""
        self.closed = True
        if self._drained is None:  # one event for every closer; no call is added from now
            self._drained = anyio.Event()
            if not self._pending:
                self._drained.set()
        for call in list(self._pending):
            if not call.on_wire:
                call.cancel()
        for group in list(self.groups):
            if group.on_close is not None:
                group.on_close()
        try:
            with anyio.move_on_after(grace):
                await self._drained.wait()
        finally:
            for call in list(self._pending):
                call.cancel()
            # A close that is itself cancelled must still leave nothing running.
            await finish_despite_cancel(self._drained.wait())
