"""A clock tests move by hand, for the fake's injectable clocks."""

from __future__ import annotations

# A wall clock reading (2023-11-14T22:13:20Z) for tests of stored times.
WALL = 1_700_000_000.0


class ManualClock:
    """An injectable clock that only moves when told to."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
