"""A sliding-window arrival counter: how many arrivals fell in the last ``length`` seconds."""

from __future__ import annotations

from bisect import bisect_right, insort

__all__ = ["SlidingWindow"]


class SlidingWindow:
    """Arrival timestamps kept sorted, so late (out-of-order) arrivals are counted correctly.

    The window ending at ``t`` is half-open, ``(t - length, t]``: an arrival exactly
    ``length`` seconds earlier no longer counts.
    """

    __slots__ = ("_times", "length")

    def __init__(self, length: float = 1.0) -> None:
        if length <= 0:
            raise ValueError("length must be positive")
        self.length = length
        self._times: list[float] = []

    def __len__(self) -> int:
        return len(self._times)

    def add(self, t: float) -> int:
        """Record an arrival at ``t``; return the arrivals in ``(t - length, t]``, it included."""
        times = self._times
        # Arrivals come nearly in order, so appending is the common case and insort
        # (bisect + memmove near the end) handles the stragglers.
        if not times or times[-1] <= t:
            times.append(t)
            hi = len(times)
        else:
            insort(times, t)
            hi = bisect_right(times, t)
        return hi - bisect_right(times, t - self.length, 0, hi)

    def count(self, t: float) -> int:
        """Arrivals in ``(t - length, t]``."""
        times = self._times
        hi = bisect_right(times, t)
        return hi - bisect_right(times, t - self.length, 0, hi)

    def max_count(self) -> int:
        """The most arrivals any window ever held (the maximum is reached at an arrival)."""
        times = self._times
        best = 0
        lo = 0
        n = len(times)
        for i, t in enumerate(times):
            # Ties all belong to the window ending at the last of them.
            if i + 1 < n and times[i + 1] == t:
                continue
            floor = t - self.length
            while times[lo] <= floor:
                lo += 1
            best = max(best, i + 1 - lo)
        return best

    def times(self) -> list[float]:
        """The recorded arrivals, sorted (a copy)."""
        return list(self._times)

    def keep_last(self, n: int) -> None:
        """Forget all but the ``n`` latest arrivals (bounds a long-running server's memory)."""
        if len(self._times) > n:
            del self._times[: len(self._times) - n]

    def discard_through(self, t: float) -> None:
        """Forget arrivals at or before ``t`` (safe once no window can reach back that far)."""
        del self._times[: bisect_right(self._times, t)]

    def clear(self) -> None:
        """Forget every arrival."""
        self._times.clear()
