"""Client-side rate limiting: at most ``rate`` request starts per endpoint in any sliding second.

Two rules work together for each key:

* pacing (GCRA): starts are spaced ``1/rate`` apart with a burst of at most two, so a
  server behind a jittery network never sees a clump;
* a sliding-window log of the last ``rate`` starts: a start is allowed only once the
  ``rate``-th previous one is more than a second old (by a small margin, see
  ``WINDOW_MARGIN``). This makes the bound exact whatever the timers do (late wake-ups,
  event-loop stalls, cold start, idle gaps).

Waiters queue in two priority classes (interactive before bulk, first come first served
within each, see ``_waiters``). One timer per key fires when the next start is allowed,
reads the clock again rather than trusting its schedule (so a stalled loop cannot
release a burst), and grants that start to the first waiter. Each acquisition is O(1)
however many wait; a caller with a deadline is told at once if the starts owed to those
ahead of it cannot leave room for its own in time.
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import math
from collections.abc import Callable
from typing import Protocol, runtime_checkable

import anyio

from ._config import require_number
from ._constants import MAX_RATE_LIMIT, WINDOW_MARGIN
from ._exceptions import QueueTimeoutError
from ._options import Priority, priority_rank
from ._waiters import Line

__all__ = ["Limiter", "PausableLimiter", "Priority", "PriorityLimiter", "RateLimiter"]

_WINDOW = 1.0
# Waits shorter than this are rounding noise in float clock arithmetic; sleeping on
# them could spin without the clock moving.
_EPSILON = 1e-9
_BURST_SECONDS = 0.002


@runtime_checkable
class Limiter(Protocol):
    """What ``TencentChat(limiter=...)`` accepts: one awaitable permit per request start.

    ``key`` names the endpoint (``"room_engine_http_srv/add_robot"``); each key has a
    budget of its own. Implement this to share one app's limit between processes; a
    limiter with only ``acquire(key)`` serves every call in one class, and the client
    enforces ``max_wait`` by cancelling the wait.
    """

    async def acquire(self, key: str) -> None: ...


@runtime_checkable
class PriorityLimiter(Protocol):
    """A limiter that serves priority classes and knows the caller's deadline.

    ``priority`` is ``"interactive"`` or ``"bulk"``: a waiting interactive caller gets
    the key's next start before any bulk one. ``deadline`` (event-loop time, as
    ``anyio.current_time()``; ``None``: none) is when the caller gives up: raise
    :class:`QueueTimeoutError` at once if the permit cannot come by then, or when it
    passes.

    A limiter may also have ``predicted_wait(key, *, priority, also_ahead, deadline)``
    (as both built-in ones do): then a call that finds every in-flight slot taken is
    refused at once too, when the callers queued for slots ahead of it already owe
    more starts than its ``max_wait`` leaves.
    """

    async def acquire(
        self, key: str, *, priority: Priority = "interactive", deadline: float | None = None
    ) -> None: ...


@runtime_checkable
class PausableLimiter(Limiter, Protocol):
    """A limiter the client can tell that the server refused a call for frequency.

    After a 60007-style refusal the client calls ``pause(key, seconds)``: no request of
    that key should start for ``seconds``, for every caller sharing the limiter.
    """

    async def pause(self, key: str, seconds: float) -> None: ...


def serves_priorities(limiter: Limiter) -> bool:
    """Whether ``limiter.acquire`` takes the ``priority`` and ``deadline`` keywords."""
    try:
        parameters = inspect.signature(limiter.acquire).parameters.values()
    except (TypeError, ValueError):  # no signature to read: assume the old protocol
        return False
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return True
    names = {p.name for p in parameters if p.kind is not inspect.Parameter.POSITIONAL_ONLY}
    return {"priority", "deadline"} <= names


class _KeyLimiter:
    __slots__ = (
        "_clock",
        "_interval",
        "_line",
        "_starts",
        "_tat",
        "_timer",
        "_tolerance",
        "key",
    )

    def __init__(self, key: str, rate: float, burst: int, clock: Callable[[], float]) -> None:
        self.key = key
        self._interval = _WINDOW / rate
        self._tolerance = (burst - 1) * self._interval
        self._clock = clock
        self._tat = -math.inf  # GCRA theoretical arrival time of the next start
        self._starts: collections.deque[float] = collections.deque(maxlen=max(1, int(rate)))
        self._line = Line()
        self._timer: asyncio.TimerHandle | None = None

    def delay(self, now: float) -> float:
        """Seconds until a start is allowed at ``now`` (none left: allowed now)."""
        wait = self._tat - self._tolerance - now
        starts = self._starts
        if len(starts) == starts.maxlen:
            wait = max(wait, _WINDOW + WINDOW_MARGIN - (now - starts[0]))
        return wait

    def pause(self, until: float) -> None:
        # The timer re-reads the schedule when it fires, so it honours this too.
        self._tat = max(self._tat, until + self._tolerance)

    def grant(self, now: float) -> None:
        self._tat = max(self._tat, now) + self._interval
        self._starts.append(now)

    def ahead(self, rank: int) -> int:
        return self._line.ahead(rank)

    def start_time(self, now: float, ahead: int, deadline: float) -> float:
        """When a caller behind ``ahead`` others would start, if no one else came.

        Stops counting once past ``deadline``: any later time answers the question.
        """
        # Each start moves tat on by an interval at least, and none is before tat less
        # the tolerance: a bound that settles long queues without walking them.
        earliest = self._tat - self._tolerance + ahead * self._interval
        if earliest > deadline:
            return earliest
        tat, starts = self._tat, collections.deque(self._starts, maxlen=self._starts.maxlen)
        start = now
        for _ in range(ahead + 1):
            start = max(start, tat - self._tolerance)
            if len(starts) == starts.maxlen:
                start = max(start, starts[0] + _WINDOW + WINDOW_MARGIN)
            if start > deadline:
                break
            tat = max(tat, start) + self._interval
            starts.append(start)
        return start

    async def acquire(self, rank: int, deadline: float | None) -> None:
        now = self._clock()
        if not self._line and self.delay(now) <= _EPSILON:
            self.grant(now)
            return
        if deadline is not None:
            start = self.start_time(now, self._line.ahead(rank), deadline + _EPSILON)
            if start > deadline + _EPSILON:
                raise QueueTimeoutError(
                    f"the rate permit for {self.key} would come in {start - now:.3f}s at the"
                    " earliest, after the deadline",
                    endpoint=self.key,
                    predicted_wait=start - now,
                )
        if self._timer is None:  # otherwise the timer already serves the line
            self._arm(self.delay(now))
        await self._line.wait(
            rank,
            deadline,
            on_deadline=self._tick,
            expired=lambda: QueueTimeoutError(
                f"no rate permit for {self.key} in time", endpoint=self.key
            ),
            # The start was counted: giving it to the next one could crowd the second.
            on_served_but_cancelled=lambda: None,
        )

    def _arm(self, wait: float) -> None:
        self._timer = asyncio.get_running_loop().call_later(max(wait, 0.0), self._tick)

    def _tick(self) -> None:
        """Grant the start that is due now, if any, to the first waiter; re-arm."""
        if self._timer is not None:  # also run at a waiter's deadline, between timers
            self._timer.cancel()
            self._timer = None
        now = self._clock()
        wait = self.delay(now)
        if wait <= _EPSILON:
            if not self._line.serve():
                return
            self.grant(now)
            wait = self.delay(now)
        if self._line:
            self._arm(wait)


class RateLimiter:
    """In-process limiter: ``rate`` starts per key in any sliding second, in two classes.

    A waiting ``"interactive"`` caller gets the key's next start before any ``"bulk"``
    one; first come first served within a class. ``burst`` (default 2, more above
    1,000/s) is how many may start back to back; the per-second bound holds whatever
    it is.

    ``clock`` defaults to the event loop's clock (``anyio.current_time``), which is what
    its timers and deadlines are measured against; tests may pass a virtual one.
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
            limiter = self._keys[key] = _KeyLimiter(key, self.rate, self.burst, self._clock)
        return limiter

    async def acquire(
        self, key: str, *, priority: Priority = "interactive", deadline: float | None = None
    ) -> None:
        """Wait for this key's next start in ``priority``'s class, until ``deadline``.

        Raises :class:`QueueTimeoutError` at once if the starts owed to the callers ahead
        (in this class and above, plus any pause) leave none for this one by
        ``deadline``, or when ``deadline`` passes; nothing is counted for it then.
        """
        await self._key(key).acquire(priority_rank(priority), deadline)

    def predicted_wait(
        self, key: str, *, priority: Priority = "interactive", also_ahead: int = 0, deadline: float
    ) -> float:
        """Seconds until a caller of ``priority`` asking now would start, were ``also_ahead``
        more callers of its class or above queued ahead of it and no one else to come.

        Counting stops past ``deadline`` (event-loop time): any later answer says the
        same, that the start would come too late.
        """
        limiter = self._key(key)
        now = self._clock()
        ahead = limiter.ahead(priority_rank(priority)) + also_ahead
        return limiter.start_time(now, ahead, deadline + _EPSILON) - now

    async def pause(self, key: str, seconds: float) -> None:
        """Start nothing of ``key`` for ``seconds`` (the server said we were too fast)."""
        self._key(key).pause(self._clock() + seconds)
