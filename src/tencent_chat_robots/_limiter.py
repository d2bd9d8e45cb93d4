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
reads the clock again rather than trusting its schedule, and wakes the first waiter,
which takes the start when it goes on: so a loop stalled in between cannot crowd a
second. Each acquisition is amortised O(1) however many wait. A caller with a deadline
is told at once if the starts owed to those ahead of it cannot leave room for its own
in time, from a closed form of the schedule (``_KeyLimiter.start_time``).
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import math
from collections.abc import Callable, Mapping
from typing import Protocol, TypeVar, runtime_checkable

import anyio

from ._config import require_number
from ._constants import MAX_RATE_LIMIT, WINDOW_MARGIN
from ._endpoints import BY_PATH, ENDPOINTS, PACE_FRACTION, EndpointSpec, pace_for, resolve_rates
from ._exceptions import QueueTimeoutError
from ._options import PRIORITIES, Priority, priority_rank
from ._waiters import Line

__all__ = [
    "FullLimiter",
    "Limiter",
    "PausableLimiter",
    "Priority",
    "PriorityLimiter",
    "RateLimiter",
    "adapt_limiter",
]

_WINDOW = 1.0
# Waits shorter than this are rounding noise in float clock arithmetic; sleeping on
# them could spin without the clock moving.
_EPSILON = 1e-9
# A start waits until the `rate`-th before it is more than this old.
_SPAN = _WINDOW + WINDOW_MARGIN
# The most logged starts a deadline check walks (see _KeyLimiter.start_time).
_WALK = 256
_BURST_SECONDS = 0.002
# Keys made before idle ones are looked for and dropped (see drop_idle).
PRUNE_AT = 1024
_RANKS = {name: rank for rank, name in enumerate(PRIORITIES)}
K = TypeVar("K")


@runtime_checkable
class Limiter(Protocol):
    """What ``TencentChat(limiter=...)`` accepts: one awaitable permit per request start.

    ``key`` names the endpoint (``"room_engine_http_srv/add_robot"``); each key has a
    budget of its own. Implement this to share one app's limit between processes; a
    limiter with only ``acquire(key)`` serves every call in one class, and the client
    enforces ``max_wait`` by cancelling the wait. A limiter class with a
    ``for_app(sdkappid)`` method is replaced, in each client, by what that returns for
    the client's SDKAppID (as ``RedisRateLimiter`` made without ``sdkappid`` is).
    """

    async def acquire(self, key: str) -> None: ...


class PriorityLimiter(Protocol):
    """A limiter that serves priority classes and knows the caller's deadline.

    The client uses this protocol when ``acquire`` declares ``priority`` and
    ``deadline`` parameters by name. ``priority`` is ``"interactive"`` or ``"bulk"``: a
    waiting interactive caller gets
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


class FullLimiter(PriorityLimiter, Protocol):
    """What the admission gate uses: a :class:`PriorityLimiter` that can also predict a
    wait and be paused (see :func:`adapt_limiter`)."""

    def predicted_wait(
        self, key: str, *, priority: Priority, also_ahead: int, deadline: float
    ) -> float: ...

    async def pause(self, key: str, seconds: float) -> None: ...


def serves_priorities(limiter: object) -> bool:
    """Whether ``limiter.acquire`` takes the ``priority`` and ``deadline`` keywords."""
    try:
        parameters = inspect.signature(limiter.acquire).parameters.values()  # type: ignore[attr-defined]
    except (TypeError, ValueError, AttributeError):  # no signature to read: the old protocol
        return False
    # Named, not just **kwargs: a wrapper forwarding **kwargs to a limiter of the old
    # protocol (or a mock) would pass them on to an acquire that takes none.
    names = {p.name for p in parameters if p.kind is not inspect.Parameter.POSITIONAL_ONLY}
    return {"priority", "deadline"} <= names


def adapt_limiter(limiter: Limiter) -> FullLimiter:
    """``limiter`` as the full protocol, read once (nothing is probed per call).

    What it lacks is filled in: a one-class ``acquire(key)`` serves every class, its
    ``deadline`` enforced by cancelling the wait; with no ``predicted_wait`` nothing is
    refused early; with no ``pause`` a refusal for frequency pauses nothing.
    """
    if (
        serves_priorities(limiter)
        and callable(getattr(limiter, "predicted_wait", None))
        and isinstance(limiter, PausableLimiter)
    ):
        return limiter  # type: ignore[return-value]  # checked just above
    return _AdaptedLimiter(limiter)


class _AdaptedLimiter:
    """A user's limiter of a smaller protocol, completed (see :func:`adapt_limiter`)."""

    def __init__(self, limiter: Limiter) -> None:
        self.limiter = limiter
        self._ranked = serves_priorities(limiter)
        predict = getattr(limiter, "predicted_wait", None)
        self._predict: Callable[..., float] | None = predict if callable(predict) else None
        self._pause = limiter.pause if isinstance(limiter, PausableLimiter) else None

    def __repr__(self) -> str:
        return repr(self.limiter)

    async def acquire(
        self, key: str, *, priority: Priority = "interactive", deadline: float | None = None
    ) -> None:
        if self._ranked:
            await self.limiter.acquire(key, priority=priority, deadline=deadline)  # type: ignore[call-arg]
        elif deadline is None:
            await self.limiter.acquire(key)
        else:
            with anyio.CancelScope(deadline=deadline) as scope:
                await self.limiter.acquire(key)
            if scope.cancelled_caught:
                raise QueueTimeoutError("no rate permit in time", endpoint=key)

    def predicted_wait(
        self, key: str, *, priority: Priority, also_ahead: int, deadline: float
    ) -> float:
        if self._predict is None:
            return 0.0  # unknown: the caller waits, and times out if the permit is late
        return self._predict(key, priority=priority, also_ahead=also_ahead, deadline=deadline)

    async def pause(self, key: str, seconds: float) -> None:
        if self._pause is not None:
            await self._pause(key, seconds)


