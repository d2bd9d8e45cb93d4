"""A rate limiter shared by every process of one app, through Redis.

The documented limit (200 calls/s per API) belongs to the app, not to a process; this
limiter keeps a whole fleet under it. Each endpoint's schedule lives in one Redis hash
(``{prefix}:{sdkappid}:{endpoint}``), changed only by one atomic Lua script that reads
the time with Redis ``TIME``, so the hosts' clocks never enter into it.

The script applies the same two rules as the in-process :class:`RateLimiter`:

* pacing (GCRA): a theoretical arrival time ``tat`` advancing ``1/rate`` per start, with
  a burst of at most ``burst``;
* a ring of the last ``floor(rate)`` grant times: a start is granted only once the
  ``floor(rate)``-th previous one is more than a second old (1.002 s).

The second rule alone makes the bound exact: grants are recorded in time order (none
before the newest, even a booked one), so ``floor(rate) + 1`` of them span more than a
second of Redis time, so no sliding second, even one closed at both ends, ever holds
more than ``rate`` of them, from all processes together and both priority classes
together, whatever the timers, stalls or idle gaps. The first keeps starts spread out
instead of in clumps, and lets a late waker use the slot it missed (so the fleet
sustains the full rate) without ever exceeding the ring's bound.

Two priority classes share that one schedule. An **interactive** caller is booked the
next free start at once, however far ahead (or refused at once if that is past its
deadline). **Bulk** callers take turns through a line of processes kept in the same
hash, one entry per process: a process may book only when it is one of the first two
in the line and the next free start is at most three intervals ahead, so bulk bookings
never reach further than that and an interactive caller arriving meanwhile is booked
right behind them. A process that books while it has more bulk callers waiting is put
back at the end of the line in the same script call, and told when its turn should
come (the next free start plus one interval per process ahead of it): so each bulk
start costs about one script call however many processes take turns, and they share
it round robin. When the line falls behind (interactive starts, a slow process), the
one-interval slack in the horizon absorbs it, and a free start that nobody ahead has
taken by its time goes to whoever asks. An entry whose process has not come back within
``GRACE`` (100 ms) of its turn (dead, or its callers were cancelled) is dropped when it
reaches the front; the others pass it meanwhile, so it delays nobody by more than that.
The script itself, and what it keeps in the hash, is in ``_redis_script``.

A caller that wakes more than 5 ms after its booked start (a stalled event loop) gives
it up and asks again rather than start on a stale booking: the lost start only makes
the bound stricter, as does any start booked for a caller that is then cancelled or
whose deadline passes. The bound is on grant times as Redis records them: a request
starts once the answer has come back (or at its booked time, up to 5 ms late), so that
latency (sub-millisecond on a LAN) adds to the jitter of the network to Tencent, which
the default rate of 190 (not 200) absorbs.

Within a process, each endpoint has one first-come first-served queue per class and
only the head of each talks to Redis. A bulk head holds its one booked start until it
starts; an interactive head hands over once its start is within the bulk horizon, so
that queued interactive callers are booked before any bulk caller can be.

When a script call fails with a transient error (time-out, connection refused or reset,
Redis loading, a read-only replica or a cluster during failover), the head of the queue
calls again, with jittered backoff, until ``retry_budget`` seconds after its first try,
while the callers behind it keep waiting: a blip shorter than that fails no call and
leaves the shared limit in force. Other errors (a script error, refused credentials) end
that at once. Then Redis counts as down: for ``cooldown`` seconds acquisitions do not
ask it but fail, or pace this process alone, at once; the callers already queued when it
failed hold off at least as long as the failed call took, so that with a hung Redis they
do not each wait out a time-out of their own, whatever the cooldown. The first
acquisition after that asks Redis once (retrying is for a Redis believed up), and as
soon as Redis answers any call, every later acquisition, queued or new, is back on the
shared limit: whether to fall back is decided per acquisition, not for a whole queue.
Redis never sees the starts paced locally, so for up to a second after the switch back
a sliding second may hold some of them on top of the shared budget. A Redis that loses
its data (restart without persistence, failover) starts the schedule and the line
afresh, as the in-process limiter does when a process restarts.
"""

