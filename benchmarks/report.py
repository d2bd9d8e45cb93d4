"""Write the performance tables of the docs from ``benchmarks/results/*.json``.

The tables go into the documentation site's performance page, ``docs/performance.md``:
the main ones between its ``<!-- bench:start -->`` and ``<!-- bench:end -->`` markers;
the priority benchmark's table between ``<!-- priority:start -->`` and
``<!-- priority:end -->`` (under "Web services and bulk jobs together"), the bulk
runner's between ``<!-- bulk:start -->`` and ``<!-- bulk:end -->``, the robot
callbacks' between ``<!-- callbacks:start -->`` and ``<!-- callbacks:end -->``, and the
streamed replies' between ``<!-- streaming:start -->`` and ``<!-- streaming:end -->``;
without their markers, each joins the others. Everything else on the page is left
alone. A result's plot (``results/NAME.png``) is served by the site at
``assets/benchmarks/`` (``docs/hooks/plots.py``). Each result file carries a ``summary``
(or, for limit accuracy, its ``runs``) and the machine it was measured on.

    python benchmarks/report.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
DOCS = ROOT / "docs"
PAGE = DOCS / "performance.md"  # the docs page that holds the performance tables
PLOTS = DOCS / "assets" / "benchmarks"  # where the site serves the plots (a docs hook)
START, END = "<!-- bench:start -->", "<!-- bench:end -->"
PRIORITY_START, PRIORITY_END = "<!-- priority:start -->", "<!-- priority:end -->"
BULK_START, BULK_END = "<!-- bulk:start -->", "<!-- bulk:end -->"
CALLBACKS_START, CALLBACKS_END = "<!-- callbacks:start -->", "<!-- callbacks:end -->"
STREAMING_START, STREAMING_END = "<!-- streaming:start -->", "<!-- streaming:end -->"


def _load(name: str) -> dict[str, Any] | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _limit_rows(data: dict[str, Any]) -> list[str]:
    rows = [
        "| network / client | most requests in any second: sent (client) "
        "| at the server: APIs limited at 200 / at 100 | 60007 refusals "
        "| sustained rate per endpoint |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, run in data["runs"].items():
        by_limit = run.get("worst_arrived_by_limit", {})
        arrived = " / ".join(str(by_limit.get(limit, "-")) for limit in ("200", "100"))
        rows.append(
            f"| {name} | {run['worst_sent']} | {arrived or run['worst_arrived']}"
            f" | {run['refused_60007']} | {run['median_sustained_rate']}/s |"
        )
    return rows


def _summary_rows(data: dict[str, Any]) -> list[str]:
    rows = ["| measure | value |", "| --- | ---: |"]
    for key, value in data.get("summary", {}).items():
        rows.append(f"| {key} | {value} |")
    for key, target in data.get("targets", {}).items():
        met = "met" if target.get("met") else "**missed**"
        rows.append(f"| target: {key} | {target.get('value')} ({met}) |")
    return rows


def _priority_rows(data: dict[str, Any]) -> list[str]:
    """One row per target: what is measured, the value, the target and whether it was met."""
    rows = ["| measure | measured | target | |", "| --- | ---: | ---: | --- |"]
    for target in data.get("targets", {}).values():
        met = "met" if target.get("met") else "**missed**"
        rows.append(
            f"| {target.get('measure')} | {target.get('value')} | {target.get('target')} | {met} |"
        )
    contrast = data.get("contrast")
    if contrast:
        rows.append(f"| {contrast['measure']} | {contrast['value']} | (for contrast) | |")
    workload = data.get("summary", {}).get("workload")
    if workload:
        repeats = data.get("settings", {}).get("repeats")
        rows += ["", f"Workload: {workload}; medians of {repeats} runs."]
    return rows


def _bulk_rows(data: dict[str, Any]) -> list[str]:
    """The runner against gather, row by row, with the issue's targets."""
    rows = ["| measure | runner | gather | target | met? |", "| --- | ---: | ---: | ---: | --- |"]
    for row in data.get("table", []):
        met = row.get("met")
        shown = "" if met is None else ("met" if met else "**missed**")
        rows.append(
            f"| {row['measure']} | {row['runner']} | {row['gather']} | {row['target']} | {shown} |"
        )
    workload = data.get("summary", {}).get("workload")
    if workload:
        repeats = data.get("settings", {}).get("repeats")
        rows += ["", f"Workload: {workload}; medians of {repeats} runs."]
    return rows


def _target_rows(data: dict[str, Any]) -> list[str]:
    """A benchmark's ``table`` of measures (medians) with the issue's targets: the
    robot callback receiver's, and streamed replies'."""
    rows = ["| measure | measured | target | met? |", "| --- | ---: | ---: | --- |"]
    for row in data.get("table", []):
        met = row.get("met")
        shown = "" if met is None else ("met" if met else "**missed**")
        rows.append(f"| {row['measure']} | {row['measured']} | {row['target']} | {shown} |")
    summary = data.get("summary", {})
    workload = summary.get("workload")
    if workload:
        repeats = data.get("settings", {}).get("repeats")
        shown = summary.get("aggregate", f"medians of {repeats} runs (pass/fail: every run)")
        rows += ["", f"Workload: {workload}; {shown}."]
    return rows


