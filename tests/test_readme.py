"""The README's quickstart runs as written, against the fake server on loopback."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ._servers import quickstart_fake

README = Path(__file__).resolve().parent.parent / "README.md"


def _quickstart() -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Quickstart", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match is not None
    return match.group(1)


def test_quickstart_runs_as_written(monkeypatch: pytest.MonkeyPatch) -> None:
    code = _quickstart()
    # The example names a region: for this test, that region lives on loopback.
    with quickstart_fake(monkeypatch, code) as fake:
        exec(compile(code, str(README), "exec"), {"__name__": "__main__"})
    assert fake.robots == []  # created, used, deleted
    assert fake.room_members("room-1") == ["@RBT#001"]
    assert len({call.endpoint for call in fake.calls}) == 7
