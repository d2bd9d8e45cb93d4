"""Waiting in priority classes: the line both the rate limiter and the in-flight slots use.

A :class:`Line` holds waiters of each class (rank 0, interactive, before rank 1, bulk),
first come first served within a class. Whoever has a turn to give (a rate permit, a
freed slot) calls :meth:`Line.serve`, which hands it to the first waiter of the highest
class. A waiter that is cancelled or runs out of time is counted out at that moment and
skipped when reached; a class whose queue holds more such leftovers than live waiters
is compacted, so memory follows the waiters and each operation is amortised O(1).
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Coroutine
from typing import Any, Protocol

from ._exceptions import QueueTimeoutError
from ._options import PRIORITIES

__all__ = ["InFlightSlots", "Line", "bulk_cap", "slots_for_bulk"]

# A class's queue is compacted once it holds this many leftovers and more than live ones.
_COMPACT_AT = 64


class Giver(Protocol):
    """What gives the turns a :class:`Line` hands out (a rate limiter's key, the slots)."""

    def deadline_reached(self) -> None:
        """A waiter's deadline came: give a turn due at this very moment, if any."""

    def timed_out(self) -> QueueTimeoutError:
        """The error for a waiter whose deadline came before its turn."""

    def served_but_cancelled(self) -> None:
        """A waiter given a turn was cancelled before it took it: pass the turn on."""


class _Turn(asyncio.Future[None]):
    """A waiter's future that leaves its line's count the moment it is cancelled.

    ``Task.cancel()`` cancels the future its task awaits at once, but the task itself
    only runs a loop iteration later: counted until then, a cancelled waiter would make
    a newcomer queue behind no one.
    """

    __slots__ = ("line", "rank")  # one per waiting call: no __dict__

    def __init__(self, line: Line, rank: int, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop=loop)
        self.line = line
        self.rank = rank

    def cancel(self, msg: object = None) -> bool:
        if not super().cancel(msg):
            return False
        self.line.left(self.rank)  # done first: a compaction it sets off drops it
        return True


class Line:
    """Waiting futures in priority classes; see the module docstring."""

    __slots__ = ("_dead", "_live", "_queues", "waiting")

    def __init__(self) -> None:
        self._queues = tuple(collections.deque[_Turn]() for _ in PRIORITIES)
        self._live = [0] * len(PRIORITIES)  # waiters of each class not yet done
        self._dead = [0] * len(PRIORITIES)  # done futures still in each class's queue
        self.waiting = 0  # waiters of every class: read on every call, so kept, not summed

    def __bool__(self) -> bool:
        return self.waiting > 0

    def ahead(self, rank: int) -> int:
        """How many waiting callers a newcomer of ``rank`` would be served after."""
        return sum(self._live[: rank + 1])

    def left(self, rank: int) -> None:
        """A waiter of ``rank`` gave up (cancelled, or out of time) without a turn."""
        self._live[rank] -= 1
        self.waiting -= 1
        self._dead[rank] += 1
        if self._dead[rank] >= _COMPACT_AT and self._dead[rank] > self._live[rank]:
            queue = self._queues[rank]
            live = [turn for turn in queue if not turn.done()]
            queue.clear()
            queue.extend(live)
            self._dead[rank] = 0

    def serve(self, lowest: int = len(PRIORITIES) - 1) -> int | None:
        """Give the turn to the first waiter of the highest class down to ``lowest``.

        The class served, or ``None`` if no such waiter waits.
        """
        for rank in range(lowest + 1):
            queue = self._queues[rank]
            while queue:
                turn = queue.popleft()
                if not turn.done():
                    self._live[rank] -= 1
                    self.waiting -= 1
                    turn.set_result(None)
                    return rank
                self._dead[rank] -= 1
        return None

    def _expire(self, turn: _Turn, giver: Giver) -> None:
        giver.deadline_reached()
        if not turn.done():
            turn.set_exception(giver.timed_out())
            self.left(turn.rank)

    async def wait(
        self,
        rank: int,
        deadline: float | None,
        giver: Giver,
        *,
        first: bool = False,
    ) -> None:
        """Wait for a turn from ``giver``, at most until ``deadline`` (event-loop time).

        At the deadline the giver may still give a turn due that very moment; if none
        came, the wait raises its ``timed_out()``. ``first`` puts the caller before its
        class (one whose turn was taken back).
        """
        loop = asyncio.get_running_loop()
        turn = _Turn(self, rank, loop)
        if first:
            self._queues[rank].appendleft(turn)
        else:
            self._queues[rank].append(turn)
        self._live[rank] += 1
        self.waiting += 1
        timer = None
        if deadline is not None:
            timer = loop.call_at(deadline, self._expire, turn, giver)
        try:
            await turn
        except asyncio.CancelledError:
            if not turn.cancelled() and turn.exception() is None:
                giver.served_but_cancelled()
            raise
        finally:
            if timer is not None:
                timer.cancel()


def bulk_cap(size: int) -> int:
    """How many of ``size`` in-flight slots bulk callers may hold: all but a reserve."""
    reserve = min(size - 1, max(1, size // 16))
    return size - reserve


def slots_for_bulk(n: int) -> int:
    """The fewest in-flight slots (``max_in_flight``) that let ``n`` bulk calls be in flight."""
    size = n
    while bulk_cap(size) < n:  # it grows with size but for one step in sixteen: few steps
        size += 1
    return size


class InFlightSlots:
    """At most ``size`` requests of one endpoint past this point at once, in classes.

    Bulk callers may hold all but a reserve of them (a sixteenth, at least one when
    there are two or more): calls waiting for a rate permit hold their slot, so
    without a reserve an interactive call could find every slot held by bulk calls
    queued for permits, and wait for one of them to be sent and answered first.
    """

    __slots__ = ("_caps", "_in_use", "_line", "endpoint")

    def __init__(self, size: int, endpoint: str) -> None:
        self.endpoint = endpoint
        self._caps = (size, bulk_cap(size))  # how many may be in use for a caller of each rank
        self._in_use = 0
        self._line = Line()

    def take(self, rank: int) -> bool:
        """Take a slot if one is free for ``rank`` now; false if the caller must wait."""
        # Only while no caller of this class or above waits: release() serves those.
        line = self._line
        if self._in_use < self._caps[rank] and not (line.waiting and line.ahead(rank)):
            self._in_use += 1
            return True
        return False

    def ahead(self, rank: int) -> int:
        """How many callers a newcomer of ``rank`` would wait behind."""
        return self._line.ahead(rank)

    def wait(self, rank: int, deadline: float | None) -> Coroutine[Any, Any, None]:
        """Wait for a slot in ``rank``'s class; :class:`QueueTimeoutError` at ``deadline``."""
        return self._line.wait(rank, deadline, self)

    def deadline_reached(self) -> None:
        pass  # slots are handed over the moment they are freed: none is ever due

    def timed_out(self) -> QueueTimeoutError:
        return QueueTimeoutError("no in-flight slot in time", endpoint=self.endpoint)

    def served_but_cancelled(self) -> None:
        self.release()

    def release(self) -> None:
        """Hand the slot to the next waiter allowed one, or free it."""
        self._in_use -= 1
        if not self._line.waiting:
            return
        lowest = 1 if self._in_use < self._caps[1] else 0
        if self._line.serve(lowest) is not None:
            self._in_use += 1
