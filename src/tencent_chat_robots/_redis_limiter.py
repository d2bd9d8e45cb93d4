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
more than ``rate`` of them, from all processes together, whatever the timers, stalls or
idle gaps. The first keeps starts spread out instead of in clumps, and lets a late waker
use the slot it missed (so the fleet sustains the full rate) without ever exceeding the
ring's bound.

When a start is free now, the script grants it. Otherwise, if the next free start is
at most four intervals ahead, it books that start for the caller (recording it in the
ring and ``tat`` like any grant) and the caller sleeps until then; further ahead, it
books nothing and answers when to ask again, and the caller asks at a random point of
the interval after that, so the processes nearest Redis do not win every free start.
A caller that wakes more than 5 ms after its booked start (a stalled event loop) gives
it up and asks again rather than start on a stale booking: the lost start only makes
the bound stricter. The bound is on grant times as Redis records them: a request starts
once the answer has come back (or at its booked time, up to 5 ms late), so that latency
(sub-millisecond on a LAN) adds to the jitter of the network to Tencent, which the
default rate of 190 (not 200) absorbs.

Within a process, callers queue first-come first-served per endpoint and only the head
of the queue talks to Redis, holding at most one booked start at a time: busy processes
take turns, each booking the next free start as soon as it starts its previous one. A
grant therefore costs about one script call, whatever the number of callers waiting:
one per start with up to about four busy processes per endpoint (the horizon holds all
their bookings), plus some re-asks when more processes than that contend.

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
its data (restart without persistence, failover) starts the schedule afresh, as the
in-process limiter does when a process restarts.
"""

from __future__ import annotations

import math
import random
from types import TracebackType
from typing import Any, Literal, NamedTuple

import anyio

from ._config import require_number
from ._constants import MAX_RATE_LIMIT, WINDOW_MARGIN
from ._exceptions import TencentChatError, ValidationError
from ._limiter import RateLimiter
from ._logs import logger

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
# The ring's window: start k + floor(rate) is granted only more than a second after
# start k, by the same margin as in-process (see WINDOW_MARGIN for why).
_WINDOW_US = round((1 + WINDOW_MARGIN) * 1_000_000)
# How far ahead (in intervals) the script books a start for the caller asking. Each
# process books one start at a time per endpoint, so up to about this many processes
# take turns, at about one script call per start; more also ask again in between.
_HORIZON = 4
# A caller that wakes this much (s) after its booked start gives it up and asks again:
# above timer lateness (asyncio rounds its waits up to the millisecond), below a stall.
_LATE = 0.005
# Backoff (s) between calls while the retry budget lasts: the first soon, since a reset
# connection or a restarting Redis is often back within tens of milliseconds, then
# doubling to a cap that still asks a few times a second; each drawn from the upper half
# of its range so that processes that failed together do not call again in step.
_BACKOFF_FIRST = 0.05
_BACKOFF_MAX = 0.4

# KEYS[1]: one endpoint's schedule, a hash. Times are Redis TIME in microseconds, held
# as integers (exact in Lua's doubles) and written with %.0f, since tostring() would
# round them to 14 digits.
#   tat    GCRA theoretical arrival time of the next start
#   last   the newest grant time (a booked start may lie ahead of now)
#   head   index in the ring of the oldest of the last `capacity` grant times
#   0..capacity-1   that ring
# ARGV: interval, tolerance ((burst - 1) * interval), capacity, window, pause, horizon
# (µs). Returns {granted, wait, start}:
#   granted, wait 0: the caller starts now (start is now);
#   granted, wait > 0: the start at `start` is booked for the caller, who sleeps `wait`;
#   not granted: nothing booked, ask again in `wait` (start is now).
# Grants are recorded in time order (a new one is never before `last`), so the ring's
# oldest entry is also the `capacity`-th previous grant in time. A pause (ARGV[5] > 0)
# only pushes tat back; starts already booked keep their time.
_SCRIPT = """
if redis.replicate_commands then redis.replicate_commands() end -- Redis 3.2-4.x
local key = KEYS[1]
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local capacity = tonumber(ARGV[3])
local window = tonumber(ARGV[4])
local pause = tonumber(ARGV[5])
local horizon = tonumber(ARGV[6])

local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local state = redis.call('HMGET', key, 'tat', 'head', 'last')
local tat = tonumber(state[1]) or 0
local head = (tonumber(state[2]) or 0) % capacity
local last = tonumber(state[3]) or 0

local function keep(until_us)
  -- Once tat and the newest grant's window have passed, a missing key means the same.
  redis.call('PEXPIRE', key, math.ceil((until_us - now) / 1000) + 1)
end

if pause > 0 then
  tat = math.max(tat, now + pause + tolerance)
  redis.call('HSET', key, 'tat', string.format('%.0f', tat))
  keep(math.max(tat, last + window))
  return {0, 0, now}
end

local earliest = math.max(tat - tolerance, last)
local oldest = tonumber(redis.call('HGET', key, tostring(head)))
if oldest then
  earliest = math.max(earliest, oldest + window)
end
local start = now
if earliest > now then
  -- A booked start keeps a full interval from the previous one: the burst tolerance
  -- is for callers that come late, not for clumping bookings together.
  start = math.max(earliest, last + interval)
  if start - now > horizon then
    return {0, start - horizon - now, now}
  end
