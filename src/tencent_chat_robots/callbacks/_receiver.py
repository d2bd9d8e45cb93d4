"""``RobotCallbacks``: Tencent Chat's robot events, verified, de-duplicated, handled once.

A callback goes through, in order: closed? (503) · body over ``max_body``? (413) ·
``SdkAppid`` (403) · ``Sign`` and ``RequestTime`` (401) · the body and its command (400)
· the loop guard (200, not handled) · a handler registered? (200, ``unhandled``) · the
de-duplication claim (200, ``duplicate``) · a handler slot within ``saturation_wait``
(503, ``saturated``, the claim given back) · then the answer: at once for an after-event
(the handler runs afterwards in a task), with the handler's ``RspData`` for a signal.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import inspect
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal, TypeVar

import attrs

from .._config import require_number
from .._exceptions import ValidationError
from .._logs import logger
from .._redact import Secret
from ._asgi import serve
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
    dedup_key,
    is_loop,
    parse_event,
)
from ._limits import LogLimiter
from ._runs import Runs, log_failure
from ._trace import CallbackTrace, make_callback_telemetry
from ._verify import Refusal, expected_sign, verify

__all__ = ["Answer", "RobotCallbacks"]

Answer = tuple[int, dict[str, str], bytes]
"""What :meth:`RobotCallbacks.dispatch` returns: HTTP status, headers, body."""

C2CHandler = TypeVar("C2CHandler", bound=Callable[[C2CMessage], Awaitable[None]])
GroupHandler = TypeVar("GroupHandler", bound=Callable[[GroupMention], Awaitable[None]])
SignalHandler = TypeVar("SignalHandler", bound=Callable[[SignalMessage], Awaitable[str]])
UnknownHandler = TypeVar("UnknownHandler", bound=Callable[[UnknownEvent], Awaitable[None]])
H = TypeVar("H", bound=Callable[[Any], Awaitable[Any]])

_KNOWN = frozenset((C2C, GROUP, SIGNAL))  # shown by name in spans and metrics
_DECORATORS = {
    "c2c": "on_c2c_message",
    "group": "on_group_mention",
    "signal": "on_signal_message",
    "unknown": "on_unknown",
}


class _Default(enum.Enum):
    STORE = "a new MemoryDedupStore"


def _envelope(code: int, info: str, **extra: str) -> bytes:
    status = "OK" if code == 0 else "FAIL"
    fields = {"ActionStatus": status, "ErrorCode": code, "ErrorInfo": info, **extra}
    return json.dumps(fields, separators=(",", ":")).encode()


_OK = _envelope(0, "")


@attrs.define(slots=True)
class _Result:
    status: int
    body: bytes
    outcome: str
    reason: str | None = None
    task: asyncio.Task[object] | None = None

    def answer(self) -> Answer:
        return self.status, {"content-type": "application/json"}, self.body


def _is_async(handler: object) -> bool:
    # An object whose class defines ``async def __call__`` is an async handler too.
    call = getattr(type(handler), "__call__", None)  # noqa: B004 - the class's, not callable()
    return inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(call)


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


def _now() -> float:
    # The loop's clock: a virtual-time loop in tests moves deadlines with it.
    return asyncio.get_running_loop().time()


class RobotCallbacks:
    """The receiver of one app's robot callbacks: an ASGI app, and :meth:`dispatch` for
    any other framework.

    - ``token``: the console's callback token (``None``: only ``SdkAppid`` is checked,
      and a warning says so). ``max_skew``: the ``RequestTime`` window in seconds, read
      on ``clock`` (wall-clock seconds, injectable for tests).
    - ``max_handlers``: handlers running at once. A callback finding them all busy
      waits up to ``saturation_wait`` seconds for one, then is answered 503 (its
      de-duplication claim given back) so Tencent's retry on time-out can redeliver it.
    - ``dedup``: the store that makes a redelivery handled once within ``dedup_ttl``
      seconds (default a :class:`MemoryDedupStore` on ``clock``; ``None``: off).
    - ``max_body``: bytes. ``signal_deadline``: seconds a signal's handler has to
      return its ``RspData`` (under Tencent's 2 s). ``ignore_robot_senders``: the loop
      guard.
    """

    def __init__(
        self,
        sdkappid: int,
        *,
        token: str | None = None,
        max_skew: float = 60.0,
        clock: Callable[[], float] = time.time,
        max_handlers: int = 100,
        saturation_wait: float = 0.5,
        dedup: DedupStore | Literal[_Default.STORE] | None = _Default.STORE,
        dedup_ttl: float = 600.0,
        max_body: int = 1024 * 1024,
        signal_deadline: float = 1.5,
        ignore_robot_senders: bool = True,
    ) -> None:
        self.sdkappid = require_number("sdkappid", sdkappid, minimum=1, integer=True)
        self._token = self._checked_token(token)
        self.max_skew = require_number("max_skew", max_skew, minimum=0)
        if not callable(clock):
            raise ValidationError(f"clock must be callable, got {clock!r}")
        self._clock = clock
        self.max_handlers = require_number("max_handlers", max_handlers, minimum=1, integer=True)
        # Past 2 s Tencent has given up on the answer the wait was for.
        self.saturation_wait = require_number(
            "saturation_wait", saturation_wait, minimum=0, maximum=1.9
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
        self.dedup = self._checked_store(dedup, clock)
        self._handlers: dict[str, Callable[[Any], Awaitable[Any]]] = {}
        self._counts: collections.Counter[str] = collections.Counter()
        self._claims = (
            None if self.dedup is None else Claims(self.dedup, self.dedup_ttl, self._counts)
        )
        self._runs = Runs(self.max_handlers, self._counts)
        self._log = LogLimiter()
        self._closed = False
        self._telemetry = make_callback_telemetry()
        if self._token is None:
            logger.warning(
                "RobotCallbacks(sdkappid=%d) has no token: callbacks are not authenticated"
                " (only SdkAppid is checked); turn on the console's callback token and pass"
                " token=",
                self.sdkappid,
            )

    @staticmethod
    def _checked_token(token: object) -> Secret | None:
        if token is None:
            return None
        if not isinstance(token, str) or not token:
            raise ValidationError("token must be a non-empty string or None")
        try:
            token.encode()
        except UnicodeEncodeError:
            raise ValidationError("token is not valid Unicode text") from None
        return Secret(token)  # never in a repr; redacted from every log and span

    @staticmethod
    def _checked_store(store: object, clock: Callable[[], float]) -> DedupStore | None:
        if store is _Default.STORE:  # on the receiver's clock: a test's moves both
            return MemoryDedupStore(clock=clock)
        if store is None:
            return None
        if not isinstance(store, DedupStore) or not (
            _is_async(store.claim) and _is_async(store.release)
        ):
            raise ValidationError(
                f"dedup must be None or a store with async claim(key, ttl) and release(key),"
                f" got {type(store).__name__}"
            )
        return store

    def __repr__(self) -> str:
        return f"RobotCallbacks(sdkappid={self.sdkappid}, token_set={self._token is not None})"

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

    def _register(self, kind: str, handler: H) -> H:
        name = _DECORATORS[kind]
        if not _is_async(handler):
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

        Outcomes of callbacks: ``handled``, ``duplicate``, ``looped``, ``unhandled``,
        ``saturated``, ``refused`` (and ``refused:<reason>`` for each reason: ``closed``,
        ``too_large``, ``method``, ``query``, ``sdkappid``, ``sign``, ``request_time``,
        ``body``, ``command``, ``event``), ``error`` (a bug: 500), ``cancelled`` (the
        request itself was cancelled, e.g. its client went away). Of handlers:
        ``handler_ok``, ``handler_failed``, ``handler_timeout`` (signals),
        ``handler_cancelled``. And ``dedup_unavailable``: events handled while the
        store failed.
        """
        return collections.Counter(self._counts)

    @property
    def running(self) -> int:
        """Handlers running now."""
        return len(self._runs.tasks)

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

    async def _answer(self, query: Mapping[str, str], body: bytes) -> _Result:
        arrived = _now()
        callback = CallbackTrace(self._telemetry, self._shown(query.get("CallbackCommand")))
        try:
            with callback.current():
                result = await self._process(query, body, callback, arrived)
        except Exception as error:  # a bug of ours: answered, logged, and serving goes on
            log_failure("a callback failed inside the receiver", error)
            result = _Result(500, _envelope(1, "internal error"), "error")
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
    ) -> _Result:
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
            return _Result(200, _envelope(0, "", RspData="") if signal else _OK, "looped")
        handler = self._handlers.get(_kind_of(event))
        if handler is None:
            no_handler = _envelope(1, "no handler", RspData="") if signal else _OK
            return _Result(200, no_handler, "unhandled")
        return await self._admit(event, handler, callback, arrived)

    def _refusal(self, refusal: Refusal) -> _Result:
        self._log.log(
            logging.WARNING,
            refusal.reason,
            "refused a callback with %d (%s): %s",
            refusal.status,
            refusal.reason,
            refusal.detail,
        )
        body = _envelope(1, refusal.detail)
        return _Result(refusal.status, body, "refused", refusal.reason)

    def _refuse_request(self, refusal: Refusal) -> Answer:
        """Refuse a request before :meth:`dispatch` (the ASGI shell's refusals), counted."""
        callback = CallbackTrace(self._telemetry, "other")
        result = self._refusal(refusal)
        self._count(result.outcome, result.reason)
        callback.end(result.outcome, result.reason)
        return result.answer()

    async def _admit(
        self,
        event: Event,
        handler: Callable[[Any], Awaitable[Any]],
        callback: CallbackTrace,
        arrived: float,
    ) -> _Result:
        """Claim the event, take a slot, start the handler; answer."""
        claims = self._claims
        key = None if claims is None else dedup_key(self.sdkappid, event)
        claimed = False
        if claims is not None and key is not None:
            fresh = await claims.claim(key)
            if fresh is False:
                return _Result(200, self._duplicate_answer(event, key), "duplicate")
            claimed = fresh is True
        wait = self.saturation_wait
        if isinstance(event, SignalMessage):  # no use waiting past the signal's deadline
            wait = min(wait, self.signal_deadline - (_now() - arrived))
        try:
            admitted = await self._runs.slots.acquire(wait)
        except BaseException:
            if claims is not None and key is not None and claimed:
                await claims.release(key)
            raise
        if admitted and self._closed:  # closed while this callback waited
            self._runs.slots.release()
        if not admitted or self._closed:
            if claims is not None and key is not None and claimed:
                await claims.release(key)  # so that a redelivery is handled
            if self._closed:
                return self._refusal(Refusal(503, "closed", "the receiver is closed"))
            self._log.log(
                logging.WARNING,
                "saturated",
                "all %d handler slots stayed busy for %gs: a callback was answered 503"
                " (Tencent's retry on time-out, if on, redelivers it)",
                self.max_handlers,
                wait,
            )
            return _Result(503, _envelope(1, "busy"), "saturated")
        run = self._runs.start(handler, event, callback.handler(), callback.command)
        if not isinstance(event, SignalMessage):
            return _Result(200, _OK, "handled", task=run.task)
        outcome, rsp_data = await self._runs.result_within(
            run, self.signal_deadline - (_now() - arrived)
        )
        if outcome == "timeout":
            self._log.log(
                logging.WARNING,
                "signal_timeout",
                "the %s handler did not answer within %gs: answered ErrorCode 1",
                callback.command,
                self.signal_deadline,
            )
            return _Result(200, _envelope(1, "the handler timed out", RspData=""), "handled")
        if outcome == "failed":
            return _Result(200, _envelope(1, "the handler failed", RspData=""), "handled")
        if claims is not None and key is not None:
            claims.keep_answer(key, rsp_data)
        return _Result(200, _envelope(0, "", RspData=rsp_data), "handled")

    def _duplicate_answer(self, event: Event, key: str) -> bytes:
        # A duplicate signal gets the first one's RspData if this process answered it,
        # else an empty one: ErrorCode 1 would tell the client its request failed.
        if isinstance(event, SignalMessage) and self._claims is not None:
            return _envelope(0, "", RspData=self._claims.answer_for(key))
        return _OK

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
        returns once the handler it started has finished.
        """
        if isinstance(event_body, (bytes, bytearray)):
            body = bytes(event_body)
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = None
        elif isinstance(event_body, Mapping):
            parsed = dict(event_body)
            try:
                body = json.dumps(parsed).encode()
            except (TypeError, ValueError) as error:
                raise ValidationError(f"event_body is not JSON: {error}") from None
        else:
            raise ValidationError(f"event_body must be a mapping or bytes, got {event_body!r}")
        full = {"SdkAppid": str(self.sdkappid), "contenttype": "json"}
        command = parsed.get("CallbackCommand") if isinstance(parsed, dict) else None
        if isinstance(command, str):
            full["CallbackCommand"] = command
        given = dict(query or {})
        if self._token is not None and "Sign" not in given:
            request_time = given.get("RequestTime") or str(int(self._clock()))
            full["RequestTime"] = request_time
            full["Sign"] = expected_sign(self._token.reveal(), request_time)
        full.update(given)
        result = await self._answer(full, body)
        if wait and result.task is not None:
            await asyncio.wait((result.task,))
        return result.answer()

    async def join(self) -> None:
        """Wait until no handler is running (those started meanwhile included)."""
        await self._runs.join()

    async def aclose(self, timeout: float = 10.0) -> None:
        """Stop taking callbacks (503 from now on) and wait for the running handlers;
        those still running after ``timeout`` seconds are cancelled. Idempotent. The
        de-duplication store is the caller's to close."""
        timeout = require_number("timeout", timeout, minimum=0)
        self._closed = True
        await self._runs.close(timeout)

    # --- ASGI ---------------------------------------------------------------------------

    async def __call__(
        self,
        scope: Any,
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        """The ASGI app: ``http`` (POST callbacks) and ``lifespan`` (shutdown closes)."""
        await serve(self, scope, receive, send)
