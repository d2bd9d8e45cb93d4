"""An asyncio event loop on a virtual clock, for timing behaviour without real waiting.

Whenever the loop would block waiting for a timer, the clock jumps to that timer
instead. ``stall`` moves the clock while nothing runs, as a blocked loop would.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


class _JumpingSelector(selectors.DefaultSelector):
    def __init__(self, loop: VirtualClockLoop) -> None:
        super().__init__()
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[Any]:
        ready = super().select(0)
        if not ready and timeout is not None and timeout > 0:
            self._loop.now += timeout
        return ready


class VirtualClockLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        self.now = 1000.0
        super().__init__(selector=_JumpingSelector(self))

    def time(self) -> float:
        return self.now

    def stall(self, seconds: float) -> None:
        """Advance the clock with no callback running (a loop blocked by CPU work)."""
        self.now += seconds


def run_virtual(main: Callable[[VirtualClockLoop], Awaitable[T]]) -> T:
    """Run ``main(loop)`` to completion on a fresh virtual-clock loop."""
    loop = VirtualClockLoop()
    try:
        return loop.run_until_complete(main(loop))
    finally:
        loop.close()


def max_in_window(times: list[float], window: float = 1.0) -> int:
    """The most timestamps in any half-open interval ``[t, t + window)``.

    Gaps are compared with a nanosecond of slack, the limiter's float tolerance.
    """
    ordered = sorted(times)
    best = 0
    start = 0
    for end, t in enumerate(ordered):
        while t - ordered[start] >= window - 1e-9:
            start += 1
        best = max(best, end - start + 1)
    return best
