"""Per-endpoint numbers for a run: calls, achieved rate, retries, errors, latency."""

from __future__ import annotations

import collections
import math
from collections.abc import Iterable

import attrs

from .._models import AttemptRecord

__all__ = ["EndpointStats", "RunStats", "max_in_window", "percentile"]


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of ``values`` (0 for none)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def max_in_window(times: Iterable[float], window: float = 1.0) -> int:
    """The most events in any half-open interval ``[t, t + window)``."""
    ordered = sorted(times)
    best = start = 0
    for end, t in enumerate(ordered):
        while t - ordered[start] >= window - 1e-9:
            start += 1
        best = max(best, end - start + 1)
    return best


@attrs.define
class EndpointStats:
    """What happened on one endpoint."""

    endpoint: str
    calls: int = 0
    succeeded: int = 0
    retries: int = 0
    starts: list[float] = attrs.Factory(list)
    latencies: list[float] = attrs.Factory(list)
    errors: collections.Counter[str] = attrs.Factory(collections.Counter)

    @property
    def max_per_second(self) -> int:
        """Most attempts started in any sliding second (client side)."""
        return max_in_window(self.starts)

    @property
    def sustained_rate(self) -> float:
        """Attempts per second from the first start to the last."""
        if len(self.starts) < 2:
            return 0.0
        return (len(self.starts) - 1) / (max(self.starts) - min(self.starts))

    def as_dict(self) -> dict[str, object]:
        return {
            "endpoint": self.endpoint,
            "calls": self.calls,
            "succeeded": self.succeeded,
            "attempts": len(self.starts),
            "retries": self.retries,
            "max_per_second": self.max_per_second,
            "sustained_rate": round(self.sustained_rate, 1),
            "errors": dict(self.errors),
            "latency_p50_ms": round(percentile(self.latencies, 0.5) * 1000, 2),
            "latency_p99_ms": round(percentile(self.latencies, 0.99) * 1000, 2),
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
        if record.attempt > 1:
            stats.retries += 1

    def record_call(self, endpoint: str, error: BaseException | None) -> None:
        """A call's final outcome."""
        stats = self.of(endpoint)
        stats.calls += 1
        if error is None:
            stats.succeeded += 1
        else:
            stats.errors[type(error).__name__] += 1

    @property
    def failed(self) -> int:
        return sum(s.calls - s.succeeded for s in self.endpoints.values())
