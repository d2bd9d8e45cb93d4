"""Waiting in priority classes: the line both the rate limiter and the in-flight slots use.

A :class:`Line` holds waiters of each class (rank 0, interactive, before rank 1, bulk),
first come first served within a class. Whoever has a turn to give (a rate permit, a
freed slot) calls :meth:`Line.serve`, which hands it to the first waiter of the highest
class. A waiter that is cancelled or runs out of time leaves its future done and is
skipped when reached, so every operation is O(1) however many wait.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable

from ._exceptions import QueueTimeoutError
from ._options import PRIORITIES

__all__ = ["InFlightSlots", "Line"]


class Line:
    """Waiting futures in priority classes; see the module docstring."""

    __slots__ = ("_live", "_queues")

    def __init__(self) -> None:
        self._queues = tuple(collections.deque[asyncio.Future[None]]() for _ in PRIORITIES)
        self._live = [0] * len(PRIORITIES)  # waiters of each class not yet done

    def __bool__(self) -> bool:
        return any(self._live)

    def ahead(self, rank: int) -> int:
        """How many waiting callers a newcomer of ``rank`` would be served after."""
        return sum(self._live[: rank + 1])

    def serve(self, lowest: int = len(PRIORITIES) - 1) -> bool:
        """Give the turn to the first waiter of the highest class down to ``lowest``.

        False if no such waiter waits.
        """
        for rank in range(lowest + 1):
            queue = self._queues[rank]
            while queue:
                future = queue.popleft()
                if not future.done():
                    self._live[rank] -= 1
                    future.set_result(None)
                    return True
        return False

    async def wait(
        self,
        rank: int,
        deadline: float | None,
        *,
        on_deadline: Callable[[], None],
        expired: Callable[[], QueueTimeoutError],
        on_served_but_cancelled: Callable[[], None],
    ) -> None:
        """Wait for a turn, at most until ``deadline`` (event-loop time).

        At the deadline ``on_deadline`` runs first (a turn due that very moment is still
        in time), then, if no turn came, the wait raises ``expired()``. A caller
        cancelled after being served calls ``on_served_but_cancelled`` so that its turn
        is not lost to the others.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._queues[rank].append(future)
        self._live[rank] += 1
        timer = None
        if deadline is not None:

            def expire() -> None:
                on_deadline()
                if not future.done():
                    self._live[rank] -= 1
                    future.set_exception(expired())

            timer = loop.call_at(deadline, expire)
        try:
            await future
        except asyncio.CancelledError:
            if future.cancelled():  # the caller's cancellation reached the future itself
                self._live[rank] -= 1
            elif future.exception() is None:
                on_served_but_cancelled()
            raise
        finally:
            if timer is not None:
                timer.cancel()


class InFlightSlots:
    """At most ``size`` requests of one endpoint past this point at once, in classes.

    Bulk callers may hold all but a reserve of them (a sixteenth, at least one when
    there are two or more): calls waiting for a rate permit hold their slot, so
    without a reserve an interactive call could find every slot held by bulk calls
    queued for permits, and wait for one of them to be sent and answered first.
    """

    __slots__ = ("_caps", "_in_use", "_line")

    def __init__(self, size: int) -> None:
        reserve = min(size - 1, max(1, size // 16))
        self._caps = (size, size - reserve)  # how many may be in use for a caller of each rank
        self._in_use = 0
        self._line = Line()

    def take(self, rank: int) -> bool:
        """Take a slot if one is free for ``rank`` now; false if the caller must wait."""
        # Only while no caller of this class or above waits: release() serves those.
        if self._in_use < self._caps[rank] and not self._line.ahead(rank):
            self._in_use += 1
            return True
        return False

    def ahead(self, rank: int) -> int:
        """How many callers a newcomer of ``rank`` would wait behind."""
        return self._line.ahead(rank)

    async def wait(self, rank: int, deadline: float | None, endpoint: str) -> None:
        """Wait for a slot in ``rank``'s class; :class:`QueueTimeoutError` at ``deadline``."""
        await self._line.wait(
            rank,
            deadline,
            on_deadline=lambda: None,
            expired=lambda: QueueTimeoutError("no in-flight slot in time", endpoint=endpoint),
            on_served_but_cancelled=self.release,
        )

    def release(self) -> None:
        """Hand the slot to the next waiter allowed one, or free it."""
        self._in_use -= 1
        lowest = 1 if self._in_use < self._caps[1] else 0
        if self._line.serve(lowest):
            self._in_use += 1
