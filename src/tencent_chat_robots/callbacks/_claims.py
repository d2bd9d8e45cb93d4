"""A receiver's de-duplication claims: bounded in time, surviving a store outage.

At least once beats losing a user's message: when the store fails (raises, or takes
over ``STORE_TIMEOUT``), the event is handled without the check and counted
``dedup_unavailable``; one warning per outage, not one per event.
"""

from __future__ import annotations

import collections

import anyio

from .._logs import logger
from .._redact import redact
from ._dedup import DedupStore

__all__ = ["STORE_TIMEOUT", "Claims"]

# Tencent waits 2 s for an answer: a store that has not answered in half a second is
# treated as down for this event.
STORE_TIMEOUT = 0.5
_ANSWERS_KEPT = 1024  # signals' RspData kept for their duplicates


def described(error: BaseException) -> str:
    """``error`` for a log line: its class and its redacted, shortened message."""
    return f"{type(error).__name__}: {redact(str(error))[:200]}"


class Claims:
    """The claims of one receiver on ``store``, each kept ``ttl`` seconds, and the
    ``RspData`` of the signals this process answered (for their duplicates)."""

    __slots__ = ("_answers", "_counts", "_down", "store", "ttl")

    def __init__(self, store: DedupStore, ttl: float, counts: collections.Counter[str]) -> None:
        self.store = store
        self.ttl = ttl
        self._counts = counts
        self._down = False
        self._answers: collections.OrderedDict[str, str] = collections.OrderedDict()

    async def claim(self, key: str) -> bool | None:
        """True: the first claim of ``key``; False: a duplicate; None: the store failed."""
        try:
            with anyio.fail_after(STORE_TIMEOUT):
                fresh = await self.store.claim(key, self.ttl)
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
        """Give ``key`` back (its callback was refused: the redelivery must be handled)."""
        try:
            with anyio.fail_after(STORE_TIMEOUT):
                await self.store.release(key)
        except Exception as error:  # the claim then expires with its TTL
            logger.debug("could not release a de-duplication claim: %s", described(error))

    def keep_answer(self, key: str, rsp_data: str) -> None:
        self._answers[key] = rsp_data
        if len(self._answers) > _ANSWERS_KEPT:
            self._answers.popitem(last=False)

    def answer_for(self, key: str) -> str:
        """The RspData this process answered for ``key``, else ``""``."""
        return self._answers.get(key, "")
