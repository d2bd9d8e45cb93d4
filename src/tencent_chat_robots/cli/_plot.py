"""The ``bench`` plot: requests in the sliding second ending at each instant, against the
endpoint's documented rate (which holds for any sliding second), and a latency histogram.

matplotlib is optional (the ``[bench]`` extra); it is imported only when a plot is drawn,
and drawn on the Agg canvas without pyplot, so no display or global state is involved.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["PlotUnavailable", "figure", "plot_report"]


class PlotUnavailable(RuntimeError):
    """matplotlib is not installed, so no plot can be drawn."""


def plot_report(path: Path, report: Mapping[str, Any]) -> None:
    """The plot of a ``bench`` report into the PNG at ``path``."""
    figure(report).savefig(path, format="png", dpi=100)


def figure(report: Mapping[str, Any]) -> Figure:
    """The two panels of a ``bench`` report (its samples, percentiles and limits).

    :class:`PlotUnavailable` without matplotlib.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as err:
        raise PlotUnavailable(str(err)) from err

    drawn = Figure(figsize=(10, 8), layout="constrained")
    FigureCanvasAgg(drawn)
    rate_axes, latency_axes = drawn.subplots(2, 1, height_ratios=(3, 2))
    _rates(rate_axes, report)
    samples = report["samples"]
    percentiles = {name: report["latency_ms"][name] for name in ("p50", "p90", "p99")}
    _latencies(latency_axes, samples["latency_ms"], percentiles)
    drawn.suptitle(
        f"bench {report['endpoint']} on {report['server']}\n{report['calls']} calls,"
        f" {report['throughput_calls_per_second']:.1f} calls/s, {report['failed']} failed,"
        f" rate-limit errors (60007): {report['rate_limit_errors']}"
    )
    return drawn


def _rates(axes: Axes, report: Mapping[str, Any]) -> None:
    """Starts (client) and arrivals (server) in the sliding second ending at each one."""
    samples, documented, pace = report["samples"], report["documented_rate_limit"], report["pace"]
    starts, started = samples["start_s"], samples["in_second"]
    arrived = samples.get("arrived_in_second")
    if arrived is not None:  # under the starts, wider: the two often coincide
        axes.plot(
            samples["arrival_s"],
            arrived,
            drawstyle="steps-post",
            color="tab:purple",
            linewidth=4,
            alpha=0.4,
            label=f"arrived (server), most {max(arrived, default=0)}",
        )
    axes.plot(
        starts,
        started,
        drawstyle="steps-post",
        color="tab:blue",
        label=f"started (client), most {max(started, default=0)}",
    )
    retried = [i for i, attempt in enumerate(samples["attempt"]) if attempt > 1]
    if retried:
        axes.plot(
            [starts[i] for i in retried],
            [started[i] for i in retried],
            linestyle="none",
            marker="o",
            markersize=4,
            color="tab:orange",
            label=f"retries ({len(retried)})",
        )
    axes.axhline(pace, color="tab:green", linestyle="--", label=f"client pace {pace:g}/s")
    axes.axhline(
        documented,
        color="tab:red",
        linestyle=":",
        linewidth=2,
        label=f"documented limit {documented:g} in any second",
    )
    peak = max([*started, *(arrived or ())], default=0)
    axes.set_ylim(0, max(peak, pace, documented) * 1.35)
    axes.set_xlim(left=0)
    axes.set_xlabel("seconds since the first request")
    axes.set_ylabel("requests in the second ending here")
    axes.set_title("Requests in the sliding second", loc="left")
    axes.legend(loc="upper center", ncols=2, fontsize="small")
    axes.grid(axis="y", alpha=0.3)


def _latencies(axes: Axes, latencies_ms: Sequence[float], percentiles: Mapping[str, float]) -> None:
    """A histogram of the attempts' latencies, with the percentiles marked."""
    # A long tail would squeeze the body of the histogram into one bar: cut the axis at
    # 3 x p99 and say how many attempts lie beyond.
    slowest = max(latencies_ms, default=0.0)
    cap = max(percentiles.values(), default=slowest) * 3 or slowest
    shown = [ms for ms in latencies_ms if ms <= cap] if slowest > cap else list(latencies_ms)
    bins = max(10, min(60, round(math.sqrt(len(shown)) * 2)))
    axes.hist(shown, bins=bins, color="tab:blue", alpha=0.8)
    if len(shown) < len(latencies_ms):
        axes.annotate(
            f"{len(latencies_ms) - len(shown)} slower than {cap:.1f} ms not shown"
            f" (slowest {slowest:.1f} ms)",
            xy=(0.99, 0.5),
            xycoords="axes fraction",
            ha="right",
            fontsize="small",
        )
    styles = ("--", "-.", ":")
    for i, (name, value) in enumerate(percentiles.items()):
        axes.axvline(
            value, color="black", linestyle=styles[i % len(styles)], label=f"{name} {value:.1f} ms"
        )
    axes.set_xlim(left=0)
    axes.set_xlabel("latency per attempt (ms)")
    axes.set_ylabel("attempts")
    axes.set_title("Latency", loc="left")
    if percentiles:
        axes.legend(loc="upper right", fontsize="small")
    axes.grid(axis="y", alpha=0.3)
