"""Running many calls at once so that they can be stopped cleanly halfway.

``stop()`` starts nothing new and lets calls already sent finish; ``cancel()`` also
cancels those. A call counts as sent once the rate limiter lets it go, which is right
before the request leaves: the runner's limiter (give it to the client) marks it then.
"""

from __future__ import annotations

import contextvars
import enum
from collections.abc import Awaitable, Callable, Sequence

import anyio
import attrs

from .._exceptions import TencentChatError
from .._limiter import RateLimiter

__all__ = ["Outcome", "Result", "StepRunner"]


class Outcome(enum.Enum):
    """How a call ended, when it did not fail with an error."""

    SUCCEEDED = "succeeded"
    NOT_STARTED = "not started"
    # Sent, then cancelled before the answer: the server may or may not have done it.
    CANCELLED = "cancelled"


Result = Outcome | TencentChatError
"""A call's outcome, or the error it failed with."""


@attrs.define(eq=False)
class _Call:
    scope: anyio.CancelScope = attrs.Factory(anyio.CancelScope)
    sent: bool = False


# Each call runs in a task of its own, so this names the call that asks for a permit.
_CURRENT: contextvars.ContextVar[_Call] = contextvars.ContextVar("tencent_chat_robots_cli_call")


@attrs.frozen
class _MarkingLimiter:
    """The client's rate limiter, noting which call each permit lets go."""

    limiter: RateLimiter

    async def acquire(self, key: str) -> None:
        await self.limiter.acquire(key)
        call = _CURRENT.get(None)
        if call is not None:
            call.sent = True

    async def pause(self, key: str, seconds: float) -> None:
        await self.limiter.pause(key, seconds)


class StepRunner:
    """Runs batches of calls through one client paced at ``rate_limit`` calls/s."""

    def __init__(self, rate_limit: float) -> None:
        self.limiter = _MarkingLimiter(RateLimiter(rate_limit))
        """The limiter to give the client (``TencentChat(limiter=...)``)."""
        self.stopped = False
        self._running: set[_Call] = set()

    @property
    def in_flight(self) -> int:
        """Calls sent and not finished."""
        return sum(call.sent for call in self._running)

    def stop(self) -> None:
        """Start no more calls, in this batch or any later one; sent ones go on."""
        self.stopped = True
        for call in self._running:
            if not call.sent:
                call.scope.cancel()

    def cancel(self) -> None:
        """Stop, and cancel the calls already sent."""
        self.stop()
        for call in self._running:
            call.scope.cancel()

    async def run(
        self,
        calls: Sequence[Callable[[], Awaitable[object]]],
        on_done: Callable[[], object] = lambda: None,
    ) -> list[Result]:
        """Run ``calls`` concurrently; their results in the same order.

        ``on_done`` is called as each one succeeds or fails (not when dropped or cancelled).
        """
        results: list[Result] = [Outcome.NOT_STARTED] * len(calls)

        async def one(index: int) -> None:
            if self.stopped:
                return
            call = _Call()
            _CURRENT.set(call)
            self._running.add(call)
            try:
                with call.scope:
                    try:
                        await calls[index]()
                    except TencentChatError as err:  # kept for the report; others are bugs
                        results[index] = err
                    else:
                        results[index] = Outcome.SUCCEEDED
                    on_done()
            finally:
                self._running.discard(call)
            if call.scope.cancelled_caught:
                results[index] = Outcome.CANCELLED if call.sent else Outcome.NOT_STARTED

        async with anyio.create_task_group() as tg:
            for index in range(len(calls)):
                tg.start_soon(one, index)
        return results