end
tat = math.max(tat, start) + interval
redis.call('HSET', key, 'tat', string.format('%.0f', tat),
  tostring(head), string.format('%.0f', start), 'head', tostring((head + 1) % capacity),
  'last', string.format('%.0f', start))
keep(math.max(tat, start + window))
return {1, start - now, start}
"""

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
    wait: float  # seconds: until the booked start (granted), or until asking again
    redis_time: int  # µs of Redis time: the start granted, or (not granted) now


class _Queue:
    """One endpoint's waiters in this process: FIFO, and when to ask Redis next."""

    __slots__ = ("lock", "ready_at")

    def __init__(self) -> None:
        self.lock = anyio.Lock(fast_acquire=True)
        self.ready_at = -math.inf


class RedisRateLimiter:
    """At most ``rate`` starts per endpoint in any sliding second, across all processes.

    Every process built with the same Redis, ``sdkappid`` and ``prefix`` shares each
    endpoint's budget; they must also agree on ``rate`` and ``burst``. ``sdkappid`` is
    required because the limit is the app's: give the one the client uses.

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
    budget: size ``rate`` with that margin if outages matter. :meth:`pause` never raises for Redis:
    it logs a warning instead, so the caller sees the refusal that prompted it.

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
        sdkappid: int,
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
        self._script = client.register_script(_SCRIPT)
        # Rounding the interval up errs on the slow side; the ring keeps the bound exact.
        interval = math.ceil(1_000_000 / rate)
        self._interval = interval / 1e6
        self._args = (interval, (burst - 1) * interval, int(rate), _WINDOW_US)
        self._horizon = _HORIZON * interval
        self._queues: dict[str, _Queue] = {}
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
        sdkappid: int,
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

    def redis_key(self, key: str) -> str:
        """The Redis key holding endpoint ``key``'s shared schedule."""
        return f"{self.prefix}:{self.sdkappid}:{key}"

    async def acquire(self, key: str) -> None:
        """Wait for this endpoint's next start in the fleet; FIFO within this process."""
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = _Queue()
        failures = self._failures
        async with queue.lock:
            while True:
                # Decided afresh at every turn, not once for the queue: Redis may have
                # failed, or answered again, while this caller waited.
                waited_through_one = self._failures != failures
                down_until = self._queued_down_until if waited_through_one else self._down_until
                if anyio.current_time() < down_until:
                    await self._without_redis(key, self._last_error)
                    return
                delay = queue.ready_at - anyio.current_time()
                if delay > 0:
                    await anyio.sleep(delay)
                    continue
                try:
                    reply = await self._call(key, 0)
                except _FAILURES as err:
                    await self._without_redis(key, err)
                    return
                answered = anyio.current_time()
                if not reply.granted:
                    # Asking again at a random point of the next interval, rather than
                    # all at once, keeps the processes nearest Redis from winning it.
                    queue.ready_at = answered + reply.wait + random.uniform(0, self._interval)
                    continue
                if reply.wait > 0:
                    start = answered + reply.wait
                    await anyio.sleep(reply.wait)
                    if anyio.current_time() > start + _LATE:
                        # Woke late (a stalled loop): starting now, on a stale booking,
                        # could crowd a second. The booked start is simply lost.
                        continue
                return

    async def pause(self, key: str, seconds: float) -> None:
        """Start nothing of ``key`` for ``seconds``, in every process of the fleet.

        Starts the script has already booked (at most one per process, no more than
        four intervals ahead) keep their time. Never raises for Redis: if it cannot be
        told (within the retry budget), a warning is logged, and the caller's own error
        is the one that matters.
        """
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

    async def _call(self, key: str, pause_us: int) -> _Reply:
        """:meth:`_ask`, made again on transient failures within the retry budget.

        Raises the last failure once the budget is spent (at once for one that is not
        transient), having marked Redis down.
        """
        began = anyio.current_time()
        # Once Redis counts as down, one call tells whether it is back: retrying then
        # would hold this queue for a whole budget at every probe of a long outage.
        deadline = began + (self.retry_budget if self._last_error is None else 0.0)
        backoff = _BACKOFF_FIRST
        while True:
            tried = anyio.current_time()
            try:
                reply = await self._ask(key, pause_us)
            except _FAILURES as err:
                now = anyio.current_time()
                if not _transient(err) or now >= deadline:
                    self._failed(err, now - tried)
                    raise
                logger.debug("Redis rate limiter: %s: %s; calling again", type(err).__name__, err)
                await anyio.sleep(min(random.uniform(backoff / 2, backoff), deadline - now))
                backoff = min(2 * backoff, _BACKOFF_MAX)
                continue
            self._answered()
            return reply

    async def _ask(self, key: str, pause_us: int) -> _Reply:
        """Run the script once: a grant, a wait, or (``pause_us``) a pause."""
        with anyio.fail_after(self.timeout):
            granted, wait_us, time_us = await self._script(
                keys=[self.redis_key(key)], args=[*self._args, pause_us, self._horizon]
            )
        return _Reply(bool(granted), int(wait_us) / 1e6, int(time_us))

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

    async def _without_redis(self, key: str, err: BaseException | None) -> None:
        """Raise the typed error, or (``fallback="local"``) pace this process alone."""
        if self._local is None:
            raise LimiterUnavailableError(
                f"the Redis rate limiter is unavailable ({type(err).__name__}: {err}); "
                "no request was sent"
            ) from err
        await self._local.acquire(key)


def _check(
    rate: float,
    sdkappid: int,
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
