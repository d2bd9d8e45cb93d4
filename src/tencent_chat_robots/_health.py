"""``chat.health()``: whether a client can serve, for a readiness probe; no request made."""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any, Literal

import attrs

from ._lifecycle import PendingCall
from ._limiter import RateLimiter

__all__ = ["ClientHealth", "client_health"]

LimiterKind = Literal["none", "local", "redis", "custom"]
RedisState = Literal["up", "fallback", "down", "recovering"]


@attrs.frozen(slots=True)
class ClientHealth:
    """A client's state now, read from memory: cheap enough for every readiness probe.

    ``closed``: :meth:`TencentChat.aclose` was called. ``limiter``: ``"local"`` (the
    built-in one), ``"redis"`` (shared through Redis), ``"custom"`` or ``"none"``.
    ``redis``: for a Redis limiter, ``"up"``, ``"fallback"`` (Redis is down and this
    process paces itself alone), ``"down"`` (calls fail with
    :class:`LimiterUnavailableError`) or ``"recovering"`` (the outage's cool-down is over:
    the next call asks Redis again, so the client counts as ready), with
    ``redis_down_since`` (Unix time) and ``redis_error`` (the failure's class) until Redis
    answers again. ``waiting`` and
    ``in_flight`` count the calls, per API method, waiting (for a slot, a permit or a
    retry) and on the wire; APIs with none are left out. ``open_streams``: streamed
    replies not yet ended.
    """

    closed: bool
    limiter: LimiterKind
    redis: RedisState | None = None
    redis_down_since: float | None = None
    redis_error: str | None = None
    waiting: Mapping[str, int] = attrs.field(factory=dict)
    in_flight: Mapping[str, int] = attrs.field(factory=dict)
    open_streams: int = 0

    @property
    def ready(self) -> bool:
        """Open, and able to send (not a Redis limiter that is down with no fallback)."""
        return not self.closed and self.redis != "down"

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field, and ``ready``."""
        fields = attrs.asdict(self, recurse=False)
        fields["waiting"], fields["in_flight"] = dict(self.waiting), dict(self.in_flight)
        return {"ready": self.ready, **fields}


def client_health(
    *,
    closed: bool,
    limiter: object,
    pending: Iterable[PendingCall],
    open_streams: int,
    methods: Mapping[str, str],
    loop: asyncio.AbstractEventLoop | None,
) -> ClientHealth:
    """The health of a client with this ``limiter`` and these ``pending`` calls;
    ``methods`` names each endpoint path's method; ``loop`` is the client's (its clock
    can be read from any thread: a readiness route may run in a thread pool)."""
    waiting: Counter[str] = Counter()
    in_flight: Counter[str] = Counter()
    for call in pending:
        (in_flight if call.on_wire else waiting)[methods.get(call.endpoint, call.endpoint)] += 1
    redis = _redis_fields(limiter, loop)
    if limiter is None:
        kind: LimiterKind = "none"
    elif isinstance(limiter, RateLimiter):
        kind = "local"
    else:
        kind = "custom" if redis is None else "redis"
    return ClientHealth(
        closed=closed,
        limiter=kind,
        waiting=dict(waiting),
        in_flight=dict(in_flight),
        open_streams=open_streams,
        **(redis or {}),
    )


def _redis_fields(limiter: object, loop: asyncio.AbstractEventLoop | None) -> dict[str, Any] | None:
    """The Redis fields of a :class:`RedisRateLimiter` (``None`` for any other)."""
    # Its module imports redis, an optional extra: a Redis limiter exists only once the
    # module has been imported, so it is looked up, never imported, here.
    module = sys.modules.get("tencent_chat_robots._redis_health")
    health = getattr(limiter, "health", None)
    if module is None or not isinstance(health, module.RedisHealth):
        return None
    error = health.last_error
    if error is None:
        return {"redis": "up"}
    # Past the cool-down: a readiness probe that waited for a call to clear the outage
    # would keep the calls away for ever.
    # No loop: the client never made a call, so the outage is another client's (a shared
    # limiter) and its cool-down cannot be read here: still down.
    cooled_down = loop is not None and not health.is_down(now=loop.time())
    state = "recovering" if cooled_down else "down" if health.local is None else "fallback"
    return {
        "redis": state,
        "redis_down_since": health.down_since,
        "redis_error": type(error).__name__,
    }
