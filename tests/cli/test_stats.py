"""The measures of ``bench``: requests in the sliding second ending at each one."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tencent_chat_robots.cli._stats import EndpointStats, in_window
from tencent_chat_robots.testing import max_in_window

# (times, window, the count in the window ending at each time), worked out by hand.
TABLES = [
    ([], 1.0, []),
    ([3.0], 1.0, [1]),
    # (0.2, 1.2] holds 0.5, 1.0 and 1.2; (0, 1] no longer holds 0.0.
    ([0.0, 0.5, 1.0, 1.2], 1.0, [1, 2, 2, 3]),
    ([0.0, 0.999], 1.0, [1, 2]),
    # A float rounding short of a second apart still counts apart, as the limiter means it.
    ([0.0, 1.0 - 1e-12], 1.0, [1, 1]),
    # Events at one time are all in the window ending at it.
    ([0.0, 0.0, 0.3, 0.3, 0.3], 1.0, [2, 2, 5, 5, 5]),
    ([0.0, 0.5, 0.5, 1.5], 1.0, [1, 3, 3, 1]),
    # A gap empties the window.
    ([0.0, 0.1, 5.0, 5.1, 5.2], 1.0, [1, 2, 1, 2, 3]),
    ([0.0, 0.05, 0.1, 0.15, 0.3], 0.1, [1, 2, 2, 2, 1]),
]


@pytest.mark.parametrize(("times", "window", "expected"), TABLES)
def test_in_window_counts_the_window_ending_at_each_time(
    times: list[float], window: float, expected: list[int]
) -> None:
    assert in_window(times, window) == expected


def test_in_window_of_a_steady_200_per_second() -> None:
    # One every 5 ms: the i-th (from 0) ends a second holding i + 1 of them until the
    # window is full; from the 200th on, the second ending at each holds 200 (the one
    # exactly a second earlier is out).
    times = [i * 0.005 for i in range(400)]
    assert in_window(times) == list(range(1, 201)) + [200] * 200


def test_a_burst_is_one_window() -> None:
    assert in_window([7.25] * 201) == [201] * 201


def test_max_per_second_is_the_most_in_any_window_whatever_the_order() -> None:
    # Reported as tries end, not as they start.
    stats = EndpointStats("e", starts=[1.2, 0.0, 1.0, 0.5, 3.0])
    assert stats.max_per_second == 3
    assert EndpointStats("e").max_per_second == 0


def test_samples_carry_the_sliding_second_of_starts_and_arrivals() -> None:
    stats = EndpointStats(
        "e",
        starts=[10.5, 10.0, 11.2, 11.0],
        latencies=[0.002, 0.001, 0.004, 0.003],
        tries=[1, 1, 1, 2],
    )
    assert stats.samples() == {
        "start_s": [0.0, 0.5, 1.0, 1.2],
        "latency_ms": [1.0, 2.0, 3.0, 4.0],
        "attempt": [1, 1, 2, 1],
        "in_second": [1, 2, 2, 3],
    }
    # The server's times, on the same clock: from the first start, and their own windows.
    with_arrivals = stats.samples(arrivals=[11.25, 10.001, 11.003, 10.502])
    assert with_arrivals["arrival_s"] == [0.001, 0.502, 1.003, 1.25]
    # (10.003, 11.003] holds 10.502 and 11.003; (10.25, 11.25] three.
    assert with_arrivals["arrived_in_second"] == [1, 2, 2, 3]


@given(st.lists(st.integers(0, 8192), max_size=60))
def test_the_peak_is_the_one_the_benchmarks_count(ticks: list[int]) -> None:
    times = sorted(tick / 1024 for tick in ticks)  # exact in binary: no rounding at the edges
    assert max(in_window(times), default=0) == max_in_window(times)
