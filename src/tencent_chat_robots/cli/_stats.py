"""Per-endpoint numbers for a run: calls, achieved rate, retries, errors, latency, and the
requests in the sliding second ending at each one (:func:`in_window`)."""

from __future__ import annotations

import collections
from collections.abc import Sequence
from typing import Any

import attrs

from .._bulk import BulkOutcome
from .._models import AttemptRecord
from ..testing import percentile

__all__ = ["PERCENTILES", "EndpointStats", "RunStats", "in_window"]

PERCENTILES = (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))

# Events a window apart less a nanosecond (the limiter's float tolerance) count apart,
# as in ``testing.max_in_window``.
_SLACK = 1e-9


def in_window(times: Sequence[float], window: float = 1.0) -> list[int]:
    """For each of ``times`` (sorted), how many lie in the window ending there, ``(t - window, t]``.

    Events at one time are all in the window ending at it. Two pointers, O(n).
    """
    counts: list[int] = []
    first = last = 0  # the window's first event; one past its last
    for t in times:
        while last < len(times) and times[last] <= t:
            last += 1
        while times[first] <= t - window + _SLACK:
            first += 1
        counts.append(last - first)
    return counts


@attrs.define
class EndpointStats:
    """What happened on one endpoint: per attempt (``on_attempt``) and per call."""

    endpoint: str
    calls: int = 0
    succeeded: int = 0
    retries: int = 0
    # Per attempt, in the order reported (as tries end): start, seconds, attempt number.
    starts: list[float] = attrs.Factory(list)
    latencies: list[float] = attrs.Factory(list)
    tries: list[int] = attrs.Factory(list)
    errors: collections.Counter[str] = attrs.Factory(collections.Counter)  # calls', by class
    attempt_errors: collections.Counter[str] = attrs.Factory(collections.Counter)

    @property
    def attempts(self) -> int:
        return len(self.starts)

    @property
    def max_per_second(self) -> int:
        """Most attempts started in any sliding second (client side)."""
        return max(in_window(sorted(self.starts)), default=0)

    @property
    def sustained_rate(self) -> float:
        """Attempts per second from the first start to the last (0 if they are at once)."""
        span = max(self.starts, default=0.0) - min(self.starts, default=0.0)
        # A coarse clock (Windows' ticks every 15.6 ms) may give every start one time.
        if len(self.starts) < 2 or span <= 0:
            return 0.0
        return (len(self.starts) - 1) / span

    def latency_ms(self) -> dict[str, float]:
        """Per attempt, in ms: p50, p90, p99, min, mean and max."""
        ms = [s * 1000 for s in self.latencies]
        return {
            **{name: round(percentile(ms, q), 2) for name, q in PERCENTILES},
            "min": round(min(ms, default=0.0), 2),
            "mean": round(sum(ms) / len(ms), 2) if ms else 0.0,
            "max": round(max(ms, default=0.0), 2),
        }

    def samples(self, arrivals: Sequence[float] | None = None) -> dict[str, list[Any]]:
        """Every attempt by start: seconds from the first start, latency in ms, number, and
        the attempts started in the second ending there (``in_second``). With ``arrivals``
        (the server's times, on the same clock), the same for them: ``arrival_s`` (from
        the first start) and ``arrived_in_second``."""
        rows = sorted(zip(self.starts, self.latencies, self.tries, strict=True))
        starts = [t for t, _, _ in rows]
        origin = starts[0] if starts else 0.0
        samples: dict[str, list[Any]] = {
            "start_s": [round(t - origin, 4) for t in starts],
            "latency_ms": [round(s * 1000, 3) for _, s, _ in rows],
            "attempt": [n for _, _, n in rows],
            "in_second": in_window(starts),  # of the exact times, not the rounded ones
        }
        if arrivals is not None:
            arrived = sorted(arrivals)
            samples["arrival_s"] = [round(t - origin, 4) for t in arrived]
            samples["arrived_in_second"] = in_window(arrived)
        return samples

    def as_dict(self) -> dict[str, Any]:
        """The numbers of the endpoint (``samples()`` apart), as JSON."""
        return {
            "endpoint": self.endpoint,
            "calls": self.calls,
            "succeeded": self.succeeded,
            "failed": self.calls - self.succeeded,
            "attempts": self.attempts,
            "retries": self.retries,
            "errors": dict(self.errors),
            "attempt_errors": dict(self.attempt_errors),
            "max_per_second": self.max_per_second,
            "sustained_rate": round(self.sustained_rate, 1),
            "latency_ms": self.latency_ms(),
        }


@attrs.define
class RunStats:
    """Collects :class:`AttemptRecord` reports and call outcomes, per endpoint."""

    endpoints: dict[str, EndpointStats] = attrs.Factory(dict)

    def of(self, endpoint: str) -> EndpointStats:
        stats = self.endpoints.get(endpoint)
        if stats is None:
            stats = self.endpoints[endpoint] = EndpointStats(endpoint)
        return stats

    def record_attempt(self, record: AttemptRecord) -> None:
        """The ``on_attempt`` observer."""
        stats = self.of(record.endpoint)
        stats.starts.append(record.started)
        stats.latencies.append(record.elapsed)
        stats.tries.append(record.attempt)
        if record.attempt > 1:
            stats.retries += 1
        if record.error is not None:
            stats.attempt_errors[type(record.error).__name__] += 1

    def record_call(self, endpoint: str, error: BaseException | None) -> None:
        """A call's final outcome."""
        stats = self.of(endpoint)
        stats.calls += 1
        if error is None:
            stats.succeeded += 1
        else:
            stats.errors[type(error).__name__] += 1

    def record_outcome(self, outcome: BulkOutcome[Any]) -> None:
        """A bulk run's outcome (``drive``'s ``on_outcome``)."""
        self.record_call(str(outcome.call.endpoint), outcome.error)

    @property
    def failed(self) -> int:
        return sum(s.calls - s.succeeded for s in self.endpoints.values())
