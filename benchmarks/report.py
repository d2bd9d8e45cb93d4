"""Write the README's performance table from ``benchmarks/results/*.json``.

The table sits between the ``<!-- bench:start -->`` and ``<!-- bench:end -->`` markers
in README.md; everything else in the README is left alone. Each result file carries a
``summary`` (or, for limit accuracy, its ``runs``) and the machine it was measured on.

    python benchmarks/report.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
README = ROOT / "README.md"
START, END = "<!-- bench:start -->", "<!-- bench:end -->"


def _load(name: str) -> dict[str, Any] | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _limit_rows(data: dict[str, Any]) -> list[str]:
    rows = [
        "| network / client | most requests in any second: sent (client) "
        "| at the server (limit 200) | 60007 refusals | sustained rate per endpoint |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, run in data["runs"].items():
        rows.append(
            f"| {name} | {run['worst_sent']} | {run['worst_arrived']} | {run['refused_60007']} "
            f"| {run['median_sustained_rate']}/s |"
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


SECTIONS = (
    ("limit_accuracy", "Limit accuracy: seven endpoints saturated at once", _limit_rows),
    ("overhead", "Overhead against raw HTTP clients (limiter off)", _summary_rows),
    ("scale", "Scale: calls gathered at once on one client", _summary_rows),
    ("multiprocess_limit", "Many processes sharing one limit through Redis", _summary_rows),
    ("user_bench", "A user's load benchmark: tencent-chat-robots bench", _summary_rows),
)


def render() -> str:
    """The markdown between the markers."""
    parts: list[str] = []
    machine: dict[str, Any] | None = None
    for name, title, rows in SECTIONS:
        data = _load(name)
        if data is None:
            continue
        machine = machine or data.get("machine")
        parts += [f"#### {title}", "", *rows(data), ""]
        if (RESULTS / f"{name}.png").exists():
            parts += [f"![{title}](benchmarks/results/{name}.png)", ""]
    if machine:
        parts.append(
            f"Measured on {machine['platform']}, Python {machine['python']}, "
            f"{machine['cpus']} CPUs, {machine['date']}."
        )
    return "\n".join(parts).strip()


def main() -> int:
    text = README.read_text(encoding="utf-8")
    if START not in text or END not in text:
        print("README.md has no bench markers", file=sys.stderr)
        return 1
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    README.write_text(f"{head}{START}\n{render()}\n{END}{tail}", encoding="utf-8")
    print("README.md performance table updated")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
