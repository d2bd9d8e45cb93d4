"""MkDocs hook: serve the benchmarks' plots (``benchmarks/results/*.png``) at
``assets/benchmarks/`` without a copy of them in ``docs/`` (they are measured data, kept
once, beside their JSON)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"


def on_files(files: Files, config: Any) -> Files:
    for plot in sorted(RESULTS.glob("*.png")):
        files.append(
            File.generated(config, f"assets/benchmarks/{plot.name}", abs_src_path=str(plot))
        )
    return files
