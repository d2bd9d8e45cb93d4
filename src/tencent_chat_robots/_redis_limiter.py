"""A rate limiter shared by every process of one app, through Redis.

The documented limit (200 calls/s per API) belongs to the app, not to a process; this
limiter keeps a whole fleet under it. Each endpoint's schedule lives in one Redis hash
(``{prefix}:{sdkappid}:{endpoint}``), changed only by one atomic Lua script that reads
the time with Redis ``TIME``, so the hosts' clocks never enter into it.

The script applies the same two rules as the in-process :class:`RateLimiter`:

* pacing (GCRA): a theoretical arrival time ``tat`` advancing ``1/rate`` per start, with
  a burst of at most ``burst``;
* a ring of the last ``floor(rate)`` grant times: a start is granted only once the
  ``floor(rate)``-th previous one is a full second old.

The second rule alone makes the bound exact: grants are recorded in time order (none
before the newest, even a booked one), so ``floor(rate) + 1`` of them span at least a
second of Redis time, so no sliding second ever holds more than ``rate`` of them, from
all processes together, whatever the timers, stalls or idle gaps. The first keeps
starts spread out instead of in clumps, and lets a late waker use the slot it missed
(so the fleet sustains the full rate) without ever exceeding the ring's bound.

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
their bookings), plus some re-asks when more processes than that contend. When a
script call fails, every caller already queued behind it for that endpoint fails (or
falls back) at once rather than waiting for a timeout of its own. A Redis that loses
its data (restart without persistence, failover) starts the schedule afresh, as the
in-process limiter does when a process restarts.
"""

from __future__ import annotations

import logging
import math
import random
from types import TracebackType
from typing import Any, Literal, NamedTuple

import anyio

from ._exceptions import TencentChatError
from ._limiter import RateLimiter

try:
    from redis.asyncio import Redis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.exceptions import RedisError
except ImportError as err:  # pragma: no cover - depends on the environment
    raise ImportError(
        "RedisRateLimiter needs redis-py: pip install 'tencent-chat-robots[redis]'"
    ) from err

__all__ = ["DEFAULT_PREFIX", "LimiterUnavailableError", "RedisRateLimiter"]

logger = logging.getLogger("tencent_chat_robots")

DEFAULT_PREFIX = "tencent-chat-robots"
_WINDOW_US = 1_000_000
# How far ahead (in intervals) the script books a start for the caller asking. Each
# process books one start at a time per endpoint, so up to about this many processes
# take turns, at about one script call per start; more also ask again in between.
_HORIZON = 4
# A caller that wakes this much (s) after its booked start gives it up and asks again:
# above timer lateness (asyncio rounds its waits up to the millisecond), below a stall.
_LATE = 0.005

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

    __slots__ = ("error", "failures", "lock", "ready_at")

    def __init__(self) -> None:
        self.lock = anyio.Lock(fast_acquire=True)
        self.ready_at = -math.inf
        # Asks that failed so far, and the last error: a caller queued when one fails
        # fails with it, rather than asking (and maybe timing out) in its turn.
        self.failures = 0
        self.error: BaseException | None = None

    def failed(self, err: BaseException) -> None:
        self.failures += 1
        self.error = err


