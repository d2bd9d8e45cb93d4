"""The admission gate: what one attempt of an endpoint waits for before it is sent.

Per endpoint, one :class:`Gate` owns the in-flight slot (``_waiters.InFlightSlots``),
the rate permit (the limiter, adapted to the full protocol once, at construction), the
early refusal when the permit would come after ``max_wait``, and the pause after the
server refused a call for frequency. A call paced by a second key as well (a group's
40 messages a second) first takes that key's turn and permit (see :class:`Gate`). All
waits happen in the call's priority class and within its ``max_wait``, and none counts
towards the request's timeout.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
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

# "Message frequency limit" of one group (send_group_msg): that group's budget is spent.
GROUP_FREQUENCY_LIMIT = 10023


class _Turns:
    """Per key, one caller at a time, in priority classes (an interactive caller goes
    before every waiting bulk one); made on first use, dropped when no one wants it."""

    __slots__ = ("_keys",)

    def __init__(self) -> None:
        self._keys: dict[str, tuple[InFlightSlots, list[int]]] = {}

    @asynccontextmanager
    async def turn(self, key: str, rank: int, deadline: float | None) -> AsyncIterator[None]:
        """Hold ``key``'s turn; :class:`QueueTimeoutError` if it does not come by ``deadline``."""
        entry = self._keys.get(key) or self._keys.setdefault(key, (InFlightSlots(1, key), [0]))
        turns, users = entry
        users[0] += 1
        try:
            if not turns.take(rank):
                try:
                    await turns.wait(rank, deadline)
                except QueueTimeoutError:
                    raise QueueTimeoutError(
                        f"earlier calls of {key} still wait their turn"
                    ) from None
            try:
                yield
            finally:
                turns.release()
        finally:
            users[0] -= 1
            if not users[0]:
                del self._keys[key]


class Gate:
    """One endpoint's admission: an in-flight slot, then a rate permit.

    A call paced by a second key as well (a group's messages: ``also_paced``) first
    takes that key's turn, then its permit, then the slot and the endpoint's permit,
    and lets the turn go only then, when it is sent. So a key's permits and its sends
    alternate: within one process a key's sends in any second number at most its pace
    plus one (39 of a group's 40 by default), whatever the waits for the endpoint. In a
    fleet sharing a limiter each process may add that one.
    """

    __slots__ = ("_limiter", "_slots", "_turns", "endpoint", "leave")

    def __init__(self, endpoint: str, max_in_flight: int, limiter: FullLimiter | None) -> None:
        self.endpoint = endpoint
        self._slots = InFlightSlots(max_in_flight, endpoint)
        self._limiter = limiter
        self._turns = _Turns()
        # Leaving gives the slot back (to the next caller waiting for it).
        self.leave = self._slots.release

    async def enter(
        self, options: CallOptions, also_paced: str | None = None, until: float | None = None
    ) -> float | None:
        """Wait for a slot, then a permit; the seconds waited for the permit(s) (``None``
        without a limiter). :class:`QueueTimeoutError` if they cannot come within
        ``options.max_wait``, or by ``until`` (the call's deadline, on the anyio clock):
        then nothing is held."""
        deadline = None if options.max_wait is None else anyio.current_time() + options.max_wait
        if until is not None and (deadline is None or until < deadline):
            deadline = until
        limiter = self._limiter
        if also_paced is None or limiter is None:
            return await self._enter(options, deadline)
        asked = perf_counter()
        try:
            async with self._turns.turn(also_paced, options.rank, deadline):
                await self._permit(limiter, also_paced, options, deadline)
                await self._enter(options, deadline)
        except QueueTimeoutError as err:
            if err.endpoint is None:  # the turn's own refusal
                raise self._too_late(err, options) from None
            raise
        return perf_counter() - asked

    async def _enter(self, options: CallOptions, deadline: float | None) -> float | None:
        rank, limiter = options.rank, self._limiter
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
            await self._permit(limiter, self.endpoint, options, deadline)
        except BaseException:
            self._slots.release()
            raise
        return perf_counter() - asked

    async def _permit(
        self, limiter: FullLimiter, key: str, options: CallOptions, deadline: float | None
    ) -> None:
        """``key``'s rate permit, its limiter's failures as the SDK's errors."""
        try:
            await limiter.acquire(key, priority=options.priority, deadline=deadline)
        except QueueTimeoutError as err:
            raise self._too_late(err, options) from None
        except TencentChatError:
            raise
        except Exception as err:
            raise self._limiter_failed(err) from err

    async def refused_for_rate(
        self, code: int | None = None, also_paced: str | None = None, until: float | None = None
    ) -> None:
        """The server refused a call for frequency: everyone sharing the limiter holds off
        (the call's group only, when the group's own budget was spent: 10023). ``until``:
        the call's deadline, which telling a shared limiter (a Redis round trip) must not
        hold it past."""
        if self._limiter is None:
            return
        key = also_paced if code == GROUP_FREQUENCY_LIMIT and also_paced else self.endpoint
        with anyio.CancelScope(deadline=math.inf if until is None else until) as scope:
            try:
                await self._limiter.pause(key, RATE_LIMITED_PAUSE)
            except Exception:  # the refusal is what the caller must see, not the limiter's bug
                logger.exception(
                    "the limiter failed to pause %s after a refusal for frequency", key
                )
        if scope.cancelled_caught:
            logger.warning(
                "the limiter's pause of %s after a refusal for frequency was cut short by"
                " the call's deadline",
                key,
            )

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
