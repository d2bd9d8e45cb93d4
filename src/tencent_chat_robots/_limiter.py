"""Client-side rate limiting: at most ``rate`` request starts per endpoint in any sliding second.

Two rules work together for each key:

* pacing (GCRA): starts are spaced ``1/rate`` apart with a burst of at most two, so a
  server behind a jittery network never sees a clump;
* a sliding-window log of the last ``rate`` starts: a start is allowed only once the
  ``rate``-th previous one is more than a second old (by a small margin, see
  ``WINDOW_MARGIN``). This makes the bound exact whatever the timers do (late wake-ups,
  event-loop stalls, cold start, idle gaps).

Waiters queue first-come first-served on a lock; only the head sleeps, and it reads the
clock again on waking rather than trusting a booked slot, so a stalled loop cannot
release a burst. Each acquisition is O(1) however many wait.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Callable
from typing import Protocol, runtime_checkable

import anyio

from ._config import require_number
from ._constants import MAX_RATE_LIMIT, WINDOW_MARGIN

__all__ = ["Limiter", "PausableLimiter", "RateLimiter"]

_WINDOW = 1.0
# Waits shorter than this are rounding noise in float clock arithmetic; sleeping on
# them could spin without the clock moving.
_EPSILON = 1e-9
_BURST_SECONDS = 0.002


@runtime_checkable
class Limiter(Protocol):
    """What ``TencentChat(limiter=...)`` accepts: one awaitable permit per request start.

    ``key`` names the endpoint (``"room_engine_http_srv/add_robot"``); each key has a
    budget of its own. Implement this to share one app's limit between processes.
    """

    async def acquire(self, key: str) -> None: ...


@runtime_checkable
class PausableLimiter(Limiter, Protocol):
    """A limiter the client can tell that the server refused a call for frequency.

    After a 60007-style refusal the client calls ``pause(key, seconds)``: no request of
    that key should start for ``seconds``, for every caller sharing the limiter.
    """

    async def pause(self, key: str, seconds: float) -> None: ...


class _KeyLimiter:
    __slots__ = ("_clock", "_interval", "_lock", "_starts", "_tat", "_tolerance")

    def __init__(self, rate: float, burst: int, clock: Callable[[], float]) -> None:
        self._interval = _WINDOW / rate
        self._tolerance = (burst - 1) * self._interval
        self._clock = clock
        self._tat = -math.inf  # GCRA theoretical arrival time of the next start
        self._starts: collections.deque[float] = collections.deque(maxlen=max(1, int(rate)))
        self._lock = anyio.Lock(fast_acquire=True)

    def delay(self, now: float) -> float:
        """Seconds until a start is allowed at ``now`` (none left: allowed now)."""
        wait = self._tat - self._tolerance - now
        starts = self._starts
        if len(starts) == starts.maxlen:
            wait = max(wait, _WINDOW + WINDOW_MARGIN - (now - starts[0]))
        return wait

    def pause(self, until: float) -> None:
        # The head waiter re-reads the schedule when it wakes, so it honours this too.
        self._tat = max(self._tat, until + self._tolerance)

    def grant(self, now: float) -> None:
        self._tat = max(self._tat, now) + self._interval
        self._starts.append(now)

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                now = self._clock()
                wait = self.delay(now)
                if wait <= _EPSILON:
                    self.grant(now)
                    return
                await anyio.sleep(wait)


class RateLimiter:
    """In-process limiter: ``rate`` starts per key in any sliding second, FIFO per key.

    ``burst`` (default 2, more above 1,000/s) is how many may start back to back; the
    per-second bound holds whatever it is.

    ``clock`` defaults to the event loop's clock (``anyio.current_time``), which is what
    its sleeps are measured against; tests may pass a virtual one.
    """

    def __init__(
        self,
        rate: float,
        *,
        burst: int | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        require_number("rate", rate, minimum=1, maximum=MAX_RATE_LIMIT)
        if burst is None:
            # Two absorb a late timer at the documented rates; at thousands per second
            # a timer cannot fire every interval, so the burst covers ~2 ms of starts.
            burst = max(2, math.ceil(rate * _BURST_SECONDS))
        require_number("burst", burst, minimum=1, integer=True)
        self.rate = rate
        self.burst = burst
        self._clock = clock or anyio.current_time
        self._keys: dict[str, _KeyLimiter] = {}

    def __repr__(self) -> str:
        return f"RateLimiter(rate={self.rate!r}, burst={self.burst!r})"

    def _key(self, key: str) -> _KeyLimiter:
        limiter = self._keys.get(key)
        if limiter is None:
            limiter = self._keys[key] = _KeyLimiter(self.rate, self.burst, self._clock)
        return limiter

    async def acquire(self, key: str) -> None:
        """Wait for this key's next start; served in the order callers arrive."""
        await self._key(key).acquire()

    async def pause(self, key: str, seconds: float) -> None:
        """Start nothing of ``key`` for ``seconds`` (the server said we were too fast)."""
        self._key(key).pause(self._clock() + seconds)