from __future__ import annotations

import math
import os
import random
import secrets
from types import TracebackType
from typing import Any, Literal, NamedTuple

import anyio

from ._config import require_number
from ._constants import MAX_RATE_LIMIT
from ._exceptions import QueueTimeoutError, TencentChatError, ValidationError
from ._limiter import Priority, RateLimiter
from ._logs import logger
from ._options import PRIORITIES, priority_rank
from ._redis_script import GRACE, HORIZON, SCRIPT, WINDOW_US

try:
    from redis.asyncio import Redis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
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
except ImportError as err:  # pragma: no cover - depends on the environment
    raise ImportError(
        "RedisRateLimiter needs redis-py: pip install 'tencent-chat-robots[redis]'"
    ) from err

__all__ = ["DEFAULT_PREFIX", "LimiterUnavailableError", "RedisRateLimiter"]

DEFAULT_PREFIX = "tencent-chat-robots"
# A caller that wakes this much (s) after its booked start gives it up and asks again:
# above timer lateness (asyncio rounds its waits up to the millisecond), below a stall.
_LATE = 0.005
# Backoff (s) between calls while the retry budget lasts: the first soon, since a reset
# connection or a restarting Redis is often back within tens of milliseconds, then
# doubling to a cap that still asks a few times a second; each drawn from the upper half
# of its range so that processes that failed together do not call again in step.
_BACKOFF_FIRST = 0.05
_BACKOFF_MAX = 0.4


# Anything that goes wrong talking to Redis: refused, reset, timed out (anyio's and
# asyncio's TimeoutError are OSErrors), loading, read-only replica, script errors.
_FAILURES = (RedisError, OSError)
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


def _transient(err: BaseException) -> bool:
    return isinstance(err, _TRANSIENT) and not isinstance(err, _NOT_TRANSIENT)


class LimiterUnavailableError(TencentChatError):
    """The Redis behind the shared rate limiter did not answer; nothing was sent.

    Raised instead of sending unpaced, which could exceed the app's limit. Pass
    ``fallback="local"`` to :class:`RedisRateLimiter` to keep working meanwhile.
    """


class _Reply(NamedTuple):
    granted: bool
    # Seconds: until the booked start (granted), until asking again (not granted), or
    # (too_late) until the start would have come.
    wait: float
    redis_time: int  # µs of Redis time: the start granted, or (not granted) now
    next_wait: float = 0.0  # bulk, granted with more waiting: until this process's turn
    too_late: bool = False  # refused for the deadline; nothing booked


class _Queue:
    """One endpoint's waiters of one class in this process: FIFO, and when to ask next."""

    __slots__ = ("booked", "lock", "ready_at", "waiting")

    def __init__(self) -> None:
        self.lock = anyio.Lock(fast_acquire=True)
        self.ready_at = -math.inf
        self.booked = -math.inf  # the start an interactive head holds while it waits
        self.waiting = 0  # callers in the queue, its head included


class _Endpoint:
    __slots__ = ("bulk", "interactive")

    def __init__(self) -> None:
        self.interactive = _Queue()
        self.bulk = _Queue()