def drop_idle(keys: dict[str, K], idle: Callable[[K], bool]) -> int:
    """Drop the idle keys of ``keys`` but the table's APIs' (one per group messaged:
    unbounded otherwise); how many keys there may be before looking again, so the cost
    is amortised over the keys made since."""
    for name in [name for name, key in keys.items() if name not in BY_PATH and idle(key)]:
        del keys[name]
    return max(PRUNE_AT, 2 * len(keys))


class _KeyLimiter:
    __slots__ = (
        "_clock",
        "_interval",
        "_line",
        "_loop",
        "_offered",
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
        self._loop: asyncio.AbstractEventLoop | None = None  # the timer's
        # The class of a waiter woken for the start due now, which takes it on going on.
        self._offered: int | None = None

    def delay(self, now: float) -> float:
        """Seconds until a start is allowed at ``now`` (none left: allowed now)."""
        wait = self._tat - self._tolerance - now
        starts = self._starts
        if len(starts) == starts.maxlen:
            wait = max(wait, _SPAN - (now - starts[0]))
        return wait

    def idle(self, now: float) -> bool:
        """Whether this key behaves as a new one would: no one waits, and no start or
        pause of the past limits the next (so it may be dropped and made again)."""
        starts = self._starts
        return (
            not self._line
            and self._offered is None
            and self._timer is None
            and self._tat <= now
            and (not starts or now - starts[-1] > _SPAN)
        )

    def pause(self, until: float) -> None:
        # The timer re-reads the schedule when it fires, so it honours this too.
        self._tat = max(self._tat, until + self._tolerance)

    def grant(self, now: float) -> None:
        self._tat = max(self._tat, now) + self._interval
        self._starts.append(now)

    def ahead(self, rank: int, now: float) -> int:
        """Starts owed before a newcomer of ``rank``: the waiters ahead, and one woken
        for the start due now that has not taken it yet (unless a pause since sends it
        back to its class, behind this one)."""
        woken = self._offered
        counts = woken is not None and (woken <= rank or self.delay(now) <= _EPSILON)
        return self._line.ahead(rank) + counts

    def _reach(self, count: int) -> float:
        """The most time ``count`` more starts can take after a given one, queued back
        to back: a window per ``size`` of them, an interval per start of the rest less
        the burst's tolerance."""
        periods, rest = divmod(count, self._starts.maxlen or 1)
        return periods * _SPAN + max(0.0, rest * self._interval - self._tolerance)

    def start_time(self, now: float, ahead: int, deadline: float) -> float:
        """When a caller behind ``ahead`` others would start if no one else came,
        worked out only as far as it takes to compare with ``deadline``: a time after it
        is at most the true start, one by it at least the true start.

        Queued back to back, start k is the latest of start k-1, the pacing bound (the
        latest earlier start, or tat, plus an interval per start, less the tolerance)
        and start k - size plus the window: a max-plus recurrence, whose solution is
        the longest way to start k from what is known (now, tat, the logged starts).
        Windows are the longer way per start (1.002 s per ``size`` starts, more than an
        interval each), so the longest way takes as many as fit: O(1) but for the
        logged starts, which are only walked when the cheap bounds straddle ``deadline``,
        and then only up to ``_WALK`` of them (rates up to 256/s): beyond, a start in
        doubt counts as in time (its caller waits, and times out if it comes later).
        """
        size = self._starts.maxlen or 1
        periods, rest = divmod(ahead, size)
        start = max(
            now + self._reach(ahead),
            self._tat - self._tolerance + rest * self._interval + periods * _SPAN,
        )
        starts = self._starts
        unheld = size - len(starts)  # the first starts no logged one holds back
        if start > deadline or ahead < unheld or not starts:
            return start
        latest = starts[-1] + _SPAN + self._reach(ahead - unheld)
        if max(start, latest) <= deadline or len(starts) > _WALK:
            return max(start, latest) if latest <= deadline else start
        # Logged start j holds back start unheld + j, and through it the one asked about.
        for position, logged in enumerate(starts, unheld):
            if position > ahead:
                break
            start = max(start, logged + _SPAN + self._reach(ahead - position))
        return start

    async def acquire(
        self, rank: int, deadline: float | None, due: float, *, again: bool = False
    ) -> None:
        """Wait for a start in ``rank``'s class; ``deadline`` is event-loop time, ``due``
        the same moment in this limiter's clock (see :meth:`RateLimiter._due`)."""
        now = self._clock()
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            if self._loop is not None:
                # Used from a new event loop (a second asyncio.run): what was queued on
                # the last one was cancelled with it, and its timer is gone.
                self._timer, self._offered, self._line = None, None, Line()
            self._loop = loop
        if not self._line.waiting and self._offered is None and self.delay(now) <= _EPSILON:
            self.grant(now)
            return
        if deadline is not None and not again:
            start = self.start_time(now, self.ahead(rank, now), due)
            if start > due:
                raise QueueTimeoutError(
                    f"the rate permit for {self.key} would come in {start - now:.3f}s at the"
                    " earliest, after the deadline",
                    endpoint=self.key,
                    predicted_wait=start - now,
                )
        if self._timer is None and self._offered is None:
            self._arm(self.delay(now))
        await self._line.wait(rank, deadline, self, first=again)
        # Woken for the start due at the tick: taken now, when this caller goes on to
        # send, so that a loop stalled in between cannot crowd a second.
        self._offered = None
        now = self._clock()
        if self.delay(now) > _EPSILON:  # a pause came in between: wait again, first
            await self.acquire(rank, deadline, due, again=True)
            return
        self.grant(now)
        if self._line:
            self._arm(self.delay(now))

    # What the line asks of the one giving its turns (see _waiters.Giver).

    def deadline_reached(self) -> None:
        self._tick()

    def timed_out(self) -> QueueTimeoutError:
        return QueueTimeoutError(f"no rate permit for {self.key} in time", endpoint=self.key)

    def served_but_cancelled(self) -> None:
        """The caller woken for the start was cancelled first: the next one gets it."""
        self._offered = None
        self._tick()

    def _arm(self, wait: float) -> None:
        assert self._loop is not None
        self._timer = self._loop.call_later(max(wait, 0.0), self._tick)

    def _tick(self) -> None:
        """Wake the first waiter for the start due now, if any; otherwise re-arm."""
        if self._timer is not None:  # also run at a waiter's deadline, between timers
            self._timer.cancel()
            self._timer = None
        if self._offered is not None or not self._line:
            return
        wait = self.delay(self._clock())
        if wait > _EPSILON:
            self._arm(wait)
        else:
            self._offered = self._line.serve()


def _default_burst(rate: float) -> int:
    # Two absorb a late timer at the documented rates; at thousands per second a timer
    # cannot fire every interval, so the burst covers ~2 ms of starts.
    return max(2, math.ceil(rate * _BURST_SECONDS))


class RateLimiter:
    """In-process limiter: ``rate`` starts per key in any sliding second, in two classes.

    ``rate`` is given in terms of the 200/s APIs: an API documented at another rate is
    paced at the same share of its own (``RateLimiter(190)`` paces the 100/s live-room
    APIs at 95), and none above its documented rate. ``rates`` names APIs (method name
    or path) to pace at exactly the rate given, e.g. under a quota Tencent raised for
    them; any other key (one of your own) is paced at ``rate``.

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
        rates: Mapping[str, float] | None = None,
        burst: int | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        rate = require_number("rate", rate, minimum=1, maximum=MAX_RATE_LIMIT)
        self.rates = resolve_rates(rates)
        if burst is not None:
            burst = require_number("burst", burst, minimum=1, integer=True)
        self._given_burst = burst
        self.rate = rate
        self.burst = burst or _default_burst(rate)
        self._clock = clock or anyio.current_time
        self._keys: dict[str, _KeyLimiter] = {}
        self._prune_at = PRUNE_AT
        for spec in ENDPOINTS:  # made now, not on the first call of each
            self._key(spec.path)

    def __repr__(self) -> str:
        named = f", rates={self.rates!r}" if self.rates else ""
        return f"RateLimiter(rate={self.rate!r}{named}, burst={self.burst!r})"

    def rate_for(self, key: str) -> float:
        """The starts per sliding second ``key`` is allowed."""
        return pace_for(key, self.rate, self.rates)

    def above_share(self) -> tuple[EndpointSpec, float] | None:
        """The first API paced above ``PACE_FRACTION`` of its documented rate, and its pace.

        A pace that close to the server's limit lets network jitter bunch requests into
        60007 refusals; an API named in ``rates`` is paced as asked, and not counted.
        """
        for spec in ENDPOINTS:
            pace = self.rate_for(spec.path)
            if pace > spec.documented_rate * PACE_FRACTION and spec.path not in self.rates:
                return spec, pace
        return None

    def _key(self, key: str) -> _KeyLimiter:
        limiter = self._keys.get(key)
        if limiter is None:
            if len(self._keys) >= self._prune_at:
                now = self._clock()
                self._prune_at = drop_idle(self._keys, lambda kept: kept.idle(now))
            rate = self.rate_for(key)
            burst = self._given_burst or _default_burst(rate)
            limiter = self._keys[key] = _KeyLimiter(key, rate, burst, self._clock)
        return limiter

    async def acquire(
        self, key: str, *, priority: Priority = "interactive", deadline: float | None = None
    ) -> None:
        """Wait for this key's next start in ``priority``'s class, until ``deadline``.

        ``deadline`` is event-loop time (``anyio.current_time()``), whatever ``clock``
        is. Raises :class:`QueueTimeoutError` at once if the starts owed to the callers
        ahead (in this class and above, plus any pause) leave none for this one by
        ``deadline``, or when ``deadline`` passes; nothing is counted for it then.
        """
        rank = _RANKS.get(priority) if type(priority) is str else None
        if rank is None:  # not a plain name: read it as the options do, or refuse it
            rank = priority_rank(priority)
        due = math.inf if deadline is None else self._due(deadline)
        await (self._keys.get(key) or self._key(key)).acquire(rank, deadline, due)

    def predicted_wait(
        self, key: str, *, priority: Priority = "interactive", also_ahead: int = 0, deadline: float
    ) -> float:
        """Seconds until a caller of ``priority`` asking now would start, were ``also_ahead``
        more callers of its class or above queued ahead of it and no one else to come.

        Worked out only as far as it takes to compare with ``deadline`` (event-loop
        time): a wait that ends after it is at most the true one, a wait that ends by it
        at least the true one.
        """
        limiter = self._key(key)
        now = self._clock()
        ahead = limiter.ahead(priority_rank(priority), now) + also_ahead
        return limiter.start_time(now, ahead, self._due(deadline)) - now

    def _due(self, deadline: float) -> float:
        """An event-loop ``deadline`` in this limiter's clock, with float rounding's slack."""
        if self._clock is not anyio.current_time:
            deadline += self._clock() - anyio.current_time()
        return deadline + _EPSILON

    async def pause(self, key: str, seconds: float) -> None:
        """Start nothing of ``key`` for ``seconds`` (the server said we were too fast)."""
        self._key(key).pause(self._clock() + seconds)
