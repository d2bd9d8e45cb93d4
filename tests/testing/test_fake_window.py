"""The sliding-window arrival counter on its own, with explicit timestamps."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tencent_chat_robots.testing import SlidingWindow


def test_window_is_half_open() -> None:
    window = SlidingWindow(1.0)
    assert window.add(0.0) == 1
    assert window.add(0.5) == 2
    # (0.0, 1.0]: the arrival exactly one second earlier no longer counts.
    assert window.add(1.0) == 2
    assert window.add(1.0) == 3  # ties are all inside
    assert window.add(1.5) == 3  # (0.5, 1.5] drops 0.5
    assert window.count(1.4999) == 3  # (0.4999, 1.4999] still holds 0.5
    assert window.count(2.0) == 1  # (1.0, 2.0] holds only 1.5


def test_out_of_order_arrivals_are_counted_where_they_belong() -> None:
    window = SlidingWindow(1.0)
    assert window.add(1.0) == 1
    assert window.add(3.0) == 1
    # A late arrival only sees arrivals at or before its own time.
    assert window.add(0.5) == 1  # (-0.5, 0.5]
    assert window.add(0.875) == 2  # (-0.125, 0.875]: 0.5 and itself
    assert window.add(2.5) == 1  # (1.5, 2.5]: 3.0 is later, 1.0 too early
    assert window.add(1.75) == 3  # (0.75, 1.75]: 0.875, 1.0 and itself
    assert window.count(3.0) == 2  # (2.0, 3.0]: 2.5, 3.0
    assert window.count(1.0) == 3  # (0.0, 1.0]: 0.5, 0.875, 1.0
    assert window.times() == [0.5, 0.875, 1.0, 1.75, 2.5, 3.0]


def test_late_arrival_with_earlier_tie() -> None:
    window = SlidingWindow(1.0)
    for t in (2.0, 2.0, 1.5):
        window.add(t)
    assert window.add(2.0) == 4
    assert window.add(1.9) == 2  # 1.5 and itself; the three 2.0 are later


def test_max_count_scans_every_window() -> None:
    window = SlidingWindow(1.0)
    assert window.max_count() == 0
    for t in (5.0, 0.0, 0.25, 0.25, 1.125, 1.1875, 1.25, 5.5):
        window.add(t)
    # (-0.75, 0.25] holds 3; (0.1875, 1.1875] holds 0.25, 0.25, 1.125, 1.1875: 4;
    # (0.25, 1.25] has lost both 0.25s: 3.
    assert window.max_count() == 4
    assert len(window) == 8


def test_discard_through_and_clear() -> None:
    window = SlidingWindow(1.0)
    for t in (0.0, 1.0, 1.0, 2.0):
        window.add(t)
    window.discard_through(1.0)
    assert window.times() == [2.0]
    window.clear()
    assert len(window) == 0
    assert window.count(2.0) == 0


def test_other_lengths() -> None:
    window = SlidingWindow(0.25)
    window.add(0.0)
    assert window.add(0.25) == 1
    assert window.add(0.3) == 2


@pytest.mark.parametrize("length", [0.0, -1.0])
def test_length_must_be_positive(length: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        SlidingWindow(length)


def _brute(times: list[float], t: float) -> int:
    return sum(1 for a in times if t - 1.0 < a <= t)


# Multiples of 1/8 are exact in binary, so ties and exact boundaries occur often.
_times = st.lists(st.integers(0, 40).map(lambda n: n / 8), max_size=60)


@given(_times)
def test_add_matches_brute_force(arrivals: list[float]) -> None:
    window = SlidingWindow(1.0)
    seen: list[float] = []
    for t in arrivals:
        seen.append(t)
        assert window.add(t) == _brute(seen, t)
    assert window.times() == sorted(arrivals)
    expected_max = max((_brute(arrivals, t) for t in arrivals), default=0)
    assert window.max_count() == expected_max


@given(_times, st.integers(0, 48).map(lambda n: n / 8))
def test_count_matches_brute_force(arrivals: list[float], t: float) -> None:
    window = SlidingWindow(1.0)
    for a in arrivals:
        window.add(a)
    assert window.count(t) == _brute(arrivals, t)
