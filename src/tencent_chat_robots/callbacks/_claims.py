"""A receiver's de-duplication claims: bounded in time and in number, surviving a store
outage, given back whatever happens to the callback that took them.

At least once beats losing a user's message: when the store fails (raises, or takes
over ``STORE_TIMEOUT``), the event is handled without the check and counted
``dedup_unavailable``; one warning per outage, not one per event.

At most ``MAX_STORE_OPERATIONS`` store calls are in flight at once; a burst beyond
queues (FIFO) for up to ``STORE_QUEUE_WAIT`` rather than opening a connection per
callback (redis-py's pool refuses past its size, which would switch de-duplication off
exactly under a burst of redeliveries).
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Awaitable, Callable

import anyio

from .._logs import logger
from .._redact import redact
from ._dedup import DedupStore
from ._limits import Slots

__all__ = ["MAX_STORE_OPERATIONS", "STORE_QUEUE_WAIT", "STORE_TIMEOUT", "Claims"]

# Tencent waits 2 s for an answer: a store that has not answered in half a second is
# treated as down for this event, and a queue for the store of a second as a store down.
STORE_TIMEOUT = 0.5
STORE_QUEUE_WAIT = 1.0
MAX_STORE_OPERATIONS = 50  # RedisDedupStore's default pool: no call waits for a connection


def described(error: BaseException) -> str:
    """``error`` for a log line: its class and its redacted, shortened message."""
    return f"{type(error).__name__}: {redact(str(error))[:200]}"


class Claims:
    """The claims of one receiver on ``store``, each kept ``ttl`` seconds."""

    __slots__ = ("_counts", "_down", "_ops", "_releasing", "store", "ttl")

    def __init__(
        self,
        store: DedupStore,
        ttl: float,
        counts: collections.Counter[str],
        max_operations: int = MAX_STORE_OPERATIONS,
    ) -> None:
        self.store = store
        self.ttl = ttl
        self._counts = counts
        self._down = False
        self._ops = Slots(max_operations)
        self._releasing: set[asyncio.Task[None]] = set()

    async def _call(self, operation: Callable[[], Awaitable[object]]) -> object:
        if not await self._ops.acquire(STORE_QUEUE_WAIT):
            raise TimeoutError(
                f"{self._ops.size} store calls stayed in flight for {STORE_QUEUE_WAIT:g}s"
            )
        try:
            with anyio.fail_after(STORE_TIMEOUT):
                return await operation()
        finally:
            self._ops.release()

    async def claim(self, key: str) -> bool | None:
        """True: the first claim of ``key``; False: a duplicate; None: the store failed."""
        try:
            fresh = await self._call(lambda: self.store.claim(key, self.ttl))
        except Exception as error:
            self._counts["dedup_unavailable"] += 1
            if not self._down:
                self._down = True
                logger.warning(
                    "the de-duplication store failed (%s): events are handled without"
                    " de-duplication until it answers again",
                    described(error),
                )
            return None
        if self._down:
            self._down = False
            logger.warning("the de-duplication store answers again")
        return bool(fresh)

    async def release(self, key: str) -> None:
        """Give ``key`` back (the event was not handled: its redelivery must be)."""
        try:
            await self._call(lambda: self.store.release(key))
        except Exception as error:  # the claim then expires with its TTL
            logger.debug("could not release a de-duplication claim: %s", described(error))

    async def give_back(self, key: str) -> None:
        """:meth:`release`, carried through even if the caller is being cancelled: in a
        task of its own, awaited in a shielded scope (an anyio scope's cancellation waits
        for it; an asyncio ``cancel()`` interrupts only the wait)."""
        task = asyncio.create_task(self.release(key))
        self._releasing.add(task)
        task.add_done_callback(self._releasing.discard)
        with anyio.CancelScope(shield=True):
            await asyncio.shield(task)

    async def join(self) -> None:
        """Wait for the claims being given back."""
        while self._releasing:
            await asyncio.wait(set(self._releasing))
