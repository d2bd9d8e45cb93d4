"""The handler calls of a receiver: each in a task the receiver holds a strong reference
to, under its time limit, with its span current, counted once whatever way it ends, its
failure (an exception, the time limit, a signal's answer that is no ``str``) logged and
given to ``on_error``."""

from __future__ import annotations

import asyncio
import collections
import contextvars
import functools
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import anyio
import attrs

from ._events import Event, SignalMessage
from ._failures import OnError, call_on_error, log_exception
from ._limits import LogLimiter
from ._trace import HandlerTrace

__all__ = ["Outcome", "Run", "Runs", "loop_time"]

# After close's time-out cancels the handlers, how long it waits for them to unwind.
_CANCEL_GRACE = 1.0

Handler = Callable[[Any], Awaitable[Any]]
Outcome = Literal["ok", "failed", "timeout", "cancelled", "dropped"]


def loop_time() -> float:
    """The running loop's clock (a virtual-time loop in tests moves deadlines with it)."""
    return asyncio.get_running_loop().time()


@attrs.define(slots=True, eq=False)
class Run:
    """One handler call: made in the callback's context (its span current), started at
    once or later from the backlog.

    ``limit``: seconds it may run once started (``None``: no limit); ``deadline``: the
    loop time it is cancelled at instead (a signal's, from the callback's arrival).
    ``outcome`` is set as soon as the handler itself ends, with its RspData; ``finished``
    once everything about the run is done (``on_error`` included).
    """

    handler: Handler
    event: Event
    trace: HandlerTrace
    command: str
    limit: float | None
    deadline: float | None = None
    on_end: Callable[[Run], None] | None = None
    context: contextvars.Context = attrs.field(factory=contextvars.copy_context)
    outcome: asyncio.Future[tuple[Outcome, str]] = attrs.field(
        factory=lambda: asyncio.get_running_loop().create_future()
    )
    finished: asyncio.Future[None] = attrs.field(
        factory=lambda: asyncio.get_running_loop().create_future()
    )
    task: asyncio.Task[None] | None = None
    scope: anyio.CancelScope | None = None
    timed_out: bool = False
    counted: bool = False

    def settle(self, outcome: Outcome, rsp_data: str = "") -> None:
        if not self.outcome.done():
            self.outcome.set_result((outcome, rsp_data))

    def finish(self, outcome: Outcome) -> None:
        """Mark the run over (``outcome`` if the handler's own was not set)."""
        self.settle(outcome)
        if not self.finished.done():
            self.finished.set_result(None)

    def expire(self) -> None:
        """Cancel the handler as timed out (a signal whose answer is past its deadline)."""
        self.timed_out = True
        if self.scope is not None:
            self.scope.cancel()
        elif self.task is not None:  # not started yet: it never will
            self.task.cancel()


class Runs:
    """The running handler tasks of one receiver, and how each one ends."""

    __slots__ = ("_counts", "_log", "on_error", "on_error_limit", "tasks")

    def __init__(self, counts: collections.Counter[str], log: LogLimiter) -> None:
        self.tasks: set[asyncio.Task[None]] = set()  # strong references: see asyncio docs
        self.on_error: OnError | None = None
        self.on_error_limit: float | None = None
        self._counts = counts
        self._log = log

    def start(self, run: Run) -> None:
        """Run ``run`` in a task made in its callback's context (the span's child)."""
        if run.deadline is None and run.limit is not None:
            run.deadline = loop_time() + run.limit
        task = run.context.run(asyncio.create_task, self._run(run))
        run.task = task
        self.tasks.add(task)
        task.add_done_callback(functools.partial(self._done, run))

    async def _run(self, run: Run) -> None:
        run.trace.start()
        scope = anyio.CancelScope(deadline=math.inf if run.deadline is None else run.deadline)
        run.scope = scope
        if run.timed_out:
            scope.cancel()
        error: BaseException | None = None
        result: object = None
        try:
            with run.trace.current(), scope:
                result = await run.handler(run.event)
        except Exception as failure:
            error = failure
        except BaseException:  # cancelled from outside (aclose), or worse
            run.trace.end("timeout" if run.timed_out else "cancelled")
            raise
        signal = isinstance(run.event, SignalMessage)
        if scope.cancel_called:  # only its deadline or expire() cancel it
            run.timed_out = True
            limit = math.inf if run.limit is None else run.limit
            verb = "answer" if signal else "return"
            error = TimeoutError(f"the {run.command} handler did not {verb} within {limit:g}s")
            self._end(run, "timeout", "handler_timeout")
            self._log.log(
                logging.WARNING,
                f"timeout:{run.command}",
                "the %s handler did not %s within %gs: cancelled",
                run.command,
                verb,
                limit,
            )
            run.trace.end("timeout")
        elif error is not None:
            self._end(run, "failed", "handler_failed")
            log_exception(error, "the %s handler failed", run.command)
            run.trace.end("error", error)
        elif signal and not isinstance(result, str):
            error = TypeError(f"the {run.command} handler returned {type(result).__name__}")
            self._end(run, "failed", "handler_failed")
            self._log.log(
                logging.ERROR,
                f"rsp_data:{run.command}",
                "the %s handler returned %s, not a str (the RspData)",
                run.command,
                type(result).__name__,
            )
            run.trace.end("error")
        else:
            self._end(run, "ok", "handler_ok", result if isinstance(result, str) else "")
            run.trace.end("ok")
        if error is not None:
            await call_on_error(self.on_error, run.event, error, self.on_error_limit)

    def _end(self, run: Run, outcome: Outcome, counted: str, rsp_data: str = "") -> None:
        self._counts[counted] += 1
        run.counted = True
        run.settle(outcome, rsp_data)

    def _done(self, run: Run, task: asyncio.Task[None]) -> None:
        # Here rather than in _run: a task cancelled before its first step runs none of
        # _run's code, and its slot must come back all the same.
        self.tasks.discard(task)
        cancelled = task.cancelled()
        if not cancelled:
            task.exception()  # retrieved: a BaseException _run let through
        if not run.counted:
            run.counted = True
            if cancelled:
                self._counts["handler_timeout" if run.timed_out else "handler_cancelled"] += 1
            else:
                self._counts["handler_failed"] += 1
        run.finish("timeout" if run.timed_out else "cancelled")
        if run.on_end is not None:
            run.on_end(run)

    def others(self) -> set[asyncio.Task[None]]:
        """The tasks but the current one (a handler waiting must not wait for itself)."""
        current = asyncio.current_task()
        return {task for task in self.tasks if task is not current}

    async def wait(self, deadline: float | None = None) -> None:
        """Wait until no handler runs (those started meanwhile included), at most until
        loop time ``deadline`` if one is given."""
        while pending := self.others():
            left = None if deadline is None else deadline - loop_time()
            if left is not None and left <= 0:
                return
            await asyncio.wait(pending, timeout=left)

    async def cancel_all(self, waited: float) -> None:
        """Cancel the handlers still running after ``waited`` seconds, and let them unwind."""
        pending = self.others()
        if not pending:
            return
        self._log.log(
            logging.WARNING,
            "close",
            "cancelling %d callback handlers still running after %gs",
            len(pending),
            waited,
        )
        for task in pending:
            task.cancel()
        await asyncio.wait(pending, timeout=_CANCEL_GRACE)
