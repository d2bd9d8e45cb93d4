"""A rate limiter shared by every process of one app, through Redis.

How it works and why it keeps the bound: docs/design/redis-limiter.md. This module
queues each endpoint's callers in this process, one queue per class, and schedules them
on the script's answers; its parts are ``_redis_settings`` (the checked settings and
each key's pace), ``_redis_script`` (the Lua script and its typed binding) and
``_redis_health`` (time-outs, retries, outages and the local fallback).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from types import TracebackType
from typing import Any

import anyio
import attrs

try:
    from redis.asyncio import Redis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
except ImportError as err:  # pragma: no cover - depends on the environment
    raise ImportError(
        "RedisRateLimiter needs redis-py: pip install 'tencent-chat-robots[redis]'"
    ) from err

from ._config import require_number
from ._exceptions import QueueTimeoutError, ValidationError
from ._limiter import PRUNE_AT, Priority, drop_idle
from ._options import PRIORITIES, priority_rank
from ._redis_health import FAILURES, LimiterUnavailableError, RedisHealth
from ._redis_script import Pace, Reply, ScriptBinding
from ._redis_settings import DEFAULT_PREFIX, Fallback, RedisLimiterSettings, Setting

__all__ = ["DEFAULT_PREFIX", "LimiterUnavailableError", "RedisRateLimiter"]

# Pickles and reprs name it where it has always lived.
LimiterUnavailableError.__module__ = __name__

# A caller that wakes this much (s) after its booked start gives it up and asks again:
# above timer lateness (asyncio rounds its waits up to the millisecond), below a stall.
_LATE = 0.005


class _Queue:
    """One endpoint's waiters of one class in this process: FIFO, and when to ask next."""

    __slots__ = ("booked", "lock", "ready_at", "waiting")

    def __init__(self) -> None:
        self.lock = anyio.Lock(fast_acquire=True)
        self.ready_at = -math.inf
        self.booked = -math.inf  # the start an interactive head holds while it waits
        self.waiting = 0  # callers in the queue, its head included


class _Endpoint:
    """One endpoint in this process: its pace, worked out once, and its two queues."""

    __slots__ = ("bulk", "interactive", "pace")

    def __init__(self, pace: Pace) -> None:
        self.pace = pace
        self.interactive = _Queue()
        self.bulk = _Queue()

    def idle(self) -> bool:
        """No caller of this process waits for this key, nor holds its queues."""
        return all(q.waiting == 0 and not q.lock.locked() for q in (self.interactive, self.bulk))