class RedisRateLimiter:
    """At most ``rate`` starts per endpoint in any sliding second, across all processes.

    Every process built with the same Redis, ``sdkappid`` and ``prefix`` shares each
    endpoint's budget; they must also agree on ``rate`` and ``burst``. The limit is the
    app's: without ``sdkappid``, :meth:`for_app` (which ``TencentChat`` calls with its
    own) gives the limiter for an app; acquiring on an unbound limiter is an error.

    ``acquire(key, priority=..., deadline=...)``: an ``"interactive"`` caller (the
    default) gets the endpoint's next start before any ``"bulk"`` caller still waiting,
    in any process; bulk callers share what is left, process by process in turn. Within
    a class and a process, callers are served first come, first served. With a
    ``deadline`` (on ``anyio.current_time()``), :class:`QueueTimeoutError` is raised at
    once (with ``predicted_wait``) when the permit plainly cannot come in time, or when
    the deadline passes while waiting.

    Each Redis call is bounded by ``timeout`` seconds. A call that fails for a transient
    reason (time-out, connection refused or reset, failover) is made again, with jittered
    backoff, until ``retry_budget`` seconds after the first try, the callers queued
    behind it waiting meanwhile: a shorter blip fails nothing. After that ``acquire``
    raises :class:`LimiterUnavailableError` (``fallback="error"``), or with
    ``fallback="local"`` paces this process alone at ``rate / fleet_size`` and logs a
    warning. For ``cooldown`` seconds calls then fail (or run locally) at once rather
    than each waiting for a time-out (those queued meanwhile, at least as long as the
    failed call took); the next one asks Redis again, and once Redis answers, every
    acquisition is back on the shared limit. Redis does not see local starts, so for a
    second after a switch back a second may hold some of them on top of the shared
    budget: size ``rate`` with that margin if outages matter. :meth:`pause` never raises
    for Redis: it logs a warning instead, so the caller sees the refusal that prompted it.

    ``client`` is a ``redis.asyncio.Redis``; it is not closed by :meth:`aclose`, unlike
    the one :meth:`from_url` creates. Each script call touches one key, so the layout
    suits Redis Cluster too. Numbers out of range (or not finite) raise
    :class:`~tencent_chat_robots.ValidationError`, a ``ValueError``.
    """

    def __init__(
        self,
        client: Redis,
        *,
        rate: float,
        sdkappid: int | None = None,
        prefix: str = DEFAULT_PREFIX,
        burst: int = 2,
        timeout: float = 0.5,
        fallback: Literal["error", "local"] = "error",
        fleet_size: int | None = None,
        cooldown: float = 1.0,
        retry_budget: float = 1.0,
    ) -> None:
        _check(rate, sdkappid, burst, timeout, fallback, fleet_size, cooldown, retry_budget)
        self._local: RateLimiter | None = None
        if fallback == "local":
            assert fleet_size is not None  # _check
            self._local = RateLimiter(rate / fleet_size, burst=burst)
        self.rate = rate
        self.sdkappid = sdkappid
        self.prefix = prefix
        self.burst = burst
        self.timeout = timeout
        self.fallback = fallback
        self.fleet_size = fleet_size
        self.cooldown = cooldown
        self.retry_budget = retry_budget
        self._client = client
        self._owns_client = False
        # register_script answers NOSCRIPT (Redis restarted or flushed) by loading the
        # script again and retrying, so the cache needs no handling here.
        self._script = client.register_script(SCRIPT)
        # Rounding the interval up errs on the slow side; the ring keeps the bound exact.
        interval = math.ceil(1_000_000 / rate)
        self._interval = interval / 1e6
        self._horizon = HORIZON * interval
        self._args = (
            interval,
            (burst - 1) * interval,
            int(rate),
            WINDOW_US,
        )
        self._tokens = (os.getpid(), secrets.token_hex(8))  # this process's entry in the lines
        self._endpoints: dict[str, _Endpoint] = {}
        self._apps: dict[int, RedisRateLimiter] = {}  # for_app's, when unbound
        # After a failure, Redis is not asked until then: by new acquisitions, and by
        # those already queued when it failed. Any answer from Redis ends both at once.
        self._down_until = -math.inf
        self._queued_down_until = -math.inf
        self._failures = 0  # calls given up on so far
        self._last_error: BaseException | None = None

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        rate: float,
        sdkappid: int | None = None,
        prefix: str = DEFAULT_PREFIX,
        burst: int = 2,
        timeout: float = 0.5,
        fallback: Literal["error", "local"] = "error",
        fleet_size: int | None = None,
        cooldown: float = 1.0,
        retry_budget: float = 1.0,
        **redis_options: Any,
    ) -> RedisRateLimiter:
        """A limiter on its own Redis client for ``url`` (``redis://host:port/db``).

        ``redis_options`` go to ``redis.asyncio.Redis.from_url``. By default sockets time
        out after ``timeout`` and a failed command is retried once, at once (a pooled
        connection may be stale after a Redis restart), not with redis-py's backoff: the
        limiter's own ``retry_budget`` covers longer blips.
        """
        # Before the client exists: its socket options take timeout as given.
        _check(rate, sdkappid, burst, timeout, fallback, fleet_size, cooldown, retry_budget)
        redis_options.setdefault("socket_timeout", timeout)
        redis_options.setdefault("socket_connect_timeout", timeout)
        redis_options.setdefault("retry", Retry(NoBackoff(), 1))
        client = Redis.from_url(url, **redis_options)
        limiter = cls(
            client,
            rate=rate,
            sdkappid=sdkappid,
            prefix=prefix,
            burst=burst,
            timeout=timeout,
            fallback=fallback,
            fleet_size=fleet_size,
            cooldown=cooldown,
            retry_budget=retry_budget,
        )
        limiter._owns_client = True
        return limiter

    def __repr__(self) -> str:
        return (
            f"RedisRateLimiter(rate={self.rate!r}, sdkappid={self.sdkappid!r}, "
            f"prefix={self.prefix!r}, fallback={self.fallback!r})"
        )

    def for_app(self, sdkappid: int) -> RedisRateLimiter:
        """This limiter for app ``sdkappid``, on the same Redis client.

        A limiter made with that ``sdkappid`` is returned as it is; one made with another
        is refused (:class:`ValidationError`). One made without returns, for each app, a
        single bound limiter (the callers of that app in this process queue together);
        closing the unbound one closes the client they share.
        """
        if self.sdkappid is not None:
            if self.sdkappid == sdkappid:
                return self
            raise ValidationError(
                f"this RedisRateLimiter is for sdkappid {self.sdkappid}, not {sdkappid}: "
                "give each app a limiter of its own, or one made without sdkappid"
            )
        require_number("sdkappid", sdkappid, minimum=1, integer=True)
        bound = self._apps.get(sdkappid)
        if bound is None:
            bound = self._apps[sdkappid] = RedisRateLimiter(
                self._client,
                rate=self.rate,
                sdkappid=sdkappid,
                prefix=self.prefix,
                burst=self.burst,
                timeout=self.timeout,
                fallback=self.fallback,
                fleet_size=self.fleet_size,
                cooldown=self.cooldown,
                retry_budget=self.retry_budget,
            )
        return bound

    def redis_key(self, key: str) -> str:
        """The Redis key holding endpoint ``key``'s shared schedule."""
        if self.sdkappid is None:
            raise ValidationError(
                "this RedisRateLimiter has no sdkappid: pass sdkappid=, or give it to a "
                "TencentChat (limiter=...), which uses the client's app"
            )
        return f"{self.prefix}:{self.sdkappid}:{key}"

    async def acquire(
        self, key: str, *, priority: Priority = "interactive", deadline: float | None = None
    ) -> None:
        """Wait for this endpoint's next start in the fleet, by ``priority`` class.

        ``deadline`` is absolute, on ``anyio.current_time()``. Raises
        :class:`QueueTimeoutError` at once (``predicted_wait`` set, nothing booked) if
        the starts owed to the callers ahead of this one cannot all come by then, or once
        it passes while waiting (``predicted_wait`` ``None``).
        """
        self.redis_key(key)  # refuse an unbound limiter before anything else
        priority = PRIORITIES[priority_rank(priority)]  # the plain name, or refused
        endpoint = self._endpoints.get(key)
        if endpoint is None:
            endpoint = self._endpoints[key] = _Endpoint()
        queue = endpoint.bulk if priority == "bulk" else endpoint.interactive
        if deadline is not None:
            owed = self.predicted_wait(key, priority=priority, deadline=deadline)
            if owed > 0 and anyio.current_time() + owed > deadline:
                raise _too_late(key, owed)
        queue.waiting += 1
        try:
            with anyio.CancelScope(deadline=math.inf if deadline is None else deadline):
                await self._acquire(key, queue, priority, deadline)
                return
        finally:
            queue.waiting -= 1
        # Only reached when the deadline's scope cancelled the wait.
        raise QueueTimeoutError(
            f"no rate permit for {key} came before the deadline; nothing was sent",
            endpoint=key,
        )

    def predicted_wait(
        self, key: str, *, priority: Priority = "interactive", also_ahead: int = 0, deadline: float
    ) -> float:
        """The least wait (s) for a caller of ``priority`` asking now, were ``also_ahead``
        more callers of its class or above queued ahead of it in this process.

        Counts only this process's queues, without asking Redis: every caller queued
        ahead needs a start of its own (a burst aside), and bulk ones come after the
        interactive ones. ``deadline`` is accepted for the protocol; the count is O(1).
        """
        endpoint = self._endpoints.get(key)
        ahead = also_ahead
        if endpoint is None:
            return max(0, ahead - self.burst + 1) * self._interval
        interactive = endpoint.interactive
        ahead += interactive.waiting
        if priority == "bulk":
            ahead += endpoint.bulk.waiting
        owed = max(0, ahead - self.burst + 1) * self._interval
        # An interactive head holding a booked start: the others come after it.
        booked = interactive.booked - anyio.current_time()
        return max(owed, booked + ahead * self._interval) if booked > 0 else owed

    async def pause(self, key: str, seconds: float) -> None:
        """Start nothing of ``key`` for ``seconds``, in every process of the fleet.

        Applies to both classes. Starts the script has already booked (a few per process,
        no more than a few intervals ahead) keep their time. Never raises for Redis: if
        it cannot be told (within the retry budget), a warning is logged, and the
        caller's own error is the one that matters.
        """
        self.redis_key(key)
        if self._local is not None:
            await self._local.pause(key, seconds)  # in case Redis fails meanwhile
        if anyio.current_time() < self._down_until:
            self._pause_lost(key, seconds, self._last_error)
            return
        try:
            await self._call(key, max(1, round(seconds * 1e6)))
        except _FAILURES as err:
            self._pause_lost(key, seconds, err)

    async def aclose(self) -> None:
        """Close the Redis client if :meth:`from_url` created it."""
        if self._owns_client:
            await self._client.aclose()

    async def __aenter__(self) -> RedisRateLimiter:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _acquire(
        self, key: str, queue: _Queue, priority: Priority, deadline: float | None
    ) -> None:
        failures = self._failures
        while True:
            await queue.lock.acquire()
            try:
                start = await self._turn(key, queue, priority, deadline, failures)
                if start is not None:
                    # An interactive head hands over once no bulk caller can be booked
                    # before the start that comes after its own.
                    delay = start - self._horizon / 1e6 - anyio.current_time()
                    if delay > 0:
                        queue.booked = start  # those behind start after it
                        await anyio.sleep(delay)
            finally:
                queue.booked = -math.inf
                queue.lock.release()
            if start is None:
                return
            delay = start - anyio.current_time()
            if delay <= 0:
                return
            await anyio.sleep(delay)
            if anyio.current_time() <= start + _LATE:
                return
            # Woke late (a stalled loop): starting now, on a stale booking, could crowd
            # a second. The booked start is simply lost; queue again.

    async def _turn(
        self,
        key: str,
        queue: _Queue,
        priority: Priority,
        deadline: float | None,
        failures: int,
    ) -> float | None:
        """As the head of its class's queue: get a start, waiting through bulk turns.

        Returns an interactive caller's booked start (loop time) for it to wait for
        outside the queue, or ``None`` once the caller may start.
        """
        bulk = priority == "bulk"
        while True:
            # Decided afresh at every turn, not once for the queue: Redis may have
            # failed, or answered again, while this caller waited.
            waited_through_one = self._failures != failures
            down_until = self._queued_down_until if waited_through_one else self._down_until
            if anyio.current_time() < down_until:
                await self._without_redis(key, self._last_error, priority, deadline)
                return None
            delay = queue.ready_at - anyio.current_time()
            if delay > 0:
                await anyio.sleep(delay)
                continue
            try:
                # Cut off by the deadline too (a hung Redis must not hold a caller past
                # its max_wait): so max_wait must leave room for a round trip to Redis.
                reply = await self._call(
                    key, 0, bulk=bulk, deadline=deadline, more=bulk and queue.waiting > 1
                )
            except _FAILURES as err:
                await self._without_redis(key, err, priority, deadline)
                return None
            answered = anyio.current_time()
            if reply.too_late:
                raise _too_late(key, reply.wait)
            if reply.granted and deadline is not None and answered + reply.wait > deadline:
                # Booked in time by Redis's clock, but not once the answer has come back.
                raise _too_late(key, reply.wait)
            if not reply.granted:
                queue.ready_at = answered + reply.wait
                continue
            if reply.next_wait > 0:
                queue.ready_at = answered + reply.next_wait
            start = answered + reply.wait
            if not bulk:
                return start
            if reply.wait > 0:
                await anyio.sleep(reply.wait)
                if anyio.current_time() > start + _LATE:
                    continue  # woke late: the booked start is lost, as above
            return None

    async def _call(
        self,
        key: str,
        pause_us: int,
        *,
        bulk: bool = False,
        deadline: float | None = None,
        more: bool = False,
    ) -> _Reply:
        """:meth:`_ask`, made again on transient failures within the retry budget.

        Raises the last failure once the budget is spent (at once for one that is not
        transient), having marked Redis down.
        """
        began = anyio.current_time()
        # Once Redis counts as down, one call tells whether it is back: retrying then
        # would hold this queue for a whole budget at every probe of a long outage.
        budget_end = began + (self.retry_budget if self._last_error is None else 0.0)
        backoff = _BACKOFF_FIRST
        while True:
            tried = anyio.current_time()
            try:
                reply = await self._ask(key, pause_us, bulk=bulk, deadline=deadline, more=more)
            except _FAILURES as err:
                now = anyio.current_time()
                if not _transient(err) or now >= budget_end:
                    self._failed(err, now - tried)
                    raise
                logger.debug("Redis rate limiter: %s: %s; calling again", type(err).__name__, err)
                await anyio.sleep(min(random.uniform(backoff / 2, backoff), budget_end - now))
                backoff = min(2 * backoff, _BACKOFF_MAX)
                continue
            self._answered()
            return reply

    async def _ask(
        self,
        key: str,
        pause_us: int,
        *,
        bulk: bool = False,
        deadline: float | None = None,
        more: bool = False,
    ) -> _Reply:
        """Run the script once: a grant, a wait, a refusal, or (``pause_us``) a pause."""
        max_wait_us = -1
        if deadline is not None:
            max_wait_us = max(0, math.floor((deadline - anyio.current_time()) * 1e6))
        with anyio.fail_after(self.timeout):
            status, wait_us, time_us, next_us = await self._script(
                keys=[self.redis_key(key)],
                args=[
                    *self._args,
                    pause_us,
                    self._horizon,
                    round(GRACE * 1e6),
                    "b" if bulk else "i",
                    max_wait_us,
                    self._token(),
                    int(more),
                ],
            )
        return _Reply(
            status == 1, int(wait_us) / 1e6, int(time_us), int(next_us) / 1e6, status == 2
        )

    def _token(self) -> str:
        """This process's token: drawn anew in a process forked after construction
        (e.g. gunicorn --preload), which would otherwise share its parent's entry."""
        pid, token = self._tokens
        if pid != os.getpid():
            self._tokens = pid, token = os.getpid(), secrets.token_hex(8)
        return token

    def _pause_lost(self, key: str, seconds: float, err: BaseException | None) -> None:
        logger.warning(
            "Could not pause %s for %gs across the fleet%s: Redis did not answer (%s: %s)",
            key,
            seconds,
            " (paused in this process only)" if self._local is not None else "",
            type(err).__name__,
            err,
        )

    def _failed(self, err: BaseException, took: float) -> None:
        if self._last_error is None:  # once per outage, not once per call
            if self._local is not None:
                logger.warning(
                    "Redis rate limiter unavailable (%s: %s); pacing this process alone at "
                    "%.4g calls/s (rate %s / fleet_size %s) until Redis answers",
                    type(err).__name__,
                    err,
                    self._local.rate,
                    self.rate,
                    self.fleet_size,
                )
            else:
                logger.warning("Redis rate limiter unavailable (%s: %s)", type(err).__name__, err)
        self._last_error = err
        self._failures += 1
        now = anyio.current_time()
        self._down_until = now + self.cooldown
        # Callers that waited through the failed call hold off at least as long as it
        # took: with a hung Redis and a short cooldown, each of them would otherwise
        # wait out a time-out of its own in turn. A refused call costs nothing, so with
        # cooldown=0 they still try Redis at once.
        self._queued_down_until = now + max(self.cooldown, took)

    def _answered(self) -> None:
        if self._last_error is not None:
            logger.warning("Redis rate limiter answers again; the shared limit is back")
            self._last_error = None
            self._down_until = self._queued_down_until = -math.inf

    async def _without_redis(
        self, key: str, err: BaseException | None, priority: Priority, deadline: float | None
    ) -> None:
        """Raise the typed error, or (``fallback="local"``) pace this process alone."""
        if self._local is None:
            raise LimiterUnavailableError(
                f"the Redis rate limiter is unavailable ({type(err).__name__}: {err}); "
                "no request was sent"
            ) from err
        await self._local.acquire(key, priority=priority, deadline=deadline)


