"""``RobotCallbacks``: Tencent Chat's robot events, verified, de-duplicated, handled once.

A callback goes through, in order: closed? (503) · body over ``max_body``? (413) ·
``SdkAppid`` (403) · ``Sign`` and ``RequestTime`` (401) · the body and its command (400)
· the loop guard (200, not handled) · a handler registered? (200, ``unhandled``) · then
:mod:`._admission`: the de-duplication claim (200, ``duplicate``), and the handler
started or queued (after-events: 200 at once; 503 ``saturated`` when the backlog is
full) or run for its answer (signals).
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal, TypeVar

from .._config import require_number
from .._exceptions import ValidationError
from .._redact import box
from .._sentry import install_if_loaded as install_sentry_scrubber
from ._admission import Admission
from ._answers import OK, Answer, Result, envelope
from ._asgi import serve
from ._backlog import Backlog
from ._body import command_of, load_body
from ._claims import Claims
from ._dedup import DedupStore, MemoryDedupStore
from ._events import (
    C2C,
    GROUP,
    SIGNAL,
    BadEvent,
    C2CMessage,
    Event,
    GroupMention,
    SignalMessage,
    UnknownEvent,
    is_loop,
    parse_event,
)
from ._failures import OnError, log_exception
from ._feed import signed_request
from ._limits import LogLimiter, Slots
from ._load import Load
from ._runs import Runs, loop_time
from ._settings import Default, checked_store, checked_token, is_async, warn
from ._trace import CallbackTrace, make_callback_telemetry
from ._verify import Refusal, verify

__all__ = ["Answer", "RobotCallbacks"]

C2CHandler = TypeVar("C2CHandler", bound=Callable[[C2CMessage], Awaitable[None]])
GroupHandler = TypeVar("GroupHandler", bound=Callable[[GroupMention], Awaitable[None]])
SignalHandler = TypeVar("SignalHandler", bound=Callable[[SignalMessage], Awaitable[str]])
UnknownHandler = TypeVar("UnknownHandler", bound=Callable[[UnknownEvent], Awaitable[None]])
ErrorHook = TypeVar("ErrorHook", bound=OnError)
H = TypeVar("H", bound=Callable[..., Awaitable[Any]])

_KNOWN = frozenset((C2C, GROUP, SIGNAL))  # shown by name in spans and metrics
_DECORATORS = {
    "c2c": "on_c2c_message",
    "group": "on_group_mention",
    "signal": "on_signal_message",
    "unknown": "on_unknown",
    "error": "on_error",
}


def _robot_of(event: Event) -> str | None:
    if isinstance(event, (C2CMessage, SignalMessage)):
        return event.robot
    if isinstance(event, GroupMention) and event.robots:
        return event.robots[0]
    return None


def _kind_of(event: Event) -> str:
    if isinstance(event, C2CMessage):
        return "c2c"
    if isinstance(event, GroupMention):
        return "group"
    if isinstance(event, SignalMessage):
        return "signal"
    return "unknown"


class RobotCallbacks:
    """The receiver of one app's robot callbacks: an ASGI app, and :meth:`dispatch` for
    any other framework.

    - ``token``: the console's callback token (``None``: only ``SdkAppid`` is checked,
      and a warning says so; under 16 characters: a warning too). ``max_skew``: the
      ``RequestTime`` window in seconds, read on ``clock`` (wall-clock seconds).
    - ``max_handlers``: after-event handlers running at once. With all busy, a callback
      is still answered 200 and its event queued (FIFO) while the backlog holds fewer
      than ``max_backlog`` (memory: that many parsed bodies of at most ``max_body``
      bytes each, a parsed body taking a few times its size; typically a few KB). Only
      with the backlog full is it answered 503, counted ``saturated``: a failed
      callback, which Tencent Chat redelivers only on a time-out and only if the
      console's retry is on, so normally never (its claim is given back all the same).
      :attr:`load` tells a readiness probe.
    - ``handler_timeout``: seconds an after-event handler may run (``None``: no limit);
      past them it is cancelled, counted ``handler_timeout``, logged, and given to
      :meth:`on_error`.
    - ``max_signal_handlers``: signal handlers running at once, a pool of their own (a
      signal never waits behind after-events); ``signal_deadline``: seconds a signal's
      handler has to return its ``RspData`` (under Tencent's 2 s), waiting for a slot
      included.
    - ``dedup``: the store that makes a redelivery handled once within ``dedup_ttl``
      seconds (default a :class:`MemoryDedupStore` of ``max_dedup_keys`` keys, default
      100,000, on ``clock``; ``None``: off). ``max_body``: bytes.
      ``ignore_robot_senders``: the loop guard.
    """

    def __init__(
        self,
        sdkappid: int,
        *,
        token: str | None = None,
        max_skew: float = 60.0,
        clock: Callable[[], float] = time.time,
        max_handlers: int = 100,
        max_backlog: int = 1000,
        handler_timeout: float | None = 300.0,
        max_signal_handlers: int = 50,
        dedup: DedupStore | Literal[Default.STORE] | None = Default.STORE,
        dedup_ttl: float = 600.0,
        max_dedup_keys: int | None = None,
        max_body: int = 1024 * 1024,
        signal_deadline: float = 1.5,
        ignore_robot_senders: bool = True,
    ) -> None:
        # Boxed before anything can fail: an error tracker records this frame's locals.
        token = box(token)  # type: ignore[assignment]
        install_sentry_scrubber()  # from now on, also if this construction fails
        self._token = checked_token(token)
        self.sdkappid = require_number("sdkappid", sdkappid, minimum=1, integer=True)
        self.max_skew = require_number("max_skew", max_skew, minimum=0)
        if not callable(clock):
            raise ValidationError(f"clock must be callable, got {clock!r}")
        self._clock = clock
        self.max_handlers = require_number("max_handlers", max_handlers, minimum=1, integer=True)
        self.max_backlog = require_number("max_backlog", max_backlog, minimum=0, integer=True)
        self.handler_timeout = (
            None
            if handler_timeout is None
            else require_number("handler_timeout", handler_timeout, minimum=0.001)
        )
        self.max_signal_handlers = require_number(
            "max_signal_handlers", max_signal_handlers, minimum=1, integer=True
        )
        self.dedup_ttl = require_number("dedup_ttl", dedup_ttl, minimum=0.001)
        self.max_body = require_number("max_body", max_body, minimum=1, integer=True)
        self.signal_deadline = require_number(
            "signal_deadline", signal_deadline, minimum=0.001, maximum=2
        )
        if self.signal_deadline >= 2:
            raise ValidationError("signal_deadline must be under 2 seconds (Tencent's limit)")
        if not isinstance(ignore_robot_senders, bool):
            raise ValidationError(
                f"ignore_robot_senders must be a bool, got {ignore_robot_senders!r}"
            )
        self.ignore_robot_senders = ignore_robot_senders
        self.dedup = checked_store(dedup, clock, max_dedup_keys)
        self._handlers: dict[str, Callable[..., Awaitable[Any]]] = {}
        self._counts: collections.Counter[str] = collections.Counter()
        self._log = LogLimiter()
        self._closed = False
        self._telemetry = make_callback_telemetry()
        self._runs = Runs(self._counts, self._log)
        self._runs.on_error_limit = self.handler_timeout
        self._claims = (
            None if self.dedup is None else Claims(self.dedup, self.dedup_ttl, self._counts)
        )
        self._backlog = Backlog(self._runs, self.max_handlers, self.max_backlog, self._counts)
        self._signal_slots = Slots(self.max_signal_handlers)
        self._admission = Admission(
            sdkappid=self.sdkappid,
            claims=self._claims,
            runs=self._runs,
            backlog=self._backlog,
            signal_slots=self._signal_slots,
            counts=self._counts,
            log=self._log,
            handler_timeout=self.handler_timeout,
            signal_deadline=self.signal_deadline,
            closed=lambda: self._closed,
            refuse=self._refusal,
        )
        warn(self.sdkappid, self._token)

    def __repr__(self) -> str:
        # Also for a construction that failed half-way (a traceback's ``self``).
        token_set = getattr(self, "_token", None) is not None
        return f"RobotCallbacks(sdkappid={getattr(self, 'sdkappid', None)}, token_set={token_set})"

    # --- registration -----------------------------------------------------------------

    def on_c2c_message(self, handler: C2CHandler) -> C2CHandler:
        """Register the handler of ``Bot.OnC2CMessage`` (one-to-one messages to a robot)."""
        return self._register("c2c", handler)

    def on_group_mention(self, handler: GroupHandler) -> GroupHandler:
        """Register the handler of ``Bot.OnGroupMessage`` (robots @-mentioned in a group)."""
        return self._register("group", handler)

    def on_signal_message(self, handler: SignalHandler) -> SignalHandler:
        """Register the handler of ``Chatbot.OnC2CSignalMessage``: it returns the RspData."""
        return self._register("signal", handler)

    def on_unknown(self, handler: UnknownHandler) -> UnknownHandler:
        """Register the handler of any other (verified) ``CallbackCommand``."""
        return self._register("unknown", handler)

    def on_error(self, hook: ErrorHook) -> ErrorHook:
        """Register ``async def hook(event, error)``, awaited after a handler raised
        (``error``: its exception) or ran out of time (a ``TimeoutError``), or a signal's
        returned no ``str`` (a ``TypeError``). It runs in the handler's slot, for at
        most ``handler_timeout``; its own exceptions are logged and swallowed."""
        self._register("error", hook)
        self._runs.on_error = hook
        return hook

    def _register(self, kind: str, handler: H) -> H:
        name = _DECORATORS[kind]
        if not is_async(handler):
            raise ValidationError(f"{name} takes an async function (async def), got {handler!r}")
        if kind in self._handlers:
            # Refused rather than replaced: two modules registering for the same event
            # would otherwise lose one handler silently.
            raise ValidationError(f"{name} already has a handler: {self._handlers[kind]!r}")
        self._handlers[kind] = handler
        return handler

    # --- state ------------------------------------------------------------------------

    @property
    def stats(self) -> collections.Counter[str]:
        """A snapshot of the counters (a missing key reads 0).

        Outcomes of callbacks: ``handled`` (of which ``queued``: went through the
        backlog), ``duplicate``, ``looped``, ``unhandled``, ``saturated``, ``refused``
        (and ``refused:<reason>`` for each reason: ``closed``, ``too_large``,
        ``method``, ``query``, ``sdkappid``, ``sign``, ``request_time``, ``body``,
        ``command``, ``event``), ``error`` (a bug: 500), ``cancelled`` (the request
        itself was cancelled, e.g. its client went away). Of handlers: ``handler_ok``,
        ``handler_failed``, ``handler_timeout``, ``handler_cancelled``, and
        ``backlog_dropped`` (queued events dropped by :meth:`aclose`). Of the store:
        ``dedup_unavailable`` (events handled while it failed) and
        ``dedup_evicted_early`` (a :class:`MemoryDedupStore`'s claims evicted before
        their TTL for want of room; the store's own count).
        """
        counts = collections.Counter(self._counts)
        if isinstance(self.dedup, MemoryDedupStore) and self.dedup.evicted_early:
            counts["dedup_evicted_early"] = self.dedup.evicted_early
        return counts

    @property
    def running(self) -> int:
        """Handlers running now (after-events' and signals')."""
        return len(self._runs.tasks)

    @property
    def load(self) -> Load:
        """Handlers running, the backlog, their bounds: for a readiness probe."""
        return Load(
            running=self._backlog.running,
            backlog=len(self._backlog.queue),
            max_handlers=self.max_handlers,
            max_backlog=self.max_backlog,
            signals_running=self._signal_slots.busy,
            max_signal_handlers=self.max_signal_handlers,
            saturated=self._backlog.full,
            closed=self._closed,
        )

    @property
    def closed(self) -> bool:
        return self._closed

    def _count(self, outcome: str, reason: str | None = None) -> None:
        self._counts[outcome] += 1
        if reason is not None:
            self._counts[f"refused:{reason}"] += 1

    # --- the framework-neutral core ------------------------------------------------------

    async def dispatch(self, query: Mapping[str, str], body: bytes) -> Answer:
        """Answer one callback: ``(status, headers, body)`` for the web framework to send.

        ``query`` is the request's query parameters, ``body`` its raw bytes. Never raises
        for what the request holds; a handler started here runs on after the answer.
        """
        return (await self._answer(query, body)).answer()

    async def _answer(self, query: Mapping[str, str], body: bytes) -> Result:
        arrived = loop_time()
        callback = CallbackTrace(self._telemetry, self._shown(query.get("CallbackCommand")))
        try:
            with callback.current():
                result = await self._process(query, body, callback, arrived)
        except Exception as error:  # a bug of ours: answered, logged, and serving goes on
            log_exception(error, "a callback failed inside the receiver")
            result = Result(500, envelope(1, "internal error"), "error")
        except BaseException:
            self._count("cancelled")
            callback.end("cancelled", None)
            raise
        self._count(result.outcome, result.reason)
        callback.end(result.outcome, result.reason)
        return result

    def _shown(self, command: object, *, verified: bool = False) -> str:
        """``command`` as spans and metrics show it: anything unauthenticated that is not
        a known command is ``other``, so forged requests cannot grow their cardinality."""
        if isinstance(command, str) and command in _KNOWN:
            return command
        if verified and self._token is not None and isinstance(command, str):
            return command[:64] if command.isprintable() else "other"
        return "other"

    async def _process(
        self, query: Mapping[str, str], body: bytes, callback: CallbackTrace, arrived: float
    ) -> Result:
        if self._closed:
            return self._refusal(Refusal(503, "closed", "the receiver is closed"))
        if len(body) > self.max_body:
            return self._refusal(Refusal(413, "too_large", "the body is too large"))
        token = None if self._token is None else self._token.reveal()
        refusal = verify(
            query, sdkappid=self.sdkappid, token=token, max_skew=self.max_skew, now=self._clock()
        )
        del token
        if refusal is not None:
            return self._refusal(refusal)
        try:
            raw = load_body(body)
            command = command_of(query, raw)
            event = parse_event(command, raw, query)
        except BadEvent as bad:
            return self._refusal(Refusal(400, bad.reason, str(bad)))
        callback.identify(self._shown(command, verified=True), _robot_of(event))
        signal = isinstance(event, SignalMessage)
        if self.ignore_robot_senders and is_loop(event):
            return Result(200, envelope(0, "", RspData="") if signal else OK, "looped")
        handler = self._handlers.get(_kind_of(event))
        if handler is None:
            no_handler = envelope(1, "no handler", RspData="") if signal else OK
            return Result(200, no_handler, "unhandled")
        return await self._admission.admit(event, handler, callback, arrived)

    def _refusal(self, refusal: Refusal) -> Result:
        self._log.log(
            logging.WARNING,
            refusal.reason,
            "refused a callback with %d (%s): %s",
            refusal.status,
            refusal.reason,
            refusal.detail,
        )
        body = envelope(1, refusal.detail)
        return Result(refusal.status, body, "refused", refusal.reason)

    def _refuse_request(self, refusal: Refusal) -> Answer:
        """Refuse a request before :meth:`dispatch` (the ASGI shell's refusals), counted."""
        callback = CallbackTrace(self._telemetry, "other")
        result = self._refusal(refusal)
        self._count(result.outcome, result.reason)
        callback.end(result.outcome, result.reason)
        return result.answer()

    # --- tests and lifecycle ------------------------------------------------------------

    async def feed(
        self,
        event_body: Mapping[str, Any] | bytes,
        *,
        query: Mapping[str, str] | None = None,
        wait: bool = True,
    ) -> Answer:
        """Dispatch ``event_body`` as Tencent would send it, for tests.

        The query gets ``SdkAppid``, the body's ``CallbackCommand`` and, with a token, a
        ``RequestTime`` of now (on ``clock``) and its ``Sign``; ``query`` adds or replaces
        parameters (a ``RequestTime`` given without a ``Sign`` is signed). With ``wait``,
        returns once the handler it started (or queued) has finished.
        """
        full, body = signed_request(self.sdkappid, self._token, self._clock, event_body, query)
        result = await self._answer(full, body)
        if wait and result.finished is not None:
            await result.finished
        return result.answer()

    async def join(self) -> None:
        """Wait until no handler is running or queued (those started meanwhile included)
        and every claim being given back is."""
        await self._runs.wait()
        if self._claims is not None:
            await self._claims.join()

    async def aclose(self, timeout: float = 10.0) -> None:
        """Stop taking callbacks (503 from now on) and wait for the running and queued
        handlers; after ``timeout`` seconds the queued events are dropped (counted
        ``backlog_dropped``) and the running handlers cancelled. Idempotent. The
        de-duplication store is the caller's to close."""
        timeout = require_number("timeout", timeout, minimum=0)
        self._closed = True
        await self._backlog.close(timeout)
        if self._claims is not None:
            await self._claims.join()

    # --- ASGI ---------------------------------------------------------------------------

    async def __call__(
        self,
        scope: Any,
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        """The ASGI app: ``http`` (POST callbacks) and ``lifespan`` (shutdown closes)."""
        await serve(self, scope, receive, send)