class RedisRateLimiter:
    """At most ``rate`` starts per endpoint in any sliding second, across all processes.

    Every process built with the same Redis, ``sdkappid`` and ``prefix`` shares each
    endpoint's budget; they must also agree on ``rate``, ``rates`` and ``burst``. The
    limit is the app's: without ``sdkappid``, :meth:`for_app` (which ``TencentChat``
    calls with its own) gives the limiter for an app; acquiring on an unbound limiter is
    an error.

    ``rate`` is given in terms of the 200/s APIs, as for :class:`RateLimiter`: an API
    documented at another rate is paced at the same share of its own (``rate=190`` paces
    the 100/s live-room APIs at 95), none above its documented rate; ``rates`` names APIs
    (method name or path) to pace at exactly the rate given; :meth:`rate_for` says.

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
    ``fallback="local"`` paces this process alone at each key's pace / ``fleet_size``
    and logs a warning. For ``cooldown`` seconds calls then fail (or run locally) at once
    rather than each waiting for a time-out (those queued meanwhile, at least as long as
    the failed call took); the next one asks Redis again, and once Redis answers, every
    acquisition is back on the shared limit. Redis does not see local starts, so for a
    second after a switch back a second may hold some of them on top of the shared
    budget: size ``rate`` with that margin if outages matter. :meth:`pause` never raises
    for Redis: it logs a warning instead, so the caller sees the refusal that prompted it.

    ``client`` is a ``redis.asyncio.Redis``; it is not closed by :meth:`aclose`, unlike
    the one :meth:`from_url` creates. Each script call touches one key, so the layout
    suits Redis Cluster too. Numbers out of range (or not finite) raise
    :class:`~tencent_chat_robots.ValidationError`, a ``ValueError``.

    Its parts, for instrumentation and tests: ``settings`` (a frozen
    :class:`RedisLimiterSettings`, also readable as the attributes below), ``script``
    (the :class:`ScriptBinding` every Redis call goes through: a wrapper put in its place
    sees them all) and ``health`` (the :class:`RedisHealth` deciding when to ask Redis).
    """

    rate = Setting[float]()
    rates = Setting[Mapping[str, float]]()
    sdkappid = Setting["int | None"]()
    prefix = Setting[str]()
    burst = Setting[int]()
    timeout = Setting[float]()
    fallback = Setting[Fallback]()
    fleet_size = Setting["int | None"]()
    cooldown = Setting[float]()
    retry_budget = Setting[float]()

    def __init__(
        self,
        client: Redis,
        *,
        rate: float,
        rates: Mapping[str, float] | None = None,
        sdkappid: int | None = None,
        prefix: str = DEFAULT_PREFIX,
        burst: int = 2,
        timeout: float = 0.5,
        fallback: Fallback = "error",
        fleet_size: int | None = None,
        cooldown: float = 1.0,
        retry_budget: float = 1.0,
    ) -> None:
        if isinstance(client, str):  # a URL where the client belongs
            raise ValidationError(
                "RedisRateLimiter takes a redis.asyncio.Redis client; for a URL use"
                " RedisRateLimiter.from_url(url, rate=...)"
            )
        self.settings = RedisLimiterSettings(
            rate=rate,
            rates={} if rates is None else rates,
            sdkappid=sdkappid,
            prefix=prefix,
            burst=burst,
            timeout=timeout,
            fallback=fallback,
            fleet_size=fleet_size,
            cooldown=cooldown,
            retry_budget=retry_budget,
        )
        self.script = ScriptBinding(client)
        self.health = RedisHealth(self.settings)
        self._client = client
        self._owns_client = False
        self._endpoints: dict[str, _Endpoint] = {}
        self._prune_at = PRUNE_AT
        self._apps: dict[int, RedisRateLimiter] = {}  # for_app's, when unbound

    @classmethod
    def _with(cls, client: Redis, settings: RedisLimiterSettings) -> RedisRateLimiter:
        """A limiter on ``client`` with ``settings`` (its fields are the keywords)."""
        return cls(client, **attrs.asdict(settings, recurse=False))

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        rate: float,
        rates: Mapping[str, float] | None = None,
        sdkappid: int | None = None,
        prefix: str = DEFAULT_PREFIX,
        burst: int = 2,
        timeout: float = 0.5,
        fallback: Fallback = "error",
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
        # Checked before the client exists: its socket options take the timeout.
        settings = RedisLimiterSettings(
            rate=rate,
            rates={} if rates is None else rates,
            sdkappid=sdkappid,
            prefix=prefix,
            burst=burst,
            timeout=timeout,
            fallback=fallback,
            fleet_size=fleet_size,
            cooldown=cooldown,
            retry_budget=retry_budget,
        )
        redis_options.setdefault("socket_timeout", settings.timeout)
        redis_options.setdefault("socket_connect_timeout", settings.timeout)
        redis_options.setdefault("retry", Retry(NoBackoff(), 1))
        limiter = cls._with(Redis.from_url(url, **redis_options), settings)
        limiter._owns_client = True
        return limiter

    def __repr__(self) -> str:
        named = f", rates={dict(self.rates)!r}" if self.rates else ""
        return (
            f"RedisRateLimiter(rate={self.rate!r}{named}, sdkappid={self.sdkappid!r}, "
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
        sdkappid = require_number("sdkappid", sdkappid, minimum=1, integer=True)
        bound = self._apps.get(sdkappid)
        if bound is None:
            settings = attrs.evolve(self.settings, sdkappid=sdkappid)
            bound = self._apps[sdkappid] = self._with(self._client, settings)
        return bound

    def redis_key(self, key: str) -> str:
        """The Redis key holding endpoint ``key``'s shared schedule."""
        if self.sdkappid is None:
            raise ValidationError(
                "this RedisRateLimiter has no sdkappid: pass sdkappid=, or give it to a "
                "TencentChat (limiter=...), which uses the client's app"
            )
        return f"{self.prefix}:{self.sdkappid}:{key}"

    def rate_for(self, key: str) -> float:
        """The starts per sliding second ``key`` is allowed, across the fleet."""
        return self.settings.rate_for(key)

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
        endpoint = self._endpoint(key)
        queue = endpoint.bulk if priority == "bulk" else endpoint.interactive
        if deadline is not None:
            owed = self.predicted_wait(key, priority=priority, deadline=deadline)
            if owed > 0 and anyio.current_time() + owed > deadline:
                raise _too_late(key, owed)
        queue.waiting += 1
        try:
            with anyio.CancelScope(deadline=math.inf if deadline is None else deadline):
                await self._acquire(key, endpoint, queue, priority, deadline)
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
        endpoint = self._endpoint(key)
        interval = endpoint.pace.interval
        interactive = endpoint.interactive
        ahead = also_ahead + interactive.waiting
        if priority == "bulk":
            ahead += endpoint.bulk.waiting
        owed = max(0, ahead - self.burst + 1) * interval
        # An interactive head holding a booked start: the others come after it.
        booked = interactive.booked - anyio.current_time()
        return max(owed, booked + ahead * interval) if booked > 0 else owed

    async def pause(self, key: str, seconds: float) -> None:
        """Start nothing of ``key`` for ``seconds``, in every process of the fleet.

        Applies to both classes. Starts the script has already booked (a few per process,
        no more than a few intervals ahead) keep their time. Never raises for Redis: if
        it cannot be told (within the retry budget), a warning is logged, and the
        caller's own error is the one that matters.
        """
        redis_key = self.redis_key(key)
        pace = self._endpoint(key).pace
        await self.health.pause(key, seconds, lambda: self.script.pause(redis_key, pace, seconds))

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

    def _endpoint(self, key: str) -> _Endpoint:
        endpoint = self._endpoints.get(key)
        if endpoint is None:
            if len(self._endpoints) >= self._prune_at:
                self._prune()
            pace = Pace.of(self.rate_for(key), self.burst)
            endpoint = self._endpoints[key] = _Endpoint(pace)
        return endpoint

    def _prune(self) -> None:
        """Drop the keys no one waits for (one per group messaged: unbounded otherwise).

        What a key holds here is this process's queues and what it last learnt from
        Redis; the schedule itself is in Redis, so a key made again loses nothing.
        """
        self._prune_at = drop_idle(self._endpoints, _Endpoint.idle)

    async def _acquire(
        self,
        key: str,
        endpoint: _Endpoint,
        queue: _Queue,
        priority: Priority,
        deadline: float | None,
    ) -> None:
        given_up = self.health.given_up
        while True:
            await queue.lock.acquire()
            try:
                start = await self._turn(key, endpoint.pace, queue, priority, deadline, given_up)
                if start is not None:
                    # An interactive head hands over once no bulk caller can be booked
                    # before the start that comes after its own.
                    delay = start - endpoint.pace.horizon_us / 1e6 - anyio.current_time()
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
        pace: Pace,
        queue: _Queue,
        priority: Priority,
        deadline: float | None,
        given_up: int,
    ) -> float | None:
        """As the head of its class's queue: get a start, waiting through bulk turns.

        Returns an interactive caller's booked start (loop time) for it to wait for
        outside the queue, or ``None`` once the caller may start.
        """
        bulk = priority == "bulk"
        redis_key = self.redis_key(key)
        while True:
            # Decided afresh at every turn, not once for the queue: Redis may have
            # failed, or answered again, while this caller waited.
            if self.health.is_down(since=given_up):
                await self.health.without_redis(key, priority, deadline)
                return None
            delay = queue.ready_at - anyio.current_time()
            if delay > 0:
                await anyio.sleep(delay)
                continue
            more = bulk and queue.waiting > 1
            ask = functools.partial(self._ask, redis_key, pace, bulk, deadline, more)
            try:
                # Cut off by the deadline too (a hung Redis must not hold a caller past
                # its max_wait): so max_wait must leave room for a round trip to Redis.
                reply = await self.health.call(ask)
            except FAILURES:
                await self.health.without_redis(key, priority, deadline)
                return None
            answered = anyio.current_time()
            if reply.predicted_wait is not None:
                raise _too_late(key, reply.predicted_wait)
            if reply.retry_after is not None:
                queue.ready_at = answered + reply.retry_after
                continue
            wait = reply.start_in
            if deadline is not None and answered + wait > deadline:
                # Booked in time by Redis's clock, but not once the answer has come back.
                raise _too_late(key, wait)
            if reply.next_turn:
                queue.ready_at = answered + reply.next_turn
            start = answered + wait
            if not bulk:
                return start
            if wait > 0:
                await anyio.sleep(wait)
                if anyio.current_time() > start + _LATE:
                    continue  # woke late: the booked start is lost, as above
            return None

    async def _ask(
        self, redis_key: str, pace: Pace, bulk: bool, deadline: float | None, more: bool
    ) -> Reply:
        """One script call, telling it the time left until ``deadline`` as it is made."""
        max_wait = None if deadline is None else deadline - anyio.current_time()
        return await self.script.ask(redis_key, pace, bulk=bulk, max_wait=max_wait, more=more)


def _too_late(key: str, predicted: float) -> QueueTimeoutError:
    return QueueTimeoutError(
        f"the rate permit for {key} would come in {predicted:.3f}s, after the deadline; "
        "nothing was sent",
        endpoint=key,
        predicted_wait=predicted,
    )
