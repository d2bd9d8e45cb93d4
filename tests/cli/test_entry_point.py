"""The console script when the ``[cli]`` extra is not installed: a hint, not a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ._process import ENTRY, TIMEOUT


@pytest.mark.parametrize(
    ("module", "args"),
    [
        ("click", ["--help"]),
        ("rich", ["--help"]),
        # Only serving needs uvicorn: the command is found, then fails to start.
        ("uvicorn", ["fake-server"]),
    ],
)
def test_a_missing_dependency_names_the_extra_to_install(module: str, args: list[str]) -> None:
    # None in sys.modules makes the import fail as if the package were not installed.
    program = f"import sys; sys.modules[{module!r}] = None; {ENTRY}"
    result = subprocess.run(
        [sys.executable, "-c", program, *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )

    assert result.returncode == 1
    assert f"needs {module}, which is not installed" in result.stderr
    assert "pip install 'tencent-chat-robots[cli]'" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
