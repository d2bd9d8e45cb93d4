"""Where a receiver remembers the events it took, so that a redelivery is handled once.

A store answers one question atomically: ``claim(key, ttl)`` is true for the first claim
of ``key`` within ``ttl`` seconds, false for the others. ``release(key)`` gives a claim
back (the receiver refused the callback after claiming: the redelivery must be handled).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import anyio

from .._config import require_number
from .._exceptions import ValidationError
from .._logs import logger

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["DedupStore", "MemoryDedupStore", "RedisDedupStore"]

DEFAULT_PREFIX = "tencent-chat-robots"
DEFAULT_MAX_CONNECTIONS = 50


@runtime_checkable
class DedupStore(Protocol):
    """What :class:`RobotCallbacks` needs of a de-duplication store."""

    async def claim(self, key: str, ttl: float) -> bool:
        """True if ``key`` was not claimed within the last ``ttl`` seconds (it is now)."""
        ...

    async def release(self, key: str) -> None:
        """Forget the claim of ``key``."""
        ...


class MemoryDedupStore:
    """A bounded in-process store: at most ``max_keys`` claims, each kept ``ttl`` seconds.

    Past ``max_keys`` the oldest claim is evicted (with one TTL for all, the least
    recently claimed is also the first to expire), so memory stays bounded under any
    load; every operation is O(1). A claim evicted before its TTL ran out is counted in
    ``evicted_early`` (the receiver's ``stats["dedup_evicted_early"]``), with one warning:
    a redelivery of that event would be handled again. To keep every claim its whole
    TTL, ``max_keys`` must be at least the peak callback rate times the TTL: 500
    callbacks/s for the default 600 s is 300,000 keys (about 200 bytes each, so 60 MB).
    ``clock`` (monotonic seconds) is injectable for tests. One process only: a fleet of
    workers behind a load balancer needs :class:`RedisDedupStore`.
    """

    def __init__(self, max_keys: int = 100_000, *, clock: Callable[[], float] = time.monotonic):
        self.max_keys = require_number("max_keys", max_keys, minimum=1, integer=True)
        if not callable(clock):
            raise ValidationError(f"clock must be callable, got {clock!r}")
        self._clock = clock
        self._expiry: OrderedDict[str, float] = OrderedDict()  # oldest claim first
        self.evicted_early = 0

    def __repr__(self) -> str:
        return f"MemoryDedupStore(max_keys={self.max_keys}, held={len(self._expiry)})"

    def __len__(self) -> int:
        return len(self._expiry)

    async def claim(self, key: str, ttl: float) -> bool:
        now = self._clock()
        expiry = self._expiry.get(key)
        if expiry is not None and expiry > now:
            return False
        self._expiry.pop(key, None)
        self._expiry[key] = now + ttl
        # Drop the expired claims at the old end, then the oldest beyond the bound;
        # each key is dropped once, so this stays O(1) amortised.
        while self._expiry:
            oldest, expires = next(iter(self._expiry.items()))
            if expires > now and len(self._expiry) <= self.max_keys:
                break
            del self._expiry[oldest]
            if expires > now:
                self._evicted_early()
        return True

    def _evicted_early(self) -> None:
        self.evicted_early += 1
        if self.evicted_early == 1:
            logger.warning(
                "MemoryDedupStore(max_keys=%d) is full: claims are evicted before their TTL,"
                " so a redelivery of such an event is handled again; give max_keys the peak"
                " callback rate times the TTL (500/s for 600 s: 300,000)",
                self.max_keys,
            )

    async def release(self, key: str) -> None:
        self._expiry.pop(key, None)


class RedisDedupStore:
    """A store shared by every worker through Redis: ``SET key 1 NX PX ttl``.

    ``client`` is a ``redis.asyncio.Redis`` (not closed by :meth:`aclose`) or a URL
    (``redis://host:port/db``): then its own client, made with ``redis_options`` over a
    ``BlockingConnectionPool`` of ``max_connections`` (default 50), where a call beyond
    them waits (up to ``timeout``) for a connection instead of failing as redis-py's
    default pool does past its size; closed by :meth:`aclose`. A receiver never has more
    than 50 store calls in flight anyway. Each call gives up after ``timeout`` seconds;
    the receiver then handles the event anyway and counts ``dedup_unavailable``. Keys
    are ``{prefix}:callback:{sdkappid}:{kind}:{key}``.
    """

    def __init__(
        self,
        client: Redis | str,
        *,
        prefix: str = DEFAULT_PREFIX,
        timeout: float = 0.25,
        max_connections: int | None = None,
        **redis_options: Any,
    ) -> None:
        self.timeout = require_number("timeout", timeout, minimum=0.001, maximum=2)
        if not isinstance(prefix, str) or not prefix:
            raise ValidationError(f"prefix must be a non-empty string, got {prefix!r}")
        self.prefix = prefix
        self._owns_client = isinstance(client, str)
        if isinstance(client, str):
            size = require_number(
                "max_connections",
                DEFAULT_MAX_CONNECTIONS if max_connections is None else max_connections,
                minimum=1,
                integer=True,
            )
            try:  # imported here: the receiver works without the redis extra
                from redis.asyncio import BlockingConnectionPool, Redis
            except ImportError as err:  # pragma: no cover - depends on the environment
                raise ImportError(
                    "RedisDedupStore needs redis-py: pip install 'tencent-chat-robots[redis]'"
                ) from err
            redis_options.setdefault("socket_timeout", self.timeout)
            redis_options.setdefault("socket_connect_timeout", self.timeout)
            pool = BlockingConnectionPool.from_url(
                client, max_connections=size, timeout=self.timeout, **redis_options
            )
            client = Redis.from_pool(pool)  # the client closes the pool
        elif redis_options or max_connections is not None:
            raise ValidationError("redis options and max_connections go with a URL, not a client")
        elif not callable(getattr(client, "set", None)):
            raise ValidationError(f"client must be a redis.asyncio.Redis or a URL, got {client!r}")
        self.client = client

    def __repr__(self) -> str:
        return f"RedisDedupStore(prefix={self.prefix!r}, timeout={self.timeout!r})"

    def _key(self, key: str) -> str:
        return f"{self.prefix}:callback:{key}"

    async def claim(self, key: str, ttl: float) -> bool:
        milliseconds = max(1, math.ceil(ttl * 1000))
        with anyio.fail_after(self.timeout):
            answer = await self.client.set(self._key(key), b"1", nx=True, px=milliseconds)
        return bool(answer)

    async def release(self, key: str) -> None:
        with anyio.fail_after(self.timeout):
            await self.client.delete(self._key(key))

    async def aclose(self) -> None:
        """Close the client this store made from a URL (one given to it stays open)."""
        if self._owns_client:
            await self.client.aclose()
