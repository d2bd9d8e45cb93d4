"""A user's load benchmark: ``tencent-chat-robots bench`` on the embedded fake server.

Runs the command as a user would (2,000 ``get_all_robots`` calls at the default 190/s;
``--quick``: 200), then keeps its summary as ``results/user_bench.json`` and its plot as
``results/user_bench.png`` (requests in the sliding second against the documented rate,
latency histogram) for the performance page (docs/performance.md).

    python benchmarks/user_bench.py [--quick]
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile

from _harness import quick_flag, write_result


def main() -> None:
    calls = 200 if quick_flag() else 2000
    with tempfile.TemporaryDirectory() as out:
        command = [
            sys.executable,
            "-c",
            "from tencent_chat_robots.cli import main; main()",
            "--json",
            "bench",
            "--endpoint",
            "get_all_robots",
            "--calls",
            str(calls),
            "--out",
            out,
        ]
        finished = subprocess.run(command, capture_output=True, text=True, check=False)
        if finished.returncode != 0:
            sys.exit(f"bench failed ({finished.returncode}):\n{finished.stderr}")
        report = json.loads(finished.stdout)
        path = write_result("user_bench", {"quick": quick_flag(), "summary": _summary(report)})
        if report.get("plot_file"):
            shutil.copy(report["plot_file"], path.with_suffix(".png"))
    print(f"{report['calls']} calls, {report['throughput_calls_per_second']:.1f}/s")


def _summary(report: dict[str, object]) -> dict[str, object]:
    latency = report["latency_ms"]
    assert isinstance(latency, dict)
    return {
        "calls (get_all_robots, default 190/s, embedded fake)": report["calls"],
        "succeeded": report["succeeded"],
        "throughput": f"{report['throughput_calls_per_second']:.1f}/s",
        "most started in any second (client) / arrived (server)": (
            f"{report['max_per_second']} / {report['max_per_second_arrived']}"
        ),
        "latency p50 / p90 / p99": (
            f"{latency['p50']:.2f} / {latency['p90']:.2f} / {latency['p99']:.2f} ms"
        ),
    }


if __name__ == "__main__":
    main()
