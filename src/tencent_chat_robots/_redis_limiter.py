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

The second rule alone makes the bound exact: ``floor(rate) + 1`` grants span at least a
second of Redis time, so no sliding second ever holds more than ``rate`` of them, from
all processes together, whatever the timers, stalls or idle gaps. The first keeps
starts spread out instead of in clumps, and lets a late waker use the slot it missed
(so the fleet sustains the full rate) without ever exceeding the ring's bound.

The script grants only when the caller may start *now*; otherwise it books nothing and
answers how long to wait, so a caller that wakes late asks again rather than using a
stale booking. The bound is on grants as timed by Redis: a request starts when the
answer has come back, so the spread of that latency (sub-millisecond on a LAN) adds to
the jitter of the network to Tencent, which the default rate of 190 (not 200) absorbs.
Within a process, callers queue first-come first-served per endpoint and only the head
of the queue talks to Redis: a process makes about one script call per start granted in
the fleet, however many of its callers wait. A Redis that loses its data (restart without
persistence, failover) starts the schedule afresh, as the in-process limiter does when a
process restarts.
"""

from __future__ import annotations

import logging
import math
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

# KEYS[1]: one endpoint's schedule, a hash. Times are Redis TIME in microseconds, held
# as integers (exact in Lua's doubles) and written with %.0f, since tostring() would
# round them to 14 digits.
#   tat    GCRA theoretical arrival time of the next start
#   head   index in the ring of the oldest of the last `capacity` grant times
#   0..capacity-1   that ring
# ARGV: interval, tolerance ((burst - 1) * interval), capacity, window, pause (µs).
# Returns {granted, wait, now}. Not granted: wait before asking again (nothing booked).
# Granted: the caller starts now; wait is until the next start, a hint for the next one.
# A pause (ARGV[5] > 0) only pushes tat back.
_SCRIPT = """
local key = KEYS[1]
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local capacity = tonumber(ARGV[3])
local window = tonumber(ARGV[4])
local pause = tonumber(ARGV[5])

local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local state = redis.call('HMGET', key, 'tat', 'head')
local tat = tonumber(state[1]) or 0
local head = (tonumber(state[2]) or 0) % capacity

local function delay()
  local wait = tat - tolerance - now
  local oldest = tonumber(redis.call('HGET', key, tostring(head)))
  if oldest then
    wait = math.max(wait, oldest + window - now)
  end
  return wait
end

local granted = 0
local wait = 0
if pause > 0 then
  tat = math.max(tat, now + pause + tolerance)
  redis.call('HSET', key, 'tat', string.format('%.0f', tat))
else
  wait = delay()
  if wait > 0 then
    return {0, wait, now}
  end
  granted = 1
  tat = math.max(tat, now) + interval
  redis.call('HSET', key, 'tat', string.format('%.0f', tat),
    tostring(head), string.format('%.0f', now), 'head', tostring((head + 1) % capacity))
  head = (head + 1) % capacity
  wait = math.max(delay(), 0)
end
-- Once tat and the newest grant's window have passed, a missing key means the same.
redis.call('PEXPIRE', key, math.ceil((math.max(tat, now + window) - now) / 1000) + 1)
return {granted, wait, now}
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
    wait: float  # seconds: until asking again, or (granted) until the next free start
    redis_time: int  # µs, the script's TIME: the grant time when granted


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

    Each Redis call is bounded by ``timeout`` seconds. When Redis fails, ``acquire``
    raises :class:`LimiterUnavailableError` (``fallback="error"``), or with
    ``fallback="local"`` paces this process alone at ``rate / fleet_size`` and logs a
    warning. Either way Redis is tried again ``cooldown`` seconds after a failure; until
    then calls fail (or run locally) at once rather than each waiting for a timeout.
    Redis does not see local starts, so around a switch a second may hold some of them on
    top of the shared budget: size ``rate`` with that margin if outages matter.

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
        self._args = (interval, (burst - 1) * interval, int(rate), _WINDOW_US)
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
        async with queue.lock:
            while True:
                if anyio.current_time() < self._down_until:
                    await self._without_redis(key)
                    return
                delay = queue.ready_at - anyio.current_time()
                if delay > 0:
                    await anyio.sleep(delay)
                    continue  # Redis may have failed meanwhile: look again
                try:
                    reply = await self._ask(key, 0)
                except _FAILURES as err:
                    self._failed(err)
                    await self._without_redis(key)
                    return
                self._answered()
                queue.ready_at = anyio.current_time() + reply.wait
                if reply.granted:
                    return

    async def pause(self, key: str, seconds: float) -> None:
        """Start nothing of ``key`` for ``seconds``, in every process of the fleet."""
        if self._local is not None:
            await self._local.pause(key, seconds)  # in case Redis fails meanwhile
        if anyio.current_time() < self._down_until:
            self._check_fallback()
            return
        try:
            await self._ask(key, max(1, round(seconds * 1e6)))
        except _FAILURES as err:
            self._failed(err)
            self._check_fallback()
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
            granted, wait_us, now_us = await self._script(
                keys=[self.redis_key(key)], args=[*self._args, pause_us]
            )
        return _Reply(bool(granted), int(wait_us) / 1e6, int(now_us))

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

    def _check_fallback(self) -> None:
        """Raise the typed error unless this limiter may go on locally."""
        if self._local is None:
            err = self._last_error
            raise LimiterUnavailableError(
                f"the Redis rate limiter is unavailable ({type(err).__name__}: {err}); "
                "no request was sent"
            ) from err

    async def _without_redis(self, key: str) -> None:
        self._check_fallback()
        assert self._local is not None
        await self._local.acquire(key)
