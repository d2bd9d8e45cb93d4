"""The admission gate: what one attempt of an endpoint waits for before it is sent.

Per endpoint, one :class:`Gate` owns the in-flight slot (``_waiters.InFlightSlots``),
the rate permit (the limiter, adapted to the full protocol once, at construction), the
early refusal when the permit would come after ``max_wait``, and the pause after the
server refused a call for frequency. Both waits happen in the call's priority class and
within its ``max_wait``, and neither counts towards the request's timeout.
"""

from __future__ import annotations

from collections.abc import Iterable
from time import perf_counter

import anyio

from ._constants import RATE_LIMITED_PAUSE
from ._exceptions import QueueTimeoutError, RequestError, TencentChatError
from ._limiter import FullLimiter
from ._logs import logger
from ._options import CallOptions
from ._redact import redact
from ._waiters import InFlightSlots

__all__ = ["Gate", "Gates"]


class Gate:
    """One endpoint's admission: an in-flight slot, then a rate permit."""

    __slots__ = ("_limiter", "_slots", "endpoint", "leave")

    def __init__(self, endpoint: str, max_in_flight: int, limiter: FullLimiter | None) -> None:
        self.endpoint = endpoint
        self._slots = InFlightSlots(max_in_flight, endpoint)
        self._limiter = limiter
        # Leaving gives the slot back (to the next caller waiting for it).
        self.leave = self._slots.release

    async def enter(self, options: CallOptions) -> float | None:
        """Wait for a slot, then a permit; the seconds waited for the permit (``None``
        without a limiter). :class:`QueueTimeoutError` if they cannot come within
        ``options.max_wait``: then nothing is held."""
        rank, limiter = options.rank, self._limiter
        deadline = None if options.max_wait is None else anyio.current_time() + options.max_wait
        if not self._slots.take(rank):
            try:
                if deadline is not None and limiter is not None:
                    self._refuse_if_late(limiter, options, deadline)
                await self._slots.wait(rank, deadline)
            except QueueTimeoutError as err:
                raise self._too_late(err, options) from None
            except TencentChatError:
                raise
            except Exception as err:  # the limiter's prediction failed
                raise self._limiter_failed(err) from err
        if limiter is None:
            return None
        asked = perf_counter()
        try:
            await limiter.acquire(self.endpoint, priority=options.priority, deadline=deadline)
        except BaseException as err:
            self._slots.release()
            if isinstance(err, QueueTimeoutError):
                raise self._too_late(err, options) from None
            if isinstance(err, Exception) and not isinstance(err, TencentChatError):
                raise self._limiter_failed(err) from err
            raise
        return perf_counter() - asked

    async def refused_for_rate(self) -> None:
        """The server refused a call for frequency: everyone sharing the limiter holds off."""
        if self._limiter is None:
            return
        try:
            await self._limiter.pause(self.endpoint, RATE_LIMITED_PAUSE)
        except Exception:  # the refusal is what the caller must see, not the limiter's bug
            logger.exception("the limiter failed to pause %s after a 60007", self.endpoint)

    def _refuse_if_late(self, limiter: FullLimiter, options: CallOptions, deadline: float) -> None:
        """Raise at once if the callers queued for slots ahead owe more starts than fit.

        Each of them takes a start before this call does: a slot first (in class order),
        then a permit, queued ahead of it.
        """
        ahead = self._slots.ahead(options.rank)
        wait = limiter.predicted_wait(
            self.endpoint, priority=options.priority, also_ahead=ahead, deadline=deadline
        )
        if anyio.current_time() + wait > deadline + 1e-9:
            raise QueueTimeoutError(
                f"the rate permit would come in {wait:.3f}s at the earliest, behind"
                f" {ahead} callers waiting for an in-flight slot",
                endpoint=self.endpoint,
                predicted_wait=wait,
            )

    def _limiter_failed(self, err: Exception) -> RequestError:
        """A user's limiter failed: the call fails, as one of the SDK's, unsent."""
        return RequestError(
            f"{self.endpoint} was not sent: the limiter failed:"
            f" {type(err).__name__}: {redact(str(err))}",
            endpoint=self.endpoint,
        )

    def _too_late(self, err: QueueTimeoutError, options: CallOptions) -> QueueTimeoutError:
        # A limiter may refuse a call with no max_wait (a queue of its own that is full).
        limit = "" if options.max_wait is None else f" (max_wait={options.max_wait:g}s)"
        return QueueTimeoutError(
            f"{self.endpoint} was not sent: {err.message}{limit}",
            endpoint=self.endpoint,
            max_wait=options.max_wait,
            predicted_wait=err.predicted_wait,
        )


class Gates(dict[str, Gate]):
    """Every endpoint's gate: the documented ones made at once, others on first use."""

    def __init__(
        self, max_in_flight: int, limiter: FullLimiter | None, endpoints: Iterable[str] = ()
    ) -> None:
        super().__init__()
        self.max_in_flight = max_in_flight
        self.limiter = limiter
        for endpoint in endpoints:
            self.__missing__(endpoint)

    def __missing__(self, endpoint: str) -> Gate:
        gate = self[endpoint] = Gate(endpoint, self.max_in_flight, self.limiter)
        return gate
