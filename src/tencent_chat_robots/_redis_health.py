"""Calling Redis through blips and outages, for :class:`RedisRateLimiter`.

A call that fails for a transient reason (time-out, connection refused or reset, Redis
loading, a read-only replica or a cluster during failover) is made again, with jittered
backoff, until ``retry_budget`` seconds after its first try. Past that, or at once for
any other failure, Redis counts as down for ``cooldown`` seconds: callers do not ask it
but fail (:class:`LimiterUnavailableError`) or, with ``fallback="local"``, are paced in
this process alone at their key's pace / ``fleet_size``. The first call after that asks
Redis once, and its first answer ends the outage for every caller. Why: see
docs/design/redis-limiter.md.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio
from redis.exceptions import (
    AuthenticationError,
    AuthorizationError,
    ClusterDownError,
    ExternalAuthProviderError,
    ReadOnlyError,
    RedisError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ._exceptions import LimiterUnavailableError
from ._limiter import RateLimiter
from ._logs import logger
from ._options import Priority
from ._redis_settings import RedisLimiterSettings

__all__ = ["FAILURES", "LimiterUnavailableError", "RedisHealth"]

T = TypeVar("T")

# Anything that goes wrong talking to Redis: refused, reset, timed out (anyio's and
# asyncio's TimeoutError are OSErrors), loading, read-only replica, script errors.
FAILURES = (RedisError, OSError)
# The ones worth calling again for: the same call may well succeed a moment later.
_TRANSIENT = (
    OSError,
    RedisConnectionError,  # refused, reset, loading (BusyLoadingError), pool exhausted
    RedisTimeoutError,
    ReadOnlyError,  # a replica not yet promoted
    TryAgainError,
    ClusterDownError,
)
# Connection errors by their class, yet no better a moment later.
_NOT_TRANSIENT = (AuthenticationError, AuthorizationError, ExternalAuthProviderError)
# Backoff (s) between calls while the retry budget lasts: the first soon, since a reset
# connection or a restarting Redis is often back within tens of milliseconds, then
# doubling to a cap that still asks a few times a second; each drawn from the upper half
# of its range so that processes that failed together do not call again in step.
_BACKOFF_FIRST = 0.05
_BACKOFF_MAX = 0.4


def _transient(err: BaseException) -> bool:
    return isinstance(err, _TRANSIENT) and not isinstance(err, _NOT_TRANSIENT)


class RedisHealth:
    """One limiter's view of its Redis: whether to ask it, and asking it through blips.

    ``given_up`` counts the calls given up on so far: a caller notes it when it queues,
    and :meth:`is_down` tells it apart from callers that came after one. ``failed_tries``
    counts every try that failed, retried or not (for metrics). ``local`` is the
    in-process limiter of ``fallback="local"`` (``None`` otherwise); ``last_error`` the
    failure of the current outage (``None``: Redis is up), ``down_since`` its start.
    """

    def __init__(self, settings: RedisLimiterSettings) -> None:
        self.settings = settings
        self.local = _local_limiter(settings)
        self.given_up = 0
        self.failed_tries = 0
        self.last_error: BaseException | None = None
        self.down_since: float | None = None  # Unix time the current outage began
        # After a failure, Redis is not asked until then: by new callers, and by those
        # already queued when it failed. Any answer from Redis ends both at once.
        self._down_until = -math.inf
        self._queued_down_until = -math.inf

    def is_down(self, since: int | None = None, *, now: float | None = None) -> bool:
        """Whether to leave Redis alone now, for a caller queued when ``given_up`` was
        ``since`` (``None``: one asking afresh). ``now``: the event loop's time, for a
        caller outside the loop (by default read in it)."""
        waited_through_one = since is not None and since != self.given_up
        down_until = self._queued_down_until if waited_through_one else self._down_until
        return (anyio.current_time() if now is None else now) < down_until

    async def call(self, attempt: Callable[[], Awaitable[T]]) -> T:
        """``attempt()``, each try bounded by ``timeout``, made again on transient failures
        within the retry budget. Raises the last failure (one of :data:`FAILURES`) once the
        budget is spent (at once for one that is not transient), having marked Redis down.
        """
        settings = self.settings
        # Once Redis counts as down, one call tells whether it is back: retrying then
        # would hold this queue for a whole budget at every probe of a long outage.
        budget = settings.retry_budget if self.last_error is None else 0.0
        budget_end = anyio.current_time() + budget
        backoff = _BACKOFF_FIRST
        while True:
            tried = anyio.current_time()
            try:
                with anyio.fail_after(settings.timeout):
                    result = await attempt()
            except FAILURES as err:
                self.failed_tries += 1
                now = anyio.current_time()
                if not _transient(err) or now >= budget_end:
                    self._failed(err, now - tried)
                    raise
                logger.debug("Redis rate limiter: %s: %s; calling again", type(err).__name__, err)
                await anyio.sleep(min(random.uniform(backoff / 2, backoff), budget_end - now))
                backoff = min(2 * backoff, _BACKOFF_MAX)
                continue
            self._answered()
            return result

    async def without_redis(self, key: str, priority: Priority, deadline: float | None) -> None:
        """Raise the typed error, or (``fallback="local"``) pace this process alone."""
        if self.local is None:
            err = self.last_error
            raise LimiterUnavailableError(
                f"the Redis rate limiter is unavailable ({type(err).__name__}: {err}); "
                "no request was sent"
            ) from err
        await self.local.acquire(key, priority=priority, deadline=deadline)

    async def pause(
        self, key: str, seconds: float, tell_redis: Callable[[], Awaitable[None]]
    ) -> None:
        """Pause ``key`` through ``tell_redis`` (and locally, with a local fallback); never
        raises for Redis: a pause Redis was not told of is logged instead."""
        if self.local is not None:
            await self.local.pause(key, seconds)  # in case Redis fails meanwhile
        if self.is_down():
            self._pause_lost(key, seconds, self.last_error)
            return
        try:
            await self.call(tell_redis)
        except FAILURES as err:
            self._pause_lost(key, seconds, err)

    def _pause_lost(self, key: str, seconds: float, err: BaseException | None) -> None:
        logger.warning(
            "Could not pause %s for %gs across the fleet%s: Redis did not answer (%s: %s)",
            key,
            seconds,
            " (paused in this process only)" if self.local is not None else "",
            type(err).__name__,
            err,
        )

    def _failed(self, err: BaseException, took: float) -> None:
        if self.last_error is None:  # once per outage, not once per call
            self.down_since = time.time()
            if self.local is not None:
                logger.warning(
                    "Redis rate limiter unavailable (%s: %s); pacing this process alone at "
                    "%.4g calls/s (rate %s / fleet_size %s) until Redis answers",
                    type(err).__name__,
                    err,
                    self.local.rate,
                    self.settings.rate,
                    self.settings.fleet_size,
                )
            else:
                logger.warning("Redis rate limiter unavailable (%s: %s)", type(err).__name__, err)
        self.last_error = err
        self.given_up += 1
        now = anyio.current_time()
        cooldown = self.settings.cooldown
        self._down_until = now + cooldown
        # Callers that waited through the failed call hold off at least as long as it
        # took: with a hung Redis and a short cooldown, each of them would otherwise
        # wait out a time-out of its own in turn. A refused call costs nothing, so with
        # cooldown=0 they still try Redis at once.
        self._queued_down_until = now + max(cooldown, took)

    def _answered(self) -> None:
        if self.last_error is not None:
            logger.warning("Redis rate limiter answers again; the shared limit is back")
            self.last_error = self.down_since = None
            self._down_until = self._queued_down_until = -math.inf


def _local_limiter(settings: RedisLimiterSettings) -> RateLimiter | None:
    """For ``fallback="local"``: every key paced at its share of its own pace. The table's
    APIs are named, so that one documented at another rate gets its share of that."""
    share = settings.fleet_size
    if settings.fallback != "local" or share is None:
        return None
    paces = settings.named_paces()
    return RateLimiter(
        settings.rate / share,
        rates={key: pace / share for key, pace in paces.items()},
        burst=settings.burst,
    )
