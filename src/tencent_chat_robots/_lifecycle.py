"""Closing and stopping: who may end a call early, and the one error each ending gives.

Every call in progress is a :class:`PendingCall`, registered with the client's
:class:`Lifecycle` and, in a bulk run, with the run's :class:`CallScope`. Two things end
calls early: the client's :meth:`Lifecycle.aclose` (waiting calls at once, those on the
wire after a grace period) and a bulk run's :meth:`CallScope.stop`. Both cancel the
caller's task directly (an anyio cancel scope would cost microseconds on every call)
and note who did it, so that the loop turns the cancellation into the right error in
one place: :func:`ending_error`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, cast

import anyio

from ._exceptions import BulkStoppedError, ClientClosedError, RequestError, TencentChatError

__all__ = [
    "CallScope",
    "Lifecycle",
    "PendingCall",
    "ending_error",
    "finish_despite_cancel",
    "tag",
]

_CLOSED, _STOPPED = "closed", "stopped"


class CallScope:
    """Calls that end together: a bulk run's. :meth:`stop` ends them."""

    __slots__ = ("calls", "stopping")

    def __init__(self) -> None:
        self.calls: set[PendingCall] = set()
        self.stopping = False  # no attempt starts from now on

    def stop(self, *, cancel_sent: bool) -> None:
        """End the calls not on the wire now (and, if ``cancel_sent``, those too)."""
        self.stopping = True
        for call in list(self.calls):
            if cancel_sent or not call.on_wire:
                call.cancel(_STOPPED)


class PendingCall:
    """One call in progress, as closing and stopping see it."""

    __slots__ = ("ended_by", "endpoint", "on_wire", "random", "request_sent", "scope", "task")

    def __init__(self, endpoint: str, task: asyncio.Task[Any] | None, scope: CallScope | None):
        self.endpoint = endpoint
        self.task = task  # the caller's task, which the call runs in
        self.scope = scope  # the bulk run making the call, if one is
        self.on_wire = False  # a request of this call is being sent or answered
        self.ended_by: str | None = None  # _CLOSED or _STOPPED, once its task is cancelled
        # The server may have acted: an attempt went unanswered, or was cut off on the wire.
        self.request_sent = False
        self.random: int | None = None  # the ``random`` of the latest attempt sent

    def cancel(self, by: str) -> None:
        """Cancel the caller's task, once, noting who did it."""
        if self.ended_by is None and self.task is not None:
            self.ended_by = by
            self.request_sent = self.request_sent or self.on_wire
            self.task.cancel()


def tag(error: RequestError, call: PendingCall) -> RequestError:
    """``error`` with what the call knows and it may not: the endpoint, the last ``random``."""
    if error.endpoint is None:
        error.endpoint = call.endpoint
    if error.random is None:
        error.random = call.random
    return error


def _fate(call: PendingCall) -> str:
    if call.request_sent:
        return "may have reached the server"
    if call.random is not None:  # every attempt sent was answered, with an error
        return "was answered with an error and not sent again"
    return "was not sent"


def ending_error(
    call: PendingCall, closed: bool, *, after: BaseException | None = None, new: bool = False
) -> RequestError | None:
    """The error ending ``call`` if the client is ``closed`` or its run is stopping.

    ``after``: the failure a retry would have followed; ``new``: the call has not
    started. ``None`` if nothing ends it.
    """
    by = call.ended_by
    if by is None:
        if closed:
            by = _CLOSED
        elif call.scope is not None and call.scope.stopping:
            by = _STOPPED
        else:
            return None
    endpoint, sent = call.endpoint, call.request_sent
    if call.ended_by is not None:  # its task was cancelled while the call was pending
        when = f" while {endpoint} was pending; the request {_fate(call)}"
    elif after is not None:
        when = f"; {endpoint} is not retried after: {after}"
    else:
        when = f"; {endpoint} {_fate(call)}"
    error: RequestError
    if by == _CLOSED:
        hint = " (make a new TencentChat)" if new else ""
        error = ClientClosedError(
            f"the client was closed{when}{hint}", endpoint=endpoint, request_sent=sent
        )
    else:
        error = BulkStoppedError(
            f"the bulk run was stopped{when}", endpoint=endpoint, request_sent=sent
        )
    error.random = call.random
    return error