SECTIONS = (
    ("limit_accuracy", "Limit accuracy: every endpoint saturated at once", _limit_rows),
    ("overhead", "Overhead against raw HTTP clients (limiter off)", _summary_rows),
    ("scale", "Scale: calls gathered at once on one client", _summary_rows),
    ("multiprocess_limit", "Many processes sharing one limit through Redis", _summary_rows),
    ("user_bench", "A user's load benchmark: tencent-chat-robots bench", _summary_rows),
    ("deadline", "Deadlines: a whole call bounded", _target_rows),
)


PRIORITY_SECTION = ("priority", "Web services and bulk jobs together", _priority_rows)
BULK_SECTION = ("bulk", "Bulk runs: chat.bulk() against gather", _bulk_rows)
CALLBACKS_SECTION = ("callbacks", "Robot callbacks: the receiver under load", _target_rows)
STREAMING_SECTION = ("streaming", "Streamed replies: coalescing, sharing, faults", _target_rows)


def _measured_on(machine: dict[str, Any]) -> str:
    return (
        f"Measured on {machine['platform']}, Python {machine['python']}, "
        f"{machine['cpus']} CPUs, {machine['date']}."
    )


def render(
    *,
    with_priority: bool = False,
    with_bulk: bool = False,
    with_callbacks: bool = False,
    with_streaming: bool = False,
) -> str:
    """The markdown between the bench markers (the priority, bulk, callbacks and
    streaming tables too if asked)."""
    parts: list[str] = []
    machine: dict[str, Any] | None = None
    sections = (
        SECTIONS
        + ((PRIORITY_SECTION,) if with_priority else ())
        + ((BULK_SECTION,) if with_bulk else ())
        + ((CALLBACKS_SECTION,) if with_callbacks else ())
        + ((STREAMING_SECTION,) if with_streaming else ())
    )
    for name, title, rows in sections:
        data = _load(name)
        if data is None:
            continue
        machine = machine or data.get("machine")
        parts += [f"## {title}", "", *rows(data), ""]
        plot = _plot(name)
        if plot:
            parts += [f"![{title}]({plot})", ""]
    if machine:
        parts.append(_measured_on(machine))
    return "\n".join(parts).strip()


def _plot(name: str) -> str | None:
    """The site's path, from the page, of ``results/NAME.png`` (``docs/hooks/plots.py``
    serves the results' plots there)."""
    source = RESULTS / f"{name}.png"
    if not source.exists():
        return None
    return (PLOTS / source.name).relative_to(PAGE.parent).as_posix()


def _render_block(name: str, intro: str, rows: Any) -> str:
    """A measured block: an intro line, the table from ``results/NAME.json``, the machine."""
    data = _load(name)
    if data is None:
        return ""
    parts = [intro, "", *rows(data), ""]
    if data.get("machine"):
        parts.append(_measured_on(data["machine"]))
    return "\n".join(parts).strip()


def render_priority() -> str:
    """The markdown between the priority markers: targets met with a bulk job running."""
    intro = "Measured by `benchmarks/priority.py` against the fake server (190/s, one endpoint):"
    return _render_block("priority", intro, _priority_rows)


def render_bulk() -> str:
    """The markdown between the bulk markers: the runner's targets, gather for contrast."""
    intro = (
        "Measured by `benchmarks/bulk.py` against the fake server, each client in a fresh process:"
    )
    return _render_block("bulk", intro, _bulk_rows)


def render_callbacks() -> str:
    """The markdown between the callbacks markers: the receiver's measures and targets."""
    intro = (
        "Measured by `benchmarks/callbacks.py`: `RobotCallbacks` under uvicorn, the fake "
        "server and the echo bot each in a process of their own:"
    )
    return _render_block("callbacks", intro, _target_rows)


def render_streaming() -> str:
    """The markdown between the streaming markers: streamed replies' measures and targets."""
    intro = (
        "Measured by `benchmarks/streaming.py`: `chat.stream_reply` against the fake server "
        "in a process of its own, over HTTP:"
    )
    return _render_block("streaming", intro, _target_rows)


def _between(text: str, start: str, end: str, body: str) -> str:
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{start}\n{body}\n{end}{tail}"


def main() -> int:
    text = PAGE.read_text(encoding="utf-8")
    if START not in text or END not in text:
        print(f"{PAGE.relative_to(ROOT)} has no bench markers", file=sys.stderr)
        return 1
    own_markers = PRIORITY_START in text and PRIORITY_END in text
    bulk_markers = BULK_START in text and BULK_END in text
    callbacks_markers = CALLBACKS_START in text and CALLBACKS_END in text
    streaming_markers = STREAMING_START in text and STREAMING_END in text
    body = render(
        with_priority=not own_markers,
        with_bulk=not bulk_markers,
        with_callbacks=not callbacks_markers,
        with_streaming=not streaming_markers,
    )
    text = _between(text, START, END, body)
    if own_markers:
        text = _between(text, PRIORITY_START, PRIORITY_END, render_priority())
    if bulk_markers:
        text = _between(text, BULK_START, BULK_END, render_bulk())
    if callbacks_markers:
        text = _between(text, CALLBACKS_START, CALLBACKS_END, render_callbacks())
    if streaming_markers:
        text = _between(text, STREAMING_START, STREAMING_END, render_streaming())
    PAGE.write_text(text, encoding="utf-8")
    print(f"{PAGE.relative_to(ROOT)} performance tables updated")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