class RedisRateLimiter:
    """At most ``rate`` starts per endpoint in any sliding second, across all processes.

    Every process built with the same Redis, ``sdkappid`` and ``prefix`` shares each
    endpoint's budget; they must also agree on ``rate`` and ``burst``. ``sdkappid`` is
    required because the limit is the app's: give the one the client uses.

    Each Redis call is bounded by ``timeout`` seconds. When Redis fails, ``acquire``
    raises :class:`LimiterUnavailableError` (``fallback="error"``), or with
    ``fallback="local"`` paces this process alone at ``rate / fleet_size`` and logs a
    warning. Either way Redis is tried again ``cooldown`` seconds after a failure; until
    then calls fail (or run locally) at once rather than each waiting for a timeout, and
    a failure also fails (or moves to local) every caller already queued behind it.
    Redis does not see local starts, so around a switch a second may hold some of them on
    top of the shared budget: size ``rate`` with that margin if outages matter.
    :meth:`pause` never raises for Redis: it logs a warning instead, so the caller sees
    the refusal that prompted it.

    ``client`` is a ``redis.asyncio.Redis``; it is not closed by :meth:`aclose`, unlike
    the one :meth:`from_url` creates. Each script call touches one key, so the layout
    suits Redis Cluster too.
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
    ) -> None:
        if not rate >= 1:
            raise ValueError(f"rate must be at least 1 call per second, got {rate!r}")
        if burst < 1:
            raise ValueError(f"burst must be at least 1, got {burst!r}")
        if not timeout > 0:
            raise ValueError(f"timeout must be positive, got {timeout!r}")
        if cooldown < 0:
            raise ValueError(f"cooldown must be >= 0, got {cooldown!r}")
        if fallback not in ("error", "local"):
            raise ValueError(f"fallback must be 'error' or 'local', got {fallback!r}")
        self._local: RateLimiter | None = None
        if fallback == "local":
            # No silent default: assuming a fleet of one would multiply the limit.
            if fleet_size is None or fleet_size < 1:
                raise ValueError("fallback='local' needs fleet_size, the number of processes")
            if not rate / fleet_size >= 1:
                raise ValueError(
                    "rate / fleet_size must be at least 1 call per second for "
                    f"fallback='local' (each process's share), got {rate!r} / {fleet_size!r}"
                )
            self._local = RateLimiter(rate / fleet_size, burst=burst)
        self.rate = rate
        self.sdkappid = sdkappid
        self.prefix = prefix
        self.burst = burst
        self.timeout = timeout
        self.fallback = fallback
        self.fleet_size = fleet_size
        self.cooldown = cooldown
        self._client = client
        self._owns_client = False
        # register_script answers NOSCRIPT (Redis restarted or flushed) by loading the
        # script again and retrying, so the cache needs no handling here.
        self._script = client.register_script(_SCRIPT)
        # Rounding the interval up errs on the slow side; the ring keeps the bound exact.
        interval = math.ceil(_WINDOW_US / rate)
        self._interval = interval / 1e6
        self._args = (interval, (burst - 1) * interval, int(rate), _WINDOW_US)
        self._horizon = _HORIZON * interval
        self._queues: dict[str, _Queue] = {}
        self._down_until = -math.inf
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
        **redis_options: Any,
    ) -> RedisRateLimiter:
        """A limiter on its own Redis client for ``url`` (``redis://host:port/db``).

        ``redis_options`` go to ``redis.asyncio.Redis.from_url``. By default sockets time
        out after ``timeout`` and a failed command is retried once, at once (a pooled
        connection may be stale after a Redis restart), not with redis-py's backoff.
        """
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
        failures = queue.failures
        async with queue.lock:
            while True:
                if queue.failures != failures:
                    # Redis failed since this caller queued: do not make each waiter
                    # in turn pay its own timeout (with cooldown=0, say).
                    await self._without_redis(key, queue.error)
                    return
                if anyio.current_time() < self._down_until:
                    await self._without_redis(key, self._last_error)
                    return
                delay = queue.ready_at - anyio.current_time()
                if delay > 0:
                    await anyio.sleep(delay)
                    continue  # Redis may have failed meanwhile: look again
                try:
                    reply = await self._ask(key, 0)
                except _FAILURES as err:
                    queue.failed(err)
                    self._failed(err)
                    await self._without_redis(key, err)
                    return
                answered = anyio.current_time()
                self._answered()
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
        told, a warning is logged, and the caller's own error is the one that matters.
        """
        if self._local is not None:
            await self._local.pause(key, seconds)  # in case Redis fails meanwhile
        if anyio.current_time() < self._down_until:
            self._pause_lost(key, seconds, self._last_error)
            return
        try:
            await self._ask(key, max(1, round(seconds * 1e6)))
        except _FAILURES as err:
            queue = self._queues.get(key)
            if queue is not None:
                queue.failed(err)
            self._failed(err)
            self._pause_lost(key, seconds, err)
            return
        self._answered()

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

    def _failed(self, err: BaseException) -> None:
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
        self._down_until = anyio.current_time() + self.cooldown

    def _answered(self) -> None:
        if self._last_error is not None:
            logger.warning("Redis rate limiter answers again; the shared limit is back")
            self._last_error = None
            self._down_until = -math.inf

    async def _without_redis(self, key: str, err: BaseException | None) -> None:
        """Raise the typed error, or (``fallback="local"``) pace this process alone."""
        if self._local is None:
            raise LimiterUnavailableError(
                f"the Redis rate limiter is unavailable ({type(err).__name__}: {err}); "
                "no request was sent"
            ) from err
        await self._local.acquire(key)
