"""From a verified event and its handler to the callback's answer.

The claim first (a duplicate is acknowledged, not handled). Then an after-event is
started, or queued in the backlog (answered 200 at once either way), or, the backlog
being full, refused with 503; a signal takes a slot of the signals' own pool (waiting
for one at most until its deadline) and is answered with its handler's ``RspData``.

A claim taken for an event that is then not handled is given back, so that a
redelivery is: the callback refused (503, closed, no signal slot), a signal whose
handler failed or ran out of time, and a callback cancelled (or failing) anywhere
between its claim and its handler's start, the claim's own call included (it may have
landed on the store before the cancellation). Giving back is carried through a
cancellation (shielded).
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from ._answers import OK, Result, envelope
from ._backlog import Backlog
from ._claims import Claims
from ._events import Event, SignalMessage, dedup_key
from ._limits import LogLimiter, Slots
from ._runs import Outcome, Run, Runs, loop_time
from ._signals import SignalAnswers
from ._trace import CallbackTrace
from ._verify import Refusal

__all__ = ["Admission"]

Handler = Callable[[Any], Awaitable[Any]]
_CLOSED = Refusal(503, "closed", "the receiver is closed")


class Admission:
    """How one receiver admits its verified events (see the module)."""

    def __init__(
        self,
        *,
        sdkappid: int,
        claims: Claims | None,
        runs: Runs,
        backlog: Backlog,
        signal_slots: Slots,
        counts: collections.Counter[str],
        log: LogLimiter,
        handler_timeout: float | None,
        signal_deadline: float,
        closed: Callable[[], bool],
        refuse: Callable[[Refusal], Result],
    ) -> None:
        self.sdkappid = sdkappid
        self.claims = claims
        self.runs = runs
        self.backlog = backlog
        self.signal_slots = signal_slots
        self.signals = SignalAnswers()
        self.handler_timeout = handler_timeout
        self.signal_deadline = signal_deadline
        self._counts = counts
        self._log = log
        self._closed = closed
        self._refuse = refuse

    async def admit(
        self, event: Event, handler: Handler, callback: CallbackTrace, arrived: float
    ) -> Result:
        key = None if self.claims is None else dedup_key(self.sdkappid, event)
        if isinstance(event, SignalMessage):
            return await self._signal(event, handler, callback, arrived + self.signal_deadline, key)
        fresh: bool | None = None
        if key is not None:
            fresh = await self._claim(key)
            if fresh is False:
                return Result(200, OK, "duplicate")
        held = key if fresh else None
        run = Run(handler, event, callback.handler(), callback.command, self.handler_timeout)
        if self._closed():  # closed while this callback claimed
            await self._give_back(held)
            return self._refuse(_CLOSED)
        placed = self.backlog.offer(run)
        if placed is None:
            await self._give_back(held)  # so that a redelivery is handled
            self._log.log(
                logging.WARNING,
                "saturated",
                "%d handlers running and %d events in the backlog (max_backlog): a callback"
                " was answered 503, a failed callback Tencent Chat does not redeliver"
                " unless its retry on time-out is on",
                self.backlog.running,
                len(self.backlog.queue),
            )
            return Result(503, envelope(1, "busy"), "saturated")
        if placed == "queued":
            self._counts["queued"] += 1
        return Result(200, OK, "handled", finished=run.finished)

    async def _claim(self, key: str) -> bool | None:
        """The claim of ``key``, given back if the callback is cancelled meanwhile."""
        assert self.claims is not None
        try:
            return await self.claims.claim(key)
        except BaseException:
            await self.claims.give_back(key)
            raise

    async def _give_back(self, key: str | None) -> None:
        if key is not None and self.claims is not None:
            await self.claims.give_back(key)

    # --- signals --------------------------------------------------------------------

    async def _signal(
        self,
        event: SignalMessage,
        handler: Handler,
        callback: CallbackTrace,
        deadline: float,
        key: str | None,
    ) -> Result:
        if key is None:  # de-duplication is off
            result, _, _ = await self._answer(event, handler, callback, deadline, None)
            return result
        first = self.signals.in_flight(key)
        if first is not None:  # the same signal, being answered here: its answer
            done, _ = await asyncio.wait((first,), timeout=max(deadline - loop_time(), 0.0))
            code, rsp_data = first.result() if done else (1, "")
            return Result(200, self._duplicate(code, rsp_data), "duplicate")
        self.signals.begin(key)
        code, rsp_data = 1, ""
        try:
            fresh = await self._claim(key)
            if fresh is False:  # answered before: here (kept) or by another process
                kept = self.signals.answered(key)
                code, rsp_data = (1, "") if kept is None else (0, kept)
                return Result(200, self._duplicate(code, rsp_data), "duplicate")
            held = key if fresh else None
            result, code, rsp_data = await self._answer(event, handler, callback, deadline, held)
            return result
        finally:
            self.signals.end(key, code, rsp_data)

    @staticmethod
    def _duplicate(code: int, rsp_data: str) -> bytes:
        return envelope(code, "" if code == 0 else "duplicate", RspData=rsp_data)

    async def _answer(
        self,
        event: SignalMessage,
        handler: Handler,
        callback: CallbackTrace,
        deadline: float,
        held: str | None,
    ) -> tuple[Result, int, str]:
        """Run the signal's handler in a signal slot; its answer, ErrorCode and RspData.
        ``held``: the claim, given back unless the handler answered."""
        answered = False
        try:
            if not await self.signal_slots.acquire(deadline - loop_time()):
                self._log.log(
                    logging.WARNING,
                    "signal_saturated",
                    "all %d signal handler slots stayed busy until the signal's deadline:"
                    " answered ErrorCode 1",
                    self.signal_slots.size,
                )
                return Result(200, envelope(1, "busy", RspData=""), "saturated"), 1, ""
            if self._closed():  # closed while this callback waited
                self.signal_slots.release()
                return self._refuse(_CLOSED), 1, ""
            run = Run(
                handler,
                event,
                callback.handler(),
                callback.command,
                self.signal_deadline,
                deadline=deadline,
                on_end=lambda _: self.signal_slots.release(),
            )
            self.runs.start(run)
            outcome, rsp_data = await self._outcome(run, deadline)
            if outcome == "ok":
                answered = True
                return Result(200, envelope(0, "", RspData=rsp_data), "handled"), 0, rsp_data
            info = "the handler timed out" if outcome == "timeout" else "the handler failed"
            return Result(200, envelope(1, info, RspData=""), "handled"), 1, ""
        finally:
            if not answered:
                await self._give_back(held)

    @staticmethod
    async def _outcome(run: Run, deadline: float) -> tuple[Outcome, str]:
        """The handler's outcome and RspData by ``deadline``; past it, it is cancelled."""
        try:
            done, _ = await asyncio.wait((run.outcome,), timeout=max(deadline - loop_time(), 0.0))
        except BaseException:  # the callback itself was cancelled: no one to answer
            if run.task is not None:
                run.task.cancel()
            raise
        if not done:
            run.expire()
            return "timeout", ""
        return run.outcome.result()
