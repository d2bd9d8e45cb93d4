"""Bounds of a receiver: slots waited for with a time limit (the signals' handlers, the
store's calls), and quiet logs."""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable

from .._logs import logger

__all__ = ["LogLimiter", "Slots"]


class Slots:
    """At most ``size`` at once; a caller waits for a slot, first come first served.

    A slot handed to a waiter that gave up meanwhile (timed out, or cancelled) is passed
    on, so none leaks whatever the race.
    """

    __slots__ = ("free", "size", "waiters")

    def __init__(self, size: int) -> None:
        self.size = size
        self.free = size
        self.waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    @property
    def busy(self) -> int:
        return self.size - self.free

    async def acquire(self, wait: float) -> bool:
        """Take a slot, waiting up to ``wait`` seconds; false if none freed in time."""
        if self.free > 0 and not self.waiters:
            self.free -= 1
            return True
        if wait <= 0:
            return False
        waiter = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        try:
            # asyncio.wait leaves the future alone on time-out, unlike wait_for.
            await asyncio.wait((waiter,), timeout=wait)
        except BaseException:
            self._give_up(waiter)
            raise
        if waiter.done():
            return True
        self._give_up(waiter)
        return False

    def _give_up(self, waiter: asyncio.Future[None]) -> None:
        if waiter.done():  # handed a slot after all: pass it on
            self.release()
        else:
            waiter.cancel()
            self.waiters.remove(waiter)

    def release(self) -> None:
        """Free a slot: the longest waiter gets it, else it goes back to the pool."""
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self.free += 1


class LogLimiter:
    """At most one log line per reason every ``every`` seconds; the next one says how
    many were left out. A flood of forged callbacks must not flood the logs too."""

    __slots__ = ("_clock", "_last", "_left_out", "every")

    def __init__(self, every: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.every = every
        self._clock = clock
        self._last: dict[str, float] = {}
        self._left_out: collections.Counter[str] = collections.Counter()

    def log(self, level: int, reason: str, message: str, *args: object) -> None:
        now = self._clock()
        last = self._last.get(reason)
        if last is not None and now - last < self.every:
            self._left_out[reason] += 1
            return
        self._last[reason] = now
        left_out = self._left_out.pop(reason, 0)
        if left_out:
            message += " (and %d more like it not logged)"
            args = (*args, left_out)
        logger.log(level, message, *args)