def _too_late(key: str, predicted: float) -> QueueTimeoutError:
    return QueueTimeoutError(
        f"the rate permit for {key} would come in {predicted:.3f}s, after the deadline; "
        "nothing was sent",
        endpoint=key,
        predicted_wait=predicted,
    )


def _check(
    rate: float,
    sdkappid: int | None,
    burst: int,
    timeout: float,
    fallback: str,
    fleet_size: int | None,
    cooldown: float,
    retry_budget: float,
) -> None:
    """Refuse a configuration that cannot work, naming the argument."""
    # float("inf") passes ">= 1" but leaves no interval between starts at all.
    require_number("rate", rate, minimum=1, maximum=MAX_RATE_LIMIT)
    if sdkappid is not None:
        require_number("sdkappid", sdkappid, minimum=1, integer=True)
    require_number("burst", burst, minimum=1, integer=True)
    # As TencentChat's timeout: under a millisecond no Redis could answer.
    require_number("timeout", timeout, minimum=0.001)
    require_number("cooldown", cooldown, minimum=0)
    require_number("retry_budget", retry_budget, minimum=0)
    if fallback not in ("error", "local"):
        raise ValidationError(f"fallback must be 'error' or 'local', got {fallback!r}")
    if fleet_size is not None:
        require_number("fleet_size", fleet_size, minimum=1, integer=True)
    if fallback == "local":
        # No silent default: assuming a fleet of one would multiply the limit.
        if fleet_size is None:
            raise ValidationError("fallback='local' needs fleet_size, the number of processes")
        if rate / fleet_size < 1:
            raise ValidationError(
                "rate / fleet_size must be at least 1 call per second for "
                f"fallback='local' (each process's share), got {rate!r} / {fleet_size!r}"
            )
