"""Two numbers every measurement of a run needs: a percentile, and the most in any second.

``max_in_window`` counts with the fake server's own :class:`SlidingWindow`, so starts at
the client and arrivals at the server are counted by one rule.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from ._window import SlidingWindow

__all__ = ["max_in_window", "percentile"]

# Events a window apart less a nanosecond, the limiter's float tolerance, count apart.
_SLACK = 1e-9


def percentile(values: Iterable[float], fraction: float) -> float:
    """The nearest-rank percentile of ``values`` (``fraction`` 0.5 for the median; 0 for none)."""
    ordered = sorted(values)
    if not ordered:
        return 0.0
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def max_in_window(times: Iterable[float], window: float = 1.0) -> int:
    """The most of ``times`` in any window of ``window`` seconds.

    Counted as the fake counts arrivals (:meth:`SlidingWindow.max_count`), with a
    nanosecond of slack: two events ``window`` seconds apart, give or take the float
    rounding the limiter allows itself, never share a window.
    """
    counter = SlidingWindow(window - _SLACK)
    for t in sorted(times):
        counter.add(t)
    return counter.max_count()
