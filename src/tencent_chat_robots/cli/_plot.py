"""The ``bench`` plot: requests started per 100 ms against the limit, and a latency histogram.

matplotlib is optional (the ``[bench]`` extra); it is imported only when a plot is drawn,
and drawn on the Agg canvas without pyplot, so no display or global state is involved.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["BUCKET", "PlotUnavailable", "per_bucket", "plot_report", "write_plot"]

BUCKET = 0.1  # seconds per bar of the request-start panel


class PlotUnavailable(RuntimeError):
    """matplotlib is not installed, so no plot can be drawn."""


def per_bucket(offsets: Sequence[float], bucket: float = BUCKET) -> list[int]:
    """How many of ``offsets`` (seconds from the first, >= 0) fall in each ``bucket``."""
    if not offsets:
        return []
    counts = [0] * (math.floor(max(offsets) / bucket + 1e-9) + 1)
    for offset in offsets:
        counts[math.floor(offset / bucket + 1e-9)] += 1
    return counts


def plot_report(path: Path, report: Mapping[str, Any]) -> None:
    """The plot of a ``bench`` report (its samples, percentiles and limits) into ``path``."""
    samples = report["samples"]
    write_plot(
        path,
        title=(
            f"bench {report['endpoint']} on {report['server']}: {report['calls']} calls, "
            f"{report['throughput_calls_per_second']:.1f} calls/s, {report['failed']} failed"
        ),
        offsets=samples["start_s"],
        retried=[n > 1 for n in samples["attempt"]],
        latencies_ms=samples["latency_ms"],
        percentiles_ms={name: report["latency_ms"][name] for name in ("p50", "p90", "p99")},
        rate_limit=report["pace"],
        documented_limit=report["documented_rate_limit"],
    )


def write_plot(
    path: Path,
    *,
    title: str,
    offsets: Sequence[float],
    retried: Sequence[bool],
    latencies_ms: Sequence[float],
    percentiles_ms: Mapping[str, float],
    rate_limit: float,
    documented_limit: float,
) -> None:
    """Draw the two panels into the PNG at ``path``.

    ``offsets`` are the attempts' starts in seconds from the first one, ``retried`` whether
    each was a retry; ``rate_limit`` (the client's pace) and ``documented_limit`` (the
    server's) are per second and drawn per 100 ms. :class:`PlotUnavailable` without
    matplotlib.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as err:
        raise PlotUnavailable(str(err)) from err

    figure = Figure(figsize=(10, 8), layout="constrained")
    FigureCanvasAgg(figure)
    starts_axes, latency_axes = figure.subplots(2, 1, height_ratios=(3, 2))

    first = per_bucket([t for t, again in zip(offsets, retried, strict=True) if not again])
    again = per_bucket([t for t, again in zip(offsets, retried, strict=True) if again])
    size = max(len(first), len(again), 1)
    first += [0] * (size - len(first))
    again += [0] * (size - len(again))
    edges = [i * BUCKET for i in range(size + 1)]
    totals = [f + a for f, a in zip(first, again, strict=True)]
    starts_axes.stairs(first, edges, fill=True, color="tab:blue", alpha=0.5)
    starts_axes.stairs(first, edges, color="tab:blue", label="first attempts")
    if any(again):
        starts_axes.stairs(
            totals, edges, baseline=first, fill=True, color="tab:orange", label="retries"
        )
    starts_axes.axhline(
        rate_limit * BUCKET,
        color="tab:green",
        linestyle="--",
        label=f"client pace {rate_limit:g}/s = {rate_limit * BUCKET:g} per 100 ms",
    )
    starts_axes.axhline(
        documented_limit * BUCKET,
        color="tab:red",
        linestyle=":",
        linewidth=2,
        label=f"documented limit {documented_limit:g}/s = {documented_limit * BUCKET:g} per 100 ms",
    )
    peak = max(totals, default=0)
    starts_axes.set_ylim(0, max(peak, rate_limit * BUCKET, documented_limit * BUCKET) * 1.45)
    starts_axes.set_xlim(0, size * BUCKET)
    starts_axes.set_xlabel("seconds since the first request")
    starts_axes.set_ylabel("requests started per 100 ms")
    starts_axes.set_title("Request starts (client side)", loc="left")
    starts_axes.legend(loc="upper center", ncols=2, fontsize="small")
    starts_axes.grid(axis="y", alpha=0.3)

    # A long tail would squeeze the body of the histogram into one bar: cut the axis at
    # 3 x p99 and say how many attempts lie beyond.
    slowest = max(latencies_ms, default=0.0)
    cap = max(percentiles_ms.values(), default=slowest) * 3 or slowest
    shown = [ms for ms in latencies_ms if ms <= cap] if slowest > cap else list(latencies_ms)
    bins = max(10, min(60, round(math.sqrt(len(shown)) * 2)))
    latency_axes.hist(shown, bins=bins, color="tab:blue", alpha=0.8)
    if len(shown) < len(latencies_ms):
        latency_axes.annotate(
            f"{len(latencies_ms) - len(shown)} slower than {cap:.1f} ms not shown"
            f" (slowest {slowest:.1f} ms)",
            xy=(0.99, 0.5),
            xycoords="axes fraction",
            ha="right",
            fontsize="small",
        )
    styles = ("--", "-.", ":")
    for i, (name, value) in enumerate(percentiles_ms.items()):
        latency_axes.axvline(
            value, color="black", linestyle=styles[i % len(styles)], label=f"{name} {value:.1f} ms"
        )
    latency_axes.set_xlim(left=0)
    latency_axes.set_xlabel("latency per attempt (ms)")
    latency_axes.set_ylabel("attempts")
    latency_axes.set_title("Latency", loc="left")
    if percentiles_ms:
        latency_axes.legend(loc="upper right", fontsize="small")
    latency_axes.grid(axis="y", alpha=0.3)

    figure.suptitle(title)
    figure.savefig(path, format="png", dpi=100)
