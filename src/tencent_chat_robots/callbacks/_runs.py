"""The handlers a receiver runs: at most ``max_handlers`` at once, each in a task the
receiver holds a strong reference to, counted when it ends whatever way it ends."""

from __future__ import annotations

import asyncio
import collections
import functools
import traceback
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import attrs

from .._logs import logger
from .._redact import redact
from ._events import Event, SignalMessage
from ._limits import Slots
from ._trace import HandlerTrace

__all__ = ["Run", "Runs", "log_failure"]

# After close's time-out cancels the handlers, how long it waits for them to unwind.
_CANCEL_GRACE = 1.0
_FAILED = object()  # what a run returns when its handler failed

Handler = Callable[[Any], Awaitable[Any]]


def log_failure(message: str, error: BaseException) -> None:
    """As ``logger.exception``, but with the traceback's text redacted: an error may quote
    a secret (the token, a UserSig) that the application's log handlers would keep."""
    text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    logger.error("%s\n%s", message, redact(text.rstrip()))


@attrs.define(slots=True)
class Run:
    """One handler's task, as the receiver tracks it."""

    command: str
    task: asyncio.Task[object] | None = None
    timed_out: bool = False


class Runs:
    """The running handlers of one receiver, and the slots they hold."""

    __slots__ = ("_counts", "slots", "tasks")

    def __init__(self, max_handlers: int, counts: collections.Counter[str]) -> None:
        self.slots = Slots(max_handlers)
        self.tasks: set[asyncio.Task[object]] = set()  # strong references: see asyncio docs
        self._counts = counts

    def start(self, handler: Handler, event: Event, trace: HandlerTrace, command: str) -> Run:
        """Run ``handler(event)`` in a task, in a slot the caller has taken.

        Made while the callback's span is current: the task's context carries it.
        """
        run = Run(command)
        run.task = asyncio.create_task(self._run(handler, event, trace, run))
        self.tasks.add(run.task)
        run.task.add_done_callback(functools.partial(self._done, run))
        return run

    async def _run(self, handler: Handler, event: Event, trace: HandlerTrace, run: Run) -> object:
        trace.start()
        try:
            result = await handler(event)
        except asyncio.CancelledError:
            trace.end("timeout" if run.timed_out else "cancelled")
            raise
        except Exception as error:
            self._counts["handler_failed"] += 1
            log_failure(f"the {run.command} handler failed", error)
            trace.end("error", error)
            return _FAILED
        if isinstance(event, SignalMessage) and not isinstance(result, str):
            self._counts["handler_failed"] += 1
            logger.error(
                "the %s handler returned %s, not a str (the RspData)",
                run.command,
                type(result).__name__,
            )
            trace.end("error")
            return _FAILED
        self._counts["handler_ok"] += 1
        trace.end("ok")
        return result

    def _done(self, run: Run, task: asyncio.Task[object]) -> None:
        # Here rather than in _run: a task cancelled before its first step runs none of
        # _run's code, and its slot must come back all the same.
        self.tasks.discard(task)
        self.slots.release()
        if task.cancelled():
            if not run.timed_out:
                self._counts["handler_cancelled"] += 1
        elif task.exception() is not None:  # a BaseException that _run lets through
            self._counts["handler_failed"] += 1

    async def result_within(
        self, run: Run, seconds: float
    ) -> tuple[Literal["ok", "failed", "timeout"], str]:
        """A signal handler's RspData if it returns one within ``seconds``; past them the
        handler is cancelled."""
        task = run.task
        assert task is not None
        try:
            done, _ = await asyncio.wait((task,), timeout=max(seconds, 0.0))
        except BaseException:
            task.cancel()
            raise
        if not done:
            run.timed_out = True
            task.cancel()
            self._counts["handler_timeout"] += 1
            return "timeout", ""
        result = None if task.cancelled() or task.exception() else task.result()
        return ("ok", result) if isinstance(result, str) else ("failed", "")

    def _others(self) -> set[asyncio.Task[object]]:
        current = asyncio.current_task()  # a handler waiting here must not wait for itself
        return {task for task in self.tasks if task is not current}

    async def join(self) -> None:
        """Wait until no handler runs (those started meanwhile included)."""
        while pending := self._others():
            await asyncio.wait(pending)

    async def close(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for the handlers, then cancel the rest."""
        pending = self._others()
        if pending:
            _, pending = await asyncio.wait(pending, timeout=timeout)
        if pending:
            logger.warning(
                "cancelling %d callback handlers still running after %gs", len(pending), timeout
            )
            for task in pending:
                task.cancel()
            await asyncio.wait(pending, timeout=_CANCEL_GRACE)