def _cancelled_by_others(task: asyncio.Task[Any] | None) -> bool:
    """Take back our cancellation of ``task``; true if another one is pending.

    Python 3.11+ counts cancellations (``asyncio.timeout`` and task groups rely on the
    count); 3.10 cannot tell two apart, so there our reading wins.
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
    # The shielded scope holds off an anyio cancel scope, which would otherwise cancel
    # every await here again at once (a busy loop); the loop, a plain Task.cancel().
    with anyio.CancelScope(shield=True):
        while not task.done():
            try:
                await asyncio.shield(task)
            except asyncio.CancelledError as err:
                cancelled = err
    task.result()
    if cancelled is not None:
        raise cancelled


class Lifecycle:
    """The calls of one client in progress, and its closing."""

    def __init__(self) -> None:
        self.closed = False
        self._pending: set[PendingCall] = set()
        self._close_hooks: list[Callable[[], object]] = []
        self._drained: anyio.Event | None = None
        self.loop: asyncio.AbstractEventLoop | None = None  # the one the client serves

    @property
    def pending(self) -> frozenset[PendingCall]:
        """The calls in progress now (a copy)."""
        return frozenset(self._pending)

    def start(self, endpoint: str, scope: CallScope | None) -> PendingCall:
        """Register a new call of ``endpoint``; raise if it must not start."""
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:  # another anyio backend: nothing loop-bound to check
            loop = None
        if loop is not self.loop:
            self._adopt(loop)
        call = PendingCall(endpoint, asyncio.current_task() if loop is not None else None, scope)
        self.check(call, new=True)
        self._pending.add(call)
        if scope is not None:
            scope.calls.add(call)
        return call

    def check(
        self, call: PendingCall, *, after: BaseException | None = None, new: bool = False
    ) -> None:
        """Raise :func:`ending_error` if the client is closed or ``call``'s run is stopping
        (``after``: the failure a retry would have followed, chained; ``new``: the call
        has not started)."""
        if self.closed or (call.scope is not None and call.scope.stopping):
            error = cast(RequestError, ending_error(call, self.closed, after=after, new=new))
            raise error from after

    def finish(self, call: PendingCall) -> None:
        """``call`` is over, however it ended."""
        self._pending.discard(call)
        if call.scope is not None:
            call.scope.calls.discard(call)
        if not self._pending and self._drained is not None:
            self._drained.set()

    def cancelled(self, call: PendingCall) -> RequestError | None:
        """The error for ``call``, which a cancellation ended: ``None`` if its caller's task
        is being cancelled by someone other than us (the cancellation goes on)."""
        if call.ended_by is None:
            cancelling = getattr(call.task, "cancelling", None)  # 3.11+, or a backport
            if cancelling is None or cancelling():
                return None
            # No one cancelled the caller: the CancelledError came from under the call (a
            # transport awaiting a future that someone else cancelled).
            return tag(
                RequestError(f"{call.endpoint} failed: a cancellation was raised under the call"),
                call,
            )
        if _cancelled_by_others(call.task):
            return None
        return ending_error(call, self.closed)

    def _adopt(self, loop: asyncio.AbstractEventLoop | None) -> None:
        if self.loop is not None:
            # Connections, locks and timers belong to the loop that made them; using them
            # from another loop fails deep inside the transport with no useful message.
            raise TencentChatError(
                "this TencentChat was first used on another event loop"
                f"{' (now closed)' if self.loop.is_closed() else ''}; a client serves one"
                " loop: create it inside the code that runs on it (one per asyncio.run())"
            )
        self.loop = loop

    def on_close(self, hook: Callable[[], object]) -> Callable[[], None]:
        """Call ``hook`` when the client closes; returns what unregisters it."""
        self._close_hooks.append(hook)
        return lambda: self._close_hooks.remove(hook) if hook in self._close_hooks else None

    async def aclose(self, grace: float) -> None:
        """Refuse new calls, end waiting ones now and those on the wire after ``grace`` s."""
        current = asyncio.current_task() if self.loop is not None else None
        if current is not None and any(call.task is current for call in self._pending):
            # It would wait for the call it is part of, and that call for it: for ever.
            raise TencentChatError(
                "a client cannot be closed from inside one of its own calls (its transport"
                " or limiter): close it from the code that made it"
            )
        self.closed = True
        if self._drained is None:  # one event for every closer; no call is added from now
            self._drained = anyio.Event()
            if not self._pending:
                self._drained.set()
        for call in list(self._pending):
            if not call.on_wire:
                call.cancel(_CLOSED)
        for hook in list(self._close_hooks):
            hook()
        try:
            with anyio.move_on_after(grace):
                await self._drained.wait()
        finally:
            for call in list(self._pending):
                call.cancel(_CLOSED)
            # A close that is itself cancelled must still leave nothing running.
            await finish_despite_cancel(self._drained.wait())
