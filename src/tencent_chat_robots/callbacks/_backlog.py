"""The after-events' pool: ``size`` handlers at once, and behind them a FIFO backlog of
at most ``limit`` acknowledged events, started as slots free. Only a full backlog makes
the receiver refuse a callback (503)."""

from __future__ import annotations

import asyncio
import collections
from typing import Literal

from .._logs import logger
from ._runs import Run, Runs

__all__ = ["Backlog"]


class Backlog:
    """The after-event runs of one receiver: running (at most ``size``) and queued (at
    most ``limit``, oldest first)."""

    __slots__ = ("_counts", "_runs", "limit", "queue", "running", "size")

    def __init__(self, runs: Runs, size: int, limit: int, counts: collections.Counter[str]) -> None:
        self.size = size
        self.limit = limit
        self.running = 0
        self.queue: collections.deque[Run] = collections.deque()
        self._runs = runs
        self._counts = counts

    @property
    def full(self) -> bool:
        """Whether an after-event arriving now would be refused."""
        return self.running >= self.size and len(self.queue) >= self.limit

    def offer(self, run: Run) -> Literal["started", "queued"] | None:
        """Start ``run`` or queue it; ``None`` (nothing done) when the backlog is full."""
        if self.running < self.size and not self.queue:
            self._start(run)
            return "started"
        if len(self.queue) < self.limit:
            self.queue.append(run)
            return "queued"
        return None

    def _start(self, run: Run) -> None:
        self.running += 1
        run.on_end = self._ended
        self._runs.start(run)

    def _ended(self, run: Run) -> None:
        self.running -= 1
        while self.queue and self.running < self.size:
            self._start(self.queue.popleft())

    def drop(self) -> None:
        """Forget the queued runs (the receiver closes): their events were acknowledged
        and are lost, so they are counted ``backlog_dropped`` and logged."""
        if not self.queue:
            return
        dropped = len(self.queue)
        for run in self.queue:
            run.finish("dropped")
        self.queue.clear()
        self._counts["backlog_dropped"] += dropped
        logger.warning(
            "closing: %d acknowledged events still in the backlog were dropped unhandled",
            dropped,
        )

    async def close(self, timeout: float) -> None:
        """Let the running and queued handlers (signals' too) finish within ``timeout``
        seconds; then drop what is still queued and cancel what still runs."""
        await self._runs.wait(asyncio.get_running_loop().time() + timeout)
        self.drop()
        await self._runs.cancel_all(timeout)
