"""``percentile`` and ``max_in_window``: the measures of a run, public for benchmarks."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tencent_chat_robots.testing import SlidingWindow, max_in_window, percentile


def test_percentile_is_the_nearest_rank() -> None:
    values = [float(v) for v in range(10, 0, -1)]  # any order
    assert percentile(values, 0.5) == 5
    assert percentile(values, 0.9) == 9
    assert percentile(values, 0.99) == 10
    assert percentile(values, 0.0) == 1
    assert percentile(values, 1.0) == 10
    assert percentile([], 0.5) == 0
    assert percentile(iter([2.0, 1.0]), 0.5) == 1  # any iterable


def test_max_in_window_counts_a_second_open_at_one_end() -> None:
    assert max_in_window([]) == 0
    assert max_in_window([0.0, 0.5, 0.999]) == 3
    assert max_in_window([0.0, 0.5, 1.0]) == 2  # a second apart: never in one window
    assert max_in_window([1.0, 0.0, 1.0, 0.5]) == 3  # unsorted, with ties
    # A nanosecond of slack, the limiter's float tolerance: still a second apart.
    assert max_in_window([0.0, 1.0 - 5e-10]) == 1
    assert max_in_window([0.0, 0.25, 0.5], window=0.5) == 2


def _brute_force(times: list[float], window: float) -> int:
    return max(sum(1 for u in times if t <= u < t + window - 1e-9) for t in times) if times else 0


@given(st.lists(st.integers(0, 8192), max_size=60), st.sampled_from([0.25, 1.0, 2.0]))
def test_max_in_window_agrees_with_counting_every_window(ticks: list[int], window: float) -> None:
    times = [tick / 1024 for tick in ticks]  # exact in binary: no rounding at the edges
    assert max_in_window(times, window) == _brute_force(times, window)


@given(st.lists(st.integers(0, 8192), min_size=1, max_size=60))
def test_max_in_window_counts_as_the_fake_counts_arrivals(ticks: list[int]) -> None:
    counter = SlidingWindow(1.0)
    for tick in sorted(ticks):
        counter.add(tick / 1024)
    assert max_in_window(tick / 1024 for tick in ticks) == counter.max_count()
